"""The settings check between a checkpoint and a command; whole commands are in test_resume.py and test_cli.py."""

from pathlib import Path

import pytest
from jsonargparse import Namespace

from lightning_app.checkpoint_settings import CheckpointInfo, adopt, differences
from lightning_app.errors import UsageError

TRAINED = {"model.dim": 32, "model.context_len": 128, "data.context_len": 128, "data.vocab": "byte",
           "data.bpe_vocab_size": 4096, "data.batch_size": 8, "model.compile": True}  # fmt: skip


def command(**changes: object) -> Namespace:
    config = Namespace()
    for key, value in {**TRAINED, "model.compile": False, **changes}.items():
        config[key] = value
    return config


def info() -> CheckpointInfo:
    return CheckpointInfo(Path("model.ckpt"), dict(TRAINED), global_step=10)


def test_differences_name_what_changes_learning_and_nothing_else():
    assert differences(info(), command()) == []  # model.compile only changes how the run executes
    assert differences(info(), command(**{"data.bpe_vocab_size": 512})) == []  # no BPE vocabulary here
    assert differences(info(), command(**{"model.dim": 64})) == ["model.dim 32 (this command: 64)"]


def test_adopt_takes_what_the_command_leaves_out_and_refuses_other_weights():
    config = command(**{"data.batch_size": 2, "model.dim": 64})
    with pytest.raises(UsageError, match=r"model.dim 64 \(its weights have 32\)"):
        adopt(info(), config, given={"model.dim"})
    adopt(info(), config, given=set())
    assert (config["model.dim"], config["data.batch_size"]) == (32, 8)


@pytest.mark.parametrize("given", [{"data.context_len"}, set()])
def test_the_models_context_follows_the_datas_whichever_was_given(given: set[str]):
    config = command(**{"data.context_len": 256, "model.context_len": 256})
    adopt(info(), config, given=given)
    expected = 256 if given else 128
    assert config["data.context_len"] == config["model.context_len"] == expected

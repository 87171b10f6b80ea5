from pathlib import Path

import pytest
import torch

from lightning_app.checkpoint_format import CHECKPOINT_FORMAT, check_format, load_checkpoint
from lightning_app.errors import UsageError

GOOD = {"state_dict": {}, "hyper_parameters": {}, "tokenizer": {"kind": "byte"}, "ctt_format": CHECKPOINT_FORMAT}


@pytest.mark.parametrize(
    "change, said",
    [
        ({"ctt_format": None}, "not written by this version of ctt"),
        ({"ctt_format": CHECKPOINT_FORMAT + 1}, f"has checkpoint format {CHECKPOINT_FORMAT + 1}, and this version reads {CHECKPOINT_FORMAT}"),
        ({"tokenizer": None}, "holds no tokenizer"),
    ],
)
def test_a_checkpoint_of_another_format_is_refused_in_one_sentence(change: dict, said: str):
    checkpoint = {k: v for k, v in (GOOD | change).items() if v is not None}
    with pytest.raises(UsageError, match=said):
        check_format(checkpoint, "old.ckpt")


def test_a_checkpoint_of_this_format_reads_back(tmp_path: Path):
    torch.save(GOOD | {"state_dict": {"w": torch.ones(2)}}, tmp_path / "model.ckpt")
    checkpoint = load_checkpoint(tmp_path / "model.ckpt", "--ckpt_path")
    assert torch.equal(checkpoint["state_dict"]["w"], torch.ones(2))


def test_a_folder_is_refused_with_a_file_to_pass_instead(tmp_path: Path):
    torch.save(GOOD, tmp_path / "model.ckpt")
    with pytest.raises(UsageError, match=rf"--ckpt_path {tmp_path} is a folder; pass a .ckpt file \(e.g. {tmp_path / 'model.ckpt'}\)"):
        load_checkpoint(tmp_path, "--ckpt_path")


@pytest.mark.parametrize(
    "content, said",
    [
        (None, "does not exist"),
        (b"not a checkpoint", "is not a readable checkpoint"),
        ({"weights": 1}, "holds no model settings or weights"),
    ],
)
def test_anything_else_is_refused_in_one_sentence(tmp_path: Path, content: object, said: str):
    path = tmp_path / "model.ckpt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(UsageError, match=said):
        load_checkpoint(path, "--ckpt_path")

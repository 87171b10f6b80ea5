"""`ctt generate`: text from a checkpoint on standard output, nothing else there, clear errors for bad files."""

import os
from pathlib import Path

import pytest
import torch

from lightning_app.cli import main

from .conftest import SAMPLE_TEXT


@pytest.fixture(scope="module")
def char_ckpt(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    (folder / "corpus").mkdir()
    (folder / "corpus" / "a.txt").write_text(SAMPLE_TEXT * 60)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        main([
            "fit", "--data.data_dir=corpus", "--data.vocab=char", "--data.context_len=16", "--model.dim=32",
            "--model.depth=1", "--model.heads=2", "--trainer.max_steps=3", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false", "--sample.length=0", "--trainer.logger=false",
        ])  # fmt: skip
    finally:
        os.chdir(cwd)
    return folder / "checkpoints" / "model.ckpt"


def generate(*args: str) -> None:
    main(["generate", *args])


def test_prints_only_the_text_and_is_repeatable(char_ckpt: Path, capsys):
    args = (f"--ckpt_path={char_ckpt}", "--prompt=It was", "--length=50", "--temperature=0.8", "--top_k=10", "--top_p=0.95", "--seed=1")
    generate(*args)
    first = capsys.readouterr().out
    generate(*args)
    assert capsys.readouterr().out == first
    assert first.startswith("It was") and len(first.rstrip("\n")) == len("It was") + 50


def test_several_samples(char_ckpt: Path, capsys):
    generate(f"--ckpt_path={char_ckpt}", "--prompt=age", "--length=20", "--num_samples=3", "--seed=2", "--temperature=0")
    out = capsys.readouterr().out
    assert out.count("age") >= 3


def test_prompt_longer_than_the_context_keeps_its_tail(char_ckpt: Path, capsys):
    generate(f"--ckpt_path={char_ckpt}", f"--prompt={'it was ' * 10}", "--length=5", "--temperature=0")
    assert capsys.readouterr().out.startswith("it was " * 10)


def error_line(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        generate(*args)
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_unknown_characters_are_named(char_ckpt: Path, capsys):
    assert "'Ωλ'" in error_line(capsys, f"--ckpt_path={char_ckpt}", "--prompt=Ωλ")


def test_missing_checkpoint(capsys):
    assert "does not exist" in error_line(capsys, "--ckpt_path=nope.ckpt")


def test_truncated_checkpoint(char_ckpt: Path, capsys):
    Path("cut.ckpt").write_bytes(char_ckpt.read_bytes()[:1000])
    assert "not a readable checkpoint" in error_line(capsys, "--ckpt_path=cut.ckpt")


def test_foreign_checkpoint(capsys):
    torch.save({"state_dict": {}, "hyper_parameters": {"dim": 8}}, "other.ckpt")
    assert "not written by this version" in error_line(capsys, "--ckpt_path=other.ckpt")
    torch.save({"weights": torch.zeros(2)}, "plain.pt")
    assert "not a checkpoint written by `ctt fit`" in error_line(capsys, "--ckpt_path=plain.pt")


def test_pickled_code_is_refused(capsys):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"x": Evil()}, "evil.ckpt")
    assert "not a readable checkpoint" in error_line(capsys, "--ckpt_path=evil.ckpt")

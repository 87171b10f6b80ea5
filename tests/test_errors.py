"""Wrong input ends in one clear line and exit status 1 (or jsonargparse's usage error, status 2); nothing on disk is lost."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_app.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--model.dim=32", "--model.depth=1", "--model.heads=2", "--data.context_len=32", "--data.batch_size=8",
    "--trainer.max_steps=4", "--trainer.limit_val_batches=2", "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false", "--sample.length=0",
]  # fmt: skip


def fit_error(capsys, *args: str, code: int = 1) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(["fit", *TINY, *args])
    assert exit_.value.code == code
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--model.heads=3", "model.dim (32) must be divisible by model.heads (3)"),
        ("--model.dim=9 --model.heads=3", "must be even"),
        ("--model.dim=0", "model.dim must be a positive integer"),
        ("--model.depth=-1", "model.depth must be a positive integer"),
        ("--data.context_len=0", "data.context_len must be a positive integer"),
        ("--data.batch_size=0", "data.batch_size must be a positive integer"),
        ("--model.lr=0", "model.lr must be positive"),
        ("--data.val_fraction=1.5", "data.val_fraction must be between 0 and 1"),
    ],
)
def test_bad_values(text_dir: Path, capsys, flag: str, message: str):
    err = fit_error(capsys, f"--data.data_dir={text_dir}", *flag.split())
    assert message in err and err.count("\n") == 0


def test_unknown_vocab_is_a_usage_error(capsys):
    err = fit_error(capsys, "--data.vocab=word", code=2)
    assert "data.vocab" in err and "Got value: word" in err


def test_unknown_yaml_key_is_a_usage_error(capsys):
    Path("bad.yaml").write_text("model:\n  width: 12\n")
    assert "width" in fit_error(capsys, "--config=bad.yaml", code=2)


def test_empty_file_is_skipped_with_a_note(text_dir: Path, capsys, caplog):
    (text_dir / "empty.txt").write_text("")
    with caplog.at_level("WARNING"):
        main(["fit", *TINY, f"--data.data_dir={text_dir}"])
    assert "Skipping" in caplog.text and "empty.txt" in caplog.text


def test_non_utf8_file_is_read_with_replacement_and_named(text_dir: Path, caplog):
    (text_dir / "latin1.txt").write_bytes("Café crème, à la française.\n".encode("latin-1") * 50)
    with caplog.at_level("WARNING"):
        main(["fit", *TINY, f"--data.data_dir={text_dir}"])
    assert "latin1.txt is not valid UTF-8" in caplog.text


def test_binary_file_is_refused(text_dir: Path, capsys):
    (text_dir / "image.txt").write_bytes(bytes(range(256)) * 20)
    assert "image.txt looks binary" in fit_error(capsys, f"--data.data_dir={text_dir}")


def test_nan_loss_stops_and_keeps_the_earlier_checkpoint(text_dir: Path, capsys):
    main(["fit", *TINY, f"--data.data_dir={text_dir}"])
    before = Path("checkpoints/model.ckpt").read_bytes()
    err = fit_error(capsys, f"--data.data_dir={text_dir}", "--model.lr=1e30", "--trainer.max_steps=30", "--trainer.log_every_n_steps=1")
    assert "The training loss became" in err and "by step" in err and "lower model.lr" in err
    assert Path("checkpoints/model.ckpt").read_bytes() == before


def test_debug_shows_the_traceback(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        main(["fit", f"--data.data_dir={tmp_path / 'missing'}", "--debug"])


def test_kill_during_a_checkpoint_save_keeps_the_previous_one(text_dir: Path, tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [*TINY, f"--data.data_dir={text_dir}", "--trainer.max_steps=20", "--trainer.val_check_interval=5"]
    cmd = [sys.executable, "-m", "lightning_app", "fit", *args]
    killed = subprocess.run([*cmd, "--trainer.callbacks+=tests.probes.KillDuringSave", "--trainer.callbacks.step=10"],
                            cwd=tmp_path, env=env, capture_output=True, text=True)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    for name in ("model.ckpt", "last.ckpt"):
        checkpoint = torch.load(tmp_path / "checkpoints" / name, weights_only=True)
        assert checkpoint["global_step"] == 5  # the save at step 10 died half-way; step 5's is whole


def test_corpus_too_short_says_how_many_tokens(tmp_path: Path, capsys):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "t.txt").write_text("A few words only.")
    err = fit_error(capsys, f"--data.data_dir={tmp_path / 'tiny'}")
    assert "The corpus has 17 tokens" in err and "context_len + 1 = 33" in err
    assert not Path("checkpoints").exists()

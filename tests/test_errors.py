"""Wrong input ends in one clear line and exit status 1 (or jsonargparse's usage error, status 2); nothing on disk is lost."""

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_app.cli import main
from lightning_app.datamodule import TextDataModule
from lightning_app.errors import UsageError
from lightning_app.language_model import LanguageModel

from .conftest import subprocess_env

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
    ],
)
def test_bad_values(text_dir: Path, capsys, flag: str, message: str):
    err = fit_error(capsys, f"--data.data_dir={text_dir}", *flag.split())
    assert message in err and err.count("\n") == 0


def test_a_seed_out_of_range_is_named(capsys):
    assert "seed_everything must be between 0 and 2**32 - 1" in fit_error(capsys, "--seed_everything=-1")


def test_accumulating_zero_batches_is_refused(text_dir: Path, capsys):
    err = fit_error(capsys, f"--data.data_dir={text_dir}", "--trainer.accumulate_grad_batches=0")
    assert "trainer.accumulate_grad_batches must be 1 or more" in err and err.count("\n") == 0


def test_a_gpu_config_on_a_machine_without_one_says_how_to_run_on_the_cpu(text_dir: Path, capsys, monkeypatch):
    from lightning.pytorch.trainer.connectors import accelerator_connector

    for accelerator in (accelerator_connector.CUDAAccelerator, accelerator_connector.MPSAccelerator):
        monkeypatch.setattr(accelerator, "is_available", staticmethod(lambda: False))
    err = fit_error(capsys, f"--data.data_dir={text_dir}", "--trainer.accelerator=gpu")
    assert "PyTorch finds no GPU here: add --trainer.accelerator cpu" in err and err.count("\n") == 0


@pytest.mark.parametrize(
    "flag",
    [
        "--model.warmup_steps=-1", "--model.weight_decay=-0.1", "--model.beta2=1.5", "--model.lr=0", "--model.min_lr=-1",
        "--model.dim=0", "--model.depth=-1", "--data.context_len=0", "--data.batch_size=0", "--data.stride=0",
        "--data.val_fraction=1.5", "--data.num_workers=-1",
    ],
)  # fmt: skip
def test_out_of_range_values_are_refused_when_parsed(capsys, flag: str):
    err = fit_error(capsys, flag, code=2)
    key = flag.removeprefix("--").split("=")[0]
    assert f'Parser key "{key}"' in err and "does not conform to restriction" in err and err.count("\n") == 0


def test_unknown_vocab_is_a_usage_error(capsys):
    err = fit_error(capsys, "--data.vocab=word", code=2)
    assert "data.vocab" in err and "Got value: word" in err and err.count("\n") == 0


def test_unknown_yaml_key_is_a_usage_error(capsys):
    Path("bad.yaml").write_text("model:\n  width: 12\n")
    assert "width" in fit_error(capsys, "--config=bad.yaml", code=2)


def test_yaml_syntax_error_names_the_file(capsys):
    Path("broken.yaml").write_text("model:\n  dim: [32\n")
    err = fit_error(capsys, "--config", "broken.yaml", code=2)
    assert err.startswith("error: broken.yaml is not valid YAML:") and "line 3" in err and err.count("\n") == 0


def test_empty_file_is_skipped_with_a_note(text_dir: Path, capsys, caplog):
    (text_dir / "empty.txt").write_text("")
    with caplog.at_level("WARNING"):
        main(["fit", *TINY, f"--data.data_dir={text_dir}"])
    assert "Skipping" in caplog.text and "empty.txt" in caplog.text


def test_non_utf8_file_is_read_with_replacement_and_named_once_per_run(text_dir: Path, caplog):
    (text_dir / "latin1.txt").write_bytes("Café crème, à la française.\n".encode("latin-1") * 50)
    for run in ("tokenizes", "reads the cache"):
        caplog.clear()
        with caplog.at_level("WARNING"):
            main(["fit", *TINY, f"--data.data_dir={text_dir}", "--data.vocab=char"])
        assert caplog.text.count("latin1.txt is not valid UTF-8") == 1, run


def test_binary_file_is_refused(text_dir: Path, capsys):
    (text_dir / "image.txt").write_bytes(bytes(range(256)) * 20)
    assert "image.txt looks binary" in fit_error(capsys, f"--data.data_dir={text_dir}")


def test_nan_loss_stops_and_keeps_the_earlier_checkpoint(text_dir: Path, capsys):
    main(["fit", *TINY, f"--data.data_dir={text_dir}"])
    before = Path("checkpoints/model.ckpt").read_bytes()
    err = fit_error(capsys, f"--data.data_dir={text_dir}", "--model.lr=1e30", "--trainer.max_steps=30", "--trainer.log_every_n_steps=1")
    assert "The training loss became" in err and "by step" in err and "lower model.lr" in err
    assert Path("checkpoints/model.ckpt").read_bytes() == before


def test_debug_shows_the_traceback_and_its_cause(tmp_path: Path):
    with pytest.raises(UsageError):
        main(["fit", f"--data.data_dir={tmp_path / 'missing'}", "--debug"])
    Path("notes.ckpt").write_text("not a checkpoint")
    with pytest.raises(UsageError, match="not a readable checkpoint") as info:
        main(["validate", "--ckpt_path=notes.ckpt", "--debug"])
    assert info.value.__cause__ is not None  # what torch said about the file


def test_a_bug_keeps_its_traceback(text_dir: Path, monkeypatch):
    def broken(self, stage: str) -> None:
        int("a bug of ours, not a mistake of the user")

    monkeypatch.setattr(TextDataModule, "setup", broken)
    with pytest.raises(ValueError, match="invalid literal"):  # not a SystemExit with a one-line message
        main(["fit", *TINY, f"--data.data_dir={text_dir}"])


def test_kill_during_a_checkpoint_save_keeps_the_previous_one(text_dir: Path, tmp_path: Path):
    env = subprocess_env()
    args = [*TINY, f"--data.data_dir={text_dir}", "--trainer.max_steps=20", "--trainer.val_check_interval=5"]
    cmd = [sys.executable, "-m", "lightning_app", "fit", *args]
    killed = subprocess.run([*cmd, "--trainer.callbacks+=tests.probes.KillDuringSave", "--trainer.callbacks.step=10"],
                            cwd=tmp_path, env=env, capture_output=True, text=True)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    for name in ("model.ckpt", "last.ckpt"):
        checkpoint = torch.load(tmp_path / "checkpoints" / "version_0" / name, weights_only=True)
        assert checkpoint["global_step"] == 5  # the save at step 10 died half-way; step 5's is whole
    assert list((tmp_path / "checkpoints" / "version_0").glob(".model.ckpt.*.part"))  # the half-written file, beside it


def test_corpus_too_short_says_how_many_tokens(tmp_path: Path, capsys):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "t.txt").write_text("A few words only.")
    err = fit_error(capsys, f"--data.data_dir={tmp_path / 'tiny'}")
    assert "The corpus has 17 tokens" in err and "context_len + 1 = 33" in err
    assert not Path("checkpoints").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny trained checkpoint, loaded: tests write altered copies of it."""
    folder = tmp_path_factory.mktemp("trained")
    (folder / "corpus").mkdir()
    (folder / "corpus" / "a.txt").write_text("It was the best of times, it was the worst of times. " * 60)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        main(["fit", *TINY, "--data.data_dir=corpus", "--trainer.max_steps=1"])
    finally:
        os.chdir(cwd)
    return torch.load(folder / "checkpoints" / "version_0" / "last.ckpt", weights_only=True)


def checkpoint_error(capsys, trained: dict, command: str, change, *args: str) -> str:
    checkpoint = dict(trained)
    change(checkpoint)
    torch.save(checkpoint, "altered.ckpt")
    with pytest.raises(SystemExit) as exit_:
        main([command, "--ckpt_path=altered.ckpt", *args])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 1 and err.startswith("error: ") and err.count("\n") == 0 and "Traceback" not in err
    return err


@pytest.mark.parametrize("command", ["fit", "validate"])
def test_checkpoint_with_an_unknown_setting_is_named(capsys, trained: dict, command: str):
    def add(checkpoint: dict) -> None:
        checkpoint["hyper_parameters"] = {**checkpoint["hyper_parameters"], "frobnicate": 3}

    assert "does not know (model.frobnicate)" in checkpoint_error(capsys, trained, command, add)


def test_checkpoint_without_its_tokenizer_says_so(capsys, trained: dict):
    err = checkpoint_error(capsys, trained, "validate", lambda checkpoint: checkpoint.pop("tokenizer"))
    assert "holds no tokenizer" in err and "expected" not in err


def test_checkpoint_of_another_format_says_which(capsys, trained: dict):
    err = checkpoint_error(capsys, trained, "validate", lambda checkpoint: checkpoint.update(ctt_format=7))
    assert "has checkpoint format 7, and this version reads 1" in err


def test_validate_refuses_sizes_the_weights_cannot_take(capsys, trained: dict):
    err = checkpoint_error(capsys, trained, "validate", lambda checkpoint: None, "--model.dim=64", "--data.vocab=char")
    assert "model.dim 64 (its weights have 32); data.vocab 'char' (its weights have 'byte') cannot apply" in err


@pytest.mark.parametrize("command", ["fit", "validate", "test"])
def test_checkpoint_paths_that_are_not_checkpoints(capsys, command: str):
    Path("runs").mkdir()
    Path("notes.ckpt").write_text("a text file, not a checkpoint")
    for path, message in (("runs", "is a folder"), ("missing.ckpt", "does not exist"), ("notes.ckpt", "is not a readable checkpoint")):
        with pytest.raises(SystemExit) as exit_:
            main([command, f"--ckpt_path={path}"])
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 1 and f"{path} {message}" in err and err.count("\n") == 0, err


@pytest.mark.parametrize(
    ("flag", "key"),
    [
        ("--data.cache_dir=taken", "data.cache_dir taken"),
        ("--checkpoint.dirpath=taken/sub", "checkpoint.dirpath taken"),
        ("--checkpoint.dirpath=/proc/ctt", "checkpoint.dirpath /proc"),
        ("--trainer.logger.save_dir=taken", "trainer.logger.save_dir taken"),
    ],
)
def test_output_folders_that_cannot_be_written_fail_before_any_work(text_dir: Path, capsys, caplog, flag: str, key: str):
    Path("taken").write_text("a file where a folder should go")
    with caplog.at_level("INFO"):
        err = fit_error(capsys, f"--data.data_dir={text_dir}", flag)
    assert err.startswith(f"error: {key}") and "cannot be used" in err and err.count("\n") == 0
    assert "Tokenizing" not in caplog.text and not Path(".ctt_cache").exists() and not Path("lightning_logs").exists()


@pytest.fixture
def deny(monkeypatch: pytest.MonkeyPatch):
    """Make paths unreadable (or read-only) for this process the way file modes do for other users.

    The tests may run as root, which file modes do not stop, so the OS error is raised here instead.
    """
    denied: dict[Path, bool] = {}  # path -> whether reading is denied too
    real_open = Path.open

    def guarded_open(self: Path, mode: str = "r", *args, **kwargs):
        path = self.absolute()
        for target, reads in denied.items():
            if (path == target or target in path.parents) and (reads or any(c in mode for c in "wax+")):
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded_open)
    return lambda path, reads=False: denied.__setitem__(Path(path).absolute(), reads)


def test_unreadable_text_file_is_named(text_dir: Path, capsys, deny):
    deny(text_dir / "a.txt", reads=True)
    err = fit_error(capsys, f"--data.data_dir={text_dir}")
    assert f"The text file {text_dir / 'a.txt'} cannot be used: permission denied" in err


@pytest.mark.parametrize(("folder", "flag"), [(".ctt_cache", "data.cache_dir"), ("checkpoints", "checkpoint.dirpath")])
def test_read_only_output_folder_is_named(text_dir: Path, capsys, deny, folder: str, flag: str):
    Path(folder).mkdir()
    deny(folder)
    err = fit_error(capsys, f"--data.data_dir={text_dir}")
    assert err.startswith(f"error: {flag} {folder} cannot be used: permission denied")


def test_loading_a_checkpoint_with_an_unknown_setting_names_it(trained: dict):
    torch.save({**trained, "hyper_parameters": {**trained["hyper_parameters"], "frobnicate": 3}}, "altered.ckpt")
    with pytest.raises(UsageError, match=r"altered.ckpt has model settings this version of ctt does not know \(frobnicate\)"):
        LanguageModel.from_checkpoint("altered.ckpt")

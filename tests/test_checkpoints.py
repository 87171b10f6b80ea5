import shutil
from pathlib import Path

import torch

from lightning_app.cli import main

TINY = [
    "--model.dim=32", "--model.depth=1", "--model.heads=2", "--data.context_len=32", "--data.batch_size=8",
    "--trainer.limit_val_batches=2", "--sample.length=0", "--trainer.check_val_every_n_epoch=null",
]  # fmt: skip


def test_last_follows_every_validation_and_model_keeps_the_best(text_dir: Path):
    # A learning rate too small to change anything: the first validation stays the best one.
    main(["fit", *TINY, f"--data.data_dir={text_dir}", "--trainer.max_steps=12", "--trainer.val_check_interval=4", "--model.lr=1e-30"])
    best = torch.load("checkpoints/model.ckpt", weights_only=True)
    last = torch.load("checkpoints/last.ckpt", weights_only=True)
    assert (best["global_step"], last["global_step"]) == (4, 12)  # last.ckpt was linked to the best at step 4, then saved anew


def test_the_help_starts_with_data_model_sample_and_checkpoint_options(capsys):
    try:
        main(["fit", "--help"])
    except SystemExit:
        pass
    text = capsys.readouterr().out
    order = [text.index(f"--{group}.") for group in ("data", "model", "sample", "checkpoint", "horizon", "trainer")]
    assert order == sorted(order)
    assert text.startswith("usage: ctt fit [--config FILE]") and len(text.splitlines()[0]) < 80
    assert "after every epoch" not in text  # the checkpoint group's title says what it does


def test_the_callback_state_keeps_model_checkpoints_name(text_dir: Path):
    main(["fit", *TINY, f"--data.data_dir={text_dir}", "--trainer.max_steps=4"])
    states = torch.load("checkpoints/last.ckpt", weights_only=True)["callbacks"]
    assert any(key.startswith("ModelCheckpoint{") for key in states) and not any(key.startswith("Checkpoints") for key in states)


def test_at_a_new_best_last_is_a_second_name_of_the_best_file(text_dir: Path):
    main(["fit", *TINY, f"--data.data_dir={text_dir}", "--trainer.max_steps=8", "--trainer.val_check_interval=4", "--model.lr=3e-3"])
    run = Path("checkpoints/last.ckpt").resolve().parent
    assert torch.load(run / "model.ckpt", weights_only=True)["global_step"] == 8  # the last validation was the best
    assert (run / "last.ckpt").stat().st_ino == (run / "model.ckpt").stat().st_ino


def test_a_run_resumed_after_a_linked_save_keeps_writing_last(text_dir: Path):
    # Step 4 is the only best (a rate too small to learn): last.ckpt there is the best file, whose saved state must
    # already name last.ckpt as the run's last checkpoint, or the resumed run writes last-v1.ckpt from then on.
    args = [*TINY, f"--data.data_dir={text_dir}", "--trainer.val_check_interval=4", "--model.lr=1e-30"]
    main(["fit", *args, "--trainer.max_steps=4"])
    run = Path("checkpoints/last.ckpt").resolve().parent
    main(["fit", *args, "--trainer.max_steps=12", "--ckpt_path", str(run / "last.ckpt")])
    assert sorted(p.name for p in run.glob("*.ckpt")) == ["last.ckpt", "model.ckpt"]
    assert torch.load(run / "last.ckpt", weights_only=True)["global_step"] == 12


def test_a_run_folder_moved_elsewhere_resumes_in_place(text_dir: Path, tmp_path: Path, monkeypatch):
    # A requeued job that finds its project on another path: the run's own files are used where they now are.
    args = [*TINY, f"--data.data_dir={text_dir}", "--trainer.val_check_interval=4"]
    (tmp_path / "before").mkdir()
    monkeypatch.chdir(tmp_path / "before")
    main(["fit", *args, "--trainer.max_steps=8"])
    shutil.copytree(tmp_path / "before", tmp_path / "after", symlinks=True)
    monkeypatch.chdir(tmp_path / "after")
    main(["fit", *args, "--trainer.max_steps=12", "--ckpt_path=last"])
    run = tmp_path / "after/checkpoints/version_0"
    assert sorted(p.name for p in run.glob("*.ckpt")) == ["last.ckpt", "model.ckpt"]
    assert torch.load(run / "last.ckpt", weights_only=True)["global_step"] == 12
    assert Path("checkpoints/model.ckpt").resolve().parent == run  # not the folder it was copied from

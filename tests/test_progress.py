import csv
import re
from pathlib import Path

import pytest

from lightning_app.cli import main
from lightning_app.progress import RunProgress

TINY = [
    "--model.dim=32", "--model.depth=1", "--model.heads=2", "--data.context_len=32", "--data.batch_size=8",
    "--trainer.limit_val_batches=2", "--sample.length=0", "--trainer.check_val_every_n_epoch=null",
]  # fmt: skip


def test_redirected_output_gets_a_line_every_twentieth_of_the_run_and_validation_lines(text_dir: Path, capsys):
    main(["fit", *TINY, f"--data.data_dir={text_dir}", "--trainer.max_steps=40", "--trainer.val_check_interval=20", "--progress.lines=4"])
    out = capsys.readouterr().out
    progress = re.findall(r"^step (\d+)/40 \(\d+%\) \| .*train_loss [\d.]+, train_bpc [\d.]+", out, re.M)
    assert [int(step) for step in progress] == [11, 21, 31, 40]  # every 10 steps once values exist, and the last
    assert re.search(r"^step 1/40 \(2%\) \| \d+ s, about", out, re.M)
    assert re.findall(r"^validation at step (\d+): val_bpc [\d.]+ \(best [\d.]+\)$", out, re.M) == ["20", "40"]
    assert "v_num" not in out and "Total Flops" not in out


def test_a_short_run_logs_training_values_from_its_first_steps(text_dir: Path):
    main(["fit", *TINY, f"--data.data_dir={text_dir}", "--trainer.max_steps=40", "--trainer.val_check_interval=20"])
    with open("lightning_logs/version_0/metrics.csv") as f:
        train_steps = [int(row["step"]) for row in csv.DictReader(f) if row["train_bpc"]]
    assert len(train_steps) >= 20 and train_steps[0] < 5  # Lightning's default (every 50 steps) would log none


def test_logging_can_be_turned_off(text_dir: Path):
    main(["fit", *TINY, f"--data.data_dir={text_dir}", "--trainer.max_steps=6", "--trainer.log_every_n_steps=0"])
    with open("lightning_logs/version_0/metrics.csv") as f:
        assert "train_bpc" not in (csv.DictReader(f).fieldnames or [])


def test_it_can_be_switched_off(text_dir: Path, capsys):
    main(["fit", *TINY, f"--data.data_dir={text_dir}", "--trainer.max_steps=6", "--progress.enabled=false"])
    assert "step 6/6" not in capsys.readouterr().out


@pytest.mark.parametrize("kwargs", [{"refresh_rate": 0}, {"lines": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="progress.refresh_rate and progress.lines"):
        RunProgress(**kwargs)


def test_on_a_terminal_it_is_one_bar_over_the_whole_run(text_dir: Path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    main(["fit", *TINY, f"--data.data_dir={text_dir}", "--trainer.max_steps=40", "--trainer.val_check_interval=20"])
    out = capsys.readouterr().out
    assert re.search(r"40/40 \[.*train_loss [\d.]+, train_bpc [\d.]+", out)  # a bar counting steps of the whole run
    assert "validation at step 20: val_bpc" in out and not re.search(r"^step \d+/40", out, re.M)

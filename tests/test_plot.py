import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from lightning_app.errors import UsageError
from lightning_app.plot import PlotMetrics, plot_command, plot_run

# What CSVLogger writes with LearningRateMonitor: train and val rows are separate lines with empty cells.
METRICS_CSV = """\
epoch,lr-AdamW,step,train_bpc,train_loss,val_bpc,val_loss
0,0.0001,0,,,,
0,,0,7.9,5.5,,
0,0.0002,1,,,,
0,,1,7.2,5.0,,
0,,1,,,7.4,5.1
1,0.0003,2,,,,
1,,2,6.1,4.2,,
1,,3,5.5,3.8,,
1,,3,,,6.0,4.1
"""


def assert_png(path: Path) -> None:
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and path.stat().st_size > 5_000


def test_plot_run_draws_png_next_to_metrics(tmp_path: Path, capsys):
    (tmp_path / "metrics.csv").write_text(METRICS_CSV)
    png = plot_run(tmp_path)
    assert png == tmp_path / "bpc.png"
    assert_png(png)
    png.unlink()
    plot_command(str(tmp_path))
    assert capsys.readouterr().out.strip() == str(png) and png.is_file()


def test_plot_run_without_lr_column(tmp_path: Path):
    (tmp_path / "metrics.csv").write_text("epoch,step,val_bpc,val_loss\n0,4,8.5,5.4\n0,9,8.4,5.3\n")
    assert_png(plot_run(tmp_path))


def test_missing_metrics_names_the_path_and_the_folder_to_pass(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="holds metrics.csv") as err:
        plot_run(tmp_path)
    assert str(tmp_path / "metrics.csv") in str(err.value) and "lightning_logs/version_0" in str(err.value)


def test_a_plot_that_cannot_be_written_is_one_clear_error(tmp_path: Path):
    (tmp_path / "metrics.csv").write_text(METRICS_CSV)
    (tmp_path / "bpc.png").mkdir()  # in the way of the file
    with pytest.raises(UsageError, match=r"The plot .*bpc.png cannot be used: .*; make the run's folder writable"):
        plot_run(tmp_path)


def test_csv_without_bpc_is_a_value_error(tmp_path: Path):
    (tmp_path / "metrics.csv").write_text("epoch,lr-AdamW,step,train_loss\n0,0.001,0,\n0,,0,5.5\n")
    with pytest.raises(ValueError, match="no train_bpc or val_bpc values"):
        plot_run(tmp_path)


def hide_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every ``import matplotlib...`` fail, also for submodules an earlier test imported."""
    for name in [name for name in sys.modules if name.split(".")[0] == "matplotlib"] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)


def test_missing_matplotlib_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "metrics.csv").write_text(METRICS_CSV)
    hide_matplotlib(monkeypatch)
    with pytest.raises(RuntimeError, match=r"pip install -e '\.\[plot\]' in the repository folder"):
        plot_run(tmp_path)


def test_callback_without_matplotlib_logs_and_carries_on(tmp_path: Path, monkeypatch, caplog, capsys):
    (tmp_path / "metrics.csv").write_text(METRICS_CSV)
    hide_matplotlib(monkeypatch)
    saved = []
    logger = SimpleNamespace(log_dir=str(tmp_path), save=lambda: saved.append(True))
    trainer = SimpleNamespace(is_global_zero=True, logger=logger)
    with caplog.at_level(logging.INFO, logger="lightning_app.plot"):
        PlotMetrics().on_fit_end(trainer, None)
    assert saved and "Plotting needs matplotlib" in caplog.text and "BPC plot" not in capsys.readouterr().out


class TinyModel(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
        self.log("train_bpc", loss)
        return loss

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("val_bpc", torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1]))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.randn(8, 4), torch.randn(8, 1)), batch_size=2)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.randn(4, 4), torch.randn(4, 1)), batch_size=2)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_plot_metrics_draws_after_a_real_fit(tmp_path: Path, capsys):
    logger = CSVLogger(tmp_path)
    trainer = Trainer(
        max_steps=4, logger=logger, callbacks=[PlotMetrics()], enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False, log_every_n_steps=1, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(TinyModel())
    png = Path(logger.log_dir) / "bpc.png"
    assert_png(png)
    assert f"BPC plot: {png}" in capsys.readouterr().out


def test_short_runs_get_markers_long_ones_plain_lines(tmp_path: Path, monkeypatch):
    from matplotlib.axes import Axes

    drawn = {}
    real = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda ax, *args, **kw: drawn.setdefault(kw.get("label"), kw.get("marker")) and None or real(ax, *args, **kw))
    rows = "".join(f"0,,{step},{8 - step / 100},5.0,,\n" for step in range(200)) + "0,,199,,,6.0,4.1\n"
    (tmp_path / "metrics.csv").write_text("epoch,lr-AdamW,step,train_bpc,train_loss,val_bpc,val_loss\n" + rows)
    plot_run(tmp_path)
    assert drawn["train BPC"] is None and drawn["validation BPC"] == "o"  # 200 training points: a line is enough
    (tmp_path / "metrics.csv").write_text(METRICS_CSV)
    drawn.clear()
    plot_run(tmp_path)
    assert drawn["train BPC"] == "o"  # four points: each one visible


def test_ctt_plot_without_a_run_folder_is_one_line(capsys):
    from lightning_app.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["plot"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err == "error: the following arguments are required: run_dir (see --help)"

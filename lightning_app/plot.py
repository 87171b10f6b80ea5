"""Training curves: train and validation BPC (and the learning rate) against step, drawn from a run's metrics.csv."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer

from .errors import UsageError, path_error

log = logging.getLogger(__name__)

MATPLOTLIB_MISSING = (
    "Plotting needs matplotlib: pip install -e '.[plot]' in the repository folder (make train installs it)."
)


def _read_columns(csv_path: Path) -> dict[str, tuple[list[int], list[float]]]:
    """(steps, values) of the BPC columns and the first learning-rate column.

    CSVLogger writes sparse rows (a train row and a val row at the same step fill different cells),
    so each column keeps only the rows where it has a value.
    """
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        lr = next((name for name in reader.fieldnames or [] if name.startswith("lr")), None)
        columns = {name: ([], []) for name in ("train_bpc", "val_bpc", lr) if name}
        for row in reader:
            for name, (steps, values) in columns.items():
                if row.get(name):
                    steps.append(int(row["step"]))
                    values.append(float(row[name]))
    return columns


def plot_run(run_dir: str | Path) -> Path:
    """Draw ``run_dir/bpc.png`` from ``run_dir/metrics.csv`` and return its path."""
    run_dir = Path(run_dir)
    csv_path = run_dir / "metrics.csv"
    if not csv_path.is_file():
        raise FileNotFoundError(
            f"{csv_path} does not exist: pass the folder that holds metrics.csv (e.g. lightning_logs/version_0)."
        )
    columns = _read_columns(csv_path)
    if not any(columns[name][0] for name in ("train_bpc", "val_bpc")):
        raise ValueError(f"{csv_path} has no train_bpc or val_bpc values to plot.")
    try:  # Agg without pyplot: no global state or GUI backend, safe inside a training process
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise RuntimeError(MATPLOTLIB_MISSING) from err

    fig = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, label in (("train_bpc", "train BPC"), ("val_bpc", "validation BPC")):
        steps, values = columns[name]
        if steps:
            # Lines join the points; markers show each one while there are few (a short run, or validation).
            ax.plot(steps, values, label=label, marker="o" if len(steps) <= 60 else None, markersize=3)
    ax.set(title=run_dir.resolve().name, xlabel="step", ylabel="bits per character")
    ax.grid(alpha=0.3)
    handles = list(ax.get_lines())
    lr = next((name for name in columns if name.startswith("lr")), None)
    if lr and columns[lr][0]:
        lr_ax = ax.twinx()
        handles += lr_ax.plot(*columns[lr], color="tab:gray", linestyle="--", label=lr)
        lr_ax.set_ylabel("learning rate")
    ax.legend(handles=handles, loc="upper right")
    png = run_dir / "bpc.png"
    try:
        fig.savefig(png, dpi=100)
    except OSError as err:
        raise path_error(err, "The plot", png, "make the run's folder writable, or free space") from err
    return png


class PlotMetrics(Callback):
    """Draws the BPC plot into the logger's folder after fit, so every run ends with its curves."""

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        log_dir = getattr(trainer.logger, "log_dir", None)
        if not trainer.is_global_zero or log_dir is None or not (Path(log_dir) / "metrics.csv").is_file():
            return
        trainer.logger.save()  # flush rows still buffered in the CSV writer
        try:
            print(f"BPC plot: {plot_run(log_dir)}", flush=True)
        except (RuntimeError, ValueError, UsageError) as err:  # a missing plot is never worth failing a finished run
            log.info("No BPC plot: %s", err)


def plot_command(run_dir: str) -> None:
    """Redraw the BPC plot of a run from its metrics.csv.

    Args:
        run_dir: A run's log folder, the one holding metrics.csv (e.g. lightning_logs/version_0).
    """
    print(plot_run(run_dir), flush=True)

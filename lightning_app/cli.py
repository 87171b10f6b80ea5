"""The command line: LightningCLI with the datamodule, the model, the best-checkpoint and sample callbacks."""

from __future__ import annotations

import logging
import os
import sys
import warnings

import jsonargparse
import torch

from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from .callbacks import SampleText
from .console import USAGE
from .datamodule import TextDataModule
from .generate import generate_command
from .horizon import Horizon
from .language_model import LanguageModel
from .plot import PlotMetrics, plot_command
from .progress import RunProgress
from .save_config import SaveConfigWithoutSecrets
from .throughput import Throughput

TRAINER_DEFAULTS = {
    "max_epochs": 2,
    "gradient_clip_val": 1.0,
    "use_distributed_sampler": False,  # the datamodule shards windows across ranks itself
    "enable_progress_bar": False,  # progress.* shows the whole run instead of one epoch's batches
    "enable_model_summary": False,  # its FLOPs column is always zero here; the model prints its size in one line
    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "."}},
}


class TrainerCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.dirpath": "checkpoints",
                "checkpoint.filename": "model",
                "checkpoint.monitor": "val_bpc",
                "checkpoint.mode": "min",
                "checkpoint.save_last": True,
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_lightning_class_args(SampleText, "sample")
        parser.add_lightning_class_args(Horizon, "horizon")
        parser.add_lightning_class_args(RunProgress, "progress")
        parser.add_lightning_class_args(Throughput, "throughput")
        parser.add_lightning_class_args(PlotMetrics, "plot")
        parser.link_arguments("data.context_len", "model.context_len")


def _quiet_console() -> None:
    """Hide warnings and adverts that a user of this CLI cannot act on."""
    for pattern in (
        r".*does not have many workers.*",  # we gather whole batches in the main process on purpose
        r".*LightningCLI's args parameter is intended to run from within Python.*",
        r".*Checkpoint directory .* exists and is not empty.*",
        r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # inside Lightning itself
    ):
        warnings.filterwarnings("ignore", message=pattern)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: not any(word in record.getMessage() for word in ("litlogger", "LitServe", "TPU available"))
    )




def _run(args: list[str]) -> None:
    if args in ([], ["-h"], ["--help"]):
        print(USAGE, end="")
        return
    if args[:1] == ["generate"]:
        generate_command(args[1:])
        return
    if args[:1] == ["plot"]:
        jsonargparse.CLI(plot_command, args=args[1:], prog="ctt plot")
        return
    TrainerCLI(
        LanguageModel,
        TextDataModule,
        trainer_defaults=TRAINER_DEFAULTS,
        seed_everything_default=1337,
        # Each logged run saves its config in its own version_N folder; without a logger it lands in the
        # working folder, where the next run may replace it.
        save_config_kwargs={"overwrite": True},
        save_config_callback=SaveConfigWithoutSecrets,  # config.yaml shows URL passwords as ***
        args=args,
        auto_configure_optimizers=False,
    )


def main(args: list[str] | None = None) -> None:
    """`ctt fit|validate|test ...` (LightningCLI), `ctt generate ...` and `ctt plot RUN_DIR`.

    A user mistake ends in one line on standard error and exit status 1; `--debug` (or CTT_DEBUG=1)
    shows the traceback instead.
    """
    _quiet_console()
    torch.set_float32_matmul_precision("high")  # TF32 matmuls for float32 runs on GPUs that have them
    # Logs go to standard error, so that `ctt generate` writes only the text to standard output.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = sys.argv[1:] if args is None else list(args)
    debug = "--debug" in args or bool(os.environ.get("CTT_DEBUG"))
    try:
        _run([arg for arg in args if arg != "--debug"])
    except (ValueError, FileNotFoundError, RuntimeError, FloatingPointError, MisconfigurationException) as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)

"""The command line: LightningCLI with the datamodule, the model, the best-checkpoint and sample callbacks."""

from __future__ import annotations

import logging
import os
import sys
import warnings

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from .callbacks import SampleText
from .datamodule import TextDataModule
from .language_model import LanguageModel

TRAINER_DEFAULTS = {
    "max_epochs": 2,
    "gradient_clip_val": 1.0,
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
        lambda record: "litlogger" not in record.getMessage() and "LitServe" not in record.getMessage()
    )


def main(args: list[str] | None = None) -> None:
    _quiet_console()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        TrainerCLI(
            LanguageModel,
            TextDataModule,
            trainer_defaults=TRAINER_DEFAULTS,
            seed_everything_default=1337,
            args=args,
            auto_configure_optimizers=False,
        )
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        if os.environ.get("CTT_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)

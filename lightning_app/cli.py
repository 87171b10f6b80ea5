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
from .language_model import LanguageModel
from .plot import PlotMetrics, plot_command
from .sampling import sample_text
from .throughput import Throughput

TRAINER_DEFAULTS = {
    "max_epochs": 2,
    "gradient_clip_val": 1.0,
    "use_distributed_sampler": False,  # the datamodule shards windows across ranks itself
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
        lambda record: "litlogger" not in record.getMessage() and "LitServe" not in record.getMessage()
    )


def generate(
    ckpt_path: str,
    prompt: str = "The",
    length: int = 200,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    num_samples: int = 1,
    device: str = "cpu",
) -> None:
    """Write text with a trained model: prints the prompt and its continuation to standard output.

    Args:
        ckpt_path: Checkpoint written by `ctt fit` (e.g. checkpoints/model.ckpt); it holds the tokenizer and model sizes.
        prompt: Text to continue (a prompt longer than the context keeps its tail).
        length: Tokens to generate.
        temperature: Softmax temperature (0 is greedy).
        top_k: Keep only the k most likely tokens (0 = off).
        top_p: Keep the smallest set of tokens holding this much probability (1.0 = off).
        seed: Random seed; the same seed gives the same text.
        num_samples: Continuations to write, separated by a blank line.
        device: Torch device to run on (cpu, cuda, cuda:1, ...).
    """
    if length < 0 or temperature < 0 or top_k < 0 or not 0 < top_p <= 1 or num_samples < 1:
        raise ValueError("--length, --temperature and --top_k must be >= 0, --top_p in (0, 1] and --num_samples >= 1.")
    lm = LanguageModel.from_checkpoint(ckpt_path, map_location=device)
    texts = sample_text(lm.model, lm.tokenizer, prompt, length, temperature, top_k, top_p, seed, num_samples)
    print("\n\n".join(texts), flush=True)


def _run(args: list[str]) -> None:
    if args in ([], ["-h"], ["--help"]):
        print(USAGE, end="")
        return
    if args[:1] == ["generate"]:
        jsonargparse.CLI(generate, args=args[1:], as_positional=False, prog="ctt generate")
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

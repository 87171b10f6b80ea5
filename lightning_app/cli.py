"""The command line: LightningCLI with the datamodule, the model, the best-checkpoint and sample callbacks.

Each run writes into folders of its own (lightning_app.runs), a checkpoint is checked against the command
that uses it (lightning_app.checkpoint_settings), and a signal ends a command honestly (lightning_app.stopping).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings
from argparse import ArgumentError
from pathlib import Path
from typing import Any

import jsonargparse
import torch
import yaml
from jsonargparse import Namespace

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from .after_training_sample import SampleText
from .checkpoints import Checkpoints
from .checkpoint_settings import CheckpointInfo, adopt, differences, read_checkpoint
from .console import USAGE
from .datamodule import TextDataModule
from .errors import UsageError, is_user_error
from .generate import generate_command
from .horizon import Horizon
from .language_model import LanguageModel
from .plot import PlotMetrics, plot_command
from .progress import RunProgress
from .runs import LinkNewest, Run, RunFolders, keep_metrics, probe_writable, version_of, versioned_loggers
from .save_config import SaveConfigWithoutSecrets
from .stopping import Interrupted, StopOnSignal, stop_on_signals
from .throughput import Throughput

log = logging.getLogger(__name__)

TRAINER_DEFAULTS = {
    "max_epochs": 2,
    "gradient_clip_val": 1.0,
    "devices": 1,  # one GPU (or the CPU) as the single-file trainer; --trainer.devices N scales out
    "enable_progress_bar": False,  # progress.* shows the whole run instead of one epoch's batches
    "enable_model_summary": False,  # its FLOPs column is always zero here; the model prints its size in one line
    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "."}},
}


SUBCOMMANDS = {
    "fit": "Train a model on a folder of .txt files (or the embedded corpus); every option below, data and model first.",
    "validate": "Score a checkpoint (--ckpt_path) on the validation split, with the settings it was trained with.",
    "test": "The same as validate: the project keeps one held-out split.",
}


def _plain_numbers(config: Namespace) -> None:
    """Turn the constrained numbers of jsonargparse (PositiveInt, ...) into int and float: checkpoints hold plain data."""
    for group in ("model", "data"):
        for key, value in config[group].items():
            if isinstance(value, (int, float)) and type(value) not in (int, float, bool):
                config[group][key] = float(value) if isinstance(value, float) else int(value)


def _expand_home(config: Namespace) -> None:
    """``~`` in a folder option means the home folder, also where no shell expanded it (a YAML file, a quoted flag)."""
    for key in ("data.data_dir", "data.cache_dir", "checkpoint.dirpath", "ckpt_path"):
        if isinstance(config.get(key), str):
            config[key] = os.path.expanduser(config[key])
    for logger in versioned_loggers(config.trainer):
        if isinstance(logger.get("save_dir"), str):
            logger.save_dir = os.path.expanduser(logger.save_dir)


class TrainerCLI(LightningCLI):
    """LightningCLI where each run writes into folders of its own and a checkpoint must suit the command that uses it."""

    def __init__(self, *args: Any, subcommand_names: tuple[str, ...] = tuple(SUBCOMMANDS), **kwargs: Any) -> None:
        self.subcommand_names = subcommand_names
        self.run: Run | None = None
        self.resumed: CheckpointInfo | None = None
        try:
            with stop_on_signals():
                super().__init__(*args, **kwargs)
        finally:
            if self.run is not None:
                self.run.release()

    def subcommands(self) -> dict[str, set[str]]:
        # Only those asked for, and never predict (not in SUBCOMMANDS): a language model has no predict_step;
        # `ctt generate` writes text instead.
        return {name: skip for name, skip in LightningCLI.subcommands().items() if name in self.subcommand_names}

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.subcommand
        seed = self.config[subcommand].get("seed_everything")
        if not isinstance(seed, bool) and isinstance(seed, int) and not 0 <= seed < 2**32:
            raise UsageError(f"seed_everything must be between 0 and 2**32 - 1, got {seed}.")
        # The model and data keys this command sets itself (a flag, or a value other than the default from a
        # config file): validate and test take the others from the checkpoint.
        defaults = parser.parse_args([subcommand])[subcommand]
        flags = {arg.split("=", 1)[0].removeprefix("--") for arg in args if arg.startswith("--")}
        self.given = {
            f"{group}.{key}" for group in ("model", "data") for key, value in self.config[subcommand][group].items()
            if f"{group}.{key}" in flags or defaults[group].get(key) != value
        }  # fmt: skip

    def _parse_ckpt_path(self) -> None:
        """Check --ckpt_path against the command before anything is built.

        Replaces LightningCLI's version, which takes the model settings (only) from the checkpoint over the command's.
        """
        subcommand = self.config.subcommand
        config = self.config[subcommand]
        _plain_numbers(config)
        _expand_home(config)
        self.folders = RunFolders.from_config(config)
        if subcommand == "fit":
            self.resumed = self._checkpoint_to_resume(config)
            config.ckpt_path = None if self.resumed is None else str(self.resumed.path)
            return
        if config.ckpt_path is None:
            raise UsageError(f"ctt {subcommand} scores a trained model: pass --ckpt_path with a .ckpt file written by `ctt fit`, or last.")
        last = self.folders.last_checkpoints()
        if config.ckpt_path == "last" and not last:
            where = self.folders.checkpoint_root or "the runs' log folders (checkpoint.dirpath is null)"
            raise UsageError(f"--ckpt_path last: there is no last.ckpt under {where}; pass a .ckpt file.")
        info = read_checkpoint(last[0] if config.ckpt_path == "last" else Path(config.ckpt_path))
        adopt(info, config, self.given)
        config.ckpt_path = str(info.path)

    def _checkpoint_to_resume(self, config: Namespace) -> CheckpointInfo | None:
        """The checkpoint that fit resumes: the one named, or for `last` the newest last.ckpt of a run with these settings."""
        if config.ckpt_path is None:
            return None
        if config.ckpt_path != "last":
            info = read_checkpoint(Path(config.ckpt_path))
            if changed := differences(info, config):
                raise UsageError(
                    f"{info.path} was trained with other settings: {'; '.join(changed)}; resume with the settings "
                    "it was trained with, or leave out --ckpt_path to start a new run."
                )
            return info
        candidates = self.folders.last_checkpoints()
        if not candidates:
            log.info("--ckpt_path last: there is no checkpoint to resume yet, so training starts from scratch.")
            return None
        newest: tuple[Path, list[str]] | None = None
        busy = []
        for path in candidates:
            info = read_checkpoint(path)
            if changed := differences(info, config):
                newest = newest or (path, changed)
                continue
            run = self.folders.run_of(path)
            if run is not None and rank_zero_only.rank == 0 and self.folders.in_use(run):
                busy.append(str(path))  # another process is training that run right now
                continue
            return info
        if busy:
            raise UsageError(f"--ckpt_path last: every run with these settings is still going ({', '.join(busy)}); wait for one to end.")
        assert newest is not None
        raise UsageError(
            f"--ckpt_path last: no run here was trained with these settings; the newest, {newest[0]}, has "
            f"{'; '.join(newest[1])}. Pass the checkpoint to resume with --ckpt_path, or leave it out to start a new run."
        )

    def before_instantiate_classes(self) -> None:
        """Claim this run's folders (after checking that every output folder can be written) and point the outputs there."""
        subcommand = self.config.subcommand
        config = self.config[subcommand]
        if (accumulate := config.trainer.get("accumulate_grad_batches", 1)) < 1:  # Lightning would divide by it
            raise UsageError(f"trainer.accumulate_grad_batches must be 1 or more (1: a step after every batch), got {accumulate}.")
        callbacks = [StopOnSignal()]
        if subcommand == "fit" and self.folders.checkpoint_root is not None:
            callbacks.append(LinkNewest(self.folders.checkpoint_root))
        self.trainer_defaults = {**self.trainer_defaults, "callbacks": callbacks}
        if rank_zero_only.rank != 0:  # the other processes of a multi-device run take rank 0's folders (Lightning broadcasts them)
            return
        name = self.folders.named
        resumed_run = None if self.resumed is None else self.folders.run_of(self.resumed.path)
        if resumed_run is not None and name not in (None, resumed_run):
            raise UsageError(f"trainer.logger.version {name} is another run than the one --ckpt_path resumes ({resumed_run}).")
        if resumed_run is not None:
            self.run = self.folders.reopen(resumed_run)
        else:
            self.run = self.folders.create(name, checkpoints=subcommand == "fit")
        # removed with the run's folders if the run writes nothing there
        self.run.created[:0] = probe_writable(Path(config.data.cache_dir), "data.cache_dir")
        if resumed_run is not None:
            log.info("Resuming run %s at step %d from %s.", self.run.checkpoint_dir, self.resumed.global_step, self.resumed.path)
        elif self.resumed is not None:
            log.info("Resuming %s at step %d as a new run, %s.", self.resumed.path, self.resumed.global_step, self.run.checkpoint_dir)
        # Point the checkpoints and logs at the run's folders, for the classes built next; the config saved with
        # the run keeps the command's own values (restored in after_instantiate_classes).
        run_values = [(logger, "version", version_of(self.run.name)) for logger in versioned_loggers(config.trainer)]
        if subcommand == "fit":
            run_values.append((config.checkpoint, "dirpath", str(self.run.checkpoint_dir)))
            if not self.folders.log_roots:  # config.yaml goes to the trainer's root folder when there is no logger
                run_values.append((config.trainer, "default_root_dir", str(self.run.checkpoint_dir)))
        self._command_values = [(namespace, key, namespace.get(key)) for namespace, key, _ in run_values]
        for namespace, key, value in run_values:
            namespace[key] = value

    def after_instantiate_classes(self) -> None:
        for namespace, key, value in getattr(self, "_command_values", []):
            namespace[key] = value

    def before_fit(self) -> None:
        if self.resumed is not None and self.run is not None and self.run.name == self.folders.run_of(self.resumed.path):
            keep_metrics(self.trainer, self.resumed.global_step)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # After data and model (add_core_arguments_to_parser): the options users change most, Lightning's trainer last.
        parser.add_lightning_class_args(SampleText, "sample")
        parser.add_lightning_class_args(Checkpoints, "checkpoint")
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
        parser.add_lightning_class_args(Horizon, "horizon")
        parser.add_lightning_class_args(RunProgress, "progress")
        parser.add_lightning_class_args(Throughput, "throughput")
        parser.add_lightning_class_args(PlotMetrics, "plot")
        parser.link_arguments("data.context_len", "model.context_len")
        parser.add_lightning_class_args(self.trainer_class, "trainer")
        parser.set_defaults({f"trainer.{key}": value for key, value in self.trainer_defaults.items() if key != "callbacks"})

    def add_core_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Data and model first in --help; the trainer's options come after ours (add_arguments_to_parser).
        parser.add_lightning_class_args(self._datamodule_class, "data")
        parser.add_lightning_class_args(self._model_class, "model")


def _quiet_console() -> None:
    """Hide warnings and adverts that a user of this CLI cannot act on."""
    for pattern in (
        r".*does not have many workers.*",  # we gather whole batches in the main process on purpose
        r".*LightningCLI's args parameter is intended to run from within Python.*",
        r".*Checkpoint directory .* exists and is not empty.*",
        r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # inside Lightning itself
        r".*The dirpath has changed from.*",  # a checkpoint used by another run than the one that wrote it
        r".*is smaller than the logging interval.*",  # the interval counts steps over all epochs (LogThroughoutTheRun)
        r".*sync_dist=True\)` when logging on epoch level.*",  # val_loss and val_bpc: torchmetrics, summed over the ranks
    ):
        warnings.filterwarnings("ignore", message=pattern)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: not any(word in record.getMessage() for word in ("litlogger", "LitServe", "TPU available"))
    )
    # A stop on a signal is reported in one line of its own (lightning_app.stopping).
    logging.getLogger("lightning.pytorch.trainer.connectors.signal_connector").setLevel(logging.WARNING)


def _run(args: list[str]) -> None:
    if args in ([], ["-h"], ["--help"]):
        print(USAGE, end="")
        return
    if args[:1] == ["generate"]:
        generate_command(args[1:])
        return
    if args[:1] == ["plot"]:
        jsonargparse.CLI(plot_command, args=args[1:], prog="ctt plot", exit_on_error=False)
        return
    # A subcommand's parser reads the signature of every class it offers (0.1 s or more each on a 2-core
    # CPU): `ctt fit ...` builds only fit's; anything else (a misspelt name, an option first) gets them all.
    names = tuple(args[:1]) if args[:1] and args[0] in SUBCOMMANDS else tuple(SUBCOMMANDS)
    TrainerCLI(
        LanguageModel,
        TextDataModule,
        trainer_defaults=TRAINER_DEFAULTS,
        seed_everything_default=1337,
        # Each run saves its config in its own folder (its log folder, or without a logger its checkpoint
        # folder); only a resumed run writes it again.
        save_config_kwargs={"overwrite": True},
        save_config_callback=SaveConfigWithoutSecrets,  # config.yaml shows URL passwords as ***
        args=args,
        subcommand_names=names,
        auto_configure_optimizers=False,
        parser_kwargs={
            "exit_on_error": False,  # main reports a wrong flag in one line, not after the whole usage
            "prog": "ctt",
            # argparse would list every option in the usage line (a hundred lines); the groups below say it all
            **{
                name: {"usage": f"ctt {name} [--config FILE] [--GROUP.KEY VALUE ...]", "description": description}
                for name, description in SUBCOMMANDS.items()
                if name in names
            },
        },
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
    args = [arg for arg in args if arg != "--debug"]
    try:
        _run(args)
    except Interrupted as stop:
        if debug:
            traceback.print_exc()
        print(f"Interrupted by {stop}; checkpoints already written are kept.", file=sys.stderr)
        sys.exit(128 + stop.signum)
    except ArgumentError as err:  # a flag or config value that does not parse: jsonargparse's message, in one line
        if debug:
            raise
        print(f"error: {_config_file_problem(args) or _one_line(str(err)) + ' (see --help)'}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:
        if debug or not is_user_error(err):
            raise
        message = _one_line(str(err))
        print(f"error: {LIGHTNING_MESSAGES.get(message, message)}", file=sys.stderr)
        sys.exit(1)


# Lightning's messages that say what is wrong but not how to fix it, in ctt's words.
LIGHTNING_MESSAGES = {
    "No supported gpu backend found!": (
        "trainer.accelerator gpu, but PyTorch finds no GPU here: add --trainer.accelerator cpu to run on the CPU "
        "(configs/quickstart.yaml is the CPU recipe), or install a CUDA build of PyTorch."
    ),
}


def _one_line(message: str) -> str:
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def _config_file_problem(args: list[str]) -> str | None:
    """Which --config file is not valid YAML, and where (jsonargparse's message leaves the file out)."""
    files = [value for flag, value in zip(args, args[1:]) if flag in ("--config", "-c")]
    files += [arg.split("=", 1)[1] for arg in args if arg.startswith("--config=")]
    for name in files:
        try:
            yaml.safe_load(Path(name).read_text())
        except (yaml.scanner.ScannerError, yaml.parser.ParserError) as err:
            mark = err.problem_mark
            return f"{name} is not valid YAML: {err.problem} at line {mark.line + 1}, column {mark.column + 1}; fix the file."
        except (OSError, yaml.YAMLError):
            continue  # jsonargparse's own message says what is wrong with it
    return None

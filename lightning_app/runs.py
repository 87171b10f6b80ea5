"""Run folders: every run writes its checkpoints and logs into folders that belong to it alone.

Run ``version_N`` keeps its checkpoints in ``<checkpoint.dirpath>/version_N/`` and its metrics,
``hparams.yaml`` and ``config.yaml`` in the logger's ``<save_dir>/<name>/version_N/``
(``lightning_logs/version_N``); the number is the same in both. With ``checkpoint.dirpath`` null
the checkpoints go to the log folder's ``checkpoints/``, as Lightning does by default.

A run claims its number by creating its folders with ``mkdir``, which fails when a folder exists,
so runs started together never share one; while it runs it holds a lock in its checkpoint folder,
so that no other process resumes into it. ``<checkpoint.dirpath>/model.ckpt`` and ``last.ckpt``
link to the newest best and latest checkpoints of any run.
"""

from __future__ import annotations

import csv
import importlib
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from jsonargparse import Namespace
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from .atomic_file import replace_atomically
from .checkpoint_io import wait_for_checkpoints
from .errors import UsageError, path_error

try:
    import fcntl
except ImportError:  # Windows: runs are not locked
    fcntl = None

log = logging.getLogger(__name__)

VERSIONED_LOGGERS = (CSVLogger, TensorBoardLogger)  # loggers that keep one <save_dir>/<name>/version_N per run
LAST = ModelCheckpoint.CHECKPOINT_NAME_LAST + ModelCheckpoint.FILE_EXTENSION  # last.ckpt
LOCK = ".lock"
_VERSION = re.compile(r"version_(\d+)")


def probe_writable(folder: Path, what: str) -> list[Path]:
    """Create ``folder`` (and missing parents) and write a file in it; return the folders it created, outermost first.

    A folder that cannot be created or written is a UsageError naming ``what``, the option that chose it.
    """
    chain = [folder, *folder.parents]
    created = chain[: next((i for i, p in enumerate(chain) if p.exists() or p.is_symlink()), len(chain))]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".ctt-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise path_error(err, what, folder, "choose another folder or make it writable") from err
    return created[::-1]


def versioned_loggers(trainer_config: Namespace) -> list[Namespace]:
    """The init_args of the configured loggers that write version_N folders."""
    loggers = trainer_config.get("logger")
    found = []
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        if isinstance(logger, Namespace) and logger.get("class_path"):
            module, _, name = logger.class_path.rpartition(".")
            if issubclass(getattr(importlib.import_module(module), name), VERSIONED_LOGGERS):
                found.append(logger.init_args)
    return found


def version_of(name: str) -> int | str:
    """The logger ``version`` argument that names the run folder ``name``."""
    match = _VERSION.fullmatch(name)
    return int(match.group(1)) if match else name


@dataclass
class Run:
    """One run's folders, the ones this process created, and the lock it holds."""

    name: str
    checkpoint_dir: Path | None
    log_dirs: list[Path]
    created: list[Path] = field(default_factory=list)
    lock: IO[str] | None = None

    def release(self) -> None:
        """Drop the lock; remove the folders this process created if the run left nothing in them."""
        if self.lock is not None:
            self.lock.close()
            self.lock = None
            if self.checkpoint_dir in self.created and [p.name for p in self.checkpoint_dir.iterdir()] == [LOCK]:
                (self.checkpoint_dir / LOCK).unlink()
        for folder in reversed(self.created):
            try:
                folder.rmdir()
            except OSError:  # not empty: the run wrote something there
                pass


@dataclass
class RunFolders:
    """Where runs keep their files, from the checkpoint and logger settings of a command."""

    checkpoint_root: Path | None  # checkpoint.dirpath; None: inside the log folder
    log_roots: list[Path]
    named: str | None = None  # the run's folder name when the command gives the logger a version

    @classmethod
    def from_config(cls, config: Namespace) -> RunFolders:
        loggers = versioned_loggers(config.trainer)
        log_roots = [Path(a.get("save_dir") or ".") / (a.get("name") or "") for a in loggers]
        version = next((a.version for a in loggers if a.get("version") is not None), None)
        named = None if version is None else version if isinstance(version, str) else f"version_{version}"
        dirpath = config.checkpoint.dirpath
        if dirpath is None and not log_roots:
            dirpath = "checkpoints"
        return cls(None if dirpath is None else Path(dirpath), list(dict.fromkeys(log_roots)), named)

    def checkpoint_dir(self, name: str) -> Path:
        if self.checkpoint_root is None:
            return self.log_roots[0] / name / "checkpoints"
        return self.checkpoint_root / name

    def run_names(self) -> set[str]:
        """The names of the run folders that exist (version_N, or a logger version given by name)."""
        roots = [self.checkpoint_root] if self.checkpoint_root is not None else []
        names: set[str] = set()
        for root in roots + self.log_roots:
            if root.is_dir():
                names.update(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        return names

    def run_of(self, checkpoint: Path) -> str | None:
        """The run whose checkpoint folder holds ``checkpoint`` (after following links), or None."""
        folder = checkpoint.resolve().parent
        name = folder.name if self.checkpoint_root is not None else folder.parent.name
        return name if self.checkpoint_dir(name).resolve() == folder else None

    def last_checkpoints(self) -> list[Path]:
        """Every run's last.ckpt (and any an older layout left in checkpoint.dirpath itself), newest first."""
        paths = [self.checkpoint_dir(name) / LAST for name in self.run_names()]
        if self.checkpoint_root is not None and self.checkpoint_root.is_dir():
            paths += [p for p in self.checkpoint_root.glob("last*.ckpt") if not p.is_symlink()]
        return sorted((p for p in paths if p.is_file()), key=lambda p: p.stat().st_mtime, reverse=True)

    def in_use(self, name: str) -> bool:
        """Whether a running process holds the run's lock (looked at without writing into the run's folder)."""
        path = self.checkpoint_dir(name) / LOCK
        if fcntl is None or not path.is_file():
            return False
        with path.open() as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
        return False

    def _what(self, folder: Path) -> str:
        return "checkpoint.dirpath" if folder == self.checkpoint_dir(folder.name) else "trainer.logger.save_dir"

    def create(self, name: str | None, checkpoints: bool = True) -> Run:
        """Claim a new run: ``name`` if given, else the next free version_N (taking the next one after a lost race)."""
        number = 1 + max((int(m.group(1)) for n in self.run_names() if (m := _VERSION.fullmatch(n))), default=-1)
        while True:
            candidate = name or f"version_{number}"
            run = Run(candidate, self.checkpoint_dir(candidate) if checkpoints else None, [r / candidate for r in self.log_roots])
            folders = run.log_dirs + ([run.checkpoint_dir] if checkpoints else [])
            try:
                for folder in folders:
                    run.created += probe_writable(folder.parent, self._what(folder))
                    folder.mkdir()
                    run.created.append(folder)
            except FileExistsError:  # another run has it
                run.release()
                if name is not None:
                    raise UsageError(f"{folder} already holds a run; choose another trainer.logger.version.") from None
                number += 1
                continue
            except BaseException as err:
                run.release()
                if isinstance(err, OSError):
                    raise path_error(err, self._what(folder), folder, "choose another folder or make it writable") from err
                raise
            return self._locked(run)

    def reopen(self, name: str) -> Run:
        """The existing run ``name``, to resume into; refused while another process runs in it."""
        run = Run(name, self.checkpoint_dir(name), [r / name for r in self.log_roots])
        for folder in [*run.log_dirs, run.checkpoint_dir]:
            run.created += probe_writable(folder, self._what(folder))
        return self._locked(run)

    def _locked(self, run: Run) -> Run:
        if run.checkpoint_dir is not None:
            try:
                run.lock = _lock(run.checkpoint_dir)
            except OSError as err:
                run.release()
                raise path_error(err, "checkpoint.dirpath", run.checkpoint_dir, "make it writable") from err
            if run.lock is None:
                run.release()
                raise UsageError(
                    f"{run.checkpoint_dir} belongs to a run that is still going in another process; "
                    "wait for it to end or resume another checkpoint."
                )
        return run


def _lock(folder: Path) -> IO[str] | None:
    """An open lock file in ``folder`` holding an exclusive lock, or None when another process holds it."""
    lock = open(folder / LOCK, "a")  # noqa: SIM115 (held open for as long as the run lasts)
    if fcntl is not None:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return None
    return lock


def keep_metrics(trainer: Trainer, before_step: int) -> None:
    """Resuming into a run: keep its metrics.csv rows up to the checkpoint instead of letting CSVLogger delete them.

    Rows logged after the checkpoint was written are dropped: the resumed run logs those steps again.
    """
    for logger in trainer.loggers:
        if not isinstance(logger, CSVLogger) or not trainer.is_global_zero:
            continue
        path = Path(logger.log_dir, "metrics.csv")
        if not path.is_file():
            continue
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            # A row that a killed run cut short lacks its last fields (None here): it is dropped.
            complete = (row for row in reader if None not in row.values() and row["step"].isdigit())
            rows: list[dict[str, Any]] = [row for row in complete if int(row["step"]) < before_step]
            header = list(reader.fieldnames or [])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
            experiment = logger.experiment  # opening the log folder deletes the old file: write it again at once
        experiment.metrics_keys = header
        experiment.metrics = rows + experiment.metrics
        logger.save()


class LinkNewest(Callback):
    """Keeps links in ``checkpoint.dirpath`` to the newest run's checkpoints: ``model.ckpt`` to the best model
    saved most recently by any run, ``last.ckpt`` to the latest checkpoint (whatever names the run's files have:
    a ``checkpoint.filename`` with the step in it, or ``model-v1.ckpt`` under ``checkpoint.save_top_k``)."""

    LINKS = {"best_model_path": "model.ckpt", "last_model_path": LAST}

    def __init__(self, root: Path) -> None:
        self.root = root
        self._linked: dict[str, str] = {}

    def _update(self, trainer: Trainer) -> None:
        if not trainer.is_global_zero:
            return
        for kind, name in self.LINKS.items():
            target = getattr(trainer.checkpoint_callback, kind, "")
            if target and target != self._linked.get(kind) and Path(target).is_file():
                self._linked[kind] = target
                _link(self.root / name, Path(target))

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        self._update(trainer)  # the checkpoint callback saves after this callback's hooks: link on the next one

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # After the strategy's teardown, which waits for a checkpoint plugin that saves in the background.
        wait_for_checkpoints(trainer, raise_error=False)  # ctt's own writer: not every strategy waits for it
        self._update(trainer)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        wait_for_checkpoints(trainer, raise_error=False)  # an error is left to the writer's teardown to report
        self._update(trainer)


def _link(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` (relative, replaced atomically); a file that is not a link is left alone."""
    if link.exists() and not link.is_symlink():
        log.info("%s is a file, not a link to a run's checkpoint: it is left as it is (the newest is %s).", link, target)
        return
    try:  # a reader sees the old link or the new one
        replace_atomically(link, lambda tmp: tmp.symlink_to(os.path.relpath(target, link.parent)))
    except OSError as err:
        log.info("Could not link %s to %s: %s", link, target, err)

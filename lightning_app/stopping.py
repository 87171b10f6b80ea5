"""Stopping on a signal: Ctrl-C (SIGINT) or SIGTERM end fit, validate or test with status 128 + signal, never 0.

During training the first signal lets the current step (or validation) finish, saves ``last.ckpt``
in the run's checkpoint folder and says how to resume. Anywhere else, and for a second signal,
``Interrupted`` is raised at once: the process unwinds, so temporary files are removed, and
``cli.main`` exits.

With several processes (DDP) every one must leave the loop after the same step, whichever of them
got the signal: a scheduler signals them all, ``kill PID`` only one. So the signal handler only
records the signal, and after each step and each validation the processes agree on it (an
all-reduce); then Lightning's own way out (its SIGTERM flag) ends the loop on every rank at once.
Lightning's SIGTERM handler is replaced during training: it broadcasts from inside the handler and
forwards the signal to the other processes, so a signal that reaches every process (as ``timeout``,
SLURM and Kubernetes send it) left the ranks waiting for each other for ever.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from .checkpoint_io import wait_for_checkpoints

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A signal that stops the command at once (a BaseException, like KeyboardInterrupt: nothing catches it by mistake)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _State:
    graceful = False  # True while Lightning's training loop can stop after the current step
    received: int | None = None  # the signal that asked for that stop


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if not _State.graceful or _State.received is not None:
        raise Interrupted(signum)
    _State.received = signum  # StopOnSignal acts on it after the step


def _install_handlers() -> None:
    for signum in SIGNALS:
        signal.signal(signum, _on_signal)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM stop the command (see the module docstring); the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Callable[..., Any] | int | None] = {s: signal.getsignal(s) for s in SIGNALS}
    _install_handlers()
    try:
        yield
    finally:
        _State.graceful, _State.received = False, None
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _agreed_signal(trainer: Trainer) -> int | None:
    """The signal that any of the run's processes received (each process must call this at the same point)."""
    if trainer.world_size == 1 or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return _State.received
    received = torch.tensor([_State.received or 0], device=trainer.strategy.root_device)
    torch.distributed.all_reduce(received, op=torch.distributed.ReduceOp.MAX)
    return int(received.item()) or None


class StopOnSignal(Callback):
    """Ends fit after the current step on SIGINT or SIGTERM, saves last.ckpt and exits with 128 + signal."""

    def on_sanity_check_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        _install_handlers()  # over Lightning's, registered just before (see the module docstring)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        _install_handlers()
        _State.graceful = True

    def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
        self._stop_if_signalled(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._stop_if_signalled(trainer)

    @staticmethod
    def _stop_if_signalled(trainer: Trainer) -> None:
        received = _agreed_signal(trainer)
        if received is not None:
            _State.received = received
            trainer._signal_connector.received_sigterm = True  # Lightning leaves the loop at the end of this step

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        _State.graceful = False
        if _State.received is not None:  # it came after the loop's last look: the run is complete, but stop here
            raise Interrupted(_State.received)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        _State.graceful = False
        if not isinstance(exception, SIGTERMException):  # Lightning's way out of the loop after a SIGTERM
            return
        signum = _State.received or signal.SIGTERM
        exception.code = 128 + signum  # SIGTERMException is a SystemExit whose status would be 0
        name = signal.Signals(signum).name
        checkpoint = trainer.checkpoint_callback
        if trainer.state.fn != TrainerFn.FITTING or checkpoint is None or checkpoint.dirpath is None:
            if trainer.is_global_zero:
                log.error("Stopped by %s.", name)
            return
        path = os.path.join(checkpoint.dirpath, f"{checkpoint.CHECKPOINT_NAME_LAST}{checkpoint.FILE_EXTENSION}")
        try:
            wait_for_checkpoints(trainer)  # an earlier save's error is its own, not last.ckpt's
        except Exception as err:
            log.error("A checkpoint could not be written: %s", err)
        # Recorded before the save, which stores it: a resumed run then writes last.ckpt again, not last-v1.ckpt.
        checkpoint.last_model_path = path
        try:
            trainer.save_checkpoint(path, weights_only=False)
            wait_for_checkpoints(trainer)  # written in the background: on disk before the message says so
        except Exception as err:  # any error: the signal's exit status must survive it
            if trainer.is_global_zero:
                log.error("Stopped by %s at step %d; last.ckpt could not be saved (%s).", name, trainer.global_step, err)
            return
        shown = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
        if trainer.is_global_zero:
            log.error("Stopped by %s at step %d; resume with --ckpt_path %s (or --ckpt_path last).", name, trainer.global_step, shown)

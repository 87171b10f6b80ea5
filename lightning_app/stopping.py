"""Stopping on a signal: Ctrl-C (SIGINT) or SIGTERM end fit, validate or test with status 128 + signal, never 0.

During training the first signal lets the current step finish, saves ``last.ckpt`` in the run's
checkpoint folder and says how to resume (Lightning's own SIGTERM handling stops the loop; Ctrl-C
takes the same path). Anywhere else, and for a second signal, ``Interrupted`` is raised at once:
the process unwinds, so temporary files are removed, and ``cli.main`` exits.
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
    relaying = False


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _State.relaying:  # our own call of the SIGTERM handler below
        return
    if not _State.graceful or _State.received is not None:
        raise Interrupted(signum)
    _State.received = signum
    if signum != signal.SIGTERM:
        # Lightning's SIGTERM handler (it also calls this one) tells the loop, and every rank, to stop after the step.
        _State.relaying = True
        try:
            handler = signal.getsignal(signal.SIGTERM)
            if callable(handler):
                handler(signal.SIGTERM, frame)
        finally:
            _State.relaying = False


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM stop the command (see the module docstring); the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Callable[..., Any] | int | None] = {s: signal.getsignal(s) for s in SIGNALS}
    for signum in SIGNALS:
        signal.signal(signum, _on_signal)
    try:
        yield
    finally:
        _State.graceful, _State.received = False, None
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class StopOnSignal(Callback):
    """Ends fit after the current step on SIGINT or SIGTERM, saves last.ckpt and exits with 128 + signal."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        _State.graceful = True  # Lightning's SIGTERM handler is in place from here until its teardown

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

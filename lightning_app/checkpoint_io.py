"""CheckpointFiles: Lightning's checkpoint writer, writing in the background, straight into a temporary file.

Saving the GPU recipe's 170 MB state took about 0.15 s, as long as the training between two of a
short run's validations, so the training only waits for a copy of the state in host memory (about
20 ms on an H200 machine, bench/RESULTS.md); a background thread writes it. Lightning's
``TorchCheckpointIO`` serializes the whole checkpoint into memory first and then copies it to the
file, twice as slow as ``torch.save`` into the file itself (0.4 s against 0.2 s on a 2-core CPU
machine): this writer saves into a hidden temporary file and renames it onto the target
(``atomic_file.write_atomically``), so a reader sees the old checkpoint or the whole new one.

One thread does every write, link and removal in the order asked, so ``link`` may name a file whose
save is still pending, and ``is_pending`` tells which names are still to be written. At most one save
waits at a time (a second waits for it, which bounds the memory held by copies). An error in the
background is raised by the next call, by ``wait``, or by ``teardown``, which waits for the last
write. Remote paths (``s3://...``) and storage options go to Lightning's writer, in the same order.
``checkpoints.Checkpoints`` puts this writer in place of Lightning's plain one (a checkpoint plugin of
the user's own is left alone) and tears it down when fit ends, whatever the strategy: quietly, logging
a write error, when another exception ends the run, so that the error does not hide that one.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch import Trainer
from lightning_utilities.core.apply_func import apply_to_collection

from .atomic_file import replace_atomically, write_atomically
from .errors import path_error

log = logging.getLogger(__name__)


def _snapshot(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint with every tensor's values now in host memory: training goes on changing the originals.

    From a GPU the copies go into pinned memory, which PyTorch's host allocator keeps and reuses from one save
    to the next, and are waited for once, all together. Tensors that are one (tied weights) stay one.
    """
    copies: dict[tuple, torch.Tensor] = {}

    def host_copy(tensor: torch.Tensor) -> torch.Tensor:
        same = (tensor.device, tensor.data_ptr(), tensor.dtype, tensor.shape, tensor.stride())
        if same not in copies:
            copies[same] = tensor.detach().to("cpu", copy=True, non_blocking=tensor.is_cuda)
        return copies[same]

    snapshot = apply_to_collection(checkpoint, torch.Tensor, host_copy)
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()  # every copy has landed before the writer reads it
    return snapshot


def _key(path: str | Path) -> str:
    return str(Path(path))  # one spelling of a path, whether it came as a string or a Path


class CheckpointFiles(TorchCheckpointIO):
    def __init__(self) -> None:
        super().__init__()
        self._executor: ThreadPoolExecutor | None = None
        self._last_save: Future | None = None
        self._pending: dict[str, int] = {}  # path -> writes and links of it still to come
        self._error: BaseException | None = None
        self._lock = threading.Lock()  # guards _pending and _error, which the writer thread changes too

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if self._last_save is not None:
            self._last_save.result()  # waits: one copy of the state waits at a time (errors are kept by run below)
        self._raise_error()
        held = [_snapshot(checkpoint)]

        def take() -> dict[str, Any]:
            return held.pop()  # the write holds the copy alone, so its host memory is free once written

        if storage_options is not None or "://" in str(path):
            lightnings = super().save_checkpoint
            self._last_save = self._submit(path, lambda: lightnings(take(), path, storage_options))
            return
        path = Path(path)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, lambda file: torch.save(take(), file))

        self._last_save = self._submit(path, write)

    def link(self, target: str | Path, path: str | Path) -> None:
        """Make ``path`` another name of the file ``target`` (after the writes asked before); a copy where the
        file system has no hard links."""

        def make(tmp: Path) -> None:
            try:
                os.link(target, tmp)
            except OSError:
                shutil.copyfile(target, tmp)

        self._submit(path, lambda: replace_atomically(Path(path), make))

    def remove_checkpoint(self, path: str | Path) -> None:
        remove = super().remove_checkpoint
        self._submit(None, lambda: remove(path))

    def is_pending(self, path: str | Path) -> bool:
        """Whether a write or link of ``path`` has been asked for and is not done yet."""
        with self._lock:
            return _key(path) in self._pending

    def wait(self, raise_error: bool = True) -> None:
        """Block until everything asked for so far is done; then raise the first error among it (with
        ``raise_error`` False, leave it to the next call)."""
        if self._executor is not None:
            self._executor.submit(lambda: None).result()  # one thread, in order: everything before it is done
        if raise_error:
            self._raise_error()

    def teardown(self, quiet: bool = False) -> None:
        """Wait for the last write and stop the thread; raise a write error, or with ``quiet`` log it (used while
        another exception ends the run, so that the error does not hide that one)."""
        try:
            self.wait()
        except Exception as error:
            if not quiet:
                raise
            log.error("A checkpoint could not be written: %s", error)
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
            self._last_save = None

    def _submit(self, path: str | Path | None, fn: Callable[[], object]) -> Future:
        self._raise_error()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-writer")
        name = None if path is None else _key(path)
        if name is not None:
            with self._lock:
                self._pending[name] = self._pending.get(name, 0) + 1

        def run() -> None:
            try:
                if self._error is not None:  # nothing asked after a failed write: a link could name a stale file
                    return
                fn()
            except BaseException as error:
                # A full disk or a folder that went away is the user's to fix: one line, not a traceback.
                if path is not None and (cause := _os_error(error)) is not None:
                    fix = "free space or choose another checkpoint.dirpath"
                    failure = path_error(cause, "The checkpoint", path, fix)
                    failure.__cause__, error = error, failure
                with self._lock:
                    if self._error is None:
                        self._error = error
            finally:
                if name is not None:
                    with self._lock:
                        self._pending[name] -= 1
                        if not self._pending[name]:
                            del self._pending[name]

        return self._executor.submit(run)

    def _raise_error(self) -> None:
        with self._lock:
            error, self._error = self._error, None
        if error is not None:
            raise error


def _os_error(error: BaseException | None) -> OSError | None:
    """The OSError behind ``error``, if any (torch.save reports a full disk as a RuntimeError raised handling one)."""
    while error is not None and not isinstance(error, OSError):
        error = error.__cause__ or error.__context__
    return error


def wait_for_checkpoints(trainer: Trainer, raise_error: bool = True) -> None:
    """Block until the checkpoints the trainer asked for are written (at once for any other writer)."""
    writer = trainer.strategy.checkpoint_io
    if isinstance(writer, CheckpointFiles):
        writer.wait(raise_error)

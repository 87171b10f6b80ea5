"""Callbacks that tests (and the multi-GPU benchmark) add to `ctt fit` with --trainer.callbacks+=tests.probes.NAME."""

import hashlib
import io
import os
import signal

from lightning.pytorch import Callback


class KillAtStep(Callback):
    """The process kills itself with SIGKILL at a given step, like a crash or an OOM kill."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class RankReport(Callback):
    """Each rank prints a digest of its first training batch and the val_bpc it computed."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == 0:
            digest = hashlib.sha1(batch[0].cpu().numpy().tobytes()).hexdigest()[:12]
            print(f"rank {trainer.global_rank}: first batch {tuple(batch[0].shape)} sha1 {digest}", flush=True)

    def on_fit_end(self, trainer, pl_module) -> None:
        print(f"rank {trainer.global_rank}: val_bpc {float(trainer.callback_metrics['val_bpc']):.6f}", flush=True)


class KillDuringSave(Callback):
    """SIGKILL in the middle of writing the checkpoint file of step ``step``, after half of its bytes."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_start(self, trainer, pl_module) -> None:
        from lightning_app import checkpoint_io

        write_atomically = checkpoint_io.write_atomically

        def half_then_die(path, write):
            if trainer.global_step < self.step:
                return write_atomically(path, write)

            def half(file):
                whole = io.BytesIO()
                write(whole)
                file.write(whole.getvalue()[: whole.tell() // 2])
                file.flush()
                os.kill(os.getpid(), signal.SIGKILL)

            return write_atomically(path, half)

        checkpoint_io.write_atomically = half_then_die

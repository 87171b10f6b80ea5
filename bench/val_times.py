"""A callback for bench/quality_bench.py: one line per validation with the wall-clock time, the step and val_bpc,
and the times at which training starts and ends."""

import time

from lightning.pytorch import Callback


class ValTimes(Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            print(f"PHASE {time.time():.3f} train_start", flush=True)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and trainer.is_global_zero and "val_bpc" in trainer.callback_metrics:
            print(f"VALTIME {time.time():.3f} {trainer.global_step} {float(trainer.callback_metrics['val_bpc']):.5f}", flush=True)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            print(f"PHASE {time.time():.3f} train_end", flush=True)

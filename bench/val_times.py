"""A callback for bench/quality_bench.py: one line per validation with the wall-clock time, the step and val_bpc."""

import time

from lightning.pytorch import Callback


class ValTimes(Callback):
    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and trainer.is_global_zero and "val_bpc" in trainer.callback_metrics:
            print(f"VALTIME {time.time():.3f} {trainer.global_step} {float(trainer.callback_metrics['val_bpc']):.5f}", flush=True)

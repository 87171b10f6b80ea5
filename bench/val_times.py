"""A callback for the benchmarks: a timeline of a run on standard output, one line per event.

    VALTIME <unix time> <step> <val_bpc>        after each validation
    PHASE <unix time> <name>                    setup, fit_start, train_start, first_step, train_end
    STEPS <unix time> <step> <ms per step>      every 200 steps, between validations (the GPU is waited for)
    COST <what> <seconds> <count>               at the end: time in validation and in checkpoint saving
                                                (what training waited for: checkpoints are written in the background)

bench/quality_bench.py reads them all into its results.
"""

import time

import torch
from lightning.pytorch import Callback

EVERY = 200


def _now(pl_module) -> float:
    if pl_module.device.type == "cuda":
        torch.cuda.synchronize(pl_module.device)
    return time.time()


class ValTimes(Callback):
    def __init__(self) -> None:
        self.costs = {"validation": [0.0, 0], "checkpoint_save": [0.0, 0]}
        self._mark: tuple[float, int, float] | None = None  # time, step, seconds of saving so far

    def _phase(self, trainer, name: str) -> None:
        if trainer.is_global_zero:
            print(f"PHASE {time.time():.3f} {name}", flush=True)

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._phase(trainer, "setup")
        save = trainer.save_checkpoint

        def timed_save(*args, **kwargs):
            start = time.time()
            save(*args, **kwargs)
            self._add("checkpoint_save", time.time() - start)

        trainer.save_checkpoint = timed_save

    def _add(self, what: str, seconds: float) -> None:
        self.costs[what][0] += seconds
        self.costs[what][1] += 1

    def on_fit_start(self, trainer, pl_module) -> None:
        self._phase(trainer, "fit_start")

    def on_train_start(self, trainer, pl_module) -> None:
        self._phase(trainer, "train_start")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self._mark is None:
            self._phase(trainer, "first_step")
            self._mark = (_now(pl_module), step, self.costs["checkpoint_save"][0])
        elif step % EVERY == 0:
            now, saving = _now(pl_module), self.costs["checkpoint_save"][0]
            # Checkpoints are saved after this callback's on_validation_end: their time is taken out here.
            ms = (now - self._mark[0] - (saving - self._mark[2])) / (step - self._mark[1]) * 1e3
            if trainer.is_global_zero:
                print(f"STEPS {now:.3f} {step} {ms:.2f}", flush=True)
            self._mark = (now, step, saving)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._val_start = _now(pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        self._add("validation", _now(pl_module) - self._val_start)
        if self._mark is not None:  # steps only, not validation
            self._mark = (time.time(), trainer.global_step, self.costs["checkpoint_save"][0])
        if trainer.is_global_zero and "val_bpc" in trainer.callback_metrics:
            print(f"VALTIME {time.time():.3f} {trainer.global_step} {float(trainer.callback_metrics['val_bpc']):.5f}", flush=True)

    def on_train_end(self, trainer, pl_module) -> None:
        self._phase(trainer, "train_end")
        if trainer.is_global_zero:
            for what, (seconds, count) in self.costs.items():
                print(f"COST {what} {seconds:.2f} {count}", flush=True)

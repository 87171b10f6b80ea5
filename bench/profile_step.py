"""Where a training step's GPU time goes: torch.profiler over a few steps of `ctt fit`, kernels by GPU time.

    python bench/profile_step.py --data DIR [extra ctt fit flags]      (on a GPU machine)

Profiles the GPU recipe (configs/gpu.yaml) without its recorded CUDA graph, whose replay would hide
the kernels from the profiler (the kernels are the same). Prints the kernels with the most GPU
time over the profiled steps, and the GPU and wall time per step.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback
from torch.autograd import DeviceType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lightning_app.cli import main  # noqa: E402

START, STEPS = 60, 10


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class KernelProfile(Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == START:
            _sync()
            self.profile = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA])
            self.profile.__enter__()
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == START + STEPS:
            _sync()
            wall = (time.perf_counter() - self.start) / STEPS
            self.profile.__exit__(None, None, None)
            events = self.profile.key_averages()
            # Kernels only, as the table's own total: an operator's row repeats its kernels' time, and a user
            # annotation (Optimizer.step) spans them.
            kernels = [e for e in events if e.device_type == DeviceType.CUDA and not e.is_user_annotation]
            gpu = sum(e.self_device_time_total for e in kernels) / STEPS / 1e3
            print(events.table(sort_by="self_device_time_total", row_limit=30, max_name_column_width=70))
            print(f"PROFILE {STEPS} steps: {gpu:.2f} ms of GPU time and {wall * 1e3:.2f} ms of wall time per step (profiled)")
            trainer.should_stop = True


def run() -> None:
    data_dir = sys.argv[sys.argv.index("--data") + 1]
    extra = sys.argv[sys.argv.index("--data") + 2 :]
    with tempfile.TemporaryDirectory() as tmp:
        main([
            "fit", "--config=configs/gpu.yaml", f"--data.data_dir={data_dir}", f"--data.cache_dir={tmp}/cache",
            "--model.cuda_graph=false", f"--trainer.max_steps={START + STEPS + 1}", "--trainer.limit_val_batches=0",
            f"--checkpoint.dirpath={tmp}/ckpt", f"--trainer.logger.init_args.save_dir={tmp}", "--sample.length=0",
            "--trainer.callbacks+=bench.profile_step.KernelProfile", *extra,
        ])  # fmt: skip


if __name__ == "__main__":
    run()

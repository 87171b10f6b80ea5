"""A callback for the multi-GPU benchmark: each rank prints what it trained on and the val_bpc it computed.

ctt fit ... --trainer.callbacks+=bench.rank_report.RankReport   (with the repository root on PYTHONPATH)
"""

from __future__ import annotations

import hashlib

from lightning.pytorch import Callback


class RankReport(Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == 0:
            digest = hashlib.sha1(batch[0].cpu().numpy().tobytes()).hexdigest()[:12]
            print(f"rank {trainer.global_rank}: first batch {tuple(batch[0].shape)} sha1 {digest}", flush=True)

    def on_fit_end(self, trainer, pl_module) -> None:
        print(f"rank {trainer.global_rank}: val_bpc {float(trainer.callback_metrics['val_bpc']):.6f}", flush=True)

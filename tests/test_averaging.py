from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lightning_app.averaging import EMA
from lightning_app.cli import main
from lightning_app.language_model import LanguageModel

TINY = [
    "--model.dim=32", "--model.depth=1", "--model.heads=2", "--data.context_len=32", "--data.batch_size=8",
    "--trainer.max_steps=12", "--trainer.limit_val_batches=2", "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false", "--sample.length=0", "--model.lr=3e-3",
]  # fmt: skip


def test_ema_is_validated_saved_and_loaded(text_dir: Path):
    main(["fit", *TINY, f"--data.data_dir={text_dir}", "--trainer.callbacks+=lightning_app.averaging.EMA",
          "--trainer.callbacks.decay=0.5", "--trainer.callbacks.update_every_n_steps=2"])  # fmt: skip
    checkpoint = torch.load("checkpoints/last.ckpt", map_location="cpu", weights_only=True)  # saved from a GPU, where there is one
    averaged, current = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert averaged.keys() == current.keys()
    assert any(not torch.equal(averaged[name], current[name]) for name in averaged)
    model = LanguageModel.from_checkpoint("checkpoints/last.ckpt")
    torch.testing.assert_close(model.model.head.weight, averaged["model.head.weight"])


@pytest.mark.parametrize("kwargs", [{"decay": 1.0}, {"decay": 0.0}, {"update_every_n_steps": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="EMA decay"):
        EMA(**kwargs)


@pytest.mark.parametrize(("val_check_batch", "accumulate", "every"), [(3, 1, 3), (12, 2, 6), (50, 1, 10), (1.0, 1, 10)])
def test_the_average_is_updated_at_least_as_often_as_validation_runs(val_check_batch, accumulate, every):
    ema = EMA(update_every_n_steps=10)
    trainer = SimpleNamespace(val_check_batch=val_check_batch, accumulate_grad_batches=accumulate)
    ema.on_train_batch_start(trainer, pl_module=None, batch=None, batch_idx=0)
    assert ema.update_every_n_steps == every

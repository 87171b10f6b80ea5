from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import Trainer

from lightning_app.datamodule import TextDataModule
from lightning_app.language_model import LanguageModel
from lightning_app.training_guards import StopOnNonFiniteLoss, ValidateAtLastStep


def _trainer(step: int, log_every: int = 5) -> SimpleNamespace:
    strategy = SimpleNamespace(reduce_boolean_decision=lambda decision, all: decision)
    return SimpleNamespace(global_step=step, log_every_n_steps=log_every, max_steps=-1, strategy=strategy, sanity_checking=False)


def test_a_non_finite_loss_stops_on_the_next_logging_step_and_before_validation():
    module = SimpleNamespace(nonfinite=torch.tensor(True), hparams=SimpleNamespace(lr=3e-4))
    guard = StopOnNonFiniteLoss()
    guard.on_train_batch_end(_trainer(7), module, None, None, 0)  # not a logging step: the flag is not read
    with pytest.raises(FloatingPointError, match="NaN or infinite by step 10; lower model.lr"):
        guard.on_train_batch_end(_trainer(10), module, None, None, 0)
    with pytest.raises(FloatingPointError):
        guard.on_validation_start(_trainer(7), module)
    guard.on_train_batch_end(_trainer(10, log_every=0), module, None, None, 0)  # logging off: only validation checks


def test_a_plain_trainer_gets_both_guards_and_validates_at_a_mid_epoch_last_step(text_dir: Path):
    trainer = Trainer(max_steps=5, devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1)
    trainer.fit(LanguageModel(dim=32, depth=1, heads=2, context_len=16), TextDataModule(data_dir=str(text_dir), context_len=16, batch_size=4))
    assert {type(c) for c in trainer.callbacks} >= {StopOnNonFiniteLoss, ValidateAtLastStep}
    assert trainer.global_step == 5 and "val_bpc" in trainer.callback_metrics  # an epoch here is far longer than 5 steps

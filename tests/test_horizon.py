import logging
import math
import re
from pathlib import Path

import pytest
import torch
from types import SimpleNamespace

from lightning_app.cli import main
from lightning_app.horizon import Horizon

TINY = [
    "--model.dim=32", "--model.depth=1", "--model.heads=2", "--data.context_len=32", "--data.batch_size=8",
    "--trainer.limit_val_batches=2", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
    "--sample.length=0", "--trainer.check_val_every_n_epoch=null", "--data.stride=32",
]  # fmt: skip
UNLIMITED = ["--trainer.max_epochs=-1", "--trainer.max_steps=-1"]


def fit(text_dir: Path, *args: str) -> dict:
    main(["fit", *TINY, f"--data.data_dir={text_dir}", *args])
    return torch.load("checkpoints/last.ckpt", weights_only=True)


def test_the_budget_comes_from_the_corpus_and_is_printed(text_dir: Path, caplog):
    with caplog.at_level(logging.INFO):
        checkpoint = fit(text_dir, *UNLIMITED, "--horizon.passes=3", "--horizon.min_steps=1", "--horizon.checks=4")
    budget = checkpoint["callbacks"]["Horizon"]["max_steps"]
    line = next(line for line in caplog.text.splitlines() if "Run length:" in line)
    tokens = int(line.split(" passes over ")[1].split(" training tokens")[0].replace(",", ""))
    expected = math.ceil(3 * tokens / (8 * 32))
    assert budget == expected and checkpoint["global_step"] == expected
    assert f"validation every {expected // 4:,} steps" in line
    assert f"Stopped at step {expected:,}: the budgeted run is complete" in caplog.text


def test_a_budget_below_min_steps_is_raised_and_says_so(text_dir: Path, caplog):
    with caplog.at_level(logging.INFO):
        checkpoint = fit(text_dir, *UNLIMITED, "--horizon.passes=0.01", "--horizon.min_steps=12")
    assert checkpoint["global_step"] == 12 and "12 steps (" in caplog.text and "raised to horizon.min_steps 12" in caplog.text


def test_the_budget_is_counted_from_the_whole_network(text_dir: Path, caplog):
    # The per-parameter cap binds: the budget follows the count taken when the network was built.
    with caplog.at_level(logging.INFO):
        checkpoint = fit(text_dir, *UNLIMITED, "--horizon.passes=1000", "--horizon.tokens_per_param=0.5", "--horizon.min_steps=1")
    params = int(re.search(r"Model: ([\d,]+) parameters", caplog.text)[1].replace(",", ""))
    assert checkpoint["global_step"] == math.ceil(0.5 * params / (8 * 32))
    assert "raised to" not in caplog.text


def test_a_resumed_run_keeps_its_budget_and_says_so(text_dir: Path, caplog):
    first = fit(text_dir, *UNLIMITED, "--horizon.passes=1", "--horizon.min_steps=1")
    budget = first["callbacks"]["Horizon"]["max_steps"]
    with caplog.at_level(logging.INFO):
        again = fit(text_dir, *UNLIMITED, "--horizon.passes=2", "--horizon.min_steps=1", "--ckpt_path=last")
    assert again["callbacks"]["Horizon"]["max_steps"] == budget and again["global_step"] == budget
    assert f"Run length: {budget:,} steps, kept from the run being resumed;" in caplog.text


def test_a_limit_of_the_users_own_wins(text_dir: Path, caplog):
    with caplog.at_level(logging.INFO):
        checkpoint = fit(text_dir, "--trainer.max_steps=7", "--horizon.passes=50")
    assert checkpoint["global_step"] == 7
    assert "7 steps, as the trainer's max_steps or max_epochs say" in caplog.text


def test_stalled_validation_starts_the_decay_and_ends_the_run_early(text_dir: Path, caplog):
    # A learning rate too small to change anything: val_bpc never improves after the first validation.
    args = ["--model.lr=1e-30", "--model.schedule=wsd", "--model.warmup_steps=2", "--horizon.passes=40", "--horizon.min_steps=1", "--horizon.checks=40"]
    with caplog.at_level(logging.INFO):
        main(["fit", *TINY, f"--data.data_dir={text_dir}", *UNLIMITED, *args, "--horizon.patience=2"])
    planned = int(re.search(r"Run length: ([\d,]+) steps", caplog.text)[1].replace(",", ""))
    every = int(re.search(r"validation every (\d+) steps", caplog.text)[1])
    stop, start = map(int, re.search(r"Stopped at step (\d+): validation stopped improving, so the decay started early at step (\d+)", caplog.text).groups())
    assert start == 3 * every  # the first validation sets the best, the next two bring nothing new
    assert stop == start + round((start - 2) * 0.3 / 0.7) < planned  # 30% of the shortened run's steps after the warmup
    assert "val_bpc has not improved for 2 validations (best" in caplog.text and f"decays from now to step {stop}," in caplog.text


def test_patience_needs_the_wsd_schedule(text_dir: Path, capsys):
    with pytest.raises(SystemExit, match="1"):
        fit(text_dir, "--trainer.max_steps=2", "--horizon.passes=1", "--horizon.patience=1")
    assert "horizon.patience needs model.schedule wsd" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs", [{"passes": -1}, {"checks": 0}, {"tokens_per_param": 0}, {"patience": -2}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match=f"horizon.{next(iter(kwargs))}"):
        Horizon(**kwargs)


def test_state_round_trips():
    horizon = Horizon(passes=2)
    horizon.best, horizon.best_step, horizon.stalled, horizon.cooldown_at, horizon.max_steps = 1.5, 40, 1, 60, 90
    restored = Horizon(passes=2)
    restored.load_state_dict(horizon.state_dict())
    assert restored.state_dict() == horizon.state_dict()


def _trainer(max_steps: int, max_epochs: int | None = -1) -> SimpleNamespace:
    return SimpleNamespace(max_steps=max_steps, max_epochs=max_epochs, fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(max_steps=max_steps)))


def test_on_resume_a_limit_given_now_wins_over_the_old_budget_but_an_early_decay_keeps_its_end():
    budgeted = Horizon()  # passes 0: only what a checkpoint restored applies
    budgeted.load_state_dict({"best": 2.0, "best_step": 100, "stalled": 0, "cooldown_at": None, "max_steps": 500})
    trainer = _trainer(2000)
    budgeted.on_train_start(trainer, None)
    assert budgeted.max_steps is None and trainer.fit_loop.epoch_loop.max_steps == 2000
    cooled = Horizon()
    cooled.load_state_dict({"best": 2.0, "best_step": 100, "stalled": 3, "cooldown_at": 400, "max_steps": 560})
    trainer = _trainer(-1)
    cooled.on_train_start(trainer, None)
    assert trainer.fit_loop.epoch_loop.max_steps == 560  # the shortened run ends where it was going to

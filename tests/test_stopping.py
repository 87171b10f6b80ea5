"""Signal handling in one process; whole runs stopped by signals are in test_resume.py and test_distributed.py."""

import signal
from types import SimpleNamespace

import pytest

from lightning_app import stopping
from lightning_app.stopping import Interrupted, StopOnSignal, stop_on_signals


def _trainer() -> SimpleNamespace:
    return SimpleNamespace(world_size=1, _signal_connector=SimpleNamespace(received_sigterm=False))


def test_before_training_a_signal_stops_at_once():
    with stop_on_signals():
        with pytest.raises(Interrupted) as stop:
            signal.raise_signal(signal.SIGTERM)
    assert stop.value.signum == signal.SIGTERM


def test_during_training_a_signal_is_recorded_and_acted_on_after_the_step():
    trainer = _trainer()
    with stop_on_signals():
        StopOnSignal().on_train_start(trainer, pl_module=None)
        signal.raise_signal(signal.SIGINT)  # recorded only: the step goes on
        assert not trainer._signal_connector.received_sigterm
        StopOnSignal().on_train_batch_end(trainer)
        assert trainer._signal_connector.received_sigterm  # Lightning leaves the loop at the end of this step
        with pytest.raises(Interrupted):  # a second signal does not wait
            signal.raise_signal(signal.SIGINT)


def test_a_validation_during_training_acts_on_a_signal_but_the_sanity_check_does_not():
    from lightning.pytorch.trainer.states import TrainerFn

    trainer = _trainer()
    with stop_on_signals():
        StopOnSignal().on_train_start(trainer, pl_module=None)
        signal.raise_signal(signal.SIGTERM)
        trainer.state, trainer.sanity_checking = SimpleNamespace(fn=TrainerFn.FITTING), True
        StopOnSignal().on_validation_end(trainer, pl_module=None)
        assert not trainer._signal_connector.received_sigterm
        trainer.sanity_checking = False
        StopOnSignal().on_validation_end(trainer, pl_module=None)
        assert trainer._signal_connector.received_sigterm


def test_the_previous_handlers_come_back_and_the_state_is_cleared():
    before = {s: signal.getsignal(s) for s in stopping.SIGNALS}
    with stop_on_signals():
        StopOnSignal().on_train_start(_trainer(), pl_module=None)
        signal.raise_signal(signal.SIGTERM)
        assert all(signal.getsignal(s) is stopping._on_signal for s in stopping.SIGNALS)
    assert {s: signal.getsignal(s) for s in stopping.SIGNALS} == before
    assert stopping._State.received is None and not stopping._State.graceful

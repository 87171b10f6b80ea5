import pytest

from lightning_app.schedule import LearningRateSchedule


def test_cosine_warms_up_then_decays_to_the_floor():
    schedule = LearningRateSchedule("cosine", warmup=4, floor=0.1, total=104)
    assert [schedule(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert schedule(54) == pytest.approx(0.55)
    assert schedule(104) == pytest.approx(0.1) and schedule(500) == pytest.approx(0.1)


def test_wsd_holds_the_peak_then_decays_linearly_over_the_last_fraction_after_the_warmup():
    schedule = LearningRateSchedule("wsd", warmup=10, floor=0.0, decay_fraction=0.25, total=210)
    assert schedule(5) == pytest.approx(0.6)
    assert schedule.planned_start(210) == 160  # the last 25% of the 200 steps after the warmup
    assert schedule(10) == schedule(159) == 1.0
    assert schedule(160) == pytest.approx(1.0) and schedule(185) == pytest.approx(0.5)
    assert schedule(210) == 0.0 and schedule(300) == 0.0


def test_an_unknown_end_keeps_the_peak():
    schedule = LearningRateSchedule("wsd", warmup=2, floor=0.0)
    assert schedule(10_000) == 1.0


def test_decay_now_moves_the_end_and_keeps_the_decay_share():
    schedule = LearningRateSchedule("wsd", warmup=0, floor=0.0, decay_fraction=0.2, total=1000)
    assert schedule.decay_now(400) == 500  # 100 decay steps are 20% of the 500-step run
    assert schedule(399) == 1.0 and schedule(450) == pytest.approx(0.5) and schedule(500) == 0.0
    assert schedule.decay_now(450) is None and schedule.total == 500  # once begun, the decay keeps its course


def test_decay_now_inside_the_planned_decay_changes_nothing():
    schedule = LearningRateSchedule("wsd", warmup=0, floor=0.0, decay_fraction=0.3, total=1000)
    assert schedule.decay_now(800) is None and schedule.decay_start is None and schedule.total == 1000


def test_decay_now_waits_for_the_end_of_the_warmup():
    schedule = LearningRateSchedule("wsd", warmup=100, floor=0.0, decay_fraction=0.3, total=1000)
    assert schedule.decay_now(50) is None and schedule.total == 1000  # the rate is still rising: no decay from there
    assert schedule.decay_now(170) == 200 and schedule(200) == 0.0  # 30 decay steps are 30% of the 100 after the warmup
    assert schedule.planned_start(200) == 170  # the same decay as a planned 200-step run's


def test_a_stall_at_the_end_of_the_warmup_ends_the_run_a_step_later():
    schedule = LearningRateSchedule("wsd", warmup=100, floor=0.0, decay_fraction=0.3, total=1000)
    assert schedule.decay_now(100) == 101 and schedule(100) == 1.0 and schedule(101) == 0.0


def test_a_short_run_decays_only_after_its_warmup():
    schedule = LearningRateSchedule("wsd", warmup=100, floor=0.0, decay_fraction=0.3, total=120)
    assert schedule.planned_start(120) == 114
    factors = [schedule(s) for s in range(95, 121)]
    assert factors == sorted(factors[:5]) + sorted(factors[5:], reverse=True)  # up to the peak, then only down
    assert schedule(100) == 1.0 and schedule(117) == pytest.approx(0.5) and schedule(120) == 0.0
    assert LearningRateSchedule("wsd", warmup=100, floor=0.0, total=80).planned_start(80) == 80  # all warmup: no decay


def test_decay_now_without_a_planned_end_ends_the_run_after_the_decay():
    schedule = LearningRateSchedule("wsd", warmup=0, floor=0.0, decay_fraction=0.5)  # no end known (total 0)
    assert schedule.decay_now(300) == 600 and schedule(450) == 0.5


def test_the_moved_end_survives_a_scheduler_state_dict():
    import torch

    def scheduler(schedule):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    moved = LearningRateSchedule("wsd", warmup=0, floor=0.0, total=1000)
    moved.decay_now(100)
    restored = LearningRateSchedule("wsd", warmup=0, floor=0.0, total=1000)
    scheduler(restored).load_state_dict(scheduler(moved).state_dict())
    assert (restored.decay_start, restored.total) == (moved.decay_start, moved.total)

"""Callbacks that tests add to `ctt fit` (--trainer.callbacks+=tests.signal_probes.NAME) to signal the run."""

import os

from lightning.pytorch import Callback


class SignalAtStep(Callback):
    """The process sends itself ``signum`` (SIGTERM by default; 2 is Ctrl-C's SIGINT) once, at a given step."""

    def __init__(self, step: int, signum: int = 15) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class SignalInSetup(Callback):
    """The process sends itself ``signum`` while the run is set up, before training starts."""

    def __init__(self, signum: int = 15) -> None:
        self.signum = signum

    def setup(self, trainer, pl_module, stage: str) -> None:
        os.kill(os.getpid(), self.signum)


class SignalRanksAtStep(Callback):
    """During a given step, rank 0 sends ``signum`` to its whole process group, every rank included (the way
    `timeout`, SLURM and Kubernetes stop a job), or only the process of rank ``only_rank`` gets it (`kill PID`)."""

    def __init__(self, step: int, signum: int = 15, only_rank: int | None = None) -> None:
        self.step, self.signum, self.only_rank = step, signum, only_rank

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.global_step != self.step - 1:
            return
        if self.only_rank is None and trainer.global_rank == 0:
            os.killpg(os.getpgid(0), self.signum)
        elif trainer.global_rank == self.only_rank:
            os.kill(os.getpid(), self.signum)

"""Saving a run's ``config.yaml`` without the passwords of URLs given inline (see ``credentials``)."""

from __future__ import annotations

from typing import Any

from jsonargparse import Namespace
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback

from .credentials import mask_credentials


def masked(value: Any) -> Any:
    """A copy of a parsed config (namespaces, dicts, lists) with every URL password replaced by ``***``."""
    if isinstance(value, Namespace):
        return Namespace(**{key: masked(item) for key, item in vars(value).items()})
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(masked(item) for item in value)
    return mask_credentials(value) if isinstance(value, str) else value


class SaveConfigWithoutSecrets(SaveConfigCallback):
    """LightningCLI's SaveConfigCallback, saving a copy of the config with URL passwords masked;
    the run itself keeps using the real values."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Masked when it is saved, not when the callback is built: the CLI puts the command's own values
        # back into the config (see TrainerCLI.after_instantiate_classes) between the two.
        self.config = masked(self.config)
        super().setup(trainer, pl_module, stage)

"""CheckpointFiles: Lightning's checkpoint writer, writing straight into a temporary file beside the target.

Lightning's ``TorchCheckpointIO`` serializes the whole checkpoint into memory first and then copies
it to the file, which took twice as long as ``torch.save`` into the file itself (a 170 MB
checkpoint of the GPU recipe, measured on a 2-core CPU machine: about 0.4 s against 0.2 s). A short run validates and saves
often, so this writer saves into a hidden temporary file and renames it onto the target
(``atomic_file.write_atomically``): a reader still sees the old checkpoint or the whole new one.
Remote paths (``s3://...``) and storage options go to Lightning's writer. ``checkpoints.Checkpoints``
puts it in place of Lightning's plain writer; a checkpoint plugin of the user's own is left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from .atomic_file import write_atomically


class CheckpointFiles(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda file: torch.save(checkpoint, file))

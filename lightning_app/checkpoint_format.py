"""The checkpoint format: what ctt adds to Lightning's checkpoint, and the one reader of checkpoint files.

``LanguageModel.on_save_checkpoint`` adds the tokenizer (so token ids can be read back without the
data) and ``ctt_format``, a number bumped when the layout changes. ``load_checkpoint`` serves every
command that reads a checkpoint (generate, validate, test, resuming fit): anything that is not a
readable checkpoint of this format ends in one ``UsageError`` that says what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .errors import UsageError, path_error

CHECKPOINT_FORMAT = 1  # bump when the checkpoint layout changes


def check_format(checkpoint: dict[str, Any], source: str = "This checkpoint") -> None:
    """Refuse, in one sentence naming ``source``, a checkpoint without this format or without its tokenizer."""
    found = checkpoint.get("ctt_format")
    if found is None:
        raise UsageError(f"{source} was not written by this version of ctt (it has no checkpoint format); pass one from `ctt fit`.")
    if found != CHECKPOINT_FORMAT:
        raise UsageError(f"{source} has checkpoint format {found!r}, and this version reads {CHECKPOINT_FORMAT}; train a new one.")
    if "tokenizer" not in checkpoint:
        raise UsageError(f"{source} holds no tokenizer, so its token ids cannot be read back; it is damaged: use another.")


def load_checkpoint(path: Path, label: str, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """A checkpoint written by ``ctt fit``, read with ``weights_only=True`` (tensors and plain data, never code);
    anything else is a UsageError that names ``path`` as ``label`` (the flag or role it came from) and says why."""
    if path.is_dir():
        example = next(iter(sorted(path.glob("*.ckpt"))), None)
        raise UsageError(f"{label} {path} is a folder; pass a .ckpt file{f' (e.g. {example})' if example else ''}.")
    if not path.exists():
        raise UsageError(f"{label} {path} does not exist; pass a .ckpt file written by `ctt fit`.")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except OSError as err:
        raise path_error(err, label, path, "check the file and its permissions") from err
    except Exception as err:  # torch raises many types for a damaged or foreign file
        raise UsageError(f"{path} is not a readable checkpoint ({type(err).__name__}); it may be damaged or not from `ctt fit`.") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise UsageError(f"{path} is not a checkpoint written by `ctt fit` (it holds no model settings or weights).")
    check_format(checkpoint, str(path))
    return checkpoint

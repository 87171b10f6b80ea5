"""The model and data settings a checkpoint was trained with, checked against a command before it runs.

Resuming (``fit --ckpt_path``) needs the same settings: different ones are refused, naming the keys.
Scoring (``validate``/``test --ckpt_path``) takes the checkpoint's settings for every key the command
leaves unset, and refuses a given value that cannot apply to the weights (another size or vocabulary).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonargparse import Namespace

from .checkpoint_format import load_checkpoint
from .errors import UsageError

# Settings that change how a run executes, not what it learns: free to differ, never taken from a checkpoint.
RUNTIME = {
    "model.compile", "model.compile_mode", "model.cuda_graph", "data.cache_dir", "data.num_workers",
    "data.gather_on_device", "data.download_gutenberg", "data.gutenberg_ids", "data.gutenberg_mirror",
    "data.gutenberg_retries", "data.gutenberg_deadline",
}  # fmt: skip
# Settings the weights are made for: scoring with another value is refused.
WEIGHTS = {"model.dim", "model.depth", "model.heads", "model.pos_encoding", "model.tie_embeddings", "data.vocab", "data.bpe_vocab_size"}


@dataclass
class CheckpointInfo:
    path: Path
    settings: dict[str, Any]  # {"model.dim": 256, "data.vocab": "byte", ...}
    global_step: int


def read_checkpoint(path: Path) -> CheckpointInfo:
    """The settings and step of a checkpoint written by ``ctt fit``; anything else is a UsageError that says why."""
    # Memory-mapped: only the small entries are read, not the weights.
    checkpoint = load_checkpoint(path, "--ckpt_path", mmap=True)
    groups = {"model": checkpoint["hyper_parameters"], "data": checkpoint.get("datamodule_hyper_parameters", {})}
    settings = {f"{group}.{k}": v for group, values in groups.items() for k, v in values.items() if not k.startswith("_")}
    return CheckpointInfo(path, settings, int(checkpoint.get("global_step", 0)))


def _applies(key: str, settings: dict[str, Any]) -> bool:
    """Whether a setting matters here: the BPE size only for a BPE vocabulary; model.context_len follows data.context_len."""
    if key == "data.bpe_vocab_size":
        return settings.get("data.vocab") == "bpe"
    return key not in RUNTIME and key != "model.context_len"


def _unknown(info: CheckpointInfo, config: Namespace) -> None:
    unknown = [key for key in info.settings if key not in config]
    if unknown:
        raise UsageError(
            f"{info.path} holds settings this version of ctt does not know ({', '.join(unknown)}); "
            "use the version that wrote it, or train a new checkpoint."
        )


def differences(info: CheckpointInfo, config: Namespace) -> list[str]:
    """The settings of a checkpoint that this command sets otherwise, as 'key value (this command: value)'."""
    _unknown(info, config)
    return [
        f"{key} {value!r} (this command: {config[key]!r})"
        for key, value in info.settings.items()
        if _applies(key, info.settings) and config[key] != value
    ]


def adopt(info: CheckpointInfo, config: Namespace, given: set[str]) -> None:
    """Score with the checkpoint's settings: set every key the command did not give; refuse given ones the weights cannot take."""
    _unknown(info, config)
    refused = []
    for key, value in info.settings.items():
        if key in RUNTIME:
            continue
        if key not in given:
            config[key] = value
        elif key in WEIGHTS and _applies(key, info.settings) and config[key] != value:
            refused.append(f"{key} {config[key]!r} (its weights have {value!r})")
    if "model.context_len" in config:  # linked to data.context_len, whichever of the two was given
        config["model.context_len"] = config["data.context_len"]
    if refused:
        raise UsageError(
            f"{'; '.join(refused)} cannot apply to {info.path}; leave it out: validate and test take the "
            "checkpoint's own model and data settings."
        )

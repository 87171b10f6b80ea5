"""A compact decoder-only language model trainer on PyTorch Lightning.

The classes below are imported on first use (PEP 562), so that `import lightning_app` and
`ctt --help` do not wait seconds for torch and Lightning.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .datamodule import LMSequenceDataset, TextDataModule
    from .language_model import LanguageModel
    from .model import TinyDecoderLM

_MODULE_OF = {
    "LMSequenceDataset": "datamodule",
    "TextDataModule": "datamodule",
    "LanguageModel": "language_model",
    "TinyDecoderLM": "model",
}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_MODULE_OF[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

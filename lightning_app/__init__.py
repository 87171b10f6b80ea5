"""A compact decoder-only language model trainer on PyTorch Lightning."""

from .datamodule import LMSequenceDataset, TextDataModule
from .language_model import LanguageModel
from .model import TinyDecoderLM

__all__ = ["LMSequenceDataset", "LanguageModel", "TextDataModule", "TinyDecoderLM"]

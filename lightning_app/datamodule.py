"""TextDataModule: finds the corpus, tokenizes it once into a cache, splits it and serves windows.

``prepare_data`` (one process per node) downloads and tokenizes; ``setup`` (every process) maps
the cached ids and splits them: the last ``val_fraction`` of the token stream is validation,
so no window straddles both splits.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from .corpus import EMBEDDED_CORPUS_NAME, text_files
from .token_cache import TokenizedCorpus, load_or_build
from .tokenizer import Tokenizer

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path("data")


class LMSequenceDataset(Dataset):
    """Windows of ``context_len + 1`` tokens every ``stride`` tokens; item i is (inputs, targets shifted by one)."""

    def __init__(self, tokens: np.ndarray, context_len: int, stride: int) -> None:
        if len(tokens) < context_len + 1:
            raise ValueError(f"{len(tokens)} tokens cannot fill one window of context_len + 1 = {context_len + 1}.")
        self.tokens, self.context_len, self.stride = tokens, context_len, stride
        self._offsets = np.arange(context_len + 1)

    def __len__(self) -> int:
        return (len(self.tokens) - self.context_len - 1) // self.stride + 1

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.__getitems__([index])
        return x[0], y[0]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole batch in one gather: (B, T) inputs and (B, T) targets, without a per-sample Python loop."""
        starts = np.asarray(indices, dtype=np.int64) * self.stride
        windows = torch.from_numpy(self.tokens[starts[:, None] + self._offsets].astype(np.int64))  # (B, T + 1)
        return windows[:, :-1], windows[:, 1:]


def _already_batched(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return batch  # LMSequenceDataset.__getitems__ returns whole batches


class TextDataModule(LightningDataModule):
    def __init__(
        self,
        data_dir: str | None = None,
        download_gutenberg: bool = False,
        vocab: Literal["byte", "char"] = "byte",
        context_len: int = 256,
        stride: int | None = None,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        cache_dir: str = ".ctt_cache",
        num_workers: int = 0,
    ) -> None:
        """Text corpus, tokenizer, train/validation split and batching.

        Args:
            data_dir: Folder of .txt files (read recursively, sorted). Default: ./data if it holds text, else the embedded corpus.
            download_gutenberg: Download a small Project Gutenberg bundle into data_dir (./data by default) first.
            vocab: Tokenizer: byte (fixed 256 UTF-8 bytes) or char (characters learned from the corpus).
            context_len: Tokens per training window; also the model's maximum sequence length.
            stride: Step between training windows (null: context_len, i.e. non-overlapping).
            batch_size: Windows per step (per device).
            val_fraction: Share of the token stream, taken from its end, kept for validation.
            cache_dir: Folder for the tokenized-corpus cache.
            num_workers: DataLoader worker processes (0 gathers batches in the main process).
        """
        super().__init__()
        self.save_hyperparameters()
        for name, value in (("context_len", context_len), ("batch_size", batch_size), ("stride", stride or 1)):
            if value <= 0:
                raise ValueError(f"data.{name} must be a positive integer, got {value}.")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be between 0 and 1 (exclusive), got {val_fraction}.")
        self.context_len, self.batch_size, self.num_workers = context_len, batch_size, num_workers
        self.stride = stride or context_len
        self.vocab, self.val_fraction, self.cache_dir = vocab, val_fraction, Path(cache_dir)
        self.download_gutenberg = download_gutenberg
        self.data_dir = self._resolve_data_dir(data_dir)
        self.corpus: TokenizedCorpus | None = None

    def _resolve_data_dir(self, data_dir: str | None) -> Path | None:
        """The folder to read, or None for the embedded corpus (only when the user named no folder)."""
        if data_dir is not None:
            path = Path(data_dir)
            if not self.download_gutenberg:
                if not path.is_dir():
                    raise FileNotFoundError(f"data.data_dir {path} does not exist; point it at a folder of .txt files.")
                if not text_files(path):
                    raise FileNotFoundError(f"data.data_dir {path} holds no .txt files; add some or point it elsewhere.")
            return path
        if self.download_gutenberg or (DEFAULT_DATA_DIR.is_dir() and text_files(DEFAULT_DATA_DIR)):
            return DEFAULT_DATA_DIR
        return None

    @property
    def tokenizer(self) -> Tokenizer:
        if self.corpus is None:
            raise RuntimeError("The corpus is loaded in setup(); call it first.")
        return self.corpus.tokenizer

    def prepare_data(self) -> None:
        if self.data_dir is None:
            log.info("No data given (./data holds no .txt files): training on %s.", EMBEDDED_CORPUS_NAME)
        load_or_build(self.data_dir, self.vocab, self.cache_dir)

    def setup(self, stage: str) -> None:
        if self.corpus is not None:
            return
        self.corpus = load_or_build(self.data_dir, self.vocab, self.cache_dir)
        tokens = self.corpus.tokens
        n_val = int(len(tokens) * self.val_fraction)
        needed = self.context_len + 1
        if min(n_val, len(tokens) - n_val) < needed:
            raise ValueError(
                f"The corpus has {len(tokens)} tokens, so a validation split of {n_val} and a training split of "
                f"{len(tokens) - n_val}; each needs at least context_len + 1 = {needed}: add text or lower data.context_len."
            )
        self.train_set = LMSequenceDataset(tokens[: len(tokens) - n_val], self.context_len, self.stride)
        # Validation windows never overlap, so every validation token is scored once.
        self.val_set = LMSequenceDataset(tokens[len(tokens) - n_val :], self.context_len, self.context_len)

    def _loader(self, dataset: LMSequenceDataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            collate_fn=_already_batched,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

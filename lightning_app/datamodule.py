"""TextDataModule: finds the corpus, tokenizes it once into a cache, splits it and serves windows.

``prepare_data`` (one process per node) downloads and tokenizes; ``setup`` (every process) maps
the cached ids and splits them: the last ``val_fraction`` of the token stream is validation
(with a BPE vocabulary, the tokens of the last ``val_fraction`` of the characters, the text the
vocabulary was not fitted on), so no window straddles both splits.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from jsonargparse.typing import NonNegativeInt, OpenUnitInterval, PositiveFloat, PositiveInt
from lightning.pytorch import LightningDataModule
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .corpus import EMBEDDED_CORPUS_NAME, text_files
from .credentials import mask_credentials
from .errors import UsageError, path_error
from .gutenberg import DEFAULT_IDS, DEFAULT_MIRROR, download_books
from .token_cache import TokenizedCorpus, load_or_build
from .tokenizer import Tokenizer

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path("data")


class LMSequenceDataset(Dataset):
    """Windows of ``context_len + 1`` tokens every ``stride`` tokens; item i is (inputs, targets shifted by one).

    The loaders serve window indices only; ``windows`` cuts a whole batch in one gather, on the
    host from the memory-mapped ids or on a GPU from a copy of them kept there.
    """

    def __init__(self, tokens: np.ndarray, context_len: int, stride: int) -> None:
        if len(tokens) < context_len + 1:
            raise ValueError(f"{len(tokens)} tokens cannot fill one window of context_len + 1 = {context_len + 1}.")
        self.tokens, self.context_len, self.stride = tokens, context_len, stride
        self._on_device: torch.Tensor | None = None  # the ids on the GPU, made on first use
        self._offsets: torch.Tensor | None = None

    def __len__(self) -> int:
        return (len(self.tokens) - self.context_len - 1) // self.stride + 1

    def windows(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets (B, T) of the windows ``indices`` (B,), cut on the device that holds ``indices``."""
        if indices.device.type == "cpu":
            starts = indices.numpy() * self.stride
            windows = torch.from_numpy(self.tokens[starts[:, None] + np.arange(self.context_len + 1)].astype(np.int64))
        else:
            if self._on_device is None or self._on_device.device != indices.device:
                self._on_device = torch.from_numpy(np.asarray(self.tokens).astype(np.int32)).to(indices.device)
                self._offsets = torch.arange(self.context_len + 1, device=indices.device)
            windows = self._on_device[indices[:, None] * self.stride + self._offsets].long()  # (B, T + 1)
        return windows[:, :-1], windows[:, 1:]


class ShardInOrder(DistributedSampler):
    """Window indices rank, rank + world, ... below ``windows``: each window on one rank only, none repeated.

    A DistributedSampler, so that a Trainer that shards samplers itself (``use_distributed_sampler``,
    its default) leaves this one as it is instead of padding the split with repeats.
    """

    def __init__(self, dataset: Dataset, world: int, rank: int, windows: int) -> None:
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=False)
        self.shard = range(rank, windows, world)

    def __iter__(self) -> Iterator[int]:
        return iter(self.shard)

    def __len__(self) -> int:
        return len(self.shard)


class ResumableDataLoader(DataLoader):
    """A DataLoader that remembers how much of the epoch it served, so a resumed run skips it.

    Lightning saves ``state_dict()`` in every checkpoint and calls ``load_state_dict()`` on resume;
    with a sampler seeded by (seed, epoch) the skipped batches are exactly those already trained on.
    The count is kept in windows of the whole run: the ranks together take the seeded permutation
    from its start, so a run resumed on another number of devices skips the same windows (to within
    one batch per device).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._served = 0
        self._to_skip = 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        batches = super().__iter__()
        self._served, self._to_skip = self._to_skip, 0
        for _ in range(self._served):
            next(batches)
        for batch in batches:
            self._served += 1
            yield batch

    def _windows_per_batch(self) -> int:
        """Windows that one batch on every rank takes from the epoch's permutation."""
        return self.batch_size * getattr(self.sampler, "num_replicas", 1)

    def state_dict(self) -> dict[str, int]:
        return {"batches_served": self._served, "windows_served": self._served * self._windows_per_batch()}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if "windows_served" in state:
            self._to_skip = state["windows_served"] // self._windows_per_batch()
        else:  # a checkpoint written before the count was kept in windows
            self._to_skip = state["batches_served"]


def _seed() -> int:
    """The run's seed, which orders the training windows (seed_everything sets it)."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


class TextDataModule(LightningDataModule):
    def __init__(
        self,
        data_dir: str | None = None,
        download_gutenberg: bool = False,
        gutenberg_ids: list[PositiveInt] = DEFAULT_IDS,
        gutenberg_mirror: str = DEFAULT_MIRROR,
        gutenberg_retries: NonNegativeInt = 4,
        gutenberg_deadline: PositiveFloat = 300.0,
        vocab: Literal["byte", "char", "bpe"] = "byte",
        bpe_vocab_size: int = 4096,
        context_len: PositiveInt = 256,
        stride: PositiveInt | None = None,
        batch_size: PositiveInt = 32,
        val_fraction: OpenUnitInterval = 0.1,
        cache_dir: str = ".ctt_cache",
        num_workers: NonNegativeInt = 0,
        gather_on_device: bool = True,
    ) -> None:
        """Text corpus, tokenizer, train/validation split and batching.

        Args:
            data_dir: Folder of .txt files (read recursively, sorted). Default: ./data if it holds text, else the embedded corpus.
            download_gutenberg: Download Project Gutenberg books into data_dir (./data by default) first; books already there are kept.
            gutenberg_ids: Ebook numbers to download (Pride and Prejudice, Frankenstein, Alice, Moby-Dick, A Tale of Two Cities).
            gutenberg_mirror: Base URL of the Gutenberg site or a mirror; book N is {mirror}/cache/epub/N/pgN.txt. A password in it is shown and saved as ***.
            gutenberg_retries: Retries of a book after a connection error, time-out, 429 or 5xx answer (backoff 1, 2, 4, ... s).
            gutenberg_deadline: Seconds one book may take to download in all, however slowly the server sends it.
            vocab: Tokenizer: byte (fixed 256 UTF-8 bytes), char (characters learned from the corpus) or bpe (byte-level BPE learned from the training split).
            bpe_vocab_size: Vocabulary size of the byte-level BPE (data.vocab bpe), trained on the training split.
            context_len: Tokens per training window; also the model's maximum sequence length.
            stride: Step between training windows (null: context_len, i.e. non-overlapping).
            batch_size: Windows per step (per device).
            val_fraction: Share of the token stream (of the characters with data.vocab bpe), taken from its end, kept for validation.
            cache_dir: Folder for the tokenized-corpus cache.
            num_workers: DataLoader worker processes (0 is enough: a batch is one gather).
            gather_on_device: Keep the token ids on the GPU and cut windows there; turn off for corpora too large for its memory.
        """
        super().__init__()
        self.save_hyperparameters()
        self._gutenberg_mirror = gutenberg_mirror  # the real URL, for the requests only
        # What is saved (hparams.yaml, checkpoints) shows the URL without its password. Under LightningCLI the
        # hparams are the parsed arguments themselves, so both the live and the initial (logged) copy are fixed.
        for saved in (self.hparams, self._hparams_initial):
            saved["gutenberg_mirror"] = mask_credentials(gutenberg_mirror)
        # From Python the constrained types are not checked; the command line refuses these values when parsing.
        for name, value in (("context_len", context_len), ("batch_size", batch_size), ("stride", 1 if stride is None else stride)):
            if value <= 0:
                raise UsageError(f"data.{name} must be a positive integer, got {value}.")
        if not 0.0 < val_fraction < 1.0:
            raise UsageError(f"data.val_fraction must be between 0 and 1 (exclusive), got {val_fraction}.")
        if download_gutenberg and not gutenberg_ids:
            raise UsageError("data.download_gutenberg is on, but data.gutenberg_ids is empty; list the books to fetch.")
        self.data_dir: Path | None = None  # resolved in prepare_data and setup, where the data work happens
        self.corpus: TokenizedCorpus | None = None
        self.train_set: LMSequenceDataset | None = None  # and val_set: made in setup

    @property
    def stride(self) -> int:
        """The step between training windows (data.stride; null means context_len)."""
        return self.hparams.stride or self.hparams.context_len

    def _resolve_data_dir(self) -> Path | None:
        """The folder to read, or None for the embedded corpus (only when the user named no folder)."""
        data_dir = self.hparams.data_dir
        if data_dir is None and self.hparams.download_gutenberg and DEFAULT_DATA_DIR.is_file():
            raise UsageError(
                f"The default data folder ./{DEFAULT_DATA_DIR} is a file, so the books cannot be downloaded there; "
                "move it or set data.data_dir."
            )
        if data_dir is not None:
            path = Path(data_dir).expanduser()
            if path.is_file():
                raise UsageError(f"data.data_dir {path} is a file; point it at the folder of .txt files that holds it.")
            if not self.hparams.download_gutenberg:
                if not path.is_dir():
                    raise UsageError(f"data.data_dir {path} does not exist; point it at a folder of .txt files.")
                try:
                    os.listdir(path)  # a folder that cannot be read would look empty to the search below
                except OSError as err:
                    raise path_error(err, "data.data_dir", path, "make it readable or point it elsewhere") from err
                if not text_files(path):
                    raise UsageError(f"data.data_dir {path} holds no .txt files; add some or point it elsewhere.")
            return path
        if self.hparams.download_gutenberg or (DEFAULT_DATA_DIR.is_dir() and text_files(DEFAULT_DATA_DIR)):
            return DEFAULT_DATA_DIR
        return None

    @property
    def tokenizer(self) -> Tokenizer:
        if self.corpus is None:
            raise RuntimeError("The corpus is loaded in setup(); call it first.")
        return self.corpus.tokenizer

    def prepare_data(self) -> None:
        self.data_dir = self._resolve_data_dir()
        if self.hparams.download_gutenberg:
            hp = self.hparams
            download_books(
                hp.gutenberg_ids,
                self.data_dir,
                self._gutenberg_mirror,
                retries=hp.gutenberg_retries,
                deadline=hp.gutenberg_deadline,
            )
        if self.data_dir is None:
            log.info("No data given (./data holds no .txt files): using %s.", EMBEDDED_CORPUS_NAME)
        self.corpus = self._load()  # kept for setup in this process, so the cache is read (and reported on) once

    def _load(self) -> TokenizedCorpus:
        hp = self.hparams
        return load_or_build(self.data_dir, hp.vocab, Path(hp.cache_dir).expanduser(), hp.bpe_vocab_size, hp.val_fraction)

    def setup(self, stage: str) -> None:
        if self.train_set is not None:
            return
        if self.corpus is None:  # the processes that did not prepare the data
            self.data_dir = self._resolve_data_dir()
            self.corpus = self._load()
        tokens = self.corpus.tokens
        context_len = self.hparams.context_len
        val_start = self.corpus.val_start  # BPE: where the text its vocabulary was fitted on ends
        n_val = int(len(tokens) * self.hparams.val_fraction) if val_start is None else len(tokens) - val_start
        needed = context_len + 1
        if min(n_val, len(tokens) - n_val) < needed:
            raise UsageError(
                f"The corpus has {len(tokens)} tokens, so a validation split of {n_val} and a training split of "
                f"{len(tokens) - n_val}; each needs at least context_len + 1 = {needed}: add text or lower data.context_len."
            )
        if self.stride > context_len and rank_zero_only.rank == 0:
            log.warning(
                "data.stride %d is longer than data.context_len %d: training leaves out %d of every %d tokens; "
                "set data.stride to %d or less to train on all of them.",
                self.stride, context_len, self.stride - context_len, self.stride, context_len,
            )  # fmt: skip
        self.train_set = LMSequenceDataset(tokens[: len(tokens) - n_val], context_len, self.stride)
        # Validation windows never overlap, so every validation token is scored at most once.
        self.val_set = LMSequenceDataset(tokens[len(tokens) - n_val :], context_len, context_len)
        rank_zero_info(f"Data: {self._describe()}.")

    def _source(self) -> str:
        """Where the text comes from, e.g. 'data (3 .txt files, 1.20 MB)'."""
        if self.data_dir is None:
            return EMBEDDED_CORPUS_NAME
        files = text_files(self.data_dir)
        return f"{self.data_dir} ({len(files)} .txt files, {sum(f.stat().st_size for f in files) / 1e6:.2f} MB)"

    def _describe(self) -> str:
        """The corpus, its size and tokens, and what one epoch holds, in one line."""
        tokenizer, world = self.corpus.tokenizer, 1 if self.trainer is None else self.trainer.world_size
        train, val, batch = self.train_set, self.val_set, self.hparams.batch_size
        return (
            f"{self._source()}: {len(self.corpus.tokens):,} tokens ({tokenizer.kind} vocabulary of {tokenizer.vocab_size}); "
            f"training {len(train.tokens):,} tokens in {len(train):,} windows, {len(train) // (batch * world):,} "
            f"batches of {batch} per device per epoch; validation {len(val.tokens):,} tokens in {len(val):,} windows"
        )

    @functools.cached_property
    def _text(self) -> dict[str, str]:
        """The text this datamodule reads: a hash of its bytes, and where it comes from."""
        return {"text_hash": self.corpus.text_hash, "text": self._source()}

    def state_dict(self) -> dict[str, str | int]:
        """Stored in checkpoints, so that resuming on other text or in another order is refused, and scoring on
        other text is said."""
        return {**self._text, "seed": _seed()} if self.corpus is not None else {}

    def load_state_dict(self, state_dict: dict[str, str | int]) -> None:
        if self.corpus is None:
            return
        fitting = self.trainer is not None and self.trainer.state.fn == TrainerFn.FITTING
        trained_on = state_dict.get("text_hash")
        if trained_on not in (None, self._text["text_hash"]):  # None: a checkpoint that predates the check
            other = f"the checkpoint was trained on {state_dict.get('text')}, and this command reads {self._text['text']}"
            if fitting:
                raise UsageError(f"--ckpt_path: {other}; resume on the same text, or leave --ckpt_path out to start a new run.")
            if rank_zero_only.rank == 0:
                log.warning("Scoring on other text than the training text: %s.", other)
        if fitting and state_dict.get("seed", _seed()) != _seed():
            raise UsageError(
                f"--ckpt_path: the checkpoint was trained with seed_everything {state_dict['seed']}, and this command sets "
                f"{_seed()}; the order of the training windows follows it: resume with the same seed, or leave --ckpt_path "
                "out to start a new run."
            )

    def _loader(
        self,
        dataset: LMSequenceDataset,
        sampler: Iterable[int],
        loader: type[DataLoader] = DataLoader,
        drop_last: bool = False,
    ) -> DataLoader:
        """Batches of window indices (B,); the windows themselves are cut in the batch-transfer hooks."""
        return loader(
            range(len(dataset)),
            batch_size=self.hparams.batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.hparams.num_workers,
            # Pinned batches copy to the GPU without waiting for it, even the small index batches.
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.hparams.num_workers > 0,
        )

    def _windows(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.train_set if self.trainer.training else self.val_set).windows(indices)

    def on_before_batch_transfer(self, batch: torch.Tensor, dataloader_idx: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return batch if self.hparams.gather_on_device else self._windows(batch)

    def on_after_batch_transfer(self, batch: torch.Tensor | tuple, dataloader_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._windows(batch) if self.hparams.gather_on_device else batch

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        # Each rank draws its own share of a permutation seeded by (seed, epoch): Lightning calls
        # set_epoch, so the order is the same after a resume, on any number of devices.
        rank, world = self._rank_and_world()
        sampler = DistributedSampler(self.train_set, num_replicas=world, rank=rank, shuffle=True, seed=_seed(), drop_last=True)
        if len(sampler) < self.hparams.batch_size:
            raise UsageError(
                f"The training split has {len(self.train_set)} windows, {len(sampler)} per device, fewer than "
                f"one batch of data.batch_size {self.hparams.batch_size}: lower data.batch_size or data.stride, or add text."
            )
        # Every training batch is full: one shape for the compiled network and the recorded step.
        return self._loader(self.train_set, sampler, ResumableDataLoader, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        # Every validation window is scored exactly once across ranks (no padding repeats),
        # and the BPC metric sums over ranks, so val_bpc covers the whole split on every rank.
        rank, world = self._rank_and_world()
        windows = len(self.val_set)
        if self.trainer is not None and isinstance(self.trainer.strategy, FSDPStrategy):
            # FSDP ranks gather weights in every forward, so all must run as many batches:
            # the last (at most world - 1) windows are left out.
            windows -= windows % world
        return self._loader(self.val_set, ShardInOrder(self.val_set, world, rank, windows))

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

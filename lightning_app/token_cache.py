"""The tokenized corpus on disk: a flat file of token ids, memory-mapped, keyed by content and tokenizer.

``<cache_dir>/<key>.bin`` holds the ids; ``<key>.json``, written last, holds the tokenizer, the
dtype, the token count, where validation starts for a BPE vocabulary, and the notes made while
reading the files (shown again when the cache is used). The key hashes the raw bytes of every
input file and the tokenizer kind (for BPE also its size and the validation share kept out of its
training text), so changed files or another vocabulary never reuse a stale cache. Both files are
written to a temporary name and renamed, so a killed run leaves no half-written cache behind; a
``.bin`` whose size disagrees with its ``.json``, or that holds ids outside the vocabulary, is
rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .atomic_file import write_atomically
from .corpus import EMBEDDED_CORPUS_NAME, embedded_corpus, iter_documents, text_files
from .errors import path_error
from .tokenizer import BPETokenizer, ByteTokenizer, CharTokenizer, Tokenizer, ids_dtype, tokenizer_from_dict

log = logging.getLogger(__name__)

CACHE_VERSION = 4  # bump when cleaning or tokenizing changes what a corpus turns into
DOCUMENT_SEPARATOR = "\n\n"


@dataclass
class TokenizedCorpus:
    tokens: np.ndarray  # (N,) memory-mapped ids
    tokenizer: Tokenizer
    notes: list[str]  # warnings about the input files (not UTF-8, empty), made when the cache was built
    val_start: int | None = None  # BPE: the first validation token, the end of the text it was fitted on
    text_hash: str = ""  # the corpus bytes alone (corpus_hashes), set by load_or_build


def _hash_text(data_dir: Path | None, *digests: Any) -> list[str]:
    """Each digest updated with the corpus (every file's size and bytes, in order, or the embedded corpus), in one read."""

    def update(data: bytes) -> None:
        for digest in digests:
            digest.update(data)

    if data_dir is None:
        update(embedded_corpus().encode())
    else:
        for path in text_files(data_dir):
            try:
                with path.open("rb") as f:
                    update(f"{os.fstat(f.fileno()).st_size}:".encode())
                    while chunk := f.read(1 << 20):
                        update(chunk)
            except OSError as err:
                raise path_error(err, "The text file", path, "make it readable or move it out of data.data_dir") from err
    return [digest.hexdigest()[:32] for digest in digests]


def corpus_hashes(data_dir: Path | None, vocab: str, bpe_vocab_size: int = 4096, val_fraction: float = 0.1) -> tuple[str, str]:
    """The cache key (a hash of the corpus bytes, the tokenizer, and for BPE what it is fitted on, and the cache
    version) and a hash of the corpus bytes alone, the same in every version of ctt."""
    bpe = f"{bpe_vocab_size}:{val_fraction}:" if vocab == "bpe" else ""
    key, text = _hash_text(data_dir, hashlib.sha256(f"v{CACHE_VERSION}:{vocab}:{bpe}".encode()), hashlib.sha256())
    return key, text


Warn = Callable[[str], None]


def _stream(data_dir: Path | None, warn: Warn) -> Iterator[str]:
    """The corpus as the cache lays it out, piece by piece: the documents with separators between them."""
    for i, (_, text) in enumerate(iter_documents(data_dir, warn)):
        if i:
            yield DOCUMENT_SEPARATOR
        yield text


def _training_chars(data_dir: Path | None, val_fraction: float, warn: Warn) -> int:
    """How many of the corpus characters come before its validation tail (a pass over the corpus)."""
    return int(sum(len(piece) for piece in _stream(data_dir, warn)) * (1 - val_fraction))


def _split_stream(data_dir: Path | None, cut: int, warn: Warn) -> Iterator[tuple[str, bool]]:
    """The stream's pieces, the one holding character ``cut`` split there, each with True before the cut."""
    for piece in _stream(data_dir, warn):
        if 0 < cut < len(piece):
            yield piece[:cut], True
            yield piece[cut:], False
        else:
            yield piece, cut >= len(piece)
        cut -= len(piece)


def _fit_tokenizer(data_dir: Path | None, vocab: str, bpe_vocab_size: int, cut: int, warn: Warn) -> Tokenizer:
    if vocab == "byte":
        return ByteTokenizer()
    if vocab == "char":
        # The separator's characters always belong to the vocabulary, even for a single document.
        return CharTokenizer.fit(itertools.chain([DOCUMENT_SEPARATOR], _stream(data_dir, warn)))
    if vocab == "bpe":
        # Fitted on the text before the cut only, which becomes the training split: validation text never shapes the vocabulary.
        training = itertools.takewhile(lambda part: part[1], _split_stream(data_dir, cut, warn))
        return BPETokenizer.fit((piece for piece, _ in training), bpe_vocab_size)
    raise ValueError(f"data.vocab must be 'byte', 'char' or 'bpe', got {vocab!r}.")


def build(
    data_dir: Path | None, vocab: str, bin_path: Path, meta_path: Path, bpe_vocab_size: int, val_fraction: float
) -> None:
    """Clean and tokenize every document, streaming ids to ``bin_path``; then write ``meta_path``.

    The corpus is read more than once (to fit a tokenizer, then to encode): each note about a file is logged once.
    """
    notes: dict[str, None] = {}

    def warn(note: str) -> None:
        if note not in notes:
            notes[note] = None
            log.warning(note)

    bpe = vocab == "bpe"
    cut = _training_chars(data_dir, val_fraction, warn) if bpe else 0  # where the BPE's training text ends
    tokenizer = _fit_tokenizer(data_dir, vocab, bpe_vocab_size, cut, warn)
    tokens = training_tokens = 0

    def write_ids(f: BinaryIO) -> None:
        nonlocal tokens, training_tokens
        for piece, training in _split_stream(data_dir, cut, warn):  # encoded apart at the cut, so the split falls there
            ids = tokenizer.encode(piece)
            f.write(ids.tobytes())
            tokens += ids.size
            training_tokens += ids.size if training else 0

    write_atomically(bin_path, write_ids)
    meta = {
        "tokenizer": tokenizer.to_dict(),
        "dtype": ids_dtype(tokenizer.vocab_size).str,
        "tokens": tokens,
        "source": EMBEDDED_CORPUS_NAME if data_dir is None else str(data_dir),
        "notes": list(notes),
        **({"val_start": training_tokens} if bpe else {}),
    }
    write_atomically(meta_path, lambda f: f.write(json.dumps(meta).encode()))


def _load(bin_path: Path, meta_path: Path) -> TokenizedCorpus | None:
    """The cached corpus, or None when it is missing or does not match its metadata."""
    try:
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        dtype = np.dtype(meta["dtype"])
        if bin_path.stat().st_size != meta["tokens"] * dtype.itemsize:
            log.warning("The token cache %s is incomplete; rebuilding it.", bin_path)
            return None
        tokens = np.memmap(bin_path, dtype=dtype, mode="r") if meta["tokens"] else np.zeros(0, dtype)
        tokenizer = tokenizer_from_dict(meta["tokenizer"])
        if np.iinfo(dtype).max >= tokenizer.vocab_size and len(tokens) and int(tokens.max()) >= tokenizer.vocab_size:
            log.warning("The token cache %s holds ids outside its vocabulary (it is damaged); rebuilding it.", bin_path)
            return None
        return TokenizedCorpus(tokens, tokenizer, list(meta.get("notes", [])), meta.get("val_start"))
    except (FileNotFoundError, NotADirectoryError):  # no cache yet (a file in the way is reported when building)
        return None
    except OSError as err:
        raise path_error(err, "The token cache", meta_path, "fix its permissions or delete data.cache_dir") from err
    except (ValueError, KeyError, TypeError) as err:
        log.warning("The token cache %s is unreadable (%s); rebuilding it.", meta_path, err)
        return None


def load_or_build(
    data_dir: Path | None, vocab: str, cache_dir: Path, bpe_vocab_size: int = 4096, val_fraction: float = 0.1
) -> TokenizedCorpus:
    """The tokenized corpus, built once and memory-mapped from ``cache_dir`` after that.

    ``bpe_vocab_size`` and ``val_fraction`` matter for ``vocab="bpe"`` only: the BPE learns from
    the first ``1 - val_fraction`` of the characters, and validation starts where they end (``val_start``).
    """
    key, text_hash = corpus_hashes(data_dir, vocab, bpe_vocab_size, val_fraction)
    bin_path, meta_path = cache_dir / f"{key}.bin", cache_dir / f"{key}.json"
    corpus = _load(bin_path, meta_path)
    if corpus is not None:
        for note in corpus.notes:  # what the build said about the files, said again for this run
            log.warning(note)
        return dataclasses.replace(corpus, text_hash=text_hash)
    log.info("Tokenizing %s (%s vocabulary) into %s", data_dir or EMBEDDED_CORPUS_NAME, vocab, bin_path)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        build(data_dir, vocab, bin_path, meta_path, bpe_vocab_size, val_fraction)
    except OSError as err:  # reading the text files reports its own errors: this is the cache folder
        raise path_error(err, "data.cache_dir", cache_dir, "choose another folder or make it writable") from err
    corpus = _load(bin_path, meta_path)
    assert corpus is not None, "a freshly written token cache must load"
    return dataclasses.replace(corpus, text_hash=text_hash)

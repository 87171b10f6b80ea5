"""The tokenized corpus on disk: a flat file of token ids, memory-mapped, keyed by content and tokenizer.

``<cache_dir>/<key>.bin`` holds the ids; ``<key>.json``, written last, holds the tokenizer, the
dtype and the token count. The key hashes the raw bytes of every input file and the tokenizer
kind, so changed files or another vocabulary never reuse a stale cache. Both files are written
to a temporary name and renamed, so a killed run leaves no half-written cache behind; a ``.bin``
whose size disagrees with its ``.json`` is rebuilt.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .corpus import EMBEDDED_CORPUS_NAME, embedded_corpus, iter_documents, text_files
from .tokenizer import ByteTokenizer, CharTokenizer, Tokenizer, tokenizer_from_dict

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when cleaning or tokenizing changes what a corpus turns into
DOCUMENT_SEPARATOR = "\n\n"


@dataclass
class TokenizedCorpus:
    tokens: np.ndarray  # (N,) memory-mapped ids
    tokenizer: Tokenizer
    documents: int


def corpus_key(data_dir: Path | None, vocab: str) -> str:
    """A hash of the corpus bytes, the tokenizer kind and the cache version."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}:{vocab}:".encode())
    if data_dir is None:
        digest.update(embedded_corpus().encode())
    else:
        for path in text_files(data_dir):
            digest.update(f"{path.stat().st_size}:".encode())
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()[:32]


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fit_tokenizer(data_dir: Path | None, vocab: str) -> Tokenizer:
    if vocab == "byte":
        return ByteTokenizer()
    if vocab == "char":
        texts = (text for _, text in iter_documents(data_dir))
        return CharTokenizer.fit(itertools.chain([DOCUMENT_SEPARATOR], texts))
    raise ValueError(f"data.vocab must be 'byte' or 'char', got {vocab!r}.")


def build(data_dir: Path | None, vocab: str, bin_path: Path, meta_path: Path) -> None:
    """Clean and tokenize every document, streaming ids to ``bin_path``; then write ``meta_path``."""
    tokenizer = _fit_tokenizer(data_dir, vocab)
    counts = {"tokens": 0, "documents": 0}
    separator = tokenizer.encode(DOCUMENT_SEPARATOR)

    def write_ids(f) -> None:
        for _, text in iter_documents(data_dir):
            ids = tokenizer.encode(text)
            if counts["documents"]:
                f.write(separator.tobytes())
                counts["tokens"] += separator.size
            f.write(ids.tobytes())
            counts["tokens"] += ids.size
            counts["documents"] += 1

    _atomic_write(bin_path, write_ids)
    meta = {
        "tokenizer": tokenizer.to_dict(),
        "dtype": separator.dtype.str,
        "tokens": counts["tokens"],
        "documents": counts["documents"],
        "source": EMBEDDED_CORPUS_NAME if data_dir is None else str(data_dir),
    }
    _atomic_write(meta_path, lambda f: f.write(json.dumps(meta).encode()))


def _load(bin_path: Path, meta_path: Path) -> TokenizedCorpus | None:
    """The cached corpus, or None when it is missing or does not match its metadata."""
    try:
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        dtype = np.dtype(meta["dtype"])
        if bin_path.stat().st_size != meta["tokens"] * dtype.itemsize:
            log.warning("The token cache %s is incomplete; rebuilding it.", bin_path)
            return None
        tokens = np.memmap(bin_path, dtype=dtype, mode="r") if meta["tokens"] else np.zeros(0, dtype)
        return TokenizedCorpus(tokens, tokenizer_from_dict(meta["tokenizer"]), meta["documents"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as err:
        log.warning("The token cache %s is unreadable (%s); rebuilding it.", meta_path, err)
        return None


def load_or_build(data_dir: Path | None, vocab: str, cache_dir: Path) -> TokenizedCorpus:
    """The tokenized corpus, built once and memory-mapped from ``cache_dir`` after that."""
    key = corpus_key(data_dir, vocab)
    bin_path, meta_path = cache_dir / f"{key}.bin", cache_dir / f"{key}.json"
    corpus = _load(bin_path, meta_path)
    if corpus is None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        log.info("Tokenizing %s (%s vocabulary) into %s", data_dir or EMBEDDED_CORPUS_NAME, vocab, bin_path)
        build(data_dir, vocab, bin_path, meta_path)
        corpus = _load(bin_path, meta_path)
        assert corpus is not None, "a freshly written token cache must load"
    return corpus

"""Tokenizers: text <-> token ids, plus how many characters each token stands for.

Token ids are numpy arrays of the smallest unsigned dtype that holds the vocabulary, never
Python lists of ints, so a 100 MB corpus costs 100-200 MB, not gigabytes.

``chars_per_token`` is what lets bits-per-character be true BPC for every tokenizer: a byte
token counts one character if it starts a UTF-8 sequence and zero if it continues one, and a
BPE token counts the UTF-8 lead bytes of the byte string it stands for.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any, Protocol

import numpy as np


def ids_dtype(vocab_size: int) -> np.dtype:
    """Smallest unsigned integer dtype that can hold ids below ``vocab_size``."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise ValueError(f"A vocabulary of {vocab_size} tokens is too large.")


class Tokenizer(Protocol):
    kind: str
    vocab_size: int

    def encode(self, text: str) -> np.ndarray: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def chars_per_token(self) -> np.ndarray: ...

    def to_dict(self) -> dict[str, Any]: ...


class ByteTokenizer:
    """Raw UTF-8 bytes: a fixed vocabulary of 256 tokens that can encode any text."""

    kind = "byte"
    vocab_size = 256

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()

    def decode(self, ids: Iterable[int]) -> str:
        # A sample can stop in the middle of a multi-byte character: show U+FFFD, never raise.
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def chars_per_token(self) -> np.ndarray:
        # UTF-8 continuation bytes are 0b10xxxxxx (0x80-0xBF); every other byte starts a character.
        counts = np.ones(256, dtype=np.int64)
        counts[0x80:0xC0] = 0
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}


class CharTokenizer:
    """One token per Unicode character, the vocabulary learned (sorted) from the corpus."""

    kind = "char"

    def __init__(self, chars: str) -> None:
        if len(set(chars)) != len(chars):
            raise ValueError("A char vocabulary must not repeat characters.")
        self.chars = "".join(sorted(chars))
        self.vocab_size = len(self.chars)
        self._codepoints = np.array([ord(c) for c in self.chars], dtype=np.uint32)
        self._dtype = ids_dtype(self.vocab_size)

    @classmethod
    def fit(cls, texts: Iterable[str]) -> CharTokenizer:
        """Learn the vocabulary: every distinct character of ``texts``."""
        seen: set[str] = set()
        for text in texts:
            seen.update(text)
        return cls("".join(seen))

    def encode(self, text: str) -> np.ndarray:
        codepoints = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = np.searchsorted(self._codepoints, codepoints)
        ids = np.minimum(ids, self.vocab_size - 1)
        unknown = self._codepoints[ids] != codepoints
        if unknown.any():
            missing = "".join(sorted({chr(c) for c in codepoints[unknown]}))
            raise ValueError(
                f"The text holds characters outside the char vocabulary: {missing!r}; "
                "use only characters seen in training, or train with data.vocab byte."
            )
        return ids.astype(self._dtype)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def chars_per_token(self) -> np.ndarray:
        return np.ones(self.vocab_size, dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chars": self.chars}


def _tokenizers() -> ModuleType:
    """The Hugging Face ``tokenizers`` package, imported only when a BPE is used: it is an optional dependency."""
    try:
        import tokenizers
    except ImportError as err:
        raise ValueError(
            "data.vocab bpe needs the tokenizers package: pip install -e '.[bpe]' in the repository folder"
            " (make train installs it)."
        ) from err
    return tokenizers


def _byte_level_bytes() -> dict[str, int]:
    """The inverse of GPT-2's ``bytes_to_unicode``: which byte each character of a byte-level token stands for.

    Printable Latin-1 bytes stand for themselves; the other 68 bytes are shifted to U+0100 upward.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = [b for b in range(256) if b not in printable]
    return {chr(b): b for b in printable} | {chr(256 + i): b for i, b in enumerate(shifted)}


def _piece_end(text: str, at: int) -> int:
    """The end of a piece of ``text`` from ``at`` on: just after the first newline with a non-space on either side."""
    end = at
    while (end := text.find("\n", end)) != -1:
        if 0 < end < len(text) - 1 and not text[end - 1].isspace() and not text[end + 1].isspace():
            return end + 1
        end += 1
    return len(text)


class BPETokenizer:
    """Byte-level BPE (as GPT-2's) from Hugging Face ``tokenizers``: the 256 bytes plus merges learned from the corpus.

    Every text encodes, since any byte is a token, and decodes back exactly.
    """

    kind = "bpe"
    PIECE = 1 << 20  # characters encoded per call (see encode)

    def __init__(self, tokenizer_json: str) -> None:
        self._tokenizer = _tokenizers().Tokenizer.from_str(tokenizer_json)
        self.vocab_size = self._tokenizer.get_vocab_size()
        self._dtype = ids_dtype(self.vocab_size)

    @classmethod
    def fit(cls, texts: Iterable[str], vocab_size: int) -> BPETokenizer:
        """Learn at most ``vocab_size`` tokens from ``texts`` (fewer when the text runs out of pairs to merge)."""
        if vocab_size < 256:
            raise ValueError(f"data.bpe_vocab_size must be at least 256, one token per byte; got {vocab_size}.")
        hf = _tokenizers()
        tokenizer = hf.Tokenizer(hf.models.BPE())
        tokenizer.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = hf.decoders.ByteLevel()
        trainer = hf.trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet(),  # every byte, seen in training or not
            special_tokens=[],
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer.to_str())

    def encode(self, text: str) -> np.ndarray:
        # In pieces of about PIECE characters: one call on a whole 100 MB file would hold some 16 GB of token
        # objects. A piece ends just after a newline between two non-space characters, where the byte-level
        # pre-tokenizer splits anyway, so the tokens are those of a single call.
        pieces, start = [], 0
        while start < len(text):
            stop = _piece_end(text, start + self.PIECE)
            ids = self._tokenizer.encode(text[start:stop], add_special_tokens=False).ids
            pieces.append(np.array(ids, dtype=self._dtype))
            start = stop
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=self._dtype)

    def decode(self, ids: Iterable[int]) -> str:
        # The byte-level decoder shows U+FFFD for a character cut off mid-sequence, never raises.
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

    def chars_per_token(self) -> np.ndarray:
        # Each character's lead byte lies in exactly one token, so counting lead bytes sums to the text's length.
        byte_of = _byte_level_bytes()
        counts = np.zeros(self.vocab_size, dtype=np.int64)
        for token, i in self._tokenizer.get_vocab().items():
            counts[i] = sum(not 0x80 <= byte_of[c] < 0xC0 for c in token)
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokenizer": self._tokenizer.to_str()}


def tokenizer_from_dict(meta: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from ``to_dict()`` output (as stored in checkpoints)."""
    kind = meta.get("kind")
    if kind == "byte":
        return ByteTokenizer()
    if kind == "char":
        return CharTokenizer(meta["chars"])
    if kind == "bpe":
        return BPETokenizer(meta["tokenizer"])
    raise ValueError(f"Unknown tokenizer kind {kind!r} in tokenizer metadata; expected 'byte', 'char' or 'bpe'.")

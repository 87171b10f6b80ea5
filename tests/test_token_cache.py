import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from lightning_app import token_cache
from lightning_app.corpus import iter_documents
from lightning_app.errors import UsageError
from lightning_app.token_cache import DOCUMENT_SEPARATOR, corpus_hashes, load_or_build
from lightning_app.tokenizer import BPETokenizer

from .conftest import SAMPLE_TEXT


def test_cache_holds_the_documents_joined(text_dir: Path, tmp_path: Path):
    corpus = load_or_build(text_dir, "char", tmp_path / "cache")
    expected = DOCUMENT_SEPARATOR.join(text for _, text in iter_documents(text_dir))
    assert corpus.tokenizer.decode(corpus.tokens) == expected
    assert isinstance(corpus.tokens, np.memmap)


def test_bpe_cache_holds_the_documents_joined(text_dir: Path, tmp_path: Path):
    corpus = load_or_build(text_dir, "bpe", tmp_path / "cache", bpe_vocab_size=300)
    expected = DOCUMENT_SEPARATOR.join(text for _, text in iter_documents(text_dir))
    assert corpus.tokenizer.kind == "bpe" and corpus.tokenizer.vocab_size <= 300
    assert corpus.tokenizer.decode(corpus.tokens) == expected
    assert corpus.tokenizer.chars_per_token()[corpus.tokens].sum() == len(expected)


def _vocabulary(tokenizer: BPETokenizer) -> list[str]:
    return list(json.loads(tokenizer.to_dict()["tokenizer"])["model"]["vocab"])


def test_bpe_is_fitted_on_the_training_split_only(tmp_path: Path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text(SAMPLE_TEXT * 60, encoding="utf-8")
    (folder / "b.txt").write_text("Zyxquorbflim " * 60, encoding="utf-8")  # the last 8% of the characters
    corpus = load_or_build(folder, "bpe", tmp_path / "cache", bpe_vocab_size=350, val_fraction=0.1)
    everything = BPETokenizer.fit((text for _, text in iter_documents(folder)), vocab_size=350)
    assert any("Zyxq" in token for token in _vocabulary(everything))
    assert not any("Zyxq" in token for token in _vocabulary(corpus.tokenizer))
    expected = DOCUMENT_SEPARATOR.join(text for _, text in iter_documents(folder))
    assert corpus.tokenizer.decode(corpus.tokens) == expected


def test_bpe_validation_starts_where_its_training_text_ends(tail_compresses_better: Path, tmp_path: Path):
    # The last 10% of the tokens would reach back into the text the vocabulary was fitted on.
    folder = tail_compresses_better
    corpus = load_or_build(folder, "bpe", tmp_path / "cache", bpe_vocab_size=300, val_fraction=0.1)
    text = DOCUMENT_SEPARATOR.join(text for _, text in iter_documents(folder))
    cut = int(len(text) * 0.9)
    assert corpus.tokenizer.decode(corpus.tokens[: corpus.val_start]) == text[:cut]
    assert corpus.tokenizer.decode(corpus.tokens[corpus.val_start :]) == text[cut:]
    assert len(corpus.tokens) - corpus.val_start < 0.1 * len(corpus.tokens)  # fewer than a tenth of the tokens
    assert load_or_build(folder, "bpe", tmp_path / "cache", bpe_vocab_size=300, val_fraction=0.1).val_start == corpus.val_start


def test_bpe_without_tokenizers_is_a_clear_error(text_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(ValueError, match=re.escape("pip install -e '.[bpe]'")):
        load_or_build(text_dir, "bpe", tmp_path / "cache")


def test_second_load_does_not_tokenize(text_dir: Path, tmp_path: Path, monkeypatch):
    load_or_build(text_dir, "byte", tmp_path / "cache")
    monkeypatch.setattr(token_cache, "build", lambda *a: (_ for _ in ()).throw(AssertionError("rebuilt")))
    assert len(load_or_build(text_dir, "byte", tmp_path / "cache").tokens) > 0


def corpus_key(*args, **kwargs) -> str:
    return corpus_hashes(*args, **kwargs)[0]


def test_key_changes_with_content_and_vocab(text_dir: Path):
    key = corpus_key(text_dir, "byte")
    assert corpus_key(text_dir, "char") != key
    assert corpus_key(text_dir, "bpe") != corpus_key(text_dir, "bpe", bpe_vocab_size=300)
    assert corpus_key(text_dir, "bpe") != corpus_key(text_dir, "bpe", val_fraction=0.2)
    assert corpus_key(text_dir, "byte", bpe_vocab_size=300, val_fraction=0.2) == key
    (text_dir / "a.txt").write_text("changed text")
    assert corpus_key(text_dir, "byte") != key


def test_the_text_hash_follows_the_bytes_alone(text_dir: Path, tmp_path: Path):
    text = corpus_hashes(text_dir, "byte")[1]
    assert corpus_hashes(text_dir, "char")[1] == corpus_hashes(text_dir, "bpe", bpe_vocab_size=300)[1] == text
    assert load_or_build(text_dir, "byte", tmp_path / "cache").text_hash == text  # built
    assert load_or_build(text_dir, "byte", tmp_path / "cache").text_hash == text  # read from the cache
    (text_dir / "a.txt").write_text("changed text")
    assert corpus_hashes(text_dir, "byte")[1] != text


def test_truncated_cache_is_rebuilt(text_dir: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    good = np.array(load_or_build(text_dir, "byte", cache).tokens)
    [bin_path] = cache.glob("*.bin")
    bin_path.write_bytes(bin_path.read_bytes()[:100])
    assert np.array_equal(np.array(load_or_build(text_dir, "byte", cache).tokens), good)
    assert not list(cache.glob("*.tmp"))


def test_cache_of_the_right_size_holding_ids_outside_the_vocabulary_is_rebuilt(text_dir: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    corpus = load_or_build(text_dir, "char", cache)
    good = np.array(corpus.tokens)
    [bin_path] = cache.glob("*.bin")
    bin_path.write_bytes(np.full(len(good), 255, dtype=corpus.tokens.dtype).tobytes())  # same size, damaged
    assert np.array_equal(np.array(load_or_build(text_dir, "char", cache).tokens), good)


def test_a_cache_folder_that_is_a_file_is_named(text_dir: Path, tmp_path: Path):
    (tmp_path / "cache").write_text("")
    with pytest.raises(UsageError, match=f"data.cache_dir {tmp_path / 'cache'} cannot be used: a file is in the way"):
        load_or_build(text_dir, "byte", tmp_path / "cache")

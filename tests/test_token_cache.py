from pathlib import Path

import numpy as np

from lightning_app import token_cache
from lightning_app.corpus import iter_documents
from lightning_app.token_cache import DOCUMENT_SEPARATOR, corpus_key, load_or_build


def test_cache_holds_the_documents_joined(text_dir: Path, tmp_path: Path):
    corpus = load_or_build(text_dir, "char", tmp_path / "cache")
    expected = DOCUMENT_SEPARATOR.join(text for _, text in iter_documents(text_dir))
    assert corpus.tokenizer.decode(corpus.tokens) == expected
    assert corpus.documents == 2 and isinstance(corpus.tokens, np.memmap)


def test_second_load_does_not_tokenize(text_dir: Path, tmp_path: Path, monkeypatch):
    load_or_build(text_dir, "byte", tmp_path / "cache")
    monkeypatch.setattr(token_cache, "build", lambda *a: (_ for _ in ()).throw(AssertionError("rebuilt")))
    assert len(load_or_build(text_dir, "byte", tmp_path / "cache").tokens) > 0


def test_key_changes_with_content_and_vocab(text_dir: Path):
    key = corpus_key(text_dir, "byte")
    assert corpus_key(text_dir, "char") != key
    (text_dir / "a.txt").write_text("changed text")
    assert corpus_key(text_dir, "byte") != key


def test_truncated_cache_is_rebuilt(text_dir: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    good = np.array(load_or_build(text_dir, "byte", cache).tokens)
    [bin_path] = cache.glob("*.bin")
    bin_path.write_bytes(bin_path.read_bytes()[:100])
    assert np.array_equal(np.array(load_or_build(text_dir, "byte", cache).tokens), good)
    assert not list(cache.glob("*.tmp"))

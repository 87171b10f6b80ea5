import re
import sys

import numpy as np
import pytest

from lightning_app.tokenizer import BPETokenizer, ByteTokenizer, CharTokenizer, ids_dtype, tokenizer_from_dict

from .conftest import SAMPLE_TEXT


def test_byte_round_trip_non_ascii():
    tok = ByteTokenizer()
    ids = tok.encode(SAMPLE_TEXT)
    assert ids.dtype == np.uint8 and len(ids) == len(SAMPLE_TEXT.encode("utf-8"))
    assert tok.decode(ids) == SAMPLE_TEXT


def test_byte_chars_per_token_counts_lead_bytes():
    tok = ByteTokenizer()
    ids = tok.encode(SAMPLE_TEXT)
    assert tok.chars_per_token()[ids].sum() == len(SAMPLE_TEXT)


def test_byte_decode_of_a_cut_character_does_not_raise():
    assert ByteTokenizer().decode([0xE6, 0x9D]) == "\ufffd"


def test_char_round_trip_and_sorted_vocab():
    tok = CharTokenizer.fit([SAMPLE_TEXT])
    assert list(tok.chars) == sorted(set(SAMPLE_TEXT))
    ids = tok.encode(SAMPLE_TEXT)
    assert ids.dtype == np.uint8 and len(ids) == len(SAMPLE_TEXT)
    assert tok.decode(ids) == SAMPLE_TEXT
    assert tok.chars_per_token().sum() == tok.vocab_size


def test_char_unknown_characters_are_named():
    tok = CharTokenizer.fit(["abc"])
    with pytest.raises(ValueError, match=r"'xz'"):
        tok.encode("axbz")


@pytest.mark.parametrize("tok", [ByteTokenizer(), CharTokenizer.fit([SAMPLE_TEXT])])
def test_metadata_round_trip(tok):
    again = tokenizer_from_dict(tok.to_dict())
    assert again.to_dict() == tok.to_dict()
    assert again.decode(again.encode(SAMPLE_TEXT)) == SAMPLE_TEXT


MIXED_TEXT = "Café — 東京\n\n  runs   of spaces\tand tabs\r\n naïve Ünïcödé 🙂 end "


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.fit([SAMPLE_TEXT * 20], vocab_size=300)


@pytest.mark.parametrize("text", [SAMPLE_TEXT, MIXED_TEXT, "", "\n", "   ", "never seen: ßøå ЖЩ 𝔘"])
def test_bpe_round_trip(bpe: BPETokenizer, text: str):
    ids = bpe.encode(text)
    assert ids.dtype == np.uint16 and bpe.decode(ids) == text


def test_bpe_encodes_in_pieces_exactly_as_in_one_call(monkeypatch: pytest.MonkeyPatch):
    # Texts ending in " \n" teach a merge of the two that one call never makes inside "end \nnext" (two pieces
    # for its pre-tokenizer) but that a cut after any newline would.
    bpe = BPETokenizer.fit(["end \n"] * 200 + [SAMPLE_TEXT], vocab_size=300)
    text = "end \nnext\n\n  naïve\ncafé " * 50 + SAMPLE_TEXT
    whole = bpe._tokenizer.encode(text, add_special_tokens=False).ids
    monkeypatch.setattr(BPETokenizer, "PIECE", 7)  # many pieces
    assert bpe.encode(text).tolist() == whole
    assert bpe.encode("").tolist() == []


def test_bpe_merges_and_respects_vocab_size(bpe: BPETokenizer):
    assert 256 < bpe.vocab_size <= 300
    assert len(bpe.encode(SAMPLE_TEXT)) < len(SAMPLE_TEXT.encode("utf-8"))
    with pytest.raises(ValueError, match="at least 256"):
        BPETokenizer.fit([SAMPLE_TEXT], vocab_size=200)


@pytest.mark.parametrize("text", [SAMPLE_TEXT, MIXED_TEXT, "東京東京東京 ÜÜ"])
def test_bpe_chars_per_token_sums_to_the_character_count(bpe: BPETokenizer, text: str):
    counts = bpe.chars_per_token()
    assert counts.dtype == np.int64 and counts.shape == (bpe.vocab_size,)
    assert counts[bpe.encode(text)].sum() == len(text)


def test_bpe_decode_of_a_cut_character_does_not_raise(bpe: BPETokenizer):
    ids = bpe.encode("x 東")
    assert bpe.decode(ids[:-1]).endswith("\ufffd")


def test_bpe_metadata_round_trip(bpe: BPETokenizer):
    again = tokenizer_from_dict(bpe.to_dict())
    assert isinstance(again, BPETokenizer) and again.to_dict() == bpe.to_dict()
    assert np.array_equal(again.encode(MIXED_TEXT), bpe.encode(MIXED_TEXT))
    assert np.array_equal(again.chars_per_token(), bpe.chars_per_token())


def test_bpe_without_tokenizers_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    message = re.escape("data.vocab bpe needs the tokenizers package: pip install -e '.[bpe]' in the repository folder")
    with pytest.raises(ValueError, match=message):
        BPETokenizer.fit([SAMPLE_TEXT], vocab_size=300)


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown tokenizer kind"):
        tokenizer_from_dict({"kind": "wordpiece"})


def test_ids_dtype():
    assert ids_dtype(256) == np.uint8 and ids_dtype(257) == np.uint16 and ids_dtype(70_000) == np.uint32

import numpy as np
import pytest

from lightning_app.tokenizer import ByteTokenizer, CharTokenizer, ids_dtype, tokenizer_from_dict

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


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown tokenizer kind"):
        tokenizer_from_dict({"kind": "wordpiece"})


def test_ids_dtype():
    assert ids_dtype(256) == np.uint8 and ids_dtype(257) == np.uint16 and ids_dtype(70_000) == np.uint32

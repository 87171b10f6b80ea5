import re
import unicodedata

import pytest
import torch

from lightning_app.model import ModelConfig, TinyDecoderLM
from lightning_app.sampling import SamplingOptions, TextStream, generate, next_token, printable, sample_text
from lightning_app.tokenizer import BPETokenizer, ByteTokenizer


@pytest.mark.parametrize("pos_encoding", ["sinusoidal", "rotary"])
def test_greedy_cached_equals_uncached_past_the_context(pos_encoding):
    torch.manual_seed(0)
    model = TinyDecoderLM(ModelConfig(vocab_size=40, dim=32, depth=2, heads=4, context_len=16, pos_encoding=pos_encoding)).eval()
    prompt = torch.randint(0, 40, (2, 5))
    cached = generate(model, prompt, 60, temperature=0)
    plain = generate(model, prompt, 60, temperature=0, use_cache=False)
    assert cached.shape == (2, 65)
    assert torch.equal(cached, plain)


def test_prompt_longer_than_context_keeps_its_tail():
    torch.manual_seed(0)
    model = TinyDecoderLM(ModelConfig(vocab_size=40, dim=32, depth=1, heads=4, context_len=8)).eval()
    prompt = torch.randint(0, 40, (1, 30))
    other_head = torch.cat([torch.randint(0, 40, (1, 22)), prompt[:, -8:]], dim=1)
    out = generate(model, prompt, 5, temperature=0)
    assert out.shape == (1, 35) and torch.equal(out[:, :30], prompt)
    # Only the last context_len tokens count: the tail alone, or behind another head, continues the same way.
    assert torch.equal(generate(model, prompt[:, -8:], 5, temperature=0)[:, 8:], out[:, 30:])
    assert torch.equal(generate(model, other_head, 5, temperature=0)[:, 30:], out[:, 30:])


def test_seed_gives_the_same_sample():
    model = TinyDecoderLM(ModelConfig(vocab_size=40, dim=32, depth=1, heads=4, context_len=8)).eval()
    prompt = torch.zeros(1, 1, dtype=torch.long)
    runs = [generate(model, prompt, 30, generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    assert torch.equal(*runs)


def test_top_k_and_top_p_only_pick_allowed_tokens():
    logits = torch.tensor([[5.0, 4.0, 1.0, 0.0, -1.0]]).repeat(200, 1)
    assert set(next_token(logits, top_k=2).flatten().tolist()) <= {0, 1}
    # Token 0 holds ~73% of the mass: top_p 0.5 keeps it alone, 0.9 adds token 1.
    assert set(next_token(logits, top_p=0.5).flatten().tolist()) == {0}
    assert set(next_token(logits, top_p=0.9).flatten().tolist()) <= {0, 1}
    assert next_token(logits[:1], temperature=0).item() == 0


def test_on_token_gets_each_token_while_it_is_generated():
    model = TinyDecoderLM(ModelConfig(vocab_size=40, dim=32, depth=1, heads=4, context_len=8)).eval()
    prompt = torch.zeros(1, 3, dtype=torch.long)
    seen: list[torch.Tensor] = []
    out = generate(model, prompt, 20, generator=torch.Generator().manual_seed(1), on_token=seen.append)
    assert len(seen) == 20 and torch.equal(torch.cat(seen, dim=1), out[:, 3:])


def test_model_mode_is_restored_when_on_token_stops_the_loop():
    model = TinyDecoderLM(ModelConfig(vocab_size=40, dim=32, depth=1, heads=4, context_len=8)).train()

    def interrupt(token: torch.Tensor) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(model, torch.zeros(1, 2, dtype=torch.long), 10, on_token=interrupt)
    assert model.training


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"length": -1}, "length must be >= 0"),
        ({"temperature": -0.5}, "temperature must be >= 0"),
        ({"top_k": -2}, "top_k must be >= 0"),
        ({"top_p": 0.0}, "top_p must be in (0, 1]"),
        ({"top_p": 1.5}, "top_p must be in (0, 1]"),
        ({"prompt": ""}, "prompt must hold at least one character"),
    ],
)
def test_sampling_options_refuse_bad_values(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SamplingOptions(**changes)


def test_no_prompt_is_needed_when_no_text_is_asked_for():
    assert SamplingOptions(length=0, prompt="").prompt == ""


def test_printable_drops_control_characters_and_replacement_marks():
    assert printable("a\x1b[31mb\x03\r\n\tc\x7f\x9b\ufffdd\u00e9") == "a[31mb\n\tcd\u00e9"


def test_text_stream_holds_a_character_until_its_last_byte():
    text = "é日😀!"
    stream = TextStream(ByteTokenizer())
    pieces = [stream.push([byte]) for byte in text.encode()]
    assert "".join(pieces) == text
    assert pieces[-2] == "😀" and pieces[-5:-2] == ["", "", ""]  # the emoji's first three bytes wait for the fourth


def test_text_stream_lets_invalid_bytes_go():
    stream = TextStream(ByteTokenizer())
    assert stream.push([0xFF]) == "" and stream.push([0x41]) == "A"  # held in case it completes, then dropped
    for _ in range(3 * TextStream.MAX_HELD):  # continuation bytes that never complete a character
        assert stream.push([0x80]) == "" and len(stream.held) < TextStream.MAX_HELD
    assert stream.push([0xE6, 0x97], end=True) == ""  # a character cut off at the end is dropped


def test_text_stream_with_a_bpe_vocabulary():
    tokenizer = BPETokenizer.fit(["日本語のテキスト。" * 20, "plain words"], vocab_size=270)
    text = "日本語のテキスト。plain"
    ids = tokenizer.encode(text).tolist()
    stream = TextStream(tokenizer)
    pieces = [stream.push([i]) for i in ids]
    assert "".join(pieces) == text and all("\ufffd" not in p for p in pieces)
    assert len(ids) > len([p for p in pieces if p])  # some tokens ended inside a character and were held


def test_sample_from_a_byte_model_is_printable_and_streamed():
    torch.manual_seed(0)
    model = TinyDecoderLM(ModelConfig(vocab_size=256, dim=32, depth=1, heads=4, context_len=16)).eval()
    torch.nn.init.zeros_(model.head.weight)  # every byte equally likely: control bytes and broken UTF-8 galore
    options = SamplingOptions(length=200, prompt="é")
    pieces: list[str] = []
    text = sample_text(model, ByteTokenizer(), options, seed=3, on_text=pieces.append)
    assert len(pieces) > 50 and "".join(pieces) == text
    assert not [c for c in text if unicodedata.category(c) == "Cc" and c not in "\n\t"] and "\ufffd" not in text
    raw = generate(model, torch.tensor([[0xC3, 0xA9]]), 200, generator=torch.Generator().manual_seed(3))
    raw_text = ByteTokenizer().decode(raw[0, 2:].tolist())
    assert "\ufffd" in raw_text and any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in raw_text)
    assert 0 < len(text) < len(raw_text)

import pytest
import torch

from lightning_app.model import ModelConfig, TinyDecoderLM
from lightning_app.sampling import generate, next_token


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
    model = TinyDecoderLM(ModelConfig(vocab_size=40, dim=32, depth=1, heads=4, context_len=8)).eval()
    out = generate(model, torch.randint(0, 40, (1, 30)), 5, temperature=0)
    assert out.shape == (1, 35)


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

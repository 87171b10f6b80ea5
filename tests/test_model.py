import pytest
import torch

from lightning_app.model import TinyDecoderLM


def small(**kw) -> TinyDecoderLM:
    args = dict(vocab_size=50, dim=32, depth=2, heads=4, context_len=16) | kw
    return TinyDecoderLM(**args).eval()


def test_output_shape():
    model = small()
    assert model(torch.randint(0, 50, (3, 10))).shape == (3, 10, 50)


def test_causality_future_tokens_never_change_earlier_logits():
    torch.manual_seed(0)
    model = small()
    x = torch.randint(0, 50, (2, 16))
    y = x.clone()
    y[:, 9:] = torch.randint(0, 50, (2, 7))
    torch.testing.assert_close(model(x)[:, :9], model(y)[:, :9])
    assert not torch.allclose(model(x)[:, 9:], model(y)[:, 9:])


def test_kv_cache_matches_full_forward():
    torch.manual_seed(0)
    model = small()
    x = torch.randint(0, 50, (2, 12))
    full = model(x)
    cache = model.new_cache(2)
    steps = [model(x[:, :5], cache)] + [model(x[:, t : t + 1], cache) for t in range(5, 12)]
    assert int(cache.pos) == 12
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-5)


def test_longer_than_context_is_an_error():
    with pytest.raises(ValueError, match="exceed the model's context of 16"):
        small()(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"dim": 30, "heads": 4}, "divisible"), ({"dim": 9, "heads": 3}, "even"), ({"depth": 0}, "depth"), ({"dropout": 1.0}, "dropout")],
)
def test_bad_sizes_are_clear_errors(kw, message):
    with pytest.raises(ValueError, match=message):
        small(**kw)


def test_model_does_not_import_lightning():
    import lightning_app.model as module

    source = open(module.__file__).read()
    assert "lightning" not in source.replace("lightning_app", "")

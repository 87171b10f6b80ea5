import pytest
import torch

from lightning_app.language_model import LanguageModel
from lightning_app.model import ModelConfig, TinyDecoderLM, apply_rotary, rotary_tables
from lightning_app.tokenizer import ByteTokenizer

POS_ENCODINGS = ["sinusoidal", "rotary"]


def small(**kw) -> TinyDecoderLM:
    args = dict(vocab_size=50, dim=32, depth=2, heads=4, context_len=16) | kw
    return TinyDecoderLM(ModelConfig(**args)).eval()


@pytest.mark.parametrize("pos_encoding", POS_ENCODINGS)
def test_output_shape(pos_encoding):
    model = small(pos_encoding=pos_encoding)
    assert model(torch.randint(0, 50, (3, 10))).shape == (3, 10, 50)


@pytest.mark.parametrize("pos_encoding", POS_ENCODINGS)
def test_causality_future_tokens_never_change_earlier_logits(pos_encoding):
    torch.manual_seed(0)
    model = small(pos_encoding=pos_encoding)
    x = torch.randint(0, 50, (2, 16))
    y = x.clone()
    y[:, 9:] = torch.randint(0, 50, (2, 7))
    torch.testing.assert_close(model(x)[:, :9], model(y)[:, :9])
    assert not torch.allclose(model(x)[:, 9:], model(y)[:, 9:])


@pytest.mark.parametrize("pos_encoding", POS_ENCODINGS)
def test_kv_cache_matches_full_forward(pos_encoding):
    torch.manual_seed(0)
    model = small(pos_encoding=pos_encoding)
    x = torch.randint(0, 50, (2, 12))
    full = model(x)
    cache = model.new_cache(2)
    steps = [model(x[:, :5], cache)] + [model(x[:, t : t + 1], cache) for t in range(5, 12)]
    assert int(cache.pos) == 12
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-5)


def test_rotary_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    cos, sin = rotary_tables(8, 32)
    q, k = torch.randn(2, 1, 1, 8)  # 2 x (B=1, H=1, T=1, D=8)

    def score(i: int, j: int) -> torch.Tensor:  # q at position i against k at position j
        return (apply_rotary(q, cos[i : i + 1], sin[i : i + 1]) * apply_rotary(k, cos[j : j + 1], sin[j : j + 1])).sum()

    for i, j in [(3, 1), (5, 5), (0, 7)]:
        for shift in (1, 10, 24):
            torch.testing.assert_close(score(i + shift, j + shift), score(i, j))
    assert not torch.allclose(score(3, 1), score(3, 2))  # but they do depend on it
    torch.testing.assert_close(score(0, 0), (q * k).sum())  # position 0 is no rotation


def test_rotary_positions_replace_the_sinusoidal_table():
    model = small(pos_encoding="rotary")
    assert not hasattr(model, "positions") and model.rope_cos.shape == model.rope_sin.shape == (16, 8)
    assert model.state_dict().keys() == small().state_dict().keys()  # the tables are not in checkpoints


def test_tied_embeddings_share_one_matrix():
    untied, tied = small(), small(tie_embeddings=True)
    assert tied.head.weight is tied.embed.weight
    untied_count, tied_count = (sum(p.numel() for p in model.parameters()) for model in (untied, tied))
    assert untied_count - tied_count == 50 * 32
    # The FLOP count keeps the head's matrix (once) and leaves out the embedding lookup, tied or not.
    assert tied.flops_per_token() == untied.flops_per_token()


def test_language_model_passes_the_options_through_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    module = LanguageModel(pos_encoding="rotary", tie_embeddings=True, dim=32, depth=1, heads=2, context_len=16)
    module._build(ByteTokenizer())
    assert module.hparams.pos_encoding == "rotary" and module.hparams.tie_embeddings is True
    checkpoint = {"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "model.ckpt")
    loaded = LanguageModel.from_checkpoint(tmp_path / "model.ckpt")
    assert loaded.model.config.pos_encoding == "rotary" and loaded.model.head.weight is loaded.model.embed.weight
    x = torch.randint(0, 256, (1, 16))
    torch.testing.assert_close(loaded(x), module.eval()(x))


def test_longer_than_context_is_an_error():
    with pytest.raises(ValueError, match="exceed the model's context of 16"):
        small()(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"dim": 30, "heads": 4}, "divisible"),
        ({"dim": 9, "heads": 3}, "even"),
        ({"dim": 30, "heads": 4, "pos_encoding": "rotary"}, "divisible"),
        ({"dim": 36, "heads": 4, "pos_encoding": "rotary"}, "must be even for rotary positions, got 9"),
        ({"pos_encoding": "alibi"}, "pos_encoding"),
        ({"depth": 0}, "depth"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_sizes_are_clear_errors(kw, message):
    with pytest.raises(ValueError, match=message):
        small(**kw)


def test_model_does_not_import_lightning():
    import lightning_app.model as module

    source = open(module.__file__).read()
    assert "lightning" not in source.replace("lightning_app", "")

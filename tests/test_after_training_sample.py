"""SampleText: the after-fit sample, with the `sample.*` options of `ctt fit` declared once in SamplingOptions."""

import unicodedata
from types import SimpleNamespace

import pytest
import torch

from lightning_app.after_training_sample import SampleText
from lightning_app.cli import main
from lightning_app.model import ModelConfig, TinyDecoderLM
from lightning_app.tokenizer import ByteTokenizer


def test_bad_values_are_named_by_their_key():
    with pytest.raises(ValueError, match=r"sample\.top_p must be in \(0, 1\], got 2"):
        SampleText(top_p=2)
    with pytest.raises(ValueError, match=r"sample\.prompt must hold at least one character"):
        SampleText(prompt="")
    assert SampleText(length=0, prompt="").length == 0  # the sample is off: no prompt needed


def test_fit_help_lists_the_sample_keys_with_their_descriptions(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--help"])
    assert exit_.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for key, words in [
        ("length", "after training (0 turns the sample off)"),
        ("prompt", "Text the sample starts from"),
        ("temperature", "Softmax temperature (0 is greedy)"),
        ("top_k", "most likely tokens"),
        ("top_p", "holding this much probability"),
    ]:
        assert f"--sample.{key} " in help_text and words in help_text.split(f"--sample.{key} ")[-1][:200]


def test_the_sample_after_training_is_printable(capsys):
    torch.manual_seed(0)
    model = TinyDecoderLM(ModelConfig(vocab_size=256, dim=32, depth=1, heads=4, context_len=16)).eval()
    torch.nn.init.zeros_(model.head.weight)  # every byte equally likely, control bytes included
    trainer = SimpleNamespace(is_global_zero=True, strategy=None)
    lm = SimpleNamespace(model=model, tokenizer=ByteTokenizer())
    SampleText(length=200, prompt="Th\x1be").on_train_end(trainer, lm)
    header, body = capsys.readouterr().out.split(" ---\n", 1)
    assert header == "\n--- sample (200 tokens, temperature 1.0, top_k 0)"
    assert body.startswith("The") and body.endswith("\n---\n")
    assert not [c for c in body if unicodedata.category(c) == "Cc" and c not in "\n\t"] and "\ufffd" not in body


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_sample_runs_on_the_training_device(text_dir, monkeypatch):
    from lightning_app import after_training_sample

    devices = []
    real = after_training_sample.sample_text
    monkeypatch.setattr(after_training_sample, "sample_text", lambda model, *a, **k: devices.append(next(model.parameters()).device.type) or real(model, *a, **k))
    main(["fit", "--model.dim=32", "--model.depth=1", "--model.heads=2", "--data.context_len=32", "--data.batch_size=8",
          "--trainer.max_steps=4", "--trainer.limit_val_batches=1", "--trainer.accelerator=gpu", "--trainer.devices=1",
          f"--data.data_dir={text_dir}", "--sample.length=8"])  # fmt: skip
    assert devices == ["cuda"]


def test_a_prompt_the_corpus_cannot_hold_is_refused_before_training_naming_sample_prompt():
    from lightning_app.errors import UsageError
    from lightning_app.tokenizer import CharTokenizer

    lm = SimpleNamespace(tokenizer=CharTokenizer.fit(["it was the best of times"]))
    with pytest.raises(UsageError, match=r"sample\.prompt 'It was' holds characters that this corpus lacks \('I'\)"):
        SampleText(length=10, prompt="It was").on_fit_start(trainer=None, pl_module=lm)
    SampleText(length=0, prompt="It was").on_fit_start(trainer=None, pl_module=lm)  # no sample: no check

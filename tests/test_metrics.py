import math

import torch

from lightning_app.metrics import BitsPerCharacter
from lightning_app.tokenizer import BPETokenizer, ByteTokenizer, CharTokenizer

from .conftest import SAMPLE_TEXT


def test_bpc_by_hand_with_multibyte_utf8():
    text = "aé東"  # 1 + 2 + 3 bytes, 3 characters
    tok = ByteTokenizer()
    ids = torch.from_numpy(tok.encode(text).astype("int64"))
    nll = torch.tensor([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])  # nats per byte token
    metric = BitsPerCharacter(torch.from_numpy(tok.chars_per_token()))
    metric.update(nll, ids)
    assert math.isclose(metric.compute().item(), (10.5 / math.log(2)) / 3, rel_tol=1e-6)


def test_bpc_accumulates_over_batches_and_resets():
    tok = CharTokenizer.fit(["ab"])
    metric = BitsPerCharacter(torch.from_numpy(tok.chars_per_token()))
    metric.update(torch.full((4,), math.log(2)), torch.zeros(4, dtype=torch.long))
    metric.update(torch.full((2,), 2 * math.log(2)), torch.ones(2, dtype=torch.long))
    assert math.isclose(metric.compute().item(), 8 / 6, rel_tol=1e-6)
    metric.reset()
    metric.update(torch.full((1,), math.log(2)), torch.zeros(1, dtype=torch.long))
    assert math.isclose(metric.compute().item(), 1.0, rel_tol=1e-6)


def test_byte_and_bpe_count_the_same_characters():
    text = SAMPLE_TEXT + "Zürich, 東京, naïve — 🙂\n"
    for tok in (ByteTokenizer(), BPETokenizer.fit([SAMPLE_TEXT * 20], vocab_size=300)):
        ids = torch.from_numpy(tok.encode(text).astype("int64"))
        metric = BitsPerCharacter(torch.from_numpy(tok.chars_per_token()))
        metric.update(torch.zeros(len(ids)), ids)
        assert metric.chars.item() == len(text)

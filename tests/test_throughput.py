import torch

from lightning_app.throughput import Throughput, peak_flops


def test_no_peak_off_the_gpu():
    assert peak_flops(torch.device("cpu")) is None


def test_an_unknown_chip_means_no_mfu(monkeypatch, recwarn):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some Future GPU")
    assert peak_flops(torch.device("cuda", 0)) is None and not recwarn.list


def test_the_group_title_is_one_sentence():
    assert Throughput.__doc__.count(".") == 1 and "\n" not in Throughput.__doc__

import pytest
import torch

from lightning_app.host_values import on_host


def test_on_host_gives_cpu_float_scalars():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    values = on_host({"loss": torch.tensor(2.5, device=device), "steps": torch.tensor(3), "lr": 1e-3})
    assert all(v.device.type == "cpu" and v.dtype == torch.float32 for v in values.values())
    assert [v.item() for v in values.values()] == pytest.approx([2.5, 3.0, 1e-3])

import logging
from pathlib import Path

import pytest
import torch

from lightning_app.cli import main
from lightning_app.language_model import LanguageModel, WarmupCosine

TINY = [
    "--model.dim=32", "--model.depth=2", "--model.heads=2", "--data.context_len=32", "--data.batch_size=8",
    "--trainer.max_steps=12", "--trainer.limit_val_batches=2", "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false", "--sample.length=0", "--model.warmup_steps=4", "--model.lr=3e-3",
]  # fmt: skip


def test_schedule_warms_up_then_decays_to_the_floor():
    schedule = WarmupCosine(warmup=4, floor=0.1, total=104)
    assert [schedule(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert schedule(54) == pytest.approx(0.55)
    assert schedule(104) == pytest.approx(0.1) and schedule(500) == pytest.approx(0.1)


def test_cuda_graph_with_a_graph_recording_compile_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="model.compile_mode"):
        LanguageModel(compile=True, compile_mode="reduce-overhead", cuda_graph=True)


def test_cuda_graph_on_a_cpu_says_why_and_trains_as_usual(text_dir: Path, caplog):
    with caplog.at_level(logging.INFO):
        main(["fit", *TINY, f"--data.data_dir={text_dir}", "--trainer.accelerator=cpu", "--model.cuda_graph=true"])
    assert "model.cuda_graph is not used: it needs a CUDA GPU" in caplog.text
    assert Path("checkpoints/model.ckpt").is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU (run on the GPU machine)")
def test_a_recorded_step_trains_like_lightnings_loop(text_dir: Path):
    weights = {}
    for cuda_graph in (False, True):
        main(["fit", *TINY, f"--data.data_dir={text_dir}", "--trainer.accelerator=gpu", "--trainer.devices=1",
              f"--model.cuda_graph={cuda_graph}", f"--checkpoint.dirpath=ckpt{cuda_graph}"])  # fmt: skip
        weights[cuda_graph] = torch.load(f"ckpt{cuda_graph}/last.ckpt", weights_only=True)["state_dict"]
    for name, tensor in weights[False].items():
        torch.testing.assert_close(weights[True][name], tensor, rtol=1e-3, atol=1e-4, msg=name)

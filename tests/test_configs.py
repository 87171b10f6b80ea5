import logging
from pathlib import Path

import torch
import yaml

from lightning_app.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DOWNLOAD = {"data_dir", "download_gutenberg", "gutenberg_ids"}


def test_the_gutenberg_recipe_is_the_gpu_recipe_plus_the_download():
    gpu = yaml.safe_load((CONFIGS / "gpu.yaml").read_text())
    gutenberg = yaml.safe_load((CONFIGS / "gutenberg-gpu.yaml").read_text())
    assert gutenberg["data"]["download_gutenberg"] is True and len(gutenberg["data"]["gutenberg_ids"]) == 10
    gutenberg["data"] = {key: value for key, value in gutenberg["data"].items() if key not in DOWNLOAD}
    assert gutenberg == gpu


def test_the_gpu_recipe_leaves_the_run_length_to_the_corpus():
    gpu = yaml.safe_load((CONFIGS / "gpu.yaml").read_text())
    assert gpu["trainer"]["max_epochs"] == -1 and gpu["trainer"]["max_steps"] == -1
    assert gpu["horizon"]["passes"] > 0 and gpu["horizon"]["patience"] > 0 and gpu["model"]["schedule"] == "wsd"


def test_the_gpu_recipe_runs_end_to_end_at_a_tiny_size_on_the_cpu(text_dir, caplog):
    tiny = ["--trainer.accelerator=cpu", "--trainer.precision=32", "--model.dim=32", "--model.depth=1", "--model.heads=2",
            "--data.context_len=32", "--data.batch_size=8", "--horizon.passes=1", "--horizon.min_steps=1", "--sample.length=8"]  # fmt: skip
    with caplog.at_level(logging.INFO):
        main(["fit", "--config", str(CONFIGS / "gpu.yaml"), f"--data.data_dir={text_dir}", *tiny])
    assert "Run length:" in caplog.text and "Stopped at step" in caplog.text
    checkpoint = torch.load("checkpoints/last.ckpt", weights_only=True)
    assert "current_model_state" in checkpoint  # validated and saved with the average of the weights
    assert any("momentum_buffer" in state for state in checkpoint["optimizer_states"][0]["state"].values())  # Muon

from pathlib import Path

import yaml

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

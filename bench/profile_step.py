"""Where a training step's host time goes: cProfile over `ctt fit` steps of the seed default model.

python bench/profile_step.py --data DIR [extra ctt fit flags]   (on a GPU machine)
Prints the functions with the most cumulative time per step (bench/speed.yaml: compiled blocks and
the recorded step; add e.g. --model.cuda_graph=false to profile without it).
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lightning_app.cli import main  # noqa: E402

STEPS = 400


def run() -> None:
    data_dir = sys.argv[sys.argv.index("--data") + 1]
    extra = sys.argv[sys.argv.index("--data") + 2 :]
    with tempfile.TemporaryDirectory() as logs:
        args = [
            "fit", "--config=bench/speed.yaml", f"--data.data_dir={data_dir}", f"--data.cache_dir={logs}/cache",
            "--trainer.devices=1", f"--trainer.max_steps={STEPS}", "--trainer.limit_val_batches=0",
            f"--checkpoint.dirpath={logs}/ckpt", "--trainer.enable_model_summary=false",
            f"--trainer.logger.init_args.save_dir={logs}", "--sample.length=0", *extra,
        ]  # fmt: skip
        profile = cProfile.Profile()
        profile.runcall(main, args)
    stats = pstats.Stats(profile)
    stats.sort_stats("cumulative").print_stats(r"(lightning|torch/optim|torch/_inductor/cudagraph_trees|torch/utils/data|lightning_app)", 40)


if __name__ == "__main__":
    run()

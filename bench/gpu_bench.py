"""GPU training speed through `ctt fit`, against a plain PyTorch loop over the same TinyDecoderLM.

Run on a GPU machine from the repository root:  python bench/gpu_bench.py --data DIR [--only WORD,WORD]
Prints one table: config, ms/step, tokens/s, model TFLOP/s, MFU (against the datasheet bf16 peak
and against a measured bf16 matmul rate) and peak GPU memory. Results go to bench/RESULTS.md by hand.
"""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lightning_app.throughput import peak_flops  # noqa: E402
from lightning_app.cli import main  # noqa: E402
from lightning_app.model import ModelConfig, TinyDecoderLM  # noqa: E402
from lightning_app.step_graph import StepGraph  # noqa: E402

# Each config: model and batch, `ctt fit` flags, and the plain loops measured beside it (see plain_loop).
SEED = dict(dim=256, depth=6, heads=8, context_len=256, batch=32, steps=600)
# Windows every 128 tokens: enough for 150 batches of 128 in one epoch (stride null would give 45).
GPT2 = dict(dim=768, depth=12, heads=12, context_len=1024, steps=150, flags=["--model.cuda_graph=false", "--data.stride=128"], plain_mode="default")
NANOGPT = "model compiled"  # the reference loop: the whole model compiled, nothing recorded
CONFIGS = {
    "seed default, compile": SEED | dict(flags=["--model.cuda_graph=false"], plain_mode="default", plain=[NANOGPT]),
    "seed default, compile reduce-overhead": SEED
    | dict(flags=["--model.cuda_graph=false", "--model.compile_mode=reduce-overhead"], plain_mode="reduce-overhead", plain=[NANOGPT]),
    "seed default, compile + recorded step (bench/speed.yaml)": SEED
    | dict(flags=[], plain_mode="default", plain=["blocks compiled, recorded"]),
    "seed default, recorded step, no compile": SEED | dict(flags=["--model.compile=false"], plain_mode=None, plain=["recorded"]),
    "GPT-2 small, batch 32, compile": GPT2 | dict(batch=32, plain=[]),
    "GPT-2 small, batch 128, compile": GPT2 | dict(batch=128, plain=[NANOGPT]),
}


def measured_matmul_flops() -> float:
    a, b = (torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(20):
        a @ b
    torch.cuda.synchronize()
    return 20 * 2 * 8192**3 / (time.perf_counter() - start)


def plain_loop(cfg: dict, plain: str, steps: int = 200) -> float:
    """ms/step of a minimal bf16 loop (nanoGPT's shape): forward, loss, backward, clip, fused AdamW.

    ``plain`` names the variant: "model" or "blocks" compiled, in a compile mode or not at all, and
    with the whole step recorded as one CUDA graph (StepGraph, as `model.cuda_graph`) or not.
    """
    model = TinyDecoderLM(ModelConfig(dim=cfg["dim"], depth=cfg["depth"], heads=cfg["heads"], context_len=cfg["context_len"])).cuda()
    mode = cfg["plain_mode"]
    for module in ([model] if "model compiled" in plain else model.blocks if "blocks compiled" in plain else []):
        module.compile(mode=mode)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=True)
    data = torch.randint(0, 256, (1_000_000,), device="cuda")
    offsets = torch.arange(cfg["context_len"] + 1, device="cuda")

    def train(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor]:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        opt.step()
        return (loss,)

    recorded = StepGraph(train, opt) if "recorded" in plain else None

    def step() -> None:
        starts = torch.randint(0, len(data) - cfg["context_len"] - 1, (cfg["batch"], 1), device="cuda")
        windows = data[starts + offsets]
        if recorded:
            recorded(windows[:, :-1], windows[:, 1:])
        else:
            train(windows[:, :-1], windows[:, 1:])
            opt.zero_grad(set_to_none=True)

    for _ in range(30):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps * 1000


def lightning_fit(cfg: dict, data_dir: str) -> tuple[float, float]:
    """tokens/s of `ctt fit` in steady state (its Throughput callback, last window) and peak GPU memory in GiB."""
    torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as logs:
        main([
            "fit", "--config=bench/speed.yaml", f"--data.data_dir={data_dir}", "--data.vocab=byte",
            f"--data.context_len={cfg['context_len']}", f"--data.batch_size={cfg['batch']}", f"--data.cache_dir={logs}/cache",
            f"--model.dim={cfg['dim']}", f"--model.depth={cfg['depth']}", f"--model.heads={cfg['heads']}", *cfg["flags"],
            "--trainer.devices=1", f"--trainer.max_steps={cfg['steps']}", "--trainer.limit_val_batches=0",
            f"--checkpoint.dirpath={logs}/ckpt", "--trainer.enable_model_summary=false",
            f"--trainer.logger.init_args.save_dir={logs}", "--throughput.window=50", "--sample.length=0",
        ])  # fmt: skip
        rows = list(csv.DictReader(open(next(Path(logs).rglob("metrics.csv")))))
    tokens_per_sec = [float(r["tokens_per_sec"]) for r in rows if r.get("tokens_per_sec")][-1]
    return tokens_per_sec, torch.cuda.max_memory_allocated() / 2**30


def main_bench() -> None:
    data_dir = sys.argv[sys.argv.index("--data") + 1]
    peak, measured = peak_flops(torch.device("cuda")), measured_matmul_flops()
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, datasheet bf16 peak {peak / 1e12:.0f} TFLOP/s, "
          f"measured 8192^3 bf16 matmul {measured / 1e12:.0f} TFLOP/s, {time.strftime('%Y-%m-%d')}")
    rows = []
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
    for name, cfg in CONFIGS.items():
        if only and not any(word in name for word in only):
            continue
        tokens = cfg["batch"] * cfg["context_len"]
        flops_per_token = TinyDecoderLM(ModelConfig(dim=cfg["dim"], depth=cfg["depth"], heads=cfg["heads"], context_len=cfg["context_len"])).flops_per_token()
        try:
            tps, mem = lightning_fit(cfg, data_dir)
        except (torch.OutOfMemoryError, SystemExit) as err:  # the CLI turns errors into one line and an exit
            print(f"[{name}] failed: {err!r}", flush=True)
            continue
        ms = tokens / tps * 1000
        tflops = tps * flops_per_token / 1e12
        rows.append((f"ctt fit: {name}", ms, tps, tflops, tflops * 1e12 / peak, tflops * 1e12 / measured, mem))
        print(f"[{name}] ctt fit {ms:.2f} ms/step", flush=True)
        for variant in cfg["plain"]:
            plain = f"plain loop: {name.split(',')[0]}, batch {cfg['batch']}, {variant}" + (f" ({cfg['plain_mode']})" if "compiled" in variant else "")
            plain_ms = plain_loop(cfg, variant, steps=min(200, cfg["steps"]))
            plain_tps = tokens / plain_ms * 1000
            plain_tflops = plain_tps * flops_per_token / 1e12
            rows.append((plain, plain_ms, plain_tps, plain_tflops, plain_tflops * 1e12 / peak, plain_tflops * 1e12 / measured, float("nan")))
            print(f"[{plain}] {plain_ms:.2f} ms/step", flush=True)
    print("\n| config | ms/step | tokens/s | model TFLOP/s | MFU (datasheet) | MFU (measured matmul) | peak GPU mem (GiB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, ms, tps, tflops, mfu, mfu_m, mem in rows:
        print(f"| {name} | {ms:.2f} | {tps:,.0f} | {tflops:.0f} | {mfu:.1%} | {mfu_m:.1%} | {mem:.1f} |")


if __name__ == "__main__":
    main_bench()

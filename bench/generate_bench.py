"""Batch-1 generation speed of the default model (256 x 6, context 256): KV cache against full recompute.

python bench/generate_bench.py [--device cuda] [--tokens 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lightning_app.model import ModelConfig, TinyDecoderLM  # noqa: E402
from lightning_app.sampling import generate  # noqa: E402


def tokens_per_sec(model: TinyDecoderLM, tokens: int, use_cache: bool, device: str) -> float:
    prompt = torch.tensor([[84, 104, 101]], device=device)  # "The"
    generate(model, prompt, 20, use_cache=use_cache)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    generate(model, prompt, tokens, generator=torch.Generator(device).manual_seed(0), use_cache=use_cache)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tokens", type=int, default=1000)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = TinyDecoderLM(ModelConfig()).to(args.device).eval()
    cached = tokens_per_sec(model, args.tokens, True, args.device)
    plain = tokens_per_sec(model, args.tokens, False, args.device)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"{where}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}: {args.tokens} tokens, batch 1")
    print(f"| KV cache | {cached:,.0f} tokens/s |\n| no cache | {plain:,.0f} tokens/s |\n| speed-up | {cached / plain:.1f}x |")


if __name__ == "__main__":
    main()

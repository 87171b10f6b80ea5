"""Quality against time on several corpora: ctt's GPU recipe against nanoGPT's recipe, each from a cold start.

Every run is a fresh `ctt fit` process with its own empty token cache and compile cache, so the
times include everything a user waits for: imports, tokenizing, compiling or recording, training
and validation. Runs are spread over the GPUs given, one process per GPU at a time unless
--per-gpu says otherwise (more than one distorts the times: use it for quality-only sweeps).

    python bench/quality_bench.py --books DIR_OF_GUTENBERG_BOOKS --out results/
    python bench/quality_bench.py --books DIR --corpora alice ten-books --recipes ctt \
        --variant "adamw=--model.optimizer adamw --model.lr 1e-3" --seeds 1 --gpus 0,1 --per-gpu 3

Prints a table (corpus, recipe, seed, best val BPC, step of the best, seconds to the best, seconds
to exit) and writes it, the raw results (JSON lines) and every run's log under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPES = {
    "ctt": ["--config", str(REPO / "configs/gpu.yaml")],
    "nanogpt": ["--config", str(REPO / "bench/nanogpt.yaml")],
}
# Corpus name -> Gutenberg book in --books, pgN.txt (as ctt downloads it) or pgN-title.txt (None: every
# book; "embedded": no data folder at all).
CORPORA = {"ten-books": None, "frankenstein": "pg84", "moby-dick": "pg2701", "alice": "pg11", "embedded": "embedded"}
# Single books not run alone while the recipe was chosen (not run by default). Both are among the ten
# books, whose runs trained on their text: they test other sizes and styles, not unseen text.
MORE_BOOKS = {"great-expectations": "pg1400", "huckleberry-finn": "pg76"}


def book_file(books: Path, name: str) -> Path | None:
    """The one file of corpus ``name`` in ``books``, or None when it is missing or not unique."""
    book = (CORPORA | MORE_BOOKS)[name]
    found = [*books.glob(f"{book}.txt"), *books.glob(f"{book}-*.txt")]
    return found[0] if len(found) == 1 else None


def corpus_args(name: str, books: Path, workdir: Path) -> list[str]:
    prefix = (CORPORA | MORE_BOOKS)[name]
    if prefix == "embedded":
        return []  # the working folder has no ./data, so ctt uses its embedded corpus
    if prefix is None:
        return ["--data.data_dir", str(books)]
    folder = workdir / "corpus"
    folder.mkdir()
    book = book_file(books, name)
    (folder / book.name).symlink_to(book)
    return ["--data.data_dir", str(folder)]


def run_one(job: dict, books: Path, gpu: str, log_file: Path, lock: threading.Lock) -> dict:
    with tempfile.TemporaryDirectory(prefix="ctt-bench-") as tmp:
        workdir = Path(tmp)
        env = os.environ | {
            "CUDA_VISIBLE_DEVICES": gpu,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "TORCHINDUCTOR_CACHE_DIR": str(workdir / "inductor"),  # a cold compile cache for every run
            "TRITON_CACHE_DIR": str(workdir / "triton"),
        }
        cmd = [
            sys.executable, "-m", "lightning_app", "fit", *RECIPES[job["recipe"]], *job["extra"],
            *corpus_args(job["corpus"], books, workdir),
            "--seed_everything", str(job["seed"]),
            "--data.cache_dir", str(workdir / "cache"),
            "--checkpoint.dirpath", str(workdir / "checkpoints"),
            "--trainer.callbacks+=bench.val_times.ValTimes",
        ]  # fmt: skip
        start = time.time()
        try:
            proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
            returncode, output = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as err:  # recorded as a run without an exit status; the sweep goes on
            returncode = None
            output = "".join(part.decode() if isinstance(part, bytes) else part or "" for part in (err.stdout, err.stderr))
        exit_s = time.time() - start
    # The progress bar shares standard output, so a record may follow a bar redraw on the same line.
    vals = [(float(t) - start, int(step), float(bpc)) for t, step, bpc in re.findall(r"VALTIME (\S+) (\d+) (\S+)", output)]
    best = min(vals, key=lambda v: v[2]) if vals else (float("nan"), -1, float("nan"))
    phases = {name: round(float(t) - start, 1) for t, name in re.findall(r"PHASE (\S+) (\w+)", output)}
    step_ms = sorted(float(ms) for ms in re.findall(r"STEPS \S+ \d+ (\S+)", output))
    costs = {what: [float(s), int(n)] for what, s, n in re.findall(r"COST (\w+) (\S+) (\d+)", output)}
    notes = [line.strip() for line in output.splitlines() if line.startswith(("Run length:", "Stopped at", "val_bpc has not"))]
    result = {
        **{k: job[k] for k in ("corpus", "recipe", "seed")},
        "variant": job["variant"], "started": round(start, 1), "rc": returncode, "best_bpc": best[2], "best_step": best[1],
        "best_s": round(best[0], 1), "exit_s": round(exit_s, 1), "last_step": vals[-1][1] if vals else -1, "phases": phases,
        "step_ms": step_ms[len(step_ms) // 2] if step_ms else None, "costs": costs,
        "curve": [(round(t, 1), s, round(b, 4)) for t, s, b in vals], "notes": notes,
    }  # fmt: skip
    with lock:
        with (log_file.parent / "results.jsonl").open("a") as f:  # written as runs end: a cut-off sweep keeps them
            f.write(json.dumps(result) + "\n")
        with log_file.open("a") as f:
            f.write(f"\n===== {job['corpus']} {job['variant']} seed {job['seed']} (gpu {gpu}) rc={returncode}\n")
            f.write(" ".join(cmd) + "\n")
            f.write(output[-20000:] if returncode == 0 else output[-60000:])
        print(f"{result['corpus']:>12} {result['variant']:>16} seed {result['seed']}: best {result['best_bpc']:.4f} "
              f"at step {result['best_step']} ({result['best_s']} s), exit {result['exit_s']} s, rc {returncode}", flush=True)  # fmt: skip
    return result


def table(results: list[dict]) -> str:
    lines = [
        "| corpus | recipe | seed | best val BPC | step of best | s to best | s to exit |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted(results, key=lambda r: (r["corpus"], r["variant"], r["seed"])):
        lines.append(
            f"| {r['corpus']} | {r['variant']} | {r['seed']} | {r['best_bpc']:.4f} | {r['best_step']} | {r['best_s']:.1f} | {r['exit_s']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--books", type=Path, required=True, help="folder of the Gutenberg .txt books")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=list(CORPORA | MORE_BOOKS))
    parser.add_argument("--recipes", nargs="*", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                        help="the ctt recipe with extra flags, e.g. --variant 'adamw=--model.optimizer adamw'")  # fmt: skip
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--gpus", default="0")
    parser.add_argument("--per-gpu", type=int, default=1)
    parser.add_argument("--only", nargs="+", metavar="RECIPE/CORPUS/SEED",
                        help="run only these of the runs above, in this order, e.g. --only ctt/alice/2 nanogpt/alice/1")  # fmt: skip
    args = parser.parse_args()
    single = [c for c in args.corpora if (CORPORA | MORE_BOOKS)[c] not in (None, "embedded")]
    if missing := [c for c in single if book_file(args.books, c) is None]:
        parser.error(f"--books {args.books} has no single pgN.txt or pgN-*.txt file for: {', '.join(missing)}")

    jobs = [
        {"corpus": c, "recipe": r, "variant": r, "extra": [], "seed": s} for c in args.corpora for r in args.recipes for s in args.seeds
    ]
    jobs += [
        {"corpus": c, "recipe": "ctt", "variant": name, "extra": flags.split(), "seed": s}
        for c in args.corpora for name, flags in (v.split("=", 1) for v in args.variant) for s in args.seeds
    ]  # fmt: skip
    if args.only:
        named = {f"{j['variant']}/{j['corpus']}/{j['seed']}": j for j in jobs}
        if unknown := [name for name in args.only if name not in named]:
            parser.error(f"--only names runs that the other options do not make: {', '.join(unknown)}")
        jobs = [named[name] for name in args.only]
    else:  # longest first (the baseline, the largest corpus), so the GPUs finish together
        jobs.sort(key=lambda j: (j["recipe"] != "nanogpt", j["corpus"] != "ten-books"))
    args.out.mkdir(parents=True, exist_ok=True)
    log_file, lock, todo, results = args.out / "logs.txt", threading.Lock(), queue.Queue(), []
    for job in jobs:
        todo.put(job)

    def worker(gpu: str) -> None:
        while True:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            results.append(run_one(job, args.books.resolve(), gpu, log_file, lock))

    threads = [threading.Thread(target=worker, args=(gpu,)) for gpu in args.gpus.split(",") for _ in range(args.per_gpu)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (args.out / "table.md").write_text(table(results) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()

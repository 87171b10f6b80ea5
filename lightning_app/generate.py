"""`ctt generate`: text from a checkpoint, streamed to standard output as it is produced."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, TextIO

import jsonargparse
import torch

from .language_model import LanguageModel
from .sampling import SamplingOptions, printable, sample_text

DESCRIPTION = """Write text with a trained model: the prompt and its continuation, on standard output as produced.

The output is printable text: control characters other than newline and tab are dropped, and so is U+FFFD (what
invalid or cut-off UTF-8 decodes to); a character split across tokens is printed once its last token arrives.
Ctrl-C stops, keeps what was printed and exits with status 130; a reader that goes away (| head) ends it with 141.
"""


@dataclass(kw_only=True)
class GenerateOptions(SamplingOptions):
    """The options of `ctt generate`: the sampling options, the checkpoint, and how many samples to write how.

    Args:
        ckpt_path: Checkpoint written by `ctt fit` (e.g. checkpoints/model.ckpt); it holds the tokenizer and
            model sizes.
        prompt: Text to continue (The when neither --prompt nor --prompt_file is given; a prompt longer than the
            context keeps its tail).
        prompt_file: UTF-8 text file whose whole content (a final newline included) is the prompt; instead of
            --prompt.
        temperature: Softmax temperature (0 is greedy); 0.8 as in the after-training sample of
            configs/quickstart.yaml.
        seed: Random seed of the first sample; sample i uses seed + i, so `--seed S` alone repeats any sample.
            Drawn at random when not given (shown in jsonl and in the headers of several samples).
        num_samples: Continuations to write, one after another.
        format: text: the text alone; with several samples each starts with a line `--- sample I/N, seed S ---`.
            jsonl: one JSON object per line and sample, with keys index, seed, prompt and text (the continuation).
        device: Torch device to run on (cpu, cuda, cuda:1, ...).
    """

    key_prefix: ClassVar[str] = "--"
    ckpt_path: str
    prompt: str | None = None  # type: ignore[assignment]  # None until resolved from --prompt_file or the default
    prompt_file: str | None = None
    temperature: float = 0.8
    seed: int | None = None
    num_samples: int = 1
    format: Literal["text", "jsonl"] = "text"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.prompt_file is not None:
            if self.prompt is not None:
                raise ValueError("--prompt and --prompt_file exclude each other; pass one of them.")
            self.prompt = _read_prompt(Path(self.prompt_file))
        elif self.prompt is None:
            self.prompt = SamplingOptions.prompt
        if self.num_samples < 1:
            raise ValueError(f"--num_samples must be >= 1, got {self.num_samples}.")
        if self.seed is not None and not 0 <= self.seed <= 2**63 - self.num_samples:
            raise ValueError(f"--seed must be between 0 and 2**63 - num_samples, got {self.seed}.")
        super().__post_init__()


def _read_prompt(path: Path) -> str:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as err:
        raise ValueError(f"Cannot read --prompt_file {path}: {err.strerror}; pass a readable text file.") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"--prompt_file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8.") from err
    if not text:
        raise ValueError(f"--prompt_file {path} is empty; write the prompt into it.")
    return text


def _device(name: str) -> torch.device:
    """The device ``name``, checked before anything is loaded, so that a missing GPU is named as such."""
    try:
        device = torch.device(name)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as err:  # torch raises either, depending on the build
        accelerator = torch.accelerator.current_accelerator()
        count = torch.accelerator.device_count() if accelerator is not None else 0
        found = ", ".join(["cpu", *(f"{accelerator.type}:{i}" for i in range(count))])
        raise ValueError(f"--device {name} is not available on this machine; it has: {found}.") from err
    return device


def generate(options: GenerateOptions, out: TextIO) -> None:
    """Write ``options.num_samples`` samples to ``out``, each as it is produced."""
    device = _device(options.device)
    lm = LanguageModel.from_checkpoint(options.ckpt_path, map_location=device)
    lm.tokenizer.encode(options.prompt)  # a prompt the vocabulary cannot hold is refused before anything is written
    first_seed = options.seed if options.seed is not None else secrets.randbelow(2**31)

    def write(text: str) -> None:
        out.write(text)
        out.flush()

    for index in range(options.num_samples):
        seed = first_seed + index
        if options.format == "jsonl":
            text = sample_text(lm.model, lm.tokenizer, options, seed)
            record = {"index": index, "seed": seed, "prompt": printable(options.prompt), "text": text}
            write(json.dumps(record, ensure_ascii=False) + "\n")
            continue
        if options.num_samples > 1:
            write(f"--- sample {index + 1}/{options.num_samples}, seed {seed} ---\n")
        write(printable(options.prompt))
        sample_text(lm.model, lm.tokenizer, options, seed, on_text=write)
        write("\n")


def generate_command(args: list[str]) -> None:
    """`ctt generate ARGS`: parse, generate, and on Ctrl-C keep what was printed and exit with status 130."""
    options = jsonargparse.CLI(
        GenerateOptions, args=args, as_positional=False, prog="ctt generate", description=DESCRIPTION, exit_on_error=False
    )  # a wrong flag: cli.main reports it in one line
    try:
        generate(options, sys.stdout)
    except KeyboardInterrupt:
        print("\nInterrupted: the text above is what was generated.", file=sys.stderr, flush=True)
        sys.exit(130)
    except BrokenPipeError:  # the reader went away (`ctt generate ... | head`): stop quietly, as shell tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's final flush must not fail again
        sys.exit(128 + signal.SIGPIPE)

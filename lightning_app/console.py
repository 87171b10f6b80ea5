"""The `ctt` command's entry point: answers `--help` and `--version` at once, before Lightning is imported.

Importing torch and Lightning takes seconds, and those two answers are fixed text; every other
command goes on to `lightning_app.cli.main`, imported without the libraries that ctt does not need there.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

DISTRIBUTION = "lightning-app-ctt"

# torchmetrics, which Lightning imports, imports its image, detection, text and multimodal metrics
# with it, and with them torchvision and transformers where they are installed: 2.4 s more start-up
# on an H200 machine's Python (10.1 s against 7.7 s), and up to 9 s on a cold disk. It also imports
# matplotlib's pyplot for its metrics' plots: 0.4 to 0.6 s on a 2-core machine. ctt uses none of
# them through Lightning; `ctt plot` and the plot after training import matplotlib themselves.
HIDDEN_FROM_LIGHTNING = ("torchvision", "transformers", "matplotlib")

USAGE = """usage: ctt {fit,validate,test,generate,plot} ... [--debug]

Train a compact GPT-style language model on your own text, read its bits per character, sample from it.

subcommands:
  fit        train a model (LightningCLI: `ctt fit --help` lists every option with its default)
  validate   score a checkpoint on the validation split (`--ckpt_path`)
  test       the same as validate (the project keeps one held-out split)
  generate   write text with a trained model from its checkpoint (`ctt generate --help`)
  plot       redraw the BPC plot of a run from its metrics.csv (`ctt plot RUN_DIR`)

--debug (or CTT_DEBUG=1) shows the traceback of an error instead of its one-line message.
--version prints the installed version.
"""


def version() -> str:
    """The installed package's version, as pip recorded it."""
    from importlib import metadata  # only here: it takes longer to import than `--help` takes to answer

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown (not installed: run `pip install -e .` in the repository folder)"


@contextlib.contextmanager
def hidden_from_lightning() -> Iterator[None]:
    """While Lightning and torchmetrics are imported, their checks (``RequirementCache``) find these libraries absent.

    torchmetrics then leaves out the metrics that need them; checks made later see what is installed.
    """
    from lightning_utilities.core.imports import RequirementCache
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    check = getattr(RequirementCache, "_check_requirement", None)
    if check is None:  # a lightning-utilities that checks otherwise: import everything, as before
        yield
        return

    def check_unless_hidden(cache: RequirementCache) -> None:
        if cache.requirement and canonicalize_name(Requirement(cache.requirement).name) in HIDDEN_FROM_LIGHTNING:
            cache.available = False
            cache.message = f"{cache.requirement!r} is hidden from Lightning's start-up by ctt (lightning_app/console.py)"
        else:
            check(cache)

    RequirementCache._check_requirement = check_unless_hidden
    try:
        yield
    finally:
        RequirementCache._check_requirement = check


def main(args: list[str] | None = None) -> None:
    """`ctt --help` and `ctt --version` here; anything else through `lightning_app.cli.main`."""
    args = sys.argv[1:] if args is None else list(args)
    if args in ([], ["-h"], ["--help"]):
        print(USAGE, end="")
    elif args == ["--version"]:
        print(f"ctt {version()}")
    else:
        with hidden_from_lightning():
            from .cli import main as cli_main  # imports torch and Lightning

        cli_main(args)

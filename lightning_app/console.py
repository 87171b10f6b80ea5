"""The `ctt` command's entry point: answers `--help` and `--version` at once, before Lightning is imported.

Importing torch and Lightning takes seconds, and those two answers are fixed text; every other
command goes on to `lightning_app.cli.main`.
"""

from __future__ import annotations

import sys

DISTRIBUTION = "lightning-app-ctt"

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


def main(args: list[str] | None = None) -> None:
    """`ctt --help` and `ctt --version` here; anything else through `lightning_app.cli.main`."""
    args = sys.argv[1:] if args is None else list(args)
    if args in ([], ["-h"], ["--help"]):
        print(USAGE, end="")
    elif args == ["--version"]:
        print(f"ctt {version()}")
    else:
        from .cli import main as cli_main  # imports torch and Lightning

        cli_main(args)

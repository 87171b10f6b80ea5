"""User errors: mistakes in a command or its inputs, which the command line reports in one line.

``UsageError`` is raised where a mistake is detected; ``cli.main`` prints its message and exits
with status 1. Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os
import traceback
from pathlib import Path

import lightning
from lightning.fabric.utilities.exceptions import MisconfigurationException

# Where a raise statement makes a message for the user: this package, and Lightning checking its settings.
MESSAGE_SOURCES = (Path(__file__).resolve().parent, Path(lightning.__file__).resolve().parent)


class UsageError(Exception):
    """A mistake in the command, its configuration or its files; the message says what and how to fix it."""


def _reason(err: OSError) -> str:
    if err.errno in (errno.EEXIST, errno.ENOTDIR):  # a folder was expected where a file is
        return "a file is in the way"
    return (err.strerror or type(err).__name__).lower()


def path_error(err: OSError, what: str, path: str | os.PathLike, fix: str) -> UsageError:
    """A UsageError for an OS error on a path the user chose: ``{what} {path} ...: {reason}; {fix}.``"""
    return UsageError(f"{what} {Path(path)} cannot be used: {_reason(err)}; {fix}.")



def is_user_error(err: Exception) -> bool:
    """Whether ``err`` reports a user's mistake (print its message) rather than a bug (keep the traceback).

    That is a UsageError, Lightning's MisconfigurationException, or a ValueError, OSError, RuntimeError or
    ArithmeticError made by a ``raise`` statement of this package or of Lightning, which check settings
    and inputs that way. The same types raised by a failing operation (in PyTorch, NumPy, or in our own
    code without a ``raise``) are bugs.
    """
    if isinstance(err, (UsageError, MisconfigurationException)):
        return True
    if not isinstance(err, (ValueError, OSError, RuntimeError, ArithmeticError)) or err.__traceback__ is None:
        return False
    innermost = traceback.extract_tb(err.__traceback__)[-1]
    source = Path(innermost.filename).resolve()
    return any(source.is_relative_to(root) for root in MESSAGE_SOURCES) and (innermost.line or "").startswith("raise")

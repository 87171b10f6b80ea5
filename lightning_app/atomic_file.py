"""Writing a file (or a link) all or nothing: into a hidden temporary entry beside it, renamed onto it when complete.

A reader sees the old file or the whole new one, never a half-written one. A failure removes the
temporary file; a killed process leaves a hidden ``.NAME.RANDOM.part`` behind, which
``remove_leftovers`` clears.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def replace_atomically(path: Path, make: Callable[[Path], object]) -> None:
    """Call ``make`` with a free name beside ``path``, where it creates the new entry (a file or a link); then
    rename that onto ``path`` in one step. If it raises, the entry is removed and ``path`` is left as it was."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        make(tmp)
        os.replace(tmp, path)  # atomic on one filesystem
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # Renaming a hard link onto another link of the same file does nothing (POSIX): the entry stays behind.
    tmp.unlink(missing_ok=True)


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` with a new file beside ``path`` (open for writing and reading back); if it returns,
    rename that file onto ``path``. If it raises, the file is removed and ``path`` is left as it was.
    The data is on the disk before the rename, so a power cut leaves the old file or the new one, not an empty one."""

    def make(tmp: Path) -> None:
        with open(tmp, "x+b") as f:  # "x": never another writer's file; permissions as for any new file
            write(f)
            f.flush()
            os.fsync(f.fileno())

    replace_atomically(path, make)


def remove_leftovers(folder: Path, pattern: str = "*", older_than: float = 0.0) -> list[Path]:
    """Remove the temporary files that killed writers left in ``folder`` for targets named like ``pattern``
    (a glob, e.g. ``pg*``) and that nothing has written to for ``older_than`` seconds (a file still being
    written by another process is younger); returns the files removed."""
    now = time.time()
    leftovers = [path for path in folder.glob(f".{pattern}.*.part") if path.is_file() and now - path.stat().st_mtime >= older_than]
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers

import os
from pathlib import Path
from typing import BinaryIO

import pytest

from lightning_app.atomic_file import remove_leftovers, replace_atomically, write_atomically


def test_writes_the_whole_file_and_nothing_else(tmp_path: Path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def write(f: BinaryIO) -> None:
        f.write(b"new contents")
        assert target.read_bytes() == b"old"  # readers see the old file until the rename
        f.seek(0)
        assert f.read() == b"new contents"  # the writer can read back what it wrote, e.g. to check it

    write_atomically(target, write)
    assert target.read_bytes() == b"new contents"
    assert os.listdir(tmp_path) == ["out.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not a private temporary one


def test_the_data_reaches_the_disk_before_the_rename(tmp_path: Path, monkeypatch):
    target = tmp_path / "out.bin"
    synced = []
    fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append((os.fstat(fd).st_size, target.exists()))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    write_atomically(target, lambda f: f.write(b"12345"))
    assert synced == [(5, False)]  # all five bytes, synced while the file still had its temporary name


@pytest.mark.parametrize("error", [ValueError("bad data"), KeyboardInterrupt()])
def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path: Path, error: BaseException):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def write(f: BinaryIO) -> None:
        f.write(b"half")
        raise error

    with pytest.raises(type(error)):
        write_atomically(target, write)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_linking_a_name_to_the_file_it_already_is_leaves_no_temporary(tmp_path: Path):
    target = tmp_path / "model.ckpt"
    target.write_bytes(b"state")
    os.link(target, tmp_path / "last.ckpt")
    replace_atomically(tmp_path / "last.ckpt", lambda tmp: os.link(target, tmp))  # rename(2) does nothing here
    assert sorted(os.listdir(tmp_path)) == ["last.ckpt", "model.ckpt"]


def test_remove_leftovers_takes_only_the_temporaries_of_matching_names(tmp_path: Path):
    leftovers = [tmp_path / ".pg1.txt.0a1b2c3d.part", tmp_path / ".pg22.txt.deadbeef.part"]
    kept = [tmp_path / ".cache.bin.0a1b2c3d.part", tmp_path / "pg1.txt", tmp_path / ".pg1.txt"]
    for path in leftovers + kept:
        path.write_bytes(b"x")
    assert sorted(remove_leftovers(tmp_path, "pg*")) == sorted(leftovers)
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    assert remove_leftovers(tmp_path) == [kept[0]]

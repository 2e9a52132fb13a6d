"""Atomic writes: whole files or none, with the mode a plain write would give."""

from __future__ import annotations

import os
import stat

import pytest

from seqrec.io import atomic_write, atomic_write_json, read_json


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_files_get_the_umask_mode_not_0600(tmp_path, umask):
    # Before: tempfile.mkstemp's 0600 survived the rename, so records in a shared output
    # folder were unreadable to the other machines' users.
    old = os.umask(umask)
    try:
        path = atomic_write_json(tmp_path / "record.json", {"a": 1})
        plain = tmp_path / "plain.json"
        plain.write_text("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert read_json(path) == {"a": 1}


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = atomic_write_json(tmp_path / "x.json", {"v": 1})

    def broken(f):
        f.write(b"half")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert read_json(path) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]

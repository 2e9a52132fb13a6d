"""Atomic file writes: write to a temporary name in the same folder, then rename.

A reader (or a resumed run after a kill) sees either the old file or the new one, never half.
The file gets the mode a plain `open(path, "w")` would give it (0666 less the umask), not the
0600 of `tempfile.mkstemp`: an output folder shared by several machines or users must stay
readable. A kill between the write and the rename leaves `.<name>.<random>.tmp` beside the
file; nothing reads those, and the runner removes them from a run folder it works in (and,
once they are older than `STALE_TMP_SECONDS`, from `cache/` and `report/`: `stale_temporaries`).

Names that come from files (a run record's experiment name or run id) become paths only after
`safe_name` accepted them: a crafted record must not make the report write outside its folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_UMASK_LOCK = threading.Lock()

# A name that may become one path component: letters, digits and . _ @ + - only, starting with a
# letter or digit (so never "", ".", ".." or a hidden file), no separator, at most 200 characters
# (file systems allow 255 bytes; the report adds suffixes).
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}")
# A temporary file older than this is a kill's leftover, not a write in progress: the longest
# single write seqrec does (a Parquet events cache of LastFM-1K, a report PDF) takes well under a
# minute, and the file's modification time moves with every block written.
STALE_TMP_SECONDS = 30 * 60


def _umask() -> int:
    # os.umask can only be read by setting it; the lock keeps two threads from interleaving.
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(fileobj)` on a temporary file beside `path`, fsync it, rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, value: Any) -> Path:
    return atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def json_digest(value: Any) -> str:
    """SHA-256 (hex) of a JSON value in canonical form (sorted keys, no spaces, ASCII).

    Computed on the parsed value, not the bytes, so it does not depend on indentation; any
    change to a key, a string or a number changes it (floats are written as Python's repr,
    which reads back to the same float)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def safe_name(name: Any, what: str) -> str:
    """`name` if it may become a file or folder name (`SAFE_NAME`), else ValueError naming
    `what` (e.g. "the experiment name in run record X"). The one check every name read from a
    file passes before it becomes part of a path."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise ValueError(f"{what} {str(name)[:80]!r} is not a safe file name (letters, digits "
                         f"and . _ @ + - only, at most 200 characters)")
    return name


def stale_temporaries(folder: str | Path, older_than: float = STALE_TMP_SECONDS,
                      now: float | None = None) -> list[Path]:
    """Remove the `.*.tmp` files and folders (atomic writes and cache builds a kill cut short)
    anywhere under `folder` whose modification time is more than `older_than` seconds before
    `now`; return what was removed. Younger ones may be another process' write in progress."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now = time.time() if now is None else now
    removed = []
    for tmp in sorted(folder.rglob(".*.tmp")):
        try:
            if now - _newest_mtime(tmp) <= older_than:
                continue
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        except OSError:
            continue  # removed meanwhile by another process, or not ours to remove
        removed.append(tmp)
    return removed


def _newest_mtime(path: Path) -> float:
    """The latest modification time of `path` and, for a folder, of anything in it (a file
    being written inside a temporary folder keeps the folder young)."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for inner in path.rglob("*"):
            newest = max(newest, inner.lstat().st_mtime)
    return newest


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)

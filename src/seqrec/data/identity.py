"""A data file's identity for run ids: what it holds, not where it lies or when it was copied.

A run id hashes its data's fingerprint (docs/design.md, "A run's identity"). The fingerprint of
a file was its resolved path, size and modification time (`file_fingerprint`, which still keys
the events cache, a local matter). That renamed every run when the same log was reached by
another path: two machines sharing one output folder with the log mounted at different places,
a Colab session that copied the log to local disk, a file uploaded again. `content_fingerprint`
reads the file instead, but only a bounded sample of it, so that planning a grid on the 2.4 GB
LastFM-1K log stays instant on a Drive mount.

What it hashes: the size, `SAMPLES` blocks of `BLOCK` bytes at evenly spaced offsets (the
first at 0, the last ending at the end of the file; the whole file when it is smaller than
that) and the reader's version. A truncated, extended or re-encoded file changes the size or
the blocks; an edit that keeps the size and misses every block (0.16% of LastFM-1K is read) does
not change the fingerprint, so replace a log in place only into a new output folder
(docs/data.md, "A file's identity").
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from seqrec.data.lastfm import READER_VERSION

SAMPLES = 16
BLOCK = 256 * 1024


def content_fingerprint(path: str | Path, reader_version: int = READER_VERSION) -> str:
    """`data-` and 12 hex digits: the identity of the file's contents (module docstring).

    The same bytes at any path or time give the same fingerprint; raises FileNotFoundError for
    a missing file.
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(f"seqrec-data size={size} reader={reader_version}\n".encode())
    with path.open("rb") as f:
        for offset in _offsets(size):
            f.seek(offset)
            digest.update(f.read(BLOCK))
    return "data-" + digest.hexdigest()[:12]


def _offsets(size: int) -> list[int]:
    """Start of each sampled block: all of a small file, else evenly spaced, end included."""
    if size <= SAMPLES * BLOCK:
        return list(range(0, size, BLOCK))
    last = size - BLOCK
    return [round(i * last / (SAMPLES - 1)) for i in range(SAMPLES)]

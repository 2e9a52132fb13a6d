"""What a data path holds, told cheaply (a stat and the first bytes), and its log as a stream.

A data path is a plain text log, or a tar archive (uncompressed, gzip, bzip2 or xz) holding
LastFM-1K's log as the member `.../userid-timestamp-artid-artname-traid-traname.tsv`, as in
`lastfm-dataset-1K.tar.gz` as downloaded. The archive is read as a stream (`open_log`): the
member's bytes are decompressed on the fly and never written to disk.

Anything else stops with a `DataFileError` (a ValueError) of one sentence naming the file, what
it is and what to pass instead: a folder, an empty file, a compressed file that is not a tar
archive (gzip, bzip2, xz, zstd), a zip or 7z archive, a Parquet file, UTF-16 text, or a binary
file (one with a NUL byte in its first `HEAD_BYTES`). A path that does not exist raises
FileNotFoundError. Kinds are told by their first bytes (magic numbers), never by the name.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

LASTFM_MEMBER = "userid-timestamp-artid-artname-traid-traname.tsv"
LASTFM_ARCHIVE = "lastfm-dataset-1K.tar.gz"
HEAD_BYTES = 8192  # what is read to tell a file's kind
TAR_BUFFER = 1 << 20  # read size of the archive stream (tarfile's default, 10 KiB, is slow)
_ACCEPTED = (f"LastFM-1K's {LASTFM_MEMBER} or its archive {LASTFM_ARCHIVE}, or a text log "
             f"of user, item and time; see docs/data.md")
ARCHIVE_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError)

# Magic numbers of the compressed formats Python can stream (tarfile's "r|*" reads tars in
# them) and of those it cannot, with the command that unpacks each.
_STREAMABLE = {"gzip": (gzip.open, "gunzip -k"), "bzip2": (bz2.open, "bunzip2 -k"),
               "xz": (lzma.open, "unxz -k")}
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"),
          (b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"7z\xbc\xaf\x27\x1c", "7z"))
_BZIP2_BLOCKS = (b"1AY&SY", b"\x17rE8P\x90")  # a block's or the stream end's magic
_UNPACK = {"zstd": "decompress it (unzstd FILE)", "zip": "unzip it",
           "7z": "unpack it (7z x FILE)"}


class DataFileError(ValueError):
    """A data file that cannot be read as asked (empty, wrong shape, no usable rows)."""


@dataclass(frozen=True)
class LogFile:
    """A checked data path: the file, the log's member inside it ("" for a plain file), and
    the file's size and modification time at the check."""

    path: Path
    member: str
    size: int
    mtime_ns: int


def inspect_path(path: str | Path) -> LogFile:
    """Check `path` as a data path (see the module docstring) and say where its log is.

    Cheap: a stat and the first bytes; for a tar archive, the headers of its members up to the
    log's (each member before it is read through, as a stream does).
    """
    path = Path(path)
    if path.is_dir():
        raise DataFileError(_folder_message(path))
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist; check the path (or generate "
                                f"a demo file with seqrec.data.synthetic.write_synthetic)")
    if not path.is_file():
        raise DataFileError(f"data path {path} is not a regular file; pass {_ACCEPTED}")
    stat = path.stat()
    if stat.st_size == 0:
        raise DataFileError(f"data file {path} is empty; expected {_ACCEPTED}")
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
        f.seek(max(stat.st_size - 4, 0))
        tail = f.read(4)
    return LogFile(path, _member_of(path, head, tail), stat.st_size, stat.st_mtime_ns)


def _folder_message(path: Path) -> str:
    inside = [p for p in (path / LASTFM_MEMBER, path / "lastfm-dataset-1K" / LASTFM_MEMBER)
              if p.is_file()]
    if inside:
        return f"data path {path} is a folder; pass the log inside it, {inside[0]}"
    return f"data path {path} is a folder; pass the data file inside it ({_ACCEPTED})"


def _compression(head: bytes) -> str:
    """The compressed or archive format that `head` starts with, or ""."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] in _BZIP2_BLOCKS:
        return "bzip2"
    return ""


def _is_tar(head: bytes) -> bool:
    return head[257:262] == b"ustar"  # POSIX and GNU tar headers alike


def _member_of(path: Path, head: bytes, tail: bytes) -> str:
    """"" for a plain text log, the log's member name for a tar archive; else DataFileError."""
    kind = _compression(head)
    if kind in _STREAMABLE:
        opener, command = _STREAMABLE[kind]
        try:
            with opener(path, "rb") as f:
                inner = f.read(512)
        except ARCHIVE_ERRORS as e:
            raise DataFileError(f"{path} starts like a {kind} file but cannot be decompressed "
                                f"({_one_line(e)}); download it again or pass "
                                f"{_ACCEPTED}") from None
        if _is_tar(inner):
            return tar_member(path)
        raise DataFileError(f"{path} is {kind}-compressed, not a text log or a tar archive; "
                            f"decompress it ({command} {path.name}) and pass the file it gives")
    if kind:
        raise DataFileError(f"{path} is a {kind} archive or compressed file, which seqrec "
                            f"cannot read; {_UNPACK[kind]} and pass the log inside it "
                            f"({_ACCEPTED})")
    if _is_tar(head):
        return tar_member(path)
    if head.startswith(b"PAR1") and tail == b"PAR1":
        raise DataFileError(f"{path} is a Parquet file (a seqrec cache file?), not a raw log; "
                            f"pass {_ACCEPTED}")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataFileError(f"{path} is UTF-16 text; save it as UTF-8 (e.g. iconv -f UTF-16 "
                            f"-t UTF-8) and pass that")
    if b"\x00" in head:
        raise DataFileError(f"{path} is a binary file (it holds NUL bytes), not a text log; "
                            f"pass {_ACCEPTED}")
    return ""


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _is_log_member(info: tarfile.TarInfo) -> bool:
    return info.isfile() and info.name.rsplit("/", 1)[-1] == LASTFM_MEMBER


def tar_member(path: Path) -> str:
    """The name of LastFM-1K's log inside the tar archive `path`; DataFileError, listing the
    members found, when there is none."""
    names: list[str] = []
    try:
        with tarfile.open(path, "r|*", bufsize=TAR_BUFFER) as tar:
            for info in tar:
                if _is_log_member(info):
                    return info.name
                names.append(info.name + ("/" if info.isdir() else ""))
    except ARCHIVE_ERRORS as e:
        raise DataFileError(f"{path} is a tar archive that cannot be read ({_one_line(e)}); "
                            f"download it again or pass the unpacked log") from None
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    raise DataFileError(f"{path} is a tar archive without LastFM-1K's log ({LASTFM_MEMBER}); "
                        f"it holds {shown or 'nothing'}; unpack it and pass the log file")


@contextlib.contextmanager
def open_log(log: LogFile) -> Iterator[IO[bytes]]:
    """The log's bytes as a binary file object: the file itself, or the archive member as a
    stream (forward reading only; `read` and `readline` work, `seek` does not)."""
    if not log.member:
        with open(log.path, "rb") as f:
            yield f
        return
    with tarfile.open(log.path, "r|*", bufsize=TAR_BUFFER) as tar:
        for info in tar:
            if info.name == log.member and info.isfile():
                member = tar.extractfile(info)
                assert member is not None  # a regular file always has a reader
                yield member
                return
    raise DataFileError(f"{log.path} no longer holds {log.member}; did the file change?")

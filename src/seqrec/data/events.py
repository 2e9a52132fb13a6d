"""The events table (one row per play, in time order) and its Parquet cache.

`Events` is what ingestion (`data/lastfm.py`) hands to the protocol (`data/protocol.py`): dense
integer ids plus the strings they stand for. A cache entry is one folder named by `Events.key`
(a hash of the file's identity and the read settings), written under a temporary name and
renamed, so a reader sees a whole entry or none.

An entry holds `events.parquet` (the id and time columns), `users.parquet`, `items.parquet`,
`artists.parquet` (the names) and `meta.json`: the format, the key, the `ReadReport`, and the
size and BLAKE2b digest of each Parquet file, plus a digest of the metadata itself (over its
other fields). Loading checks all of them before using any value; a missing, truncated,
edited or unparsable file makes the entry a miss, with one warning naming the file, and the
caller rebuilds it (the new entry replaces the damaged one).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# Bump when the cached layout changes, or when the reader refuses what an older one accepted:
# old entries then miss (silently) and the log is read afresh, never mislead. 4: a log with
# more than 5% damaged lines or a time column that cannot order the plays is refused
# (data/lastfm.py), so an entry written before those checks must not stand in for a read.
CACHE_FORMAT = 4
NAME_FILES = {"users": "users.parquet", "items": "items.parquet", "artists": "artists.parquet"}
EVENTS_FILE = "events.parquet"
META_FILE = "meta.json"
DIGEST_BYTES = 32


@dataclass(frozen=True)
class ReadReport:
    """What reading a raw log skipped, so that nothing is dropped silently."""

    rows_read: int  # good rows kept
    lines_skipped: int  # damaged lines skipped
    examples: list[tuple[int, str]]  # up to ~10 (1-based line number, reason)
    # The source, for a run record: the file as given, resolved (`path`), the log's member
    # name inside it when it is a tar archive ("" for a plain file), the file's size and its
    # `file_fingerprint` (data/lastfm.py) when it was read.
    path: str = ""
    member: str = ""
    size_bytes: int = 0
    fingerprint: str = ""

    def source(self) -> dict:
        """What a run record needs to name its data: path, member, size, fingerprint, counts."""
        return {"path": self.path, "member": self.member, "size_bytes": self.size_bytes,
                "fingerprint": self.fingerprint, "rows_read": self.rows_read,
                "lines_skipped": self.lines_skipped}

    def describe(self) -> str:
        """One line for logs, e.g. `19150859 rows read, 9 damaged lines skipped (line 3: ...)`."""
        text = f"{self.rows_read} rows read, {self.lines_skipped} damaged lines skipped"
        if self.examples:
            text += " (" + "; ".join(f"line {n}: {r}" for n, r in self.examples[:3]) + ")"
        return text


@dataclass(frozen=True)
class Events:
    """Plays in total, reproducible time order (stable by timestamp, ties by file position).

    `users`, `items`, `artists`: int32[N] dense ids (`artists` is -1 where a generic log has no
    artist); `timestamps`: int64[N] unix seconds (UTC). `user_names[u]`, `item_names[i]`,
    `artist_names[a]` are the strings behind the ids (object arrays of str). `key` identifies
    the file and settings that made this table.
    """

    users: np.ndarray
    items: np.ndarray
    artists: np.ndarray
    timestamps: np.ndarray
    user_names: np.ndarray
    item_names: np.ndarray
    artist_names: np.ndarray
    key: str
    report: ReadReport

    def __len__(self) -> int:
        return int(self.users.shape[0])

    @property
    def n_users(self) -> int:
        return int(self.user_names.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_names.shape[0])


def cache_path(cache_dir: str | Path, key: str) -> Path:
    """The folder of the cache entry for `key` under `cache_dir`."""
    return Path(cache_dir) / f"events-{key}"


def _names_table(names: np.ndarray) -> pa.Table:
    return pa.table({"name": pa.array(names.tolist(), type=pa.string())})




# ---------------------------------------------------------------------------------------------
# Checksums. BLAKE2b: in every Python's hashlib (built in, not borrowed from OpenSSL), and fast
# in plain software on 64-bit CPUs (about 1 GB/s a core), whereas SHA-256 is as fast only where
# the CPU has SHA instructions; hashlib releases the GIL while it hashes a large buffer. The
# digests guard against accidents (a flipped bit, a cut copy), not an adversary, so 256 bits
# are plenty.


def _digest(data: bytes | memoryview) -> str:
    return hashlib.blake2b(data, digest_size=DIGEST_BYTES).hexdigest()


def file_digest(path: Path) -> dict:
    """`{"bytes": size, "blake2b": hex digest}` of a file, read in pieces."""
    h = hashlib.blake2b(digest_size=DIGEST_BYTES)
    size = 0
    with open(path, "rb") as f:
        while piece := f.read(8 << 20):
            h.update(piece)
            size += len(piece)
    return {"bytes": size, "blake2b": h.hexdigest()}


def _meta_digest(meta: dict) -> str:
    """The digest of the metadata's fields other than its own checksum, in a canonical form."""
    body = {k: v for k, v in meta.items() if k != "checksum"}
    return _digest(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


# ---------------------------------------------------------------------------------------------
# Writing


def save_events(ev: Events, cache_dir: str | Path) -> Path:
    """Write `ev` as a cache entry (Parquet, no pickle); returns the entry's folder.

    An existing entry of the same key (a damaged one being rebuilt) is replaced whole.
    """
    final = cache_path(cache_dir, ev.key)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        table = pa.table({
            "user": pa.array(ev.users, type=pa.int32()),
            "item": pa.array(ev.items, type=pa.int32()),
            "artist": pa.array(ev.artists, type=pa.int32()),
            "timestamp": pa.array(ev.timestamps, type=pa.int64()),
        })
        # Plain, uncompressed, one row group: reading it back is a copy from the page cache into
        # one contiguous buffer per column (no decoding, no concatenation of chunks). About
        # 20 bytes per row on disk.
        pq.write_table(table, tmp / EVENTS_FILE, compression="none", use_dictionary=False,
                       row_group_size=max(len(ev), 1), write_statistics=False)
        for kind, names in (("users", ev.user_names), ("items", ev.item_names),
                            ("artists", ev.artist_names)):
            pq.write_table(_names_table(names), tmp / NAME_FILES[kind], compression="lz4")
        # The files are hashed as written, read back from the page cache: cheaper in memory
        # than holding a serialised copy of the events.
        files = {name: file_digest(tmp / name) for name in (EVENTS_FILE, *NAME_FILES.values())}
        report = dataclasses.asdict(ev.report)
        report["examples"] = [list(e) for e in ev.report.examples]
        meta = {"format": CACHE_FORMAT, "key": ev.key, "report": report, "files": files}
        meta["checksum"] = _meta_digest(meta)
        (tmp / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
        _install(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _install(tmp: Path, final: Path) -> None:
    """Rename the finished folder `tmp` to `final`, replacing an entry already there."""
    try:
        os.replace(tmp, final)
        return
    except OSError:
        if not final.exists():
            raise
    # `final` is there: a damaged entry being rebuilt, or a concurrent writer's copy of the same
    # data. Move it aside (a rename onto an empty folder), put ours in place, then delete it.
    old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".old"))
    try:
        try:
            os.replace(final, old)
        except FileNotFoundError:
            pass  # another writer moved it first
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / META_FILE).exists():  # not another writer's whole entry
                raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Reading


class _Damaged(Exception):
    """A cache file that is missing, cut, edited or unreadable (`file`, and why)."""

    def __init__(self, file: Path, why: str) -> None:
        super().__init__(f"{file}: {why}")
        self.file = file
        self.why = " ".join(why.split())  # one line, whatever the library said


class _Stale(Exception):
    """An entry written in another cache format: a plain miss, not damage."""


def _read_bytes(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except FileNotFoundError:
        raise _Damaged(file, "the file is missing") from None
    except OSError as e:
        raise _Damaged(file, f"unreadable: {e.strerror}") from None


def _read_meta(folder: Path, key: str) -> dict:
    """The entry's metadata, once it parses and its own checksum matches."""
    file = folder / META_FILE
    raw = _read_bytes(file)
    try:
        meta = json.loads(raw.decode("utf-8"))
    except ValueError:  # bad UTF-8 as well as bad JSON
        raise _Damaged(file, "not valid JSON") from None
    if not isinstance(meta, dict):
        raise _Damaged(file, f"JSON {type(meta).__name__}, not an object")
    if "format" in meta and meta["format"] != CACHE_FORMAT and "checksum" not in meta:
        raise _Stale()
    if meta.get("checksum") != _meta_digest(meta):
        raise _Damaged(file, "its checksum does not match its contents")
    if meta.get("format") != CACHE_FORMAT:
        raise _Stale()
    if meta.get("key") != key:
        raise _Damaged(file, f"written for key {meta.get('key')!r}, not {key!r}")
    return meta


def _read_verified(file: Path, expected: dict) -> pa.Buffer:
    """The bytes of `file` once its size and digest match `expected` (from the metadata).

    The file is read once, hashed and parsed from memory: the cache may live on a network
    drive (OUT on Google Drive), where a second read costs more than holding the bytes (about
    400 MB for the full log's events) while they are parsed.
    """
    data = _read_bytes(file)
    if len(data) != expected["bytes"]:
        raise _Damaged(file, f"{len(data)} bytes, expected {expected['bytes']}")
    if _digest(data) != expected["blake2b"]:
        raise _Damaged(file, "its BLAKE2b checksum does not match")
    return pa.py_buffer(data)


def _read_table(folder: Path, name: str, meta: dict) -> pa.Table:
    file = folder / name
    buffer = _read_verified(file, meta["files"][name])
    try:
        return pq.read_table(pa.BufferReader(buffer))
    except (pa.ArrowException, OSError, ValueError) as e:  # cannot happen to verified bytes
        raise _Damaged(file, f"unreadable Parquet: {e}") from None


def _column(table: pa.Table, name: str, dtype: type) -> np.ndarray:
    values = table.column(name).to_numpy().astype(dtype, copy=False)
    # Writable, like freshly parsed arrays (a copy only where Arrow lent its own buffer).
    return values if values.flags.writeable else values.copy()


def _names(table: pa.Table) -> np.ndarray:
    col = table.column("name")
    out = np.empty(len(col), dtype=object)
    out[:] = col.to_pylist()
    return out


def _load_entry(folder: Path, key: str) -> Events:
    meta = _read_meta(folder, key)
    try:
        rep = meta["report"]
        report = ReadReport(**{**rep, "examples": [(int(n), str(r)) for n, r in rep["examples"]]})
        meta["files"][EVENTS_FILE]  # noqa: B018 - every file is listed (KeyError otherwise)
    except (KeyError, TypeError, ValueError) as e:
        raise _Damaged(folder / META_FILE, f"incomplete metadata ({e!r})") from None
    table = _read_table(folder, EVENTS_FILE, meta)
    users, items = _column(table, "user", np.int32), _column(table, "item", np.int32)
    artists = _column(table, "artist", np.int32)
    timestamps = _column(table, "timestamp", np.int64)
    del table
    names = {kind: _names(_read_table(folder, file, meta)) for kind, file in NAME_FILES.items()}
    return Events(users=users, items=items, artists=artists, timestamps=timestamps,
                  user_names=names["users"], item_names=names["items"],
                  artist_names=names["artists"], key=key, report=report)


def load_events(cache_dir: str | Path, key: str) -> Events | None:
    """The cached `Events` for `key`, or None when there is no whole, intact entry.

    A damaged entry (any file missing, cut or changed; see the module's docstring) gives one
    warning line naming the file and then None, so the caller rebuilds it.
    """
    folder = cache_path(cache_dir, key)
    if not folder.is_dir():
        return None
    try:
        return _load_entry(folder, key)
    except _Stale:
        return None
    except _Damaged as damage:
        warnings.warn(f"events cache {damage.file} is damaged ({damage.why}); rebuilding it",
                      stacklevel=3)
        return None

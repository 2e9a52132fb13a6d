"""The events table (one row per play, in time order) and its Parquet cache.

`Events` is what ingestion (`data/lastfm.py`) hands to the protocol (`data/protocol.py`): dense
integer ids plus the strings they stand for. A cache entry is one folder named by `Events.key`
(a hash of the file's identity and the read settings), written under a temporary name and
renamed, so a reader sees a whole entry or none.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CACHE_FORMAT = 2  # bump when the cached layout changes: old entries then miss, never mislead


@dataclass(frozen=True)
class ReadReport:
    """What reading a raw log skipped, so that nothing is dropped silently."""

    rows_read: int  # good rows kept
    lines_skipped: int  # damaged lines skipped
    examples: list[tuple[int, str]]  # up to ~10 (1-based line number, reason)

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


def save_events(ev: Events, cache_dir: str | Path) -> Path:
    """Write `ev` as a cache entry (Parquet, no pickle); returns the entry's folder."""
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
        pq.write_table(table, tmp / "events.parquet", compression="none", use_dictionary=False,
                       row_group_size=max(len(ev), 1), write_statistics=False)
        for kind, names in (("users", ev.user_names), ("items", ev.item_names),
                            ("artists", ev.artist_names)):
            pq.write_table(_names_table(names), tmp / f"{kind}.parquet", compression="lz4")
        meta = {"format": CACHE_FORMAT, "key": ev.key, "rows_read": ev.report.rows_read,
                "lines_skipped": ev.report.lines_skipped,
                "examples": [list(e) for e in ev.report.examples]}
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "meta.json").exists():  # not a concurrent writer of the same entry
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _names(path: Path) -> np.ndarray:
    col = pq.read_table(path).column("name")
    out = np.empty(len(col), dtype=object)
    out[:] = col.to_pylist()
    return out


def load_events(cache_dir: str | Path, key: str) -> Events | None:
    """The cached `Events` for `key`, or None when there is no complete entry."""
    folder = cache_path(cache_dir, key)
    meta_file = folder / "meta.json"
    if not meta_file.exists():
        return None
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
        return None
    table = pq.read_table(folder / "events.parquet")

    def column(name: str, dtype: type) -> np.ndarray:
        values = table.column(name).to_numpy().astype(dtype, copy=False)
        # Writable, like freshly parsed arrays (a copy only where Arrow lent its own buffer).
        return values if values.flags.writeable else values.copy()

    report = ReadReport(meta["rows_read"], meta["lines_skipped"],
                        [(int(n), str(r)) for n, r in meta["examples"]])
    return Events(
        users=column("user", np.int32),
        items=column("item", np.int32),
        artists=column("artist", np.int32),
        timestamps=column("timestamp", np.int64),
        user_names=_names(folder / "users.parquet"),
        item_names=_names(folder / "items.parquet"),
        artist_names=_names(folder / "artists.parquet"),
        key=key,
        report=report,
    )

"""Read a raw listening log into `Events`: LastFM-1K's TSV, or a plain `user, item, time` log.

LastFM-1K (docs/protocol.md, "Data"): no header, six tab-separated fields (user id, ISO-8601
UTC time such as `2009-05-04T23:08:57Z`, artist MBID or empty, artist name, track MBID or empty,
track name), newest first within a user. Stray `"` characters occur, so quoting is off. A
damaged line (wrong number of fields, bytes that are not UTF-8, an unparsable time, an empty
user id) is skipped, counted and reported with its 1-based line number; nothing else is dropped.

A generic log has three fields, `user, item, time`, separated by tabs (no quoting) or commas
(CSV quoting, so an item may hold a comma), with an optional header line; times are integer
unix seconds or ISO-8601 (`2009-05-04T23:08:57Z`, `2009-05-04T23:08:57`, `2009-05-04 23:08:57`,
all read as UTC). Its `artists` are -1.

Speed: the file is cut at line ends into blocks of `BLOCK_BYTES`, each parsed by pyarrow's CSV
reader in a thread pool (pyarrow releases the GIL); only per-block dictionaries and integer
codes are kept, so memory stays a small multiple of the output. Line numbers stay exact because
each block is parsed single-threaded (pyarrow then numbers the rows it rejects) and blocks are
joined in file order. Lines end at `\\n`, `\\r\\n` or a lone `\\r` (pyarrow's convention).

Item identity (`item_key`): `title` is the track name alone (the thesis; defect 7: different
tracks called "Intro" become one item); `artist_title` is artist name and track name; `mbid` is
the track MBID, falling back to artist and track name where the MBID is empty, so an empty MBID
never becomes one shared item. Ids are dense, in sorted order of the key's bytes (as pandas'
`ngroup`), and `item_names` holds the keys (artist and title joined by a tab, which no field
can contain).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from seqrec.config import ITEM_KEYS
from seqrec.data.events import Events, ReadReport, load_events, save_events

FORMATS = ("auto", "lastfm", "log")
LASTFM_COLUMNS = ("user", "time", "artist_mbid", "artist", "track_mbid", "track")
LOG_COLUMNS = ("user", "item", "time")
ISO_TIME = "%Y-%m-%dT%H:%M:%SZ"  # LastFM-1K's time format, always 20 characters
# Extra time formats of a generic log (read as UTC), besides unix seconds.
LOG_TIME_FORMATS = (ISO_TIME, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S")
BLOCK_BYTES = 32 << 20
MAX_EXAMPLES = 10
READER_VERSION = 1  # part of the cache key: bump when parsing changes what a file yields


class DataFileError(ValueError):
    """A data file that cannot be read as asked (empty, wrong shape, no usable rows)."""


@dataclass(frozen=True)
class Layout:
    """How to cut a file into fields: its format, delimiter and whether line 1 is a header."""

    fmt: str  # "lastfm" | "log"
    delimiter: str
    header: bool
    quoting: bool  # CSV quotes (comma logs only; LastFM-1K has stray quotes, so never there)

    @property
    def columns(self) -> tuple[str, ...]:
        return LASTFM_COLUMNS if self.fmt == "lastfm" else LOG_COLUMNS


def read_events(path: str | Path, item_key: str = "title", cache_dir: str | Path | None = None,
                fmt: str = "auto") -> Events:
    """Read a raw log into `Events` in stable time order, using the Parquet cache when given.

    `fmt`: `lastfm` (six tab-separated fields), `log` (`user, item, time`, comma or tab, header
    optional, time as unix seconds or ISO-8601 UTC) or `auto` (decided by the field count of the
    first lines). `item_key` applies to LastFM-1K; a generic log's item is its second field.
    The cache entry is keyed by the file's path, size and mtime plus every read setting, so a
    changed file or setting is read afresh.
    """
    if item_key not in ITEM_KEYS:
        raise ValueError(f"item_key must be one of {ITEM_KEYS}, got {item_key!r}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    path = Path(path)
    if path.is_dir():
        raise DataFileError(f"data path {path} is a folder; give the data file inside it")
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist; check the path (or generate "
                                f"a demo file with seqrec.data.synthetic.write_synthetic)")
    stat = path.stat()
    if stat.st_size == 0:
        raise DataFileError(f"data file {path} is empty; expected a LastFM-1K TSV or a "
                            f"user,item,timestamp log")
    layout = sniff_layout(path, fmt)
    key = events_key(path, item_key, layout)
    if cache_dir is not None:
        cached = load_events(cache_dir, key)
        if cached is not None:
            return cached
    events = parse_file(path, layout, item_key, key)
    if cache_dir is not None:
        save_events(events, cache_dir)
    return events


def events_key(path: Path, item_key: str, layout: Layout) -> str:
    """Hash of the file's identity (absolute path, size, mtime_ns) and the read settings."""
    stat = path.stat()
    ident = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
             "item_key": item_key, "fmt": layout.fmt, "delimiter": layout.delimiter,
             "header": layout.header, "quoting": layout.quoting, "reader": READER_VERSION}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Format detection


def _first_lines(path: Path, n: int = 50) -> list[bytes]:
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    if len(head) == 1 << 16 and len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut off
    return [line for line in lines if line.strip()][:n]


def _is_time(text: str) -> bool:
    text = text.strip()
    if text.lstrip("-").isdigit():
        return True
    values = pa.array([text])
    return any(pc.strptime(values, format=f, unit="s", error_is_null=True)[0].is_valid
               for f in LOG_TIME_FORMATS)


def _comma_fields(line: bytes) -> list[str]:
    return next(csv.reader([line.decode("utf-8", errors="replace")]))


def sniff_layout(path: Path, fmt: str = "auto") -> Layout:
    """Decide the format from the most common field count of the first lines.

    Six tab-separated fields: LastFM-1K. Three fields separated by tabs, or by commas (CSV
    quoting allowed): a `user, item, time` log, whose first line is a header when its third
    field is not a time.
    """
    lines = _first_lines(path)
    if not lines:
        raise DataFileError(f"data file {path} has only blank lines; expected a LastFM-1K TSV "
                            f"or a user,item,timestamp log")

    def most_common(counts: list[int]) -> int:
        return max(set(counts), key=counts.count)

    tabs = most_common([line.count(b"\t") + 1 for line in lines])
    commas = most_common([len(_comma_fields(line)) for line in lines]) if tabs == 1 else 0
    if fmt == "auto":
        if tabs == len(LASTFM_COLUMNS):
            fmt = "lastfm"
        elif len(LOG_COLUMNS) in (tabs, commas):
            fmt = "log"
        else:
            raise DataFileError(
                f"cannot tell the format of {path}: its lines have {tabs} tab-separated "
                f"fields; expected 6 (LastFM-1K) or 3 (user, item, timestamp; comma or tab)")
    if fmt == "lastfm":
        if tabs != len(LASTFM_COLUMNS):
            raise DataFileError(f"{path} is not LastFM-1K format: its lines have {tabs} "
                                f"tab-separated fields, expected 6; try fmt='log' or 'auto'")
        return Layout("lastfm", "\t", header=False, quoting=False)
    if tabs == len(LOG_COLUMNS):
        first = lines[0].decode("utf-8", errors="replace").split("\t")
        delimiter, quoting = "\t", False
    else:
        first = _comma_fields(lines[0])
        delimiter, quoting = ",", True
    if len(first) != len(LOG_COLUMNS):
        raise DataFileError(f"{path} is not a user,item,timestamp log: its first line has "
                            f"{len(first)} fields separated by {delimiter!r}, expected 3")
    return Layout("log", delimiter, header=not _is_time(first[2]), quoting=quoting)


# ---------------------------------------------------------------------------------------------
# Parsing


@dataclass(frozen=True)
class _Block:
    """One parsed block: good rows as dictionary-encoded keys, damaged lines with reasons."""

    n_lines: int  # lines in the block, good and damaged
    damaged: list[tuple[int, str]]  # (1-based line within the block, reason), in line order
    users: pa.DictionaryArray
    items: pa.DictionaryArray
    artists: pa.DictionaryArray | None
    timestamps: np.ndarray  # int64[good rows]


def _block_bounds(path: Path, start: int, size: int, block: int) -> list[tuple[int, int]]:
    """Byte ranges `[lo, hi)` that start at line starts and together cover `[start, size)`."""
    cuts = [start]
    with open(path, "rb") as f:
        pos = start + block
        while pos < size:
            f.seek(pos)
            tail = b""
            while b"\n" not in tail and f.tell() < size:
                tail += f.read(1 << 16)
            at = tail.find(b"\n")
            if at < 0:
                break
            cut = pos + at + 1
            if cut < size:
                cuts.append(cut)
            pos = cut + block
    cuts.append(size)
    return [(lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:], strict=True) if hi > lo]


def _as_text(col: pa.ChunkedArray) -> tuple[pa.ChunkedArray | None, np.ndarray | None]:
    """A binary column as text, or (None, bool[rows] marking the values that are not UTF-8).

    Only the rows holding a byte >= 0x80 can be invalid, so only those are decoded in Python,
    and only in a block whose fast cast failed.
    """
    try:
        return pc.cast(col, pa.string()), None
    except pa.ArrowInvalid:
        pass
    out = []
    for chunk in col.chunks:
        offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)
        offsets = offsets[chunk.offset: chunk.offset + len(chunk) + 1]
        data = chunk.buffers()[2]
        data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
        high = np.concatenate([[0], np.cumsum(data >= 0x80)])
        bad = np.zeros(len(chunk), dtype=bool)
        for i in np.flatnonzero(high[offsets[1:]] > high[offsets[:-1]]):
            try:
                data[offsets[i]: offsets[i + 1]].tobytes().decode("utf-8")
            except UnicodeDecodeError:
                bad[i] = True
        out.append(bad)
    return None, np.concatenate(out) if out else np.zeros(0, dtype=bool)


_ISO_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
_ISO_SEPARATORS = {4: "-", 7: "-", 10: "T", 13: ":", 16: ":", 19: "Z"}
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def parse_iso_seconds(col: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """`YYYY-MM-DDTHH:MM:SSZ` strings -> unix seconds, int64, null where not exactly that.

    Strict (a real calendar date, hours < 24, no blanks, exactly 20 characters) and explicit in
    its unit (thesis defect 15). Days from the civil date by H. Hinnant's `days_from_civil`.
    """
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    out = []
    for chunk in chunks:
        n = len(chunk)
        offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)[chunk.offset:][: n + 1]
        data = chunk.buffers()[2]
        data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
        ok = np.diff(offsets) == 20
        if chunk.null_count:
            ok &= chunk.is_valid().to_numpy(zero_copy_only=False)
        if ok.all() and n:  # the usual case: the values lie back to back, 20 bytes each
            rows = np.arange(n)
            text = data[offsets[0]: offsets[0] + 20 * n].reshape(n, 20)
        else:
            rows = np.flatnonzero(ok)
            text = data[offsets[rows][:, None] + np.arange(20)]  # [m, 20] bytes
        digits = text[:, _ISO_DIGITS] - np.uint8(ord("0"))  # uint8: below '0' wraps to > 9
        good = np.all(digits <= 9, axis=1)
        for at, ch in _ISO_SEPARATORS.items():
            good &= text[:, at] == ord(ch)
        d = digits.astype(np.int32)
        year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
        month, day, hour, minute, sec = (d[:, k] * 10 + d[:, k + 1] for k in (4, 6, 8, 10, 12))
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        month_ok = (month >= 1) & (month <= 12)
        days_in = _MONTH_DAYS[np.where(month_ok, month, 0)] + (leap & (month == 2))
        good &= month_ok & (day >= 1) & (day <= days_in) & (hour < 24) & (minute < 60)
        good &= sec < 60
        y = year - (month <= 2)
        era = y // 400
        yoe = y - era * 400
        doy = (153 * np.where(month > 2, month - 3, month + 9) + 2) // 5 + day - 1
        doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
        days = era * 146097 + doe - 719468
        seconds = days.astype(np.int64) * 86400 + (hour * 3600 + minute * 60 + sec)
        values = np.zeros(n, dtype=np.int64)
        values[rows] = seconds
        valid = np.zeros(n, dtype=bool)
        valid[rows] = good
        out.append(pa.array(values, mask=~valid))
    return pa.chunked_array(out, type=pa.int64())


def _parse_times(col: pa.ChunkedArray, layout: Layout) -> pa.ChunkedArray:
    """Unix seconds (int64, null where unparsable). The unit is explicit (thesis defect 15)."""
    if layout.fmt == "lastfm":
        return parse_iso_seconds(col)
    text = pc.utf8_trim_whitespace(col)
    is_int = pc.match_substring_regex(text, r"^-?[0-9]{1,18}$")
    ints = pc.cast(pc.if_else(is_int, text, "0"), pa.int64())
    times = pc.if_else(is_int, ints, None)
    for fmt in LOG_TIME_FORMATS:
        parsed = pc.cast(pc.strptime(text, format=fmt, unit="s", error_is_null=True), pa.int64())
        times = pc.coalesce(times, parsed)
    return times


def _item_keys(table: pa.Table, layout: Layout, item_key: str) -> pa.ChunkedArray:
    if layout.fmt == "log":
        return table.column("item")
    title = table.column("track")
    if item_key == "title":
        return title
    both = pc.binary_join_element_wise(table.column("artist"), title, "\t")
    if item_key == "artist_title":
        return both
    mbid = table.column("track_mbid")
    return pc.if_else(pc.equal(pc.utf8_length(mbid), 0), both, mbid)


def _read_block(path: Path, lo: int, hi: int, layout: Layout, item_key: str) -> _Block:
    with open(path, "rb") as f:
        f.seek(lo)
        data = f.read(hi - lo)
    columns = layout.columns
    rejected: list[tuple[int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        rejected.append((row.number, f"{row.actual_columns} fields, expected {len(columns)}"))
        return "skip"

    table = pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(column_names=list(columns), use_threads=False),
        parse_options=pacsv.ParseOptions(
            delimiter=layout.delimiter, quote_char='"' if layout.quoting else False,
            double_quote=layout.quoting, escape_char=False,
            newlines_in_values=False, ignore_empty_lines=False, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.binary() for c in columns}, strings_can_be_null=False,
            quoted_strings_can_be_null=False),
    )
    del data
    n = table.num_rows
    text_schema = pa.schema([(c, pa.string()) for c in columns])
    problems: dict[int, str] = {}  # row within the parsed table -> reason
    texts = []
    for name in columns:
        text, bad = _as_text(table.column(name))
        texts.append(text)
        for i in np.flatnonzero(bad) if bad is not None else ():
            problems.setdefault(int(i), f"bytes that are not UTF-8 in field {name!r}")
    if problems:
        good = np.ones(n, dtype=bool)
        good[np.fromiter(problems, dtype=np.int64)] = False
        good_idx = np.flatnonzero(good)
        text_table = table.filter(pa.array(good)).cast(text_schema)
    else:
        good_idx = np.arange(n)
        text_table = pa.Table.from_arrays(texts, schema=text_schema)
    del table, texts
    times = _parse_times(text_table.column("time"), layout)
    bad_time = ~times.is_valid().to_numpy(zero_copy_only=False)
    no_user = pc.equal(pc.utf8_length(text_table.column("user")), 0).to_numpy(
        zero_copy_only=False)
    time_col = text_table.column("time")
    for j in np.flatnonzero(bad_time | no_user):
        if no_user[j]:
            row = [text_table.column(c)[int(j)].as_py() for c in columns]
            problems[int(good_idx[j])] = "empty user id" if any(row) else "empty line"
        else:
            problems[int(good_idx[j])] = f"unparsable time {time_col[int(j)].as_py()[:40]!r}"
    keep_local = ~(bad_time | no_user)
    if not keep_local.all():
        mask = pa.array(keep_local)
        text_table = text_table.filter(mask)
        times = times.filter(mask)

    # Line numbers: the reader numbered the rows it rejected; the rows it kept fill the rest.
    rejected_lines = np.array([r[0] for r in rejected], dtype=np.int64)
    damaged = list(rejected)
    if problems:
        all_lines = np.arange(1, n + len(rejected) + 1, dtype=np.int64)
        kept_lines = np.delete(all_lines, rejected_lines - 1)
        damaged += [(int(kept_lines[i]), reason) for i, reason in problems.items()]
    damaged.sort()
    artists = None
    if layout.fmt == "lastfm":
        artists = pc.dictionary_encode(text_table.column("artist")).combine_chunks()
    return _Block(
        n_lines=n + len(rejected),
        damaged=damaged,
        users=pc.dictionary_encode(text_table.column("user")).combine_chunks(),
        items=pc.dictionary_encode(_item_keys(text_table, layout, item_key)).combine_chunks(),
        artists=artists,
        timestamps=times.to_numpy(zero_copy_only=False).astype(np.int64, copy=False),
    )


def _dense_ids(parts: list[pa.DictionaryArray]) -> tuple[np.ndarray, np.ndarray]:
    """Codes of per-block dictionaries -> (int32 ids in sorted-key order, names[n])."""
    unified = pa.chunked_array(parts, type=parts[0].type).unify_dictionaries()
    chunks = unified.chunks
    dictionary = chunks[0].dictionary if chunks else pa.array([], pa.string())
    order = pc.sort_indices(dictionary).to_numpy()
    rank = np.empty(len(dictionary), dtype=np.int32)
    rank[order] = np.arange(len(dictionary), dtype=np.int32)
    codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks]) \
        if chunks else np.zeros(0, np.int32)
    names = dictionary.take(pa.array(order)).to_numpy(zero_copy_only=False).astype(object)
    return rank[codes], names


def time_order(timestamps: np.ndarray) -> np.ndarray:
    """Row order by time, ties by file position (thesis defect 9: never an unstable sort).

    Time and position packed into one int64 key make every key unique, so the (fast, unstable)
    `np.sort` gives the stable order; `argsort(kind="stable")` where the packing would overflow.
    """
    n = timestamps.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = int(timestamps.min()), int(timestamps.max())
    shift = max(int(n - 1).bit_length(), 1)
    if (hi - lo).bit_length() + shift > 62:
        return np.argsort(timestamps, kind="stable")
    keys = (timestamps - lo) << shift
    keys |= np.arange(n, dtype=np.int64)
    keys.sort()
    return keys & ((1 << shift) - 1)


def parse_file(path: Path, layout: Layout, item_key: str, key: str,
               block_bytes: int = BLOCK_BYTES, workers: int | None = None) -> Events:
    """Parse the whole file (no cache). `block_bytes` and `workers` change speed, not output."""
    size = path.stat().st_size
    start = 0
    if layout.header:
        with open(path, "rb") as f:
            start = len(f.readline())
    bounds = _block_bounds(path, start, size, block_bytes)
    workers = workers or min(len(bounds), os.cpu_count() or 1) or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        blocks = list(pool.map(lambda b: _read_block(path, b[0], b[1], layout, item_key), bounds))

    first_line = 1 + int(layout.header)
    damaged_total = 0
    examples: list[tuple[int, str]] = []
    for b in blocks:
        damaged_total += len(b.damaged)
        for line, reason in b.damaged:
            if len(examples) < MAX_EXAMPLES:
                examples.append((first_line + line - 1, reason))
        first_line += b.n_lines
    rows = sum(len(b.timestamps) for b in blocks)
    if rows == 0:
        detail = f"; e.g. line {examples[0][0]}: {examples[0][1]}" if examples else ""
        raise DataFileError(f"no readable rows in {path}: {damaged_total} damaged lines"
                            f"{detail}")

    timestamps = np.concatenate([b.timestamps for b in blocks])
    order = time_order(timestamps)
    users, user_names = _dense_ids([b.users for b in blocks])
    items, item_names = _dense_ids([b.items for b in blocks])
    if layout.fmt == "lastfm":
        artists, artist_names = _dense_ids([b.artists for b in blocks])
        artists = artists[order]
    else:
        artists = np.full(rows, -1, dtype=np.int32)
        artist_names = np.empty(0, dtype=object)
    return Events(
        users=users[order],
        items=items[order],
        artists=artists,
        timestamps=timestamps[order],
        user_names=user_names,
        item_names=item_names,
        artist_names=artist_names,
        key=key,
        report=ReadReport(rows_read=rows, lines_skipped=damaged_total, examples=examples),
    )

"""Read a raw listening log into `Events`: LastFM-1K (its TSV or its tar.gz), or another log.

LastFM-1K (docs/data.md): no header, six tab-separated fields (user id, ISO-8601 UTC time such
as `2009-05-04T23:08:57Z`, artist MBID or empty, artist name, track MBID or empty, track name),
newest first within a user. Stray `"` characters occur, so quoting is off. The archive as
downloaded (`lastfm-dataset-1K.tar.gz`) is read directly: its log member is streamed out of
the tar, never unpacked to disk (`data/inputs.py` tells what a path holds).

A generic log has three fields, `user, item, time`, separated by tabs (no quoting) or commas
(CSV quoting, so an item may hold a comma), with an optional header line; times are integer
unix seconds or ISO-8601 (`2009-05-04T23:08:57Z`, `2009-05-04T23:08:57`, `2009-05-04 23:08:57`,
all read as UTC). Any other log is read with a column mapping (`columns`, e.g.
`user=0,item=1,time=3` for MovieLens' `u.data`, `user=userId,item=movieId,time=timestamp` for
its `ratings.csv`) and optionally a separator (`sep`); see `data/options.py`. Its other fields
are only counted. A generic log's `artists` are -1.

Damaged lines: a line with the wrong number of fields, bytes that are not UTF-8 (in a field
that is read), an unparsable time, an empty user id, or longer than `MAX_LINE_BYTES` is
skipped, counted and reported with its 1-based line number (the header counts as line 1);
nothing else is dropped.

Speed: the text is cut at line ends into blocks of about `BLOCK_BYTES`, each parsed by
pyarrow's CSV reader in a thread pool (pyarrow releases the GIL); only per-block dictionaries
and integer codes are kept, so memory stays a small multiple of the output. A plain file's
blocks are byte ranges that each thread reads itself; an archive's are cut from the
decompressed stream in order, with a few blocks in flight. Line numbers stay exact because
each block is parsed single-threaded (pyarrow then numbers the rows it rejects) and blocks are
joined in file order. Lines end at `\\n` or `\\r\\n` (pyarrow also ends one at a lone
`\\r`, so a line holding one counts as two).

Item identity (`item_key`): `title` is the track name alone (the thesis; defect 7: different
tracks called "Intro" become one item); `artist_title` is artist name and track name; `mbid` is
the track MBID, falling back to artist and track name where the MBID is empty, so an empty MBID
never becomes one shared item. Ids are dense, in sorted order of the key's bytes (as pandas'
`ngroup`), and `item_names` holds the keys (artist and title joined by a tab, which no field
can contain). A generic log's item is the text of its item field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from seqrec.config import ITEM_KEYS, DataConfig
from seqrec.data.events import Events, ReadReport, load_events, save_events
from seqrec.data.inputs import (  # noqa: F401 - LASTFM_* re-exported
    ARCHIVE_ERRORS,
    LASTFM_ARCHIVE,
    LASTFM_MEMBER,
    DataFileError,
    LogFile,
    inspect_path,
    open_log,
)
from seqrec.data.layout import (  # noqa: F401 - sniff_layout re-exported
    ARROW_BLOCK,
    FORMATS,
    LOG_TIME_FORMATS,
    MAX_LINE_BYTES,
    Layout,
    sniff_layout,
    sniff_log,
)
from seqrec.data.options import parse_columns, parse_sep

BLOCK_BYTES = 32 << 20
MAX_EXAMPLES = 10
# A read stops when more than this share of its lines is damaged. Real logs have very few
# damaged lines (LastFM-1K: 9 of 19,150,868, 5e-7); a log in another encoding (each line with
# a non-ASCII name fails UTF-8) or read with the wrong columns or separator damages a large
# share, and training on the rest would answer a different question without a word. 5% leaves
# a hundred thousand times LastFM-1K's rate of damage before refusing.
MAX_DAMAGED_SHARE = 0.05
# A read stops when more than this share of the plays that have an earlier play of the same
# user have the same time as one of them: the time column then does not order a user's plays
# (a rating, a constant or a date column mapped as time), and the order would silently be file
# order. Timestamps in seconds tie rarely (LastFM-1K's same-second plays; the generator's
# `same_second` is 0.1%); a rating of 1..5 as the time ties for about 1 - 5 / n of a user's n
# plays (95% at 100 plays). A half keeps logs with coarse times (dates) that order most plays.
MAX_TIED_SHARE = 0.5
# Both rules judge a share, so they need lines to judge by: they apply from this many damaged
# lines, or plays after a user's first, on. Below it a few odd lines of a small hand-made file
# would decide (its damaged lines are still counted and reported as always).
MIN_JUDGED = 50
# Part of the fingerprint and cache key: bump when parsing changes what a file yields.
# 2: lines longer than MAX_LINE_BYTES are damaged (they used to stop the read).
READER_VERSION = 2


# ---------------------------------------------------------------------------------------------
# The public entry points


def read_options(data: DataConfig) -> dict:
    """The keyword arguments of `read_events` that `data` sets: `read_events(path,
    cache_dir=..., **read_options(cfg.data))`."""
    return {"item_key": data.item_key, "columns": data.columns, "sep": data.sep}


def check_data_path(path: str | Path) -> Path:
    """`path` if it can be read as a data path, else the error `read_events` would stop with.

    Cheap (no parse: a stat and the first bytes, see `data/inputs.py`), so a command can check
    its data before any work starts. Raises FileNotFoundError for a missing path and
    `DataFileError` (a ValueError) for a folder, an empty, compressed, binary or Parquet file,
    or a tar archive without LastFM-1K's log.
    """
    return inspect_path(path).path


def file_fingerprint(path: str | Path, reader_version: int = READER_VERSION) -> str:
    """The identity of a data file, for run ids: `file-` and 12 hex digits.

    A hash of the resolved path, the size, the modification time (ns) and the reader's
    version; no parse, so it is cheap for any size. A changed, moved or re-downloaded file, or
    a reader that reads differently, gives another fingerprint; the same file read twice gives
    the same. Reading options (`columns`, `sep`, `item_key`) are not in it: a run id hashes
    them with the rest of its `DataConfig`. Raises FileNotFoundError for a missing file.
    """
    path = Path(path)
    stat = path.stat()
    return _fingerprint(path, stat.st_size, stat.st_mtime_ns, reader_version)


def _fingerprint(path: Path, size: int, mtime_ns: int, reader_version: int) -> str:
    ident = {"path": str(path.resolve()), "size": size, "mtime_ns": mtime_ns,
             "reader": reader_version}
    return "file-" + hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]


def _log_fingerprint(log: LogFile) -> str:
    return _fingerprint(log.path, log.size, log.mtime_ns, READER_VERSION)


def read_events(path: str | Path, item_key: str = DataConfig.item_key,
                cache_dir: str | Path | None = None, fmt: str = "auto", columns: str = "",
                sep: str = "") -> Events:
    """Read a raw log into `Events` in stable time order, using the Parquet cache when given.

    `path`: a text log, or LastFM-1K's tar archive (`check_data_path` says what is accepted).
    `fmt`: `lastfm` (six tab-separated fields), `log` (`user, item, time`, comma or tab, header
    optional, time as unix seconds or ISO-8601 UTC) or `auto` (decided by the field count of
    the first lines). `columns` and `sep` (syntax in `data/options.py`) read any other log.
    `item_key` applies to LastFM-1K; a generic log's item is its item field. The cache entry
    is keyed by the file's identity and the resolved reading (`events_key`), so a changed file
    or setting is read afresh.
    """
    if item_key not in ITEM_KEYS:
        raise ValueError(f"item_key must be one of {ITEM_KEYS}, got {item_key!r}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    spec, delimiter = parse_columns(columns), parse_sep(sep)
    if fmt == "lastfm" and (spec or delimiter not in ("", "\t")):
        raise ValueError("fmt='lastfm' reads LastFM-1K's own six tab-separated fields; a "
                         "column mapping or another separator reads another log: leave fmt "
                         "at 'auto' or 'log'")
    log = inspect_path(path)
    layout = sniff_log(log, fmt, spec, delimiter)
    key = _events_key(log, item_key, layout)
    if cache_dir is not None:
        cached = load_events(cache_dir, key)
        if cached is not None:
            return cached
    events = parse_file(log.path, layout, item_key, key)
    if cache_dir is not None:
        save_events(events, cache_dir)
    return events


def events_key(path: Path, item_key: str, layout: Layout) -> str:
    """The cache key of reading `path` with `item_key` and `layout` (see `_events_key`)."""
    return _events_key(inspect_path(path), item_key, layout)


def _events_key(log: LogFile, item_key: str, layout: Layout) -> str:
    """Hash of the file's fingerprint, the archive member, `item_key` and the whole layout.

    Every reading option enters through what it resolves to (`fmt`, `sep` and `columns` make
    the layout: format, delimiter, header, field count, picked fields), so two spellings of
    one reading (`sep=tab` and `sep=""` on a tab file) share an entry and any option that
    changes what is read changes the key.
    """
    ident = {"file": _log_fingerprint(log), "member": log.member, "item_key": item_key,
             "layout": dataclasses.asdict(layout)}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


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
            cut = _next_line_start(f, pos, size)
            if cut >= size:
                break
            cuts.append(cut)
            pos = cut + block
    cuts.append(size)
    return [(lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:], strict=True) if hi > lo]


def _next_line_start(f: IO[bytes], pos: int, size: int) -> int:
    """The offset just after the first `\\n` at or after `pos`, or `size` (searched piece by
    piece, so a long line costs one pass over it)."""
    f.seek(pos)
    while pos < size:
        piece = f.read(1 << 16)
        if not piece:
            break
        at = piece.find(b"\n")
        if at >= 0:
            return pos + at + 1
        pos += len(piece)
    return size


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


def _read_csv(data: bytes | memoryview, layout: Layout,
              block_size: int) -> tuple[pa.Table, list[tuple[int, str]]]:
    """Every field of every line as binary, and the (line, reason) of the rows pyarrow
    rejected for their field count."""
    columns = layout.columns
    rejected: list[tuple[int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        rejected.append((row.number, f"{row.actual_columns} fields, expected {len(columns)}"))
        return "skip"

    table = pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(column_names=list(columns), use_threads=False,
                                       block_size=block_size),
        parse_options=pacsv.ParseOptions(
            delimiter=layout.delimiter, quote_char='"' if layout.quoting else False,
            double_quote=layout.quoting, escape_char=False,
            newlines_in_values=False, ignore_empty_lines=False, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.binary() for c in columns}, strings_can_be_null=False,
            quoted_strings_can_be_null=False),
    )
    return table, rejected


def _long_rows(table: pa.Table, layout: Layout) -> dict[int, str]:
    """Rows whose fields and separators exceed `MAX_LINE_BYTES`, with the reason."""
    lengths = np.full(table.num_rows, layout.n_fields - 1, dtype=np.int64)
    for name in layout.columns:
        lengths += pc.binary_length(table.column(name)).to_numpy(zero_copy_only=False)
    return {int(i): f"line of {lengths[i]} bytes, longer than {MAX_LINE_BYTES} bytes"
            for i in np.flatnonzero(lengths > MAX_LINE_BYTES)}


def _parse_block(data: bytes | memoryview, layout: Layout, item_key: str) -> _Block:
    """Parse whole lines (`data` ends at a line end, or at the end of the log)."""
    try:
        table, rejected = _read_csv(data, layout, ARROW_BLOCK)
        problems: dict[int, str] = {}  # row within the parsed table -> reason
    except pa.ArrowInvalid:
        # A line longer than pyarrow's block (see ARROW_BLOCK): the block again, in one piece.
        table, rejected = _read_csv(data, layout, min(len(data) + 1, 2**31 - 1))
        problems = _long_rows(table, layout)
    del data
    n = table.num_rows
    columns = layout.text_columns
    text_schema = pa.schema([(c, pa.string()) for c in columns])
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
        text_table = table.select(list(columns)).filter(pa.array(good)).cast(text_schema)
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


def _parse_range(path: Path, lo: int, hi: int, layout: Layout, item_key: str) -> _Block:
    with open(path, "rb") as f:
        f.seek(lo)
        data = f.read(hi - lo)
    return _parse_block(data, layout, item_key)


def _stream_blocks(f: IO[bytes], block_bytes: int) -> Iterator[memoryview]:
    """The stream `f` in pieces of about `block_bytes` that end at line ends (the last one at
    the end of the stream), in order; a line longer than a piece makes its piece longer."""
    pending: list[bytes] = []  # read, not yet given out: no line end among them
    while piece := f.read(block_bytes):
        cut = piece.rfind(b"\n") + 1
        if cut == 0:  # one long line goes on: joined once it ends (linear, not quadratic)
            pending.append(piece)
            continue
        data = b"".join([*pending, piece]) if pending else piece
        end = len(data) - (len(piece) - cut)
        pending = [data[end:]] if end < len(data) else []
        yield memoryview(data)[:end]
    if pending:
        yield memoryview(b"".join(pending))


def _gather(futures: Iterator[Future], blocks: list[_Block], name: object,
            first_line: int) -> None:
    """Append each block in order; a block pyarrow could not parse at all stops the read with
    the file and the line the block starts at."""
    for future in futures:
        try:
            blocks.append(future.result())
        except pa.ArrowInvalid as e:
            line = first_line + sum(b.n_lines for b in blocks)
            text = " ".join(str(e).split())
            raise DataFileError(f"cannot parse {name} from line {line} on ({text})") from None


def _parse_log(log: LogFile, layout: Layout, item_key: str, block_bytes: int,
               workers: int) -> list[_Block]:
    """Every block of the log, in order: byte ranges of a plain file read by the threads
    themselves, or pieces of an archive's stream, cut in order with `workers + 1` in flight."""
    first_line = 1 + int(layout.header)
    blocks: list[_Block] = []
    if not log.member:
        start = 0
        if layout.header:
            with open(log.path, "rb") as f:
                start = len(f.readline())
        bounds = _block_bounds(log.path, start, log.size, block_bytes)
        with ThreadPoolExecutor(max_workers=max(1, min(len(bounds), workers))) as pool:
            futures = [pool.submit(_parse_range, log.path, lo, hi, layout, item_key)
                       for lo, hi in bounds]
            _gather(iter(futures), blocks, log.path, first_line)
        return blocks
    name = f"{log.path} ({log.member})"
    try:
        with open_log(log) as f, ThreadPoolExecutor(max_workers=workers) as pool:
            if layout.header:
                f.readline()
            pending: deque[Future] = deque()
            for data in _stream_blocks(f, block_bytes):
                pending.append(pool.submit(_parse_block, data, layout, item_key))
                if len(pending) > workers:
                    _gather(iter([pending.popleft()]), blocks, name, first_line)
            _gather(iter(pending), blocks, name, first_line)
    except ARCHIVE_ERRORS as e:  # a cut or damaged download
        raise DataFileError(f"cannot read {name} to its end ({' '.join(str(e).split())}); "
                            f"the archive is damaged or incomplete: download it again") from None
    return blocks


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


def _later_plays(users: np.ndarray) -> int:
    """Plays that are not their user's first (users: dense non-negative ids)."""
    return int(users.shape[0]) - int(np.count_nonzero(np.bincount(users)))


def tied_share(users: np.ndarray, timestamps: np.ndarray) -> float:
    """Share of plays with the same time as an earlier play of the same user, among the plays
    that have an earlier play of their user; 0.0 when there are none.

    `users` int[N] (dense ids below 2**31), `timestamps` int64[N]: rows in time order, so equal
    times are runs. Only rows in a run longer than one can tie, so only those are sorted, by
    (run, user) packed into one int64; for second-resolution logs they are a small part.
    """
    n = timestamps.shape[0]
    later = _later_plays(users)
    if later <= 0:
        return 0.0
    same = timestamps[1:] == timestamps[:-1]
    shared = np.zeros(n, dtype=bool)
    shared[1:] |= same
    shared[:-1] |= same
    rows = np.flatnonzero(shared)
    run = np.cumsum(np.concatenate([[True], ~same]))[rows]  # [R] run number of each row
    keys = np.sort((run.astype(np.int64) << 32) | users[rows].astype(np.int64))
    ties = np.count_nonzero(keys[1:] == keys[:-1])  # a user's 2nd, 3rd, ... play of a run
    return ties / later


def _check_time_order(users: np.ndarray, timestamps: np.ndarray, layout: Layout,
                      name: object) -> None:
    """Stop when the time column cannot order the plays (`MAX_TIED_SHARE`); rows in time
    order."""
    where = "field 1" if layout.fmt == "lastfm" else f"field {layout.picks[2]}"
    column = f"the time column ({where}, counting from 0)"
    if timestamps.shape[0] > 1 and timestamps[0] == timestamps[-1]:
        raise DataFileError(f"{name}: {column} holds one value for all {timestamps.shape[0]:,}"
                            f" rows ({int(timestamps[0])}), so it cannot order the plays; map "
                            f"time= in columns= to the field that says when each play happened")
    share = tied_share(users, timestamps)
    if share > MAX_TIED_SHARE and _later_plays(users) >= MIN_JUDGED:
        raise DataFileError(
            f"{name}: {column} cannot order the plays: {share:.0%} of the plays after each "
            f"user's first have the same time as an earlier play of that user (more than "
            f"{MAX_TIED_SHARE:.0%}); map time= in columns= to the field that says when each "
            f"play happened")


def parse_file(path: str | Path, layout: Layout, item_key: str, key: str,
               block_bytes: int = BLOCK_BYTES, workers: int | None = None) -> Events:
    """Parse the whole log at `path` (a file or LastFM-1K's archive; no cache).

    `block_bytes` and `workers` change speed, not output.
    """
    log = inspect_path(path)
    blocks = _parse_log(log, layout, item_key, block_bytes, workers or os.cpu_count() or 1)
    return _join(blocks, layout, log, key)


def _join(blocks: list[_Block], layout: Layout, log: LogFile, key: str) -> Events:
    """The blocks, in file order, as one `Events` in time order with dense ids."""
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
    name = log.path if not log.member else f"{log.path} ({log.member})"
    if rows == 0:
        detail = f"; e.g. line {examples[0][0]}: {examples[0][1]}" if examples else ""
        raise DataFileError(f"no readable rows in {name}: {damaged_total} damaged lines"
                            f"{detail}")

    lines = rows + damaged_total
    if damaged_total >= MIN_JUDGED and damaged_total > MAX_DAMAGED_SHARE * lines:
        line, reason = examples[0]
        raise DataFileError(
            f"{name}: {damaged_total:,} of its {lines:,} lines ({damaged_total / lines:.1%}) are "
            f"damaged, more than the {MAX_DAMAGED_SHARE:.0%} seqrec reads past (e.g. line {line}:"
            f" {reason}); convert a file in another encoding to UTF-8 (iconv -f latin1 -t utf-8)"
            f" or fix columns= and sep= if they do not match its lines")
    timestamps = np.concatenate([b.timestamps for b in blocks])
    order = time_order(timestamps)
    users, user_names = _dense_ids([b.users for b in blocks])
    _check_time_order(users[order], timestamps[order], layout, name)
    items, item_names = _dense_ids([b.items for b in blocks])
    if layout.fmt == "lastfm":
        artists, artist_names = _dense_ids([b.artists for b in blocks])
        artists = artists[order]
    else:
        artists = np.full(rows, -1, dtype=np.int32)
        artist_names = np.empty(0, dtype=object)
    report = ReadReport(rows_read=rows, lines_skipped=damaged_total, examples=examples,
                        path=str(log.path.resolve()), member=log.member, size_bytes=log.size,
                        fingerprint=_log_fingerprint(log))
    return Events(
        users=users[order],
        items=items[order],
        artists=artists,
        timestamps=timestamps[order],
        user_names=user_names,
        item_names=item_names,
        artist_names=artist_names,
        key=key,
        report=report,
    )

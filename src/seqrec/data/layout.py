"""How a raw log is cut into fields (`Layout`), decided from its first lines.

LastFM-1K: six tab-separated fields, no header. A generic log: three fields `user, item, time`
cut by tabs (no quoting) or commas (CSV quoting), line 1 a header when its third field is no
time. With a column mapping (`columns`, data/options.py): the fields it names, by position or
header name, under the given separator or the first of `AUTO_SEPARATORS` under which all of
them exist. The first `SNIFF_LINES` non-blank lines decide; the most common field count among
them is the log's (a line with another count is a damaged line when parsing).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc

from seqrec.data.inputs import DataFileError, LogFile, inspect_path, open_log
from seqrec.data.options import ROLES, parse_columns, parse_sep

FORMATS = ("auto", "lastfm", "log")
LASTFM_COLUMNS = ("user", "time", "artist_mbid", "artist", "track_mbid", "track")
LOG_COLUMNS = ROLES  # ("user", "item", "time")
ISO_TIME = "%Y-%m-%dT%H:%M:%SZ"  # LastFM-1K's time format, always 20 characters
# Extra time formats of a generic log (read as UTC), besides unix seconds.
LOG_TIME_FORMATS = (ISO_TIME, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S")
# pyarrow's CSV block (its default, made explicit). A line longer than two of them always makes
# pyarrow fail with "straddling object"; one up to one block never does; in between it depends
# on where the line falls. So the parser parses a block that fails again as one piece, and a
# line longer than MAX_LINE_BYTES (two blocks) is damaged: the lines kept, and so the result,
# never depend on where the blocks are cut. No listening log has lines near this size.
ARROW_BLOCK = 1 << 20
MAX_LINE_BYTES = 2 * ARROW_BLOCK
SNIFF_LINES = 50  # lines that decide the layout
SNIFF_BYTES = 32 << 20  # at most this much is read for them (overlong lines are passed over)
AUTO_SEPARATORS = ("\t", ",", ";", "|")  # tried in this order when a mapping has no `sep`
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Layout:
    """How to cut a log into fields: its format, delimiter, header, field count and columns."""

    fmt: str  # "lastfm" | "log"
    delimiter: str
    header: bool
    quoting: bool  # CSV quotes (never with tabs: LastFM-1K has stray quotes)
    n_fields: int = 3  # fields per line; a line with another count is damaged
    picks: tuple[int, int, int] = (0, 1, 2)  # 0-based fields of user, item, time ("log")

    @property
    def columns(self) -> tuple[str, ...]:
        """A name for every field: LastFM-1K's six, or the roles at `picks` and `_N` elsewhere."""
        if self.fmt == "lastfm":
            return LASTFM_COLUMNS
        names = [f"_{i}" for i in range(self.n_fields)]
        for role, at in zip(LOG_COLUMNS, self.picks, strict=True):
            names[at] = role
        return tuple(names)

    @property
    def text_columns(self) -> tuple[str, ...]:
        """The fields that are read (checked as UTF-8); the others are only counted."""
        return LASTFM_COLUMNS if self.fmt == "lastfm" else LOG_COLUMNS


def _head_lines(f: IO[bytes]) -> list[tuple[int, bytes]]:
    """Up to `SNIFF_LINES` non-blank lines from the start of `f`: (1-based number, text without
    its line end). Lines longer than `MAX_LINE_BYTES` (damaged) are passed over."""
    out: list[tuple[int, bytes]] = []
    number = used = 0
    while len(out) < SNIFF_LINES and used < SNIFF_BYTES:
        line = f.readline(MAX_LINE_BYTES + 2)  # the longest good line and its "\r\n"
        if not line:
            break
        used += len(line)
        number += 1
        if len(line) == MAX_LINE_BYTES + 2 and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n") and used < SNIFF_BYTES:  # the rest of it
                line = f.readline(1 << 20)
                used += len(line)
            continue
        text = line.rstrip(b"\r\n")
        if number == 1 and text.startswith(_BOM):
            text = text[len(_BOM):]
        if len(text) <= MAX_LINE_BYTES and text.strip():
            out.append((number, text))
    return out


def _is_time(text: str) -> bool:
    text = text.strip()
    if text.lstrip("-").isdigit():
        return True
    values = pa.array([text])
    return any(pc.strptime(values, format=f, unit="s", error_is_null=True)[0].is_valid
               for f in LOG_TIME_FORMATS)


def _fields(text: bytes, delimiter: str, quoting: bool) -> list[str]:
    """The fields of one line as the parser will cut them (CSV quotes where `quoting`)."""
    line = text.decode("utf-8", errors="replace")
    if quoting:
        try:
            return next(csv.reader([line], delimiter=delimiter), [""])
        except csv.Error:  # a lone "\r", a NUL, a field over csv's size limit: guess plainly
            pass
    return line.split(delimiter)


def _most_common(counts: list[int]) -> int:
    return max(set(counts), key=counts.count)


def _separator_name(delimiter: str) -> str:
    return "tabs" if delimiter == "\t" else repr(delimiter)


def sniff_layout(path: str | Path, fmt: str = "auto", columns: str = "",
                 sep: str = "") -> Layout:
    """The layout of the log at `path` for the given reading options (see `read_events`)."""
    return sniff_log(inspect_path(path), fmt, parse_columns(columns), parse_sep(sep))


def sniff_log(log: LogFile, fmt: str, spec: dict, delimiter: str) -> Layout:
    """The layout of a checked log for a parsed mapping (`parse_columns`) and separator
    (`parse_sep`); `DataFileError` naming the file when its lines fit none."""
    with open_log(log) as f:
        lines = _head_lines(f)
    name = log.path if not log.member else f"{log.path} ({log.member})"
    if not lines:
        raise DataFileError(f"data file {name} has only blank or overlong lines; expected a "
                            f"LastFM-1K TSV or a user,item,timestamp log")
    if spec:
        return _mapped_layout(lines, spec, delimiter, name)
    return _known_layout(lines, fmt, delimiter, name)


def _known_layout(lines: list[tuple[int, bytes]], fmt: str, delimiter: str,
                  name: object) -> Layout:
    """LastFM-1K (six tab-separated fields) or a `user, item, time` log (three fields, by tabs
    or commas unless `delimiter` says; line 1 is a header when its third field is no time)."""
    texts = [t for _, t in lines]
    hint = ("; for another log give columns= (e.g. columns=user=0,item=1,time=3, "
            "see docs/data.md)")
    tabs = _most_common([t.count(b"\t") + 1 for t in texts])
    if delimiter not in ("", "\t"):
        count = _most_common([len(_fields(t, delimiter, True)) for t in texts])
        if count != len(LOG_COLUMNS):
            raise DataFileError(f"{name} is not a user,item,time log: its lines have {count} "
                                f"fields separated by {delimiter!r}, expected 3{hint}")
        return _log_layout(lines, delimiter, name)
    commas = 0
    if tabs == 1 and delimiter == "":
        commas = _most_common([len(_fields(t, ",", True)) for t in texts])
    if fmt == "auto":
        if tabs == len(LASTFM_COLUMNS):
            fmt = "lastfm"
        elif len(LOG_COLUMNS) in (tabs, commas):
            fmt = "log"
        else:
            raise DataFileError(
                f"cannot tell the format of {name}: its lines have {tabs} tab-separated "
                f"fields; expected 6 (LastFM-1K) or 3 (user, item, timestamp; comma or tab)"
                f"{hint}")
    if fmt == "lastfm":
        if tabs != len(LASTFM_COLUMNS):
            raise DataFileError(f"{name} is not LastFM-1K format: its lines have {tabs} "
                                f"tab-separated fields, expected 6; try fmt='log' or 'auto'")
        return Layout("lastfm", "\t", header=False, quoting=False, n_fields=6)
    by_tabs = tabs == len(LOG_COLUMNS) or delimiter == "\t"
    return _log_layout(lines, "\t" if by_tabs else ",", name)


def _log_layout(lines: list[tuple[int, bytes]], delimiter: str, name: object) -> Layout:
    """A three-field log cut by `delimiter`; its first line must have three fields."""
    quoting = delimiter != "\t"
    first = _fields(lines[0][1], delimiter, quoting)
    if len(first) != len(LOG_COLUMNS):
        raise DataFileError(f"{name} is not a user,item,timestamp log: its first line has "
                            f"{len(first)} fields separated by {delimiter!r}, expected 3")
    header = lines[0][0] == 1 and not _is_time(first[2])
    return Layout("log", delimiter, header=header, quoting=quoting)


def _mapped_layout(lines: list[tuple[int, bytes]], spec: dict, delimiter: str,
                   name: object) -> Layout:
    """The layout for a column mapping: the first separator (the given one, else
    `AUTO_SEPARATORS` in order) under which every mapped column exists.

    Names are looked up in line 1, which is then the header; with positions only, line 1 is
    a header when its time field is no time. Otherwise the error of the separator that cut the
    most fields, naming the column that is missing.
    """
    line1 = lines[0][1] if lines[0][0] == 1 else None
    named = [r for r in LOG_COLUMNS if isinstance(spec[r], str)]
    if named and line1 is None:
        raise DataFileError(f"{name}: columns={_spec_text(spec)} names header fields, but "
                            f"line 1 is blank or too long to be a header")
    failures = []
    for d in (delimiter,) if delimiter else AUTO_SEPARATORS:
        quoting = d != "\t"
        n = _most_common([len(_fields(t, d, quoting)) for _, t in lines])
        header = [h.strip() for h in _fields(line1, d, quoting)] if line1 is not None else []
        picks, problem = _resolve(spec, header, n, d)
        if problem:
            failures.append((n, problem))
            continue
        is_header = bool(named) or (line1 is not None and len(header) > picks[2]
                                    and not _is_time(header[picks[2]]))
        return Layout("log", d, header=is_header, quoting=quoting, n_fields=n, picks=picks)
    raise DataFileError(f"{name}: {max(failures, key=lambda f: f[0])[1]}")


def _spec_text(spec: dict) -> str:
    return ",".join(f"{r}={spec[r]}" for r in LOG_COLUMNS)


def _resolve(spec: dict, header: list[str], n: int,
             delimiter: str) -> tuple[tuple[int, int, int], str]:
    """The field positions of user, item and time, or ((), why not) for this separator."""
    picks = []
    for role in LOG_COLUMNS:
        column = spec[role]
        if isinstance(column, str):
            if column not in header:
                return (), (f"no column named {column!r} ({role}) in line 1, the header, "
                            f"whose fields (separated by {_separator_name(delimiter)}) are "
                            f"{', '.join(header)}")
            column = header.index(column)
        if column >= n:
            return (), (f"column position {column} ({role}) is past the last field: its lines "
                        f"have {n} fields separated by {delimiter!r} (positions count from 0)")
        picks.append(column)
    return tuple(picks), ""

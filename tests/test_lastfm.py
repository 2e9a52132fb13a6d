"""Reading raw logs: damaged lines, item identity, time order, the generic log, the cache."""

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from seqrec.data import lastfm
from seqrec.data.events import cache_path
from seqrec.data.lastfm import (
    DataFileError,
    parse_file,
    parse_iso_seconds,
    read_events,
    sniff_layout,
    time_order,
)

U1, U2, U3 = "user_000001", "user_000002", "user_000003"


def _row(user: str, time: str, artist: str, title: str, track_mbid: str = "",
         artist_mbid: str = "") -> bytes:
    return "\t".join([user, time, artist_mbid, artist, track_mbid, title]).encode()


def _write(tmp_path: Path, lines: list[bytes], name: str = "log.tsv") -> Path:
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


# Lines 1..10 of a small LastFM-1K file, newest first within each user, with every kind of damage.
DAMAGED = [
    _row(U1, "2009-05-04T23:08:57Z", "Artist A", "Intro", "m-1", "a-1"),  # 1 good
    _row(U1, "2009-05-04T23:00:00Z", 'Artist "B', 'Song "Live'),  # 2 good: stray quotes
    _row(U1, "2009-05-04T22:00:00Z", "Artist A", "So\tng"),  # 3 extra tab: 7 fields
    b"user_000001\t2009-05-04T21:00:00Z\tArtist A\t\tSong",  # 4 missing field: 5 fields
    _row(U2, "2009-05-04T20:00:00Z", "ArtXist", "X").replace(b"X", b"\xff"),  # 5 not UTF-8
    _row(U2, "2009-05-04 19:00:00", "Artist A", "Intro"),  # 6 unparsable time
    _row(U2, "2009-05-04T18:00:00Z", "Artist C", "Intro"),  # 7 good
    b"",  # 8 empty line
    _row("", "2009-05-04T17:00:00Z", "Artist C", "Intro"),  # 9 empty user id
    _row(U2, "2009-05-04T16:00:00Z", "Artist C", "Outro"),  # 10 good
]


def test_known_timestamp_is_unix_seconds(tmp_path):
    # Thesis defect 15: pandas 3 changed the parsed unit; ours is explicit.
    ev = read_events(_write(tmp_path, [_row(U1, "2009-05-04T23:08:57Z", "A", "T")]))
    assert ev.timestamps.dtype == np.int64
    assert ev.timestamps.tolist() == [1241478537]


def test_iso_time_parsing_is_strict_and_exact():
    rng = np.random.default_rng(0)
    ts = rng.integers(0, 4_000_000_000, size=2000)
    text = [datetime.fromtimestamp(int(t), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            for t in ts]
    assert parse_iso_seconds(pa.array(text)).to_pylist() == ts.tolist()
    cases = {
        "2009-05-04T23:08:57Z": 1241478537, "2008-02-29T00:00:00Z": 1204243200,
        "2000-02-29T12:00:00Z": 951825600, "1970-01-01T00:00:00Z": 0,
        "2009-02-29T00:00:00Z": None, "1900-02-29T00:00:00Z": None,
        "2009-13-01T00:00:00Z": None, "2009-00-10T00:00:00Z": None,
        "2009-04-31T00:00:00Z": None, "2009-05-04T24:00:00Z": None,
        "2009-05-04T23:60:00Z": None, "2009-05-04T23:08:60Z": None,
        " 2009-05-04T23:08:57Z": None, "2009-05-04T23:08:57z": None,
        "2009-05-04 23:08:57Z": None, "2O09-05-04T23:08:57Z": None, "": None, None: None,
    }
    values = pa.array(["pad"] + list(cases), type=pa.string()).slice(1)  # a non-zero offset
    assert parse_iso_seconds(values).to_pylist() == list(cases.values())


def test_damaged_lines_are_skipped_counted_and_located(tmp_path):
    ev = read_events(_write(tmp_path, DAMAGED), item_key="title")
    assert ev.report.rows_read == 4 and len(ev) == 4
    assert ev.report.lines_skipped == 6
    lines = [n for n, _ in ev.report.examples]
    assert lines == [3, 4, 5, 6, 8, 9]
    reasons = dict(ev.report.examples)
    assert "7 fields" in reasons[3] and "5 fields" in reasons[4]
    assert "UTF-8" in reasons[5] and "'artist'" in reasons[5]
    assert "time" in reasons[6] and reasons[8] == "empty line" and reasons[9] == "empty user id"
    # The good rows, oldest first, with the stray quotes kept verbatim.
    t = [1241478537, 1241478000, 1241460000, 1241452800]  # 23:08:57, 23:00, 18:00, 16:00
    assert ev.timestamps.tolist() == sorted(t)
    assert ev.user_names[ev.users].tolist() == [U2, U2, U1, U1]
    assert ev.item_names[ev.items].tolist() == ["Outro", "Intro", 'Song "Live', "Intro"]
    assert ev.artist_names[ev.artists].tolist() == ["Artist C", "Artist C", 'Artist "B',
                                                    "Artist A"]


def test_blocks_and_threads_do_not_change_the_result(tmp_path):
    # Many small blocks parsed in parallel: same rows and the same (global) line numbers.
    path = _write(tmp_path, DAMAGED * 7)
    layout = sniff_layout(path)
    one = parse_file(path, layout, "mbid", "k", block_bytes=1 << 30, workers=1)
    many = parse_file(path, layout, "mbid", "k", block_bytes=100, workers=2)
    for name in ("users", "items", "artists", "timestamps", "item_names", "user_names"):
        assert np.array_equal(getattr(one, name), getattr(many, name)), name
    assert one.report == many.report
    assert one.report.lines_skipped == 42
    assert [n for n, _ in one.report.examples] == [3, 4, 5, 6, 8, 9, 13, 14, 15, 16]


def test_item_key_variants(tmp_path):
    path = _write(tmp_path, [
        _row(U1, "2009-01-01T00:00:05Z", "Band A", "Intro", "mbid-1"),
        _row(U1, "2009-01-01T00:00:04Z", "Band B", "Intro", "mbid-2"),
        _row(U1, "2009-01-01T00:00:03Z", "Band A", "Song", ""),
        _row(U1, "2009-01-01T00:00:02Z", "Band B", "Other", ""),
        _row(U1, "2009-01-01T00:00:01Z", "Band A", "Song", ""),
        _row(U1, "2009-01-01T00:00:00Z", "Band A", "Intro (renamed)", "mbid-1"),
    ])
    # rows in time order: Intro(A, mbid-1 renamed), Song(A), Other(B), Song(A), Intro(B), Intro(A)
    title = read_events(path, item_key="title")
    assert title.n_items == 4  # the two "Intro"s are one item
    assert title.items[4] == title.items[5]
    artist_title = read_events(path, item_key="artist_title")
    assert artist_title.n_items == 5
    assert artist_title.items[4] != artist_title.items[5]
    assert "Band A\tIntro" in artist_title.item_names.tolist()
    mbid = read_events(path, item_key="mbid")
    # mbid-1 (two names) is one item; the empty MBIDs fall back to artist + title, so the two
    # "Song" plays share an item and "Other" does not join them.
    assert mbid.n_items == 4
    assert mbid.items[0] == mbid.items[5]
    assert mbid.items[1] == mbid.items[3] != mbid.items[2]
    assert title.key != artist_title.key != mbid.key


def test_ties_keep_file_order(tmp_path):
    path = _write(tmp_path, [
        _row(U2, "2009-01-01T00:00:10Z", "A", "b-late"),
        _row(U2, "2009-01-01T00:00:05Z", "A", "b-tie"),
        _row(U1, "2009-01-01T00:00:05Z", "A", "a-tie-1"),
        _row(U1, "2009-01-01T00:00:05Z", "A", "a-tie-2"),
        _row(U3, "2009-01-01T00:00:01Z", "A", "c-early"),
        _row(U1, "2009-01-01T00:00:05Z", "A", "a-tie-3"),
    ])
    ev = parse_file(path, sniff_layout(path), "title", "k", block_bytes=64, workers=2)
    assert ev.item_names[ev.items].tolist() == ["c-early", "b-tie", "a-tie-1", "a-tie-2",
                                                "a-tie-3", "b-late"]


def test_time_order_is_the_stable_order():
    rng = np.random.default_rng(0)
    for ts in (rng.integers(0, 20, size=5000), rng.integers(-(2**40), 2**40, size=5000),
               np.array([2**62, 0, 5, 0]), np.array([7]), np.zeros(0, dtype=np.int64)):
        want = np.argsort(ts, kind="stable")
        assert np.array_equal(time_order(ts.astype(np.int64)), want)


def test_generic_log_comma_with_header_unix_seconds(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user,item,timestamp\nbob,song1,100\nann,song2,50\nann,song1,abc\n"
                    "bob,song2,100,extra\nann,song3,75\n")
    ev = read_events(path)
    assert ev.user_names.tolist() == ["ann", "bob"]
    assert ev.timestamps.tolist() == [50, 75, 100]
    assert ev.item_names[ev.items].tolist() == ["song2", "song3", "song1"]
    assert ev.user_names[ev.users].tolist() == ["ann", "ann", "bob"]
    assert (ev.artists == -1).all() and ev.artist_names.shape == (0,)
    # Line numbers count the header: line 4 has a bad time, line 5 four fields.
    assert [n for n, _ in ev.report.examples] == [4, 5]


def test_generic_csv_log_allows_quoted_commas(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_text('u1,"Song, with comma",10\nu1,"He said ""hi""",20\nu2,plain,5\n')
    ev = read_events(path)
    assert sniff_layout(path) == lastfm.Layout("log", ",", header=False, quoting=True)
    assert ev.item_names[ev.items].tolist() == ["plain", "Song, with comma", 'He said "hi"']
    assert ev.report.lines_skipped == 0


def test_generic_log_tab_iso_times_no_header(tmp_path):
    path = tmp_path / "log.tsv"
    path.write_text("u1\ti1\t2009-05-04T23:08:57Z\r\nu2\ti2\t2009-05-04 23:08:58\r\n"
                    "u1\ti2\t1241478500\r\n")
    ev = read_events(path, fmt="auto")
    assert sniff_layout(path) == lastfm.Layout("log", "\t", header=False, quoting=False)
    assert ev.timestamps.tolist() == [1241478500, 1241478537, 1241478538]
    assert ev.user_names[ev.users].tolist() == ["u1", "u1", "u2"]
    assert ev.report.lines_skipped == 0


def test_cache_hit_returns_equal_arrays_and_settings_change_the_key(tmp_path, monkeypatch):
    path = _write(tmp_path, DAMAGED)
    cache = tmp_path / "cache"
    first = read_events(path, item_key="artist_title", cache_dir=cache)
    assert (cache_path(cache, first.key) / "meta.json").exists()

    def no_parsing(*args, **kwargs):
        raise AssertionError("a cache hit must not parse the file")

    monkeypatch.setattr(lastfm, "parse_file", no_parsing)
    again = read_events(path, item_key="artist_title", cache_dir=cache)
    for name in ("users", "items", "artists", "timestamps", "user_names", "item_names",
                 "artist_names"):
        a, b = getattr(first, name), getattr(again, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert again.report == first.report and again.key == first.key
    assert again.users.flags.writeable and again.timestamps.flags.writeable
    monkeypatch.undo()
    # A different setting is a different entry.
    other = read_events(path, item_key="title", cache_dir=cache)
    assert other.key != first.key and cache_path(cache, other.key).exists()
    # A changed file (size and mtime) is a different entry too.
    path.write_bytes(path.read_bytes() + _row(U3, "2009-05-05T00:00:00Z", "A", "T") + b"\n")
    changed = read_events(path, item_key="artist_title", cache_dir=cache)
    assert changed.key != first.key and len(changed) == len(first) + 1
    assert len(list(cache.glob("events-*"))) == 3


def test_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.tsv"
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        read_events(missing)
    with pytest.raises(DataFileError, match="is a folder"):
        read_events(tmp_path)
    empty = tmp_path / "empty.tsv"
    empty.write_bytes(b"")
    with pytest.raises(DataFileError, match="empty.tsv is empty"):
        read_events(empty)
    four = tmp_path / "four.tsv"
    four.write_text("a\tb\tc\td\n" * 3)
    with pytest.raises(DataFileError, match="four.tsv.*4 tab-separated fields"):
        read_events(four)
    log = tmp_path / "log.csv"
    log.write_text("u,i,1\n")
    with pytest.raises(DataFileError, match="log.csv is not LastFM-1K"):
        read_events(log, fmt="lastfm")
    broken = tmp_path / "broken.tsv"
    broken.write_bytes(_row(U1, "yesterday", "A", "T") + b"\n")
    with pytest.raises(DataFileError, match="no readable rows in .*broken.tsv.*line 1"):
        read_events(broken)
    with pytest.raises(ValueError, match="item_key"):
        read_events(broken, item_key="name")
    with pytest.raises(ValueError, match="fmt"):
        read_events(broken, fmt="csv")

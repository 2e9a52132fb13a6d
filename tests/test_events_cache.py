"""The Parquet events cache: every file checksummed, any damage rebuilt with one warning."""

import json
import warnings

import numpy as np
import pytest

from seqrec.data import lastfm
from seqrec.data.events import cache_path
from seqrec.data.lastfm import read_events
from seqrec.data.synthetic import SynthConfig, write_synthetic

FILES = ("events.parquet", "users.parquet", "items.parquet", "artists.parquet", "meta.json")
ARRAYS = ("users", "items", "artists", "timestamps", "user_names", "item_names", "artist_names")
SMALL = SynthConfig(n_rows=3000, n_users=8, n_artists=40, n_tracks=300, damaged=0.003)


@pytest.fixture()
def cached(tmp_path):
    """A log, its cache folder, the fresh parse and the cache entry it wrote."""
    path = write_synthetic(tmp_path / "log.tsv", SMALL)
    cache = tmp_path / "cache"
    fresh = read_events(path, item_key="artist_title", cache_dir=cache)
    return path, cache, fresh, cache_path(cache, fresh.key)


def _same(a, b) -> None:
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert a.report == b.report and a.key == b.key


def _read_warning_once(path, cache) -> tuple:
    """Read through the cache; return (events, the messages of the warnings it gave)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ev = read_events(path, item_key="artist_title", cache_dir=cache)
    return ev, [str(w.message) for w in caught]


def _assert_hit_without_parse(path, cache, fresh, monkeypatch) -> None:
    """The rebuilt entry is whole: the next read comes from it, silently and unparsed."""
    def no_parsing(*args, **kwargs):
        raise AssertionError("a cache hit must not parse the file")

    monkeypatch.setattr(lastfm, "parse_file", no_parsing)
    again, messages = _read_warning_once(path, cache)
    monkeypatch.undo()
    assert messages == []
    _same(again, fresh)


def _flip_bit(file, at: int) -> None:
    data = bytearray(file.read_bytes())
    data[at] ^= 0x10
    file.write_bytes(bytes(data))


def _rebuilt_with_one_warning(path, cache, fresh, damaged_file, monkeypatch) -> None:
    ev, messages = _read_warning_once(path, cache)
    assert len(messages) == 1, messages
    assert str(damaged_file) in messages[0] and "rebuilding" in messages[0]
    assert "\n" not in messages[0]
    _same(ev, fresh)
    _assert_hit_without_parse(path, cache, fresh, monkeypatch)


@pytest.mark.parametrize("name", FILES)
def test_a_flipped_bit_in_any_cache_file_is_found_and_rebuilt(cached, name, monkeypatch):
    path, cache, fresh, entry = cached
    file = entry / name
    # The middle of the file: in events.parquet (plain, uncompressed) a value's bits, so the
    # damage would otherwise load silently as a different id or time.
    _flip_bit(file, file.stat().st_size // 2)
    _rebuilt_with_one_warning(path, cache, fresh, file, monkeypatch)


def test_a_flipped_bit_in_the_events_changes_a_value_unless_caught(cached, monkeypatch):
    # Where the damage lands: at the byte of a known timestamp, which pyarrow would read back
    # as another value (no page checksums in the file).
    path, cache, fresh, entry = cached
    file = entry / "events.parquet"
    data = file.read_bytes()
    last = fresh.timestamps[-1].astype("<i8").tobytes()
    at = data.rfind(last)
    assert at > 0
    _flip_bit(file, at)
    _rebuilt_with_one_warning(path, cache, fresh, file, monkeypatch)


@pytest.mark.parametrize("name", FILES)
def test_a_truncated_cache_file_is_rebuilt(cached, name, monkeypatch):
    path, cache, fresh, entry = cached
    file = entry / name
    file.write_bytes(file.read_bytes()[: file.stat().st_size * 2 // 3])
    _rebuilt_with_one_warning(path, cache, fresh, file, monkeypatch)


@pytest.mark.parametrize("name", FILES)
def test_a_deleted_cache_file_is_rebuilt(cached, name, monkeypatch):
    path, cache, fresh, entry = cached
    (entry / name).unlink()
    _rebuilt_with_one_warning(path, cache, fresh, entry / name, monkeypatch)


@pytest.mark.parametrize("garbage", [b"", b"\x00\xff garbage", b"[1, 2, 3]", b'{"format": 4}',
                                     b"not json at all {"])
def test_garbage_meta_is_rebuilt(cached, garbage, monkeypatch):
    path, cache, fresh, entry = cached
    (entry / "meta.json").write_bytes(garbage)
    _rebuilt_with_one_warning(path, cache, fresh, entry / "meta.json", monkeypatch)


def test_edited_meta_that_still_parses_is_caught(cached, monkeypatch):
    # A changed count is valid JSON with the right fields: only the metadata's own checksum
    # tells it from the real one.
    path, cache, fresh, entry = cached
    file = entry / "meta.json"
    text = file.read_text()
    rows = f'"rows_read": {fresh.report.rows_read}'
    assert rows in text
    file.write_text(text.replace(rows, f'"rows_read": {fresh.report.rows_read + 1}'))
    json.loads(file.read_text())  # still valid JSON
    _rebuilt_with_one_warning(path, cache, fresh, file, monkeypatch)


def test_a_parquet_file_swapped_for_another_valid_one_is_caught(cached, monkeypatch):
    # users.parquet replaced by items.parquet: both are valid Parquet of the same schema.
    path, cache, fresh, entry = cached
    (entry / "users.parquet").write_bytes((entry / "items.parquet").read_bytes())
    _rebuilt_with_one_warning(path, cache, fresh, entry / "users.parquet", monkeypatch)


def test_an_intact_entry_loads_silently(cached, monkeypatch):
    path, cache, fresh, _ = cached
    _assert_hit_without_parse(path, cache, fresh, monkeypatch)


def test_an_entry_of_the_previous_format_is_replaced_silently(cached, monkeypatch):
    # What cache format 2 wrote: the same files, a meta.json without checksums.
    path, cache, fresh, entry = cached
    old = {"format": 2, "key": fresh.key, "rows_read": 1, "lines_skipped": 0, "examples": []}
    (entry / "meta.json").write_text(json.dumps(old))
    ev, messages = _read_warning_once(path, cache)
    assert messages == []
    _same(ev, fresh)
    _assert_hit_without_parse(path, cache, fresh, monkeypatch)

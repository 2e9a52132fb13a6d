"""Nothing unchecked is used (issue 19): the split cache checks its key and its checksum, the
built-in log its size and digest, the reader its time column and its share of damaged lines;
and seeded bit flips in a split file and in the events cache are each detected or harmless."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from seqrec.config import DataConfig
from seqrec.data import events, lastfm
from seqrec.data.events import cache_path, load_events
from seqrec.data.inputs import DataFileError
from seqrec.data.lastfm import read_events, tied_share
from seqrec.data.protocol import load_or_prepare_split, split_cache_key
from seqrec.data.source import DataRef, DataSource
from seqrec.data.synthetic import SynthConfig, expected_lines, generate, write_synthetic
from seqrec.data.windows import PARTS, Split


def _log(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids of a small time-ordered log: 20 users, 60 items, skewed item popularity."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 20, n).astype(np.int32)
    items = np.minimum(rng.geometric(0.05, n) - 1, 59).astype(np.int32)
    return users, items


CFG = DataConfig(chunks=2, threshold=2, seq_len=5)


def _arrays(s: Split) -> dict:
    """Every value a split hands to training and evaluation, by name."""
    out = {"item_counts": s.item_counts, "n": np.array([s.n_items, s.n_users, s.seq_len]),
           "dropped": np.array([s.dropped_unseen["val"], s.dropped_unseen["test"]])}
    for p in PARTS:
        w = s.part(p)
        out |= {f"{p}_items": w.items, f"{p}_users": w.users, f"{p}_starts": w.starts}
    return out


def _assert_same(a: Split, b: Split) -> None:
    x, y = _arrays(a), _arrays(b)
    for name in x:
        assert x[name].dtype == y[name].dtype and np.array_equal(x[name], y[name]), name
    assert a.meta == b.meta


def _load(users, items, cache) -> tuple[Split, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        split = load_or_prepare_split("ev", users, items, CFG, 0, cache)
    return split, [str(w.message) for w in caught]


# ---------------------------------------------------------------------------------------------
# Item 3: the split cache

def test_a_split_file_copied_over_another_chunks_name_is_rebuilt(tmp_path):
    # Failed before the fix: the copied file (chunk 1's split) was returned as chunk 0's.
    users, items = _log()
    chunk0 = load_or_prepare_split("ev", users, items, CFG, 0, tmp_path)
    chunk1 = load_or_prepare_split("ev", users, items, CFG, 1, tmp_path)
    name0 = tmp_path / f"split-{split_cache_key('ev', CFG, 0)}.npz"
    name1 = tmp_path / f"split-{split_cache_key('ev', CFG, 1)}.npz"
    name0.write_bytes(name1.read_bytes())
    again, messages = _load(users, items, tmp_path)
    assert len(messages) == 1 and str(name0) in messages[0] and "rebuilding" in messages[0]
    assert "holds the split of key" in messages[0]
    _assert_same(again, chunk0)
    assert again.meta["chunk"] == 0 and chunk1.meta["chunk"] == 1
    _assert_same(Split.load(name0), chunk0)  # the rebuilt file replaced the copy
    assert _load(users, items, tmp_path)[1] == []


def test_a_split_of_other_events_is_not_used(tmp_path):
    users, items = _log()
    load_or_prepare_split("other-events", users[::-1].copy(), items[::-1].copy(), CFG, 0,
                          tmp_path)
    mine = tmp_path / f"split-{split_cache_key('ev', CFG, 0)}.npz"
    (theirs,) = tmp_path.glob("split-*.npz")
    mine.write_bytes(theirs.read_bytes())
    again, messages = _load(users, items, tmp_path)
    assert len(messages) == 1 and str(mine) in messages[0]
    _assert_same(again, load_or_prepare_split("ev", users, items, CFG, 0, None))


def test_a_split_file_rewritten_with_a_changed_value_is_rebuilt(tmp_path):
    # Failed before the fix: a file re-zipped with one changed target (its zip CRCs valid) was
    # used as it was. The zip's CRC-32 catches bits flipped in place; the checksum the split
    # stores catches a file written again, by hand or by an older seqrec.
    users, items = _log()
    good = load_or_prepare_split("ev", users, items, CFG, 0, tmp_path)
    (path,) = tmp_path.glob("split-*.npz")
    with np.load(path) as z:
        arrays = {name: z[name] for name in z.files}
    arrays["test_items"] = arrays["test_items"].copy()
    arrays["test_items"][-1] = (arrays["test_items"][-1] + 1) % good.n_items
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    again, messages = _load(users, items, tmp_path)
    assert len(messages) == 1 and "checksum does not match" in messages[0]
    assert str(path) in messages[0]
    _assert_same(again, good)
    header = arrays["header"].tobytes().replace(b'"checksum"', b'"checksun"')
    with open(path, "wb") as f:  # no checksum at all: an older file, rebuilt with a warning
        np.savez(f, **{**arrays, "header": np.frombuffer(header, np.uint8)})
    again, messages = _load(users, items, tmp_path)
    assert len(messages) == 1 and "no checksum" in messages[0]
    _assert_same(again, good)


# ---------------------------------------------------------------------------------------------
# Item 4: the built-in generated log

TINY_SYNTH = SynthConfig(n_rows=3000, n_users=6, n_artists=30, n_tracks=200, damaged=0.002)


def _generate(folder) -> tuple:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = generate(TINY_SYNTH, folder)
    return path, [str(w.message) for w in caught]


def test_a_cut_or_edited_generated_log_is_written_again(tmp_path):
    # Failed before the fix: the half file was returned as it was (and read under the same
    # fingerprint as the whole one).
    path, messages = _generate(tmp_path)
    whole = path.read_bytes()
    assert messages == [] and whole.count(b"\n") == expected_lines(TINY_SYNTH) == 3006
    assert _generate(tmp_path) == (path, [])  # intact: used as it is

    lines = whole.split(b"\n")
    path.write_bytes(b"\n".join(lines[:1500]) + b"\n")  # cut to half, at a line end
    again, messages = _generate(tmp_path)
    assert again == path and path.read_bytes() == whole
    assert len(messages) == 1 and str(path) in messages[0]
    assert "has 1,500 lines, expected 3,006" in messages[0]

    edited = whole.replace(b"user_000001", b"user_000002", 1)  # same size, same line count
    path.write_bytes(edited)
    assert _generate(tmp_path)[1] == [f"generated log {path} does not match the checksum in "
                                      f"{path.stem}.json; writing it again"]
    assert path.read_bytes() == whole

    path.with_suffix(".json").unlink()  # a kill between the log and its stamp
    assert "has no stamp" in _generate(tmp_path)[1][0]
    assert path.read_bytes() == whole and _generate(tmp_path)[1] == []


# ---------------------------------------------------------------------------------------------
# Item 5: a time column that cannot order the plays

def _ratings_log(path, n_users: int = 10, plays: int = 30) -> None:
    """`user item rating time`, tab-separated: real times in field 3, ratings 1..5 in field 2."""
    rng = np.random.default_rng(1)
    lines = [f"u{u}\ti{int(rng.integers(0, 50))}\t{int(rng.integers(1, 6))}\t"
             f"{1_000_000 + 97 * k + u}" for u in range(n_users) for k in range(plays)]
    path.write_text("\n".join(lines) + "\n")


def test_a_rating_column_mapped_as_time_stops_with_one_sentence(tmp_path):
    # Failed before the fix: the ratings were read as times and the order became file order.
    path = tmp_path / "ratings.tsv"
    _ratings_log(path)
    with pytest.raises(DataFileError) as err:
        read_events(path, columns="user=0,item=1,time=2")
    text = str(err.value)
    assert str(path) in text and "the time column (field 2, counting from 0)" in text
    assert "cannot order the plays" in text and "more than 50%" in text
    assert text.count(". ") == 0  # one sentence
    ev = read_events(path, columns="user=0,item=1,time=3")  # the real time column reads
    assert len(ev) == 300 and tied_share(ev.users, ev.timestamps) == 0.0


def test_a_constant_time_column_stops(tmp_path):
    path = tmp_path / "const.csv"
    path.write_text("".join(f"u{k % 3},i{k},7,{1000 + k}\n" for k in range(10)))
    with pytest.raises(DataFileError, match=r"field 2, counting from 0\) holds one value for "
                                            r"all 10 rows \(7\)"):
        read_events(path, columns="user=0,item=1,time=2")


def test_an_events_cache_entry_from_before_the_checks_is_not_used(tmp_path, monkeypatch):
    # Failed before CACHE_FORMAT 4: an entry the previous reader (format 3, no time-column
    # check) wrote for the rating column was loaded, so the upgrade never saw the bad column.
    path = tmp_path / "ratings.tsv"
    _ratings_log(path)
    cache = tmp_path / "cache"
    monkeypatch.setattr(events, "CACHE_FORMAT", 3)
    monkeypatch.setattr(lastfm, "MAX_TIED_SHARE", 1.0)
    old = read_events(path, columns="user=0,item=1,time=2", cache_dir=cache)
    assert len(old) == 300 and len(list(cache.iterdir())) == 1
    monkeypatch.undo()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataFileError, match="cannot order the plays"):
            read_events(path, columns="user=0,item=1,time=2", cache_dir=cache)
    assert caught == []  # an older format is a plain miss, not damage


def test_tied_share_counts_ties_within_a_user_only():
    # Rows in time order. User 0: times 5 5 5 9 (2 of its 3 later plays tie); user 1: 5 6
    # (none: its 5 equals user 0's, another user); user 2: one play. 2 of 4 later plays tie.
    users = np.array([0, 1, 0, 0, 1, 0, 2])
    times = np.array([5, 5, 5, 5, 6, 9, 9], dtype=np.int64)
    assert tied_share(users, times) == 2 / 4
    assert tied_share(np.array([0, 1]), np.array([3, 3], dtype=np.int64)) == 0.0
    rng = np.random.default_rng(5)  # against a plain loop on random small logs
    for _ in range(100):
        n = int(rng.integers(1, 40))
        users, times = rng.integers(0, 4, n), np.sort(rng.integers(0, 6, n))
        seen, ties = set(), 0
        for pair in zip(users.tolist(), times.tolist(), strict=True):
            ties += pair in seen
            seen.add(pair)
        later = n - len(set(users.tolist()))
        assert tied_share(users, times) == (ties / later if later else 0.0)


def test_second_resolution_listening_logs_are_not_refused(tmp_path):
    # LastFM-1K's timestamps are seconds with rare same-second plays; the generator copies
    # that (same_second, 0.001 by default; 20 times as many here, and still read).
    cfg = SynthConfig(**{**TINY_SYNTH.__dict__, "same_second": 0.02})
    ev = read_events(write_synthetic(tmp_path / "log.tsv", cfg))
    assert 0.01 < tied_share(ev.users, ev.timestamps) < 0.03
    assert len(ev) == 3000 and ev.report.lines_skipped == 6


# ---------------------------------------------------------------------------------------------
# Item 6: damaged lines, on the console and past a share

def _latin1_log(path, n: int, bad: int) -> None:
    """A `user,item,time` log of `n` lines whose first `bad` items are Latin-1 (not UTF-8)."""
    cafe = "caf\u00e9"
    lines = [f"u{k % 7},{cafe if k < bad else 'tea'}{k % 40},{1000 + k}\n" for k in range(n)]
    path.write_bytes("".join(lines[:bad]).encode("latin-1") + "".join(lines[bad:]).encode())


def test_a_log_mostly_in_another_encoding_stops(tmp_path):
    # Failed before the fix: the 31% of lines that decode were read as the log.
    path = tmp_path / "latin1.csv"
    _latin1_log(path, n=1000, bad=690)
    with pytest.raises(DataFileError) as err:
        read_events(path)
    text = str(err.value)
    assert text.startswith(f"{path}: 690 of its 1,000 lines (69.0%) are damaged, more than "
                           f"the 5% seqrec reads past (e.g. line 1: ")
    assert "iconv" in text and text.replace("e.g. ", "").count(". ") == 0  # one sentence


def test_damaged_lines_under_the_share_are_read_and_said_on_the_console(tmp_path):
    path = tmp_path / "some.csv"
    _latin1_log(path, n=2000, bad=100)  # exactly 5%: read, and said
    source = DataSource(DataRef.file(path), tmp_path / "out")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ev = source.events(DataConfig())
        source.events(DataConfig())  # read once per process: said once
    examples = "; ".join(f"line {k}: bytes that are not UTF-8 in field 'item'" for k in (1, 2, 3))
    assert [str(w.message) for w in caught] == [
        f"data {path}: 1900 rows read, 100 damaged lines skipped ({examples})"]
    assert len(ev) == 1900
    _latin1_log(path, n=2000, bad=101)  # one more: refused
    with pytest.raises(DataFileError, match="101 of its 2,000 lines"):
        read_events(path)


# ---------------------------------------------------------------------------------------------
# Item 7: seeded bit flips. Each flip is either detected (the value is not used: a warning and
# a rebuild, or for the events cache a miss) or harmless (what loads equals the original).

FLIPS = 200


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_bit_flips_in_a_split_file_are_detected_or_harmless(tmp_path):
    users, items = _log()
    original = load_or_prepare_split("ev", users, items, CFG, 0, tmp_path)
    (path,) = tmp_path.glob("split-*.npz")
    clean = path.read_bytes()
    bits = np.random.default_rng(19).choice(len(clean) * 8, size=FLIPS, replace=False)
    outcomes = {"detected": 0, "harmless": 0}
    for bit in bits:
        path.write_bytes(_flip(clean, int(bit)))
        loaded, messages = _load(users, items, tmp_path)
        _assert_same(loaded, original)  # whatever happened, no changed value came back
        assert len(messages) <= 1, messages
        outcomes["detected" if messages else "harmless"] += 1
        if messages:
            assert str(path) in messages[0] and "rebuilding" in messages[0]
    # Most bits are array data or header, which the zip CRCs and the checksum cover; a few are
    # zip bookkeeping that no reader looks at (timestamps, version fields).
    assert outcomes["detected"] > 0.8 * FLIPS and sum(outcomes.values()) == FLIPS


def test_bit_flips_in_the_events_cache_are_detected_or_harmless(tmp_path):
    path = write_synthetic(tmp_path / "log.tsv", TINY_SYNTH)
    cache = tmp_path / "cache"
    fresh = read_events(path, cache_dir=cache)
    entry = cache_path(cache, fresh.key)
    files = sorted(entry.iterdir())
    assert [f.name for f in files] == ["artists.parquet", "events.parquet", "items.parquet",
                                       "meta.json", "users.parquet"]
    clean = {f: f.read_bytes() for f in files}
    sizes = np.array([len(clean[f]) * 8 for f in files])
    rng = np.random.default_rng(19)
    # Positions over all files together, so each file is hit in proportion to its size.
    bits = rng.choice(int(sizes.sum()), size=FLIPS, replace=False)
    outcomes = {"detected": 0, "harmless": 0}
    for bit in bits:
        which = int(np.searchsorted(np.cumsum(sizes), bit, side="right"))
        file = files[which]
        file.write_bytes(_flip(clean[file], int(bit - (sizes[:which].sum()))))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loaded = load_events(cache, fresh.key)
        file.write_bytes(clean[file])
        if loaded is None:  # a miss: the caller parses the log again
            outcomes["detected"] += 1
            assert len(caught) == 1 and str(file) in str(caught[0].message)
        else:
            outcomes["harmless"] += 1
            for name in ("users", "items", "artists", "timestamps", "user_names",
                         "item_names", "artist_names"):
                assert np.array_equal(getattr(loaded, name), getattr(fresh, name)), name
            assert loaded.report == fresh.report
    assert outcomes == {"detected": FLIPS, "harmless": 0}  # every byte is under a checksum

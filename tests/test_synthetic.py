"""The generated log: exact LastFM-1K format, determinism, and that every knob has its effect."""

import re
from datetime import datetime, timezone

import numpy as np
import pytest

from seqrec.data.lastfm import read_events
from seqrec.data.synthetic import (
    SynthConfig,
    format_times,
    generate,
    make_catalogue,
    user_counts,
    user_plays,
    write_synthetic,
)

SMALL = SynthConfig(n_rows=20_000, n_users=20, n_artists=200, n_tracks=2_000)
MBID = re.compile(r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synth") / "small.tsv", SMALL)


def test_file_has_the_lastfm_1k_layout(small_file):
    lines = small_file.read_bytes().decode("utf-8").split("\n")
    assert lines[-1] == "" and len(lines) - 1 == SMALL.n_rows
    rows = [line.split("\t") for line in lines[:-1]]
    assert all(len(r) == 6 for r in rows)
    users = [r[0] for r in rows]
    assert set(users) == {f"user_{u:06d}" for u in range(1, SMALL.n_users + 1)}
    # users are contiguous blocks, in order, each newest first
    starts = [i for i in range(len(users)) if i == 0 or users[i] != users[i - 1]]
    assert [users[i] for i in starts] == sorted(set(users))
    for r in rows[:2000]:
        assert TIME.match(r[1]) and MBID.match(r[2]) and MBID.match(r[4]) and r[3] and r[5]
    times = [r[1] for r in rows]
    for a, b in zip(starts, starts[1:] + [len(rows)], strict=True):
        assert times[a:b] == sorted(times[a:b], reverse=True)
    # some empty track MBIDs, some stray quotes, some "Intro"s shared by different artists
    assert 0.02 < np.mean([r[4] == "" for r in rows]) < 0.3
    assert any('"' in r[5] for r in rows)
    assert len({r[3] for r in rows if r[5] == "Intro"}) > 1


def test_same_seed_same_bytes_different_seed_different_bytes(tmp_path, small_file):
    again = write_synthetic(tmp_path / "again.tsv", SMALL)
    assert again.read_bytes() == small_file.read_bytes()
    other = write_synthetic(tmp_path / "other.tsv", SynthConfig(**{**SMALL.__dict__, "seed": 1}))
    assert other.read_bytes() != small_file.read_bytes()


def test_generate_names_the_file_by_config_and_reuses_it(tmp_path):
    cfg = SynthConfig(n_rows=500, n_users=5, n_artists=20, n_tracks=100)
    path = generate(cfg, tmp_path)
    mtime = path.stat().st_mtime_ns
    assert generate(cfg, tmp_path) == path and path.stat().st_mtime_ns == mtime
    assert generate(SynthConfig(**{**cfg.__dict__, "seed": 3}), tmp_path) != path


def test_damaged_lines_are_exactly_what_the_reader_skips(tmp_path):
    cfg = SynthConfig(n_rows=10_000, n_users=10, n_artists=100, n_tracks=1000, damaged=0.01)
    ev = read_events(write_synthetic(tmp_path / "d.tsv", cfg))
    assert ev.report.lines_skipped == 100
    assert ev.report.rows_read == cfg.n_rows == len(ev)
    reasons = " ".join(r for _, r in ev.report.examples)
    assert "fields" in reasons


def test_format_times_matches_the_standard_library():
    rng = np.random.default_rng(0)
    ts = np.concatenate([[0, 951782400, 951868799, 1241478537, 4102444800],
                         rng.integers(0, 4_000_000_000, size=500)])
    got = [s.decode() for s in format_times(ts)]
    want = [datetime.fromtimestamp(int(t), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            for t in ts]
    assert got == want
    assert got[3] == "2009-05-04T23:08:57Z"


def test_user_counts_are_exact_and_heavy_tailed():
    cfg = SynthConfig(n_rows=100_000, n_users=500, activity_sigma=1.5)
    counts = user_counts(cfg, np.random.default_rng(0))
    assert counts.sum() == cfg.n_rows and counts.min() >= 1
    assert counts.max() > 10 * np.median(counts)
    flat = user_counts(SynthConfig(n_rows=100_000, n_users=500, activity_sigma=0.0),
                       np.random.default_rng(0))
    assert flat.max() - flat.min() <= 1


def _plays(cfg: SynthConfig, n: int = 5000, users: int = 8):
    rng = np.random.default_rng(cfg.seed)
    cat = make_catalogue(cfg, rng)
    return cat, [user_plays(cfg, cat, rng, n) for _ in range(users)]


def test_drift_no_play_before_release_and_new_music_is_played():
    cfg = SynthConfig(new_music=0.8, long_range=0.2, long_range_gap=5, n_artists=100,
                      n_tracks=3000)
    cat, plays = _plays(cfg)
    for tracks, times in plays:
        assert np.all(np.diff(times) >= 0)
        assert np.all(cat.release[tracks] <= times)
    late = np.concatenate([cat.release[t] > cat.release.min() for t, _ in plays])
    assert late.mean() > 0.05


def test_sessions_and_user_span():
    from seqrec.data.synthetic import PERIOD_END, PERIOD_START

    cfg = SynthConfig(session_length=25.0, user_span=0.6)
    _, plays = _plays(cfg, n=5000)
    period = PERIOD_END - PERIOD_START
    for _, times in plays:
        assert PERIOD_START <= times[0] and times[-1] <= PERIOD_END
        assert times[-1] - times[0] >= 0.59 * period
        sessions = 1 + np.sum(np.diff(times) > 3600)
        assert 150 < sessions < 250  # about 5000 / 25


def _top_share(cfg: SynthConfig) -> float:
    cat, plays = _plays(cfg)
    shares = []
    for tracks, _ in plays:
        counts = np.sort(np.bincount(cat.track_artist[tracks]))[::-1]
        shares.append(counts[: cfg.taste_artists].sum() / counts.sum())
    return float(np.mean(shares))


def test_taste_concentrates_each_users_artists():
    base = dict(album_order=0.0, replay=0.0, n_artists=400)
    none = _top_share(SynthConfig(taste=0.0, **base))
    strong = _top_share(SynthConfig(taste=0.9, **base))
    assert strong > 0.85 and strong > none + 0.3


def test_album_order_plays_the_next_track():
    def next_rate(p: float) -> float:
        cat, plays = _plays(SynthConfig(album_order=p, replay=0.0))
        hits = []
        for t, _ in plays:
            first = cat.album_start[t[:-1]]
            hits.append(t[1:] == first + (t[:-1] - first + 1) % cat.album_len[t[:-1]])
        return float(np.mean(np.concatenate(hits)))

    assert next_rate(0.0) < 0.05
    assert 0.6 < next_rate(0.7) < 0.8  # 0.7 minus session starts, plus chance


def test_replay_repeats_recent_tracks():
    def recent_rate(p: float) -> float:
        _, plays = _plays(SynthConfig(replay=p, album_order=0.0, replay_window=5))
        rates = []
        for t, _ in plays:
            seen = np.zeros(len(t) - 5, dtype=bool)
            for d in range(1, 6):
                seen |= t[5:] == t[5 - d: len(t) - d]
            rates.append(seen.mean())
        return float(np.mean(rates))

    assert recent_rate(0.5) > recent_rate(0.0) + 0.3


def _gap_accuracy(tmp_path, cfg: SynthConfig, gap: int) -> float:
    """How well item[i - gap] predicts item[i], by a lookup table fit on half of the users.

    Read through the reader, in the reader's ids: the truth is recovered from the file alone.
    """
    ev = read_events(write_synthetic(tmp_path / f"lr-{cfg.long_range}.tsv", cfg))
    pairs = {0: [], 1: []}
    for u in range(ev.n_users):
        seq = ev.items[ev.users == u]
        pairs[u % 2].append(np.stack([seq[:-gap], seq[gap:]], axis=1))
    fit, held = (np.concatenate(pairs[k]) for k in (0, 1))
    table: dict[tuple[int, int], int] = {}
    for x, y in fit.tolist():
        table[(x, y)] = table.get((x, y), 0) + 1
    best: dict[int, tuple[int, int]] = {}
    for (x, y), c in table.items():
        if c > best.get(x, (0, -1))[0]:
            best[x] = (c, y)
    guess = np.array([best.get(x, (0, -1))[1] for x in held[:, 0].tolist()])
    return float(np.mean(guess == held[:, 1]))


def test_long_range_makes_the_item_k_steps_back_predictive(tmp_path):
    base = dict(n_rows=40_000, n_users=20, n_artists=200, n_tracks=2000, long_range_gap=12,
                album_order=0.0, replay=0.0, taste=0.0, same_second=0.0)
    off = SynthConfig(long_range=0.0, **base)
    on = SynthConfig(long_range=0.4, **base)
    chance = _gap_accuracy(tmp_path, off, 12)
    hit = _gap_accuracy(tmp_path, on, 12)
    assert chance < 0.05
    assert hit > 0.2 and hit > 5 * chance
    assert _gap_accuracy(tmp_path, on, 11) < 0.1  # the dependency is at exactly that gap


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="taste must be in"):
        SynthConfig(taste=1.5)
    with pytest.raises(ValueError, match="album_order \\+ replay \\+ long_range"):
        SynthConfig(album_order=0.6, replay=0.3, long_range=0.3)
    with pytest.raises(ValueError, match="n_rows >= n_users"):
        SynthConfig(n_rows=5, n_users=10)

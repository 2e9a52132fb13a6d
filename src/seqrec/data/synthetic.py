"""Generated listening logs in exactly the LastFM-1K format, with known, tunable structure.

The file has the layout of `userid-timestamp-artid-artname-traid-traname.tsv`
(docs/protocol.md, "Data"): no header, six tab-separated fields, `user_000001` ids, ISO-8601
UTC times, UUID-like MBIDs (some empty), newest first within each user. The same `SynthConfig`
(seed included) always gives the same bytes.

The world behind the file:
- Artists have Zipf-like popularity; each owns albums of consecutive tracks, whose own
  popularity within the artist is Zipf-like too. Some titles (an album's "Intro") recur across
  artists, so `item_key` matters.
- Users have heavy-tailed (log-normal) activity and listen in sessions separated by long gaps;
  each user's plays cover a random part of the period (at least `user_span` of it).
- Drift: an artist's first album exists from the start; with probability `new_music` a later
  album is released at a random time, and is never played before it.
- Each play, in a user's time order, is one of:
  * a *recall*, with probability `long_range`: a fixed function (`partner`) of the track the
    user played `long_range_gap` plays earlier -- a long-range dependency whose truth is known;
  * the *next track of the album* of the previous play, with probability `album_order`;
  * a *replay* of one of the last `replay_window` plays, with probability `replay`;
  * otherwise a fresh *draw*: with probability `taste` from one of the user's `taste_artists`
    favourite artists, else from the global popularity.
  The first play of a session is always a fresh draw.
- Damage: `damaged` times the number of rows extra lines are inserted, each of one kind the
  real file has (an extra tab, a missing field, bytes that are not UTF-8, an unparsable time);
  `read_events` skips exactly these. `stray_quote` puts a `"` into some titles: harmless when
  quoting is off, so those rows are good rows.

Vectorised with numpy and pyarrow; the only Python loop is over users (each user's plays are
resolved by a few whole-array passes, because every non-draw play refers to an earlier one).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seqrec.config import config_hash
from seqrec.data.events import file_digest
from seqrec.io import atomic_write, atomic_write_json, read_json

PERIOD_START = 1108339200  # 2005-02-14T00:00:00Z, about where LastFM-1K begins
PERIOD_END = 1241136000  # 2009-05-01T00:00:00Z, about where it ends
FLUSH_ROWS = 1 << 20  # rows formatted and written at a time (bounds memory at full size)
_WORDS = (
    "love night blue heart fire dream rain light dark summer city road home ghost river star "
    "time world gold silver stone paper glass wild sweet cold young little lost broken electric "
    "golden black white red green echo shadow ocean desert mountain winter morning midnight "
    "sound song dance story angel devil storm thunder moon sun sky north south queen king"
).split()
_SYLLABLES = ("ka ro mi ta len sor vel an is el om ur da ne fi lo ma ri su te bra cor din "
              "fal gor hin jun kel mor nav pel quin ros sal tor vin wen yar zel").split()
_DAMAGE_KINDS = ("extra_tab", "missing_field", "bad_bytes", "bad_time")


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the generated log. Defaults: a demo of 300,000 rows, 100 users."""

    seed: int = 0
    n_rows: int = 300_000  # good rows (damaged lines come on top)
    n_users: int = 100
    n_artists: int = 200
    n_tracks: int = 4_000  # approximate: albums are added until there are about this many
    album_size: int = 6  # mean tracks per album (uniform in [album_size / 2, 3 album_size / 2])
    zipf: float = 1.0  # exponent of artist popularity and of track popularity within an artist
    activity_sigma: float = 1.0  # log-normal sigma of user activity (0: all users alike)
    taste: float = 0.5  # probability that a fresh draw comes from the user's favourite artists
    taste_artists: int = 8  # favourite artists per user
    album_order: float = 0.3  # probability of playing the next track of the previous album
    replay: float = 0.1  # probability of replaying one of the last `replay_window` plays
    replay_window: int = 10
    long_range: float = 0.0  # probability of recalling partner(track `long_range_gap` back)
    long_range_gap: int = 30
    session_length: float = 20.0  # mean plays per session
    user_span: float = 0.3  # a user's plays cover a fraction U(user_span, 1) of the period
    same_second: float = 0.001  # probability that a play has its predecessor's timestamp
    new_music: float = 0.5  # probability that an artist's later album appears mid-period
    empty_track_mbid: float = 0.1  # fraction of tracks without an MBID
    empty_artist_mbid: float = 0.05  # fraction of artists without an MBID
    stray_quote: float = 0.01  # fraction of titles holding a stray `"` (good rows)
    intro: float = 0.2  # probability that an album opens with a track called "Intro"
    damaged: float = 0.0  # damaged lines inserted, as a fraction of n_rows

    def __post_init__(self) -> None:
        def need(ok: bool, text: str) -> None:
            if not ok:
                raise ValueError(f"SynthConfig: {text}")

        need(self.n_users >= 1 and self.n_rows >= self.n_users,
             f"need n_rows >= n_users >= 1, got n_rows={self.n_rows}, n_users={self.n_users}")
        need(self.n_artists >= 1 and self.n_tracks >= 1, "n_artists and n_tracks must be >= 1")
        need(self.album_size >= 1, f"album_size must be >= 1, got {self.album_size}")
        for name in ("taste", "album_order", "replay", "long_range", "same_second", "new_music",
                     "empty_track_mbid", "empty_artist_mbid", "stray_quote", "intro", "damaged"):
            value = getattr(self, name)
            need(0.0 <= value <= 1.0, f"{name} must be in [0, 1], got {value}")
        need(self.album_order + self.replay + self.long_range <= 1.0,
             "album_order + replay + long_range must be <= 1 (the rest are fresh draws)")
        need(1 <= self.taste_artists <= self.n_artists,
             f"taste_artists must be in [1, n_artists], got {self.taste_artists}")
        need(self.replay_window >= 1 and self.long_range_gap >= 1,
             "replay_window and long_range_gap must be >= 1")
        need(self.session_length >= 1.0, f"session_length must be >= 1, got {self.session_length}")
        need(0.0 < self.user_span <= 1.0, f"user_span must be in (0, 1], got {self.user_span}")


# ---------------------------------------------------------------------------------------------
# The catalogue: artists, albums, tracks


@dataclass(frozen=True)
class Catalogue:
    """Tracks are numbered so that an artist's albums, and an album's tracks, are consecutive.

    Per artist (`[A]`): `weight` (popularity), `first` track, `name`, `mbid`. Per track
    (`[T]`): `artist`, `album_start`, `album_len`, `release` (unix seconds), `key` (artist
    index + cumulative within-artist popularity, for drawing by `searchsorted`), `fallback` (a
    track of the artist's first album, always released), `partner` (the recalled track; never
    released later than its source), `title`, `mbid`.
    """

    artist_weight: np.ndarray
    artist_first: np.ndarray
    artist_name: list[str]
    artist_mbid: list[str]
    track_artist: np.ndarray
    album_start: np.ndarray
    album_len: np.ndarray
    release: np.ndarray
    key: np.ndarray
    fallback: np.ndarray
    partner: np.ndarray
    title: list[str]
    mbid: list[str]

    @property
    def n_tracks(self) -> int:
        return int(self.track_artist.shape[0])


def _mbids(rng: np.random.Generator, n: int, empty: float) -> list[str]:
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    blank = rng.random(n) < empty
    out = []
    for row, is_blank in zip(raw, blank, strict=True):
        if is_blank:
            out.append("")
        else:
            h = row.tobytes().hex()
            out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


def _vocabulary(rng: np.random.Generator, size: int = 4000) -> np.ndarray:
    """English words plus made-up ones of two or three syllables (a catalogue-sized lexicon)."""
    made = ["".join(rng.choice(_SYLLABLES, size=k)) for k in rng.integers(2, 4, size=size)]
    return np.array(sorted(set(_WORDS) | set(made)))


def _phrases(rng: np.random.Generator, words: np.ndarray, n: int, max_words: int) -> list[str]:
    lengths = rng.integers(1, max_words + 1, size=n)
    picks = words[rng.integers(0, len(words), size=(n, max_words))]
    return [" ".join(w[:k]).title() for w, k in zip(picks, lengths, strict=True)]


def make_catalogue(cfg: SynthConfig, rng: np.random.Generator) -> Catalogue:
    """Artists, albums and tracks with popularity, release times, partners and names."""
    n_art = cfg.n_artists
    artist_weight = 1.0 / np.arange(1, n_art + 1) ** cfg.zipf
    artist_weight = rng.permutation(artist_weight / artist_weight.sum())
    # Albums: popular artists own more of them (share of albums ~ weight ** 0.5).
    lo, hi = max(1, cfg.album_size // 2), max(1, (3 * cfg.album_size) // 2)
    n_albums = max(n_art, int(np.ceil(cfg.n_tracks / ((lo + hi) / 2))))
    owner_p = np.sqrt(artist_weight) / np.sqrt(artist_weight).sum()
    owners = np.concatenate([np.arange(n_art), rng.choice(n_art, n_albums - n_art, p=owner_p)])
    owners = np.sort(owners)
    lens = rng.integers(lo, hi + 1, size=n_albums)
    album_first = np.concatenate([[0], np.cumsum(lens)[:-1]])
    first_album = np.r_[True, owners[1:] != owners[:-1]]
    album_release = np.where(
        first_album | (rng.random(n_albums) >= cfg.new_music), PERIOD_START,
        rng.integers(PERIOD_START, PERIOD_END, size=n_albums))
    n_tracks = int(lens.sum())
    album_of = np.repeat(np.arange(n_albums), lens)
    track_artist = owners[album_of].astype(np.int64)
    artist_first = np.searchsorted(track_artist, np.arange(n_art))
    # Within an artist, track popularity is Zipf over a random order of its tracks.
    pos = np.arange(n_tracks) - artist_first[track_artist]
    within_rank = np.empty(n_tracks, dtype=np.int64)
    shuffled = np.argsort(track_artist * 2.0 + rng.random(n_tracks), kind="stable")
    within_rank[shuffled] = pos  # a random rank within the artist for every track
    w = 1.0 / (within_rank + 1.0) ** cfg.zipf
    cum = np.cumsum(w)
    artist_total = np.add.reduceat(w, artist_first)
    before = np.concatenate([[0.0], np.cumsum(artist_total)[:-1]])
    within_cdf = (cum - before[track_artist]) / artist_total[track_artist]
    within_cdf[np.r_[artist_first[1:] - 1, n_tracks - 1]] = 1.0  # exact, despite rounding
    key = track_artist + within_cdf
    first_album_len = lens[np.searchsorted(album_first, artist_first)]
    fallback = artist_first[track_artist] + pos % first_album_len[track_artist]
    release = album_release[album_of]
    # Partner: a track released no later, so a recall never breaks drift.
    by_release = np.argsort(release, kind="stable")
    last_same = np.searchsorted(release[by_release], release, side="right")  # ties allowed
    partner = by_release[(rng.random(n_tracks) * last_same).astype(np.int64)]

    words = _vocabulary(rng)
    titles = _phrases(rng, words, n_tracks, 4)
    opens = album_first[rng.random(n_albums) < cfg.intro]
    for t in opens:
        titles[t] = "Intro"
    for t in np.flatnonzero(rng.random(n_tracks) < cfg.stray_quote):
        titles[t] = f'{titles[t]} "Live'
    names = _phrases(rng, words, n_art, 2)
    seen: dict[str, int] = {}
    for a, name in enumerate(names):  # artist names must be unique: the reader keys on them
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            names[a] = f"{name} {seen[name]}"
    return Catalogue(
        artist_weight=artist_weight, artist_first=artist_first, artist_name=names,
        artist_mbid=_mbids(rng, n_art, cfg.empty_artist_mbid), track_artist=track_artist,
        album_start=album_first[album_of], album_len=lens[album_of], release=release, key=key,
        fallback=fallback, partner=partner, title=titles,
        mbid=_mbids(rng, n_tracks, cfg.empty_track_mbid),
    )


# ---------------------------------------------------------------------------------------------
# One user's plays


def user_counts(cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Plays per user, int64[U], heavy-tailed, at least 1 each, summing to exactly n_rows."""
    w = rng.lognormal(0.0, cfg.activity_sigma, size=cfg.n_users)
    spare = cfg.n_rows - cfg.n_users
    share = w / w.sum() * spare
    counts = np.floor(share).astype(np.int64)
    rest = spare - int(counts.sum())
    counts[np.argsort(-(share - counts), kind="stable")[:rest]] += 1
    return counts + 1


def _times(cfg: SynthConfig, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Play times int64[n], ascending, in sessions; and bool[n] marking session starts.

    Within a session plays are 2 to 7 minutes apart; the gaps between sessions are exponential,
    scaled so that the user's plays cover a random fraction U(user_span, 1) of the period.
    """
    period = PERIOD_END - PERIOD_START
    new_session = rng.random(n) < 1.0 / cfg.session_length
    new_session[0] = True
    inner = rng.integers(120, 420, size=n).astype(np.float64)
    inner[rng.random(n) < cfg.same_second] = 0.0
    inner[new_session] = 0.0
    between = np.where(new_session, rng.exponential(1.0, size=n), 0.0)
    between[0] = 0.0
    span = rng.uniform(cfg.user_span, 1.0) * period * 0.999
    room = span - inner.sum()
    if room > 0 and between.sum() > 0:
        gaps = inner + between * (room / between.sum())
    else:  # very active users: even back-to-back plays overfill the span, so squeeze them
        gaps = inner * (span / max(inner.sum(), 1.0))
    start = PERIOD_START + rng.random() * (period - span)
    return (start + np.cumsum(gaps)).astype(np.int64), new_session


def _draw(cat: Catalogue, rng: np.random.Generator, artists: np.ndarray,
          when: np.ndarray) -> np.ndarray:
    """A track of each given artist by within-artist popularity, released by `when`."""
    tracks = np.searchsorted(cat.key, artists + rng.random(artists.shape[0]))
    for _ in range(4):  # redraw tracks not yet released; what is left takes the fallback
        late = np.flatnonzero(cat.release[tracks] > when)
        if late.size == 0:
            break
        tracks[late] = np.searchsorted(cat.key, artists[late] + rng.random(late.size))
    late = cat.release[tracks] > when
    tracks[late] = cat.fallback[tracks[late]]
    return tracks


def user_plays(cfg: SynthConfig, cat: Catalogue, rng: np.random.Generator,
               n: int) -> tuple[np.ndarray, np.ndarray]:
    """One user's plays in time order: tracks int64[n] and times int64[n]."""
    times, new_session = _times(cfg, rng, n)
    favourites = rng.choice(cfg.n_artists, size=cfg.taste_artists, replace=False,
                            p=cat.artist_weight)
    from_taste = rng.random(n) < cfg.taste
    artists = np.where(from_taste, favourites[rng.integers(0, cfg.taste_artists, size=n)],
                       np.searchsorted(np.cumsum(cat.artist_weight), rng.random(n) * 0.999999))
    fresh = _draw(cat, rng, artists, times)

    idx = np.arange(n)
    u = rng.random(n)
    recall = (u < cfg.long_range) & (idx >= cfg.long_range_gap)
    album = (u >= cfg.long_range) & (u < cfg.long_range + cfg.album_order) & ~new_session
    replay = ((u >= cfg.long_range + cfg.album_order)
              & (u < cfg.long_range + cfg.album_order + cfg.replay) & ~new_session)
    back = rng.integers(1, cfg.replay_window + 1, size=n)
    replay &= idx >= back
    src_recall = idx[recall] - cfg.long_range_gap
    src_album = idx[album] - 1
    src_replay = idx[replay] - back[replay]
    # Every non-fresh play refers to an earlier one; whole-array passes settle one more link of
    # each chain per pass, and the first pass that changes nothing is the unique solution.
    tracks = fresh.copy()
    while True:
        new = fresh.copy()
        prev = tracks[src_album]
        first = cat.album_start[prev]
        new[album] = first + (prev - first + 1) % cat.album_len[prev]
        new[replay] = tracks[src_replay]
        new[recall] = cat.partner[tracks[src_recall]]
        if np.array_equal(new, tracks):
            return tracks, times
        tracks = new


# ---------------------------------------------------------------------------------------------
# Writing


def format_times(ts: np.ndarray) -> np.ndarray:
    """Unix seconds int64[N] -> `YYYY-MM-DDTHH:MM:SSZ` as bytes `S20[N]`, vectorised.

    Days to civil date by H. Hinnant's `civil_from_days` (proleptic Gregorian calendar).
    """
    ts = np.asarray(ts, dtype=np.int64)
    days, secs = np.divmod(ts, 86400)
    z = days + 719468
    era = np.floor_divide(z, 146097)
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    out = np.empty((ts.shape[0], 20), dtype=np.uint8)
    zero = ord("0")
    for col, value, width in ((0, year, 4), (5, month, 2), (8, day, 2), (11, secs // 3600, 2),
                              (14, secs // 60 % 60, 2), (17, secs % 60, 2)):
        for k in range(width):
            out[:, col + k] = zero + value // 10 ** (width - 1 - k) % 10
    for col, ch in ((4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"), (19, "Z")):
        out[:, col] = ord(ch)
    return out.view("S20").ravel()


def _fixed_width(values: np.ndarray) -> pa.Array:
    """A numpy `S<w>[N]` array as an Arrow string array, without a per-value conversion."""
    width = values.dtype.itemsize
    offsets = np.arange(0, width * (values.shape[0] + 1), width, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), values.shape[0],
                                 [None, pa.py_buffer(offsets), pa.py_buffer(values)])


def _lines(cat: Catalogue, user_names: pa.Array, users: np.ndarray, tracks: np.ndarray,
           times: np.ndarray, arrays: dict[str, pa.Array]) -> pa.Array:
    """The rows as one string array of tab-joined lines, each ending in a newline."""
    track_idx = pa.array(tracks)
    artist_idx = pa.array(cat.track_artist[tracks])
    cols = [
        user_names.take(pa.array(users)),
        _fixed_width(format_times(times)),
        arrays["artist_mbid"].take(artist_idx),
        arrays["artist_name"].take(artist_idx),
        arrays["track_mbid"].take(track_idx),
        arrays["title"].take(track_idx),
    ]
    line = pc.binary_join_element_wise(*cols, "\t")
    return pc.binary_join_element_wise(line, "", "\n")


def _damage(line: bytes, kind: str) -> bytes:
    """A good line (without its newline) made into a damaged one of the given kind."""
    fields = line.split(b"\t")
    if kind == "extra_tab":
        fields[5] = fields[5][:1] + b"\t" + fields[5][1:]
    elif kind == "missing_field":
        del fields[2]
    elif kind == "bad_bytes":
        fields[3] = fields[3] + b"\xff\xfe"
    else:
        fields[1] = fields[1][:10] + b" " + fields[1][11:19]  # no T, no Z: unparsable
    return b"\t".join(fields)


def _buffer_of(lines: pa.Array) -> memoryview:
    """The bytes of a string array's values, end to end."""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset:]
    lo, hi = int(offsets[0]), int(offsets[len(lines)])
    return memoryview(lines.buffers()[2])[lo:hi]


def write_synthetic(path: str | Path, cfg: SynthConfig = SynthConfig()) -> Path:
    """Write the generated log for `cfg` to `path` (atomically) and return the path."""
    rng = np.random.default_rng(cfg.seed)
    cat = make_catalogue(cfg, rng)
    counts = user_counts(cfg, rng)
    n_damaged = int(round(cfg.damaged * cfg.n_rows))
    # Damaged lines go after random good rows (in file order) and copy that row's fields.
    after = np.sort(rng.integers(0, cfg.n_rows, size=n_damaged))
    kinds = rng.integers(0, len(_DAMAGE_KINDS), size=n_damaged)
    user_names = pa.array([f"user_{u + 1:06d}" for u in range(cfg.n_users)])
    arrays = {
        "artist_mbid": pa.array(cat.artist_mbid), "artist_name": pa.array(cat.artist_name),
        "track_mbid": pa.array(cat.mbid), "title": pa.array(cat.title),
    }

    def write(f) -> None:
        pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        done = 0  # good rows written so far
        hit = 0  # damaged lines written so far

        def flush() -> None:
            nonlocal done, hit
            users = np.concatenate([p[0] for p in pending])
            tracks = np.concatenate([p[1] for p in pending])
            times = np.concatenate([p[2] for p in pending])
            pending.clear()
            lines = _lines(cat, user_names, users, tracks, times, arrays)
            offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset:]
            data = _buffer_of(lines)
            base = int(offsets[0])
            cut = 0
            while hit < n_damaged and after[hit] < done + len(users):
                row = int(after[hit]) - done
                end = int(offsets[row + 1]) - base
                f.write(data[cut:end])
                good = data[int(offsets[row]) - base: end - 1].tobytes()
                f.write(_damage(good, _DAMAGE_KINDS[kinds[hit]]) + b"\n")
                cut = end
                hit += 1
            f.write(data[cut:])
            done += len(users)

        rows = 0
        for u, n in enumerate(counts):
            tracks, times = user_plays(cfg, cat, rng, int(n))
            # The file lists each user's plays newest first, as LastFM-1K does.
            pending.append((np.full(n, u, dtype=np.int64), tracks[::-1], times[::-1]))
            rows += int(n)
            if rows >= FLUSH_ROWS:
                flush()
                rows = 0
        if pending:
            flush()

    return atomic_write(path, write)


def expected_lines(cfg: SynthConfig) -> int:
    """Lines of the generated log for `cfg`: its `n_rows` good rows and the damaged ones."""
    return cfg.n_rows + int(round(cfg.damaged * cfg.n_rows))


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(piece.count(b"\n") for piece in iter(lambda: f.read(8 << 20), b""))


def check_generated(path: Path, cfg: SynthConfig) -> str | None:
    """Why the generated log at `path` is not the one `cfg` writes, or None when it is.

    Checked against the generator's line count (`expected_lines`) and against its stamp
    (`path` with `.json`, written beside it by `generate`): the settings' hash, the size and
    the BLAKE2b digest of the file as written (`file_digest`, the events cache's). A file
    cut, edited, swapped for another setting's or left without its stamp (a kill between the
    two writes) fails; the answer names what differs.
    """
    stamp_path = path.with_suffix(".json")
    lines = _count_lines(path)
    if lines != expected_lines(cfg):
        return f"has {lines:,} lines, expected {expected_lines(cfg):,} (the generator's count)"
    try:
        stamp = read_json(stamp_path)
    except FileNotFoundError:
        return f"has no stamp {stamp_path.name} recording its checksum"
    except (OSError, ValueError) as e:
        return f"has an unreadable stamp {stamp_path.name} ({type(e).__name__})"
    digest = file_digest(path)
    if not isinstance(stamp, dict) or stamp.get("synth") != config_hash(cfg):
        return f"has a stamp {stamp_path.name} written for other settings"
    if stamp.get("file") != digest:
        return f"does not match the checksum in {stamp_path.name}"
    return None


def generate(cfg: SynthConfig = SynthConfig(), folder: str | Path = "data") -> Path:
    """The generated file for `cfg` in `folder` (named by the config's hash), written if absent.

    A file already there is used only when `check_generated` passes; otherwise it is written
    again (the same settings give the same bytes), with one warning naming the file and what
    was wrong. The stamp is written after the file, so a kill between the two leaves a file
    without a stamp, which is written again.
    """
    path = Path(folder) / f"synthetic-{config_hash(cfg)}.tsv"
    if path.exists():
        problem = check_generated(path, cfg)
        if problem is None:
            return path
        warnings.warn(f"generated log {path} {problem}; writing it again", stacklevel=2)
    os.makedirs(folder, exist_ok=True)
    write_synthetic(path, cfg)
    atomic_write_json(path.with_suffix(".json"),
                      {"synth": config_hash(cfg), "lines": expected_lines(cfg),
                       "file": file_digest(path)})
    return path

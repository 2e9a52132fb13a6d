"""The LastFM-1K archive as downloaded (`lastfm-dataset-1K.tar.gz`), read without unpacking."""

import io
import tarfile

import numpy as np
import pytest

from seqrec.data import lastfm
from seqrec.data.lastfm import parse_file, read_events, sniff_layout
from seqrec.data.synthetic import SynthConfig, write_synthetic

ARRAYS = ("users", "items", "artists", "timestamps", "user_names", "item_names", "artist_names")
SMALL = SynthConfig(n_rows=6000, n_users=12, n_artists=60, n_tracks=500, damaged=0.004)
FOLDER = "lastfm-dataset-1K"
LOG = f"{FOLDER}/userid-timestamp-artid-artname-traid-traname.tsv"


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1241136000
    tar.addfile(info, io.BytesIO(data))


def pack(tsv, archive, mode: str = "w:gz", log_first: bool = False):
    """`tsv` packed as the LastFM-1K archive is: a folder, README, profiles, then the log."""
    with tarfile.open(archive, mode) as tar:
        folder = tarfile.TarInfo(FOLDER)
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        if log_first:
            tar.add(tsv, arcname=LOG)
        _add_bytes(tar, f"{FOLDER}/README.txt", b"Last.fm Dataset - 1K users\n")
        _add_bytes(tar, f"{FOLDER}/userid-profile.tsv",
                   b"#id\tgender\tage\tcountry\tregistered\nuser_000001\tm\t\tJapan\t\n")
        if not log_first:
            tar.add(tsv, arcname=LOG)
    return archive


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("archive") / "log.tsv", SMALL)


def _same_events(a, b) -> None:
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert (a.report.rows_read, a.report.lines_skipped, a.report.examples) == (
        b.report.rows_read, b.report.lines_skipped, b.report.examples)


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz", "w"])
def test_the_archive_reads_as_the_unpacked_file(plain, tmp_path, mode):
    archive = pack(plain, tmp_path / "lastfm-dataset-1K.tar.gz", mode)
    want = read_events(plain, item_key="mbid")
    got = read_events(archive, item_key="mbid")
    _same_events(got, want)
    assert want.report.lines_skipped == 24  # the generator's damaged lines, all found
    assert got.report.member == LOG and got.report.path == str(archive.resolve())
    assert got.report.size_bytes == archive.stat().st_size
    assert lastfm.check_data_path(archive) == archive


def test_many_blocks_of_the_stream_give_the_same_events(plain, tmp_path):
    archive = pack(plain, tmp_path / "a.tar.gz", log_first=True)
    layout = sniff_layout(archive)
    assert layout == sniff_layout(plain)
    want = parse_file(plain, layout, "artist_title", "k", block_bytes=1 << 30, workers=1)
    for block, workers in ((4096, 2), (700, 3), (1 << 30, 1)):
        got = parse_file(archive, layout, "artist_title", "k", block_bytes=block,
                         workers=workers)
        _same_events(got, want)
    assert [n for n, _ in want.report.examples][:3] == [
        n for n, _ in got.report.examples][:3]


def test_the_archive_is_streamed_not_unpacked(plain, tmp_path, monkeypatch):
    archive = pack(plain, tmp_path / "lastfm-dataset-1K.tar.gz")

    def refuse(*args, **kwargs):
        raise AssertionError("the archive must not be unpacked to disk")

    monkeypatch.setattr(tarfile.TarFile, "extract", refuse)
    monkeypatch.setattr(tarfile.TarFile, "extractall", refuse)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    cache = tmp_path / "cache"
    ev = read_events(archive, cache_dir=cache)
    after = sorted(p.name for p in tmp_path.rglob("*") if cache not in p.parents and p != cache)
    assert after == before
    assert len(ev) == SMALL.n_rows


def test_the_archive_has_its_own_cache_entry(plain, tmp_path, monkeypatch):
    archive = pack(plain, tmp_path / "lastfm-dataset-1K.tar.gz")
    cache = tmp_path / "cache"
    first = read_events(archive, cache_dir=cache)
    plain_ev = read_events(plain, cache_dir=cache)
    assert first.key != plain_ev.key

    def no_parsing(*args, **kwargs):
        raise AssertionError("a cache hit must not parse the file")

    monkeypatch.setattr(lastfm, "parse_file", no_parsing)
    again = read_events(archive, cache_dir=cache)
    _same_events(again, first)
    assert again.report == first.report


def test_damaged_lines_inside_the_archive_keep_their_numbers(tmp_path):
    rows = ["\t".join(["user_000001", f"2009-05-04T23:0{i}:00Z", "", "A", "", f"T{i}"])
            for i in range(5)]
    rows[2] = rows[2].replace("T", " ", 1)  # line 3: unparsable time
    tsv = tmp_path / "log.tsv"
    tsv.write_text("\n".join(rows[:4] + ["only\tthree\tfields"] + rows[4:]) + "\n")
    archive = pack(tsv, tmp_path / "x.tar.gz")
    ev = read_events(archive)
    assert [n for n, _ in ev.report.examples] == [3, 5]
    assert ev.report.rows_read == 4


def test_every_kind_of_damage_and_long_lines_read_alike_from_the_archive(tmp_path):
    # Empty lines, every damage of test_lastfm, and lines around the 2 MiB limit (which make
    # pyarrow parse a block again in one piece), cut into many small blocks.
    from test_lastfm import DAMAGED

    limit = lastfm.MAX_LINE_BYTES
    lines = list(DAMAGED)
    for i, extra in enumerate([-5, 0, 3, 1_000_000]):
        row = DAMAGED[0].replace(b"Intro", b"")
        lines += [row + b"z" * (limit - len(row) + extra)] + DAMAGED[i: i + 3]
    tsv = tmp_path / "log.tsv"
    tsv.write_bytes(b"\n".join(lines) + b"\n")
    archive = pack(tsv, tmp_path / "a.tar.gz")
    layout = sniff_layout(tsv)
    want = parse_file(tsv, layout, "title", "k", block_bytes=1 << 30, workers=1)
    # Lines 11, 15, 19, 23 are the long ones (+3 and +1000000 bytes over: damaged); the
    # others are damaged as in test_lastfm: 6 + 1 + 2 + 3 + 3 of the copies, and the two long.
    assert want.report.lines_skipped == 17
    assert [n for n, _ in want.report.examples] == [3, 4, 5, 6, 8, 9, 14, 17, 18, 19]
    assert "longer than" in want.report.examples[-1][1]
    assert sum(name.startswith("z") for name in want.item_names) == 2  # -5 and 0: kept
    for block in (1 << 30, 300, 1 << 20):
        _same_events(parse_file(archive, layout, "title", "k", block_bytes=block, workers=2),
                     want)


def test_a_header_is_skipped_in_the_stream(tmp_path):
    # A mapped log with a header, stored under the log's member name.
    csv = tmp_path / "ratings.csv"
    csv.write_text("userId,movieId,rating,timestamp\n1,10,4.0,100\n2,11,3.0,50\nbad\n")
    archive = pack(csv, tmp_path / "r.tar.gz")
    columns = "user=userId,item=movieId,time=timestamp"
    for path in (csv, archive):
        ev = read_events(path, columns=columns)
        assert ev.item_names[ev.items].tolist() == ["11", "10"]
        assert ev.timestamps.tolist() == [50, 100]
        assert ev.report.examples == [(4, "1 fields, expected 4")]


def test_a_cut_archive_stops_with_one_sentence(plain, tmp_path):
    archive = pack(plain, tmp_path / "lastfm-dataset-1K.tar.gz")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    assert lastfm.check_data_path(cut) == cut  # its start is whole: the log member is found
    with pytest.raises(lastfm.DataFileError) as err:
        read_events(cut)
    message = str(err.value)
    assert str(cut) in message and "incomplete" in message and "\n" not in message

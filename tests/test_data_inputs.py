"""Bad inputs stop with one sentence naming the file; overlong lines are damaged lines; the
data's fingerprint and what the read report says of its source."""

import bz2
import gzip
import lzma
import os
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seqrec.data import lastfm
from seqrec.data.lastfm import DataFileError, parse_file, read_events, sniff_layout

U1, U2 = "user_000001", "user_000002"


def _row(user: str, time: str, artist: str, title: str) -> bytes:
    return "\t".join([user, time, "", artist, "", title]).encode()


GOOD = [_row(U1, f"2009-05-04T23:0{i}:00Z", "A", f"T{i}") for i in range(6)]


def _tsv(tmp_path, lines, name="log.tsv"):
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


# ---------------------------------------------------------------------------------------------
# Compressed and binary files


def _compressed(tmp_path):
    """Files of each kind the reader refuses, with a word its message must hold."""
    text = b"\n".join(GOOD) + b"\n"
    out = {}
    out["gz"] = (tmp_path / "log.tsv.gz", gzip.compress(text), "gzip")
    out["bz2"] = (tmp_path / "log.tsv.bz2", bz2.compress(text), "bzip2")
    out["xz"] = (tmp_path / "log.tsv.xz", lzma.compress(text), "xz")
    # zstd is not in this Python's standard library: its frame magic and a few bytes.
    out["zst"] = (tmp_path / "log.tsv.zst", b"\x28\xb5\x2f\xfd" + bytes(range(60)), "zstd")
    out["7z"] = (tmp_path / "log.7z", b"7z\xbc\xaf\x27\x1c" + bytes(range(60)), "7z")
    for path, data, _ in out.values():
        path.write_bytes(data)
    with zipfile.ZipFile(tmp_path / "ml-100k.zip", "w") as z:
        z.writestr("ml-100k/u.data", "196\t242\t3\t881250949\n")
    out["zip"] = (tmp_path / "ml-100k.zip", None, "zip")
    pq.write_table(pa.table({"user": [1, 2]}), tmp_path / "events.parquet")
    out["parquet"] = (tmp_path / "events.parquet", None, "Parquet")
    binary = tmp_path / "model.pt"
    binary.write_bytes(b"\x80\x02}q\x00(X\x05\x00\x00\x00" + bytes(range(256)) * 4)
    out["binary"] = (binary, None, "binary")
    utf16 = tmp_path / "log16.tsv"
    utf16.write_bytes("\n".join(x.decode() for x in GOOD).encode("utf-16"))
    out["utf16"] = (utf16, None, "UTF-16")
    return out


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zst", "7z", "zip", "parquet", "binary",
                                  "utf16"])
def test_compressed_and_binary_files_stop_with_one_sentence(tmp_path, kind):
    path, _, word = _compressed(tmp_path)[kind]
    with pytest.raises(DataFileError) as err:
        read_events(path)
    message = str(err.value)
    assert str(path) in message and word in message and "\n" not in message
    with pytest.raises(DataFileError) as again:
        lastfm.check_data_path(path)
    assert str(again.value) == message


def test_a_compressed_log_says_how_to_decompress_it(tmp_path):
    path, _, _ = _compressed(tmp_path)["gz"]
    with pytest.raises(DataFileError, match=r"gunzip"):
        lastfm.check_data_path(path)


def test_a_tar_gz_without_the_log_lists_its_members(tmp_path):
    import tarfile

    other = tmp_path / "notes.txt"
    other.write_text("hello\n")
    archive = tmp_path / "stuff.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(other, arcname="stuff/notes.txt")
        tar.add(other, arcname="stuff/more.tsv")
    with pytest.raises(DataFileError) as err:
        read_events(archive)
    message = str(err.value)
    assert str(archive) in message and "stuff/notes.txt" in message
    assert "stuff/more.tsv" in message and lastfm.LASTFM_MEMBER in message


# ---------------------------------------------------------------------------------------------
# Folders, missing and empty files


def test_check_data_path_names_folders_missing_and_empty_files(tmp_path):
    assert lastfm.check_data_path(_tsv(tmp_path, GOOD)) == tmp_path / "log.tsv"
    with pytest.raises(FileNotFoundError, match=r"nope\.tsv does not exist"):
        lastfm.check_data_path(tmp_path / "nope.tsv")
    folder = tmp_path / "lastfm-dataset-1K"
    folder.mkdir()
    with pytest.raises(DataFileError, match=r"lastfm-dataset-1K is a folder") as err:
        lastfm.check_data_path(folder)
    assert "does not exist" not in str(err.value)
    empty = tmp_path / "empty.tsv"
    empty.write_bytes(b"")
    with pytest.raises(DataFileError, match=r"empty\.tsv is empty"):
        lastfm.check_data_path(empty)


def test_a_folder_holding_the_log_names_the_file_to_pass(tmp_path):
    folder = tmp_path / "lastfm-dataset-1K"
    folder.mkdir()
    _tsv(folder, GOOD, name=lastfm.LASTFM_MEMBER)
    with pytest.raises(DataFileError) as err:
        read_events(folder)
    assert str(folder / lastfm.LASTFM_MEMBER) in str(err.value)


def test_check_data_path_does_not_parse(tmp_path, monkeypatch):
    def no_parsing(*args, **kwargs):
        raise AssertionError("check_data_path must not parse")

    monkeypatch.setattr(lastfm, "parse_file", no_parsing)
    monkeypatch.setattr(lastfm, "sniff_layout", no_parsing)
    path = _tsv(tmp_path, GOOD)
    assert lastfm.check_data_path(str(path)) == path


# ---------------------------------------------------------------------------------------------
# Overlong lines


def test_a_10_mb_line_is_a_damaged_line_with_its_number(tmp_path):
    # Line 3 holds six fields, one of them 10 MB (would make a 10 MB item name); line 5 is
    # 10 MB of one field. Both are skipped and counted, the others read.
    huge = b"x" * (10 << 20)
    lines = GOOD[:2] + [_row(U1, "2009-05-04T22:00:00Z", "A", "T") + huge] + GOOD[2:3] \
        + [huge] + GOOD[3:]
    path = _tsv(tmp_path, lines)
    ev = read_events(path, item_key="title")
    assert ev.report.rows_read == len(GOOD) and len(ev) == len(GOOD)
    assert ev.report.lines_skipped == 2
    assert [n for n, _ in ev.report.examples] == [3, 5]
    reasons = dict(ev.report.examples)
    assert "longer than" in reasons[3]
    assert "1 fields, expected 6" in reasons[5]
    assert sorted(ev.item_names[ev.items].tolist()) == [f"T{i}" for i in range(6)]


def test_long_lines_do_not_depend_on_where_blocks_are_cut(tmp_path):
    # Lines around the 2 MiB limit, at many offsets from a block's start: the same rows and
    # damaged lines whatever the block size.
    limit = lastfm.MAX_LINE_BYTES
    lines = []
    for i, extra in enumerate([-10, -1, 0, 1, 7, -300_000, 400_000]):
        row = _row(U2, f"2009-05-04T21:{i:02d}:00Z", "B", "")
        lines.append(row + b"y" * (limit - len(row) + extra))
        lines += GOOD[i % 3: i % 3 + 1 + i % 2]
    path = _tsv(tmp_path, lines)
    layout = sniff_layout(path)
    results = [parse_file(path, layout, "title", "k", block_bytes=b, workers=2)
               for b in (1 << 30, 1 << 20, 3 << 20, 77_777)]
    for ev in results[1:]:
        assert ev.report == results[0].report
        assert np.array_equal(ev.items, results[0].items)
    kept = {len(n.encode()) for n in results[0].item_names}
    assert max(kept) + len(_row(U2, "2009-05-04T21:00:00Z", "B", "")) <= limit
    assert [n for n, _ in results[0].report.examples] == [8, 11, 16]  # +1, +7, +400000


def test_a_long_first_line_does_not_break_format_detection(tmp_path):
    path = _tsv(tmp_path, [b"z" * (3 << 20)] + GOOD)
    ev = read_events(path)
    assert ev.report.rows_read == len(GOOD)
    assert [n for n, _ in ev.report.examples] == [1]


# ---------------------------------------------------------------------------------------------
# Fingerprint and source


def test_file_fingerprint_is_the_files_identity(tmp_path):
    path = _tsv(tmp_path, GOOD)
    first = lastfm.file_fingerprint(path)
    assert first == lastfm.file_fingerprint(str(path)) == lastfm.file_fingerprint(
        tmp_path / "." / "log.tsv")
    copy = _tsv(tmp_path, GOOD, name="copy.tsv")
    os.utime(copy, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns))
    assert lastfm.file_fingerprint(copy) != first  # another path
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    touched = lastfm.file_fingerprint(path)
    assert touched != first  # another mtime
    path.write_bytes(path.read_bytes() + GOOD[0] + b"\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert lastfm.file_fingerprint(path) not in (first, touched)  # another size
    # The reader's version is part of it: a reader that reads differently is other data.
    assert lastfm.file_fingerprint(path) != lastfm.file_fingerprint(path, reader_version=-1)
    with pytest.raises(FileNotFoundError):
        lastfm.file_fingerprint(tmp_path / "nope.tsv")


def test_the_report_names_its_source(tmp_path):
    path = _tsv(tmp_path, GOOD + [b"broken"])
    for cache in (None, tmp_path / "cache", tmp_path / "cache"):  # parsed, written, cached
        rep = read_events(path, cache_dir=cache).report
        assert rep.path == str(path.resolve()) and rep.member == ""
        assert rep.size_bytes == path.stat().st_size
        assert rep.rows_read == len(GOOD) and rep.lines_skipped == 1
        assert rep.fingerprint == lastfm.file_fingerprint(path)
        assert rep.source() == {"path": str(path.resolve()), "member": "",
                                "size_bytes": path.stat().st_size,
                                "fingerprint": lastfm.file_fingerprint(path),
                                "rows_read": len(GOOD), "lines_skipped": 1}


def test_a_lone_carriage_return_in_a_comma_log_is_no_traceback(tmp_path):
    # csv would stop on it ("new-line character seen in unquoted field"); pyarrow ends a line
    # there, so the line counts as two damaged ones.
    path = tmp_path / "log.csv"
    path.write_bytes(b"u1,i1,10\nu2,i\r2,20\nu3,i3,30\n")
    ev = read_events(path)
    assert ev.user_names[ev.users].tolist() == ["u1", "u3"]
    assert ev.report.lines_skipped == 2

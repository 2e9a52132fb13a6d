"""Other logs by a column mapping and a separator: MovieLens `u.data` and `ratings.csv`."""

import numpy as np
import pytest

from seqrec.config import DataConfig, RunConfig, apply_overrides
from seqrec.data import lastfm
from seqrec.data.lastfm import DataFileError, read_events, read_options, sniff_layout


def _movielens(seed: int = 0, n: int = 400):
    """Random (user, item, rating, time) rows with many tied times, in file order."""
    rng = np.random.default_rng(seed)
    users = rng.integers(1, 30, size=n)
    items = rng.integers(1, 200, size=n)
    ratings = rng.integers(1, 6, size=n)
    times = rng.integers(881_250_000, 881_250_050, size=n)  # ties: file order must decide
    return users, items, ratings, times


def _expected(users, items, times, skip=()):
    """What the reader must give: rows in stable time order, ids in sorted order of the text."""
    keep = [i for i in range(len(users)) if i not in skip]
    order = sorted(keep, key=lambda i: times[i])  # Python's sort is stable
    return ([str(users[i]) for i in order], [str(items[i]) for i in order],
            [int(times[i]) for i in order])


def _decoded(ev):
    return (ev.user_names[ev.users].tolist(), ev.item_names[ev.items].tolist(),
            ev.timestamps.tolist())


@pytest.fixture()
def u_data(tmp_path):
    users, items, ratings, times = _movielens()
    lines = [f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in zip(users, items, ratings, times,
                                                         strict=True)]
    path = tmp_path / "u.data"
    path.write_text("\n".join(lines) + "\n")
    return path, (users, items, times)


@pytest.fixture()
def ratings_csv(tmp_path):
    users, items, ratings, times = _movielens(seed=1)
    lines = ["userId,movieId,rating,timestamp"] + [
        f"{u},{i},{r}.5,{t}" for u, i, r, t in zip(users, items, ratings, times, strict=True)]
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, (users, items, times)


@pytest.mark.parametrize("sep", ["", "tab", "\\t", "\t"])
def test_u_data_by_position(u_data, sep):
    path, (users, items, times) = u_data
    ev = read_events(path, columns="user=0,item=1,time=3", sep=sep)
    assert _decoded(ev) == _expected(users, items, times)
    assert ev.report.lines_skipped == 0 and (ev.artists == -1).all()
    assert sniff_layout(path, columns="user=0,item=1,time=3", sep=sep) == lastfm.Layout(
        "log", "\t", header=False, quoting=False, n_fields=4, picks=(0, 1, 3))


def test_u_data_without_a_mapping_says_how_to_give_one(u_data):
    path, _ = u_data
    with pytest.raises(DataFileError, match=r"u\.data.*4 tab-separated fields.*columns="):
        read_events(path)


@pytest.mark.parametrize("columns", ["user=userId,item=movieId,time=timestamp",
                                     "time=timestamp,user=userId,item=movieId",
                                     "user=0,item=1,time=3", "user=userId,item=1,time=3"])
@pytest.mark.parametrize("sep", ["", "comma", ","])
def test_ratings_csv_by_name_or_position(ratings_csv, columns, sep):
    path, (users, items, times) = ratings_csv
    ev = read_events(path, columns=columns, sep=sep)
    assert _decoded(ev) == _expected(users, items, times)
    assert ev.report.lines_skipped == 0
    assert sniff_layout(path, columns=columns, sep=sep).header


def test_item_and_user_can_be_any_columns(ratings_csv):
    # The rating as the "item": a mapping picks exactly the columns it names.
    path, (users, _, times) = ratings_csv
    ev = read_events(path, columns="user=movieId,item=rating,time=timestamp")
    assert set(ev.item_names.tolist()) <= {f"{r}.5" for r in range(1, 6)}
    assert len(ev) == len(users)


def test_damaged_lines_of_a_mapped_log_keep_their_numbers(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,10,4.0,100\n1,11,4.0\n"
                    "2,12,3.0,yesterday\n,13,1.0,90\n2,\xe9,5.0,80\n3,14,2.0,70,extra\n",
                    encoding="utf-8")
    ev = read_events(path, columns="user=userId,item=movieId,time=timestamp")
    assert _decoded(ev) == (["2", "1"], ["\xe9", "10"], [80, 100])
    reasons = dict(ev.report.examples)
    assert list(reasons) == [3, 4, 5, 7]
    assert "3 fields, expected 4" in reasons[3] and "5 fields, expected 4" in reasons[7]
    assert "time" in reasons[4] and reasons[5] == "empty user id"


def test_a_header_name_that_is_not_there_lists_the_header(ratings_csv):
    path, _ = ratings_csv
    with pytest.raises(DataFileError, match=r"ratings\.csv.*'itemId'.*userId, movieId"):
        read_events(path, columns="user=userId,item=itemId,time=timestamp")


def test_a_position_past_the_last_field_is_an_error(u_data):
    path, _ = u_data
    with pytest.raises(DataFileError, match=r"u\.data.*position 7.*4 fields"):
        read_events(path, columns="user=0,item=7,time=3")
    with pytest.raises(DataFileError,
                       match=r"u\.data.*position 1 \(item\).*1 fields separated by ','"):
        read_events(path, columns="user=0,item=1,time=3", sep="comma")


def test_a_mapping_cannot_be_read_as_lastfm(u_data):
    path, _ = u_data
    with pytest.raises(ValueError, match="fmt"):
        read_events(path, columns="user=0,item=1,time=3", fmt="lastfm")


def test_the_cache_key_covers_every_reading_option(u_data, tmp_path):
    path, _ = u_data
    cache = tmp_path / "cache"
    by_item = read_events(path, columns="user=0,item=1,time=3", cache_dir=cache)
    by_rating = read_events(path, columns="user=0,item=2,time=3", cache_dir=cache)
    swapped = read_events(path, columns="user=1,item=0,time=3", cache_dir=cache)
    assert len({by_item.key, by_rating.key, swapped.key}) == 3
    assert by_rating.n_items <= 5 < by_item.n_items
    # The same reading spelled two ways is the same data, so the same entry.
    spelled = read_events(path, columns="time=3,item=1,user=0", sep="tab", cache_dir=cache)
    assert spelled.key == by_item.key


def test_a_separator_without_a_mapping_reads_a_three_field_log(tmp_path):
    path = tmp_path / "log.txt"
    path.write_text("u1;a,b;10\nu2;c;20\n")
    ev = read_events(path, sep="semicolon")
    assert ev.item_names[ev.items].tolist() == ["a,b", "c"]
    assert ev.timestamps.tolist() == [10, 20]
    with pytest.raises(DataFileError, match=r"log\.txt.*1 fields separated by '\|'"):
        read_events(path, sep="pipe")


@pytest.mark.parametrize("bad, message", [
    ("user=0,item=1", "time"), ("user=0,item=1,time=3,artist=2", "artist"),
    ("user=0,item=0,time=3", "twice"), ("user=0,user=1,item=2,time=3", "twice"),
    ("user=-1,item=1,time=3", "negative"), ("user=0;item=1;time=3", "commas"),
    ("0,1,3", "ROLE=COLUMN"), ("user=,item=1,time=3", "empty"),
])
def test_bad_column_specs_are_refused_by_the_config(bad, message):
    with pytest.raises(ValueError, match=message) as err:
        DataConfig(columns=bad)
    assert "columns" in str(err.value)


@pytest.mark.parametrize("bad", ["::", '"', "\n", "tabs", "=="])
def test_bad_separators_are_refused_by_the_config(bad):
    with pytest.raises(ValueError, match="sep"):
        DataConfig(sep=bad)


def test_settings_through_set_and_read_options(u_data, ratings_csv):
    # `--set KEY=VALUE` splits at the first "=", so a mapping full of "=" survives.
    cfg = apply_overrides(RunConfig(), ["columns=user=0,item=1,time=3", "sep=tab",
                                        "item_key=title"])
    assert cfg.data.columns == "user=0,item=1,time=3" and cfg.data.sep == "tab"
    options = read_options(cfg.data)
    assert options == {"item_key": "title", "columns": "user=0,item=1,time=3", "sep": "tab"}
    path, (users, items, times) = u_data
    assert _decoded(read_events(path, **options)) == _expected(users, items, times)
    assert read_options(DataConfig()) == {"item_key": "artist_title", "columns": "", "sep": ""}
    csv_cfg = apply_overrides(RunConfig(), ["columns=user=userId,item=movieId,time=timestamp"])
    path, (users, items, times) = ratings_csv
    assert _decoded(read_events(path, **read_options(csv_cfg.data))) == _expected(
        users, items, times)

"""The thesis preprocessing protocol (seqrec.data.protocol): a hand-worked log, a plain per-user
reference on generated logs, the experiments' settings, the cache and the errors."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter

import numpy as np
import pytest
import torch

from seqrec.config import DataConfig
from seqrec.data import protocol
from seqrec.data.protocol import (
    chunk_rows,
    load_or_prepare_split,
    prepare_split,
    split_cache_key,
)
from seqrec.data.windows import PARTS, Split
from seqrec.experiments import grid

# ---------------------------------------------------------------------------------------------
# A log small enough to work out by hand.
#
# user 1: 10 20 10 77 30 20 10  5 20 40 20 30   (77 is played once: dropped at threshold 1)
# user 3: 20 10 20 30 10 40  5 30
# user 0: 66                                    (played once: the user disappears)
# user 5: 40                                    (n = 1: a test event, dropped as unseen)
# Kept items 5 10 20 30 40 -> 0 1 2 3 4. After the filter user 1 has n = 11 events (not 12):
# train int(0.5 * 11) = 5, val int(6 / 2) = 3, test 3; user 3 (n = 8): train 4, val 2, test 2.
#   user 1: train 10 20 10 30 20 | val 10 5 20 | test 40 20 30
#   user 3: train 20 10 20 30    | val 10 40   | test 5 30
# Items 5 and 40 never occur in train: dropped from val (user 1's 5, user 3's 40) and test (user
# 1's 40, user 3's 5, user 5's 40). User 1's val window [10, 20] spans the gap of the dropped 5.
# n_users counts the users left in the split (largest id 3), not user 5 who lost every event.

HAND_ROWS = [(1, 10), (3, 20), (1, 20), (1, 10), (3, 10), (0, 66), (1, 77), (3, 20), (1, 30),
             (1, 20), (3, 30), (1, 10), (3, 10), (1, 5), (1, 20), (3, 40), (1, 40), (3, 5),
             (1, 20), (3, 30), (1, 30), (5, 40)]
HAND_CFG = DataConfig(chunks=1, threshold=1, train_frac=0.5, seq_len=2)


def hand_log() -> tuple[np.ndarray, np.ndarray]:
    rows = np.array(HAND_ROWS, dtype=np.int32)
    return rows[:, 0].copy(), rows[:, 1].copy()


def test_hand_worked_log():
    s = prepare_split(*hand_log(), HAND_CFG, 0)
    np.testing.assert_array_equal(s.train.items, [1, 2, 1, 3, 2, 2, 1, 2, 3])
    np.testing.assert_array_equal(s.train.users, [1, 1, 1, 1, 1, 3, 3, 3, 3])
    np.testing.assert_array_equal(s.train.starts, [0, 1, 2, 3, 5, 6, 7])
    np.testing.assert_array_equal(s.val.items, [1, 2, 1])
    np.testing.assert_array_equal(s.val.users, [1, 1, 3])
    np.testing.assert_array_equal(s.val.starts, [0])
    np.testing.assert_array_equal(s.test.items, [2, 3, 3])
    np.testing.assert_array_equal(s.test.users, [1, 1, 3])
    np.testing.assert_array_equal(s.test.starts, [0])
    assert s.dropped_unseen == {"val": 2, "test": 3}
    assert s.n_items == 4  # item 4 (old 40) occurs only in dropped events
    assert s.n_users == 4  # users keep their global ids
    np.testing.assert_array_equal(s.item_counts, [0, 3, 4, 2])
    assert s.item_counts.dtype == np.int64
    for p in PARTS:
        w = s.part(p)
        assert (w.items.dtype, w.users.dtype, w.starts.dtype) == (np.int32, np.int32, np.int64)
    assert s.meta["rows_in_chunk"] == 22 and s.meta["rows_after_filter"] == 20
    assert s.meta["cut_events"] == 0 and s.meta["chunk"] == 0


def test_hand_worked_log_with_longer_windows_and_a_train_cut():
    users, items = hand_log()
    # seq_len 3: user 1's val keeps only 2 events, so val has no window at all.
    with pytest.raises(ValueError, match=r"val part has no window of seq_len=3.*smaller"):
        prepare_split(users, items, dataclasses.replace(HAND_CFG, seq_len=3), 0)
    # train_start_frac 0.3: user 1 loses int(3.3) = 3 early events, user 3 int(2.4) = 2.
    # train: user 1 [30 20] = [3 2], user 3 [20 30] = [2 3]; item 10 is then unseen, so
    # user 1's val [10 5 20] keeps [20] and user 3's val [10 40] keeps nothing.
    cfg = dataclasses.replace(HAND_CFG, train_start_frac=0.3)
    with pytest.raises(ValueError, match="val part has no window"):
        prepare_split(users, items, cfg, 0)
    # fixed_eval checks unseen items against the uncut train: val and test as without the cut.
    s = prepare_split(users, items, dataclasses.replace(cfg, fixed_eval=True), 0)
    np.testing.assert_array_equal(s.train.items, [3, 2, 2, 3])
    np.testing.assert_array_equal(s.train.starts, [0, 2])
    np.testing.assert_array_equal(s.val.items, [1, 2, 1])
    np.testing.assert_array_equal(s.test.items, [2, 3, 3])
    assert s.dropped_unseen == {"val": 2, "test": 3}
    assert s.meta["cut_events"] == 5
    assert s.n_items == 4  # the uncut train's largest item (old 30) + 1
    np.testing.assert_array_equal(s.item_counts, [0, 0, 2, 2])


def test_n_counts_events_after_the_filter():
    # Without the dropped 77 user 1 has n = 11, so train is 5 events; counting the raw 12 events
    # would give 6. Threshold 0 keeps 77 and gives the 6-event train.
    users, items = hand_log()
    kept = prepare_split(users, items, HAND_CFG, 0)
    assert np.count_nonzero(kept.train.users == 1) == 5
    everything = prepare_split(users, items, dataclasses.replace(HAND_CFG, threshold=0), 0)
    assert np.count_nonzero(everything.train.users == 1) == 6


def test_chunk_rows_by_hand():
    assert chunk_rows(10, DataConfig(chunks=3)) == [(0, 4), (4, 7), (7, 10)]
    assert chunk_rows(20, DataConfig(start_frac=0.3, end_frac=0.5, chunks=1)) == [(6, 10)]
    # 0.7 * 10 is 7.000000000000001 and 0.29 * 100 is 28.999999999999996: both floor exactly.
    assert chunk_rows(10, DataConfig(start_frac=0.7, chunks=3)) == [(7, 8), (8, 9), (9, 10)]
    assert chunk_rows(100, DataConfig(start_frac=0.29, chunks=1)) == [(29, 100)]
    assert chunk_rows(2, DataConfig(chunks=3)) == [(0, 1), (1, 2), (2, 2)]


def test_chunk_rows_matches_array_split():
    for n, chunks, a, b in itertools.product([0, 1, 7, 100, 12345], [1, 3, 10], [0.0, 0.3, 0.7],
                                             [0.8, 1.0]):
        cfg = DataConfig(chunks=chunks, start_frac=a, end_frac=b)
        rows = np.arange(n)[int(math.floor(a * n + 1e-6)):int(math.floor(b * n + 1e-6))]
        expected = [(int(c[0]), int(c[-1]) + 1) for c in np.array_split(rows, chunks) if c.size]
        got = [(lo, hi) for lo, hi in chunk_rows(n, cfg) if hi > lo]
        assert got == expected


def test_filter_parts_count_plays_separately():
    # Halves [1 1 2 4] and [2 2 1 4] at threshold 1: item 1 survives in the first half only,
    # item 2 in the second half only, item 4 in neither (one play in each half, though two in
    # the whole chunk); ids 0 and 3 never occur.
    items = np.array([1, 1, 2, 4, 2, 2, 1, 4], dtype=np.int32)
    keep, kept = protocol._frequent_items(items, 1, 2)
    np.testing.assert_array_equal(keep, [True, True, False, False, True, True, False, False])
    np.testing.assert_array_equal(kept, [False, True, True, False, False])
    np.testing.assert_array_equal(protocol._dense_table(kept)[items[keep]], [0, 0, 1, 1])
    keep, kept = protocol._frequent_items(items, 1, 1)
    np.testing.assert_array_equal(keep, [True] * 8)
    np.testing.assert_array_equal(protocol._dense_table(kept)[items], [0, 0, 1, 2, 1, 1, 0, 2])
    keep, kept = protocol._frequent_items(items, 0, 2)  # threshold 0 keeps every played item
    assert keep.all() and kept.tolist() == [False, True, True, False, True]


def test_user_order_is_stable_for_wide_ids():
    # Ids above 2**16 take the two-digit radix path; it must equal a plain stable sort.
    rng = np.random.default_rng(3)
    for high in (50, 70_000, 2**31 - 1):
        users = rng.integers(0, high, 5000).astype(np.int32)
        users[::7] = users[0]  # many ties, to see stability
        np.testing.assert_array_equal(protocol._user_order(users),
                                      np.argsort(users, kind="stable"))


# ---------------------------------------------------------------------------------------------
# A plain per-user reference, written from docs/protocol.md with loops, on generated logs.

def reference_split(users, items, cfg: DataConfig, chunk: int, fixed_eval: bool = False):
    """The protocol step by step with Python lists; None where a part would have no window."""
    users, items = np.asarray(users).tolist(), np.asarray(items).tolist()
    n = len(users)
    lo, hi = (int(math.floor(f * n + 1e-6)) for f in (cfg.start_frac, cfg.end_frac))
    rows = np.array_split(np.arange(lo, hi), cfg.chunks)[chunk].tolist()
    kept = []
    for part in np.array_split(np.array(rows, dtype=np.int64), cfg.filter_parts):
        part = part.tolist()
        plays = Counter(items[r] for r in part)
        kept += [r for r in part if plays[items[r]] > cfg.threshold]
    if not kept:
        return "no item is played"
    new_id = {old: i for i, old in enumerate(sorted({items[r] for r in kept}))}
    seqs: dict[int, list[int]] = {}
    for r in kept:
        seqs.setdefault(users[r], []).append(new_id[items[r]])
    parts: dict[str, dict[int, list[int]]] = {p: {} for p in PARTS}
    train_seen, ref_seen = set(), set()
    for u, s in seqs.items():
        m = len(s)
        a, b = int(cfg.train_start_frac * m), int(cfg.train_frac * m)
        c = b + int((m - b) / 2)
        parts["train"][u], parts["val"][u], parts["test"][u] = s[a:b], s[b:c], s[c:]
        train_seen.update(s[a:b])
        ref_seen.update(s[0 if fixed_eval else a:b])
    dropped = {}
    for p in ("val", "test"):
        dropped[p] = sum(x not in ref_seen for s in parts[p].values() for x in s)
        parts[p] = {u: [x for x in s if x in ref_seen] for u, s in parts[p].items()}
    L = cfg.seq_len
    out = {"dropped": dropped}
    for p in PARTS:
        out[p] = {"items": [], "users": [], "starts": []}
        for u in sorted(parts[p]):
            s = parts[p][u]
            offset = len(out[p]["items"])
            out[p]["starts"] += [offset + i for i in range(len(s) - L + 1)]
            out[p]["items"] += s
            out[p]["users"] += [u] * len(s)
        if not out[p]["starts"]:
            return f"{p} part has no window"
    train_items = out["train"]["items"]
    ref_items = train_items if not fixed_eval else [x for s in seqs.values()
                                                    for x in s[:int(cfg.train_frac * len(s))]]
    out["n_items"] = max(ref_items) + 1
    out["n_users"] = max(max(out[p]["users"]) for p in PARTS) + 1
    plays = Counter(train_items)
    out["item_counts"] = [plays[i] for i in range(out["n_items"])]
    assert train_seen <= ref_seen
    return out


def generated_log(n_rows: int, n_users: int, n_items: int, seed: int):
    """Users with skewed activity, Zipf-distributed item ids, rows in an arbitrary time order."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.sqrt(np.arange(1, n_users + 1))
    users = rng.choice(n_users, n_rows, p=weights / weights.sum()).astype(np.int32)
    users = rng.permutation(n_users).astype(np.int32)[users] * 3  # sparse ids, not by activity
    items = ((rng.zipf(1.3, n_rows) * 7919) % n_items).astype(np.int32)
    return users, items


@pytest.fixture(scope="module")
def log20k():
    return generated_log(20_000, 50, 5_000, seed=0)


def assert_matches_reference(split: Split, ref: dict, seq_len: int) -> None:
    for p in PARTS:
        w = split.part(p)
        np.testing.assert_array_equal(w.items, ref[p]["items"])
        np.testing.assert_array_equal(w.users, ref[p]["users"])
        np.testing.assert_array_equal(w.starts, ref[p]["starts"])
        # A sample of windows, gathered, against slices of the reference's events.
        idx = np.linspace(0, len(w) - 1, 50).astype(np.int64)
        items, users = w.gather(idx)
        for i, it, us in zip(idx.tolist(), items.tolist(), users.tolist(), strict=True):
            a = ref[p]["starts"][i]
            assert it == ref[p]["items"][a:a + seq_len]
            assert us == [ref[p]["users"][a]] * seq_len  # a window never crosses users
        assert w.seq_len == seq_len
    assert split.dropped_unseen == ref["dropped"]
    assert split.n_items == ref["n_items"] and split.n_users == ref["n_users"]
    np.testing.assert_array_equal(split.item_counts, ref["item_counts"])


GRID = list(itertools.product([0, 2, 5], [2, 5, 20], [(1, 1), (3, 1), (1, 2), (2, 2)],
                              [0.0, 0.5]))


def test_vectorised_equals_reference_on_a_grid(log20k):
    users, items = log20k
    built = 0
    for threshold, seq_len, (chunks, parts), tsf in GRID:
        cfg = DataConfig(chunks=chunks, filter_parts=parts, threshold=threshold,
                         seq_len=seq_len, train_start_frac=tsf)
        chunk = chunks - 1
        ref = reference_split(users, items, cfg, chunk)
        if isinstance(ref, str):
            with pytest.raises(ValueError, match=ref):
                prepare_split(users, items, cfg, chunk)
            continue
        assert_matches_reference(prepare_split(users, items, cfg, chunk), ref, seq_len)
        built += 1
    assert built >= len(GRID) * 3 // 4  # the grid mostly builds splits, not errors


@pytest.mark.parametrize("cfg", [
    DataConfig(start_frac=0.3, end_frac=0.5, chunks=1, filter_parts=2, train_frac=0.95,
               train_start_frac=0.5, threshold=2, seq_len=5),
    DataConfig(start_frac=0.7, chunks=3, threshold=2, seq_len=3, train_frac=0.8),
    DataConfig(chunks=2, filter_parts=3, threshold=1, seq_len=4, train_start_frac=0.2),
])
@pytest.mark.parametrize("fixed_eval", [False, True])
def test_vectorised_equals_reference_on_subsets(log20k, cfg, fixed_eval):
    users, items = log20k
    for chunk in range(cfg.chunks):
        ref = reference_split(users, items, cfg, chunk, fixed_eval)
        assert not isinstance(ref, str)
        split = prepare_split(users, items, dataclasses.replace(cfg, fixed_eval=fixed_eval),
                              chunk)
        assert_matches_reference(split, ref, cfg.seq_len)


def test_int64_input_gives_the_same_split(log20k):
    users, items = log20k
    cfg = DataConfig(chunks=2, threshold=2, seq_len=5)
    a = prepare_split(users, items, cfg, 1)
    b = prepare_split(users.astype(np.int64), items.astype(np.int64), cfg, 1)
    for p in PARTS:
        np.testing.assert_array_equal(a.part(p).items, b.part(p).items)
        np.testing.assert_array_equal(a.part(p).starts, b.part(p).starts)


# ---------------------------------------------------------------------------------------------
# The experiments' data settings (driven by DataConfig alone).

@pytest.fixture(scope="module")
def log60k():
    # Few heavy users, so the thesis' threshold 20 and L = 50 still leave val and test windows.
    return generated_log(120_000, 8, 2_000, seed=1)


def thesis_data(name: str) -> DataConfig:
    """The data settings of an experiment of the thesis' grid: `exp1@20` is exp 1 at threshold
    20; a bare name is the experiment's first point."""
    experiment, _, value = name.partition("@")
    specs = grid(experiment, "thesis", baselines=())
    return next(s.config.data for s in specs if not value or str(s.value) == value)


# Taken from the experiment grids themselves, so a change there is tested here.
EXPERIMENTS = {g: thesis_data(g) for g in ("exp1@20", "exp1@2", "exp2", "exp4")}


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_experiment_settings_build_valid_splits(log60k, name):
    users, items = log60k
    base = EXPERIMENTS[name]
    variants = ([dataclasses.replace(base, seq_len=L) for L in (5, 10, 20, 50)]
                if name == "exp4" else
                # the thesis' rule (val/test items seen in the shrunk train); fixed_eval below
                [dataclasses.replace(base, train_start_frac=p, fixed_eval=False)
                 for p in (0.0, 0.5, 0.9)]
                if name == "exp2" else [base])
    for cfg in variants:
        for chunk in range(cfg.chunks):
            s = prepare_split(users, items, cfg, chunk)
            train_items = set(s.train.items.tolist())
            for p in PARTS:
                w = s.part(p)
                assert len(w) > 0
                items_w, users_w = w.gather(np.arange(len(w)))
                assert (users_w == users_w[:, :1]).all()
                assert items_w.max() < s.n_items and users_w.max() < s.n_users
                if p != "train":
                    assert set(w.items.tolist()) <= train_items
            assert s.item_counts.sum() == s.train.items.shape[0]
            assert s.meta["rows_in_chunk"] == np.subtract(*chunk_rows(120_000, cfg)[chunk][::-1])


def exp2_splits(users, items, fixed_eval):
    base = EXPERIMENTS["exp2"]
    return [prepare_split(users, items, dataclasses.replace(base, train_start_frac=p,
                                                            fixed_eval=fixed_eval), 0)
            for p in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)]


def test_exp2_fixed_eval_keeps_val_and_test_identical_for_every_p(log60k):
    splits = exp2_splits(*log60k, fixed_eval=True)
    first = splits[0]
    for s in splits[1:]:
        for p in ("val", "test"):
            for f in ("items", "users", "starts"):
                np.testing.assert_array_equal(getattr(s.part(p), f), getattr(first.part(p), f))
        assert s.dropped_unseen == first.dropped_unseen
    train_events = [s.train.items.shape[0] for s in splits]
    assert train_events == sorted(train_events, reverse=True) and train_events[-1] > 0
    assert train_events[0] > 5 * train_events[-1]


def test_exp2_thesis_mode_drops_only_what_the_shrunk_train_never_saw(log60k):
    # Same item ids and val/test positions for every p: the thesis-mode evaluation events are
    # the fixed ones minus those whose item the shrunk train never saw, nothing else.
    users, items = log60k
    fixed = exp2_splits(users, items, fixed_eval=True)
    thesis = exp2_splits(users, items, fixed_eval=False)
    for f, t in zip(fixed, thesis, strict=True):
        np.testing.assert_array_equal(f.train.items, t.train.items)
        for p in ("val", "test"):
            seen = np.isin(f.part(p).items, t.train.items)
            np.testing.assert_array_equal(t.part(p).items, f.part(p).items[seen])
            np.testing.assert_array_equal(t.part(p).users, f.part(p).users[seen])
            assert t.dropped_unseen[p] == f.dropped_unseen[p] + np.count_nonzero(~seen)


# ---------------------------------------------------------------------------------------------
# Windows gather, save/load, cache

def test_gather_and_device_batch_give_the_hand_windows():
    s = prepare_split(*hand_log(), HAND_CFG, 0)
    items, users = s.train.gather(np.array([4, 0, 3]))
    np.testing.assert_array_equal(items, [[2, 1], [1, 2], [3, 2]])
    np.testing.assert_array_equal(users, [[3, 3], [1, 1], [1, 1]])
    x, u, y = s.train.to("cpu").batch(torch.tensor([4, 0, 3]))
    assert x.dtype == torch.int64 and y.dtype == torch.int64
    assert x.tolist() == [[2], [1], [3]] and u.tolist() == [[3], [1], [1]]
    assert y.tolist() == [1, 2, 2]
    np.testing.assert_array_equal(s.train.targets(), [2, 1, 3, 2, 1, 2, 3])


def test_device_batch_equals_gather(log20k):
    s = prepare_split(*log20k, DataConfig(chunks=1, threshold=2, seq_len=5), 0)
    idx = np.random.default_rng(0).integers(0, len(s.train), 64)
    items, users = s.train.gather(idx)
    x, u, y = s.train.to("cpu").batch(torch.as_tensor(idx))
    np.testing.assert_array_equal(x.numpy(), items[:, :-1])
    np.testing.assert_array_equal(u.numpy(), users[:, :-1])
    np.testing.assert_array_equal(y.numpy(), items[:, -1])


def assert_same_split(a: Split, b: Split) -> None:
    for p in PARTS:
        for f in ("items", "users", "starts"):
            x, y = getattr(a.part(p), f), getattr(b.part(p), f)
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
        assert a.part(p).seq_len == b.part(p).seq_len
    assert (a.n_items, a.n_users, a.dropped_unseen, a.meta) == (
        b.n_items, b.n_users, b.dropped_unseen, b.meta)
    np.testing.assert_array_equal(a.item_counts, b.item_counts)
    assert a.item_counts.dtype == b.item_counts.dtype


def test_save_load_round_trip_is_exact(log20k, tmp_path):
    s = prepare_split(*log20k, DataConfig(chunks=2, filter_parts=2, threshold=2, seq_len=5), 1)
    path = s.save(tmp_path / "s.npz")
    assert_same_split(s, Split.load(path))  # starts come back int64 ...
    with np.load(path, allow_pickle=False) as z:  # ... though stored as int32 (4 bytes less)
        assert z["train_starts"].dtype == np.int32 and z["train_items"].dtype == np.int32


def test_cache_writes_once_then_loads(log20k, tmp_path, monkeypatch):
    users, items = log20k
    cfg = DataConfig(chunks=2, threshold=2, seq_len=5)
    first = load_or_prepare_split("ev1", users, items, cfg, 1, tmp_path)
    files = list(tmp_path.glob("split-*.npz"))
    assert [f.name for f in files] == [f"split-{split_cache_key('ev1', cfg, 1)}.npz"]
    assert first.meta["events_key"] == "ev1"

    def fail(*args, **kwargs):
        raise AssertionError("prepared again instead of loading the cache")

    monkeypatch.setattr(protocol, "prepare_split", fail)
    assert_same_split(first, load_or_prepare_split("ev1", users, items, cfg, 1, tmp_path))
    with pytest.raises(AssertionError, match="prepared again"):  # a new setting: a new file
        load_or_prepare_split("ev1", users, items, dataclasses.replace(cfg, seq_len=6), 1,
                              tmp_path)
    monkeypatch.undo()
    no_cache = load_or_prepare_split("ev1", users, items, cfg, 1, None)
    assert_same_split(first, no_cache)


def test_damaged_cache_file_is_rebuilt(log20k, tmp_path):
    users, items = log20k
    cfg = DataConfig(chunks=2, threshold=2, seq_len=5)
    good = load_or_prepare_split("ev", users, items, cfg, 0, tmp_path)
    (path,) = tmp_path.glob("split-*.npz")
    path.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="unreadable"):
        again = load_or_prepare_split("ev", users, items, cfg, 0, tmp_path)
    assert_same_split(good, again)
    assert_same_split(good, Split.load(path))


def test_cache_key_changes_with_every_setting():
    cfg = DataConfig()
    other = {"item_key": "mbid", "start_frac": 0.1, "end_frac": 0.9, "chunks": 3,
             "filter_parts": 2, "threshold": 2, "train_frac": 0.95, "train_start_frac": 0.1,
             "seq_len": 5, "fixed_eval": True, "split": "leave_one_out"}
    other |= {"columns": "user=0,item=1,time=2", "sep": ";"}  # reading options (data/options.py)
    assert set(other) == {f.name for f in dataclasses.fields(DataConfig)}
    base = split_cache_key("ev", cfg, 0)
    keys = {base, split_cache_key("ev2", cfg, 0), split_cache_key("ev", cfg, 1)}
    keys |= {split_cache_key("ev", dataclasses.replace(cfg, **{k: v}), 0)
             for k, v in other.items()}
    assert len(keys) == 3 + len(other)
    assert split_cache_key("ev", DataConfig(), 0) == base  # and it is stable


# ---------------------------------------------------------------------------------------------
# Errors

def test_errors_name_the_setting():
    users, items = hand_log()
    with pytest.raises(ValueError, match=r"chunk 1 is out of range.*0\.\.0"):
        prepare_split(users, items, HAND_CFG, 1)
    with pytest.raises(ValueError, match="chunk -1 is out of range"):
        prepare_split(users, items, HAND_CFG, -1)
    with pytest.raises(ValueError, match=r"chunk 0 of 1 .*threshold=9.*lower DataConfig.threshold"):
        prepare_split(users, items, dataclasses.replace(HAND_CFG, threshold=9), 0)
    with pytest.raises(ValueError, match=r"train part has no window of seq_len=12"):
        prepare_split(users, items, dataclasses.replace(HAND_CFG, seq_len=12), 0)
    with pytest.raises(ValueError, match="items ids must be dense non-negative integers"):
        prepare_split(users, items - 6, HAND_CFG, 0)
    with pytest.raises(ValueError, match="users ids must be dense non-negative"):
        prepare_split(users.astype(np.int64) + 2**31, items, HAND_CFG, 0)
    with pytest.raises(ValueError, match=r"items ids .* below 1,048,928, got 5\.\.1048928"):
        prepare_split(users, np.where(items == 66, 16 * 22 + 2**20, items), HAND_CFG, 0)
    ok = prepare_split(users, np.where(items == 66, 16 * 22 + 2**20 - 1, items), HAND_CFG, 0)
    assert ok.n_items == 4
    with pytest.raises(ValueError, match="same length"):
        prepare_split(users[:-1], items, HAND_CFG, 0)
    with pytest.raises(ValueError, match="1-D integer array"):
        prepare_split(users.astype(float), items, HAND_CFG, 0)
    with pytest.raises(ValueError, match="has no rows"):
        prepare_split(users[:2], items[:2], DataConfig(chunks=3), 2)

"""The protocols beside the thesis' (`DataConfig.split`): leave-one-out and the global time cut.

A hand-made log with every target and padded history worked out by hand, a plain per-user
reference on generated logs, the padded window format, the settings that do not go together,
the thesis split left bit for bit as it was, and one training epoch of every model.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from test_protocol import generated_log, hand_log

from seqrec.config import DataConfig, ModelConfig, apply_overrides, profile
from seqrec.data.protocol import load_or_prepare_split, prepare_split, split_cache_key
from seqrec.data.windows import PARTS, Split, Windows, concat
from seqrec.models import build_model
from seqrec.models.baselines import training_events

# ---------------------------------------------------------------------------------------------
# A hand-made log: 4 users, 16 events, items 0..4, threshold 0, seq_len 3 (histories of 2).
#
#  row  0  1  2  3  4  5  6  7 |  8  9 10 11 | 12 13 14 15     global cuts: train_frac 0.5 ->
#  user 3  0  1  3  0  3  0  1 |  3  0  1  3 |  2  0  3  2     train rows 0-7, val 8-11
#  item 1  0  3  2  1  0  2  0 |  3  4  1  1 |  2  3  2  3     (int(4 / 2)), test 12-15
#
# Per user:  u0: 0 1 2 4 3    u1: 3 0 1    u2: 2 3    u3: 1 2 0 3 1 2
# Item 4 (u0's 4th event) is played in neither protocol's train: dropped from val, and so from
# every later history too (u0's test history skips it).
#
# leave_one_out: test = each user's last event, val = the one before, train = the rest.
#   train targets (every train event after the user's first; P is padding):
#     u0 [P 0]>1 [0 1]>2        u1 (one train event: none)        u3 [P 1]>2 [1 2]>0 [2 0]>3
#   val:  u0's 4 dropped; u1 [P 3]>0; u2's val is its first event (no history: none); u3 [0 3]>1
#   test: u0 [1 2]>3; u1 [3 0]>1; u2 [P 2]>3; u3 [3 1]>2
#   train events 0 1 2 | 3 | 1 2 0 3: n_items 4, item counts [2 2 2 2]
#
# global_time: train rows 0-7, val rows 8-11, test rows 12-15, the same cut for every user.
#   u0: 0 1 2 | (4 dropped) | 3    u1: 3 0 | 1 |    u2: | | 2 3    u3: 1 2 0 | 3 1 | 2
#   train targets: u0 [P 0]>1 [0 1]>2; u1 [P 3]>0; u3 [P 1]>2 [1 2]>0
#   val:  u1 [3 0]>1; u3 [2 0]>3 [0 3]>1                (histories reach into train)
#   test: u0 [1 2]>3; u2's first event has no history, then [P 2]>3; u3 [3 1]>2
#   train items 1 0 3 2 1 0 2 0: n_items 4, item counts [3 2 2 1]
P = 4  # the padding id of both hand splits: n_items

HAND_PADDED = [(3, 1), (0, 0), (1, 3), (3, 2), (0, 1), (3, 0), (0, 2), (1, 0),
               (3, 3), (0, 4), (1, 1), (3, 1), (2, 2), (0, 3), (3, 2), (2, 3)]


def hand_padded(split: str, **kw) -> Split:
    rows = np.array(HAND_PADDED, dtype=np.int32)
    cfg = DataConfig(**{"chunks": 1, "threshold": 0, "train_frac": 0.5, "seq_len": 3,
                        "split": split, **kw})
    return prepare_split(rows[:, 0].copy(), rows[:, 1].copy(), cfg, 0)


def windows_of(w: Windows) -> list[tuple[int, list[int], int]]:
    """(user, history, target) of every window, through `gather`."""
    items, users = w.gather(np.arange(len(w)))
    return [(int(u[-1]), x[:-1].tolist(), int(x[-1])) for x, u in zip(items, users, strict=True)]


HAND_EXPECTED = {
    "leave_one_out": {
        "train": [(0, [P, 0], 1), (0, [0, 1], 2), (3, [P, 1], 2), (3, [1, 2], 0),
                  (3, [2, 0], 3)],
        "val": [(1, [P, 3], 0), (3, [0, 3], 1)],
        "test": [(0, [1, 2], 3), (1, [3, 0], 1), (2, [P, 2], 3), (3, [3, 1], 2)],
    },
    "global_time": {
        "train": [(0, [P, 0], 1), (0, [0, 1], 2), (1, [P, 3], 0), (3, [P, 1], 2),
                  (3, [1, 2], 0)],
        "val": [(1, [3, 0], 1), (3, [2, 0], 3), (3, [0, 3], 1)],
        "test": [(0, [1, 2], 3), (2, [P, 2], 3), (3, [3, 1], 2)],
    },
}


@pytest.mark.parametrize("split", ["leave_one_out", "global_time"])
def test_hand_made_log_targets_and_histories(split):
    s = hand_padded(split)
    for p in PARTS:
        assert windows_of(s.part(p)) == HAND_EXPECTED[split][p], p
        x, u, y = s.part(p).to("cpu").batch(torch.arange(len(s.part(p))))
        assert [(int(a[-1]), b.tolist(), int(c)) for a, b, c in zip(u, x, y, strict=True)] == \
            HAND_EXPECTED[split][p]
        assert (u == u[:, -1:]).all()  # padded slots carry the window's user
    assert s.n_items == P and s.n_users == 4
    assert s.dropped_unseen == {"val": 1, "test": 0}
    assert s.meta["split"] == split
    counts = [2, 2, 2, 2] if split == "leave_one_out" else [3, 2, 2, 1]
    np.testing.assert_array_equal(s.item_counts, counts)


def test_hand_made_log_layout():
    # The flat arrays hold each user's block of events (no padding), and a padded window's
    # start may lie before its user's first event, even below 0.
    s = hand_padded("leave_one_out")
    expected = {  # items, users, starts, pads
        "train": ([0, 1, 2, 1, 2, 0, 3], [0, 0, 0, 3, 3, 3, 3], [-1, 0, 2, 3, 4], [1, 0, 1, 0, 0]),
        "val": ([3, 0, 0, 3, 1], [1, 1, 3, 3, 3], [-1, 2], [1, 0]),
        "test": ([1, 2, 3, 3, 0, 1, 2, 3, 3, 1, 2], [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3],
                 [0, 3, 5, 8], [0, 0, 1, 0]),
    }
    for p, (items, users, starts, pads) in expected.items():
        w = s.part(p)
        np.testing.assert_array_equal(w.items, items)
        np.testing.assert_array_equal(w.users, users)
        np.testing.assert_array_equal(w.starts, starts)
        np.testing.assert_array_equal(w.pads, pads)
        assert (w.items.dtype, w.starts.dtype, w.pads.dtype) == (np.int32, np.int64, np.int32)
        assert w.pad_id == P
    g = hand_padded("global_time")
    assert (g.meta["val_cut_row"], g.meta["test_cut_row"]) == (8, 12)
    np.testing.assert_array_equal(g.train.starts, [-1, 0, 2, 4, 5])
    np.testing.assert_array_equal(g.train.pads, [1, 0, 1, 1, 0])


def test_longer_histories_are_the_last_events_and_unseen_items_leave_them():
    # seq_len 4 (histories of 3): leave_one_out's u3 test history is its 3 events before the
    # target, u0's skips the dropped 4: [0 1 2] (4 dropped) > 3.
    s = hand_padded("leave_one_out", seq_len=4)
    assert windows_of(s.test) == [(0, [0, 1, 2], 3), (1, [P, 3, 0], 1), (2, [P, P, 2], 3),
                                  (3, [0, 3, 1], 2)]
    assert windows_of(s.val) == [(1, [P, P, 3], 0), (3, [2, 0, 3], 1)]


# ---------------------------------------------------------------------------------------------
# A plain per-user reference with loops, on generated logs

def reference_padded(users, items, cfg: DataConfig) -> dict:
    """The padded protocols written out per user with lists (one chunk, one filter part)."""
    users, items = np.asarray(users).tolist(), np.asarray(items).tolist()
    plays = Counter(items)
    kept = [r for r in range(len(items)) if plays[items[r]] > cfg.threshold]
    new_id = {old: i for i, old in enumerate(sorted({items[r] for r in kept}))}
    label = {}
    if cfg.split == "global_time":
        n = len(kept)
        a = int(cfg.train_frac * n)
        b = a + (n - a) // 2
        for k, r in enumerate(kept):
            label[r] = 0 if k < a else 1 if k < b else 2
    else:
        by_user: dict[int, list[int]] = {}
        for r in kept:
            by_user.setdefault(users[r], []).append(r)
        for rows in by_user.values():
            for k, r in enumerate(rows):
                label[r] = max(0, 2 - (len(rows) - 1 - k))
    seen = {new_id[items[r]] for r in kept if label[r] == 0}
    dropped = {p: sum(label[r] == c and new_id[items[r]] not in seen for r in kept)
               for c, p in ((1, "val"), (2, "test"))}
    seqs: dict[int, list[tuple[int, int]]] = {}
    for r in kept:
        if label[r] == 0 or new_id[items[r]] in seen:
            seqs.setdefault(users[r], []).append((new_id[items[r]], label[r]))
    n_items = max(seen) + 1
    L = cfg.seq_len
    out = {"n_items": n_items, "dropped": dropped, "n_users": max(seqs) + 1}
    for code, p in enumerate(PARTS):
        out[p] = []
        for u in sorted(seqs):
            s = seqs[u]
            for j in range(1, len(s)):
                if s[j][1] == code:
                    history = [x for x, _ in s[max(0, j - (L - 1)):j]]
                    out[p].append((u, [n_items] * (L - 1 - len(history)) + history, s[j][0]))
    train = [new_id[items[r]] for r in kept if label[r] == 0]
    out["item_counts"] = [train.count(i) for i in range(n_items)]
    return out


@pytest.fixture(scope="module")
def log5k():
    return generated_log(5_000, 40, 400, seed=1)


@pytest.mark.parametrize("split", ["leave_one_out", "global_time"])
@pytest.mark.parametrize("seq_len,threshold,train_frac", [(2, 0, 0.8), (5, 2, 0.8),
                                                          (12, 5, 0.6)])
def test_vectorised_equals_reference(log5k, split, seq_len, threshold, train_frac):
    cfg = DataConfig(chunks=1, threshold=threshold, seq_len=seq_len, train_frac=train_frac,
                     split=split)
    s = prepare_split(*log5k, cfg, 0)
    ref = reference_padded(*log5k, cfg)
    for p in PARTS:
        w = s.part(p)
        assert windows_of(w) == ref[p], p
        # The flat arrays hold events only; each window's events are consecutive events of
        # the window's user.
        assert w.items.max() < s.n_items and w.pads.max() <= seq_len - 2
        first, end = w.first_event(), w.starts + seq_len
        assert (first >= 0).all() and (w.users[first] == w.users[end - 1]).all()
    assert (s.n_items, s.n_users, s.dropped_unseen) == (ref["n_items"], ref["n_users"],
                                                       ref["dropped"])
    np.testing.assert_array_equal(s.item_counts, ref["item_counts"])
    if split == "global_time":  # one cut for all users, at the thesis' fractions of the rows
        n = s.meta["rows_after_filter"]
        assert s.meta["val_cut_row"] == int(train_frac * n)
        assert s.meta["test_cut_row"] == int(train_frac * n) + (n - int(train_frac * n)) // 2


# ---------------------------------------------------------------------------------------------
# Settings, the thesis split unchanged, the cache

def test_settings_that_do_not_go_together_raise():
    with pytest.raises(ValueError, match="split must be one of"):
        DataConfig(split="random")
    with pytest.raises(ValueError, match=r"train_start_frac=0\.3 applies to split=thesis only"):
        DataConfig(split="leave_one_out", train_start_frac=0.3)
    with pytest.raises(ValueError, match="train_start_frac.*split=global_time"):
        DataConfig(split="global_time", train_start_frac=0.1)
    with pytest.raises(ValueError, match="fixed_eval applies to split=thesis only"):
        DataConfig(split="leave_one_out", fixed_eval=True)
    with pytest.raises(ValueError, match="split must be one of"):
        apply_overrides(profile("smoke"), ["split=loo"])
    assert apply_overrides(profile("smoke"), ["split=global_time"]).data.split == "global_time"


def test_a_part_without_a_target_names_the_setting():
    # The first 8 rows only: u0 0 1 2, u1 3 0, u3 1 2 0. Under leave_one_out no user keeps
    # 2 train events; under global_time with train_frac 0.25 the train rows 0-1 are one event
    # each of u3 and u0.
    rows = np.array(HAND_PADDED[:8], dtype=np.int32)
    cfg = DataConfig(chunks=1, threshold=0, seq_len=3, split="leave_one_out")
    with pytest.raises(ValueError, match=r"train part has no target under "
                                         r"split=leave_one_out .*at least 4 events.*threshold"):
        prepare_split(rows[:, 0], rows[:, 1], cfg, 0)
    cfg = dataclasses.replace(cfg, split="global_time", train_frac=0.25)
    with pytest.raises(ValueError, match=r"train part has no target under split=global_time "
                                         r"\(it needs a user with 2 events before the"):
        prepare_split(rows[:, 0], rows[:, 1], cfg, 0)
    s = prepare_split(rows[:, 0], rows[:, 1], dataclasses.replace(cfg, train_frac=0.5), 0)
    assert [len(s.part(p)) for p in PARTS] == [1, 2, 2]


def split_digest(s: Split) -> str:
    h = hashlib.sha256()
    for p in PARTS:
        w = s.part(p)
        for a in (w.items, w.users, w.starts):
            h.update(a.dtype.str.encode())
            h.update(a.tobytes())
    h.update(s.item_counts.tobytes())
    return h.hexdigest()[:16]


def test_thesis_split_and_cache_key_are_as_before_the_setting():
    # Values from the code before `split` existed (commit 7931b6e): the same key, the same
    # arrays, the same settings hash, so old caches and records stay valid.
    assert split_cache_key("ev", DataConfig(), 0) == "62445e1533e8"
    cfg = DataConfig(chunks=2, threshold=2, seq_len=5)
    assert split_cache_key("ev", cfg, 1) == "f323585c2752"
    s = prepare_split(*generated_log(20_000, 50, 5_000, seed=0), cfg, 1)
    assert split_digest(s) == "3a959937e875d74d"
    assert s.meta["settings_hash"] == "1a072e5350bd" and s.meta["split"] == "thesis"
    assert not s.padded and all(s.part(p).pads is None for p in PARTS)
    h = prepare_split(*hand_log(), DataConfig(chunks=1, threshold=1, train_frac=0.5, seq_len=2),
                      0)
    assert split_digest(h) == "14e4632d7348118c"
    other = dataclasses.replace(cfg, split="leave_one_out")
    assert split_cache_key("ev", other, 1) != split_cache_key("ev", cfg, 1)


def test_padded_split_save_load_and_cache(tmp_path):
    s = hand_padded("global_time")
    back = Split.load(s.save(tmp_path / "s.npz"))
    for p in PARTS:
        a, b = s.part(p), back.part(p)
        for f in ("items", "users", "starts", "pads"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
        assert b.pad_id == P and windows_of(b) == windows_of(a)
    assert back.meta == s.meta and back.padded
    rows = np.array(HAND_PADDED, dtype=np.int32)
    cfg = DataConfig(chunks=1, threshold=0, train_frac=0.5, seq_len=3, split="global_time")
    first = load_or_prepare_split("ev", rows[:, 0], rows[:, 1], cfg, 0, tmp_path)
    again = load_or_prepare_split("ev", rows[:, 0], rows[:, 1], cfg, 0, tmp_path)
    assert first.meta["cache_key"] == split_cache_key("ev", cfg, 0)
    assert windows_of(again.test) == HAND_EXPECTED["global_time"]["test"]


def test_windows_concat_and_checks():
    s = hand_padded("leave_one_out")
    both = s.trainval()
    assert windows_of(both) == HAND_EXPECTED["leave_one_out"]["train"] + \
        HAND_EXPECTED["leave_one_out"]["val"]
    plain = Windows(np.array([0, 1, 2], np.int32), np.zeros(3, np.int32), np.array([0]), 3)
    mixed = concat(plain, s.val)
    assert windows_of(mixed) == [(0, [0, 1], 2)] + HAND_EXPECTED["leave_one_out"]["val"]
    np.testing.assert_array_equal(mixed.pads, [0, 1, 0])
    with pytest.raises(ValueError, match="both pads and pad_id"):
        Windows(plain.items, plain.users, plain.starts, 3, pads=np.zeros(1, np.int32))
    with pytest.raises(ValueError, match="padding must be n_items"):
        dataclasses.replace(s, n_items=5)


def test_baselines_count_only_the_events_of_padded_windows():
    # leave_one_out train of the hand log: u0 0 1 2 and u3 1 2 0 3, every event in a window,
    # transitions inside a user only, none into or out of the padding.
    s = hand_padded("leave_one_out")
    ev = training_events(s.train, s.n_items)
    assert ev.covered.all()
    np.testing.assert_array_equal(ev.linked, [True, True, False, True, True, True])
    # A val window's history reaches events that are no target: they count as well.
    ev = training_events(s.val, s.n_items)
    np.testing.assert_array_equal(ev.covered, [True] * 5)
    np.testing.assert_array_equal(ev.linked, [True, False, True, True])
    # A padded window's padded slots overlay event 0 (user 0's, in no window): not counted.
    w = Windows(np.array([3, 1, 2], np.int32), np.array([0, 1, 1], np.int32), np.array([0]), 3,
                pads=np.array([1], np.int32), pad_id=4)
    ev = training_events(w, 4)
    np.testing.assert_array_equal(ev.covered, [False, True, True])
    np.testing.assert_array_equal(ev.linked, [False, True])
    pop = build_model(ModelConfig(name="pop"), 4, 2)
    pop.fit(w)
    assert pop.item_counts.tolist() == [0, 1, 1, 0]


# ---------------------------------------------------------------------------------------------
# One training epoch of every model on a leave-one-out split, through the trainer

ALL_MODELS = ("gru", "user_gru", "dnc", "user_dnc", "sasrec", "pop", "recent", "markov",
              "item_knn")


@pytest.fixture(scope="module")
def padded_splits() -> dict[str, Split]:
    log = generated_log(3_000, 200, 300, seed=2)
    return {split: prepare_split(*log, DataConfig(chunks=1, threshold=3, seq_len=6, split=split),
                                 0)
            for split in ("leave_one_out", "global_time")}


@pytest.mark.parametrize("split", ["leave_one_out", "global_time"])
@pytest.mark.parametrize("name", ALL_MODELS)
def test_one_epoch_of_every_model(name, split, padded_splits, tmp_path: Path):
    from seqrec.record import RunLabel
    from seqrec.train import train_run

    s = padded_splits[split]
    assert s.train.pads.max() == 4 and (s.test.pads > 0).any()  # short histories are there
    cfg = apply_overrides(profile("smoke"), {
        "name": name, "embedding_size": 8, "hidden_size": 8, "memory_cells": 4, "word_size": 4,
        "epochs": 1, "batch_size": 64, "eval_batch_size": 128, "seq_len": 6, "split": split,
        "threshold": 3, "chunks": 1})
    rec = train_run(s, cfg, tmp_path / name, torch.device("cpu"),
                    label=RunLabel(name, "test"), progress=False).to_json()
    assert rec["status"] == "ok", rec["reason"]
    assert rec["n_test_windows"] == len(s.test)
    assert rec["split"]["split"] == split
    metrics = rec["metrics"]
    assert 0.0 <= metrics["recall@1"] <= metrics["recall@20"] <= 1.0
    if name in ("gru", "sasrec"):  # neural: a finite test loss from logits
        assert np.isfinite(rec["test_loss"])

"""The evaluation protocols: time chunks -> min-count filter -> split -> windows.

`DataConfig.split` chooses the protocol (docs/protocols.md): `thesis` (the default, below),
`leave_one_out` or `global_time` (the section "The padded protocols" at the end).

This module implements docs/protocol.md, "Preprocessing", for one chunk of a time-sorted event
log, vectorised over all users at once (a stable radix sort by user, `bincount` tables, masks and
per-user run lengths expanded with `np.repeat`; no per-user Python loop). Input is two aligned
arrays, `users int32[N]` and `items int32[N]`, whose rows are already in a total, stable time
order (see `seqrec.data.lastfm`). Output is a `Split` (`seqrec.data.windows`): flat int32 event
arrays and int64 window starts per part, so memory is O(events), never O(windows x L).

Where rows are cut (all settings are `DataConfig` fields):

* Subset: rows `[floor(start_frac * N), floor(end_frac * N))` of the log. The products are
  floored with a 1e-6 tolerance, so float round-off cannot lose a row (0.7 * 10 is row 7).
* Chunks: the subset cut into `chunks` consecutive near-equal chunks, sized as
  `numpy.array_split` does (the first `rows % chunks` chunks are one row longer).
* Filter parts: each chunk cut the same way into `filter_parts` consecutive parts; each part is
  filtered on its own play counts, then the parts are merged back in time order (exp 2).

Decisions (docs/protocol.md's order of steps decides all but the `fixed_eval` option, which
is ours, for exp 2):

* The `n` of step 3 counts a user's events AFTER the threshold filter: the per-user split is
  done on the filtered chunk, as in the thesis.
* Items are filtered and re-indexed once per chunk, before the per-user cut. So for exp 2 every
  `train_start_frac` sees the same item ids and the same val and test positions; only the train
  part shrinks. Events before `int(train_start_frac * n)` belong to no part (and are counted in
  `meta["cut_events"]`).
* Step 4 (drop val/test events whose item never occurs in train) is by default checked against
  the train part actually used, i.e. the shrunk one for `train_start_frac > 0`, as the thesis
  protocol says. A shrunk train can therefore drop a few more val/test events, so the evaluated
  events may differ slightly between values of `train_start_frac`; `dropped_unseen` records how
  many. `cfg.fixed_eval` instead checks against the uncut train `[0, int(train_frac * n))`, so
  the val and test events are identical for every `train_start_frac` (the same test set for exp
  2's comparison); `n_items` then also covers the uncut train so every target has an output.
* Step 5 builds windows over the events that remain after step 4. A window can therefore span
  the gap left by a dropped val/test event, exactly as in the thesis (it drops, then windows).
* `n_items` = largest train item index + 1 (step 6); items that occur only in dropped events
  keep their index, so a few indices below `n_items` may have zero train plays.
  `n_users` = largest user index among the split's events + 1: users keep their global ids, so
  every window's user indexes an embedding of that size.

The padded protocols (`split=leave_one_out`, `split=global_time`) keep steps 1, 2, 4 and 6 and
change two:

* Step 3, the parts. `leave_one_out`: per user, the last event is test, the one before it
  val, the rest train (Kang and McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018,
  Sec. IV-A; BERT4Rec; RecBole's `split: {'LS': 'valid_and_test'}`). `global_time`: the
  chunk's rows (after the filter, in time order) are cut once for all users with the thesis'
  fractions, so no training event is later than a test event (Ji et al., "A Critical Study on
  Data Leakage in Recommender System Offline Evaluation", TOIS 2023; Sun et al., SIGIR 2023).
  `train_start_frac` and `fixed_eval` (exp 2) are refused with them (DataConfig says so).
* Step 5, the windows. Every event of a part that is not its user's first is a target,
  predicted from the up to `L - 1` events of its user just before it, in whatever part they
  are (a test target's history holds the val and train events before it): one window per
  target, left-padded when the history is shorter (`seqrec.data.windows` stores the padding
  as a count per window, the flat arrays hold events only). The unseen-item drop of step 4
  comes first, so a dropped event is neither a target nor in any history.
* `n_items` and `item_counts` count every train event, also those of a user with a single
  train event (which is in no window, having no history and nothing after it in train).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
import zipfile
from pathlib import Path

import numpy as np

from seqrec.config import DataConfig, config_hash, identity
from seqrec.data.windows import PARTS, Split, Windows

# Bump when the protocol's output changes for the same settings, so old caches are not reused.
PROTOCOL_VERSION = 1

_INT32_MAX = np.iinfo(np.int32).max


# ---------------------------------------------------------------------------------------------
# Row ranges

def _floor_frac(frac: float, n: int) -> int:
    # Tolerance: 0.7 * 10 is 7.000000000000001 but 0.29 * 100 is 28.999999999999996.
    return min(n, int(math.floor(frac * n + 1e-6)))


def _even_cuts(lo: int, hi: int, k: int) -> list[tuple[int, int]]:
    """`[lo, hi)` in `k` consecutive ranges sized like `numpy.array_split`."""
    q, r = divmod(hi - lo, k)
    sizes = [q + 1] * r + [q] * (k - r)
    ends = np.cumsum([lo, *sizes]).tolist()
    return [(int(a), int(b)) for a, b in zip(ends[:-1], ends[1:], strict=True)]


def chunk_rows(n_rows: int, cfg: DataConfig) -> list[tuple[int, int]]:
    """Row ranges `[(start, end), ...]` of the `cfg.chunks` chunks of a log with `n_rows` rows.

    Rows `[floor(start_frac * n_rows), floor(end_frac * n_rows))` cut into `cfg.chunks`
    consecutive ranges sized as `numpy.array_split` sizes them. Indices are absolute rows.
    """
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0, got {n_rows}")
    lo, hi = _floor_frac(cfg.start_frac, n_rows), _floor_frac(cfg.end_frac, n_rows)
    return _even_cuts(lo, hi, cfg.chunks)


# ---------------------------------------------------------------------------------------------
# The steps, each on flat arrays

def _check_events(users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The event arrays as 1-D int32, or a ValueError that says what is wrong."""
    users, items = np.asarray(users), np.asarray(items)
    for name, a in (("users", users), ("items", items)):
        if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must be a 1-D integer array, got {a.dtype} of shape "
                             f"{a.shape}")
    if users.shape != items.shape:
        raise ValueError(f"users and items must have the same length, got {users.shape[0]} "
                         f"and {items.shape[0]}")
    return users, items


def _check_ids(name: str, a: np.ndarray, n_log: int) -> np.ndarray:
    """`a` as int32 after checking its ids are dense enough: in `[0, 16 * n_log + 2**20)`.

    Dense ids of a log with `n_log` rows are below `n_log`; the generous bound only keeps the
    O(max id) count tables from becoming huge when someone passes raw, sparse ids.
    """
    bound = min(16 * n_log + 2**20, _INT32_MAX + 1)
    if a.size and (int(a.min()) < 0 or int(a.max()) >= bound):
        raise ValueError(f"{name} ids must be dense non-negative integers below {bound:,}, got "
                         f"{int(a.min())}..{int(a.max())}; re-index them (seqrec.data.lastfm "
                         f"does)")
    return a.astype(np.int32, copy=False)


def _frequent_items(items: np.ndarray, threshold: int,
                    parts: int) -> tuple[np.ndarray, np.ndarray]:
    """Step 1: which rows survive the play-count filter, and which item ids survive anywhere.

    A row survives when its item is played more than `threshold` times in its filter part
    (`parts` consecutive near-equal parts, each counting its own plays: exp 2 uses 2). Returns
    `keep bool[n]` and `kept bool[max id + 1]` (the union over parts, for re-indexing).
    """
    keep = np.empty(items.shape[0], dtype=bool)
    kept = np.zeros(int(items.max()) + 1 if items.size else 0, dtype=bool)
    for a, b in _even_cuts(0, items.shape[0], parts):
        if b > a:
            part = items[a:b]
            frequent = np.bincount(part) > threshold  # a small bool table, cheap to gather from
            keep[a:b] = frequent[part]
            kept[:frequent.shape[0]] |= frequent
    return keep, kept


def _dense_table(kept: np.ndarray) -> np.ndarray:
    """Step 2: int32[max id + 1] new id of each kept old id, dense in increasing old id."""
    return np.cumsum(kept, dtype=np.int32) - 1


def _user_order(users: np.ndarray) -> np.ndarray:
    """Stable order that groups rows by user, keeping time order inside a user, int64[n].

    numpy's stable sort is a radix sort for 16-bit keys (about 7x faster than on int32 here),
    so the ids are sorted 16 bits at a time (least significant digit first, which is stable).
    """
    if users.size == 0 or int(users.max()) <= 0xFFFF:
        return np.argsort(users.astype(np.uint16), kind="stable")
    order = np.argsort((users & 0xFFFF).astype(np.uint16), kind="stable")
    high = (users[order] >> 16).astype(np.uint16)
    return order[np.argsort(high, kind="stable")]


def _part_labels(counts: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """Step 3: int8[n] part of each row, -1 cut (before train start), 0 train, 1 val, 2 test.

    `counts` int64[U]: events per user, the rows being grouped by user in increasing user id.
    Per user with `n` events: train `[int(train_start_frac n), int(train_frac n))`, val the next
    `int((n - int(train_frac n)) / 2)`, test the rest. The cut points are computed per user
    (float64 products truncated, as Python's `int` does); each user's labels are then four runs
    `-1 0 1 2` of those lengths, written with one `np.repeat` (no per-row comparisons).
    """
    train_start = (cfg.train_start_frac * counts).astype(np.int64)
    train_end = (cfg.train_frac * counts).astype(np.int64)
    val_end = train_end + (counts - train_end) // 2
    runs = np.stack([train_start, train_end - train_start, val_end - train_end,
                     counts - val_end], axis=1)  # [U, 4]
    codes = np.tile(np.array([-1, 0, 1, 2], dtype=np.int8), counts.shape[0])
    return np.repeat(codes, runs.ravel())


def _window_starts(sizes: np.ndarray, seq_len: int) -> np.ndarray:
    """Step 5: int64[N] start of every window of `seq_len` events inside one user's run.

    `sizes` int64[U]: events per user in a part laid out user after user. A user with `m >= L`
    events gives the `m - L + 1` starts `first, first + 1, ...`: one `arange` over all windows
    plus each user's shift, repeated per window.
    """
    per_user = np.maximum(sizes - seq_len + 1, 0)
    first_event = np.cumsum(sizes) - sizes
    first_window = np.cumsum(per_user) - per_user
    shift = np.repeat(first_event - first_window, per_user)
    return np.arange(shift.shape[0], dtype=np.int64) + shift


# ---------------------------------------------------------------------------------------------
# The protocol

def _prefix_windows(users: np.ndarray, label: np.ndarray, code: int, counts: np.ndarray,
                    seq_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded windows of part `code`: one per target, over the user's preceding events.

    `users` int32[n] and `label` int8[n]: rows grouped by user (time order inside a user),
    `counts` int64[U] the rows per user. Every row with `label == code` that is not its user's
    first row is a target, predicted from the up to `seq_len - 1` rows of its user before it,
    whatever their part (Kang and McAuley, ICDM 2018, Sec. IV-A, for leave-one-out; every
    preceding event for the global timeline of Sun et al., SIGIR 2023).

    Per user with targets, the part holds one block of rows: from `seq_len - 1` rows before
    its first target (or the user's first row) to its last target. Returns `rows int64[M]`
    (the rows of the part, block after block), and per window (target, in row order)
    `starts int64[N]` (window i is part positions `[starts[i], starts[i] + seq_len)`, the
    target last) and `pads int32[N]` (how many leading slots have no event: `seq_len - 1`
    minus the events before the target in its block, at least 0, at most `seq_len - 2`).
    All vectorised: run lengths and `np.repeat`, as `_window_starts`.
    """
    first = np.cumsum(counts) - counts  # [U] row of each user's first event
    position = np.arange(users.shape[0], dtype=np.int64) - first[users]  # [n] within the user
    target = np.flatnonzero((label == code) & (position >= 1))  # [N] rows, grouped by user
    owner_id = users[target]
    # Runs of equal users in `target`: V users with targets, `run` [V] where each run begins.
    run = np.flatnonzero(np.concatenate([[True], owner_id[1:] != owner_id[:-1]])[:target.size])
    per_user = np.diff(np.append(run, target.size))  # [V] targets per user, > 0
    head, tail = target[run], target[run + per_user - 1] + 1  # [V] first target, last + 1
    block = np.maximum(first[users[head]], head - (seq_len - 1))  # [V] first row of each block
    sizes = tail - block  # [V]
    offset = np.cumsum(sizes) - sizes  # [V] part position of each block
    rows = np.repeat(block - offset, sizes) + np.arange(int(sizes.sum()), dtype=np.int64)
    owner = np.repeat(np.arange(per_user.shape[0]), per_user)  # [N] block of each target
    before = target - block[owner]  # [N] events of the block before the target, >= 1
    starts = offset[owner] + before - (seq_len - 1)
    pads = np.maximum(seq_len - 1 - before, 0).astype(np.int32)
    return rows, starts.astype(np.int64), pads


def _leave_one_out_labels(counts: np.ndarray) -> np.ndarray:
    """int8[n] part of each row for `split=leave_one_out`: per user, its last event 2 (test),
    the one before it 1 (val), the rest 0 (train). Rows grouped by user, `counts` int64[U]."""
    from_end = np.repeat(np.cumsum(counts), counts) - 1 - np.arange(int(counts.sum()))
    return np.clip(2 - from_end, 0, 2).astype(np.int8)


def _global_time_labels(n: int, cfg: DataConfig) -> tuple[np.ndarray, int, int]:
    """int8[n] part of each row in TIME order for `split=global_time`, and the two cut rows.

    The chunk's `n` rows (after the filter) are cut once for all users, with the thesis'
    fractions: train `[0, int(train_frac n))`, val the next `int((n - int(train_frac n)) / 2)`
    rows, test the rest (Ji et al., TOIS 2023; Sun et al., SIGIR 2023: one global timeline, so
    no training event is later than a test event). The rows are in a total time order, so
    rows of equal timestamp on either side of a cut keep the log's order.
    """
    train_end = int(np.float64(cfg.train_frac) * n)
    val_end = train_end + (n - train_end) // 2
    label = np.repeat(np.array([0, 1, 2], dtype=np.int8), [train_end, val_end - train_end,
                                                            n - val_end])
    return label, train_end, val_end


def prepare_split(users: np.ndarray, items: np.ndarray, cfg: DataConfig, chunk: int) -> Split:
    """The protocol `cfg.split` (docs/protocols.md) on chunk `chunk` of a log.

    `users`, `items`: int[N] dense non-negative ids, rows in time order. Steps of the thesis
    protocol (`split=thesis`, docs/protocol.md, "Preprocessing"), on the rows of
    `chunk_rows(N, cfg)[chunk]`:

    1. drop every item played `<= cfg.threshold` times in the chunk (in its filter part when
       `cfg.filter_parts > 1`; the parts are merged back in time order);
    2. re-index the remaining items densely, in increasing order of the old id;
    3. per user in time order, with `n` the user's remaining events: train
       `[int(train_start_frac n), int(train_frac n))`, val the next
       `int((n - int(train_frac n)) / 2)` events, test the rest;
    4. drop val and test events whose item never occurs in any user's train part (against the
       uncut train `[0, int(train_frac n))` when `fixed_eval`); counted in `dropped_unseen`;
    5. sliding windows of length `cfg.seq_len`, stride 1, inside each user's train, val and
       test part, over the events left after step 4 (a window may span a dropped event's gap);
    6. `n_items` = largest train item + 1, `n_users` = largest user id in the split + 1,
       `item_counts` int64[n_items] = plays per item in train.

    `split=leave_one_out` and `split=global_time` replace step 3 (`_leave_one_out_labels`,
    `_global_time_labels`) and step 5 (`_prefix_windows`: one left-padded window per target
    over its user's preceding events, in any part); steps 1, 2, 4 and 6 stay.

    The module docstring gives the reasons for each choice. Raises ValueError, naming the
    setting to change, for bad ids, a chunk out of range, no item above the threshold, or a
    part without a window.
    """
    users, items = _check_events(users, items)
    ranges = chunk_rows(users.shape[0], cfg)
    if not (isinstance(chunk, (int, np.integer)) and 0 <= chunk < len(ranges)):
        raise ValueError(f"chunk {chunk} is out of range: DataConfig.chunks is {cfg.chunks}, "
                         f"so use 0..{cfg.chunks - 1}")
    chunk = int(chunk)
    lo, hi = ranges[chunk]
    where = f"chunk {chunk} of {cfg.chunks} (rows {lo}..{hi})"
    if hi <= lo:
        raise ValueError(f"{where} has no rows; use fewer DataConfig.chunks or a wider "
                         f"start_frac..end_frac")
    u = _check_ids("users", users[lo:hi], users.shape[0])
    it = _check_ids("items", items[lo:hi], users.shape[0])

    keep, kept = _frequent_items(it, cfg.threshold, cfg.filter_parts)
    u, it = u[keep], it[keep]
    if it.size == 0:
        raise ValueError(f"{where}: no item is played more than threshold={cfg.threshold} times; "
                         f"use a lower DataConfig.threshold")
    it = _dense_table(kept)[it]

    # Group rows by user, keeping time order inside a user. The sorted user column is runs of
    # equal ids, so it is rebuilt with np.repeat instead of gathered.
    order = _user_order(u)
    it = it[order]
    counts = np.bincount(u)  # [U] events per user
    user_ids = np.arange(counts.shape[0], dtype=np.int32)
    u = np.repeat(user_ids, counts)
    meta = {
        "chunk": chunk,
        "chunks": cfg.chunks,
        "row_start": lo,
        "row_end": hi,
        "rows_in_chunk": hi - lo,
        "rows_after_filter": int(it.shape[0]),
        "cut_events": 0,
        "threshold": cfg.threshold,
        "filter_parts": cfg.filter_parts,
        "seq_len": cfg.seq_len,
        "train_start_frac": cfg.train_start_frac,
        "settings_hash": config_hash(_settings(cfg)),
        "protocol_version": PROTOCOL_VERSION,
        "split": cfg.split,
    }
    if cfg.split == "thesis":
        return _thesis_split(u, it, counts, _part_labels(counts, cfg), cfg, where, meta)
    if cfg.split == "leave_one_out":
        label = _leave_one_out_labels(counts)
    else:
        by_time, val_cut, test_cut = _global_time_labels(it.shape[0], cfg)
        label = by_time[order]
        meta = {**meta, "val_cut_row": val_cut, "test_cut_row": test_cut}
    return _padded_split(u, it, counts, label, cfg, where, meta)


def _unseen(it: np.ndarray, label: np.ndarray, reference: np.ndarray
            ) -> tuple[np.ndarray, dict[str, int]]:
    """Step 4: bool[n] val/test rows whose item never occurs in the `reference` rows, and how
    many of each part that drops."""
    seen = np.zeros(int(it.max()) + 1, dtype=bool)
    seen[it[reference]] = True
    unseen = (label >= 1) & ~seen[it]
    dropped = {"val": int(np.count_nonzero(unseen & (label == 1))),
               "test": int(np.count_nonzero(unseen & (label == 2)))}
    return unseen, dropped


def _thesis_split(u: np.ndarray, it: np.ndarray, counts: np.ndarray, label: np.ndarray,
                  cfg: DataConfig, where: str, meta: dict) -> Split:
    """Steps 4 to 6 of the thesis protocol on rows grouped by user with their `label`s."""
    user_ids = np.arange(counts.shape[0], dtype=np.int32)
    # Step 4: the items seen in training (or in the uncut train, for one evaluation set).
    fixed_eval = cfg.fixed_eval
    reference = label == 0 if not fixed_eval else label <= 0
    unseen, dropped = _unseen(it, label, reference)

    parts = {}
    kept_per_user = np.zeros_like(counts)
    for code, name in enumerate(PARTS):
        rows = (label == code) & ~unseen
        sizes = np.bincount(u[rows], minlength=counts.shape[0])  # [U] events per user
        kept_per_user += sizes
        starts = _window_starts(sizes, cfg.seq_len)
        if starts.shape[0] == 0:
            raise ValueError(
                f"{where}: the {name} part has no window of seq_len={cfg.seq_len} events (no "
                f"user has that many {name} events); use a smaller DataConfig.seq_len or "
                f"threshold")
        parts[name] = Windows(items=it[rows], users=np.repeat(user_ids, sizes), starts=starts,
                              seq_len=cfg.seq_len)

    train_items = parts["train"].items
    n_items = int((it[reference] if fixed_eval else train_items).max()) + 1
    return Split(
        **parts,
        n_items=n_items,
        n_users=int(np.flatnonzero(kept_per_user)[-1]) + 1,
        item_counts=np.bincount(train_items, minlength=n_items).astype(np.int64),
        dropped_unseen=dropped,
        meta={**meta, "cut_events": int(np.count_nonzero(label < 0))},
    )


# What a part needs under each padded protocol, for the error when it has no window.
_NEEDS = {
    "leave_one_out": {
        "train": "a user with at least 4 events (2 in train)",
        "val": "a user with at least 3 events",
        "test": "a user with at least 2 events",
    },
    "global_time": {
        "train": "a user with 2 events before the validation cut",
        "val": "a user with an event before one of its events between the two cuts",
        "test": "a user with an event before one of its events after the test cut",
    },
}


def _padded_split(u: np.ndarray, it: np.ndarray, counts: np.ndarray, label: np.ndarray,
                  cfg: DataConfig, where: str, meta: dict) -> Split:
    """Steps 4 to 6 with one padded window per target (`_prefix_windows`).

    The unseen val/test events are dropped before the windows are built, so they are neither
    targets nor part of any history: a history skips them, as the thesis' windows span their
    gap. `n_items` and `item_counts` cover every train row (also those of users with one train
    event, which are in no window), so every kept id is below `n_items`.
    """
    reference = label == 0
    if not reference.any():
        raise ValueError(f"{where}: split={cfg.split} leaves no event in train; use a larger "
                         f"chunk (fewer DataConfig.chunks) or a larger train_frac")
    unseen, dropped = _unseen(it, label, reference)
    n_items = int(it[reference].max()) + 1
    keep = ~unseen
    u, it, label = u[keep], it[keep], label[keep]
    counts = np.bincount(u, minlength=counts.shape[0])  # [U] events per user after the drop
    parts = {}
    for code, name in enumerate(PARTS):
        rows, starts, pads = _prefix_windows(u, label, code, counts, cfg.seq_len)
        if starts.shape[0] == 0:
            raise ValueError(f"{where}: the {name} part has no target under "
                             f"split={cfg.split} (it needs {_NEEDS[cfg.split][name]}); use a "
                             f"lower DataConfig.threshold or a larger chunk")
        parts[name] = Windows(items=it[rows], users=u[rows], starts=starts, seq_len=cfg.seq_len,
                              pads=pads, pad_id=n_items)
    return Split(
        **parts,
        n_items=n_items,
        n_users=int(np.flatnonzero(counts)[-1]) + 1,
        item_counts=np.bincount(it[label == 0], minlength=n_items).astype(np.int64),
        dropped_unseen=dropped,
        meta=meta,
    )


# ---------------------------------------------------------------------------------------------
# Cache

def _settings(cfg: DataConfig) -> dict:
    """The data settings as hashed (`seqrec.config.identity`: settings added later leave the
    hash at their as-before values, so earlier cache keys stay what they were)."""
    return identity(cfg)


def split_cache_key(events_key: str, cfg: DataConfig, chunk: int) -> str:
    """Hash of everything that determines a split: the events, the data settings, the chunk."""
    return config_hash({
        "events": events_key,
        "data": _settings(cfg),
        "chunk": int(chunk),
        "protocol_version": PROTOCOL_VERSION,
    })


# What a damaged split file can raise on load: the zip layer (a cut or edited archive; a flipped
# bit in a member's flags or method reads as encryption, RuntimeError, or an unknown compression,
# NotImplementedError), numpy's array headers, the JSON header (bad UTF-8 or JSON is a
# ValueError) and a header field of the wrong type or missing; and ValueError for a checksum or
# key that does not match. Found by the seeded bit flips of tests/test_data_reliability.py.
_DAMAGE = (OSError, ValueError, KeyError, TypeError, EOFError, RuntimeError,
           NotImplementedError, zipfile.BadZipFile)


def load_or_prepare_split(events_key: str, users: np.ndarray, items: np.ndarray,
                          cfg: DataConfig, chunk: int, cache_dir: Path | None) -> Split:
    """`prepare_split`, cached as `cache_dir/split-<key>.npz` (no pickle; see `Split.save`).

    `events_key` identifies the event arrays (e.g. the reader's `Events.key`); the file name is
    `split_cache_key(events_key, cfg, chunk)`, so any changed setting makes a new file. With
    `cache_dir=None` nothing is read or written.

    A cached file is used only when it is whole and its own: its checksum matches its content
    (`Split.load`) and the key it stores (`meta["cache_key"]`, with `meta["events_key"]`) is
    the key it is filed under, so a file copied over another chunk's or setting's name is not
    taken for it. Anything else is rebuilt, with one warning naming the file.
    """
    key = split_cache_key(events_key, cfg, chunk)
    path = None if cache_dir is None else Path(cache_dir) / f"split-{key}.npz"
    if path is not None and path.exists():
        try:
            cached = Split.load(path)
            stored = (cached.meta.get("cache_key"), cached.meta.get("events_key"))
            if stored != (key, events_key):
                raise ValueError(f"it holds the split of key {stored[0]!r}, not {key!r}")
            return cached
        except _DAMAGE as err:
            why = " ".join(str(err).split()) or type(err).__name__
            warnings.warn(f"split cache {path} is unreadable ({why}); rebuilding it",
                          stacklevel=2)
    split = prepare_split(users, items, cfg, chunk)
    split = dataclasses.replace(split, meta={**split.meta, "events_key": events_key,
                                             "cache_key": key})
    if path is not None:
        split.save(path)
    return split

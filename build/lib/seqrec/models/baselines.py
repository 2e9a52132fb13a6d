"""Count baselines every trained model must beat: `pop`, `recent`, `markov`, `item_knn`.

They learn by counting, once (`fit`), with no epochs and no learning rate, and then score like
any other model: `forward(items [B, T], users) -> scores [B, n_items]`, higher = better.

What is counted. The neural models only ever see the events inside the training windows, so the
baselines count exactly those: an event counts if some window contains it, and two consecutive
events form a transition (or lie in one neighbourhood) only if one window holds both. Windows
never cross a user or a part, so neither do the counts; consecutive events of different users
are also never linked, as a second guard. Overlapping windows (stride 1) do not count an event
twice.

Padding (the padded protocols, docs/protocols.md). A padded window's padded slots are no
events, so they are never counted (`training_events` starts each window at its first event),
and when scoring they count for nothing: `recent` and `item_knn` number the positions from the
history's first item, `markov` uses the last input, which is always an item.

Ties. The metrics count ties against the model, so a baseline breaks ties wherever it has a real
order: by training popularity (an item's play count) below its main signal. Equal popularity is
a real tie and stays one. Scores are float64 so that the popularity tie-break survives large
transition counts (float32 would merge `1000 + 0.30001` and `1000 + 0.3`).

Counts live in registered buffers (sparse matrices as CSR triples `crow`, `col`, `val`), so
`.to(device)` and `state_dict` / `load_state_dict` work; scoring gathers CSR rows on the device.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from seqrec.config import ModelConfig
from seqrec.data.windows import Windows
from seqrec.models.base import check_item_ids, check_sizes, pad_counts

SCORE_DTYPE = torch.float64
KNN_WINDOW = 5  # item_knn: items co-occur when at most this many events apart (same user)
KNN_NEIGHBOURS = 100  # item_knn: similarities kept per item (the largest); 0 keeps all


class TrainingEvents(NamedTuple):
    """Which events of a `Windows` the baselines learn from.

    `covered` bool[T]: the event lies inside at least one window.
    `linked` bool[T - 1]: events p and p + 1 lie together inside one window (same user).
    """

    covered: np.ndarray
    linked: np.ndarray


def training_events(w: Windows, n_items: int) -> TrainingEvents:
    """Check `w` against the model's `n_items` and mark its covered events and linked pairs.

    Both masks come from difference arrays over the window starts, O(T + N).
    """
    n, length = int(w.items.shape[0]), int(w.seq_len)
    if len(w) == 0:
        raise ValueError("the training windows are empty (no part is as long as seq_len); "
                         "lower data.seq_len or data.threshold to get windows to fit on")
    if w.users.shape != w.items.shape:
        raise ValueError(f"windows: users has shape {w.users.shape} but items has shape "
                         f"{w.items.shape}; they must be equal")
    first, end = w.first_event(), np.asarray(w.starts, dtype=np.int64) + length
    if w.pads is not None and (w.pads.min() < 0 or w.pads.max() > length - 2):
        raise ValueError(f"windows: pads must lie in [0, {length - 2}] for seq_len {length} (the "
                         f"last input is an event); the split file is inconsistent, rebuild it")
    if first.min() < 0 or end.max() > n:
        raise ValueError(f"windows: starts must lie in [0, {n - length}] for {n} events and "
                         f"seq_len {length} (a padded window's first event in [0, ...]); the "
                         f"split file is inconsistent, rebuild it")
    lo, hi = int(w.items.min()), int(w.items.max())
    if lo < 0 or hi >= n_items:
        raise ValueError(f"training item ids range over [{lo}, {hi}] but the model was built "
                         f"for n_items={n_items}; build it with the split's n_items")
    # Only a window's events count, never its padded slots: window i holds events
    # [first_i, end_i), `first = starts + pads`. An event p is covered by the windows with
    # first <= p < end; a pair (p, p + 1) by those with first <= p <= end - 2. A running sum of
    # +1 at `first` and -1 at the end of the span counts them.
    begin = np.bincount(first, minlength=n + 1)
    covered = np.cumsum(begin - np.bincount(end, minlength=n + 1))[:n] > 0
    pair_depth = np.cumsum(begin - np.bincount(end - 1, minlength=n + 1))[: n - 1]
    linked = (pair_depth > 0) & (w.users[:-1] == w.users[1:])
    return TrainingEvents(covered, linked)


def item_counts(items: np.ndarray, events: TrainingEvents, n_items: int) -> np.ndarray:
    """Plays of each item among the covered events, int64[n_items]."""
    return np.bincount(items[events.covered], minlength=n_items).astype(np.int64)


def transition_counts(items: np.ndarray, events: TrainingEvents, n_items: int) -> sp.csr_matrix:
    """First-order transitions: `C[a, b]` = how often b directly follows a. CSR [n, n]."""
    a, b = items[:-1][events.linked], items[1:][events.linked]
    ones = np.ones(a.shape[0], dtype=np.float64)
    return sp.coo_matrix((ones, (a, b)), shape=(n_items, n_items)).tocsr()  # sums duplicates


def cooccurrence_counts(
    items: np.ndarray, events: TrainingEvents, n_items: int, window: int
) -> sp.csr_matrix:
    """Symmetric co-occurrence `C[a, b]`: pairs of events 1..window apart in one linked run.

    A run is a maximal stretch of linked events (one user's part, inside windows). The same item
    twice within `window` events (a replay) counts on the diagonal, which keeps music's strongest
    signal. CSR [n_items, n_items].
    """
    run = np.concatenate([[0], np.cumsum(~events.linked)])  # [T] run id of each event
    total = sp.csr_matrix((n_items, n_items), dtype=np.float64)
    for d in range(1, min(window, items.shape[0] - 1) + 1):
        same = run[:-d] == run[d:]  # pair (p, p + d) inside one run
        a, b = items[:-d][same], items[d:][same]
        ones = np.ones(a.shape[0], dtype=np.float64)
        pairs = sp.coo_matrix((ones, (a, b)), shape=(n_items, n_items)).tocsr()
        total = total + pairs + pairs.T
    return total.tocsr()


def cosine_similarity(cooc: sp.csr_matrix, counts: np.ndarray) -> sp.csr_matrix:
    """`S[a, b] = C[a, b] / sqrt(n_a n_b)` with n the item play counts.

    Item-to-item cosine as in the item-kNN baseline of Hidasi et al. (ICLR 2016), with
    "sessions" replaced by each event's +-window neighbourhood.
    """
    inv = np.zeros(counts.shape[0], dtype=np.float64)
    seen = counts > 0
    inv[seen] = 1.0 / np.sqrt(counts[seen].astype(np.float64))
    scale = sp.diags(inv)
    return (scale @ cooc @ scale).tocsr()


def keep_top_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The `k` largest entries of each row (ties: lower column first); `k <= 0` keeps all."""
    m = m.tocsr()
    m.sum_duplicates()
    m.eliminate_zeros()
    if k <= 0:
        return m
    n_rows = m.shape[0]
    lengths = np.diff(m.indptr)
    row = np.repeat(np.arange(n_rows), lengths)
    keep = lengths[row] <= k  # short rows stay whole; only the long ones are sorted
    long = np.flatnonzero(~keep)
    # Two stable sorts instead of one lexsort (about twice as fast): by value descending, ties
    # left in CSR order (lower column first), then by row.
    by_value = long[np.argsort(-m.data[long], kind="stable")]
    order = by_value[np.argsort(row[by_value], kind="stable")]
    long_lengths = np.where(lengths > k, lengths, 0)
    first = np.cumsum(long_lengths) - long_lengths  # where each long row begins in `order`
    rank = np.arange(order.shape[0]) - first[row[order]]
    keep[order[rank < k]] = True
    kept_rows = row[keep]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(kept_rows, minlength=n_rows))])
    return sp.csr_matrix((m.data[keep], m.indices[keep], indptr), shape=m.shape)


def add_csr_rows_(
    out: Tensor, crow: Tensor, col: Tensor, val: Tensor, rows: Tensor, weight: Tensor | None = None,
    present: Tensor | None = None,
) -> Tensor:
    """In place `out[b, j] += weight[b] * M[rows[b], j]` for a CSR matrix M; returns `out`.

    out `[B, n_cols]`, crow `[n_rows + 1]`, col and val `[nnz]`, rows `[B]`, weight `[B]` or
    None (1), present bool `[B]` or None (all): rows b with `present[b]` False add nothing (their
    `rows[b]`, e.g. the padding id, is not read). Only the rows' stored entries are touched,
    O(B + their nnz). Each (b, column) is hit at most once per call (CSR columns are unique
    within a row), so the accumulation has no order to race on: the result is deterministic on
    CUDA too.
    """
    if present is not None:
        rows = rows.masked_fill(~present, 0)
    begin = crow[rows]  # [B]
    lengths = crow[rows + 1] - begin  # [B]
    if present is not None:
        lengths = lengths * present
    total = int(lengths.sum())
    if total == 0:
        return out
    batch = torch.repeat_interleave(torch.arange(rows.shape[0], device=rows.device), lengths,
                                    output_size=total)  # [nnz_B] batch row of each entry
    first = torch.cumsum(lengths, 0) - lengths  # [B] where each row's entries begin
    k = torch.arange(total, device=rows.device) - first[batch] + begin[batch]  # [nnz_B]
    contrib = val[k] if weight is None else val[k] * weight[batch]
    out.index_put_((batch, col[k]), contrib.to(out.dtype), accumulate=True)
    return out


class CountBaseline(nn.Module):
    """Shared parts of the count baselines: `fit`, popularity, buffers, the interface.

    Built as `Class(cfg, n_items, n_users)` like every model; `cfg` sets no size here. Subclasses
    implement `_fit(items, events)` and `_scores(items) -> [B, n_items]`.
    """

    kind = "count"
    uses_users = False

    def __init__(self, cfg: ModelConfig, n_items: int, n_users: int) -> None:
        super().__init__()
        check_sizes(n_items, n_users)
        self.n_items = n_items
        self.n_users = n_users
        self.register_buffer("item_counts", torch.zeros(n_items, dtype=torch.int64))
        self._fitted = False

    # -- to implement ------------------------------------------------------------------------
    def _fit(self, items: np.ndarray, events: TrainingEvents) -> None:
        """Count what the subclass needs beyond popularity (default: nothing)."""

    def _scores(self, items: Tensor, pad: Tensor | None = None) -> Tensor:
        """Scores `[B, n_items]` of checked inputs `[B, T]`; `pad [B, T]` marks leading
        padding (None: none). Padded steps count for nothing: a padded window scores as the
        same history without its padding, and a row of padding only as an empty history."""
        raise NotImplementedError

    # -- the interface -------------------------------------------------------------------------
    def fit(self, windows: Windows) -> None:
        """Count the training windows (see the module docstring for what counts). Deterministic."""
        events = training_events(windows, self.n_items)
        items = np.asarray(windows.items, dtype=np.int64)
        self.item_counts = self._buffer(item_counts(items, events, self.n_items))
        self._fit(items, events)
        self._fitted = True

    def popularity(self) -> Tensor:
        """Play counts scaled into [0, 1): `count / (max count + 1)`, float64 `[n_items]`.

        Strictly below 1, so added to an integer-valued signal it only orders equal signals.
        """
        counts = self.item_counts.to(SCORE_DTYPE)
        return counts / (counts.max() + 1.0)

    def forward(self, items: Tensor, users: Tensor | None = None) -> Tensor:
        """Scores for the item after the last position: `[B, T]` -> float64 `[B, n_items]`.

        `users` is ignored (no baseline here is user-based). Leading padding (item id
        `n_items`) counts for nothing (see `_scores`).
        """
        return self._scores(items, self._check(items))

    def forward_all(self, items: Tensor, users: Tensor | None = None) -> Tensor:
        """Scores after every position (each prefix scored alone): `[B, T]` -> `[B, T, n_items]`.

        At a padded position (a prefix of padding only) the scores of an empty history.
        """
        pad = self._check(items)
        prefix = [(items[:, : t + 1], None if pad is None else pad[:, : t + 1])
                  for t in range(items.shape[1])]
        return torch.stack([self._scores(x, p) for x, p in prefix], 1)

    def _check(self, items: Tensor) -> Tensor | None:
        """Check the inputs; return the padding mask `[B, T]`, or None without padding."""
        if not self._fitted:
            raise RuntimeError(f"{type(self).__name__} has not been fitted: call "
                               f"model.fit(split.train) (or load a state dict) before scoring")
        if items.dim() != 2 or items.shape[1] < 1:
            raise ValueError(f"items must be a [batch, time] tensor with time >= 1, got shape "
                             f"{tuple(items.shape)}")
        return check_item_ids(items, self.n_items)

    def _buffer(self, array: np.ndarray) -> Tensor:
        """A numpy array as a tensor on this module's device (to replace a buffer)."""
        return torch.as_tensor(array).to(self.item_counts.device)

    def _set_csr(self, prefix: str, m: sp.csr_matrix) -> None:
        """Store CSR matrix `m` as buffers `{prefix}_crow`, `{prefix}_col` (int64), `_val` (f64)."""
        m = m.tocsr()
        m.sort_indices()
        arrays = {"crow": m.indptr.astype(np.int64), "col": m.indices.astype(np.int64),
                  "val": m.data.astype(np.float64)}
        for name, array in arrays.items():
            setattr(self, f"{prefix}_{name}", self._buffer(array))

    def _register_csr(self, prefix: str) -> None:
        """Empty CSR buffers of an all-zero `[n_items, n_items]` matrix (shapes change on fit)."""
        self.register_buffer(f"{prefix}_crow", torch.zeros(self.n_items + 1, dtype=torch.int64))
        self.register_buffer(f"{prefix}_col", torch.zeros(0, dtype=torch.int64))
        self.register_buffer(f"{prefix}_val", torch.zeros(0, dtype=torch.float64))

    def _csr(self, prefix: str) -> tuple[Tensor, Tensor, Tensor]:
        return (getattr(self, f"{prefix}_crow"), getattr(self, f"{prefix}_col"),
                getattr(self, f"{prefix}_val"))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Fitted buffers have data-dependent sizes (CSR nnz): take the stored shapes and dtypes
        # instead of refusing them, then count the module as fitted.
        for name, buf in self._buffers.items():
            if buf is not None and prefix + name in state_dict:
                stored = state_dict[prefix + name]
                self._buffers[name] = torch.empty(stored.shape, dtype=stored.dtype,
                                                  device=buf.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._fitted = True


class PopBaseline(CountBaseline):
    """Most played items of the training windows first; the same scores for every window.

    Score = play count (equal counts are real ties).
    """

    def _scores(self, items: Tensor, pad: Tensor | None = None) -> Tensor:
        counts = self.item_counts.to(SCORE_DTYPE)
        return counts.expand(items.shape[0], -1).clone()  # [B, n_items], writable


class RecentBaseline(CountBaseline):
    """The window's own items, most recently played first, then every other item by popularity.

    Score of an item last seen at (0-based) position t of the `T` inputs: `t + 1 + pop`; of an
    item not in the window: `pop`, with `pop = popularity()` in [0, 1). Distinct window items
    have distinct last positions, so they never tie; people replay music, so this is strong.
    With leading padding, t counts from the row's first item, and padded steps write into one
    spare column (the padding id's) that is dropped.
    """

    def _scores(self, items: Tensor, pad: Tensor | None = None) -> Tensor:
        batch, steps = items.shape
        pop = self.popularity()
        position = torch.arange(1, steps + 1, dtype=SCORE_DTYPE, device=items.device)
        if pad is not None:
            pop = torch.cat([pop, pop.new_zeros(1)])  # [n_items + 1]: the padding's column
            position = position - pad_counts(pad).unsqueeze(1)  # [B, T] from the first item
        out = pop.expand(batch, -1).clone()  # [B, n_items (+ 1)]
        window = position + pop[items]  # [B, T] score of each input at its position
        # In time order, one column per call: a replayed item ends with its latest position,
        # and no call writes one place twice, so the result is deterministic on CUDA too.
        for t in range(steps):
            out.scatter_(1, items[:, t : t + 1], window[:, t : t + 1])
        return out if pad is None else out[:, :-1].contiguous()


class MarkovBaseline(CountBaseline):
    """First-order Markov chain: how often each item followed the last input item in training.

    Score = transition count from the last item + `popularity()` (in [0, 1)): items are ordered
    by count, and equal counts (notably the never-seen transitions, count 0) by popularity.
    """

    def __init__(self, cfg: ModelConfig, n_items: int, n_users: int) -> None:
        super().__init__(cfg, n_items, n_users)
        self._register_csr("trans")

    def _fit(self, items: np.ndarray, events: TrainingEvents) -> None:
        self._set_csr("trans", transition_counts(items, events, self.n_items))

    def _scores(self, items: Tensor, pad: Tensor | None = None) -> Tensor:
        out = self.popularity().expand(items.shape[0], -1).clone()  # [B, n_items]
        # The last input is an item (padding only precedes items), except in a prefix of
        # padding only (forward_all): no last item, popularity alone.
        present = None if pad is None else ~pad[:, -1]
        return add_csr_rows_(out, *self._csr("trans"), items[:, -1], present=present)


class ItemKNNBaseline(CountBaseline):
    """Item-kNN over a user's recent history (cf. the item-kNN baseline of Hidasi et al. 2016).

    Similarity: cosine over co-occurrence counts (`cosine_similarity`), where two events
    co-occur when at most `window` events apart in one user's training windows; each item keeps
    its `neighbours` most similar items (0: all). Score of candidate j for inputs x_0..x_{T-1}:
        sum_t  (t + 1) / T * S[x_t, j]          (linear recency weight: later inputs count more)
    plus a popularity term scaled below half the smallest possible positive score
    (`min S / T`), so that it orders items of equal score (notably all unrelated items) by
    popularity and never lifts an unrelated item above a related one.
    With leading padding, t and T count the row's items only (T its history length), and padded
    steps add nothing.
    `window` and `neighbours` come from the keywords, else from `cfg.knn_window` /
    `cfg.knn_neighbours` if `ModelConfig` has them, else `KNN_WINDOW` / `KNN_NEIGHBOURS`.
    """

    def __init__(self, cfg: ModelConfig, n_items: int, n_users: int, *,
                 window: int | None = None, neighbours: int | None = None) -> None:
        super().__init__(cfg, n_items, n_users)
        # Keyword, else a `ModelConfig` field of that name should one be added, else the default.
        if window is None:
            window = getattr(cfg, "knn_window", KNN_WINDOW)
        if neighbours is None:
            neighbours = getattr(cfg, "knn_neighbours", KNN_NEIGHBOURS)
        if window < 1:
            raise ValueError(f"item_knn window must be >= 1 event, got {window}")
        self.window = window
        self.neighbours = neighbours
        self._register_csr("sim")
        self.register_buffer("min_similarity", torch.ones((), dtype=torch.float64))

    def _fit(self, items: np.ndarray, events: TrainingEvents) -> None:
        counts = item_counts(items, events, self.n_items)
        cooc = cooccurrence_counts(items, events, self.n_items, self.window)
        sim = keep_top_per_row(cosine_similarity(cooc, counts), self.neighbours)
        self._set_csr("sim", sim)
        self.min_similarity = self._buffer(np.float64(sim.data.min() if sim.nnz else 1.0))

    def _scores(self, items: Tensor, pad: Tensor | None = None) -> Tensor:
        batch, steps = items.shape
        out = torch.zeros(batch, self.n_items, dtype=SCORE_DTYPE, device=items.device)
        csr = self._csr("sim")
        if pad is None:
            for t in range(steps):  # one call per position: a fixed summation order
                weight = torch.full((batch,), (t + 1) / steps, dtype=SCORE_DTYPE,
                                    device=items.device)
                add_csr_rows_(out, *csr, items[:, t], weight)
            return out + self.popularity() * (0.5 * self.min_similarity / steps)
        pads = pad_counts(pad).to(SCORE_DTYPE)  # [B]
        length = (steps - pads).clamp(min=1)  # [B] history length (1 for an empty one)
        for t in range(steps):
            add_csr_rows_(out, *csr, items[:, t], (t + 1 - pads) / length, present=~pad[:, t])
        return out + self.popularity() * (0.5 * self.min_similarity / length).unsqueeze(1)

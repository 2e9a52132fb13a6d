"""Paired inference on per-window ranks: an effect, its 95% interval and p-value, by users.

Two runs of one cell (same data, chunk, split and seed) rank the same test targets, so they are
compared window by window (`seqrec.ranks`); runs that share the users but not the windows
(another window length, another item threshold) are compared user by user. Either way the unit
that is resampled is the user: a user's windows are not independent of one another (the same
taste, overlapping histories), so resampling windows would make the interval too narrow.

The estimate. A *cell* is one contrast `sum_j c_j mean_j` between runs `j` of one chunk and seed
(`c = (1, -1)` for run a against run b; exp 2's curve against its chord has three runs), where
`mean_j` is run j's mean per-window metric (Recall@20 or MRR@20, `RunRanks.per_window`), i.e.
exactly the record's metric. Cells of one `stratum` (one data source and chunk) share their
users; the effect pooled over cells is the mean of the cells' contrasts.

The interval: a two-stage cluster bootstrap (Davison and Hinkley, *Bootstrap Methods and their
Application*, 1997, section 3.8; Field and Welsh, "Bootstrapping clustered data", JRSS B 2007).
Each replicate draws, per stratum, the stratum's users with replacement (one draw shared by all
its cells, so a user's correlated windows in several runs move together; a run's mean is then
the weighted mean of the drawn users' windows), and then the cells themselves with replacement
(each cell is its own training run, so the interval also covers the variation between trainings
and chunks, which resampling test users alone cannot see; with one cell it cannot). Drawing C
cells underestimates the variance of their mean by (C - 1) / C, so the replicates are spread
about the estimate by sqrt(C / (C - 1)); with the few seeds and chunks of a grid this matters. The
interval is the percentile interval of the replicates; the p-value inverts it (Efron and
Tibshirani, *An Introduction to the Bootstrap*, 1993, chapters 13 and 16; bootstrap tests are
what Sakai recommends for IR metrics, "Evaluating evaluation metrics based on the bootstrap",
SIGIR 2006): twice the smaller share of replicates on either side of 0, so that p < 0.05 exactly
when the 95% interval excludes 0. Identical runs give an estimate of 0, every replicate 0 and
p = 1.

Everything is vectorised (one matrix product per stratum); the draws come from
`numpy.random.default_rng(seed)` in a fixed order (per stratum in order of first appearance,
users `integers(0, U, (B, U))`; then, with C > 1 cells, cells `integers(0, C, (B, C))`), so a
result is reproducible and the tests recompute it with a plain loop.

Without ranks (records of an older seqrec) `seed_effect` falls back to the cells' record metrics:
a t-interval and paired t-test over cells.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from seqrec.ranks import RunRanks

N_BOOT = 2000
LEVEL = 0.95
BOOTSTRAP = "user bootstrap"
SEED_LEVEL = "seed-level t (no ranks)"


@dataclass(frozen=True, eq=False)
class Cell:
    """One contrast of one chunk and seed: `sum_j coefs[j] * mean metric of runs[j]`.

    `stratum`: what shares users (data source and chunk); `seed`: the training seed (a label);
    `paired`: the runs must rank the same windows (checked), else they need only share users.
    """

    runs: tuple[RunRanks, ...]
    coefs: tuple[float, ...]
    stratum: Hashable = 0
    seed: int = 0
    paired: bool = True
    label: str = ""

    def __post_init__(self) -> None:
        if len(self.runs) != len(self.coefs) or not self.runs:
            raise ValueError("a cell needs one coefficient per run")
        if self.paired and not all(self.runs[0].same_windows(r) for r in self.runs[1:]):
            raise ValueError(f"the runs of cell {self.label or self.stratum!r} do not rank the "
                             "same windows (same users and targets): they are not runs of one "
                             "cell (same data, chunk, split and seed)")


@dataclass(frozen=True)
class Effect:
    """An effect with its interval: `estimate` in [`low`, `high`] at `level`, `p_value`
    (NaN when there is no test), over `n_cells` cells, `n_users` users (per stratum, summed)
    and `n_windows` windows (of the cells' first runs); `method` says how it was computed."""

    estimate: float
    low: float
    high: float
    p_value: float
    n_cells: int
    n_users: int
    n_windows: int
    method: str
    metric: str = "recall@20"
    level: float = LEVEL

    @property
    def decided(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))


def _no_effect(metric: str, method: str, n_cells: int = 0) -> Effect:
    nan = math.nan
    return Effect(nan, nan, nan, nan, n_cells, 0, 0, method, metric)


def _user_sums(ranks: RunRanks, metric: str, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per user of `users` (sorted ids): the sum of the metric over the run's windows, and
    their count; float64 `[U]` each."""
    where = np.searchsorted(users, ranks.user)
    values = ranks.per_window(metric)
    return (np.bincount(where, weights=values, minlength=len(users)),
            np.bincount(where, minlength=len(users)).astype(np.float64))


def _counts(draws: np.ndarray, size: int) -> np.ndarray:
    """Multiplicities `[B, size]` of the indices drawn per row of `draws` `[B, m]`."""
    b = draws.shape[0]
    flat = (np.arange(b)[:, None] * size + draws).ravel()
    return np.bincount(flat, minlength=b * size).reshape(b, size).astype(np.float64)


def bootstrap_effect(cells: Sequence[Cell], metric: str = "recall@20", n_boot: int = N_BOOT,
                     seed: int = 0, level: float = LEVEL) -> Effect:
    """The pooled effect of `cells` (mean of their contrasts) with its two-stage cluster
    bootstrap interval (users per stratum, then cells) and the p-value that inverts it (module
    docstring). No cells: NaNs."""
    if not cells:
        return _no_effect(metric, BOOTSTRAP)
    rng = np.random.default_rng(seed)
    strata: dict[Hashable, list[int]] = {}
    for i, c in enumerate(cells):
        strata.setdefault(c.stratum, []).append(i)
    total = len(cells)
    point = np.zeros(total)
    per_cell = np.zeros((n_boot, total))  # each cell's contrast in each replicate
    n_users = n_windows = 0
    for idx in strata.values():
        members = [cells[i] for i in idx]
        users = np.unique(np.concatenate([r.user for c in members for r in c.runs]))
        n_users += len(users)
        n_windows += sum(len(c.runs[0]) for c in members)
        # one row per (cell, run): per-user sums and counts  [R, U]; coefficients [R, cells]
        sums, counts = [], []
        coef = np.zeros((sum(len(c.runs) for c in members), len(members)))
        row = 0
        for j, c in enumerate(members):
            for ranks, k in zip(c.runs, c.coefs, strict=True):
                s, n = _user_sums(ranks, metric, users)
                sums.append(s)
                counts.append(n)
                coef[row, j] = k
                row += 1
        sums_m, counts_m = np.array(sums), np.array(counts)
        user_w = _counts(rng.integers(0, len(users), (n_boot, len(users))), len(users))
        with np.errstate(invalid="ignore", divide="ignore"):  # a run without windows: NaN
            point[idx] = (sums_m.sum(1) / counts_m.sum(1)) @ coef
            per_cell[:, idx] = ((user_w @ sums_m.T) / (user_w @ counts_m.T)) @ coef
    # Second stage: the cells (trainings) themselves, drawn with replacement.
    cell_w = (_counts(rng.integers(0, total, (n_boot, total)), total) if total > 1
              else np.ones((n_boot, 1)))
    replicate = (np.where(cell_w > 0, per_cell, 0.0) * cell_w).sum(1) / total
    estimate = float(point.mean())
    if total > 1:
        # Resampling C units underestimates the variance of their mean by (C - 1) / C: with
        # two or three trainings the interval would be too narrow. Spread the replicates about
        # the estimate by sqrt(C / (C - 1)) (Davison and Hinkley 1997, section 3.8).
        replicate = estimate + (replicate - estimate) * math.sqrt(total / (total - 1))
    valid = replicate[np.isfinite(replicate)]
    if len(valid) == 0:
        return Effect(estimate, math.nan, math.nan, math.nan, total, n_users, n_windows,
                      BOOTSTRAP, metric, level)
    tail = (1 - level) / 2
    low, high = np.quantile(valid, [tail, 1 - tail])
    # The level at which the percentile interval would just reach 0: twice the smaller share of
    # replicates on either side of 0 (0 itself counts on both), at most 1. So p < 1 - level
    # exactly when the interval excludes 0 (a relative tolerance absorbs rounding).
    tol = 1e-12 * max(1.0, abs(estimate))
    p = float(min(1.0, 2 * min(np.mean(valid <= tol), np.mean(valid >= -tol))))
    return Effect(estimate, float(low), float(high), p, total, n_users, n_windows, BOOTSTRAP,
                  metric, level)


def paired_difference(a: Sequence[RunRanks], b: Sequence[RunRanks], metric: str = "recall@20",
                      strata: Sequence[Hashable] | None = None,
                      seeds: Sequence[int] | None = None, n_boot: int = N_BOOT, seed: int = 0,
                      level: float = LEVEL) -> Effect:
    """Run a against run b, cell by cell (`a[i]`, `b[i]` rank the same windows, checked):
    the mean per-window difference pooled over cells, its interval and p-value. `strata[i]`
    (default: every cell its own) says which cells share users; `seeds[i]` labels them."""
    if len(a) != len(b):
        raise ValueError(f"paired_difference needs as many runs a as b, got {len(a)} and "
                         f"{len(b)}")
    strata = list(range(len(a))) if strata is None else list(strata)
    seeds = [0] * len(a) if seeds is None else list(seeds)
    cells = [Cell((x, y), (1.0, -1.0), k, s) for x, y, k, s in
             zip(a, b, strata, seeds, strict=True)]
    return bootstrap_effect(cells, metric, n_boot, seed, level)


def seed_effect(contrasts: Sequence[float], metric: str = "recall@20",
                level: float = LEVEL) -> Effect:
    """The fallback without ranks: the cells' contrasts from their records' metrics, their mean
    with a t-interval and the one-sample (= paired) t-test against 0. Fewer than 2 cells: no
    interval. All contrasts equal: a zero-width interval (p = 1 when they are 0, else 0)."""
    x = np.asarray(contrasts, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return _no_effect(metric, SEED_LEVEL)
    mean = float(x.mean())
    if n < 2:
        return Effect(mean, math.nan, math.nan, math.nan, n, 0, 0, SEED_LEVEL, metric, level)
    sd = float(x.std(ddof=1))
    if sd == 0:
        return Effect(mean, mean, mean, 1.0 if mean == 0 else 0.0, n, 0, 0, SEED_LEVEL,
                      metric, level)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    p = float(stats.ttest_1samp(x, 0.0).pvalue)
    return Effect(mean, mean - half, mean + half, p, n, 0, 0, SEED_LEVEL, metric, level)

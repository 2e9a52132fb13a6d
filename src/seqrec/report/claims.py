"""The thesis' conclusions as claims, each with an effect, its interval and a verdict.

A `Claim` is one conclusion of the thesis (docs/protocol.md, "The thesis' conclusions"): its
statement, the experiments it reads, the comparisons that test it (`comparisons(index,
experiments)`: which runs against which, per chunk and seed) and the direction its verdict
looks in (`kind`). The registry of experiments (`seqrec.experiments.CLAIMS`) holds the claims;
this module evaluates them on run records and draws their table and forest plot.

Each comparison is a contrast of runs per cell (`seqrec.report.paired`); its effect on
Recall@20, pooled over chunks and seeds, comes with a 95% interval (a cluster bootstrap over
users and seeds, from the runs' per-window ranks) or, where a run lacks its ranks, the
seed-level fallback (a t-interval over cells; the table says which). The verdict compares the
interval with the margin `MARGIN` (docs/validation.md, "Claims and their verdicts"):

- `no_gain` ("X does not help", claims 1 and 2): *contradicted* when the gain is significant
  (interval above 0) and at least the margin; *supported* when the whole interval lies below
  the margin; else *undecided*.
- `no_loss` ("the cheaper setting costs little", claim 5): the same on the negated effect, and
  contradicted as well when the cheaper setting saves no training time.
- `no_effect` ("no clear relation", claim 4, exp 1, exp 3): contradicted when significant and at
  least the margin in either direction; supported when the interval lies within +-margin.
- `gain` ("less than in proportion", claim 3): supported when significant and at least the
  margin; contradicted when the interval lies below the margin.

A comparison that rests on fewer than `MIN_CELLS` trainings (chunks x seeds) is undecided
whatever its interval: resampling the test users of one training cannot show how much another
training would differ. A claim is contradicted when any of its comparisons is, supported when
all are, else undecided.

Many comparisons, one verdict: a claim read by m comparisons is contradicted when any one of
them is, so with every interval at 95% a claim true everywhere would still be "contradicted" by
chance in up to 1 - 0.95^m of reports (56% for exp 4's 16 comparisons of claim 4). Each
comparison's pooled interval is therefore taken at the Bonferroni level 1 - 0.05 / m and its
p-value multiplied by m (`family_level`), which keeps the chance of a false contradiction of a
claim at 5% at most, whatever the comparisons' dependence (Bonferroni 1936; Dunn 1961). A
supported verdict needs every comparison supported, an intersection-union test that needs no
such correction; the wider intervals only make it more cautious.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from seqrec.models.registry import TWINS, model_label
from seqrec.ranks import RunRanks
from seqrec.record import RunRecord
from seqrec.report.figures import ReportFigure
from seqrec.report.paired import (
    BOOTSTRAP,
    LEVEL,
    Cell,
    Effect,
    bootstrap_effect,
    seed_effect,
)
from seqrec.report.validation import MIN_EFFECT

MARGIN = MIN_EFFECT  # Recall@20: the smallest difference the project calls an effect
METRIC = "recall@20"
VERDICTS = ("supported", "contradicted", "undecided")
KINDS = ("no_gain", "no_loss", "no_effect", "gain")
THIRD_NAMES = ("popular", "semi", "unpopular")
MIN_CELLS = 2  # trainings (chunks x seeds) a comparison needs before it can decide anything
CELL_BOOT = 500  # bootstrap replicates of a single cell's interval (the forest plot's)
TAIL_REPLICATES = 10  # at least this many bootstrap replicates beyond each end of an interval


def family_level(m: int, level: float = LEVEL) -> float:
    """The confidence level of each of a claim's `m` comparisons: Bonferroni's 1 - (1 - level) / m,
    so that all m intervals hold together with probability at least `level`."""
    return 1.0 - (1.0 - level) / max(m, 1)

RanksOf = Callable[[RunRecord], RunRanks | None]


# ---------------------------------------------------------------------------------------------
# What a claim is

@dataclass(frozen=True)
class CellSpec:
    """One cell of a comparison: runs and their coefficients (`sum_j c_j metric_j`), the
    stratum (group and chunk: what shares users), the seed, and whether the runs rank the same
    windows (`paired`) or only the same users."""

    runs: tuple[RunRecord, ...]
    coefs: tuple[float, ...]
    stratum: tuple
    seed: int
    paired: bool
    label: str


@dataclass(frozen=True)
class Comparison:
    """One tested contrast of a claim, pooled over its cells. `third`: restrict every run to
    the windows whose target is in that popularity third (0 popular .. 2 unpopular)."""

    experiment: str
    label: str
    cells: tuple[CellSpec, ...]
    third: int | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)  # e.g. {"time_ratio": ...} for claim 5


Comparisons = Callable[["RunIndex", tuple[str, ...]], list[Comparison]]


@dataclass(frozen=True)
class Claim:
    """A conclusion of the thesis, tested on runs (module docstring). `key` is its short name
    ("1" .. "5", "exp1", "exp3"), `reads` the experiments of the registry it reads."""

    key: str
    title: str
    statement: str
    reads: tuple[str, ...]
    kind: str
    comparisons: Comparisons

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.key}: kind must be one of {KINDS}, got {self.kind!r}")


# ---------------------------------------------------------------------------------------------
# Finding the runs

class RunIndex:
    """The finished runs of some records by (experiment, group, chunk, seed, value, model)."""

    def __init__(self, records: list[RunRecord]) -> None:
        self.by_key: dict[tuple, RunRecord] = {}
        for r in records:
            if r.ok:
                s = r.spec
                self.by_key[(s.experiment, s.group, s.chunk, s.seed, _value(s.value), s.model)] = r

    def experiments(self) -> set[str]:
        return {k[0] for k in self.by_key}

    def groups(self, experiment: str) -> list[str]:
        return sorted({k[1] for k in self.by_key if k[0] == experiment})

    def models(self, experiment: str, group: str) -> set[str]:
        return {k[5] for k in self.by_key if k[:2] == (experiment, group)}

    def values(self, experiment: str, group: str, model: str | None = None) -> list:
        return sorted({k[4] for k in self.by_key if k[:2] == (experiment, group)
                       and (model is None or k[5] == model)}, key=_order)

    def cells(self, experiment: str, group: str) -> list[tuple[int, int]]:
        return sorted({(k[2], k[3]) for k in self.by_key if k[:2] == (experiment, group)})

    def get(self, experiment: str, group: str, chunk: int, seed: int, value: Any,
            model: str) -> RunRecord | None:
        return self.by_key.get((experiment, group, chunk, seed, value, model))


def _value(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _order(v: Any) -> tuple:
    return (0, float(v), "") if isinstance(v, (int, float)) and not isinstance(v, bool) \
        else (1, 0.0, str(v))


def _text(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _axis(index: RunIndex, experiment: str, group: str) -> str:
    some = next(r for k, r in index.by_key.items() if k[:2] == (experiment, group))
    return some.spec.axis


def _pairs(index: RunIndex, exp: str, group: str, a: tuple[Any, str], b: tuple[Any, str],
           paired: bool) -> tuple[CellSpec, ...]:
    """Cells of run a = (value, model) against run b, over every (chunk, seed) with both."""
    out = []
    for chunk, seed in index.cells(exp, group):
        ra, rb = index.get(exp, group, chunk, seed, *a), index.get(exp, group, chunk, seed, *b)
        if ra is not None and rb is not None:
            out.append(CellSpec((ra, rb), (1.0, -1.0), (exp, group, chunk), seed, paired,
                                f"chunk {chunk}, seed {seed}"))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# The comparisons of each claim (used by the registry's claims)

def twin_gains(index: RunIndex, experiments: tuple[str, ...]) -> list[Comparison]:
    """Each user-based model against its vanilla twin at every axis value (claim 1)."""
    out = []
    for exp in experiments:
        for group in index.groups(exp):
            models, axis = index.models(exp, group), _axis(index, exp, group)
            for vanilla, user in TWINS:
                if not {vanilla, user} <= models:
                    continue
                for v in index.values(exp, group, user):
                    cells = _pairs(index, exp, group, (v, user), (v, vanilla), paired=True)
                    if cells:
                        out.append(Comparison(exp, f"{model_label(user)} - {model_label(vanilla)}"
                                              f", {axis}={_text(v)}", cells))
    return out


def _extremes(index: RunIndex, exp: str, group: str, model: str) -> tuple[Any, Any] | None:
    values = [v for v in index.values(exp, group, model) if isinstance(v, (int, float))]
    return (values[0], values[-1]) if len(values) >= 2 else None


def long_range_gains(index: RunIndex, experiments: tuple[str, ...]) -> list[Comparison]:
    """The DNCs against their GRUs at every window length, and every model's longest window
    against its shortest (claim 2: long-term dependencies help?)."""
    out = []
    for exp in experiments:
        for group in index.groups(exp):
            models, axis = index.models(exp, group), _axis(index, exp, group)
            for dnc, gru in (("dnc", "gru"), ("user_dnc", "user_gru")):
                if {dnc, gru} <= models:
                    for v in index.values(exp, group, dnc):
                        cells = _pairs(index, exp, group, (v, dnc), (v, gru), paired=True)
                        if cells:
                            out.append(Comparison(exp, f"{model_label(dnc)} - "
                                                       f"{model_label(gru)}, {axis}={_text(v)}",
                                                  cells))
            for model in sorted(models):
                ends = _extremes(index, exp, group, model)
                if ends is None or model not in {m for pair in TWINS for m in pair}:
                    continue
                lo, hi = ends
                cells = _pairs(index, exp, group, (hi, model), (lo, model), paired=False)
                if cells:
                    out.append(Comparison(exp, f"{model_label(model)}, {axis}={_text(hi)} - "
                                               f"{axis}={_text(lo)}", cells))
    return out


def length_relation(index: RunIndex, experiments: tuple[str, ...]) -> list[Comparison]:
    """Every neural model's longest window against its shortest, overall and per popularity
    third (claim 4)."""
    out = []
    for exp in experiments:
        for group in index.groups(exp):
            axis = _axis(index, exp, group)
            for model in sorted(index.models(exp, group)):
                ends = _extremes(index, exp, group, model)
                if ends is None or model not in {m for pair in TWINS for m in pair}:
                    continue
                lo, hi = ends
                cells = _pairs(index, exp, group, (hi, model), (lo, model), paired=False)
                for third in (None, 0, 1, 2):
                    where = "overall" if third is None else THIRD_NAMES[third]
                    if cells:
                        out.append(Comparison(exp, f"{model_label(model)}, {axis}={_text(hi)} -"
                                                   f" {axis}={_text(lo)}, {where}", cells,
                                              third=third))
    return out


def _train_size(r: RunRecord) -> float:
    windows = (r.split or {}).get("windows") or {}
    return float(windows.get("train") or math.nan)


def recency_curve(index: RunIndex, experiments: tuple[str, ...]) -> list[Comparison]:
    """Exp 2's Recall@20 against its training size, minus a straight line (claim 3): the chord
    through the curve's ends when there are three sizes or more (the mean gap at the inner
    sizes), else, with two sizes, the line through no data (Recall 0) and the largest size
    (what Recall would be if it fell in proportion to the data)."""
    out = []
    for exp in experiments:
        for group in index.groups(exp):
            for model in sorted(index.models(exp, group)):
                if model not in {m for pair in TWINS for m in pair}:
                    continue
                values = index.values(exp, group, model)
                if len(values) < 2:
                    continue
                cells = []
                for chunk, seed in index.cells(exp, group):
                    runs = [index.get(exp, group, chunk, seed, v, model) for v in values]
                    if any(r is None for r in runs):
                        continue
                    runs.sort(key=_train_size)
                    x = np.array([_train_size(r) for r in runs])
                    coefs = np.zeros(len(runs))
                    if len(runs) >= 3:
                        t = (x[1:-1] - x[0]) / (x[-1] - x[0])
                        coefs[1:-1] = 1 / len(t)
                        coefs[0] = -np.sum(1 - t) / len(t)
                        coefs[-1] = -np.sum(t) / len(t)
                    else:
                        coefs[:-1] = 1 / (len(runs) - 1)
                        coefs[-1] = -np.sum(x[:-1] / x[-1]) / (len(runs) - 1)
                    cells.append(CellSpec(tuple(runs), tuple(coefs), (exp, group, chunk), seed,
                                          False, f"chunk {chunk}, seed {seed}"))
                if cells:
                    line = "chord through the ends" if len(values) >= 3 else \
                        "proportional line (two sizes only)"
                    out.append(Comparison(exp, f"{model_label(model)}: curve - {line}",
                                          tuple(cells)))
    return out


def _train_seconds(r: RunRecord) -> float:
    return float(sum(h.get("seconds") or 0.0 for h in r.history or []))


def cheap_settings(index: RunIndex, experiments: tuple[str, ...]) -> list[Comparison]:
    """The cheapest setting against the most expensive one per model (claim 5): exp 2's
    smallest training set against its largest, exp 4's shortest window against its longest;
    with the training time they save (`extra["time_ratio"]`, cheap / expensive)."""
    out = []
    for exp in experiments:
        for group in index.groups(exp):
            axis = _axis(index, exp, group)
            for model in sorted(index.models(exp, group)):
                if model not in {m for pair in TWINS for m in pair}:
                    continue
                values = index.values(exp, group, model)
                if len(values) < 2:
                    continue
                if axis == "seq_len":
                    cheap, full = values[0], values[-1]
                else:  # a training-set axis: the fewest training windows is the cheapest
                    some = index.cells(exp, group)[0]
                    sizes = {v: _train_size(r) for v in values
                             if (r := index.get(exp, group, *some, v, model)) is not None}
                    if len(sizes) < 2:
                        continue
                    cheap, full = min(sizes, key=sizes.get), max(sizes, key=sizes.get)
                cells = _pairs(index, exp, group, (cheap, model), (full, model), paired=False)
                if not cells:
                    continue
                ratio = (np.mean([_train_seconds(c.runs[0]) for c in cells])
                         / max(np.mean([_train_seconds(c.runs[1]) for c in cells]), 1e-12))
                out.append(Comparison(exp, f"{model_label(model)}, {axis}={_text(cheap)} - "
                                           f"{axis}={_text(full)}", cells,
                                      extra={"time_ratio": float(ratio)}))
    return out


def threshold_twin_gain(index: RunIndex, experiments: tuple[str, ...]) -> list[Comparison]:
    """What the user adds to its vanilla twin under the lowest threshold minus under the
    highest (exp 1: does the preprocessing change the user's contribution?)."""
    out = []
    for exp in experiments:
        for group in index.groups(exp):
            models, axis = index.models(exp, group), _axis(index, exp, group)
            for vanilla, user in TWINS:
                ends = _extremes(index, exp, group, user) if {vanilla, user} <= models else None
                if ends is None:
                    continue
                lo, hi = ends
                cells = []
                for chunk, seed in index.cells(exp, group):
                    runs = [index.get(exp, group, chunk, seed, v, m)
                            for v, m in ((lo, user), (lo, vanilla), (hi, user), (hi, vanilla))]
                    if all(r is not None for r in runs):
                        cells.append(CellSpec(tuple(runs), (1.0, -1.0, -1.0, 1.0),
                                              (exp, group, chunk), seed, False,
                                              f"chunk {chunk}, seed {seed}"))
                if cells:
                    out.append(Comparison(
                        exp, f"({model_label(user)} - {model_label(vanilla)}) at {axis}="
                             f"{_text(lo)} minus at {axis}={_text(hi)}", tuple(cells)))
    return out


def embedding_effect(index: RunIndex, experiments: tuple[str, ...]) -> list[Comparison]:
    """Each model's largest embedding against its smallest (one-hot, -1, left out; exp 3)."""
    out = []
    for exp in experiments:
        for group in index.groups(exp):
            axis = _axis(index, exp, group)
            for model in sorted(index.models(exp, group)):
                sizes = [v for v in index.values(exp, group, model)
                         if isinstance(v, (int, float)) and v > 0]
                if len(sizes) < 2:
                    continue
                cells = _pairs(index, exp, group, (sizes[-1], model), (sizes[0], model),
                               paired=True)
                if cells:
                    out.append(Comparison(exp, f"{model_label(model)}, {axis}="
                                               f"{_text(sizes[-1])} - {axis}={_text(sizes[0])}",
                                          cells))
    return out


# ---------------------------------------------------------------------------------------------
# Effects and verdicts

def _restricted(ranks: RunRanks, third: int | None) -> RunRanks:
    if third is None:
        return ranks
    keep = ranks.third == third
    return RunRanks(ranks.twice_rank[keep], ranks.user[keep], ranks.target[keep],
                    ranks.third[keep], ranks.ties)


def _record_metric(r: RunRecord, third: int | None) -> float:
    source = r.metrics if third is None else (r.metrics_by_popularity or {}).get(
        THIRD_NAMES[third]) or {}
    value = source.get(METRIC)
    return float(value) if isinstance(value, (int, float)) else math.nan


def comparison_effect(comp: Comparison, ranks_of: RanksOf, n_boot: int = 2000,
                      seed: int = 0, level: float = LEVEL) -> tuple[Effect, list[Effect]]:
    """The pooled effect of a comparison at `level` and each cell's own (at `LEVEL`, for the
    forest plot): from the runs' ranks when every run has them (user bootstrap), else from their
    records (seed-level). Past 95%, the replicates grow so that at least `TAIL_REPLICATES` lie
    beyond each end of the interval."""
    n_boot = max(n_boot, math.ceil(2 * TAIL_REPLICATES / (1.0 - level)))
    ranks = [[ranks_of(r) for r in c.runs] for c in comp.cells]
    if all(x is not None for rs in ranks for x in rs):
        cells = []
        for c, rs in zip(comp.cells, ranks, strict=True):
            rs = [_restricted(x, comp.third) for x in rs]
            # a restriction to a third leaves other windows in each run: pair by users then
            paired = c.paired and comp.third is None and all(
                rs[0].same_windows(x) for x in rs[1:])  # else (other data): by users
            cells.append(Cell(tuple(rs), c.coefs, c.stratum, c.seed, paired, c.label))
        pooled = bootstrap_effect(cells, METRIC, n_boot, seed, level)
        each = [bootstrap_effect([c], METRIC, CELL_BOOT, seed) for c in cells]
        return pooled, each
    values = [sum(k * _record_metric(r, comp.third) for r, k in zip(c.runs, c.coefs,
                                                                    strict=True))
              for c in comp.cells]
    return seed_effect(values, METRIC, level), [seed_effect([v], METRIC) for v in values]


def settled(effect: Effect) -> bool:
    """Whether an effect can decide a verdict: it has an interval and rests on at least
    `MIN_CELLS` trainings (one training's interval covers the test users, not the training)."""
    return effect.decided and effect.n_cells >= MIN_CELLS


def verdict(effect: Effect, kind: str, margin: float = MARGIN) -> str:
    """Supported, contradicted or undecided (module docstring) for one effect."""
    if not settled(effect):
        return "undecided"
    est, low, high = effect.estimate, effect.low, effect.high
    if kind == "no_loss":
        est, low, high = -est, -high, -low
        kind = "no_gain"
    if kind == "no_gain":
        if low > 0 and est >= margin:
            return "contradicted"
        return "supported" if high < margin else "undecided"
    if kind == "no_effect":
        if (low > 0 or high < 0) and abs(est) >= margin:
            return "contradicted"
        return "supported" if -margin < low and high < margin else "undecided"
    if low > 0 and est >= margin:  # gain
        return "supported"
    return "contradicted" if high < margin else "undecided"


@dataclass(frozen=True)
class ComparisonResult:
    claim: str
    comparison: Comparison
    effect: Effect
    cells: tuple[Effect, ...]
    verdict: str


@dataclass(frozen=True)
class ClaimResult:
    """A claim on some runs: its comparisons with their effects, and the claim's verdict."""

    claim: Claim
    results: tuple[ComparisonResult, ...]
    verdict: str
    deciding: ComparisonResult | None
    sentence: str

    @property
    def fallback(self) -> bool:
        return any(r.effect.method != BOOTSTRAP for r in self.results)


def _deciding(results: list[ComparisonResult], kind: str) -> ComparisonResult | None:
    """The comparison the table shows: the strongest contradiction, else the least settled
    undecided one, else the supported one nearest its margin."""
    if not results:
        return None
    sign = -1.0 if kind == "no_loss" else 1.0

    def strength(r: ComparisonResult) -> float:
        e = r.effect
        return abs(e.estimate) if kind in ("no_effect",) else sign * e.estimate

    for wanted in ("contradicted", "undecided", "supported"):
        mine = [r for r in results if r.verdict == wanted]
        if mine:
            if wanted == "contradicted":
                return max(mine, key=strength)
            if wanted == "undecided":
                return max(mine, key=lambda r: (r.effect.decided, r.effect.high - r.effect.low
                                                if r.effect.decided else 0.0))
            if kind == "gain":
                return min(mine, key=lambda r: r.effect.low)
            return max(mine, key=lambda r: max(abs(r.effect.low), abs(r.effect.high)))
    return None


def _interval(e: Effect) -> str:
    if not e.decided:
        return "no interval"
    return f"{_percent(e.level)} interval {e.low:+.4f} to {e.high:+.4f}"


def _percent(level: float) -> str:
    """95% or 99.69%: a level as a percentage with the digits it needs."""
    text = f"{100 * level:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _sentence(claim: Claim, results: list[ComparisonResult], decided: str,
              deciding: ComparisonResult | None) -> str:
    """One plain sentence on the verdict and the comparison behind it."""
    if deciding is None:
        return (f"Undecided: the runs of {', '.join(claim.reads)} here hold nothing to compare "
                f"(too few models, settings, chunks or seeds).")
    e, label = deciding.effect, deciding.comparison.label
    n = len(results)
    cells = f"{e.n_cells} cell" + ("" if e.n_cells == 1 else "s")
    what = f"{label}: {e.estimate:+.4f} Recall@20 ({_interval(e)}, {cells})"
    if not settled(e):
        return (f"Undecided: {what}; it rests on one training per setting, so its interval "
                f"cannot cover the variation between trainings (run more seeds or chunks).")
    extra = deciding.comparison.extra
    time_text = (f"; it takes {extra['time_ratio']:.0%} of the training time"
                 if "time_ratio" in extra else "")
    m = f"{MARGIN:g}"
    texts = {
        ("no_gain", "supported"): f"Supported: in all {n} comparisons the gain stays below "
                                  f"{m} Recall@20; the largest is {what}.",
        ("no_gain", "contradicted"): f"Contradicted: {what} is a gain of at least {m}.",
        ("no_gain", "undecided"): f"Undecided: {what} can neither rule out a gain of {m} nor "
                                  f"show one.",
        ("no_loss", "supported"): f"Supported: in all {n} comparisons the cheaper setting loses "
                                  f"less than {m} Recall@20; e.g. {what}{time_text}.",
        ("no_loss", "contradicted"): f"Contradicted: {what}{time_text}: "
                                     + ("it saves no training time." if extra.get(
                                         "time_ratio", 0) >= 1 and e.estimate > -MARGIN
                                        else f"a loss of at least {m}."),
        ("no_loss", "undecided"): f"Undecided: {what}{time_text}; a loss of {m} is neither "
                                  f"ruled out nor shown.",
        ("no_effect", "supported"): f"Supported: in all {n} comparisons the difference lies "
                                    f"within +-{m} Recall@20; the widest is {what}.",
        ("no_effect", "contradicted"): f"Contradicted: {what} is a difference of at least {m}.",
        ("no_effect", "undecided"): f"Undecided: {what} can neither rule out a difference of "
                                    f"{m} nor show one.",
        ("gain", "supported"): f"Supported: {what} lies above the line by at least {m}.",
        ("gain", "contradicted"): f"Contradicted: {what}: the curve is not above the line by "
                                  f"{m}.",
        ("gain", "undecided"): f"Undecided: {what} can neither show nor rule out a curve above "
                               f"the line by {m}.",
    }
    return texts[(claim.kind, decided)]


def evaluate_claim(claim: Claim, records: list[RunRecord], ranks_of: RanksOf,
                   reads: tuple[str, ...] | None = None, n_boot: int = 2000,
                   seed: int = 0) -> ClaimResult:
    """A claim on `records` (the experiments `reads`, default the claim's own)."""
    index = RunIndex(records)
    comps = claim.comparisons(index, reads or claim.reads)
    level = family_level(len(comps))  # module docstring, "Many comparisons, one verdict"
    results = []
    for comp in comps:
        effect, cells = comparison_effect(comp, ranks_of, n_boot, seed, level)
        if math.isfinite(effect.p_value):  # Bonferroni: the p-value of the family
            effect = replace(effect, p_value=min(1.0, effect.p_value * len(comps)))
        v = verdict(effect, claim.kind)
        if (claim.kind == "no_loss" and comp.extra.get("time_ratio", 0.0) >= 1.0
                and settled(effect)):
            v = "contradicted"  # the cheaper setting saved no training time
        results.append(ComparisonResult(claim.key, comp, effect, tuple(cells), v))
    verdicts = {r.verdict for r in results}
    decided = ("undecided" if not results else "contradicted" if "contradicted" in verdicts
               else "supported" if verdicts == {"supported"} else "undecided")
    deciding = _deciding(results, claim.kind)
    return ClaimResult(claim, tuple(results), decided, deciding,
                       _sentence(claim, results, decided, deciding))


def evaluate_claims(claims: tuple[Claim, ...], records: list[RunRecord], ranks_of: RanksOf
                    ) -> list[ClaimResult]:
    """Every claim whose experiments occur in `records`."""
    present = {r.experiment for r in records if r.ok}
    return [evaluate_claim(c, records, ranks_of) for c in claims if set(c.reads) & present]


# ---------------------------------------------------------------------------------------------
# Tables and the forest plot

CLAIM_COLUMNS = ["Claim", "Statement", "Runs read", "Effect (Recall@20)", "Low", "High", "p",
                 "Method", "Verdict", "Sentence"]
DETAIL_COLUMNS = ["Claim", "Experiment", "Comparison", "Cells", "Effect (Recall@20)", "Low",
                  "High", "p", "Method", "Verdict"]


def _runs_read(result: ClaimResult) -> str:
    n = {r.run_id for c in result.results for cell in c.comparison.cells for r in cell.runs}
    exps = sorted({c.comparison.experiment for c in result.results}) or list(result.claim.reads)
    return f"{', '.join(exps)} ({len(n)} runs)"


def claims_frame(results: list[ClaimResult]) -> pd.DataFrame:
    """One row per claim (columns `CLAIM_COLUMNS`): the deciding comparison's effect."""
    rows = []
    for res in results:
        e = res.deciding.effect if res.deciding is not None else None
        nan = math.nan
        rows.append([res.claim.key, res.claim.statement, _runs_read(res),
                     e.estimate if e else nan, e.low if e else nan, e.high if e else nan,
                     e.p_value if e else nan, e.method if e else "-", res.verdict,
                     res.sentence])
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def details_frame(results: list[ClaimResult]) -> pd.DataFrame:
    """One row per comparison of every claim (columns `DETAIL_COLUMNS`)."""
    rows = [[res.claim.key, c.comparison.experiment, c.comparison.label, c.effect.n_cells,
             c.effect.estimate, c.effect.low, c.effect.high, c.effect.p_value, c.effect.method,
             c.verdict] for res in results for c in res.results]
    return pd.DataFrame(rows, columns=DETAIL_COLUMNS)


VERDICT_COLOURS = {"supported": "C2", "contradicted": "C3", "undecided": "0.45"}


def figure_claims(results: list[ClaimResult], margin: float = MARGIN,
                  titles: list[str] | None = None) -> Figure:
    """Forest plot: one panel per claim, one line per comparison; each cell's effect and
    interval (small, grey) above the pooled one (large, coloured by its verdict); the dashed
    lines are 0 and +-margin. Effects in Recall@20."""
    named = list(zip(results, titles or [f"Claim {r.claim.key}: {r.claim.title}"
                                         for r in results], strict=True))
    shown = [r for r in results if r.results]
    heads = [t for r, t in named if r.results]
    heights = [max(len(r.results), 1) for r in shown]
    total = sum(heights)
    fig = ReportFigure(figsize=(9.5, 1.2 + 0.32 * total + 0.55 * len(shown)))
    if not shown:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no claims to test yet", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    axes = fig.subplots(len(shown), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": heights})[:, 0]
    fig.subplots_adjust(left=0.42, right=0.97, top=1 - 0.5 / fig.get_figheight(),
                        bottom=0.7 / fig.get_figheight(), hspace=0.55)
    for ax, res, head in zip(axes, shown, heads, strict=True):
        labels = []
        for y, c in enumerate(res.results):
            n = len(c.cells)
            for j, cell in enumerate(c.cells):
                dy = 0.3 * ((j + 1) / (n + 1) - 0.5) - 0.12
                if cell.decided:
                    ax.plot([cell.low, cell.high], [y + dy] * 2, color="0.7", lw=0.8)
                ax.plot(cell.estimate, y + dy, "o", color="0.6", ms=2.5)
            colour = VERDICT_COLOURS[c.verdict]
            if c.effect.decided:
                ax.plot([c.effect.low, c.effect.high], [y + 0.2] * 2, color=colour, lw=2.2)
            ax.plot(c.effect.estimate, y + 0.2, "D", color=colour, ms=5)
            labels.append(c.comparison.label if len(c.comparison.label) < 58
                          else c.comparison.label[:56] + "..")
        for x in (-margin, margin):
            ax.axvline(x, color="0.5", ls=":", lw=0.8)
        ax.axvline(0, color="0.3", ls="--", lw=0.8)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=7)
        ax.set_ylim(len(labels) - 0.4, -0.6)
        ax.set_title(f"{head} -- {res.verdict}", fontsize=9, loc="left",
                     color=VERDICT_COLOURS[res.verdict])
        ax.grid(axis="x", alpha=0.3)
    # The pooled intervals set the scale; a single cell's wide interval is cut at the edge.
    ends = [x for r in shown for c in r.results if c.effect.decided
            for x in (c.effect.low, c.effect.high)]
    ends += [r.effect.estimate for res in shown for r in res.results
             if math.isfinite(r.effect.estimate)]
    lo, hi = min([-margin, *ends]), max([margin, *ends])
    pad = 0.15 * (hi - lo)
    axes[-1].set_xlim(lo - pad, hi + pad)
    axes[-1].set_xlabel(f"Effect on Recall@20: pooled (diamond, thick line: interval at the "
                        f"claim's Bonferroni level)\nand per cell (grey, 95%); dotted: "
                        f"+-{margin:g}", fontsize=8)
    return fig

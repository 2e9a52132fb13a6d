"""Paired significance tests between twin models run on the same chunks and seeds.

The user-based models and their vanilla twins (gru vs user_gru, dnc vs user_dnc) are trained on
the same (chunk, seed) splits, so their results pair up; a paired test removes the variation
between chunks, which is far larger than the difference between the models.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from seqrec.models.registry import TWINS
from seqrec.report.records import runs_frame

# The Wilcoxon signed-rank test needs no normality assumption, but with n pairs its smallest
# possible two-sided p-value is 2 / 2**n: 0.0625 for n = 5, so below 6 pairs it can never reach
# the 5% level however large the difference. Below 6 pairs we use the paired t-test instead.
MIN_WILCOXON_PAIRS = 6
ALPHA = 0.05


class PairedTest(NamedTuple):
    """Result of comparing model `a` against model `b` on `n` paired results of one metric."""

    a: str
    b: str
    metric: str
    n: int
    mean_diff: float  # mean of (a - b); NaN when n == 0
    p_value: float  # NaN when the test cannot be run (too few pairs)
    test: str  # "Wilcoxon" | "paired t-test" | "none"
    sentence: str


def paired_test(a_values: np.ndarray, b_values: np.ndarray, a: str, b: str,
                metric: str, higher_is_better: bool = True) -> PairedTest:
    """Test whether model `a` differs from model `b` on paired results `[n]`.

    Wilcoxon signed-rank (`scipy.stats.wilcoxon`, two-sided) for n >= `MIN_WILCOXON_PAIRS`,
    else the paired t-test (`scipy.stats.ttest_rel`, two-sided); n < 2 gives no test. The
    sentence reads like "user_gru beats gru on recall@20 by 0.012 (p = 0.03, Wilcoxon,
    10 pairs): the difference holds at the 5% level". For a loss (`higher_is_better=False`)
    `a` beats `b` when its values are lower; `mean_diff` is always the mean of (a - b).
    """
    x = np.asarray(a_values, dtype=float)
    y = np.asarray(b_values, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired results must be two equal-length lists, got shapes "
                         f"{x.shape} and {y.shape}")
    n = len(x)
    diff = x - y
    mean = float(diff.mean()) if n else math.nan
    if n < 2:
        return PairedTest(a, b, metric, n, mean, math.nan, "none",
                          f"{a} vs {b} on {metric}: too few pairs ({n}) for a test")
    if np.all(diff == 0):
        # Both tests are undefined for identical results; there is no difference to test.
        p, test = 1.0, ("Wilcoxon" if n >= MIN_WILCOXON_PAIRS else "paired t-test")
    elif n >= MIN_WILCOXON_PAIRS:
        p, test = float(stats.wilcoxon(x, y, alternative="two-sided").pvalue), "Wilcoxon"
    elif np.allclose(diff, diff[0], rtol=1e-9, atol=1e-12):
        # Every pair differs by the same amount: zero variance, t is infinite, p is 0 (scipy
        # would warn about catastrophic cancellation and may return noise instead).
        p, test = 0.0, "paired t-test"
    else:
        p, test = float(stats.ttest_rel(x, y, alternative="two-sided").pvalue), "paired t-test"
    better = mean if higher_is_better else -mean
    verb = "beats" if better > 0 else ("trails" if better < 0 else "ties with")
    direction = "" if higher_is_better else " (lower is better)"
    p_text = "p undefined" if math.isnan(p) else f"p = {p:.3g}"
    holds = (not math.isnan(p)) and p < ALPHA and mean != 0
    verdict = "holds" if holds else "does not hold"
    sentence = (f"{a} {verb} {b} on {metric}{direction} by {abs(mean):.3g} "
                f"({p_text}, {test}, {n} pairs): "
                f"the difference {verdict} at the {ALPHA:.0%} level")
    return PairedTest(a, b, metric, n, mean, p, test, sentence)


def _pairs(runs: pd.DataFrame, a: str, b: str, metric: str,
           keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Values of `metric` for models `a` and `b` joined on `keys` (rows with both present)."""
    if metric not in runs.columns:
        return np.zeros(0), np.zeros(0)

    def side(model: str) -> pd.DataFrame:
        part = runs.loc[runs["model"] == model, [*keys, metric]].dropna()
        # Duplicate keys (a rerun) would multiply pairs; keep the last record of each.
        return part.drop_duplicates(subset=keys, keep="last")

    both = side(a).merge(side(b), on=keys, suffixes=("_a", "_b"))
    return both[f"{metric}_a"].to_numpy(float), both[f"{metric}_b"].to_numpy(float)


def twin_comparisons(records: list, experiment: str,
                     metrics: tuple[str, ...] = ("recall@20", "recall@1"),
                     higher_is_better: bool = True) -> tuple[list[str], pd.DataFrame]:
    """An experiment's tested comparisons for the report: the pooled conclusions (setting
    "all") as sentences, and every test as a table (`twin_tests` without its sentences)."""
    tests = twin_tests(records, experiment, metrics, higher_is_better)
    pooled = tests[tests["Setting"] == "all"]
    sentences = [f"{g}: {s}" for g, s in zip(pooled["Group"], pooled["Conclusion"],
                                             strict=True)]
    return sentences, tests.drop(columns=["Conclusion"]).rename(columns={"p": "p-value"})


def twin_tests(records: list, experiment: str,
               metrics: tuple[str, ...] = ("recall@20", "recall@1"),
               higher_is_better: bool = True) -> pd.DataFrame:
    """Paired tests of each user-based model against its vanilla twin in one experiment.

    One row per (group, setting, twin pair, metric), pairing runs over (chunk, seed); plus, where
    the experiment varies a setting (exp 2 to 4), a row "all" pairing over (value, chunk, seed).
    Columns: Group, Setting, Comparison, Metric, Pairs, Mean difference, p, Test, Conclusion.
    """
    columns = ["Group", "Setting", "Comparison", "Metric", "Pairs", "Mean difference", "p",
               "Test", "Conclusion"]
    runs = runs_frame(records)
    if runs.empty:
        return pd.DataFrame(columns=columns)
    runs = runs[runs["experiment"] == experiment]
    rows = []
    for group in sorted(runs["group"].dropna().unique(), key=str):
        part = runs[runs["group"] == group]
        values = sorted(part["value"].dropna().unique(), key=_sort_key)
        settings: list[tuple[str, pd.DataFrame, list[str]]] = []
        if len(values) > 1:
            settings += [(_setting_text(v), part[part["value"] == v], ["chunk", "seed"])
                         for v in values]
            settings.append(("all", part, ["value", "chunk", "seed"]))
        else:
            settings.append(("all", part, ["chunk", "seed"]))
        for vanilla, user in TWINS:
            if not {vanilla, user} <= set(part["model"]):
                continue
            for setting, rows_of, keys in settings:
                if not {vanilla, user} <= set(rows_of["model"]):
                    continue  # a setting one twin never trains (exp 3's one-hot: GRU only)
                for metric in metrics:
                    x, y = _pairs(rows_of, user, vanilla, metric, keys)
                    t = paired_test(x, y, user, vanilla, metric, higher_is_better)
                    rows.append([group, setting, f"{user} vs {vanilla}", metric, t.n,
                                 t.mean_diff, t.p_value, t.test, t.sentence])
    return pd.DataFrame(rows, columns=columns)


def _sort_key(value: object) -> tuple[int, float, str]:
    """Numbers in numeric order, then anything else by its text."""
    if isinstance(value, Real) and not isinstance(value, bool):  # numpy numbers included
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _setting_text(value: object) -> str:
    """A setting as text: 10.0 -> "10", 0.5 -> "0.5"."""
    if isinstance(value, Real) and float(value).is_integer():
        return str(int(value))
    return str(value)

"""Does each neural model beat the count baselines it ran beside? Said out loud in every report.

A neural model that scores no better than a popularity list is a finding a reader must not
miss (Ludewig and Jannach, "Evaluation of session-based recommendation algorithms", UMUAI 2018,
found simple baselines on par with neural models on many logs). For every neural model of an
experiment, its mean metric is compared with POP's and with the best count baseline's on the
same cells: the runs that share (axis value, chunk, seed), so neither side is averaged over
settings the other lacks.
"""

from __future__ import annotations

import math

import pandas as pd

from seqrec.models.registry import REGISTRY, model_label, model_order
from seqrec.report.records import metric_label, runs_frame

METRIC = "recall@20"
KEYS = ["group", "value", "chunk", "seed"]
COLUMNS = ["Model", "Cells", "Model mean", "POP mean", "x POP", "Best baseline",
           "Best baseline mean", "x best baseline", "Verdict"]


def _neural(name: str) -> bool:
    return name in REGISTRY and REGISTRY[name].kind == "neural"


def _count(name: str) -> bool:
    return name in REGISTRY and REGISTRY[name].kind == "count"


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else (math.inf if a > 0 else math.nan)


def baseline_check(records: list, experiment: str, metric: str = METRIC) -> pd.DataFrame:
    """One row per neural model of `experiment` with at least one paired count baseline.

    `x POP` and `x best baseline` are ratios of means over the paired cells; the best baseline
    is the count baseline with the highest mean on the model's cells. Verdict: "below POP",
    "below <baseline>" or "beats every baseline".
    """
    runs = runs_frame(records)
    if runs.empty or metric not in runs.columns:
        return pd.DataFrame(columns=COLUMNS)
    runs = runs[(runs["experiment"] == experiment) & runs[metric].notna()]
    models = model_order(runs["model"].dropna())
    baselines = [m for m in models if _count(m)]
    rows = []
    for model in (m for m in models if _neural(m)):
        mine = runs[runs["model"] == model][[*KEYS, metric]]
        means = {}
        cells = 0
        for base in baselines:
            theirs = runs[runs["model"] == base][[*KEYS, metric]]
            both = mine.merge(theirs, on=KEYS, suffixes=("", "_b"))
            if len(both):
                means[base] = (float(both[metric].mean()), float(both[f"{metric}_b"].mean()),
                               len(both))
        if not means:
            continue
        best = max(means, key=lambda b: means[b][1])
        own, best_mean, cells = means[best]
        pop = means.get("pop")
        if pop is not None and pop[0] <= pop[1]:
            verdict = "below POP"
        elif own < best_mean:
            verdict = f"below {model_label(best)}"
        else:
            verdict = "beats every baseline"
        rows.append({"Model": model_label(model), "Cells": cells, "Model mean": own,
                     "POP mean": pop[1] if pop else math.nan,
                     "x POP": _ratio(pop[0], pop[1]) if pop else math.nan,
                     "Best baseline": model_label(best), "Best baseline mean": best_mean,
                     "x best baseline": _ratio(own, best_mean), "Verdict": verdict})
    return pd.DataFrame(rows, columns=COLUMNS)


def baseline_sentences(check: pd.DataFrame, metric: str = METRIC) -> list[str]:
    """A warning for every neural model that does not beat POP or the best count baseline."""
    out = []
    label = metric_label(metric)
    for _, r in check.iterrows():
        if r["Verdict"] == "below POP":
            out.append(f"WARNING: {r['Model']} scores no better than POP on {label} "
                       f"({r['Model mean']:.4f} against {r['POP mean']:.4f} on {r['Cells']} "
                       "paired runs): it has not learnt more than item popularity.")
        elif r["Verdict"] != "beats every baseline":
            out.append(f"{r['Model']} trails {r['Best baseline']} on {label} "
                       f"({r['Model mean']:.4f} against {r['Best baseline mean']:.4f}, "
                       f"x{r['x best baseline']:.2f}).")
    return out

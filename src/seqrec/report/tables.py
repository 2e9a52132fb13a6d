"""The experiments' result tables as numeric DataFrames (docs/protocol.md, "Experiments").

Every value is looked up by its metric key and labelled with that metric's name; models are
labelled by their readable names (`model_label`). A table holds whatever runs exist: missing
cells are NaN, never a crash. Means and standard deviations pool all runs of a cell (chunks and
seeds); the standard deviation is the sample one (ddof = 1), NaN for a single run. Every table
has a `Test windows` column (exp 3: `Val windows`): the fewest windows of any run behind the row,
marked "(few)" when rendered below `coverage.MIN_TEST_WINDOWS`.

Each table function is given the records of its own experiment (the report and the notebook
select them through the registry entry); none of them knows an experiment's name.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from seqrec.data.windows import THIRDS
from seqrec.report.coverage import TEST_WINDOWS, VAL_WINDOWS, WINDOWS_KEY
from seqrec.report.records import (
    THIRD_LABELS,
    metric_label,
    model_label,
    model_order,
    runs_frame,
    third_column,
)
from seqrec.report.render import STD_SUFFIX

METRICS = ("recall@20", "recall@1")
ONE_HOT = -1  # embedding_size value meaning one-hot input (exp 3)


def experiment_runs(records: list, experiment: str) -> pd.DataFrame:
    """`runs_frame` rows of one experiment (possibly empty)."""
    runs = runs_frame(records)
    if runs.empty:
        return runs
    return runs[runs["experiment"] == experiment].reset_index(drop=True)


def _stats(values: pd.Series) -> tuple[float, float]:
    """(mean, sample std) of the non-missing values; NaN where undefined."""
    v = values.dropna().to_numpy(float)
    mean = float(v.mean()) if len(v) else math.nan
    std = float(v.std(ddof=1)) if len(v) > 1 else math.nan
    return mean, std


def _col(part: pd.DataFrame, column: str) -> pd.Series:
    return part[column] if column in part.columns else pd.Series(np.nan, index=part.index)


def _fewest(part: pd.DataFrame, column: str) -> float:
    """The fewest windows behind a cell (`column` of its runs), NaN when unknown."""
    v = _col(part, column).dropna()
    return float(v.min()) if len(v) else math.nan


def _int_or_none(value: object) -> int | None:
    try:
        return None if value is None or math.isnan(float(value)) else int(float(value))
    except (TypeError, ValueError):
        return None


def table_exp1(records: list, metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """Exp 1: each metric per chunk, for every threshold (highest first: 20 is the thesis'
    exp 1.1, 2 its exp 1.2) and model.

    Columns: Threshold, Model, Metric, `Chunk c` for each chunk present (mean over seeds), Mean
    and Mean std (mean and sample std of the chunk columns, so every chunk weighs the same
    however many seeds it has), Test windows (the fewest of the row's runs), Runs.
    """
    runs = runs_frame(records)
    base = ["Threshold", "Model", "Metric"]
    if runs.empty:
        return pd.DataFrame(columns=[*base, "Mean", "Mean" + STD_SUFFIX, TEST_WINDOWS, "Runs"])
    chunks = sorted({c for c in (_int_or_none(v) for v in runs["chunk"]) if c is not None})
    runs = runs.assign(chunk=[_int_or_none(v) for v in runs["chunk"]])
    rows = []
    for threshold in sorted(runs["threshold"].dropna().unique(), reverse=True):
        part = runs[runs["threshold"] == threshold]
        for model in model_order(part["model"].dropna()):
            mine = part[part["model"] == model]
            for metric in metrics:
                row = {"Threshold": float(threshold), "Model": model_label(model),
                       "Metric": metric_label(metric)}
                values = _col(mine, metric)
                for c in chunks:
                    row[f"Chunk {c}"] = _stats(values[mine["chunk"] == c])[0]
                per_chunk = [row[f"Chunk {c}"] for c in chunks if not math.isnan(row[f"Chunk {c}"])]
                row["Mean"], row["Mean" + STD_SUFFIX] = _stats(pd.Series(per_chunk, dtype=float))
                row[TEST_WINDOWS] = _fewest(mine[values.notna()], WINDOWS_KEY)
                row["Runs"] = int(values.notna().sum())
                rows.append(row)
    return pd.DataFrame(rows, columns=[*base, *(f"Chunk {c}" for c in chunks), "Mean",
                                       "Mean" + STD_SUFFIX, TEST_WINDOWS, "Runs"])


def table_exp2(records: list, metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """Exp 2: metrics against training-set size, mean and std over chunks and seeds.

    Training starts at `p * n` of each user's `n` events (axis `train_start_frac`) and ends at
    `train_frac * n`, so the training fraction is `train_frac - p`; Train windows is the mean
    number of training windows of the splits. Columns: Model, Train start p, Training fraction,
    Train windows, then per metric `<Metric>` and `<Metric> std`, Test windows, Runs.
    """
    runs = runs_frame(records)
    columns = ["Model", "Train start p", "Training fraction", "Train windows"]
    columns += [c for m in metrics for c in (metric_label(m), metric_label(m) + STD_SUFFIX)]
    columns += [TEST_WINDOWS, "Runs"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    p_values = pd.to_numeric(runs["value"], errors="coerce")
    p_values = p_values.fillna(_col(runs, "train_start_frac"))
    runs = runs.assign(p=p_values)
    rows = []
    for model in model_order(runs["model"].dropna()):
        mine = runs[runs["model"] == model]
        for p in sorted(mine["p"].dropna().unique()):
            cell = mine[mine["p"] == p]
            train_frac = _stats(_col(cell, "train_frac"))[0]
            row = {"Model": model_label(model), "Train start p": float(p),
                   "Training fraction": train_frac - float(p),
                   "Train windows": _stats(_col(cell, "train_windows"))[0]}
            for m in metrics:
                row[metric_label(m)], row[metric_label(m) + STD_SUFFIX] = _stats(_col(cell, m))
            row[TEST_WINDOWS] = _fewest(cell, WINDOWS_KEY)
            row["Runs"] = len(cell)
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def embedding_text(size: float) -> str:
    """How an embedding size is shown: `"one-hot"` for -1, else the integer."""
    return "one-hot" if int(size) == ONE_HOT else str(int(size))


def table_exp3(records: list, metric: str = "best_val_loss") -> pd.DataFrame:
    """Exp 3: best validation loss against embedding size (value -1 shown as "one-hot").

    Columns: Model, Embedding (text), Embedding size (number; the item count for one-hot),
    Best validation loss, Best validation loss std, Val windows (the fewest), Runs. Rows in
    increasing size, one-hot last.
    """
    runs = runs_frame(records)
    label = "Best validation loss" if metric == "best_val_loss" else metric_label(metric)
    columns = ["Model", "Embedding", "Embedding size", label, label + STD_SUFFIX, VAL_WINDOWS,
               "Runs"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    sizes = pd.to_numeric(runs["value"], errors="coerce").fillna(_col(runs, "embedding_size"))
    runs = runs.assign(size=sizes)
    rows = []
    for model in model_order(runs["model"].dropna()):
        mine = runs[runs["model"] == model]
        ordered = sorted(mine["size"].dropna().unique(), key=lambda s: (s == ONE_HOT, s))
        for size in ordered:
            cell = mine[mine["size"] == size]
            shown = _stats(_col(cell, "n_items"))[0] if size == ONE_HOT else float(size)
            mean, std = _stats(_col(cell, metric))
            rows.append({"Model": model_label(model), "Embedding": embedding_text(size),
                         "Embedding size": shown, label: mean, label + STD_SUFFIX: std,
                         VAL_WINDOWS: _fewest(cell, "val_windows"), "Runs": len(cell)})
    return pd.DataFrame(rows, columns=columns)


def table_exp4(records: list, metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """Exp 4: metrics against window length L, overall and per popularity third.

    Columns: Scope (Overall, Popular, Semi-popular, Unpopular), Model, Window length, then per
    metric `<Metric>` and `<Metric> std` over the chunks and seeds, Test windows (the fewest
    of the cell's runs in its scope), Runs.
    """
    runs = runs_frame(records)
    columns = ["Scope", "Model", "Window length"]
    columns += [c for m in metrics for c in (metric_label(m), metric_label(m) + STD_SUFFIX)]
    columns += [TEST_WINDOWS, "Runs"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    lengths = pd.to_numeric(runs["value"], errors="coerce").fillna(_col(runs, "seq_len"))
    runs = runs.assign(L=lengths)
    rows = []
    for third in ("overall", *THIRDS):
        for model in model_order(runs["model"].dropna()):
            mine = runs[runs["model"] == model]
            for length in sorted(mine["L"].dropna().unique()):
                cell = mine[mine["L"] == length]
                row = {"Scope": THIRD_LABELS[third], "Model": model_label(model),
                       "Window length": int(length)}
                for m in metrics:
                    row[metric_label(m)], row[metric_label(m) + STD_SUFFIX] = _stats(
                        _col(cell, third_column(third, m)))
                row[TEST_WINDOWS] = _fewest(cell, third_column(third, WINDOWS_KEY))
                row["Runs"] = len(cell)
                rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def table_other(records: list, experiment: str,
                metrics: tuple[str, ...] = ("recall@20", "recall@1", "mrr@20")) -> pd.DataFrame:
    """Any other experiment (e.g. "validate"): one row per run, its metrics by name."""
    runs = experiment_runs(records, experiment)
    columns = ["Group", "Model", "Chunk", "Seed", *(metric_label(m) for m in metrics),
               TEST_WINDOWS]
    rows = [[r["group"], model_label(str(r["model"])), r["chunk"], r["seed"],
             *(r.get(m, math.nan) for m in metrics), r.get(WINDOWS_KEY, math.nan)]
            for _, r in runs.iterrows()]
    return pd.DataFrame(rows, columns=columns)



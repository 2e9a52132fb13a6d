"""Run records in, one flat DataFrame out; readable names for models and metrics.

A run record is the JSON the trainer writes when a run ends (`<out>/runs/<run_id>/record.json`).
Every number is read by its metric key (`"recall@20"`), never by position: the thesis notebook
read the wrong columns of a positional metric list (THESIS_PROTOCOL.md, defects 5 and 14).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from seqrec.io import read_json

# Order in which models appear in tables and legends; unknown models follow, sorted by key.
MODEL_LABELS: dict[str, str] = {
    "gru": "GRU",
    "user_gru": "User-based GRU",
    "dnc": "DNC",
    "user_dnc": "User-based DNC",
    "sasrec": "SASRec",
    "pop": "POP",
    "recent": "Recent",
    "markov": "Markov",
    "item_knn": "Item-KNN",
}
THIRD_LABELS = {"overall": "Overall", "popular": "Popular", "semi": "Semi-popular",
                "unpopular": "Unpopular"}
EXPERIMENTS = ("exp1", "exp2", "exp3", "exp4")

# Columns of `runs_frame` taken from the record's "spec" (absent keys become missing values).
SPEC_COLUMNS = ("experiment", "group", "model", "chunk", "seed", "axis", "value", "profile")


def model_label(model: str) -> str:
    """Readable name of a model key: `"user_gru"` -> `"User-based GRU"`."""
    return MODEL_LABELS.get(model, model)


def model_order(models: Any) -> list[str]:
    """Model keys in table order: the known ones as in `MODEL_LABELS`, then the rest sorted."""
    present = {str(m) for m in models}
    known = [m for m in MODEL_LABELS if m in present]
    return known + sorted(present - set(known))


def metric_label(key: str) -> str:
    """Readable name of a metric key: `"recall@20"` -> `"Recall@20"`, `"mrr@20"` -> `"MRR@20"`."""
    name, _, k = key.partition("@")
    pretty = {"recall": "Recall", "mrr": "MRR", "ndcg": "NDCG", "hit": "HR",
              "precision": "Precision"}.get(name, name)
    return f"{pretty}@{k}" if k else pretty


def third_column(third: str, metric: str) -> str:
    """Column of `runs_frame` holding `metric` for a popularity third (or `"overall"`)."""
    return metric if third == "overall" else f"{third}/{metric}"


def load_records(out_dir: str | Path) -> list[dict]:
    """Every readable `<out_dir>/runs/*/record.json`, sorted by path.

    A file that cannot be read or parsed, or is not a record (no "spec" object), is skipped with
    a warning naming it, so one damaged file never hides the others. A missing `runs` folder
    gives an empty list (nothing has run yet).
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"output folder {out} does not exist; pass the folder the runs "
                                "were written to (the --out of the runner)")
    records = []
    for path in sorted(out.glob("runs/*/record.json")):
        try:
            record = read_json(path)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            warnings.warn(f"skipping unreadable run record {path}: {err}", stacklevel=2)
            continue
        if not isinstance(record, dict) or not isinstance(record.get("spec"), dict):
            warnings.warn(f"skipping {path}: not a run record (no 'spec' object)", stacklevel=2)
            continue
        records.append(record)
    return records


def _number(value: Any) -> float:
    """A float, or NaN for anything that is not a finite-or-infinite real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _get(d: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def runs_frame(records: list[dict]) -> pd.DataFrame:
    """One row per successful run (status "ok"): spec fields, sizes and every metric.

    Columns: `run_id`, the `SPEC_COLUMNS`, `threshold`, `train_frac`, `train_start_frac`,
    `seq_len`, `embedding_size` (from the record's config), `n_items`, `train_windows`,
    `best_val_loss`, one column per overall metric key (`recall@20`) and one per popularity
    third (`popular/recall@20`, see `third_column`). Failed runs are left out: they have no
    metrics (they are listed by `status_lists`).
    """
    rows = []
    for r in records:
        if r.get("status", "ok") != "ok":
            continue
        spec = r.get("spec", {})
        row: dict[str, Any] = {"run_id": r.get("run_id")}
        for key in SPEC_COLUMNS:
            row[key] = spec.get(key)
        data = _get(r, "config", "data") or {}
        for key in ("threshold", "train_frac", "train_start_frac", "seq_len"):
            row[key] = _number(data.get(key))
        row["embedding_size"] = _number(_get(r, "config", "model", "embedding_size"))
        n_items = r.get("n_items", _get(r, "split", "n_items"))
        row["n_items"] = _number(n_items)
        row["train_windows"] = _number(_get(r, "split", "windows", "train"))
        row["best_val_loss"] = _number(r.get("best_val_loss"))
        for key, value in (r.get("metrics") or {}).items():
            row[key] = _number(value)
        for third, values in (r.get("metrics_by_popularity") or {}).items():
            for key, value in (values or {}).items():
                row[third_column(third, key)] = _number(value)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else ["run_id", *SPEC_COLUMNS])
    return frame


def status_lists(records: list[dict], expected: list[dict] | None) -> tuple[list[dict], list[dict]]:
    """(failed, missing): failed runs `{"run_id", "spec", "reason"}` and expected runs with no
    record at all `{"run_id", "spec"}`.

    A failed run that also has an "ok" record (it was rerun) is not listed as failed.
    `expected` entries are `{"run_id": ..., "spec": {...}}` or a flat spec dict with a
    "run_id" key; both are accepted.
    """
    ok_ids = {r.get("run_id") for r in records if r.get("status", "ok") == "ok"}
    seen_ids = {r.get("run_id") for r in records}
    failed = [{"run_id": r.get("run_id"), "spec": r.get("spec", {}),
               "reason": r.get("reason") or "no reason given"}
              for r in records if r.get("status", "ok") != "ok" and r.get("run_id") not in ok_ids]
    missing = []
    for e in expected or []:
        run_id = e.get("run_id")
        if run_id not in seen_ids:
            spec = e.get("spec") if isinstance(e.get("spec"), dict) else e
            missing.append({"run_id": run_id, "spec": spec})
    return failed, missing

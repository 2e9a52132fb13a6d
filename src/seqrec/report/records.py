"""Run records in, one flat DataFrame out; readable names for metrics.

A run record (`seqrec.record.RunRecord`) is what the runner writes when a run ends
(`<out>/runs/<run_id>/record.json`). Every number is read by its metric key (`"recall@20"`),
never by position: the thesis notebook read the wrong columns of a positional metric list
(docs/protocol.md, defects 5 and 14). Model labels and their order come from the model registry.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from seqrec.models.registry import model_label, model_order  # noqa: F401 - re-exported
from seqrec.record import RECORD_FILE, RecordError, RunLabel, RunRecord, read_record
from seqrec.report.coverage import WINDOWS_KEY

THIRD_LABELS = {"overall": "Overall", "popular": "Popular", "semi": "Semi-popular",
               "unpopular": "Unpopular"}

# Columns of `runs_frame` taken from the record's label (`RunLabel`).
SPEC_COLUMNS = ("experiment", "group", "model", "chunk", "seed", "axis", "value", "profile")


def metric_label(key: str) -> str:
    """Readable name of a metric key: `"recall@20"` -> `"Recall@20"`, `"mrr@20"` -> `"MRR@20"`."""
    name, _, k = key.partition("@")
    pretty = {"recall": "Recall", "mrr": "MRR", "ndcg": "NDCG", "hit": "HR",
              "precision": "Precision"}.get(name, name)
    return f"{pretty}@{k}" if k else pretty


def data_name(data: dict | None) -> str:
    """A record's data source in a few words: the file's name, or the built-in log's size."""
    data = data or {}
    if data.get("kind") == "file":
        return Path(str(data.get("file") or data.get("path") or "?")).name
    synth = data.get("synth") or {}
    if data.get("kind") == "generated" or synth:
        return f"built-in generated log ({synth.get('n_rows', 0):,} plays)"
    return "unknown data"


def third_column(third: str, metric: str) -> str:
    """Column of `runs_frame` holding `metric` for a popularity third (or `"overall"`)."""
    return metric if third == "overall" else f"{third}/{metric}"


DAMAGED_GLOB = "record.damaged-*.json"  # records the runner set aside (seqrec.runner)


@dataclass(frozen=True)
class RecordScan:
    """What a folder's run records are: the good ones, the damaged ones (path, why; left out),
    and the records the runner set aside as damaged (`record.damaged-*.json`, redone)."""

    records: list[RunRecord]
    damaged: list[tuple[Path, str]] = field(default_factory=list)
    set_aside: list[Path] = field(default_factory=list)

    @property
    def unverified(self) -> list[RunRecord]:
        """Records of a format before the checksum (read, values checked, content unverified)."""
        return [r for r in self.records if not r.verified]


def scan_records(out_dir: str | Path) -> RecordScan:
    """Read every `<out_dir>/runs/*/record.json` (sorted by path), keeping the damaged ones
    apart (see `RecordScan`), so one damaged file never hides or breaks the others. A missing
    `runs` folder gives no records (nothing has run yet)."""
    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"output folder {out} does not exist; pass the folder the runs "
                                "were written to (the --out of the runner)")
    records, damaged = [], []
    for path in sorted(out.glob(f"runs/*/{RECORD_FILE}")):
        try:
            records.append(read_record(path.parent))
        except RecordError as err:
            damaged.append((path, str(err)))
    return RecordScan(records, damaged, sorted(out.glob(f"runs/*/{DAMAGED_GLOB}")))


def load_records(out_dir: str | Path) -> list[RunRecord]:
    """Every good run record of `scan_records`; each damaged one is skipped with a warning
    naming it."""
    scan = scan_records(out_dir)
    for _, reason in scan.damaged:
        warnings.warn(f"skipping {reason}", stacklevel=2)
    return scan.records


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


def runs_frame(records: list[RunRecord]) -> pd.DataFrame:
    """One row per successful run (status "ok"): label fields, sizes and every metric.

    Columns: `run_id`, the `SPEC_COLUMNS`, `threshold`, `train_frac`, `train_start_frac`,
    `seq_len`, `embedding_size` (from the record's config), `n_items`, `train_windows`,
    `best_val_loss`, `test_windows` and `val_windows` (window counts), `data` (the data
    fingerprint), one column per overall metric key (`recall@20`) and one per popularity third
    (`popular/recall@20`, `popular/test_windows`, see `third_column`).
    Failed runs are left out: they have no metrics (they are listed by `status_lists`).
    """
    rows = []
    for r in records:
        if not r.ok:
            continue
        row: dict[str, Any] = {"run_id": r.run_id}
        for key in SPEC_COLUMNS:
            row[key] = getattr(r.spec, key)
        data = _get(r.config, "data") or {}
        for key in ("threshold", "train_frac", "train_start_frac", "seq_len"):
            row[key] = _number(data.get(key))
        row["embedding_size"] = _number(_get(r.config, "model", "embedding_size"))
        row["n_items"] = _number(r.n_items if r.n_items is not None else r.split.get("n_items"))
        row["train_windows"] = _number(_get(r.split, "windows", "train"))
        row["best_val_loss"] = _number(r.best_val_loss)
        # 0: not recorded (a finished run has test windows; its split was checked)
        row[WINDOWS_KEY] = _number(r.n_test_windows) if r.n_test_windows else math.nan
        row["val_windows"] = _number(_get(r.split, "windows", "val"))
        row["data"] = r.data.get("fingerprint")
        for key, value in (r.metrics or {}).items():
            row[key] = _number(value)
        for third, values in (r.metrics_by_popularity or {}).items():
            for key, value in (values or {}).items():
                row[third_column(third, key)] = _number(value)
        for third, count in (r.n_windows_by_popularity or {}).items():
            row[third_column(third, WINDOWS_KEY)] = _number(count)
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["run_id", *SPEC_COLUMNS])


def status_lists(records: list[RunRecord], expected: list | None
                 ) -> tuple[list[RunRecord], list]:
    """(failed, missing): failed records, and the expected `RunSpec`s with no record at all.

    A failed run that also has an "ok" record (it was rerun) is not listed as failed.
    """
    ok_ids = {r.run_id for r in records if r.ok}
    seen_ids = {r.run_id for r in records}
    failed = [r for r in records if not r.ok and r.run_id not in ok_ids]
    missing = [e for e in expected or [] if e.run_id not in seen_ids]
    return failed, missing


RESULT_METRICS = ("recall@20", "recall@1", "mrr@20", "ndcg@20")


def results_frame(expected: list[RunLabel], records: list[RunRecord],
                  states: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per expected run, in grid order: its label, status, reason and main metrics.

    Status is the record's ("ok" or "failed", with its reason), else `states[run_id]` (e.g.
    "partial" for a run with only a checkpoint) or "missing". Columns: run_id, status, reason,
    the label fields, `RESULT_METRICS`, best_val_loss, epochs_kept.
    """
    by_id = {r.run_id: r for r in records}
    rows = []
    for label in expected:
        r = by_id.get(label.run_id)
        row: dict[str, Any] = {"run_id": label.run_id,
                               "status": r.status if r else (states or {}).get(label.run_id,
                                                                               "missing"),
                               "reason": r.reason if r and not r.ok else None}
        row.update({k: getattr(label, k) for k in SPEC_COLUMNS})
        for key in RESULT_METRICS:
            row[key] = _number(r.metrics.get(key)) if r else math.nan
        row["best_val_loss"] = _number(r.best_val_loss) if r else math.nan
        row["epochs_kept"] = _number(r.epochs_kept) if r else math.nan
        rows.append(row)
    columns = ["run_id", "status", "reason", *SPEC_COLUMNS, *RESULT_METRICS, "best_val_loss",
               "epochs_kept"]
    return pd.DataFrame(rows, columns=columns)

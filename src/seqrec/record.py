"""The run record: what one finished (or failed) run was and what it measured.

One type (`RunRecord`), one file name (`RECORD_FILE`), one writer (`write_record`) and one
reader (`read_record`); everything else (the runner, the report, the notebook) uses the typed
fields. The file is JSON: `spec` holds the run's label (`RunLabel`), `request` the grid request
that planned it (so the report can rebuild the grid and list what is missing), `data` the data
source (kind, path, fingerprint, size, rows read), then the settings, the split's sizes, every
metric by name (never by position: the thesis notebook read the wrong columns of a positional
list, docs/protocol.md), the training history and the speed.

Records of format 1 (before the data and the request were recorded) still read, with empty
`data` and no `request`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from seqrec.io import atomic_write_json, read_json

RECORD_FILE = "record.json"
RECORD_FORMAT = 2


class RunState(str, Enum):
    """Where a run stands in its folder: its record says `OK` or `FAILED`; without a record it
    is `PARTIAL` (a checkpoint) or `TODO`. A `str`, so it reads and writes as its value."""

    OK = "ok"
    FAILED = "failed"
    PARTIAL = "partial"
    TODO = "todo"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def finished(self) -> bool:
        return self in (RunState.OK, RunState.FAILED)


STATUSES = (RunState.OK.value, RunState.FAILED.value)  # what a record's `status` may say


class EpochRow(TypedDict, total=False):
    """One finished epoch in a record's `history` (and the `on_epoch` callback): the stage
    ("a": train with early stopping on val; "b": retrain on train + val), the epoch, the losses
    (`val_loss` None in stage b), whether val improved, its seconds and windows per second."""

    stage: str
    epoch: int
    train_loss: float | None
    val_loss: float | None
    improved: bool
    seconds: float
    seq_per_s: float


class RecordError(ValueError):
    """A record file that is not a run record (damaged, or not written by seqrec)."""


@dataclass(frozen=True)
class RunLabel:
    """What a run is, as its grid named it. `value` is the value of `axis` it trained with."""

    run_id: str
    experiment: str
    group: str = ""
    model: str = ""
    chunk: int = 0
    seed: int = 0
    axis: str = ""
    value: Any = None
    profile: str = ""


@dataclass(frozen=True)
class RunRecord:
    """One run's record. `status` is "ok" or "failed" (then `reason` says why)."""

    spec: RunLabel
    status: str
    reason: str | None = None
    config: dict = field(default_factory=dict)
    request: dict | None = None
    data: dict = field(default_factory=dict)
    split: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    metrics_by_popularity: dict = field(default_factory=dict)
    n_windows_by_popularity: dict = field(default_factory=dict)
    n_test_windows: int = 0
    test_loss: float | None = None
    n_items: int | None = None
    n_users: int | None = None
    epochs_kept: int | None = None
    best_val_loss: float | None = None
    history: list[EpochRow] = field(default_factory=list)
    seq_per_s: float | None = None
    peak_memory_bytes: int | None = None
    device: str = ""
    versions: dict = field(default_factory=dict)
    seconds: float | None = None
    resumed_from: dict | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise RecordError(f"run record status must be one of {STATUSES}, got "
                              f"{self.status!r}")

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def experiment(self) -> str:
        return self.spec.experiment

    def to_json(self) -> dict:
        """The JSON object written to `record.json` (non-finite floats become null)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["spec"] = asdict(self.spec)
        out["run_id"] = self.run_id
        out["seed"] = self.spec.seed
        out["format"] = RECORD_FORMAT
        return _jsonable(out)

    @classmethod
    def from_json(cls, d: Any, name: str = "run record") -> RunRecord:
        """Parse a record object; `RecordError` naming `name` if it is not one."""
        if not isinstance(d, dict):
            raise RecordError(f"{name} holds a JSON {type(d).__name__}, not a run record "
                              f"object")
        spec = d.get("spec")
        if not isinstance(spec, dict) or not isinstance(d.get("run_id"), str):
            raise RecordError(f"{name} is not a run record (no 'run_id' or 'spec')")
        if not isinstance(spec.get("experiment"), str):
            raise RecordError(f"{name} is not a run record (its spec names no experiment)")
        label_fields = {f.name for f in fields(RunLabel)} - {"run_id"}
        try:
            label = RunLabel(run_id=d["run_id"],
                             **{k: v for k, v in spec.items() if k in label_fields})
            known = {f.name for f in fields(cls)} - {"spec"}
            values = {k: v for k, v in d.items() if k in known and v is not None}
            return cls(spec=label, **values)
        except (KeyError, TypeError) as e:
            raise RecordError(f"{name} is not a run record of this version ({e})") from e


def record_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / RECORD_FILE


def write_record(run_dir: str | Path, record: RunRecord) -> Path:
    """Write `run_dir/record.json` atomically (a reader sees the old file or the new one)."""
    return atomic_write_json(record_path(run_dir), record.to_json())


def read_record(run_dir: str | Path) -> RunRecord | None:
    """The record in `run_dir`, None when there is none; `RecordError` when it is damaged."""
    path = record_path(run_dir)
    if not path.exists():
        return None
    try:
        value = read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordError(f"run record {path} cannot be read ({e})") from e
    return RunRecord.from_json(value, name=f"run record {path}")


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars as numbers, tuples as lists, NaN and inf as null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)

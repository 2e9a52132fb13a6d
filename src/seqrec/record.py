"""The run record: what one finished (or failed) run was and what it measured.

One type (`RunRecord`), one file name (`RECORD_FILE`), one writer (`write_record`) and one
reader (`read_record`); everything else (the runner, the report, the notebook) uses the typed
fields. The file is JSON: `spec` holds the run's label (`RunLabel`), `request` the grid request
that planned it (so the report can rebuild the grid and list what is missing), `data` the data
source (kind, path, fingerprint, size, rows read), then the settings, the split's sizes, every
metric by name (never by position: the thesis notebook read the wrong columns of a positional
list, docs/protocol.md), the training history and the speed.

Integrity (docs/reliability.md, "Records, run folders and the report"): from format 3 on, the
writer stores `checksum`, the SHA-256 of the record's parsed JSON content without that key
(`seqrec.io.json_digest`), and the reader recomputes it: a record changed after it was written
(a flipped bit, a hand edit, a half-synced copy) is a `RecordError`, as is a record whose
values are out of their range or of the wrong type (a Recall@20 of 7.5, a string where a count
belongs), or whose run id or experiment name could not be a file name (`seqrec.io.safe_name`),
or whose run id is not the name of the folder it lies in. Records of formats 1 and 2 (written
before the checksum) still read, their values checked the same way, with `verified` False: the
report says how many it could not verify.

Records of format 1 (before the data and the request were recorded) read with empty `data` and
no `request`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from seqrec.io import atomic_write_json, json_digest, read_json, safe_name

RECORD_FILE = "record.json"
RECORD_FORMAT = 3
CHECKSUM_KEY = "checksum"
FIRST_CHECKSUM_FORMAT = 3  # records of earlier formats have no checksum


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
    # False for a record read from a file of a format before the checksum (not written out).
    verified: bool = field(default=True, compare=False)

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
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "verified"}
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
            known = {f.name for f in fields(cls)} - {"spec", "verified"}
            values = {k: v for k, v in d.items() if k in known and v is not None}
            record = cls(spec=label, **values)
        except (KeyError, TypeError) as e:
            raise RecordError(f"{name} is not a run record of this version ({e})") from e
        problem = record_problem(record)
        if problem is not None:
            raise RecordError(f"{name} is damaged: {problem}")
        return record


def record_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / RECORD_FILE


def write_record(run_dir: str | Path, record: RunRecord) -> Path:
    """Write `run_dir/record.json` atomically (a reader sees the old file or the new one), with
    the checksum of its content."""
    value = record.to_json()
    value[CHECKSUM_KEY] = json_digest(value)
    return atomic_write_json(record_path(run_dir), value)


def read_record(run_dir: str | Path) -> RunRecord | None:
    """The record in `run_dir`, None when there is none; `RecordError` when it is damaged (it
    cannot be parsed, fails its checksum, holds a value out of range or of the wrong type, or
    belongs to another folder). A record of a format before the checksum reads with
    `verified=False`."""
    path = record_path(run_dir)
    if not path.exists():
        return None
    try:
        value = read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise RecordError(f"run record {path} cannot be read ({e})") from e
    name = f"run record {path}"
    verified = _verify(value, name)
    record = RunRecord.from_json(value, name=name)
    if record.run_id != Path(run_dir).name:
        raise RecordError(f"{name} is damaged: it is the record of run {record.run_id[:80]!r}, "
                          f"not of the folder it lies in")
    return record if verified else dataclasses.replace(record, verified=False)


def _verify(value: Any, name: str) -> bool:
    """Check a parsed record's checksum: True when it matches, False for a record of a format
    before the checksum; `RecordError` when it is missing from (or does not match) a record
    that should carry one."""
    if not isinstance(value, dict):
        return False  # from_json says what it is
    stored = value.get(CHECKSUM_KEY)
    fmt = value.get("format", 1)
    if stored is None:
        if type(fmt) is int and fmt < FIRST_CHECKSUM_FORMAT:
            return False
        raise RecordError(f"{name} is damaged: it has no checksum (format {str(fmt)[:20]})")
    content = {k: v for k, v in value.items() if k != CHECKSUM_KEY}
    if stored != json_digest(content):
        raise RecordError(f"{name} is damaged: its content does not match its checksum (changed "
                          f"after it was written)")
    return True


# ---------------------------------------------------------------------------------------------
# Ranges and types: what a record may hold

def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_number(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _check_counts(d: Any, where: str) -> str | None:
    """A dict of counts (ints >= 0), possibly nested (split sizes)."""
    if not isinstance(d, dict):
        return f"{where} is a {type(d).__name__}, not an object"
    for k, v in d.items():
        if isinstance(v, dict):
            problem = _check_counts(v, f"{where}.{k}")
            if problem:
                return problem
        elif not (_is_int(v) and v >= 0):
            return f"{where}.{k} = {str(v)[:40]} is not a count"
    return None


def _check_metrics(d: Any, where: str) -> str | None:
    """Every metric seqrec records (Recall, MRR, NDCG at k) is a share: a number in [0, 1], or
    null where nothing was measured (a popularity third without test windows)."""
    if d is None:
        return None
    if not isinstance(d, dict):
        return f"{where} is a {type(d).__name__}, not an object"
    for k, v in d.items():
        if v is not None and not (_is_number(v) and 0.0 <= v <= 1.0):
            return f"{where}[{k[:40]!r}] = {str(v)[:40]} is outside [0, 1]"
    return None


# Optional fields: (type check, what it must be).
_OPTIONAL = {
    "test_loss": (lambda v: _is_number(v) and v >= 0, "a loss >= 0"),
    "best_val_loss": (lambda v: _is_number(v) and v >= 0, "a loss >= 0"),
    "n_items": (lambda v: _is_int(v) and v >= 1, "a count >= 1"),
    "n_users": (lambda v: _is_int(v) and v >= 1, "a count >= 1"),
    "epochs_kept": (lambda v: _is_int(v) and v >= 0, "a count >= 0"),
    "seq_per_s": (lambda v: _is_number(v) and v >= 0, "a speed >= 0"),
    "peak_memory_bytes": (lambda v: _is_int(v) and v >= 0, "a size >= 0"),
    "seconds": (lambda v: _is_number(v) and v >= 0, "a duration >= 0"),
    "reason": (lambda v: isinstance(v, str), "text"),
    "request": (lambda v: isinstance(v, dict), "an object"),
    "resumed_from": (lambda v: isinstance(v, dict), "an object"),
}
_OBJECTS = ("config", "data", "split", "versions")
_LABEL_TEXT = ("experiment", "group", "model", "axis", "profile")


def _check_data(data: dict) -> str | None:
    """The data source's sizes are counts and its names text (the report prints them)."""
    for key in ("size_bytes", "rows_read", "lines_skipped"):
        if data.get(key) is not None and not (_is_int(data[key]) and data[key] >= 0):
            return f"data.{key} = {str(data[key])[:40]} is not a count"
    for key in ("kind", "file", "path", "fingerprint"):
        if data.get(key) is not None and not isinstance(data[key], str):
            return f"data.{key} is not text"
    synth = data.get("synth")
    if synth is not None:
        if not isinstance(synth, dict):
            return "data.synth is not an object"
        for key in ("n_rows", "n_users"):
            if synth.get(key) is not None and not (_is_int(synth[key]) and synth[key] >= 0):
                return f"data.synth.{key} = {str(synth[key])[:40]} is not a count"
    return None


def record_problem(record: RunRecord) -> str | None:
    """What is wrong with a record's values (None when nothing): wrong types, values out of
    range (metrics outside [0, 1], negative counts, losses or times), an unsafe run id or
    experiment name, or an ok record without metrics."""
    spec = record.spec
    for key in ("run_id", "experiment"):
        try:
            safe_name(getattr(spec, key), key)
        except ValueError as e:
            return str(e)
    for key in _LABEL_TEXT:
        if not isinstance(getattr(spec, key), str):
            return f"spec.{key} is not text"
    if not (_is_int(spec.chunk) and spec.chunk >= 0) or not _is_int(spec.seed):
        return "spec.chunk or spec.seed is not a whole number (chunk >= 0)"
    if not (spec.value is None or isinstance(spec.value, (str, bool)) or _is_number(spec.value)):
        return f"spec.value = {str(spec.value)[:40]} is not a setting's value"
    for key in _OBJECTS:
        if not isinstance(getattr(record, key), dict):
            return f"{key} is not an object"
    if not isinstance(record.device, str):
        return "device is not text"
    for key in ("data", "model", "train", "eval"):
        if not isinstance(record.config.get(key, {}), dict):
            return f"config.{key} is not an object"
    problem = _check_data(record.data)
    if problem:
        return problem
    for key, (check, what) in _OPTIONAL.items():
        v = getattr(record, key)
        if v is not None and not check(v):
            return f"{key} = {str(v)[:40]} is not {what}"
    if not (_is_int(record.n_test_windows) and record.n_test_windows >= 0):
        return f"n_test_windows = {str(record.n_test_windows)[:40]} is not a count"
    problem = (_check_metrics(record.metrics, "metrics")
               or _check_counts(record.n_windows_by_popularity, "n_windows_by_popularity"))
    if problem:
        return problem
    if not isinstance(record.metrics_by_popularity, dict):
        return "metrics_by_popularity is not an object"
    for third, values in record.metrics_by_popularity.items():
        problem = _check_metrics(values, f"metrics_by_popularity[{third[:20]!r}]")
        if problem:
            return problem
    for key in ("windows", "events", "dropped_unseen"):
        if key in record.split:
            problem = _check_counts(record.split[key], f"split.{key}")
            if problem:
                return problem
    if not isinstance(record.history, list) or not all(isinstance(h, dict)
                                                       for h in record.history):
        return "history is not a list of objects"
    if record.ok and not record.metrics:
        return "it says ok but holds no metrics"
    return None


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

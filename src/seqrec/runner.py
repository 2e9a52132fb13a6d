"""Run specs -> run records. The runner owns a run folder's life: skip, resume, retry, write.

Layout of an output folder (a Drive folder on Colab; several machines may share it):
```
OUT/data/      the built-in generated logs (named by the generator's settings hash)
OUT/cache/     parsed events (Parquet) and splits (npz), keyed by the hash of their settings
OUT/runs/ID/   one folder per run: checkpoints while it trains, record.json when it is done
OUT/report/    tables, figures, report.md and report.pdf (seqrec.report)
```
A run whose record says "ok" is skipped; one whose record says "failed" is skipped unless
failed runs are retried (`retry_failed`); one with only a checkpoint resumes from it. Before any
training, every split the selection needs is prepared: data that cannot be prepared stops the
grid with one sentence (`DataError`) and records nothing, so fixing the path or the setting and
running again is all it takes. Shards (`--shard I/N`) split a grid round robin, so machines
sharing the folder need no coordination.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from seqrec import checkpoint as ckpt
from seqrec.data.source import DataRef, DataSource
from seqrec.device import resolve_device
from seqrec.experiment import RunSpec, build_grid, select
from seqrec.experiments import EXPERIMENTS, requests
from seqrec.record import RecordError, RunRecord, read_record, record_path, write_record

Log = Callable[..., None]
STATES = ("ok", "failed", "partial", "todo")


class DataError(ValueError):
    """A grid's data cannot be prepared (a missing file, a setting that leaves no window)."""


def check_writable(out_dir: str | Path) -> Path:
    """Create `out_dir` if needed and prove a file can be written there, or stop clearly."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ValueError(f"output folder {str(out)!r} is not writable ({e.strerror}); "
                         "choose another --out") from e
    return out


def run_dir(out_dir: str | Path, spec: RunSpec) -> Path:
    return Path(out_dir) / "runs" / spec.run_id


def existing_record(out_dir: str | Path, spec: RunSpec) -> RunRecord | None:
    """The run's record, or None when it has none or only a damaged one (warned about: it is
    redone, and the new record replaces it)."""
    try:
        return read_record(run_dir(out_dir, spec))
    except RecordError as e:
        warnings.warn(f"{e}; the run will be done again", RuntimeWarning, stacklevel=2)
        return None


def status(out_dir: str | Path, spec: RunSpec) -> str:
    """`ok` or `failed` when a record exists, `partial` with only a checkpoint, else `todo`."""
    record = existing_record(out_dir, spec)
    if record is not None:
        return record.status
    d = run_dir(out_dir, spec)
    return "partial" if d.exists() and any(d.glob("*.pt")) else "todo"


def _to_run(state: str, retry_failed: bool) -> bool:
    return state in ("todo", "partial") or (state == "failed" and retry_failed)


def _clean_temporaries(folder: Path) -> None:
    """Remove the temporary files a kill during an atomic write left in a run folder (they
    are never read; seqrec.io names them `.<name>.<random>.tmp`)."""
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


class Sources:
    """One `DataSource` per data reference of a grid (a grid may read several logs)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._by_ref: dict[DataRef, DataSource] = {}

    def __call__(self, ref: DataRef) -> DataSource:
        if ref not in self._by_ref:
            self._by_ref[ref] = DataSource(ref, self.out_dir)
        return self._by_ref[ref]


def prepare(specs: list[RunSpec], sources: Sources) -> None:
    """Prepare (and cache) every split of `specs`; the first that fails raises `DataError`
    naming the run's settings, before anything is trained or recorded."""
    done = set()
    for spec in specs:
        key = (spec.data, spec.config.data, spec.chunk)
        if key in done:
            continue
        try:
            sources(spec.data).split(spec.config.data, spec.chunk)
        except (ValueError, FileNotFoundError) as e:
            raise DataError(f"cannot prepare the data of {spec.run_id} "
                            f"({spec.axis}={spec.value}, chunk {spec.chunk}): {e}") from e
        done.add(key)


def run_one(spec: RunSpec, out_dir: Path, source: DataSource, device, *,  # noqa: ANN001
            progress: bool = True, on_epoch=None) -> RunRecord:  # noqa: ANN001
    """Train one run into its folder (resuming from its checkpoint) and write its record.

    The record carries the run's data source and grid request; after a successful run the
    checkpoints are deleted (a failed run keeps them, so a retry resumes).
    """
    from seqrec.train import train_run

    folder = run_dir(out_dir, spec)
    folder.mkdir(parents=True, exist_ok=True)
    _clean_temporaries(folder)
    split = source.split(spec.config.data, spec.chunk)
    record = train_run(split, spec.config, folder, device, label=spec.label(),
                       progress=progress, on_epoch=on_epoch)
    record = dataclasses.replace(
        record, data=source.summary(spec.config.data.item_key),
        request=spec.request.to_json() if spec.request is not None else None)
    write_record(folder, record)
    if record.ok:
        ckpt.remove_checkpoints(folder / "ckpt.pt")
    return record


def run_specs(specs: list[RunSpec], out_dir: str | Path, device: str = "auto",
              progress: bool = True, retry_failed: bool = False, log: Log = print,
              on_epoch=None) -> list[RunRecord]:  # noqa: ANN001
    """Run every spec that needs it, in order; return all their records (skipped ones too)."""
    out = check_writable(out_dir)
    dev = resolve_device(device)
    sources = Sources(out)
    states = [status(out, s) for s in specs]
    todo = [s for s, st in zip(specs, states, strict=True) if _to_run(st, retry_failed)]
    prepare(todo, sources)
    records = []
    for n, (spec, state) in enumerate(zip(specs, states, strict=True), 1):
        if not _to_run(state, retry_failed):
            records.append(read_record(run_dir(out, spec)))
            continue
        log(f"[{n}/{len(specs)}] {spec.run_id}" + (" (resuming)" if state == "partial" else "")
            + (" (retrying a failed run)" if state == "failed" else ""))
        t0 = time.time()
        rec = run_one(spec, out, sources(spec.data), dev, progress=progress, on_epoch=on_epoch)
        if not rec.ok:
            log(f"    failed: {rec.reason}")
        else:
            shown = ", ".join(f"{k}={rec.metrics[k]:.4f}" for k in ("recall@20", "recall@1",
                                                                   "mrr@20") if k in rec.metrics)
            log(f"    done in {time.time() - t0:.1f}s: {shown}")
        records.append(rec)
    failed = sum(not r.ok for r in records)
    log(f"{len(records)} runs: {len(records) - len(todo)} were done before, {len(todo)} ran; "
        f"{failed} failed" + (" (run again with retry_failed / --retry-failed to retry them)"
                              if failed else ""))
    return records


def grid_specs(experiment: str, data: str | Path | DataRef | None = None,
               profile: str = "smoke", overrides=(), only: list[str] | None = None,  # noqa: ANN001
               shard_spec: str | None = None, models: tuple[str, ...] | None = None,
               baselines: tuple[str, ...] | None = None,
               chunks: tuple[int, ...] | None = None) -> list[RunSpec]:
    """The selected specs of one experiment (or `all`) on `data` (a path, a `DataRef`, or
    None for the profile's built-in log)."""
    ref = data if isinstance(data, DataRef) or data is None else DataRef.file(data)
    reqs = requests(experiment, profile=profile, overrides=overrides, models=models,
                    baselines=baselines, chunks=chunks, data=ref)
    specs = [s for r in reqs for s in build_grid(EXPERIMENTS[r.experiment], r)]
    return select(specs, only, shard_spec)


def run_experiment(experiment: str, out_dir: str | Path, data: str | Path | None = None,
                   profile: str = "smoke", device: str = "auto", overrides=(),  # noqa: ANN001
                   only: list[str] | None = None, shard_spec: str | None = None,
                   models: tuple[str, ...] | None = None,
                   baselines: tuple[str, ...] | None = None, progress: bool = True,
                   retry_failed: bool = False, log: Log = print,
                   on_epoch=None) -> list[RunRecord]:  # noqa: ANN001
    """Build an experiment's grid (or `all`), select, and run it. The notebook's one call."""
    check_writable(out_dir)
    specs = grid_specs(experiment, data, profile, overrides, only, shard_spec, models,
                       baselines)
    return run_specs(specs, out_dir, device=device, progress=progress,
                     retry_failed=retry_failed, log=log, on_epoch=on_epoch)


def plan(specs: list[RunSpec], out_dir: str | Path) -> list[tuple[RunSpec, str]]:
    """What `--dry-run` shows: every spec and its status."""
    return [(s, status(out_dir, s)) for s in specs]


def failed_count(records: list[RunRecord]) -> int:
    return sum(not r.ok for r in records)


__all__ = ["STATES", "DataError", "check_writable", "existing_record", "failed_count",
           "grid_specs", "plan", "prepare", "record_path", "run_dir", "run_experiment",
           "run_one", "run_specs", "status"]

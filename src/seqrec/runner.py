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
from dataclasses import dataclass
from pathlib import Path

from seqrec import checkpoint as ckpt
from seqrec.board import RunBoard
from seqrec.board import available as board_available
from seqrec.data.source import DataRef, DataSource
from seqrec.device import resolve_device
from seqrec.experiment import RunSpec, build_grid, select
from seqrec.experiments import EXPERIMENTS, requests
from seqrec.progress import progress_bar
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


@dataclass(frozen=True)
class RunOptions:
    """How runs are carried out. Nothing here changes a result, so none of it is in a run id.

    `checkpoint_dir`: where checkpoints live while a run trains (default: the run's folder under
    OUT/runs). On Colab, a local folder such as `/content/ckpt` spares Drive a rewrite of up to
    0.5 GB per epoch at the thesis' sizes (and its trash quota), at a price: a checkpoint on the
    local disk is lost with the Colab machine, so a run interrupted by a disconnect starts over.
    Checkpoints of finished runs are deleted either way; `keep_model` writes the final weights
    (`model.pt`) to the run's folder. `tensorboard`: event files under OUT/tensorboard.
    """

    device: str = "auto"
    progress: bool = True
    retry_failed: bool = False
    tensorboard: bool = True
    checkpoint_dir: str | None = None
    keep_model: bool = False


def run_dir(out_dir: str | Path, spec: RunSpec) -> Path:
    return Path(out_dir) / "runs" / spec.run_id


def checkpoint_path(out_dir: str | Path, spec: RunSpec, options: RunOptions = RunOptions()
                    ) -> Path:
    """Where the run's latest checkpoint is (`ckpt.pt`; the previous one is `ckpt.prev.pt`)."""
    folder = (run_dir(out_dir, spec) if options.checkpoint_dir is None
              else Path(options.checkpoint_dir) / spec.run_id)
    return folder / "ckpt.pt"


def existing_record(out_dir: str | Path, spec: RunSpec) -> RunRecord | None:
    """The run's record, or None when it has none or only a damaged one (warned about: it is
    redone, and the new record replaces it)."""
    try:
        return read_record(run_dir(out_dir, spec))
    except RecordError as e:
        warnings.warn(f"{e}; the run will be done again", RuntimeWarning, stacklevel=2)
        return None


def status(out_dir: str | Path, spec: RunSpec, options: RunOptions = RunOptions()) -> str:
    """`ok` or `failed` when a record exists, `partial` with only a checkpoint, else `todo`."""
    record = existing_record(out_dir, spec)
    if record is not None:
        return record.status
    ckpt_file = checkpoint_path(out_dir, spec, options)
    return "partial" if any(p.exists() for p in (ckpt_file, ckpt.previous_path(ckpt_file))) \
        else "todo"


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


def _epoch_line(run_id: str, row: dict) -> str:
    """One line per finished epoch, kept on screen: losses, improvement, time."""
    val = row.get("val_loss")
    text = f"    {run_id} stage {row['stage']} epoch {row['epoch']}: train loss "
    text += f"{row['train_loss']:.4f}"
    if val is not None:
        text += f", val loss {val:.4f} ({'improved' if row.get('improved') else 'no improvement'})"
    return text + f", {row['seconds']:.1f} s"


def run_one(spec: RunSpec, out_dir: Path, source: DataSource, options: RunOptions = RunOptions(),
            log: Log = print) -> RunRecord:
    """Train one run into its folder (resuming from its checkpoint) and write its record.

    The record carries the run's data source and grid request; after a successful run the
    checkpoints are deleted (a failed run keeps them, so a retry resumes). Each finished epoch
    is logged as one line and, with `options.tensorboard`, to the run's TensorBoard folder.
    """
    from seqrec.train import train_run

    folder = run_dir(out_dir, spec)
    folder.mkdir(parents=True, exist_ok=True)
    _clean_temporaries(folder)
    ckpt_file = checkpoint_path(out_dir, spec, options)
    ckpt_file.parent.mkdir(parents=True, exist_ok=True)
    split = source.split(spec.config.data, spec.chunk)
    board = RunBoard(out_dir, spec.run_id) if options.tensorboard and board_available() \
        else None

    def on_epoch(row: dict) -> None:
        log(_epoch_line(spec.run_id, row))
        if board is not None:
            board.epoch(row)

    try:
        record = train_run(split, spec.config, folder, resolve_device(options.device),
                           label=spec.label(), progress=options.progress, on_epoch=on_epoch,
                           checkpoint=ckpt_file, keep_model=options.keep_model)
        record = dataclasses.replace(
            record, data=source.summary(spec.config.data),
            request=spec.request.to_json() if spec.request is not None else None)
        write_record(folder, record)
    except BaseException:
        if board is not None:
            board.close()
        raise
    if board is not None:
        board.final(record)
    if record.ok:
        ckpt.remove_checkpoints(ckpt_file)
        if ckpt_file.parent != folder and not any(ckpt_file.parent.iterdir()):
            ckpt_file.parent.rmdir()
    return record


def run_specs(specs: list[RunSpec], out_dir: str | Path, options: RunOptions = RunOptions(),
              log: Log | None = None) -> list[RunRecord]:
    """Run every spec that needs it, in order; return all their records (skipped ones too).

    Progress: one bar over the grid (runs done of the selection, elapsed, ETA), one line per
    run and per finished epoch (kept), and a final count. `log` replaces the printing (tests).
    """
    out = check_writable(out_dir)
    resolve_device(options.device)  # an unusable device stops here, before anything runs
    sources, states, todo = pending(specs, out, options)
    if options.tensorboard and todo and not board_available():
        (log or print)("TensorBoard is not installed (pip install tensorboard): no event files")
    bar = progress_bar(total=len(specs), initial=len(specs) - len(todo), unit="run",
                       desc="grid", leave=True,
                       disable=not options.progress or log is not None or not todo)
    say = log or bar.write
    records, failed = [], 0
    with bar:
        for spec, state in zip(specs, states, strict=True):
            if not _to_run(state, options.retry_failed):
                records.append(read_record(run_dir(out, spec)))
                continue
            say(f"{spec.run_id}" + (" (resuming)" if state == "partial" else "")
                + (" (retrying a failed run)" if state == "failed" else ""))
            t0 = time.time()
            rec = run_one(spec, out, sources(spec.data), options, log=say)
            failed += not rec.ok
            say(result_line(rec, time.time() - t0))
            records.append(rec)
            bar.set_postfix(failed=failed)
            bar.update(1)
    (log or print)(grid_summary(records, len(records) - len(todo)))
    return records


def pending(specs: list[RunSpec], out: Path, options: RunOptions
            ) -> tuple[Sources, list[str], list[RunSpec]]:
    """The status of every spec, the specs to run (`todo`, in order) and their data prepared:
    what every backend does before any training (data that cannot be prepared raises
    `DataError` here, so nothing runs and nothing is recorded)."""
    sources = Sources(out)
    states = [status(out, s, options) for s in specs]
    todo = [s for s, st in zip(specs, states, strict=True) if _to_run(st, options.retry_failed)]
    prepare(todo, sources)
    return sources, states, todo


def result_line(rec: RunRecord, seconds: float) -> str:
    """The line logged when a run ends: its reason when it failed, else its time and metrics."""
    if not rec.ok:
        return f"    failed: {rec.reason}"
    shown = ", ".join(f"{k}={rec.metrics[k]:.4f}" for k in ("recall@20", "recall@1", "mrr@20")
                      if k in rec.metrics)
    return f"    done in {seconds:.1f}s: {shown}"


def grid_summary(records: list[RunRecord], before: int) -> str:
    """The final count of a grid: runs done (`before` of them by an earlier call), failed."""
    failed = sum(not r.ok for r in records)
    summary = (f"{len(records) - failed} of {len(records)} runs done ({before} before, "
               f"{len(records) - before} now)")
    if failed:
        summary += (f"; {failed} failed (their reasons are in their records and the report; "
                    "retry them with retry_failed=True / --retry-failed)")
    return summary


BACKENDS = ("local", "ray")


def run_grid(specs: list[RunSpec], out_dir: str | Path, options: RunOptions = RunOptions(),
             log: Log | None = None, backend: str = "local", **backend_options
             ) -> list[RunRecord]:
    """`run_specs` on a backend: `local` (this process, one run after another) or `ray` (one
    Ray task per run on a Ray cluster; `backend_options` are `seqrec.ray_backend.RayOptions`'
    fields; docs/cluster.md). Runs that no record came back for (a Ray task lost with its
    workers) are missing from the list returned."""
    if backend == "ray":
        from seqrec.ray_backend import RayOptions, run_specs_ray

        return run_specs_ray(specs, out_dir, options, log, RayOptions(**backend_options))
    if backend != "local":
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend_options:
        raise ValueError(f"{', '.join(sorted(backend_options))} only apply to the ray backend "
                         "(--backend ray)")
    return run_specs(specs, out_dir, options, log)


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
                   profile: str = "smoke", overrides=(), only: list[str] | None = None,  # noqa: ANN001
                   shard_spec: str | None = None, models: tuple[str, ...] | None = None,
                   baselines: tuple[str, ...] | None = None,
                   options: RunOptions = RunOptions(), log: Log | None = None
                   ) -> list[RunRecord]:
    """Build an experiment's grid (or `all`), select, and run it."""
    check_writable(out_dir)
    specs = grid_specs(experiment, data, profile, overrides, only, shard_spec, models,
                       baselines)
    return run_specs(specs, out_dir, options, log)


def plan(specs: list[RunSpec], out_dir: str | Path, options: RunOptions = RunOptions()
         ) -> list[tuple[RunSpec, str]]:
    """What `--dry-run` shows: every spec and its status."""
    return [(s, status(out_dir, s, options)) for s in specs]


def failed_count(records: list[RunRecord], planned: int | None = None) -> int:
    """Failed runs among `records`; with `planned` (the grid's run count), the runs that came
    back without a record (lost with their Ray workers, `run_grid`) count as failed too."""
    return sum(not r.ok for r in records) + (0 if planned is None else planned - len(records))


__all__ = ["BACKENDS", "STATES", "DataError", "RunOptions", "Sources", "check_writable",
           "checkpoint_path", "existing_record", "failed_count", "grid_specs", "grid_summary",
           "pending", "plan", "prepare", "record_path", "result_line", "run_dir",
           "run_experiment", "run_grid", "run_one", "run_specs", "status"]

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
sharing the folder need no coordination; without shards, a run is claimed before it trains
(`seqrec.claim`: a lease file with a heartbeat each epoch), and a process that finds a run
claimed by another live one skips it with one line.

A damaged record (`RecordError`: unreadable, failing its checksum, values out of range) is set
aside as `record.damaged-<UTC time>.json` (kept, never deleted) and the run is done again. Each
pass over a grid also removes what kills left behind: the checkpoints of runs whose record is ok,
and temporary files older than `seqrec.io.STALE_TMP_SECONDS` under `cache/` and `report/`
(docs/reliability.md, "Records, run folders and the report").
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
from seqrec.claim import Lease, RunClaimed, claim
from seqrec.data.source import DataRef, DataSource
from seqrec.device import resolve_device
from seqrec.experiment import RunSpec
from seqrec.io import stale_temporaries
from seqrec.progress import progress_bar
from seqrec.provenance import versions_line
from seqrec.ranks import ranks_path
from seqrec.record import (
    EpochRow,
    RecordError,
    RunRecord,
    RunState,
    read_record,
    record_path,
    write_record,
)
from seqrec.train import CHECKPOINT_FILE, train_run

Log = Callable[..., None]
STATES = tuple(s.value for s in RunState)


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
    return folder / CHECKPOINT_FILE


DAMAGED_PREFIX = "record.damaged-"


def set_aside(path: Path) -> Path:
    """Rename a damaged record to `record.damaged-<UTC time>.json` beside it (kept for a
    look, never read again: the report lists these files)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{DAMAGED_PREFIX}{stamp}.json")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{DAMAGED_PREFIX}{stamp}-{n}.json")
    path.rename(target)
    return target


def existing_record(out_dir: str | Path, spec: RunSpec, set_aside_damaged: bool = False
                    ) -> RunRecord | None:
    """The run's record, or None when it has none or only a damaged one (warned about: it is
    redone, and the new record replaces it). With `set_aside_damaged` a damaged record is
    renamed first (`set_aside`), as every pass that runs a grid does."""
    try:
        return read_record(run_dir(out_dir, spec))
    except RecordError as e:
        aside = ""
        if set_aside_damaged:
            aside = f"; set aside as {set_aside(record_path(run_dir(out_dir, spec))).name}"
        warnings.warn(f"{e}{aside}; the run will be done again", RuntimeWarning, stacklevel=2)
        return None


def status(out_dir: str | Path, spec: RunSpec, options: RunOptions = RunOptions(),
           set_aside_damaged: bool = False) -> RunState:
    """`ok` or `failed` when a record exists, `partial` with only a checkpoint, else `todo`."""
    record = existing_record(out_dir, spec, set_aside_damaged)
    if record is not None:
        return RunState(record.status)
    ckpt_file = checkpoint_path(out_dir, spec, options)
    partial = any(p.exists() for p in (ckpt_file, ckpt.previous_path(ckpt_file)))
    return RunState.PARTIAL if partial else RunState.TODO


def _to_run(state: str, retry_failed: bool) -> bool:
    return state in (RunState.TODO, RunState.PARTIAL) or (state == RunState.FAILED
                                                          and retry_failed)


def _clean_temporaries(folder: Path) -> None:
    """Remove the temporary files a kill during an atomic write left in a run folder (they
    are never read; seqrec.io names them `.<name>.<random>.tmp`)."""
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def clean_leftovers(out: Path, specs: list[RunSpec], states: list[str],
                    options: RunOptions) -> None:
    """What a kill after a run's record left: the checkpoints of runs whose record is ok (and
    their temporary files), and temporary files under `cache/` and `report/` old enough not to
    be another process' write in progress (`seqrec.io.stale_temporaries`)."""
    for spec, state in zip(specs, states, strict=True):
        if state == "ok":
            ckpt_file = checkpoint_path(out, spec, options)
            ckpt.remove_checkpoints(ckpt_file)
            if ckpt_file.parent != run_dir(out, spec) and ckpt_file.parent.is_dir() \
                    and not any(ckpt_file.parent.iterdir()):
                ckpt_file.parent.rmdir()
    for name in ("cache", "report"):
        stale_temporaries(out / name)


class Sources:
    """One `DataSource` per data reference of a grid (a grid may read several logs)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._by_ref: dict[DataRef, DataSource] = {}

    def __call__(self, ref: DataRef) -> DataSource:
        if ref not in self._by_ref:
            self._by_ref[ref] = DataSource(ref, self.out_dir)
        return self._by_ref[ref]


def split_of_each(specs: list[RunSpec], sources: Sources):  # noqa: ANN201 - list of pairs
    """`(spec, split)` for the first spec of each distinct split of `specs` (data, data
    settings, chunk), in order, each prepared (and cached); the first that cannot be prepared
    raises `DataError` naming the run's settings."""
    done, out = set(), []
    for spec in specs:
        key = (spec.data, spec.config.data, spec.chunk)
        if key in done:
            continue
        try:
            split = sources(spec.data).split(spec.config.data, spec.chunk)
        except (ValueError, FileNotFoundError) as e:
            raise DataError(f"cannot prepare the data of {spec.run_id} "
                            f"({spec.axis}={spec.value}, chunk {spec.chunk}): {e}") from e
        done.add(key)
        out.append((spec, split))
    return out


def prepare(specs: list[RunSpec], sources: Sources) -> None:
    """Prepare (and cache) every split of `specs` before anything is trained or recorded
    (`split_of_each`)."""
    split_of_each(specs, sources)


def _epoch_line(run_id: str, row: EpochRow) -> str:
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
    The run folder is claimed first (`seqrec.claim`): `RunClaimed` when another live process
    holds it; a run another process finished meanwhile returns that process' record.
    """
    folder = run_dir(out_dir, spec)
    folder.mkdir(parents=True, exist_ok=True)
    lease = claim(folder)  # RunClaimed: another live process trains this run
    try:
        return _run_claimed(spec, out_dir, source, options, log, lease)
    finally:
        lease.release()


def _run_claimed(spec: RunSpec, out_dir: Path, source: DataSource, options: RunOptions,
                 log: Log, lease: Lease) -> RunRecord:
    folder = run_dir(out_dir, spec)
    done = existing_record(out_dir, spec, set_aside_damaged=True)
    if done is not None and done.ok:  # finished by another process since the grid was planned
        log(f"    {spec.run_id}: finished by another process meanwhile")
        return done
    _clean_temporaries(folder)
    ckpt_file = checkpoint_path(out_dir, spec, options)
    ckpt_file.parent.mkdir(parents=True, exist_ok=True)
    split = source.split(spec.config.data, spec.chunk)
    board = RunBoard(out_dir, spec.run_id) if options.tensorboard and board_available() \
        else None

    def on_epoch(row: dict) -> None:
        lease.renew(row.get("seconds") or 0.0)  # ClaimLost: taken over, stop before writing
        log(_epoch_line(spec.run_id, row))
        if board is not None:
            board.epoch(row)

    try:
        record = train_run(split, spec.config, folder, resolve_device(options.device),
                           label=spec.label(), progress=options.progress, on_epoch=on_epoch,
                           checkpoint=ckpt_file, keep_model=options.keep_model,
                           ranks_file=ranks_path(folder))  # per-window ranks (seqrec.ranks)
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
    # Read the finished records for their versions only when something is about to train.
    mixed = versions_of_finished(specs, states, out) if todo else None
    if mixed:
        (log or print)(mixed)
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
            say(f"{spec.run_id}" + (" (resuming)" if state == RunState.PARTIAL else "")
                + (" (retrying a failed run)" if state == RunState.FAILED else ""))
            t0 = time.time()
            try:
                rec = run_one(spec, out, sources(spec.data), options, log=say)
            except RunClaimed as e:  # another process trains it: no record from us
                say(f"    {e}")
                bar.update(1)
                continue
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
    states = [status(out, s, options, set_aside_damaged=True) for s in specs]
    todo = [s for s, st in zip(specs, states, strict=True) if _to_run(st, options.retry_failed)]
    clean_leftovers(out, specs, states, options)
    prepare(todo, sources)
    return sources, states, todo


def versions_of_finished(specs: list[RunSpec], states: list[str], out: Path) -> str | None:
    """One line when the finished runs among `specs` (`states` from `status`) came from
    another seqrec than this one, or from several (`provenance.versions_line`); else None."""
    finished = [existing_record(out, s) for s, st in zip(specs, states, strict=True)
                if RunState(st).finished]
    return versions_line([r.versions for r in finished if r is not None])


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


def plan(specs: list[RunSpec], out_dir: str | Path, options: RunOptions = RunOptions()
         ) -> list[tuple[RunSpec, str]]:
    """What `--dry-run` shows: every spec and its status."""
    return [(s, status(out_dir, s, options)) for s in specs]


def failed_count(records: list[RunRecord], planned: int | None = None) -> int:
    """Failed runs among `records`; with `planned` (the grid's run count), the runs that came
    back without a record (lost with their Ray workers, `run_grid`) count as failed too."""
    return sum(not r.ok for r in records) + (0 if planned is None else planned - len(records))


__all__ = ["STATES", "DataError", "RunOptions", "Sources", "check_writable",
           "checkpoint_path", "clean_leftovers", "existing_record", "failed_count",
           "grid_summary", "pending", "plan", "prepare", "record_path", "result_line", "run_dir",
           "run_one", "run_specs", "set_aside", "split_of_each", "status",
           "versions_of_finished"]

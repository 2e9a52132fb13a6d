"""The experiment grid on a Ray cluster: every run of the selection is one Ray task.

The runner owns a run folder's life (docs/design.md); this backend only decides where each run
trains. The driver (the process that calls `run_specs_ray`) does what the local runner does
before any training, with the runner's own code (`runner.pending`): it reads every run's status
in the output folder, keeps the runs to do (skip / resume / retry as locally) and prepares
their data, so data that cannot be prepared stops the grid before Ray is even started. Then
each run to do becomes one Ray task, which calls the runner's `run_one` in a worker process:
the worker trains into the same output folder, resuming from the run's checkpoint, and writes
the run's record there, exactly as the local runner would.

Why tasks, not Ray Tune trials: a grid here is a fixed list of independent runs with no search
and no scheduler deciding between them, and the runner already owns what Tune would own
(trial folders, checkpoints, resuming, results). A task is a function call with a resource
request and retries, which is all a run needs; Tune would add a second folder layout and a
second resume mechanism (`Tuner.restore`) beside the runner's.

- Resources: each task asks for `cpus_per_run` CPUs and `gpus_per_run` GPUs (a fraction such
  as 0.25 lets four small runs share one GPU; Ray gives the task its GPU through
  CUDA_VISIBLE_DEVICES). By default a run asks for one GPU when the cluster has GPUs (and the
  device is not `cpu`), else none.
- Threads: a run trains with `threads = max(1, floor(cpus_per_run))` threads: OMP_NUM_THREADS,
  MKL_NUM_THREADS and OPENBLAS_NUM_THREADS are set in the worker's environment before it starts
  (a runtime_env) and `torch.set_num_threads` at the start of every task, so runs that share a
  machine never ask for more threads than the cores Ray gave them (oversubscribed OpenMP
  threads spin: 30x slower here).
- Retries: a task whose worker or node dies is run again by Ray (`max_retries`, default 3) on
  another worker; the runner's `run_one` resumes it from its last checkpoint (saved after every
  epoch with every random-number state), so it ends as an uninterrupted run would (bitwise on
  the CPU, with the same thread count). An exception raised by a run (a bug, bad settings) is
  not retried: it stops the grid as it does locally (the other runs are cancelled; they resume
  from their checkpoints next time). A run that fails for its own reasons (divergence, out of
  memory) is recorded as failed, as locally. A run whose retries are used up has no record: it
  is reported as lost and resumes when the grid is run again.
- Progress: the driver shows one bar over the grid (finished runs, with running, failed and
  lost ones in its postfix, and an ETA), a line when a run starts (where, with how many threads)
  and when it ends; the workers' epoch lines reach the driver through Ray's log forwarding.

Every worker must see the output folder at the same path (shared storage; the checkpoint folder
too when `RunOptions.checkpoint_dir` is set) and have seqrec installed: docs/cluster.md.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from seqrec.board import available as board_available
from seqrec.claim import RunClaimed
from seqrec.data.source import DataRef, DataSource
from seqrec.ray_tracker import Tracker
from seqrec.record import RunRecord, RunState, read_record
from seqrec.runner import (
    Log,
    RunOptions,
    check_writable,
    grid_summary,
    pending,
    result_line,
    run_dir,
    run_one,
    status,
)

RAY_MISSING = ("the ray backend needs Ray, which is not installed here: pip install "
               "'seqrec[ray]' (or pip install ray), or run without --backend ray")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
RAY_DEVICES = ("auto", "cpu", "cuda")


def import_ray():  # noqa: ANN201 - the ray module
    """The `ray` module, or a ValueError saying in one sentence how to install it."""
    try:
        import ray
    except ImportError as e:
        raise ValueError(RAY_MISSING) from e
    return ray


@dataclass(frozen=True)
class RayOptions:
    """Where and with what the runs of a grid train on Ray. Nothing here changes a result.

    `address`: the Ray cluster (`auto`, `HOST:6379`, `ray://HOST:10001`); None starts a local
    Ray instance on this machine (all its cores and GPUs) and stops it at the end, unless this
    process is already connected to Ray (`ray.init` called before), which is then used as it is.
    `cpus_per_run` (a fraction is allowed; the run trains with `max(1, floor(cpus))` threads),
    `gpus_per_run` (a fraction shares a GPU; None: 1 when the cluster has GPUs and the device is
    not `cpu`, else 0), `max_retries`: how often a run whose worker died is started again
    (resuming from its checkpoint); -1 without limit.
    """

    address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float | None = None
    max_retries: int = 3

    def __post_init__(self) -> None:
        if self.cpus_per_run is None:
            object.__setattr__(self, "cpus_per_run", 1.0)
        if self.max_retries is None:
            object.__setattr__(self, "max_retries", 3)
        if not self.cpus_per_run > 0:
            raise ValueError(f"cpus_per_run must be above 0, got {self.cpus_per_run}")
        gpus = self.gpus_per_run
        if gpus is not None and (gpus < 0 or (gpus > 1 and gpus != int(gpus))):
            raise ValueError(f"gpus_per_run must be 0, a fraction of one GPU or a whole number "
                             f"of GPUs, got {gpus}")
        if self.max_retries < -1:
            raise ValueError(f"max_retries must be -1 (no limit) or more, got "
                             f"{self.max_retries}")

    @property
    def threads(self) -> int:
        """The threads each run trains with: its whole CPUs, at least one."""
        return max(1, math.floor(self.cpus_per_run))


# ---------------------------------------------------------------------------------------------
# In the worker

_SOURCES: dict[tuple[str, DataRef], DataSource] = {}


def _source(out: Path, ref: DataRef) -> DataSource:
    """One `DataSource` per output folder and data per worker process (a worker runs many
    tasks in a row: the events and the last split stay loaded)."""
    key = (str(out), ref)
    if key not in _SOURCES:
        _SOURCES[key] = DataSource(ref, out)
    return _SOURCES[key]


def set_threads(threads: int) -> int:
    """Give this process `threads` threads (the environment for libraries loaded later, and
    torch's pool now); returns the number torch uses."""
    for name in THREAD_VARS:
        os.environ[name] = str(threads)
    torch.set_num_threads(threads)
    return torch.get_num_threads()


def run_task(spec, out: str, options: RunOptions, state: str, threads: int,  # noqa: ANN001
             tracker) -> RunRecord | str:  # noqa: ANN001 - a RunSpec; (Tracker actor, grid) or None
    """One Ray task: the runner's `run_one` for one spec, in a worker process.

    `state` is the run's status when the driver planned it. A retried task finds the record an
    earlier attempt wrote when its worker died after writing it, and returns that record. A run
    another process holds (`seqrec.claim`) returns the line saying so instead of a record."""
    import ray

    folder = Path(out)
    now = status(folder, spec, options)
    if now == RunState.OK or (now == RunState.FAILED and state != RunState.FAILED):
        return read_record(run_dir(folder, spec))
    used = set_threads(threads)
    gpus = ray.get_gpu_ids()
    device = options.device if options.device != "auto" else ("cuda" if gpus else "cpu")
    if tracker is not None:
        tracker, grid = tracker
        tracker.started.remote(grid, spec.run_id, now, socket.gethostname(), os.getpid(), used,
                               [str(g) for g in gpus])
    try:
        return run_one(spec, folder, _source(folder, spec.data),
                       dataclasses.replace(options, device=device, progress=False), log=print)
    except RunClaimed as e:
        return str(e)


# ---------------------------------------------------------------------------------------------
# In the driver

def _connect(ray, address: str | None) -> bool:  # noqa: ANN001
    """Connect to Ray; True when this call connected (so the grid disconnects at the end)."""
    if ray.is_initialized():
        return False
    try:
        if address is None:
            # A new instance on this machine only (not one `ray start` left running).
            ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
        else:
            ray.init(address=address, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as e:
        what = ("start a local Ray instance", "see Ray's log under /tmp/ray") \
            if address is None else (f"connect to the Ray cluster at {address!r}",
                                     "check the address (`ray status` on the head node)")
        raise ValueError(f"cannot {what[0]} ({_first_line(e)}); {what[1]}") from e
    return True


def task_resources(ray, ray_options: RayOptions, device: str, local: bool,  # noqa: ANN001
                   say: Log) -> tuple[float, float]:
    """(CPUs, GPUs) each run asks for; an impossible request stops here on a local instance
    (nothing would ever run) and is warned about on a cluster (an autoscaler may add nodes)."""
    cluster = ray.cluster_resources()
    cpus, gpus = float(ray_options.cpus_per_run), ray_options.gpus_per_run
    if gpus is None:
        gpus = 1.0 if device != "cpu" and cluster.get("GPU", 0) > 0 else 0.0
    if device == "cuda" and gpus == 0:
        raise ValueError("device 'cuda' was asked for but the runs ask for no GPU (the cluster "
                         "has none, or --gpus-per-run 0); use --device cpu or --gpus-per-run")
    if device == "cpu" and gpus > 0:
        raise ValueError("device 'cpu' was asked for with --gpus-per-run above 0; drop one")
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    slots = sum(min(math.floor(r.get("CPU", 0) / cpus),
                    math.floor(r.get("GPU", 0) / gpus) if gpus else math.inf) for r in nodes)
    ask = f"{_count(cpus, 'CPU')} and {_count(gpus, 'GPU')}"
    if slots == 0:
        text = f"no node of the Ray cluster has {ask} free for one run"
        if local:
            raise ValueError(f"{text} (this machine has {_count(cluster.get('CPU', 0), 'CPU')}"
                             f" and {_count(cluster.get('GPU', 0), 'GPU')}); lower "
                             "--cpus-per-run or --gpus-per-run")
        say(f"{text}: the runs wait until one joins (an autoscaling cluster); Ctrl-C stops")
    else:
        say(f"ray: {_count(len(nodes), 'node')}, {_count(cluster.get('CPU', 0), 'CPU')}, "
            f"{_count(cluster.get('GPU', 0), 'GPU')}; each run asks for {ask} "
            f"({_count(ray_options.threads, 'thread')}): up to {slots} at a time")
    return cpus, gpus


def _count(n: float, noun: str) -> str:
    return f"{n:g} {noun}{'' if n == 1 else 's'}"


def _started_line(event: tuple, again: bool) -> str:
    run_id, state, host, pid, threads, gpus = event
    where = f"{host}, pid {pid}, {_count(threads, 'thread')}"
    if gpus:
        where += f", GPU {','.join(gpus)}"
    how = " (resuming after its worker died)" if again else \
        {RunState.PARTIAL: " (resuming)", RunState.FAILED: " (retrying a failed run)"}.get(
            RunState(state), "")
    return f"{run_id} started{how} on {where}"


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def run_specs_ray(specs: list, out_dir: str | Path, options: RunOptions | None = None,
                  log: Log | None = None, ray_options: RayOptions = RayOptions()
                  ) -> list[RunRecord]:
    """Run every spec that needs it as one Ray task; return the records in the order of
    `specs` (skipped ones too; a run lost with its workers has none, and the final line says
    so). `log` replaces the printing and the bar (tests)."""
    ray = import_ray()  # Ray missing: one sentence, before anything else
    options = options or RunOptions()
    if options.device not in RAY_DEVICES:
        raise ValueError(f"the ray backend takes --device {' / '.join(RAY_DEVICES)} (each run "
                         f"is given its GPU by Ray), got {options.device!r}")
    out = check_writable(out_dir).resolve()  # workers may not share the driver's folder
    if options.checkpoint_dir is not None:
        options = dataclasses.replace(options,
                                      checkpoint_dir=str(Path(options.checkpoint_dir).resolve()))
    _, states, todo = pending(specs, out, options)  # data that cannot be prepared stops here
    state_of = {s.run_id: st for s, st in zip(specs, states, strict=True)}
    before = len(specs) - len(todo)
    say = log or print
    records: dict[str, RunRecord] = {}
    lost: list[tuple[str, str]] = []
    if todo:
        connected = _connect(ray, ray_options.address)
        try:
            records, lost = _run_tasks(ray, todo, state_of, out, options, ray_options, log,
                                       local=connected and ray_options.address is None,
                                       total=len(specs), before=before)
        finally:
            if connected:
                ray.shutdown()
    to_do = {s.run_id for s in todo}
    done = [records[s.run_id] if s.run_id in to_do else read_record(run_dir(out, s))
            for s in specs if s.run_id in records or s.run_id not in to_do]
    summary = grid_summary(done, before)
    if lost:
        summary += (f"; {len(lost)} lost, without a record (their workers died and the "
                    f"retries were used up; {lost[0][0]}: {lost[0][1]}): run the grid again to "
                    "resume them from their checkpoints")
    say(summary)
    return done


def _run_tasks(ray, todo: list, state_of: dict, out: Path, options: RunOptions,  # noqa: ANN001
               ray_options: RayOptions, log: Log | None, local: bool, total: int, before: int
               ) -> tuple[dict[str, RunRecord], list[tuple[str, str]]]:
    """Submit one task per spec of `todo` and follow them to the end: (records, lost runs)."""
    # smoothing=0: the ETA from the mean rate since the start (runs end in bursts when many
    # train at once; tqdm's default moving average would swing with each burst).
    bar = tqdm(total=total, initial=before, unit="run", desc="grid (ray)", smoothing=0,
               disable=not options.progress or log is not None, leave=True)
    say = log or bar.write
    with bar:
        cpus, gpus = task_resources(ray, ray_options, options.device, local, say)
        if options.tensorboard and not board_available():
            say("TensorBoard is not installed here (pip install tensorboard): workers without "
                "it write no event files")
        tracker = _tracker(ray)
        events = _Events(ray, tracker, uuid.uuid4().hex)
        env = {name: str(ray_options.threads) for name in THREAD_VARS}
        task = ray.remote(run_task).options(
            num_cpus=cpus, num_gpus=gpus, max_retries=ray_options.max_retries,
            retry_exceptions=False, runtime_env={"env_vars": env})
        refs = {task.remote(spec, str(out), options, state_of[spec.run_id],
                            ray_options.threads, (tracker, events.grid)): spec for spec in todo}
        records: dict[str, RunRecord] = {}
        lost: list[tuple[str, str]] = []
        running: set[str] = set()
        seen: set[str] = set()
        ended: set[str] = set()
        failed = 0
        try:
            while refs:
                # wakes when a run ends or the tracker hears of a start
                ready, _ = ray.wait([*refs, *events.pending()], num_returns=1, timeout=1.0)
                ready = [ref for ref in ready if ref in refs]
                for event in events.new():
                    say(_started_line(event, again=event[0] in seen))
                    seen.add(event[0])
                    if event[0] not in ended:  # its end may have come before its start
                        running.add(event[0])
                for ref in ready:
                    spec = refs.pop(ref)
                    running.discard(spec.run_id)
                    ended.add(spec.run_id)
                    try:
                        rec = ray.get(ref)
                    except ray.exceptions.RayTaskError as e:  # the run raised: stop the grid
                        cause = getattr(e, "cause", None)
                        raise (cause if isinstance(cause, Exception) else e) from None
                    except ray.exceptions.RayError as e:  # workers died, retries used up
                        lost.append((spec.run_id, _first_line(e)))
                        say(f"{spec.run_id} lost: {_first_line(e)}")
                    else:
                        if isinstance(rec, str):  # claimed by another process: skipped
                            say(rec)
                            bar.update(1)
                            continue
                        records[spec.run_id] = rec
                        failed += not rec.ok
                        say(f"{spec.run_id}: " + result_line(rec, rec.seconds or 0.0).strip())
                    bar.update(1)
                bar.set_postfix(running=len(running), failed=failed, lost=len(lost),
                                refresh=False)
                bar.refresh()
            for event in events.rest():  # starts heard of after the run's end
                say(_started_line(event, again=event[0] in seen))
                seen.add(event[0])
        except BaseException:
            for ref in refs:  # they resume from their checkpoints next time
                ray.cancel(ref)
            if events.call is not None:
                tracker.close.remote(events.grid)
            raise
    return records, lost


_TRACKER: list = []  # [(job id, Tracker actor handle)]: one per driver connection


def _tracker(ray):  # noqa: ANN001, ANN202
    """This connection's tracker actor (made on first use and kept: an actor lives while a
    handle to it does, and the grids a notebook runs one after another share it)."""
    job = ray.get_runtime_context().get_job_id()
    if not _TRACKER or _TRACKER[0][0] != job:
        _TRACKER[:] = [(job, ray.remote(num_cpus=0)(Tracker).remote())]
    return _TRACKER[0][1]


class _Events:
    """One grid's start events from the tracker, fetched without waiting for it (it starts in a
    process of its own while the first runs train). A tracker that fails is dropped: the grid
    goes on without start lines and running count."""

    def __init__(self, ray, tracker, grid: str) -> None:  # noqa: ANN001
        self.ray, self.tracker, self.grid = ray, tracker, grid
        self.call = tracker.drain.remote(grid)

    def pending(self) -> list:
        """The tracker call to wait on beside the runs (none once the tracker failed)."""
        return [] if self.call is None else [self.call]

    def _get(self, ref) -> list[tuple]:  # noqa: ANN001
        try:
            return self.ray.get(ref, timeout=5.0)
        except (self.ray.exceptions.RayError, TimeoutError):
            self.call = None
            _TRACKER.clear()
            return []

    def new(self) -> list[tuple]:
        if self.call is None or not self.ray.wait([self.call], timeout=0)[0]:
            return []
        events = self._get(self.call)
        if self.call is not None:
            self.call = self.tracker.drain.remote(self.grid)
        return events

    def rest(self) -> list[tuple]:
        """Every event not fetched yet (the tracker forgets the grid)."""
        if self.call is None:
            return []
        last = self.tracker.close.remote(self.grid)
        return [*self._get(self.call), *self._get(last)]


__all__ = ["RAY_MISSING", "RayOptions", "Tracker", "import_ray", "run_specs_ray", "run_task",
           "set_threads", "task_resources"]

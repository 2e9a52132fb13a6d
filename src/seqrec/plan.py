"""The plan before a grid runs: per experiment what is done, to do and failed, and how long the
rest will take on this device.

The estimate is measured, not guessed, and its measuring is bounded in time. For every group of
runs that share a model's sizes (the model settings, the window length and the batch size), a few
training steps (forward, backward, Adam) of that model at the largest item and user count of the
group's splits are timed on the device after one warm-up step. On a CPU the steps are timed at a
batch of at most `PROBE_BATCH` windows and scaled by `batch_size / PROBE_BATCH` (a CPU's step
time grows in proportion to the batch at these sizes), so timing a thesis-size model takes
seconds rather than minutes. Timing stops after `TIMING_BUDGET_S` seconds: a group not timed by
then is estimated from a timed group of the same model (else any model), scaled by the ratio of
their work per step (`step_work`), and the plan says the estimate is rough. A run's time is then

    seconds per step x (batches of train per epoch x epochs
                        + batches of train + val per epoch x epochs, with retraining),

that is, as if no run stopped early (an upper bound; early stopping usually ends stage (a)
sooner, and stage (b) trains only the epochs kept). Evaluation and data preparation are not
counted, and count baselines take seconds. The splits themselves are prepared (and cached) to
know their sizes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from seqrec.device import resolve_device
from seqrec.experiment import RunSpec
from seqrec.models import build_model
from seqrec.models.registry import REGISTRY
from seqrec.record import RunState
from seqrec.runner import RunOptions, Sources, status
from seqrec.train.epoch import make_optimizer

COLAB_SESSION_HOURS = 12.0  # about the longest a Colab session lives
PROBE_BATCH = 32  # CPU steps are timed at this batch at most (module docstring)
TIMING_BUDGET_S = 60.0  # timing stops after this long; the rest is scaled (module docstring)


@dataclass(frozen=True)
class ExperimentPlan:
    """One experiment's selection: counts by status and the estimated seconds of what is left."""

    experiment: str
    runs: int
    done: int
    failed: int
    partial: int
    todo: int
    seconds: float  # upper bound for the runs still to train (todo + partial)
    rough: bool = False  # some of its runs' step times were scaled, not timed


def _size_key(spec: RunSpec) -> tuple:
    """Runs of one key train the same model at the same sizes, but for the item count."""
    return (spec.config.model, spec.config.data.seq_len, spec.config.train.batch_size)


def step_work(spec: RunSpec, n_items: int) -> float:
    """A proxy of one training step's work, for scaling a timed step to an untimed size:
    batch x (steps x hidden x (input + hidden) + hidden x items), a recurrent layer over the
    window and the output layer over all items."""
    m, t = spec.config.model, spec.config.train
    emb = n_items if m.embedding_size == -1 else m.embedding_size
    steps = spec.config.data.seq_len - 1
    return float(t.batch_size) * (steps * m.hidden_size * (emb + m.hidden_size)
                                  + m.hidden_size * n_items)


def step_seconds(spec: RunSpec, n_items: int, n_users: int, device: torch.device,
                 steps: int = 3, batch: int | None = None) -> float:
    """Median seconds of one training step of `spec`'s model at these sizes on `device`, at
    `batch` windows (default: the run's batch size)."""
    cfg = spec.config
    model = build_model(cfg.model, n_items, n_users).to(device)
    opt = make_optimizer(model, cfg.train)
    b, t = batch or cfg.train.batch_size, cfg.data.seq_len - 1
    gen = torch.Generator().manual_seed(0)
    items = torch.randint(0, n_items, (b, t), generator=gen).to(device)
    users = torch.randint(0, n_users, (b, t), generator=gen).to(device)
    target = torch.randint(0, n_items, (b,), generator=gen).to(device)
    times = []
    for _ in range(steps + 1):  # the first step warms up allocators and kernels
        start = time.perf_counter()
        loss = model.loss(items, users, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    times = sorted(times[1:])
    return times[len(times) // 2]


def run_seconds(spec: RunSpec, per_step: float, n_train: int, n_val: int) -> float:
    """The upper-bound time of one run (see the module docstring)."""
    t = spec.config.train
    batches = math.ceil(n_train / t.batch_size)
    total = per_step * batches * t.epochs
    if t.retrain:
        total += per_step * math.ceil((n_train + n_val) / t.batch_size) * t.epochs
    return total


def make_plan(specs: list[RunSpec], out_dir, options: RunOptions | None = None,  # noqa: ANN001
              steps: int = 3, log: Callable[[str], None] = print,
              budget_s: float = TIMING_BUDGET_S) -> list[ExperimentPlan]:
    """The plan of `specs` (their order of experiments kept), timing steps as described in the
    module docstring, within about `budget_s` seconds of timing."""
    options = options or RunOptions()
    device = resolve_device(options.device)
    sources = Sources(out_dir)
    by_exp: dict[str, dict] = {}
    to_time: list[tuple[RunSpec, tuple, int, int]] = []  # (spec, key, train, val windows)
    largest: dict[tuple, tuple[int, int, RunSpec]] = {}  # key -> (items, users, a spec)
    for spec in specs:
        state = status(out_dir, spec, options)
        counts = by_exp.setdefault(spec.experiment, {**{s.value: 0 for s in RunState},
                                                     "seconds": 0.0, "runs": 0,
                                                     "rough": False})
        counts[state.value] += 1
        counts["runs"] += 1
        if state.finished or not REGISTRY[spec.model].trained:
            continue
        split = sources(spec.data).split(spec.config.data, spec.chunk)
        key = _size_key(spec)
        items, users, _ = largest.get(key, (0, 0, spec))
        largest[key] = (max(items, split.n_items), max(users, split.n_users), spec)
        to_time.append((spec, key, len(split.train), len(split.val)))
    per_step, scaled = _time_steps(largest, device, steps, log, budget_s)
    for spec, key, n_train, n_val in to_time:
        counts = by_exp[spec.experiment]
        counts["seconds"] += run_seconds(spec, per_step[key], n_train, n_val)
        counts["rough"] |= key in scaled
    return [ExperimentPlan(name, c["runs"], c["ok"], c["failed"], c["partial"], c["todo"],
                           c["seconds"], c["rough"]) for name, c in by_exp.items()]


def _time_steps(largest: dict[tuple, tuple[int, int, RunSpec]], device: torch.device,
                steps: int, log: Callable[[str], None], budget_s: float
                ) -> tuple[dict[tuple, float], set[tuple]]:
    """Seconds per step of every size key, and the keys scaled rather than timed: each key is
    timed (smallest work first, so that every model is timed before the budget runs out) until
    `budget_s` has passed; the rest are scaled from a timed key (module docstring)."""
    work = {k: step_work(spec, items) for k, (items, _, spec) in largest.items()}
    order = sorted(largest, key=work.__getitem__)
    firsts = list({largest[k][2].model: k for k in reversed(order)}.values())
    timed: dict[tuple, float] = {}
    start = time.perf_counter()
    for key in firsts + [k for k in order if k not in firsts]:
        items, users, spec = largest[key]
        if time.perf_counter() - start > budget_s and timed:
            break
        batch = spec.config.train.batch_size
        probe = batch if device.type == "cuda" else min(batch, PROBE_BATCH)
        log(f"  timing {spec.model} ({spec.axis}={spec.value}, {items:,} items) ...")
        timed[key] = step_seconds(spec, items, users, device, steps, probe) * batch / probe
    per_step = dict(timed)
    for key in order:
        if key in per_step:
            continue
        model = largest[key][2].model
        same = [k for k in timed if largest[k][2].model == model] or list(timed)
        ref = min(same, key=lambda k: abs(math.log(work[k] / work[key])))
        per_step[key] = timed[ref] * work[key] / work[ref]
    return per_step, set(per_step) - set(timed)


def _hours(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def plan_lines(plans: list[ExperimentPlan], profile: str, device: torch.device) -> list[str]:
    """The plan as text: one line per experiment, the total, warnings and how it was made."""
    lines = []
    for p in plans:
        parts = [f"{p.done} done", f"{p.todo + p.partial} to do"
                 + (f" ({p.partial} partly trained)" if p.partial else ""), f"{p.failed} failed"]
        left = f"; at most {_hours(p.seconds)} left on this device" if p.seconds else ""
        lines.append(f"{p.experiment}: {p.runs} runs: {', '.join(parts)}{left}")
    total = sum(p.seconds for p in plans)
    failed = sum(p.failed for p in plans)
    rough = any(p.rough for p in plans)
    lines.append(f"in all: at most {_hours(total)} of training left (an estimate: a few training "
                 "steps of each model size timed on this device, every epoch of the budget "
                 "counted as if no run stopped early; evaluation not counted"
                 + ("; rough: some sizes were scaled from others to keep the timing short)"
                    if rough else ")"))
    if failed:
        lines.append(f"{failed} runs failed earlier; they are skipped unless retried "
                     "(retry_failed=True / --retry-failed)")
    if profile == "thesis" and device.type != "cuda":
        lines.append("WARNING: the thesis profile (hidden size 1000, batch 1000) is about to run "
                     "on a CPU; on Colab choose Runtime > Change runtime type > GPU, or use "
                     "PROFILE = 'smoke' to try things out")
    if total > COLAB_SESSION_HOURS * 3600:
        n = math.ceil(total / (COLAB_SESSION_HOURS * 3600))
        lines.append(f"WARNING: this is more than a Colab session (about "
                     f"{COLAB_SESSION_HOURS:.0f} h); split the grid over {n} or more sessions "
                     f"sharing OUT_DIR with shard='0/{n}', ..., shard='{n - 1}/{n}' (every "
                     "session resumes where its shard stopped)")
    return lines

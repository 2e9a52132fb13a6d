"""The plan before a grid runs: per experiment what is done, to do and failed, and how long the
rest will take on this device.

The estimate is measured, not guessed: for every group of runs that share a model's sizes (the
model settings, the window length, the batch size and the item count to within a factor of
about 1.4), a few training steps (forward, backward, Adam) on random batches of the split's
sizes are timed on the device after one warm-up step. A run's time is then

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
from seqrec.models.registry import REGISTRY
from seqrec.runner import RunOptions, Sources, status

COLAB_SESSION_HOURS = 12.0  # about the longest a Colab session lives


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


def _size_key(spec: RunSpec, n_items: int) -> tuple:
    model = spec.config.model
    return (model, spec.config.data.seq_len, spec.config.train.batch_size,
            round(math.log2(max(n_items, 1)) * 2))


def step_seconds(spec: RunSpec, n_items: int, n_users: int, device: torch.device,
                 steps: int = 3) -> float:
    """Median seconds of one training step of `spec`'s model at these sizes on `device`."""
    from seqrec.models import build_model
    from seqrec.train.epoch import make_optimizer

    cfg = spec.config
    model = build_model(cfg.model, n_items, n_users).to(device)
    opt = make_optimizer(model, cfg.train)
    b, t = cfg.train.batch_size, cfg.data.seq_len - 1
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
              steps: int = 3, log: Callable[[str], None] = print) -> list[ExperimentPlan]:
    """The plan of `specs` (their order of experiments kept), timing steps as described."""
    options = options or RunOptions()
    device = resolve_device(options.device)
    sources = Sources(out_dir)
    timed: dict[tuple, float] = {}
    by_exp: dict[str, dict] = {}
    for spec in specs:
        state = status(out_dir, spec, options)
        counts = by_exp.setdefault(spec.experiment, {"ok": 0, "failed": 0, "partial": 0,
                                                     "todo": 0, "seconds": 0.0, "runs": 0})
        counts[state] += 1
        counts["runs"] += 1
        if state not in ("todo", "partial") or not REGISTRY[spec.model].trained:
            continue
        split = sources(spec.data).split(spec.config.data, spec.chunk)
        key = _size_key(spec, split.n_items)
        if key not in timed:
            log(f"  timing {spec.model} ({spec.axis}={spec.value}, {split.n_items:,} items) ...")
            timed[key] = step_seconds(spec, split.n_items, split.n_users, device, steps)
        counts["seconds"] += run_seconds(spec, timed[key], len(split.train), len(split.val))
    return [ExperimentPlan(name, c["runs"], c["ok"], c["failed"], c["partial"], c["todo"],
                           c["seconds"]) for name, c in by_exp.items()]


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
    lines.append(f"in all: at most {_hours(total)} of training left (an estimate: a few training "
                 "steps of each model size timed on this device, every epoch of the budget "
                 "counted as if no run stopped early; evaluation not counted)")
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

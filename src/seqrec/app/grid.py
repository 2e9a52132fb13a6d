"""A grid from request to records: the one place that decides where runs train.

`run_grid` hands the specs to a backend: `local` (the runner, in this process, one run after
another) or `ray` (one Ray task per run on a cluster, `seqrec.ray_backend`; docs/cluster.md).
The device is resolved here, once (`resolved_options`: "auto" becomes the device this machine
has), and the resolved options travel down: the runner, the plan and the backends never guess.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from seqrec.config import DEFAULT_PROFILE
from seqrec.device import resolve_device
from seqrec.experiment import RunSpec
from seqrec.experiments import grid
from seqrec.ray_backend import RayOptions, run_specs_ray
from seqrec.record import RunRecord
from seqrec.runner import Log, RunOptions, check_writable, run_specs

BACKENDS = ("local", "ray")


def resolved_options(options: RunOptions) -> RunOptions:
    """`options` with its device resolved ("auto" -> "cuda" or "cpu"); an unusable device
    stops here with one sentence."""
    return replace(options, device=str(resolve_device(options.device)))


def run_grid(specs: list[RunSpec], out_dir: str | Path, options: RunOptions | None = None,
             log: Log | None = None, backend: str = "local", **backend_options
             ) -> list[RunRecord]:
    """Run `specs` on a backend: `local` (`runner.run_specs`) or `ray` (`backend_options` are
    `RayOptions`' fields). Runs that no record came back for (a Ray task lost with its
    workers) are missing from the list returned."""
    options = options or RunOptions()
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "ray":
        # Ray's workers may hold other devices than this driver: they resolve their own.
        return run_specs_ray(specs, out_dir, options, log, RayOptions(**backend_options))
    if backend_options:
        raise ValueError(f"{', '.join(sorted(backend_options))} only apply to the ray backend "
                         "(--backend ray)")
    return run_specs(specs, out_dir, resolved_options(options), log)


def run_experiment(experiment: str, out_dir: str | Path, data: str | Path | None = None,
                   profile: str = DEFAULT_PROFILE, overrides=(), only: list[str] | None = None,  # noqa: ANN001
                   shard_spec: str | None = None, models: tuple[str, ...] | None = None,
                   baselines: tuple[str, ...] | None = None,
                   options: RunOptions | None = None, log: Log | None = None
                   ) -> list[RunRecord]:
    """Plan an experiment's grid (or `all`) with `experiments.grid`, select, and run it here."""
    check_writable(out_dir)
    specs = grid(experiment, profile, overrides, baselines, models, data, only=only,
                 shard_spec=shard_spec)
    return run_grid(specs, out_dir, options, log)

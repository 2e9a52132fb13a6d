"""Benchmark: exp 4's smoke grid through the local runner and through the Ray backend.

The grid: `exp4`, profile smoke, the built-in generated log (its data and splits prepared once
into a template folder and copied into every measurement's fresh output folder, so every
measurement trains the whole grid and none prepares data). Each measurement is a process of
its own, as a user's command is:

  local 1 thread   the local runner, torch and OpenMP at 1 thread
  local 2 threads  the local runner, 2 threads (torch's default on this machine)
  ray 1 x 1        the Ray backend, a local Ray instance of 1 CPU: 1 worker, 1 thread per run
  ray 2 x 1        a local Ray instance of 2 CPUs, 1 CPU per run: 2 workers, 1 thread each
  ray 1 x 2        a local Ray instance of 2 CPUs, 2 CPUs per run: 1 worker, 2 threads

Wall times: `total` from the call to the end (Ray's shutdown included), `ray start` until the
backend is connected to a new local Ray instance (`ray.init`; with 2 CPUs the backend starts
it itself, as for a user's `--backend ray`), `grid` the rest: the runs, with starting the
workers (each imports torch once). Ray's overhead per run = (ray 1 x 1 total - local 1 thread
grid) / runs: what one worker costs beyond the same runs in one process, Ray's start included.
Take figures on an idle machine: the script prints the load average and, with `--write`,
refuses to write above `--max-load` (0.3) unless `--force`.

    .venv/bin/python benchmarks/bench_ray.py [--repeats 1] [--write] [--force]

`--write` replaces the "Ray backend" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import write_section

SECTION = "Ray backend"
CONFIGS = {  # name: (backend, Ray CPUs, CPUs per run, threads)
    "local 1 thread": ("local", None, None, 1),
    "local 2 threads": ("local", None, None, 2),
    "ray 1 x 1": ("ray", 1, 1, 1),
    "ray 2 x 1": ("ray", 2, 1, 1),
    "ray 1 x 2": ("ray", 2, 2, 2),
}


def _specs(overrides: list[str]):  # noqa: ANN202
    from seqrec.experiments import grid

    return grid("exp4", "smoke", overrides)


def one(config: str, out: Path, overrides: list[str]) -> dict:
    """One measurement, in this process (a child of the main one): prints one JSON line."""
    backend, ray_cpus, cpus_per_run, threads = CONFIGS[config]
    import torch

    torch.set_num_threads(threads)
    from seqrec.runner import RunOptions, run_specs

    specs = _specs(overrides)
    options = RunOptions(device="cpu", progress=False, tensorboard=False)
    t0 = time.perf_counter()
    if backend == "local":
        records = run_specs(specs, out, options, lambda *a: None)
        grid = time.perf_counter() - t0
        return {"grid": grid, "total": grid, "start": 0.0, "runs": len(records),
                "ok": sum(r.ok for r in records)}
    import ray

    from seqrec.ray_backend import RayOptions, run_specs_ray

    started = []

    def log(line: str) -> None:  # the backend says "ray: N nodes ..." once connected
        if line.startswith("ray: ") and not started:
            started.append(time.perf_counter())

    own = ray_cpus != os.cpu_count()  # else: the backend's own local instance, as a user's
    if own:
        ray.init(num_cpus=ray_cpus, include_dashboard=False, log_to_driver=False,
                 logging_level="warning")
    records = run_specs_ray(specs, out, options, log, RayOptions(cpus_per_run=cpus_per_run))
    if own:
        ray.shutdown()
    total = time.perf_counter() - t0
    return {"grid": total - (started[0] - t0), "total": total, "start": started[0] - t0,
            "runs": len(records), "ok": sum(r.ok for r in records)}


def load() -> float:
    return os.getloadavg()[0]


def measure(config: str, template: Path, work: Path, overrides: list[str]) -> dict:
    out = work / config.replace(" ", "_")
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(template, out)
    threads = str(CONFIGS[config][3])
    env = {**os.environ, **{v: threads for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                 "OPENBLAS_NUM_THREADS")}}
    sets = [a for o in overrides for a in ("--set", o)]
    proc = subprocess.run([sys.executable, __file__, "--one", config, str(out), *sets],
                          capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{config} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    shutil.rmtree(out, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=2, metavar=("CONFIG", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--max-load", type=float, default=0.3)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="a setting for every run (KEY=VALUE; e.g. epochs=1 for a quick try)")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], Path(args.one[1]), args.overrides)))
        return
    configs = [c.strip() for c in args.configs.split(",")]
    start_load = load()
    print(f"load average (1 min) at the start: {start_load:.2f}")
    if args.write and start_load >= args.max_load and not args.force:
        raise SystemExit(f"the machine is busy (load {start_load:.2f} >= {args.max_load}); "
                         "wait, or --force to write figures taken under load")
    work = Path(tempfile.mkdtemp(prefix="seqrec_bench_ray_"))
    try:
        template = work / "template"
        from seqrec.runner import Sources, prepare

        specs = _specs(args.overrides)
        template.mkdir()
        prepare(specs, Sources(template))  # the log and every split, once
        results: dict[str, list[dict]] = {c: [] for c in configs}
        loads = [start_load]
        for _ in range(args.repeats):
            for config in configs:
                r = measure(config, template, work, args.overrides)
                loads.append(load())
                results[config].append(r)
                print(f"{config:16s} grid {r['grid']:7.1f} s  total {r['total']:7.1f} s  "
                      f"({r['ok']} of {r['runs']} ok; load {loads[-1]:.2f})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {c: {k: statistics.median(r[k] for r in rs) for k in ("grid", "total", "start")}
           for c, rs in results.items()}
    body = _section(med, _describe(specs), len(specs), args.repeats, loads, args.overrides,
                    idle=start_load < args.max_load)
    print(body)
    if args.write:
        write_section(SECTION, body)


def _describe(specs: list) -> str:
    """What the grid is, read from its specs."""
    models = sorted({s.model for s in specs})
    values = sorted({s.value for s in specs})
    chunks = sorted({s.chunk for s in specs})
    epochs = sorted({s.config.train.epochs for s in specs})
    return (f"{len(specs)} runs: {', '.join(models)}; {specs[0].axis} "
            f"{', '.join(map(str, values))}; chunks {', '.join(map(str, chunks))}; at most "
            f"{', '.join(map(str, epochs))} epochs; the built-in generated log, its data "
            "prepared beforehand")


def _section(med: dict, grid: str, runs: int, repeats: int, loads: list[float],
             overrides: list[str], idle: bool) -> str:
    import ray
    import torch

    sets = "".join(f" --set {o}" for o in overrides)
    lines = [
        f"`.venv/bin/python benchmarks/bench_ray.py --repeats {repeats}{sets} --write`: exp 4's "
        f"smoke grid ({grid}) on {platform.machine()}, {os.cpu_count()} cores, CPU, Python "
        f"{platform.python_version()}, torch {torch.__version__}, Ray {ray.__version__}; "
        f"median of {repeats}; each measurement in a process of its own; load average (1 min) "
        f"{min(loads):.2f}-{max(loads):.2f} at the start and after each measurement"
        + ("; nothing else ran on the machine." if idle else
           "; OTHER JOBS SHARED THE MACHINE: the figures are not an idle machine's."),
        "",
        "| how | threads per run | runs at a time | grid (s) | Ray start (s) | total (s) |",
        "|---|---|---|---|---|---|",
    ]
    for config, m in med.items():
        backend, ray_cpus, cpus_per_run, threads = CONFIGS[config]
        at_once = 1 if backend == "local" else ray_cpus // cpus_per_run
        start = "" if backend == "local" else f"{m['start']:.1f}"
        lines.append(f"| {config} | {threads} | {at_once} | {m['grid']:.1f} | {start} | "
                     f"{m['total']:.1f} |")
    lines.append("")
    if "ray 1 x 1" in med and "ray 2 x 1" in med:
        ratio = med["ray 1 x 1"]["grid"] / med["ray 2 x 1"]["grid"]
        lines.append(f"- 2 workers against 1 (1 thread per run; OMP_NUM_THREADS, MKL_NUM_THREADS"
                     f", OPENBLAS_NUM_THREADS and torch.set_num_threads at 1 in every worker): "
                     f"**{ratio:.2f}x** faster (grid wall time, ray 1 x 1 / ray 2 x 1).")
    if "ray 1 x 2" in med and "ray 2 x 1" in med:
        ratio = med["ray 1 x 2"]["grid"] / med["ray 2 x 1"]["grid"]
        lines.append(f"- 2 workers of 1 thread against 1 worker of 2 threads: {ratio:.2f}x.")
    if "ray 1 x 1" in med and "local 1 thread" in med:
        local, ray_total = med["local 1 thread"]["grid"], med["ray 1 x 1"]["total"]
        per_run = (ray_total - local) / runs
        grid_only = (med["ray 1 x 1"]["grid"] - local) / runs
        lines.append(f"- Ray's overhead against the local runner, 1 worker and 1 thread both: "
                     f"{ray_total - local:.1f} s for {runs} runs, **{per_run:.2f} s per run** "
                     f"with Ray's start ({med['ray 1 x 1']['start']:.1f} s) and shutdown, "
                     f"{grid_only:.2f} s per run without (the worker's own start, importing "
                     "torch, is part of it). At the thesis' sizes, where a run takes minutes "
                     "to hours, this is noise; for grids of runs that take a second, the local "
                     "runner (or fewer, larger tasks) is faster.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

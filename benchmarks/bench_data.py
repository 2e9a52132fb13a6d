"""Benchmark: generating, reading and preprocessing a LastFM-1K-size log.

A generated file of the full size (19,150,868 rows, 992 users, about 10 damaged lines) is
written once into FOLDER (default /tmp/seqrec_bench). Then, each in a separate process, median
of `--repeats` runs, wall time of the work (interpreter start and imports excluded; the
process's total wall time is reported beside it), its CPU time (user + system, all threads: a
figure less sensitive to other jobs on a shared machine) and the child's peak RSS:

  (a) the first read of the raw file into the events cache (the cache deleted before);
  (b) a second read, from the cache;
  (c) exp 1's preprocessing: `prepare_split` of all 10 chunks (DataConfig() defaults,
      threshold 20), each split saved as .npz; bytes per window = sum of npz sizes / windows.

The generator is timed once (in its own process too). The thesis notebook's figures on this
machine for comparison: reading 46-48 s with 7.4 GB peak; preprocessing ~4.4 s per chunk (~45 s
for ten); 320 bytes per window.

    .venv/bin/python benchmarks/bench_data.py [FOLDER] [--rows N] [--repeats 3] [--write]

`--write` replaces the "Data reading and preprocessing" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import write_section

FULL_ROWS = 19_150_868
SECTION = "Data reading and preprocessing"


def synth_config(rows: int):
    from seqrec.data.synthetic import SynthConfig

    scale = rows / FULL_ROWS
    return SynthConfig(n_rows=rows, n_users=max(2, round(992 * min(1.0, 10 * scale))),
                       n_artists=max(100, round(150_000 * scale)),
                       n_tracks=max(1000, round(1_000_000 * scale)), album_size=8,
                       damaged=10 / rows)


# ---------------------------------------------------------------------------------------------
# The child processes: each does one thing and prints one JSON line.


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(task: str, folder: Path, rows: int) -> dict:
    # Imports first: the timed work excludes them (the process wall time includes them).
    import numpy as np

    from seqrec.config import DataConfig
    from seqrec.data.lastfm import read_events
    from seqrec.data.synthetic import write_synthetic
    from seqrec.data.windows import PARTS

    raw = folder / f"lastfm-synth-{rows}.tsv"
    cache = folder / "events-cache"
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    out: dict = {}
    if task == "generate":
        write_synthetic(raw, synth_config(rows))
        out["bytes"] = raw.stat().st_size
    elif task in ("read_raw", "read_cache"):
        ev = read_events(raw, cache_dir=cache)
        out.update(rows=len(ev), items=ev.n_items, skipped=ev.report.lines_skipped)
    elif task == "protocol":
        from seqrec.data.protocol import prepare_split

        ev = read_events(raw, cache_dir=cache)
        t0, cpu0 = time.perf_counter(), _cpu_seconds()  # the preprocessing alone
        splits = folder / "splits"
        shutil.rmtree(splits, ignore_errors=True)
        cfg = DataConfig()
        size = windows = 0
        for chunk in range(cfg.chunks):
            split = prepare_split(ev.users, ev.items, cfg, chunk)
            path = split.save(splits / f"split-{chunk}.npz")
            size += path.stat().st_size
            windows += sum(len(split.part(p)) for p in PARTS)
        out.update(windows=windows, bytes_per_window=size / max(windows, 1),
                   npz_bytes=size, dtype=str(np.asarray(ev.items).dtype))
    else:
        raise ValueError(f"unknown task {task!r}")
    out.update(seconds=time.perf_counter() - t0, cpu_seconds=_cpu_seconds() - cpu0,
               peak_mb=_peak_mb())
    return out


def run_child(task: str, folder: Path, rows: int) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, str(folder), "--rows", str(rows),
                           "--child", task], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child {task} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - start
    return result


# ---------------------------------------------------------------------------------------------
# The parent: orchestration and the docs section.


def median_of(task: str, folder: Path, rows: int, repeats: int, before=None) -> dict:
    runs = []
    for _ in range(repeats):
        if before is not None:
            before()
        runs.append(run_child(task, folder, rows))
    best = dict(runs[-1])
    for key in ("seconds", "cpu_seconds", "process_seconds", "peak_mb"):
        best[key] = statistics.median(r[key] for r in runs)
    best["all_seconds"] = [round(r["seconds"], 2) for r in runs]
    return best


def has_protocol() -> bool:
    try:
        from seqrec.data.protocol import prepare_split  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default="/tmp/seqrec_bench")
    ap.add_argument("--rows", type=int, default=FULL_ROWS)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    folder = Path(args.folder)
    if args.child:
        print(json.dumps(child(args.child, folder, args.rows)))
        return
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / f"lastfm-synth-{args.rows}.tsv"
    gen = None
    if not raw.exists():
        gen = run_child("generate", folder, args.rows)
        print(f"generated {raw} ({gen['bytes'] / 1e9:.2f} GB) in {gen['seconds']:.1f} s, "
              f"peak {gen['peak_mb']:.0f} MB", flush=True)
    cache = folder / "events-cache"
    a = median_of("read_raw", folder, args.rows, args.repeats,
                  before=lambda: shutil.rmtree(cache, ignore_errors=True))
    print(f"(a) raw read: {a}", flush=True)
    b = median_of("read_cache", folder, args.rows, args.repeats)
    print(f"(b) cache read: {b}", flush=True)
    c = median_of("protocol", folder, args.rows, args.repeats) if has_protocol() else None
    print(f"(c) protocol: {c}", flush=True)

    rows = [
        "| step | wall s (median) | CPU s | process wall s | peak RSS | goal | notebook |",
        "|---|---|---|---|---|---|---|",
        _row("(a) first read of the raw file into the cache", a, "<= 20 s, <= 3 GB",
             "46-48 s, 7.4 GB"),
        _row("(b) second read, from the cache", b, "<= 3 s", "-"),
    ]
    if c is not None:
        rows.append(_row("(c) exp 1 preprocessing, 10 chunks, saved", c, "<= 10 s", "~45 s"))
    lines = [
        f"Command: `.venv/bin/python benchmarks/bench_data.py {args.folder} --rows {args.rows} "
        f"--repeats {args.repeats} --write` on {platform.machine()}, "
        f"{platform.python_version()}, {_cpus()} CPUs (other jobs may share them).",
        "",
        f"Generated LastFM-1K-format file: {a['rows']:,} good rows, {a['skipped']} damaged "
        f"lines, {a['items']:,} items (title key), {raw.stat().st_size / 1e9:.2f} GB."
        + (f" Generator: {gen['seconds']:.0f} s, peak {gen['peak_mb'] / 1024:.2f} GB."
           if gen else ""),
        "",
        *rows,
        "",
        f"Runs (wall s): (a) {a['all_seconds']}, (b) {b['all_seconds']}"
        + (f", (c) {c['all_seconds']}" if c else "") + ".",
    ]
    if c is not None:
        lines += ["", f"Stored splits: {c['windows']:,} windows, {c['npz_bytes'] / 1e6:.0f} MB "
                      f"of npz, {c['bytes_per_window']:.1f} bytes per window (goal <= 16; "
                      f"the notebook: 320)."]
    else:
        lines += ["", "(c) not measured: seqrec.data.protocol.prepare_split is missing."]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(SECTION, text)


def _row(name: str, r: dict, goal: str, notebook: str) -> str:
    return (f"| {name} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | "
            f"{r['process_seconds']:.1f} | {r['peak_mb'] / 1024:.2f} GB | {goal} | {notebook} |")


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    main()

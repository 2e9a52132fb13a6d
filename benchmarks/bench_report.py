"""Benchmark: building the report from a thesis-size set of run records.

The runner rebuilds the report after every `run`, so its cost should stay small next to a run.
The thesis profile's grid of the four experiments (333 runs, 1 seed; docs/protocol.md) with
made-up but realistic metrics is written as run records to a temporary folder; the report
rebuilds the grids from the records' requests, as it does for real runs.
Timed, median of `--repeats`: `load_records` alone, the four tables alone, and the whole
`build_report` (tables, 4 PNGs, report.md, report.pdf).

Reference measured in the same run, so the ratio holds on any machine: saving one plain
matplotlib figure (one axes, one line) to PNG, the unit of work a figure costs.

    .venv/bin/python benchmarks/bench_report.py [--repeats 3] [--write]

`--write` replaces the "Report" section of docs/benchmarks.md with the figures.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
from common import median_time, write_section
from matplotlib.figure import Figure

from seqrec.app import build_report
from seqrec.experiments import EXPERIMENTS, grid
from seqrec.record import RunRecord, write_record
from seqrec.report import load_records

SECTION = "Report"


def fake_record(rng: np.random.Generator, spec) -> RunRecord:  # noqa: ANN001 - a RunSpec
    """A made-up but realistic finished record of one spec of the real thesis grid."""
    r20 = float(rng.uniform(0.2, 0.45))
    metrics = {f"{m}@{k}": r20 * f for m, f0 in (("recall", 1.0), ("mrr", 0.4))
               for k, f in ((1, f0 * 0.35), (5, f0 * 0.7), (10, f0 * 0.85), (20, f0))}
    metrics["ndcg@20"] = r20 * 0.6
    thirds = {t: {k: v * s for k, v in metrics.items()}
              for t, s in (("popular", 1.4), ("semi", 1.0), ("unpopular", 0.6))}
    config = {"data": {"threshold": spec.config.data.threshold,
                       "train_frac": spec.config.data.train_frac,
                       "train_start_frac": spec.config.data.train_start_frac,
                       "seq_len": spec.config.data.seq_len},
              "model": {"embedding_size": spec.config.model.embedding_size}}
    return RunRecord(spec=spec.label(), status="ok", config=config,
                     request=spec.request.to_json(), data=spec.data.to_json(),
                     split={"n_items": 30000, "n_users": 992, "windows": {"train": 1_500_000}},
                     metrics=metrics, metrics_by_popularity=thirds,
                     best_val_loss=float(rng.uniform(6, 8)), n_items=30000)


def thesis_grid(seed: int = 0) -> list[RunRecord]:
    """Records of every run of the thesis' four experiments (the thesis profile, 1 seed)."""
    rng = np.random.default_rng(seed)
    return [fake_record(rng, spec) for spec in grid("all", "thesis")]


def _seconds(fn, repeats: int) -> float:
    return median_time(fn, repeats)[0]


def reference_png() -> None:
    fig = Figure(figsize=(6, 4))
    fig.add_subplot(1, 1, 1).plot(np.arange(50), np.arange(50) ** 0.5)
    fig.savefig(io.BytesIO(), format="png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    records = thesis_grid()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for r in records:
            write_record(out / "runs" / r.run_id, r)
        ref = _seconds(reference_png, args.repeats)
        load = _seconds(lambda: load_records(out), args.repeats)
        tables = _seconds(lambda: [EXPERIMENTS[n].table(records) for n in
                                   ("exp1", "exp2", "exp3", "exp4")], args.repeats)
        build = _seconds(lambda: build_report(out), args.repeats)
        pdf_pages = (out / "report" / "report.pdf").read_bytes().count(b"/Type /Page\n")
    text = (
            f"`build_report` on a thesis-size grid of {len(records)} made-up run records "
            f"(1 seed), median of {args.repeats}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
            f"{os.getloadavg()[0]:.1f} at the end (other jobs may share the CPUs; the ratio "
            "column is the figure to compare):\n\n"
            "| Step | Seconds | x reference |\n|:---|---:|---:|\n"
            f"| reference: one plain figure to PNG | {ref:.3f} | 1.0 |\n"
            f"| `load_records` ({len(records)} JSON files) | {load:.3f} | {load / ref:.1f} |\n"
            f"| the four tables | {tables:.3f} | {tables / ref:.1f} |\n"
            "| whole `build_report` (grids rebuilt from the records' requests, tables, 4 PNGs, "
            f"md, PDF) | {build:.3f} | {build / ref:.1f} |\n\n"
            "Command: `.venv/bin/python benchmarks/bench_report.py --repeats "
            f"{args.repeats} --write`.\n")
    print(text)
    if pdf_pages:
        print(f"(report.pdf: about {pdf_pages} pages)")
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()

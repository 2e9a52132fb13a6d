"""Benchmark: building the report from a thesis-size set of run records.

The runner rebuilds the report after every `run`, so its cost should stay small next to a run.
A grid the size of THESIS_PROTOCOL.md's four experiments (1 seed; exp 1: 10 chunks x 2
thresholds, exp 2: 10 training sizes, exp 3: 10 embedding sizes x 2 chunks, exp 4: 4 window
lengths x 3 chunks; GRU / user-based GRU / DNC / user-based DNC plus the 4 count baselines
where the runner adds them) of made-up but realistic records is written to a temporary folder.
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
import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
from common import median_time, write_section
from matplotlib.figure import Figure

from seqrec.report import (
    build_report,
    load_records,
    table_exp1,
    table_exp2,
    table_exp3,
    table_exp4,
)

SECTION = "Report"
BASELINES = ("pop", "recent", "markov", "item_knn")


def fake_record(rng: np.random.Generator, experiment: str, group: str, model: str, chunk: int,
                axis: str, value: float) -> dict:
    r20 = float(rng.uniform(0.2, 0.45))
    metrics = {f"{m}@{k}": r20 * f for m, f0 in (("recall", 1.0), ("mrr", 0.4))
               for k, f in ((1, f0 * 0.35), (5, f0 * 0.7), (10, f0 * 0.85), (20, f0))}
    metrics["ndcg@20"] = r20 * 0.6
    thirds = {t: {k: v * s for k, v in metrics.items()}
              for t, s in (("popular", 1.4), ("semi", 1.0), ("unpopular", 0.6))}
    run_id = f"{group}-c{chunk}-{model}-{axis}{value}-s0"
    return {"run_id": run_id, "status": "ok", "reason": None,
            "spec": {"experiment": experiment, "group": group, "model": model, "chunk": chunk,
                     "seed": 0, "axis": axis, "value": value, "profile": "thesis",
                     "run_id": run_id},
            "config": {"data": {"threshold": 20, "train_frac": 0.95 if experiment == "exp2"
                                else 0.9, "seq_len": 20}, "model": {"embedding_size": 1000}},
            "split": {"n_items": 30000, "n_users": 992, "windows": {"train": 1_500_000}},
            "metrics": metrics, "metrics_by_popularity": thirds,
            "best_val_loss": float(rng.uniform(6, 8)), "n_items": 30000, "history": []}


def thesis_grid(seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    twins = ("gru", "user_gru")
    out = []
    for group, thr in (("exp1.1", 20), ("exp1.2", 2)):
        out += [fake_record(rng, "exp1", group, m, c, "threshold", thr)
                for c in range(10) for m in twins + BASELINES]
    out += [fake_record(rng, "exp2", "exp2", m, 0, "train_start_frac", p / 10)
            for p in range(10) for m in twins + BASELINES]
    out += [fake_record(rng, "exp3", "exp3", "gru", c, "embedding_size", e)
            for e in (32, 64, 128, 256, 512, 1000, 2048, 4096, 8192, -1) for c in range(2)]
    out += [fake_record(rng, "exp4", "exp4", m, c, "seq_len", L)
            for L in (5, 10, 20, 50) for c in range(3)
            for m in ("gru", "user_gru", "dnc", "user_dnc") + BASELINES]
    return out


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
            folder = out / "runs" / r["run_id"]
            folder.mkdir(parents=True)
            (folder / "record.json").write_text(json.dumps(r))
        expected = [r["spec"] for r in records]
        ref = _seconds(reference_png, args.repeats)
        load = _seconds(lambda: load_records(out), args.repeats)
        tables = _seconds(lambda: [t(records) for t in (table_exp1, table_exp2, table_exp3,
                                                          table_exp4)], args.repeats)
        build = _seconds(lambda: build_report(out, expected=expected), args.repeats)
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
            f"| whole `build_report` (tables, 4 PNGs, md, PDF) | {build:.3f} | "
            f"{build / ref:.1f} |\n\n"
            "Command: `.venv/bin/python benchmarks/bench_report.py --repeats "
            f"{args.repeats} --write`.\n")
    print(text)
    if pdf_pages:
        print(f"(report.pdf: about {pdf_pages} pages)")
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()

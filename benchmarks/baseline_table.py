"""The neural models against the count baselines, from the run records of one output folder.

Prints one markdown table: per model its Recall@20 and MRR@20 as mean ± standard deviation over
seeds (a seed's value is its mean over the folder's chunks), the ratio of its mean Recall@20 to
POP's and to Markov's, the mean number of epochs kept and the test windows per chunk. Count
baselines have no seed (every seed is the same count), so their std is 0. One folder should
hold one grid (one profile, one set of overrides); docs/validation.md, "Against the count
baselines", lists the grids it was run on.

    python benchmarks/baseline_table.py OUT [OUT ...]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from seqrec.models.registry import model_label, model_order
from seqrec.report import load_records
from seqrec.report.records import runs_frame


def _mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def table(out: Path) -> str:
    records = [r for r in load_records(out) if r.ok]
    runs = runs_frame(records)
    if runs.empty:
        return f"{out}: no finished runs"
    kept = {r.run_id: r.epochs_kept for r in records}
    tests = {r.run_id: r.n_test_windows for r in records}
    runs["epochs_kept"] = runs["run_id"].map(kept)
    runs["test_windows"] = runs["run_id"].map(tests)
    chunks = sorted(runs["chunk"].unique())
    by_model = {}
    for model in model_order(runs["model"].unique()):
        mine = runs[runs["model"] == model]
        per_seed = mine.groupby("seed")[["recall@20", "mrr@20"]].mean()
        by_model[model] = {
            "recall": _mean_std(list(per_seed["recall@20"])),
            "mrr": _mean_std(list(per_seed["mrr@20"])),
            "seeds": len(per_seed),
            "kept": mine["epochs_kept"].dropna().mean(),
        }
    pop = by_model.get("pop", {}).get("recall", (math.nan,))[0]
    markov = by_model.get("markov", {}).get("recall", (math.nan,))[0]
    per_chunk = [str(int(runs[runs["chunk"] == c]["test_windows"].iloc[0])) for c in chunks]
    lines = [f"{out}: chunks {', '.join(map(str, chunks))}; test windows per chunk "
             f"{', '.join(per_chunk)}",
             "",
             "| Model | Seeds | Recall@20 | MRR@20 | x POP | x Markov | Epochs kept |",
             "|:---|---:|---:|---:|---:|---:|---:|"]
    for model, v in by_model.items():
        (r, rs), (m, ms) = v["recall"], v["mrr"]
        kept_text = "-" if math.isnan(v["kept"]) else f"{v['kept']:.1f}"
        lines.append(f"| {model_label(model)} | {v['seeds']} | {r:.4f} ± {rs:.4f} | "
                     f"{m:.4f} ± {ms:.4f} | {r / pop:.2f} | {r / markov:.2f} | {kept_text} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="+", type=Path, help="output folders of `seqrec run`")
    args = parser.parse_args(argv)
    for out in args.out:
        print(table(out))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

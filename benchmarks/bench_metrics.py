"""Evaluation throughput: test windows per second, on the same random scores for every method.

    .venv/bin/python benchmarks/bench_metrics.py [--items 30000] [--windows 20000] [--repeats 5]

Methods, all on one `[windows, items]` float32 score matrix, in evaluation batches of 1000:
- `loop`: a per-window Python loop like the thesis notebook's (top-20 lists from `torch.topk`,
  then list membership tests per window, the popularity third by membership in Python lists
  of items; thesis defect 11). Timed on a subset of windows and scaled.
- `floor`: one read of the scores, `scores.max(dim=1)` per batch: no metric can be cheaper.
- `seqrec-<ties>`: `MetricAccumulator.update` with ks (1, 5, 10, 20) (Recall, MRR, NDCG) and
  the three popularity thirds, for each tie policy.
Each figure is the median of `--repeats` runs; ratios are against `loop` and `floor` of the same
run. Two threads (`torch.set_num_threads(2)`), the CPU of the test machine.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import median_time

from seqrec.data.windows import popularity_thirds
from seqrec.metrics import MetricAccumulator

BATCH = 1000
KS = (1, 5, 10, 20)


def notebook_loop(scores: torch.Tensor, target: torch.Tensor, third_lists: list[list[int]]
                  ) -> dict:
    """Recall@20, Recall@1, MRR@20 overall and per third, one Python step per window."""
    hits20 = hits1 = 0
    rr = 0.0
    per_third = [[0, 0, 0] for _ in third_lists]  # windows, hits@20, hits@1
    for lo in range(0, scores.shape[0], BATCH):
        top = torch.topk(scores[lo: lo + BATCH], 20, dim=1).indices.tolist()
        for row, t in zip(top, target[lo: lo + BATCH].tolist(), strict=True):
            hit = t in row
            hits20 += hit
            hits1 += row[0] == t
            rr += 1.0 / (row.index(t) + 1) if hit else 0.0
            for g, members in enumerate(third_lists):
                if t in members:  # O(items) per window
                    per_third[g][0] += 1
                    per_third[g][1] += hit
                    per_third[g][2] += row[0] == t
                    break
    n = scores.shape[0]
    return {"recall@20": hits20 / n, "recall@1": hits1 / n, "mrr@20": rr / n,
            "per_third": per_third}


def floor(scores: torch.Tensor) -> None:
    for lo in range(0, scores.shape[0], BATCH):
        scores[lo: lo + BATCH].max(dim=1)


def seqrec_eval(scores: torch.Tensor, target: torch.Tensor, thirds: torch.Tensor, ties: str
                ) -> dict:
    acc = MetricAccumulator(KS, ties, scores.device, groups=3)
    for lo in range(0, scores.shape[0], BATCH):
        t = target[lo: lo + BATCH]
        acc.update(scores[lo: lo + BATCH], t, thirds[t])
    return acc.result()


def seconds(fn, repeats: int) -> float:
    return median_time(fn, repeats)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=30_000)
    parser.add_argument("--windows", type=int, default=20_000)
    parser.add_argument("--loop-windows", type=int, default=2_000,
                        help="windows the slow loop is timed on (then scaled)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(args.windows, args.items, generator=gen)  # [N, n_items]
    target = torch.randint(args.items, (args.windows,), generator=gen)
    counts = np.random.default_rng(0).zipf(1.5, size=args.items).clip(max=10**6)
    third_np, _ = popularity_thirds(counts)
    thirds = torch.as_tensor(third_np.astype(np.int64))
    third_lists = [np.flatnonzero(third_np == g).tolist() for g in range(3)]

    # The same numbers from both (conservative ranks; random float scores have no ties).
    sub = slice(0, args.loop_windows)
    ref = notebook_loop(scores[sub], target[sub], third_lists)
    ours = seqrec_eval(scores[sub], target[sub], thirds, "conservative")
    for key in ("recall@20", "recall@1", "mrr@20"):
        assert abs(ref[key] - ours["metrics"][key]) < 1e-12, key
    assert [p[0] for p in ref["per_third"]] == ours["counts"]

    rows = {}
    loop_s = seconds(lambda: notebook_loop(scores[sub], target[sub], third_lists),
                            args.repeats)
    rows["loop (notebook-like)"] = args.loop_windows / loop_s
    rows["floor: scores.max(dim=1)"] = args.windows / seconds(lambda: floor(scores),
                                                                     args.repeats)
    for ties in ("conservative", "optimistic", "expected"):
        sec = seconds(lambda t=ties: seqrec_eval(scores, target, thirds, t), args.repeats)
        rows[f"seqrec, ties={ties}"] = args.windows / sec
    loop_rate, floor_rate = rows["loop (notebook-like)"], rows["floor: scores.max(dim=1)"]
    print(f"{args.windows} windows x {args.items} items, batch {BATCH}, {args.threads} threads, "
          f"median of {args.repeats}; loop timed on {args.loop_windows} windows")
    print("| method | windows/s | x loop | floor time / time |")
    print("|---|---:|---:|---:|")
    for name, rate in rows.items():
        print(f"| {name} | {rate:,.0f} | {rate / loop_rate:.1f} | {rate / floor_rate:.2f} |")


if __name__ == "__main__":
    main()

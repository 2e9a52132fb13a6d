"""Benchmark: fit and evaluation time of the baselines on a full-size exp 1 chunk.

A generated log (the structure of `seqrec.data.synthetic`: albums, replays, taste; 992 users)
of `--rows` events (default 1.9M, one tenth of LastFM-1K, the size of one exp 1 chunk) goes
through the thesis protocol (`prepare_split`, threshold 20, L = 20). Each count baseline is
fitted on the train part and evaluated on the whole test part with `seqrec.metrics.evaluate`
(the path a run takes); each is timed `--repeats` times and the median is reported.

References measured in the same run, so the ratios hold on any machine:
- fit: `prepare_split` on the same log (the preprocessing every run pays anyway);
- evaluation: a linear scorer `Embedding(n_items, H) -> Linear(H, n_items)` on the last item
  (the output layer every neural model pays at evaluation) through the same `evaluate`.
SASRec (hidden `--sasrec-hidden`) is timed per training step on batches of 1000 windows.

    .venv/bin/python benchmarks/bench_baselines.py [--rows 1900000] [--repeats 3] [--write]

`--write` replaces the "Baselines" section of docs/benchmarks.md with the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from common import median_time, write_section
from torch import nn
from torch.nn import functional as F

from seqrec.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from seqrec.data.protocol import prepare_split
from seqrec.metrics import evaluate
from seqrec.models.baselines import (
    ItemKNNBaseline,
    MarkovBaseline,
    PopBaseline,
    RecentBaseline,
)
from seqrec.models.sasrec import SASRec

SECTION = "Baselines"


def generated_log(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`users`, `items` int32[rows] in time order, from the synthetic generator's world."""
    from seqrec.data.synthetic import SynthConfig, make_catalogue, user_counts, user_plays

    cfg = SynthConfig(seed=seed, n_rows=rows, n_users=992, n_artists=8_000, n_tracks=150_000)
    rng = np.random.default_rng(seed)
    cat = make_catalogue(cfg, rng)
    users, items, times = [], [], []
    for u, n in enumerate(user_counts(cfg, rng)):
        tracks, when = user_plays(cfg, cat, rng, int(n))
        users.append(np.full(n, u, dtype=np.int32))
        items.append(tracks.astype(np.int32))
        times.append(when)
    order = np.lexsort((np.concatenate(users), np.concatenate(times)))  # time, then user
    return np.concatenate(users)[order], np.concatenate(items)[order]


class LinearScorer(nn.Module):
    """Reference: last item -> embedding `[B, H]` -> linear layer to all items `[B, n_items]`."""

    def __init__(self, n_items: int, hidden: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_items, hidden)
        self.output = nn.Linear(hidden, n_items)

    def forward(self, items: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        return self.output(self.embedding(items[:, -1]))


def sasrec_step_time(n_items: int, hidden: int, seq_len: int, repeats: int) -> float:
    """Median seconds of one SASRec training step (forward, full softmax, backward, Adam)."""
    torch.manual_seed(0)
    cfg = ModelConfig(name="sasrec", embedding_size=hidden, hidden_size=hidden)
    model = SASRec(cfg, n_items, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    items = torch.randint(0, n_items, (1000, seq_len))

    def step() -> None:
        loss = F.cross_entropy(model(items[:, :-1]), items[:, -1])
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    return median_time(step, repeats)[0]


def run(rows: int, repeats: int, hidden: int, sasrec_hidden: int) -> tuple[list[str], dict]:
    start = time.perf_counter()
    users, items = generated_log(rows, seed=0)
    gen_s = time.perf_counter() - start
    data = DataConfig(chunks=1)
    prep_s, split = median_time(lambda: prepare_split(users, items, data, chunk=0), repeats)
    cfg = RunConfig(data=data, train=TrainConfig(eval_batch_size=1000))
    device = torch.device("cpu")
    info = {"rows": rows, "n_items": split.n_items, "train_windows": len(split.train),
            "test_windows": len(split.test), "generate_s": gen_s, "prepare_s": prep_s}

    torch.manual_seed(0)
    ref = LinearScorer(split.n_items, hidden)
    ref_s, ref_res = median_time(lambda: evaluate(ref, split.test, split, cfg, device), repeats)
    lines = [
        f"| linear scorer H={hidden} (reference) | - | - | {ref_s:.2f} | 1.00 | "
        f"{ref_res['metrics']['recall@20']:.3f} |"
    ]
    for name, cls in (("pop", PopBaseline), ("recent", RecentBaseline),
                      ("markov", MarkovBaseline), ("item_knn", ItemKNNBaseline)):
        model = cls(ModelConfig(name=name), split.n_items, split.n_users)
        fit_s, _ = median_time(lambda m=model: m.fit(split.train), repeats)
        eval_s, res = median_time(lambda m=model: evaluate(m, split.test, split, cfg, device),
                                  repeats)
        lines.append(f"| {name} | {fit_s:.2f} | {fit_s / prep_s:.2f} | {eval_s:.2f} | "
                     f"{eval_s / ref_s:.2f} | {res['metrics']['recall@20']:.3f} |")
        print(lines[-1], flush=True)
    info["sasrec_step_s"] = sasrec_step_time(split.n_items, sasrec_hidden, data.seq_len, repeats)
    info["sasrec_epoch_s"] = info["sasrec_step_s"] * len(split.train) / 1000
    info["load"] = os.getloadavg()[0]
    return lines, info


def section(lines: list[str], info: dict, args: argparse.Namespace) -> str:
    return "\n".join([
        f"## {SECTION}",
        "",
        f"`.venv/bin/python benchmarks/bench_baselines.py --rows {args.rows} --repeats "
        f"{args.repeats} --threads {args.threads} --write` on "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads, CPU; median of {args.repeats} runs; load "
        f"average {info['load']:.1f} at the end (the machine was shared).",
        f"Generated log of {info['rows']:,} events (992 users), one exp 1 chunk after the "
        f"protocol (threshold 20, L = 20): {info['n_items']:,} items, "
        f"{info['train_windows']:,} train and {info['test_windows']:,} test windows. "
        f"`prepare_split` (fit reference) took {info['prepare_s']:.2f} s.",
        "",
        "| model | fit s | fit / prepare_split | evaluate test s | evaluate / reference | "
        "Recall@20 |",
        "|---|---|---|---|---|---|",
        *lines,
        "",
        f"SASRec (hidden {args.sasrec_hidden}, 2 layers, 2 heads, full softmax): "
        f"{info['sasrec_step_s']:.3f} s per training step of 1000 windows, so about "
        f"{info['sasrec_epoch_s']:.0f} s per epoch on this CPU.",
        "Evaluation time includes `evaluate`'s ranking of every target against all items, "
        "which every model pays; the reference is untrained (its Recall@20 means nothing).",
        "Recall@20 on generated data only says the baselines see the generator's structure "
        "(replays, album order); it is not a LastFM-1K result.",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_900_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=128, help="reference scorer width")
    parser.add_argument("--sasrec-hidden", type=int, default=128)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads (1 avoids thread thrashing on a busy machine)")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines, info = run(args.rows, args.repeats, args.hidden, args.sasrec_hidden)
    text = section(lines, info, args)
    print(text)
    if args.write:
        write_section(SECTION, text.split("\n", 1)[1])


if __name__ == "__main__":
    main()

"""Each fast operation of the models against the plain version it replaces (not a test).

    .venv/bin/python benchmarks/bench_ops.py [--repeats 9] [--write]

Exp 4 sizes (batch 256, 19 steps, hidden 128, 30,000 items; DNC 128 cells x word 64, 1 read
head), float32, 2 threads. Each pair computes the same values (the tests check that); both are
timed forward + backward (or as the trainer calls them) in one process, their calls alternated,
median of `--repeats` after one warm-up, so the ratio is the robust figure:

- dropout: `F.dropout` (one Bernoulli draw per element) against `models.dropout.dropout`
  (integer-threshold masks), on the GRU's input projection `[256, 19, 384]`, forward only.
- output + loss: `F.linear` + `F.cross_entropy` against `models.loss.linear_cross_entropy`.
- Adam: `torch.optim.Adam` (foreach) against `fused=True`, on the GRU model's parameters.
- user GRU recurrence: the autograd loop `user_gru_recurrence` against the hand-written
  backward `fast_user_gru_recurrence`.
- DNC link: `update_link` + two `bmm` reads against `link_step`.
- DNC masked lookup: `content_weights_reference` against `content_weights`.
- DNC sharpening: `sharpen` of f and of b against `Sharpen` of both at once.
- DNC memory step: `memory_step_reference` against `memory_step` (write path, link step,
  sharpening, read path), from a state after 5 random steps.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import write_section
from torch.nn import functional as F

from seqrec.config import ModelConfig
from seqrec.models import build_model
from seqrec.models import dnc_memory as dm
from seqrec.models.dnc_kernels import Sharpen
from seqrec.models.dropout import dropout
from seqrec.models.gru import GRUState
from seqrec.models.loss import linear_cross_entropy
from seqrec.models.user_gru import (
    UserGRUInputs,
    fast_user_gru_recurrence,
    user_gru_recurrence,
)

B, T, H, N_ITEMS, CELLS, WORD = 256, 19, 128, 30_000, 128, 64


def leaves(*shapes: tuple[int, ...], scale: float = 1.0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [(scale * torch.rand(*s, generator=g)).requires_grad_() for s in shapes]


def backward_of(fn):
    """Call fn(), sum its outputs and backpropagate: one forward + backward."""
    def run() -> None:
        out = fn()
        outs = out if isinstance(out, tuple) else (out,)
        sum(o.sum() for o in outs).backward()
    return run


def pairs() -> dict[str, tuple]:
    """name -> (plain callable, fast callable)."""
    out = {}
    x = torch.randn(B, T, 3 * H)
    out["dropout [256, 19, 384]"] = (lambda: F.dropout(x, 0.2, True), lambda: dropout(x, 0.2, True))

    h, w, b = leaves((B, H), (N_ITEMS, H), (N_ITEMS,), scale=0.1)
    target = torch.randint(0, N_ITEMS, (B,))
    out["output layer + cross-entropy"] = (
        backward_of(lambda: F.cross_entropy(F.linear(h, w, b), target)),
        backward_of(lambda: linear_cross_entropy(h, w, b, target)))

    model = build_model(ModelConfig(name="gru", embedding_size=H, hidden_size=H), N_ITEMS, 1)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    plain_adam = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
    fused_adam = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    out["Adam step (GRU model)"] = (plain_adam.step, fused_adam.step)

    gx, ax, gu, h0 = leaves((B, T, 3 * H), (B, T, 1), (B, T, H), (B, H), scale=0.5)
    w_hh, b_hh, b_i = leaves((3 * H + 1, H), (3 * H + 1,), (3 * H,), scale=0.1)
    mask = torch.ones(1, 1, 1).expand(B, T, 3 * H)

    def user(fn):
        return backward_of(lambda: fn(UserGRUInputs(gx, mask, ax, gu), GRUState(h0), w_hh, b_hh,
                                      b_i)[0])
    out["user GRU recurrence"] = (user(user_gru_recurrence), user(fast_user_gru_recurrence))

    link, prec, ww, prev = leaves((B, CELLS, CELLS), (B, CELLS), (B, CELLS), (B, 1, CELLS),
                                  scale=1.0 / CELLS)

    def plain_link():
        new, p = dm.update_link(link, prec, ww)
        return new, p, torch.stack([torch.bmm(prev, new.transpose(1, 2)), torch.bmm(prev, new)])
    out["DNC link update + reads"] = (backward_of(plain_link),
                                      backward_of(lambda: dm.link_step(link, prec, ww, prev)))

    mem, keys, strengths, masks = leaves((B, CELLS, WORD), (B, 1, WORD), (B, 1), (B, 1, WORD))
    out["DNC masked content lookup"] = (
        backward_of(lambda: dm.content_weights_reference(mem, keys, 1 + strengths, masks)),
        backward_of(lambda: dm.content_weights(mem, keys, 1 + strengths, masks)))

    reads, sharp = leaves((2, B, 1, CELLS), (2, B, 1), scale=1.0 / CELLS)
    out["DNC sharpening of both link reads"] = (
        backward_of(lambda: (dm.sharpen(reads[0], 1 + sharp[0]),
                             dm.sharpen(reads[1], 1 + sharp[1]))),
        backward_of(lambda: Sharpen.apply(reads, 1 + sharp)))

    opts = dm.MemoryOptions()
    state, raw = dnc_state(opts)
    out["DNC memory step (all of it)"] = (
        backward_of(lambda: memory_step_outputs(dm.memory_step_reference, state, raw, opts)),
        backward_of(lambda: memory_step_outputs(dm.memory_step, state, raw, opts)))
    return out


def dnc_state(opts: dm.MemoryOptions) -> tuple[dm.MemoryState, torch.Tensor]:
    """A memory state after 5 steps of random interfaces (leaves), and the next raw interface."""
    g = torch.Generator().manual_seed(1)
    size = dm.interface_size(WORD, 1, opts)
    state = dm.initial_memory(B, CELLS, WORD, 1, torch.device("cpu"), torch.float32)
    with torch.no_grad():
        for _ in range(5):
            raw = torch.randn(B, size, generator=g)
            _, state = dm.memory_step(state, dm.split_interface(raw, WORD, 1, opts), opts)
    raw = torch.randn(B, size, generator=g).requires_grad_()
    return dm.MemoryState(*(x.clone().requires_grad_() for x in state)), raw


def memory_step_outputs(step, state: dm.MemoryState, raw: torch.Tensor,
                        opts: dm.MemoryOptions) -> tuple[torch.Tensor, ...]:
    reads, new = step(state, dm.split_interface(raw, WORD, 1, opts), opts)
    return (reads, *new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = ["| operation | plain (ms) | fast (ms) | plain / fast |", "|---|---:|---:|---:|"]
    for name, (plain, fast) in pairs().items():
        times: dict[str, list[float]] = {"plain": [], "fast": []}
        for i in range(1 + args.repeats):
            for key, fn in (("plain", plain), ("fast", fast)):
                start = time.perf_counter()
                fn()
                if i:
                    times[key].append(time.perf_counter() - start)
        p, f = (sorted(times[k])[len(times[k]) // 2] * 1e3 for k in ("plain", "fast"))
        rows.append(f"| {name} | {p:.2f} | {f:.2f} | {p / f:.2f}x |")
        print(rows[-1], flush=True)
    if args.write:
        body = (f"Command: `.venv/bin/python benchmarks/bench_ops.py --repeats {args.repeats} "
                f"--write` (exp 4 sizes, 2 threads; plain and fast alternated in one process, "
                f"median; forward + backward except dropout and Adam).\n\n" + "\n".join(rows))
        write_section("Model operations, fast against plain", body)


if __name__ == "__main__":
    main()

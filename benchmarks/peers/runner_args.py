"""The command-line settings both runners share (no seqrec or RecBole import), in one place so
that their defaults, the equal settings of docs/peers.md, cannot drift apart."""

from __future__ import annotations

import argparse


def add_shared_arguments(p: argparse.ArgumentParser) -> None:
    """Seed, sizes, dropout, batches, optimiser, epochs, step timing and threads."""
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--embedding", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--inner", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--eval-batch-size", type=int, default=1024)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)

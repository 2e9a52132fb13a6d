"""Helpers for the training tests: tiny splits, a tiny model, and a script for the kill test.

Run as a script (`python tests/train_helper.py RUN_DIR [retrain]`), it trains the toy run that
`tests/test_train.py` kills with SIGKILL and resumes; every epoch sleeps a little so the test
can kill it between two checkpoints.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from seqrec.config import RunConfig, apply_overrides, profile
from seqrec.data.windows import Split, Windows
from seqrec.record import RunLabel


def windows_from_sequences(seqs: list[np.ndarray], users: list[int], seq_len: int) -> Windows:
    """Lay `seqs` end to end; a window starts wherever `seq_len` events fit in one sequence."""
    items = np.concatenate(seqs).astype(np.int32) if seqs else np.zeros(0, np.int32)
    user_arr = (np.concatenate([np.full(len(s), u) for s, u in zip(seqs, users, strict=True)])
                .astype(np.int32) if seqs else np.zeros(0, np.int32))
    starts, offset = [], 0
    for s in seqs:
        starts.extend(range(offset, offset + max(len(s) - seq_len + 1, 0)))
        offset += len(s)
    return Windows(items, user_arr, np.asarray(starts, dtype=np.int64), seq_len)


def toy_split(n_items: int = 12, n_users: int = 6, length: int = 60, seq_len: int = 5,
              seed: int = 0, step: int = 1) -> Split:
    """Per user a run `offset, offset + step, ...` (mod n_items): item t+1 = item t + step.

    Per user: train the first 80% of events, val and test 10% each, windows inside each part.
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for _ in range(n_users):
        seq = (rng.integers(n_items) + step * np.arange(length)) % n_items
        a, b = int(0.8 * length), int(0.9 * length)
        parts["train"].append(seq[:a])
        parts["val"].append(seq[a:b])
        parts["test"].append(seq[b:])
    users = list(range(n_users))
    w = {p: windows_from_sequences(s, users, seq_len) for p, s in parts.items()}
    counts = np.bincount(w["train"].items, minlength=n_items).astype(np.int64)
    return Split(w["train"], w["val"], w["test"], n_items, n_users, counts,
                 {"val": 0, "test": 0}, {"chunk": 0})


def random_split(n_items: int = 30, n_users: int = 5, length: int = 80, seq_len: int = 5,
                 seed: int = 0) -> Split:
    """Per user random items; the same 80/10/10 layout as `toy_split`."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for _ in range(n_users):
        seq = rng.integers(n_items, size=length)
        a, b = int(0.8 * length), int(0.9 * length)
        for p, s in zip(parts, (seq[:a], seq[a:b], seq[b:]), strict=True):
            parts[p].append(s)
    users = list(range(n_users))
    w = {p: windows_from_sequences(s, users, seq_len) for p, s in parts.items()}
    counts = np.bincount(w["train"].items, minlength=n_items).astype(np.int64)
    return Split(w["train"], w["val"], w["test"], n_items, n_users, counts,
                 {"val": 0, "test": 0}, {})


class TinyModel(nn.Module):
    """Embedding of the last item and of the user, dropout, linear to all items.

    Dropout makes training draw random numbers, so resume tests check the RNG restore.
    `delay` seconds of sleep per forward call slow it down for the kill test.
    """

    kind = "neural"
    uses_users = True

    def __init__(self, n_items: int, n_users: int, hidden: int = 8, delay: float = 0.0) -> None:
        super().__init__()
        self.item = nn.Embedding(n_items, hidden)
        self.user = nn.Embedding(n_users, hidden)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(hidden, n_items)
        self.delay = delay

    def forward(self, items: Tensor, users: Tensor) -> Tensor:
        if self.delay:
            time.sleep(self.delay)
        h = self.item(items[:, -1]) + 0.1 * self.user(users[:, -1])  # [B, H]
        return self.out(self.drop(h))  # [B, n_items]

    def loss(self, items: Tensor, users: Tensor, target: Tensor) -> Tensor:
        return nn.functional.cross_entropy(self(items, users), target)

    def param_groups(self, weight_decay: float, user_weight_decay: float) -> list[dict]:
        return [{"params": list(self.parameters()), "weight_decay": weight_decay}]


def run_toy(split: Split, cfg: RunConfig, run_dir: Path, device: torch.device, *,
            run_id: str = "toy", **kwargs) -> dict:
    """`train_run` on a toy split, its record as the JSON the runner would write."""
    from seqrec.train import train_run

    label = RunLabel(run_id, "test", seed=cfg.train.seed)
    record = train_run(split, cfg, run_dir, device, label=label, **kwargs)
    return record.to_json()


def kill_cfg(retrain: bool = True, epochs: int = 4) -> RunConfig:
    return apply_overrides(profile("smoke"), {
        "seq_len": 5, "batch_size": 16, "epochs": epochs, "patience": 2, "eval_batch_size": 64,
        "lr": 0.05, "retrain": retrain, "seed": 3, "ks": (1, 5)})


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)  # the same thread count as the in-process reference run
    run_dir = Path(argv[0])
    retrain = len(argv) < 2 or argv[1] != "noretrain"
    delay = float(argv[2]) if len(argv) > 2 else 0.02
    run_toy(toy_split(), kill_cfg(retrain), run_dir, torch.device("cpu"), run_id="kill",
              progress=False, keep_model=True,
              model_factory=lambda n, u: TinyModel(n, u, delay=delay))


if __name__ == "__main__":
    main(sys.argv[1:])

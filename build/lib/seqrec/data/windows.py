"""Windows as views over flat arrays, and the `Split` that holds train, val and test.

A part (train, val or test) is the events of all users laid end to end, `items int32[T]` and
`users int32[T]`, plus `starts int64[N]`: window i is `items[starts[i] : starts[i] + L]`, its
first `L - 1` items the input and its last item the target (docs/protocol.md, step 5). Memory
is O(T + N) (16 bytes per window at most), never O(N x L); batches are gathered by index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from seqrec.io import atomic_write

PARTS = ("train", "val", "test")
THIRDS = ("popular", "semi", "unpopular")


@dataclass(frozen=True)
class Windows:
    """One part of a split. `items`, `users`: int32[T]; `starts`: int64[N]; window length L."""

    items: np.ndarray
    users: np.ndarray
    starts: np.ndarray
    seq_len: int

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def gather(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows `idx` as `items int64[B, L]`, `users int64[B, L]` (numpy, for references)."""
        pos = self.starts[np.asarray(idx)][:, None] + np.arange(self.seq_len)
        return self.items[pos].astype(np.int64), self.users[pos].astype(np.int64)

    def targets(self) -> np.ndarray:
        """The target item of every window, int64[N]."""
        return self.items[self.starts + self.seq_len - 1].astype(np.int64)

    def to(self, device: torch.device | str) -> DeviceWindows:
        return DeviceWindows(
            items=torch.as_tensor(self.items.astype(np.int64), device=device),
            users=torch.as_tensor(self.users.astype(np.int64), device=device),
            starts=torch.as_tensor(self.starts, device=device),
            seq_len=self.seq_len,
        )


@dataclass(frozen=True)
class DeviceWindows:
    """A `Windows` whose arrays live on the training device, for gathering batches there."""

    items: torch.Tensor
    users: torch.Tensor
    starts: torch.Tensor
    seq_len: int

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs `items[B, L-1]`, `users[B, L-1]` and `target[B]` of windows `idx` (int64[B])."""
        pos = self.starts[idx].unsqueeze(1) + torch.arange(self.seq_len, device=idx.device)
        items = self.items[pos]  # [B, L]
        return items[:, :-1], self.users[pos[:, :-1]], items[:, -1]


def concat(a: Windows, b: Windows) -> Windows:
    """The windows of `a` then those of `b` (e.g. train + val for the thesis' stage (b))."""
    if a.seq_len != b.seq_len:
        raise ValueError(f"cannot join windows of length {a.seq_len} and {b.seq_len}")
    return Windows(
        items=np.concatenate([a.items, b.items]),
        users=np.concatenate([a.users, b.users]),
        starts=np.concatenate([a.starts, b.starts + a.items.shape[0]]).astype(np.int64),
        seq_len=a.seq_len,
    )


def popularity_thirds(item_counts: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Items in thirds by training frequency, from item counts only (cf. thesis defect 4).

    Items are ranked by count, most played first (ties by item index), and the ranking is cut
    into three near-equal groups of items. Returns `third int8[n_items]` (0 popular, 1 semi,
    2 unpopular) and the lowest count in the popular and semi-popular groups.
    """
    n = item_counts.shape[0]
    order = np.lexsort((np.arange(n), -item_counts.astype(np.int64)))
    third = np.empty(n, dtype=np.int8)
    bounds = []
    for g, members in enumerate(np.array_split(order, 3)):
        third[members] = g
        if g < 2:
            bounds.append(int(item_counts[members].min()) if members.size else 0)
    return third, bounds


@dataclass(frozen=True)
class Split:
    """Train, val and test windows of one chunk, with what training and evaluation need.

    `item_counts` int64[n_items] counts the plays of each item in the train part;
    `thirds` int8[n_items] is `popularity_thirds(item_counts)`; `dropped_unseen` counts the val
    and test events dropped because their item never occurs in train; `meta` holds anything else
    worth recording (chunk, rows, settings hash).
    """

    train: Windows
    val: Windows
    test: Windows
    n_items: int
    n_users: int
    item_counts: np.ndarray
    dropped_unseen: dict[str, int]
    meta: dict = field(default_factory=dict)

    @cached_property  # computed once per split (cached_property works on frozen dataclasses)
    def _popularity(self) -> tuple[np.ndarray, list[int]]:
        return popularity_thirds(self.item_counts)

    @property
    def thirds(self) -> np.ndarray:
        return self._popularity[0]

    @property
    def third_bounds(self) -> list[int]:
        return self._popularity[1]

    @property
    def seq_len(self) -> int:
        return self.train.seq_len

    def part(self, name: str) -> Windows:
        if name not in PARTS:
            raise ValueError(f"unknown part {name!r}; choose one of {PARTS}")
        return getattr(self, name)

    def trainval(self) -> Windows:
        return concat(self.train, self.val)

    def summary(self) -> dict:
        return {
            "n_items": self.n_items,
            "n_users": self.n_users,
            "windows": {p: len(self.part(p)) for p in PARTS},
            "events": {p: int(self.part(p).items.shape[0]) for p in PARTS},
            "dropped_unseen": dict(self.dropped_unseen),
            **{k: v for k, v in self.meta.items() if not isinstance(v, (list, dict))},
        }

    def save(self, path: str | Path) -> Path:
        """Write as one `.npz` (no pickle: metadata is JSON in a uint8 array), atomically."""
        arrays = {"item_counts": self.item_counts.astype(np.int64)}
        for p in PARTS:
            w = self.part(p)
            arrays[f"{p}_items"] = w.items.astype(np.int32)
            arrays[f"{p}_users"] = w.users.astype(np.int32)
            # On disk starts are int32 while they fit (4 bytes per window saved); load widens.
            narrow = w.items.shape[0] <= np.iinfo(np.int32).max
            arrays[f"{p}_starts"] = w.starts.astype(np.int32 if narrow else np.int64)
        header = {
            "n_items": self.n_items,
            "n_users": self.n_users,
            "seq_len": self.seq_len,
            "dropped_unseen": self.dropped_unseen,
            "meta": self.meta,
        }
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        return atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | Path) -> Split:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(z["header"].tobytes().decode())
            parts = {
                p: Windows(z[f"{p}_items"], z[f"{p}_users"], z[f"{p}_starts"].astype(np.int64),
                           header["seq_len"])
                for p in PARTS
            }
            return cls(
                **parts,
                n_items=header["n_items"],
                n_users=header["n_users"],
                item_counts=z["item_counts"],
                dropped_unseen=header["dropped_unseen"],
                meta=header["meta"],
            )

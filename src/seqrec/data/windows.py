"""Windows as views over flat arrays, and the `Split` that holds train, val and test.

A part (train, val or test) is the events of all users laid end to end, `items int32[T]` and
`users int32[T]`, plus `starts int64[N]`: window i is `items[starts[i] : starts[i] + L]`, its
first `L - 1` items the input and its last item the target (docs/protocol.md, step 5). Memory
is O(T + N) (16 bytes per window at most, 20 when padded), never O(N x L); batches are gathered
by index.

Padding (`split=leave_one_out` and `global_time`, docs/protocols.md). A target with fewer than
`L - 1` earlier events gets a left-padded window: `pads int32[N]` says how many of window i's
first slots are padding, and those slots read as `pad_id` (the split's `n_items`, an id no
model predicts) instead of an event. The flat arrays hold real events only, so every stored id
stays in `[0, n_items)`. `starts[i]` still ends the window at `starts[i] + L`; for a padded
window it may point before its user's first event (even below 0), but the padded slots are
never read: they are gathered from the window's first real event and then overwritten. The
padding always precedes the window's events, and the last input slot is always an event.
Without padding (`split=thesis`) `pads` and `pad_id` are None and nothing extra is stored or
computed.
"""

from __future__ import annotations

import hashlib
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
    """One part of a split. `items`, `users`: int32[T]; `starts`: int64[N]; window length L.

    `pads` int32[N] (or None: no padding): leading padded slots of each window, in
    `[0, L - 2]`; `pad_id`: the id those slots read as (the split's `n_items`), set exactly
    when `pads` is. See the module docstring.
    """

    items: np.ndarray
    users: np.ndarray
    starts: np.ndarray
    seq_len: int
    pads: np.ndarray | None = None
    pad_id: int | None = None

    def __post_init__(self) -> None:
        if (self.pads is None) != (self.pad_id is None):
            raise ValueError("Windows: give both pads and pad_id, or neither")
        if self.pads is not None and self.pads.shape != self.starts.shape:
            raise ValueError(f"Windows: pads has shape {self.pads.shape} but starts has shape "
                             f"{self.starts.shape}; one count per window")

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def first_event(self) -> np.ndarray:
        """Flat position of each window's first real event, int64[N] (`starts` + `pads`)."""
        starts = np.asarray(self.starts, dtype=np.int64)
        return starts if self.pads is None else starts + self.pads

    def gather(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows `idx` as `items int64[B, L]`, `users int64[B, L]` (numpy, for references).

        Padded slots hold `pad_id` in items and the window's user in users.
        """
        idx = np.asarray(idx)
        slot = np.arange(self.seq_len)
        pos = self.starts[idx][:, None] + slot
        if self.pads is None:
            return self.items[pos].astype(np.int64), self.users[pos].astype(np.int64)
        pads = self.pads[idx][:, None]
        pos = np.maximum(pos, pos[:, :1] + pads)  # padded slots read the first event ...
        items = np.where(slot < pads, self.pad_id, self.items[pos])  # ... then become pad_id
        return items.astype(np.int64), self.users[pos].astype(np.int64)

    def targets(self) -> np.ndarray:
        """The target item of every window, int64[N]."""
        return self.items[self.starts + self.seq_len - 1].astype(np.int64)

    def to(self, device: torch.device | str) -> DeviceWindows:
        pads = None if self.pads is None else torch.as_tensor(
            self.pads.astype(np.int64), device=device)
        return DeviceWindows(
            items=torch.as_tensor(self.items.astype(np.int64), device=device),
            users=torch.as_tensor(self.users.astype(np.int64), device=device),
            starts=torch.as_tensor(self.starts, device=device),
            seq_len=self.seq_len,
            pads=pads,
            pad_id=self.pad_id,
        )


@dataclass(frozen=True)
class DeviceWindows:
    """A `Windows` whose arrays live on the training device, for gathering batches there."""

    items: torch.Tensor
    users: torch.Tensor
    starts: torch.Tensor
    seq_len: int
    pads: torch.Tensor | None = None
    pad_id: int | None = None

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs `items[B, L-1]`, `users[B, L-1]` and `target[B]` of windows `idx` (int64[B]).

        With padding, a window's padded slots hold `pad_id` in items and the window's user in
        users: one `maximum` and one `masked_fill` over `[B, L]` more; without, nothing more.
        """
        slot = torch.arange(self.seq_len, device=idx.device)
        pos = self.starts[idx].unsqueeze(1) + slot  # [B, L]
        if self.pads is None:
            items = self.items[pos]  # [B, L]
        else:
            pads = self.pads[idx].unsqueeze(1)  # [B, 1]
            pos = torch.maximum(pos, pos[:, :1] + pads)  # padded slots read the first event
            items = self.items[pos].masked_fill_(slot < pads, self.pad_id)
        return items[:, :-1], self.users[pos[:, :-1]], items[:, -1]


def concat(a: Windows, b: Windows) -> Windows:
    """The windows of `a` then those of `b` (e.g. train + val for the thesis' stage (b))."""
    if a.seq_len != b.seq_len:
        raise ValueError(f"cannot join windows of length {a.seq_len} and {b.seq_len}")
    pads = pad_id = None
    if a.pads is not None or b.pads is not None:
        ids = {w.pad_id for w in (a, b) if w.pad_id is not None}
        if len(ids) != 1:
            raise ValueError(f"cannot join windows padded with different ids {sorted(ids)}")
        (pad_id,) = ids
        pads = np.concatenate([np.zeros(len(w), np.int32) if w.pads is None else w.pads
                               for w in (a, b)]).astype(np.int32)
    return Windows(
        items=np.concatenate([a.items, b.items]),
        users=np.concatenate([a.users, b.users]),
        starts=np.concatenate([a.starts, b.starts + a.items.shape[0]]).astype(np.int64),
        seq_len=a.seq_len,
        pads=pads,
        pad_id=pad_id,
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
    worth recording (chunk, rows, settings hash, `split`: the protocol that made it). A padded
    part pads with `n_items`.
    """

    train: Windows
    val: Windows
    test: Windows
    n_items: int
    n_users: int
    item_counts: np.ndarray
    dropped_unseen: dict[str, int]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for p in PARTS:
            pad_id = self.part(p).pad_id
            if pad_id is not None and pad_id != self.n_items:
                raise ValueError(f"the {p} part pads with id {pad_id} but the split has "
                                 f"n_items={self.n_items}; padding must be n_items")

    @property
    def padded(self) -> bool:
        """Whether any part has padded windows (split=leave_one_out or global_time)."""
        return any(self.part(p).pads is not None for p in PARTS)

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
        """Write as one `.npz` (no pickle: metadata is JSON in a uint8 array), atomically.

        The header carries a BLAKE2b checksum of every array and of its own other fields
        (`_content_digest`); `load` refuses a file whose content does not match it.
        """
        arrays = {"item_counts": self.item_counts.astype(np.int64)}
        for p in PARTS:
            w = self.part(p)
            arrays[f"{p}_items"] = w.items.astype(np.int32)
            arrays[f"{p}_users"] = w.users.astype(np.int32)
            # On disk starts are int32 while they fit (4 bytes per window saved); load widens.
            narrow = w.items.shape[0] <= np.iinfo(np.int32).max
            arrays[f"{p}_starts"] = w.starts.astype(np.int32 if narrow else np.int64)
            if w.pads is not None:
                arrays[f"{p}_pads"] = w.pads.astype(np.int32)
        header = {
            "n_items": self.n_items,
            "n_users": self.n_users,
            "seq_len": self.seq_len,
            "dropped_unseen": self.dropped_unseen,
            "meta": self.meta,
        }
        header["checksum"] = _content_digest(header, arrays)
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        return atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | Path) -> Split:
        """The split saved at `path`, once its checksum matches what was read.

        Raises ValueError for a file without a checksum (written before there was one) or one
        whose arrays or header differ from what was saved (a flipped bit, a cut copy); the
        zip and JSON layers raise their own errors (`zipfile.BadZipFile`, `KeyError`, ...).
        """
        # Opened here, not by np.load, which leaves its file open when the zip fails to parse.
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            header = json.loads(z["header"].tobytes().decode())
            arrays = {name: z[name] for name in z.files if name != "header"}
        if not isinstance(header, dict) or "checksum" not in header:
            raise ValueError("it has no checksum (written by an older seqrec)")
        if header["checksum"] != _content_digest(header, arrays):
            raise ValueError("its checksum does not match its contents")
        parts = {
            p: Windows(arrays[f"{p}_items"], arrays[f"{p}_users"],
                       arrays[f"{p}_starts"].astype(np.int64), header["seq_len"],
                       arrays.get(f"{p}_pads"),
                       header["n_items"] if f"{p}_pads" in arrays else None)
            for p in PARTS
        }
        return cls(
            **parts,
            n_items=header["n_items"],
            n_users=header["n_users"],
            item_counts=arrays["item_counts"],
            dropped_unseen=header["dropped_unseen"],
            meta=header["meta"],
        )


def _content_digest(header: dict, arrays: dict[str, np.ndarray]) -> str:
    """BLAKE2b-256 of a saved split: the header's fields other than `checksum` (canonical JSON),
    then each array's name, dtype, shape and bytes, in name order.

    The same algorithm as the events cache's file digests (data/events.py, "Checksums"): it
    guards against accidents (a flipped bit, a truncated or swapped file), not an adversary.
    Name, dtype and shape are hashed with the bytes, so bytes that moved from one array to
    another, or were reinterpreted, do not match.
    """
    h = hashlib.blake2b(digest_size=32)
    body = {k: v for k, v in header.items() if k != "checksum"}
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}:{a.dtype.str}:{a.shape}\0".encode())
        h.update(a.data)
    return h.hexdigest()

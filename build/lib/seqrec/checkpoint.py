"""Checkpoints: written atomically after every epoch, checksummed, validated on load.

File layout: 8 magic bytes `SEQRECK1`, the 32-byte SHA-256 of the payload, then the payload, the
bytes of `torch.save(dict)`. One file carries its own checksum, so the pair can never disagree
after a kill. The payload holds only tensors, dicts, lists and primitives, so it is read with
`torch.load(weights_only=True)`: a tampered file cannot run code (docs/design.md, "Files").

Each save first renames the current checkpoint to `<name>.prev.pt` (kept as the fall-back), then
writes the new one atomically (`seqrec.io.atomic_write`). `load_latest` tries the newest file,
then the previous one; a file that is truncated, corrupt or not a checkpoint is reported with a
warning naming it, never silently loaded.

Random-number states (python `random`, numpy's global generator, torch CPU and every CUDA device)
are stored as tensors and primitives by `rng_state` and restored by `set_rng_state`, so a resumed
run draws the same dropout masks as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrec.io import atomic_write_bytes

MAGIC = b"SEQRECK1"
DIGEST_BYTES = 32
FORMAT = 1
REQUIRED_KEYS = ("format", "stage", "epoch", "model", "optimizer", "early", "history", "config",
                 "rng")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be trusted: truncated, corrupt, or of another format."""


def previous_path(path: str | Path) -> Path:
    """`ckpt.pt` -> `ckpt.prev.pt`: where the checkpoint before the newest one is kept."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def encode(payload: dict) -> bytes:
    """The bytes of a checkpoint file: magic, SHA-256 of the payload, `torch.save` payload."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    return MAGIC + hashlib.sha256(data).digest() + data


def decode(data: bytes, name: str = "checkpoint") -> dict:
    """Check the magic, length and checksum of checkpoint bytes and load the payload.

    Raises `CheckpointError` with a sentence naming `name` on any mismatch.
    """
    head = len(MAGIC) + DIGEST_BYTES
    if len(data) < head or not data.startswith(MAGIC):
        raise CheckpointError(f"{name} is not a seqrec checkpoint (missing header; "
                              f"{len(data)} bytes), possibly truncated")
    digest, body = data[len(MAGIC):head], data[head:]
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(f"{name} fails its checksum: the file is truncated or corrupt")
    try:
        payload = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- any unpickling failure means an unusable file
        raise CheckpointError(f"{name} passes its checksum but cannot be read: {e}") from e
    missing = [k for k in REQUIRED_KEYS if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise CheckpointError(f"{name} lacks the fields {missing}; it was not written by this "
                              f"version of seqrec")
    if payload["format"] != FORMAT:
        raise CheckpointError(f"{name} has format {payload['format']}, expected {FORMAT}")
    return payload


def save_checkpoint(path: str | Path, payload: dict) -> Path:
    """Write `payload` to `path` atomically, first moving the existing file to `.prev.pt`."""
    path = Path(path)
    data = encode({"format": FORMAT, **payload})
    if path.exists():
        os.replace(path, previous_path(path))
    return atomic_write_bytes(path, data)


def read_checkpoint(path: str | Path) -> dict:
    """Load and validate one checkpoint file; `CheckpointError` if it cannot be trusted."""
    path = Path(path)
    return decode(path.read_bytes(), name=str(path))


def load_latest(path: str | Path) -> tuple[dict | None, Path | None]:
    """The newest valid checkpoint among `path` and its `.prev.pt`, and the file it came from.

    An unusable file gives a warning that names it and says what happens instead (falling back
    to the previous checkpoint, or starting from scratch). `(None, None)` when none is usable.
    """
    path = Path(path)
    candidates = [p for p in (path, previous_path(path)) if p.exists()]
    for i, p in enumerate(candidates):
        try:
            return read_checkpoint(p), p
        except (CheckpointError, OSError) as e:
            then = (f"falling back to the previous checkpoint {candidates[i + 1]}"
                    if i + 1 < len(candidates) else "starting this run from scratch")
            warnings.warn(f"ignoring checkpoint {p}: {e}; {then}", RuntimeWarning, stacklevel=2)
    return None, None


def remove_checkpoints(path: str | Path) -> None:
    """Delete `path`, its `.prev.pt` and temporary files a kill mid-write left beside them
    (after the run record is written: disk is finite)."""
    path = Path(path)
    for p in (path, previous_path(path)):
        p.unlink(missing_ok=True)
        for tmp in p.parent.glob(f".{p.name}.*.tmp"):  # seqrec.io.atomic_write's temp names
            tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Random-number states as tensors and primitives (loadable with weights_only=True)

def rng_state() -> dict[str, Any]:
    """The states of python `random`, numpy's global generator, torch CPU and all CUDA devices."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    return {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned. CUDA states are restored when CUDA is present and the
    device count matches (a CPU checkpoint resumed on a GPU re-seeds nothing on the GPU)."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    npd = state["numpy"]
    np.random.set_state({
        "bit_generator": "MT19937",
        "state": {"key": npd["key"].numpy().astype(np.uint32), "pos": npd["pos"]},
        "has_gauss": npd["has_gauss"], "gauss": npd["gauss"],
    })
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)

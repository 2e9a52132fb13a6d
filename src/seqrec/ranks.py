"""A run's per-window test ranks: the file `ranks.npz` beside its record, written and read here.

Every finished run keeps, for each test window in evaluation order, the rank of its target
(the same rank and tie policy its metrics were computed with), the window's user, the target
item and the target's popularity third. Every metric of the record is a function of these
arrays (`seqrec.metrics.metrics_from_ranks` recomputes them to the last bit), and two runs of
one cell (same data, chunk, split and seed) rank the same targets, so they can be compared
window by window (`seqrec.report.paired`).

The file is a plain `.npz` of integer arrays (read with `allow_pickle=False`) plus two text
entries: `ties`, the tie policy, and `sha256`, a SHA-256 over the arrays' names, dtypes, shapes
and bytes (`digest`). A file that cannot be read or fails its checksum is treated as absent,
with one warning naming it: the report then falls back to the seed-level tests.
"""

from __future__ import annotations

import hashlib
import io
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqrec.io import atomic_write_bytes

RANKS_FILE = "ranks.npz"
ARRAYS = ("twice_rank", "user", "target", "third")  # seqrec.metrics.RANK_FIELDS
_DTYPES = {"twice_rank": np.int64, "user": np.int32, "target": np.int32, "third": np.int8}


class RanksError(ValueError):
    """A ranks file that cannot be trusted (unreadable, damaged, or of another layout)."""


@dataclass(frozen=True, eq=False)
class RunRanks:
    """The test windows of one run, `[n]` each: `twice_rank` (twice the 1-based rank of the
    target, an integer under every tie policy; 0 when the target's score was NaN, a miss),
    `user`, `target` (item id) and `third` (0 popular, 1 semi, 2 unpopular); `ties` the policy
    the ranks were taken under."""

    twice_rank: np.ndarray
    user: np.ndarray
    target: np.ndarray
    third: np.ndarray
    ties: str = "conservative"

    def __post_init__(self) -> None:
        for name in ARRAYS:
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name),
                                                                dtype=_DTYPES[name]))
        sizes = {getattr(self, name).shape for name in ARRAYS}
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise RanksError(f"rank arrays must be one-dimensional and of one length, got "
                             f"shapes {sorted(sizes)}")

    def __len__(self) -> int:
        return int(self.twice_rank.shape[0])

    @classmethod
    def from_evaluation(cls, ranks: dict, ties: str) -> RunRanks:
        """From `evaluate(..., keep_ranks=True)["ranks"]`."""
        return cls(**{name: ranks[name] for name in ARRAYS}, ties=ties)

    def same_windows(self, other: RunRanks) -> bool:
        """Whether both rank the same targets of the same users in the same order (two runs of
        one cell do: same data, chunk, split and seed)."""
        return (len(self) == len(other) and np.array_equal(self.user, other.user)
                and np.array_equal(self.target, other.target))

    def hits(self, k: int) -> np.ndarray:
        """Recall@k per window, float64 `[n]`: 1 when 1 <= rank <= k."""
        return ((self.twice_rank >= 1) & (self.twice_rank <= 2 * k)).astype(np.float64)

    def reciprocal(self, k: int) -> np.ndarray:
        """MRR@k per window, float64 `[n]`: 1 / rank when 1 <= rank <= k, else 0."""
        hit = (self.twice_rank >= 1) & (self.twice_rank <= 2 * k)
        return np.where(hit, 2.0 / np.maximum(self.twice_rank, 1), 0.0)

    def per_window(self, metric: str) -> np.ndarray:
        """A metric key ("recall@20", "mrr@20") per window, float64 `[n]`."""
        name, _, k = metric.partition("@")
        if name == "recall" and k.isdigit():
            return self.hits(int(k))
        if name == "mrr" and k.isdigit():
            return self.reciprocal(int(k))
        raise ValueError(f"per-window values exist for recall@k and mrr@k, not {metric!r}")


def digest(ranks: RunRanks) -> str:
    """SHA-256 (hex) over every array's name, dtype, shape and bytes, and the tie policy."""
    h = hashlib.sha256(f"ties={ranks.ties}".encode())
    for name in ARRAYS:
        a = getattr(ranks, name)
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def ranks_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / RANKS_FILE


def encode(ranks: RunRanks) -> bytes:
    """The bytes of a ranks file (`np.savez_compressed`: the ranks compress well)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{name: getattr(ranks, name) for name in ARRAYS},
                        ties=np.array(ranks.ties), sha256=np.array(digest(ranks)))
    return buf.getvalue()


def write_ranks(path: str | Path, ranks: RunRanks) -> Path:
    """Write a ranks file atomically (`ranks_path(run_dir)` beside a run's record)."""
    return atomic_write_bytes(path, encode(ranks))


def decode(data: bytes, name: str = "ranks file") -> RunRanks:
    """Parse and verify ranks-file bytes; `RanksError` naming `name` on any defect."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            missing = [k for k in (*ARRAYS, "ties", "sha256") if k not in z.files]
            if missing:
                raise RanksError(f"{name} lacks {missing}; it was not written by seqrec")
            values = {k: z[k] for k in (*ARRAYS, "ties", "sha256")}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        if isinstance(e, RanksError):
            raise
        raise RanksError(f"{name} cannot be read ({e})") from e
    for k in ARRAYS:
        if values[k].dtype != _DTYPES[k]:
            raise RanksError(f"{name}: array {k} has dtype {values[k].dtype}, expected "
                             f"{np.dtype(_DTYPES[k])}")
    ranks = RunRanks(**{k: values[k] for k in ARRAYS}, ties=str(values["ties"]))
    if digest(ranks) != str(values["sha256"]):
        raise RanksError(f"{name} fails its checksum: the file is damaged")
    return ranks


def read_ranks(run_dir: str | Path) -> RunRanks | None:
    """The ranks in `run_dir`, or None when there are none or the file is damaged (then with
    one warning naming it: the run still reports, from its record alone)."""
    path = ranks_path(run_dir)
    if not path.exists():
        return None
    try:
        return decode(path.read_bytes(), name=f"ranks file {path}")
    except (OSError, RanksError) as e:
        warnings.warn(f"{e}; treated as absent (its run reports from its record alone)",
                      RuntimeWarning, stacklevel=2)
        return None


class RanksReader:
    """`reader(record)`: the ranks of a record's run under `out_dir/runs/<run_id>/` (the
    runner's layout), read once per run (None when absent or damaged)."""

    def __init__(self, out_dir: str | Path) -> None:
        self.runs = Path(out_dir) / "runs"
        self._cache: dict[str, RunRanks | None] = {}

    def __call__(self, record) -> RunRanks | None:  # noqa: ANN001 - a seqrec.record.RunRecord
        if record.run_id not in self._cache:
            self._cache[record.run_id] = read_ranks(self.runs / record.run_id)
        return self._cache[record.run_id]

"""Rank-based next-item metrics on the device: Recall@k, MRR@k, NDCG@k, with a tie policy.

The target of every window is ranked against ALL items (no sampled negatives: Krichene and
Rendle, "On Sampled Metrics for Item Recommendation", KDD 2020). Items already in the window's
history are not masked (people replay music). One comparison pass over the scores `[B, n_items]`
(two for ``expected``) gives every window's rank; no Python loop runs per window.

Tie policies (the rank is 1-based; `greater` / `equal` count the items whose score is strictly
greater than / equal to the target's score, the target itself included in `equal`):

- ``conservative``: rank = greater + equal. Ties count against the model, so a model that scores
  every item the same ranks every target last and gets about zero (GRU4Rec's evaluation rule).
- ``optimistic``: rank = 1 + greater. Ties count for the model.
- ``expected``: rank = 1 + greater + (equal - 1) / 2, the mean position of the target when its
  tied group is put in a uniformly random order. This rank can be a half-integer.

How a rank r (integer or half-integer) becomes a metric, for every policy alike:
Recall@k = [r <= k]; MRR@k = [r <= k] / r; NDCG@k = [r <= k] / log2(1 + r) (one relevant item,
so the ideal DCG is 1; Jarvelin and Kekalainen, ACM TOIS 2002). For ``expected`` these are the
metrics OF the expected rank, not the expected metrics over random tie-breaks: a target tied
across the cut-off counts as a hit exactly when its mean position is within k. A target whose
own score is NaN counts as a miss.

Streaming and exact: the accumulator keeps a histogram of twice the rank (an integer under all
three policies) over `1 .. 2 max(ks)`, one row per popularity third of the target item, plus an
overflow bin. Every metric is a fixed function of that integer histogram, so results are
bitwise identical for any evaluation batch size. Only the mean loss is a float sum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from seqrec.config import TIE_POLICIES, RunConfig
from seqrec.data.windows import THIRDS, DeviceWindows, Split, Windows
from seqrec.models.contract import scores_are_logits

METRIC_NAMES = ("recall", "mrr", "ndcg")
RANK_FIELDS = ("twice_rank", "user", "target", "third")  # `evaluate(keep_ranks=True)`'s arrays


def twice_rank(scores: Tensor, target: Tensor, ties: str, workspace: Tensor | None = None
               ) -> Tensor:
    """Twice the 1-based rank of each target among all items under a tie policy.

    `scores` `[B, n_items]` (any float dtype), `target` int64 `[B]` -> int64 `[B]`. Twice the rank
    is an integer under all policies (the ``expected`` rank is a half-integer). A NaN target score
    gives 0, which the accumulator treats as a miss. `workspace`: an optional float buffer of at
    least `[B, n_items]` to count in (see `count_where`), saving an allocation per batch.
    """
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties must be one of {TIE_POLICIES}, got {ties!r}")
    if workspace is None:
        workspace = new_workspace(scores.shape, scores.device)
    work = workspace[: scores.shape[0]]
    t = scores.gather(1, target.unsqueeze(1))  # [B, 1]
    # Comparisons with a NaN target are all False, so every count below is 0 for it.
    if ties == "conservative":
        return 2 * count_where(torch.ge, scores, t, work)
    greater = count_where(torch.gt, scores, t, work)  # [B]
    nan = t.squeeze(1).isnan()
    if ties == "optimistic":
        return torch.where(nan, 0, 2 * (1 + greater))
    at_least = count_where(torch.ge, scores, t, work)  # [B], = greater + equal
    # 2 (1 + greater + (equal - 1) / 2) = 1 + greater + at_least
    return torch.where(nan, 0, 1 + greater + at_least)


def count_where(compare, scores: Tensor, t: Tensor, work: Tensor) -> Tensor:
    """Per row, how many items satisfy `compare(score, t)`: int64 `[B]`.

    The comparison writes 1.0 / 0.0 into the float buffer `work` `[B, n_items]` and a float sum
    counts them: on CPU a summed bool mask is several times slower (its reduction converts every
    element to int64), while float compare-and-sum costs about one read of the scores. The sums
    are exact: `new_workspace` picks float64 when a row could hold 2**24 or more ones.
    """
    compare(scores, t, out=work)
    return work.sum(dim=1).to(torch.int64)


def new_workspace(shape: torch.Size | tuple[int, int], device: torch.device) -> Tensor:
    """A counting buffer for `count_where`: float32, or float64 from 2**24 items on."""
    dtype = torch.float32 if shape[1] < 2**24 else torch.float64
    return torch.empty(tuple(shape), dtype=dtype, device=device)


def rank_weights(max_k: int) -> dict[str, Tensor]:
    """Per histogram bin h (h = twice the rank, 0 .. 2 max_k + 1), the value each metric takes.

    Bin 0 (NaN target) and bin 2 max_k + 1 (rank beyond every cut-off) are misses; the cut-off k
    is applied later by summing bins 1 .. 2k. Returns float64 `[2 max_k + 2]` per metric.
    """
    h = torch.arange(2 * max_k + 2, dtype=torch.float64)
    r = h / 2
    hit = (h >= 1) & (h <= 2 * max_k)
    safe = torch.where(hit, r, torch.ones_like(r))
    return {
        "recall": hit.double(),
        "mrr": torch.where(hit, 1.0 / safe, 0.0),
        "ndcg": torch.where(hit, 1.0 / torch.log2(1.0 + safe), 0.0),
    }


@dataclass
class MetricAccumulator:
    """Sums over windows, streamed batch by batch: a rank histogram per group, loss sums.

    `groups` rows: the popularity thirds of the target (0 popular, 1 semi, 2 unpopular), or any
    other small integer grouping the caller passes to `update`. Tensors live on `device` so an
    update never leaves it; `result` reads them back once.
    """

    ks: tuple[int, ...]
    ties: str
    device: torch.device
    groups: int = 3
    hist: Tensor = field(init=False)  # int64 [groups, 2 max_k + 2]
    loss_sum: Tensor = field(init=False)  # float64 [groups]
    workspace: Tensor | None = field(init=False, default=None)  # reused by `twice_rank`

    def __post_init__(self) -> None:
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be >= 1, got {self.ks}")
        if self.ties not in TIE_POLICIES:
            raise ValueError(f"ties must be one of {TIE_POLICIES}, got {self.ties!r}")
        self.bins = 2 * max(self.ks) + 2
        self.hist = torch.zeros(self.groups, self.bins, dtype=torch.int64, device=self.device)
        self.loss_sum = torch.zeros(self.groups, dtype=torch.float64, device=self.device)

    def update(self, scores: Tensor, target: Tensor, group: Tensor, loss: Tensor | None = None
               ) -> Tensor:
        """Add a batch: `scores [B, n_items]`, `target` int64 `[B]`, `group` int64 `[B]` in
        `[0, groups)`, optional per-window loss `[B]`. Returns the batch's twice-ranks int64
        `[B]` (`twice_rank`, not cut off)."""
        work = self.workspace
        if (work is None or work.shape[0] < scores.shape[0] or work.shape[1] != scores.shape[1]
                or work.device != scores.device):
            # Kept between batches: a fresh [B, n_items] buffer per batch costs page faults.
            work = self.workspace = new_workspace(scores.shape, scores.device)
        h = twice_rank(scores, target, self.ties, work)  # [B]
        self.add_ranks(h, group, loss)
        return h

    def add_ranks(self, h: Tensor, group: Tensor, loss: Tensor | None = None) -> None:
        """Add windows by their twice-ranks `h` int64 `[B]` (`twice_rank`; any size, ranks
        past every cut-off share the overflow bin) and groups `group` int64 `[B]`."""
        h = h.clamp(max=self.bins - 1)
        self.hist += torch.bincount(group * self.bins + h, minlength=self.groups * self.bins
                                    ).view(self.groups, self.bins)
        if loss is not None:
            self.loss_sum.index_add_(0, group, loss.double())

    def result(self) -> dict:
        """Metrics overall and per group, from the histogram (host-side, float64).

        Returns {"metrics": {"recall@k": .., "mrr@k": .., "ndcg@k": ..}, "by_group":
        [metrics dict or None when the group is empty], "counts": [int], "n_windows": int,
        "loss": mean loss or None, "group_loss": [mean or None]}.
        """
        hist = self.hist.cpu().double()  # [G, bins]
        counts = hist.sum(dim=1)  # [G]
        weights = rank_weights(max(self.ks))
        loss_sum = self.loss_sum.cpu()

        def summarise(row: Tensor, n: float) -> dict[str, float] | None:
            if n == 0:
                return None
            out: dict[str, float] = {}
            for k in sorted(self.ks):
                for name in METRIC_NAMES:
                    out[f"{name}@{k}"] = float((row[: 2 * k + 1] * weights[name][: 2 * k + 1]
                                                ).sum() / n)
            return out

        total = hist.sum(dim=0)
        n = float(counts.sum())
        return {
            "metrics": summarise(total, n) or {},
            "by_group": [summarise(hist[g], float(counts[g])) for g in range(self.groups)],
            "counts": [int(c) for c in counts],
            "n_windows": int(n),
            "loss": float(loss_sum.sum() / n) if n else None,
            "group_loss": [float(loss_sum[g] / counts[g]) if counts[g] else None
                           for g in range(self.groups)],
        }


def _eval_batches(n: int, batch_size: int, device: torch.device):
    """Consecutive index batches covering all n windows (the last one may be smaller)."""
    for lo in range(0, n, batch_size):
        yield torch.arange(lo, min(lo + batch_size, n), device=device)


def evaluate(model: torch.nn.Module, windows: Windows | DeviceWindows, split: Split,
             cfg: RunConfig, device: torch.device, groups: np.ndarray | None = None,
             keep_ranks: bool = False) -> dict:
    """Evaluate `model` on every window (none dropped), ranking each target among all items.

    Popularity thirds of the target come from `split.item_counts` only (cf. thesis defect 4).
    Batches of `cfg.train.eval_batch_size`, in full precision even when training used `amp`:
    half-precision logits (bfloat16 keeps 8 bits of mantissa) tie often among tens of thousands
    of items, and conservative ranks count every tie against the model. Returns
    {"metrics": {"recall@k", "mrr@k", "ndcg@k" for k in cfg.eval.ks}, "metrics_by_popularity":
    {"popular", "semi", "unpopular": same keys, or None for an empty third},
    "n_windows_by_popularity": {...}, "n_windows": int, "loss": mean cross-entropy, or None
    for a model whose scores are not logits (a count baseline, `kind = "count"`)}.

    `groups`: optional int `[n_windows]` labels >= 0 (e.g. a window's history length, or its
    user); adds "metrics_by_group" {label: metrics} and "n_windows_by_group" for the labels
    that occur.

    `keep_ranks`: adds "ranks", the evaluation per window in window order (numpy `[n_windows]`
    each): "twice_rank" (int64, `twice_rank` under `cfg.eval.ties`, not cut off; 0 for a NaN
    target score), "user" and "target" (int64) and "third" (int64, 0 popular .. 2 unpopular).
    The metrics above are a function of these alone (`metrics_from_ranks`).
    """
    dw = windows if isinstance(windows, DeviceWindows) else windows.to(device)
    if len(dw) == 0:
        raise ValueError("evaluate got no windows; the split part is empty (lower seq_len or "
                         "use a larger chunk)")
    thirds = torch.as_tensor(split.thirds.astype(np.int64), device=device)  # [n_items]
    acc = MetricAccumulator(tuple(cfg.eval.ks), cfg.eval.ties, device, groups=len(THIRDS))
    by = by_acc = None
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (len(dw),) or (groups.size and groups.min() < 0):
            raise ValueError(f"groups must hold one label >= 0 per window ({len(dw)}), got "
                             f"shape {groups.shape}")
        by = torch.as_tensor(groups.astype(np.int64), device=device)
        by_acc = MetricAccumulator(tuple(cfg.eval.ks), cfg.eval.ties, device,
                                   groups=int(groups.max()) + 1)
    logits = scores_are_logits(model)
    kept: list[tuple[Tensor, ...]] = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for idx in _eval_batches(len(dw), cfg.train.eval_batch_size, device):
                items, users, target = dw.batch(idx)
                scores = model(items, users)  # [B, n_items]
                if scores.shape != (idx.shape[0], split.n_items):
                    raise ValueError(f"model returned scores of shape {tuple(scores.shape)}, "
                                     f"expected {(idx.shape[0], split.n_items)}; build it with "
                                     f"the split's n_items")
                # Count baselines' scores are not logits: a cross-entropy of them means nothing.
                loss = (F.cross_entropy(scores.float(), target, reduction="none")  # [B]
                        if logits else None)
                h = acc.update(scores, target, thirds[target], loss)
                if keep_ranks:
                    # a window's user is the same at every position (padding included)
                    kept.append((h, users[:, -1], target, thirds[target]))
                if by_acc is not None:
                    by_acc.workspace = acc.workspace  # the same buffer serves both
                    by_acc.update(scores, target, by[idx])
    finally:
        model.train(was_training)
    res = acc.result()
    out = {
        "metrics": res["metrics"],
        "metrics_by_popularity": dict(zip(THIRDS, res["by_group"], strict=True)),
        "n_windows_by_popularity": dict(zip(THIRDS, res["counts"], strict=True)),
        "n_windows": res["n_windows"],
        "loss": res["loss"] if logits else None,
    }
    if keep_ranks:
        out["ranks"] = {name: torch.cat([k[i] for k in kept]).cpu().numpy().astype(np.int64)
                        for i, name in enumerate(RANK_FIELDS)}
    if by_acc is not None:
        res = by_acc.result()
        present = [g for g, c in enumerate(res["counts"]) if c]
        out["metrics_by_group"] = {g: res["by_group"][g] for g in present}
        out["n_windows_by_group"] = {g: res["counts"][g] for g in present}
    return out


def metrics_from_ranks(twice_ranks: np.ndarray, thirds: np.ndarray, ks: tuple[int, ...],
                       ties: str = "conservative") -> dict:
    """The metrics `evaluate` reports, from its per-window twice-ranks and popularity thirds
    (int `[n]` each): {"metrics", "metrics_by_popularity", "n_windows_by_popularity",
    "n_windows"}. The same histogram and the same sums as the streamed evaluation, so the
    values are equal to the last bit. `ties` only labels the accumulator (the ranks already
    carry their tie policy)."""
    acc = MetricAccumulator(tuple(ks), ties, torch.device("cpu"), groups=len(THIRDS))
    acc.add_ranks(torch.as_tensor(np.asarray(twice_ranks, dtype=np.int64)),
                  torch.as_tensor(np.asarray(thirds, dtype=np.int64)))
    res = acc.result()
    return {"metrics": res["metrics"],
            "metrics_by_popularity": dict(zip(THIRDS, res["by_group"], strict=True)),
            "n_windows_by_popularity": dict(zip(THIRDS, res["counts"], strict=True)),
            "n_windows": res["n_windows"]}

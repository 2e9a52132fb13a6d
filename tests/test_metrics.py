"""Metrics: hand-computed ranks under each tie policy, batch-size independence, brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from train_helper import random_split, toy_split

from seqrec.config import apply_overrides, profile
from seqrec.data.windows import popularity_thirds
from seqrec.metrics import MetricAccumulator, evaluate, twice_rank

CPU = torch.device("cpu")


def metrics_of(scores: list[list[float]], target: list[int], ties: str, ks=(1, 2, 3)) -> dict:
    acc = MetricAccumulator(ks, ties, CPU, groups=1)
    t = torch.tensor(target)
    acc.update(torch.tensor(scores), t, torch.zeros_like(t))
    return acc.result()["metrics"]


# Target item 0 scores 0.5; one item scores more (0.9), two others tie with it.
TIED = [[0.5, 0.9, 0.5, 0.1, 0.5]]


@pytest.mark.parametrize("ties,rank", [("conservative", 4.0), ("optimistic", 2.0),
                                       ("expected", 3.0)])
def test_rank_with_ties_by_hand(ties: str, rank: float) -> None:
    assert twice_rank(torch.tensor(TIED), torch.tensor([0]), ties).tolist() == [2 * rank]
    m = metrics_of(TIED, [0], ties, ks=(1, 3, 5))
    assert m["recall@1"] == 0.0
    assert m["recall@3"] == (1.0 if rank <= 3 else 0.0)
    assert m["recall@5"] == 1.0
    assert m["mrr@5"] == pytest.approx(1 / rank)
    assert m["ndcg@5"] == pytest.approx(1 / math.log2(1 + rank))
    assert m["mrr@3"] == pytest.approx(1 / rank if rank <= 3 else 0.0)


def test_expected_half_integer_rank() -> None:
    # greater = 1, equal = 2 (the target and item 2): expected rank 1 + 1 + 1/2 = 2.5.
    scores = [[0.5, 0.9, 0.5, 0.1]]
    assert twice_rank(torch.tensor(scores), torch.tensor([0]), "expected").tolist() == [5]
    m = metrics_of(scores, [0], "expected", ks=(2, 3))
    assert m["recall@2"] == 0.0 and m["mrr@2"] == 0.0
    assert m["recall@3"] == 1.0
    assert m["mrr@3"] == pytest.approx(0.4)
    assert m["ndcg@3"] == pytest.approx(1 / math.log2(3.5))


def test_two_windows_averaged() -> None:
    # Window 1: target 2 is the best (rank 1); window 2: target 0 is third (rank 3).
    m = metrics_of([[0.1, 0.2, 0.9], [0.1, 0.2, 0.3]], [2, 0], "conservative", ks=(1, 2, 3))
    assert m["recall@1"] == 0.5 and m["recall@2"] == 0.5 and m["recall@3"] == 1.0
    assert m["mrr@3"] == pytest.approx((1 + 1 / 3) / 2)
    assert m["ndcg@3"] == pytest.approx((1 + 0.5) / 2)


def test_constant_scores_get_zero_conservatively() -> None:
    scores = torch.zeros(50, 40)
    target = torch.arange(50) % 40
    acc = MetricAccumulator((1, 20), "conservative", CPU, groups=1)
    acc.update(scores, target, torch.zeros_like(target))
    assert all(v == 0.0 for v in acc.result()["metrics"].values())
    # ...while the optimistic policy calls every window a hit: the policies differ.
    acc = MetricAccumulator((1,), "optimistic", CPU, groups=1)
    acc.update(scores, target, torch.zeros_like(target))
    assert acc.result()["metrics"]["recall@1"] == 1.0


def test_nan_target_score_is_a_miss() -> None:
    for ties in ("conservative", "optimistic", "expected"):
        m = metrics_of([[float("nan"), 0.1, 0.2]], [0], ties, ks=(3,))
        assert m["recall@3"] == 0.0, ties


def brute_force(scores: np.ndarray, target: np.ndarray, ties: str, ks) -> dict:
    """Per-window ranks with numpy loops over windows, then the formulas of metrics.py."""
    out = {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "mrr", "ndcg")}
    for s, t in zip(scores, target, strict=True):
        greater = int((s > s[t]).sum())
        equal = int((s == s[t]).sum())
        rank = {"conservative": greater + equal, "optimistic": 1 + greater,
                "expected": 1 + greater + (equal - 1) / 2}[ties]
        for k in ks:
            if rank <= k:
                out[f"recall@{k}"] += 1
                out[f"mrr@{k}"] += 1 / rank
                out[f"ndcg@{k}"] += 1 / math.log2(1 + rank)
    return {k: v / len(target) for k, v in out.items()}


@pytest.mark.parametrize("ties", ["conservative", "optimistic", "expected"])
def test_matches_brute_force_on_random_scores(ties: str) -> None:
    rng = np.random.default_rng(1)
    # Scores rounded to a coarse grid, so ties are frequent.
    scores = np.round(rng.normal(size=(300, 50)), 1).astype(np.float32)
    target = rng.integers(50, size=300)
    ks = (1, 3, 10, 20)
    got = MetricAccumulator(ks, ties, CPU, groups=1)
    t = torch.from_numpy(target)
    got.update(torch.from_numpy(scores), t, torch.zeros_like(t))
    want = brute_force(scores, target, ties, ks)
    assert got.result()["metrics"] == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert 0 < want["recall@10"] < 1  # the case is not degenerate


class FixedScores(nn.Module):
    """Scores from a table indexed by the last input item (and a user bias): a deterministic
    stand-in for a trained model."""

    kind = "neural"
    uses_users = True

    def __init__(self, table: Tensor, user_bias: Tensor) -> None:
        super().__init__()
        self.table, self.user_bias = table, user_bias

    def forward(self, items: Tensor, users: Tensor) -> Tensor:
        return self.table[items[:, -1]] + self.user_bias[users[:, -1]].unsqueeze(1)


def fixed_model(n_items: int, n_users: int, seed: int = 0) -> FixedScores:
    g = torch.Generator().manual_seed(seed)
    table = torch.round(torch.randn(n_items, n_items, generator=g) * 4) / 4  # with ties
    return FixedScores(table, torch.randn(n_users, generator=g))


def test_evaluate_independent_of_batch_size() -> None:
    split = random_split(n_items=30, n_users=5, length=200, seq_len=5)
    model = fixed_model(30, 5)
    results = []
    for bs in (1, 7, 1000):
        cfg = apply_overrides(profile("smoke"), {"eval_batch_size": bs, "ks": (1, 5, 10),
                                                 "ties": "expected"})
        results.append(evaluate(model, split.test, split, cfg, CPU))
    for r in results[1:]:
        assert r["metrics"] == results[0]["metrics"]  # exactly equal: integer histogram
        assert r["metrics_by_popularity"] == results[0]["metrics_by_popularity"]
        assert r["n_windows"] == len(split.test)  # none dropped, not even a last partial batch
        assert r["loss"] == pytest.approx(results[0]["loss"], rel=1e-12)


def test_evaluate_against_numpy_reference_per_third() -> None:
    split = random_split(n_items=30, n_users=5, length=200, seq_len=5, seed=2)
    model = fixed_model(30, 5, seed=4)
    cfg = apply_overrides(profile("smoke"), {"eval_batch_size": 13, "ks": (1, 5, 10)})
    got = evaluate(model, split.test, split, cfg, CPU)
    items, users = split.test.gather(np.arange(len(split.test)))
    with torch.no_grad():
        scores = model(torch.from_numpy(items[:, :-1]), torch.from_numpy(users[:, :-1])).numpy()
    target = items[:, -1]
    third, _ = popularity_thirds(split.item_counts)
    assert got["metrics"] == pytest.approx(brute_force(scores, target, "conservative", cfg.eval.ks))
    for g, name in enumerate(("popular", "semi", "unpopular")):
        sel = third[target] == g
        assert got["n_windows_by_popularity"][name] == int(sel.sum())
        assert got["metrics_by_popularity"][name] == pytest.approx(
            brute_force(scores[sel], target[sel], "conservative", cfg.eval.ks))
    logits = torch.from_numpy(scores)
    ce = torch.nn.functional.cross_entropy(logits, torch.from_numpy(target)).item()
    assert got["loss"] == pytest.approx(ce, rel=1e-6)


def test_thirds_follow_item_counts_only() -> None:
    # Users 0..5 and items 0..11 share id values; counts are set by hand so that items 8..11 are
    # the most played. Routing must follow those counts, not user ids or test frequencies.
    split = toy_split(n_items=12, n_users=6, length=60, seq_len=5)
    counts = np.array([1, 1, 1, 1, 5, 5, 5, 5, 9, 9, 9, 9], dtype=np.int64)
    split = type(split)(split.train, split.val, split.test, 12, 6, counts, {}, {})
    cfg = apply_overrides(profile("smoke"), {"ks": (1,)})
    got = evaluate(fixed_model(12, 6), split.test, split, cfg, CPU)
    target = split.test.targets()
    want = {"popular": int((target >= 8).sum()), "semi": int(((target >= 4) & (target < 8)).sum()),
            "unpopular": int((target < 4).sum())}
    assert got["n_windows_by_popularity"] == want
    assert sum(want.values()) == got["n_windows"] == len(split.test)


def test_empty_third_gives_none() -> None:
    split = toy_split(n_items=12, n_users=6, length=60, seq_len=5)
    counts = np.array([0] * 8 + [9] * 4, dtype=np.int64)  # thirds by rank: 8..11 popular
    # Keep only test windows whose target is popular: the other thirds are empty.
    keep = split.test.starts[np.isin(split.test.targets(), [8, 9, 10, 11])]
    test = type(split.test)(split.test.items, split.test.users, keep, split.test.seq_len)
    split = type(split)(split.train, split.val, test, 12, 6, counts, {}, {})
    got = evaluate(fixed_model(12, 6), test, split, profile("smoke"), CPU)
    assert got["metrics_by_popularity"]["semi"] is None
    assert got["metrics_by_popularity"]["unpopular"] is None
    assert got["metrics_by_popularity"]["popular"] == got["metrics"]


def test_bad_settings_raise() -> None:
    with pytest.raises(ValueError, match="ties"):
        MetricAccumulator((1,), "median", CPU)
    with pytest.raises(ValueError, match="ks"):
        MetricAccumulator((0,), "conservative", CPU)
    split = random_split()
    with pytest.raises(ValueError, match="n_items"):
        narrow = FixedScores(torch.zeros(30, 29), torch.zeros(5))  # one column short
        evaluate(narrow, split.test, split, profile("smoke"), CPU)


def test_metrics_by_group_match_separate_evaluations() -> None:
    split = random_split(n_items=30, n_users=5, length=200, seq_len=5, seed=3)
    model = fixed_model(30, 5, seed=1)
    cfg = apply_overrides(profile("smoke"), {"eval_batch_size": 9, "ks": (1, 5)})
    labels = split.test.users[split.test.starts].astype(np.int64) * 2  # by user; odd unused
    got = evaluate(model, split.test, split, cfg, CPU, groups=labels)
    assert sorted(got["metrics_by_group"]) == sorted(set(labels.tolist()))
    for g in set(labels.tolist()):
        sub = type(split.test)(split.test.items, split.test.users, split.test.starts[labels == g],
                               split.test.seq_len)
        alone = evaluate(model, sub, split, cfg, CPU)
        assert got["metrics_by_group"][g] == alone["metrics"]
        assert got["n_windows_by_group"][g] == len(sub)
    with pytest.raises(ValueError, match="one label"):
        evaluate(model, split.test, split, cfg, CPU, groups=labels[:-1])

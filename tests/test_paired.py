"""Paired inference on per-window ranks (seqrec.report.paired): against a plain-loop worked
example, on identical runs, and on generated runs where one model is built to be better."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from seqrec.ranks import RunRanks
from seqrec.report.paired import Cell, bootstrap_effect, paired_difference, seed_effect


def ranks(twice_rank, user) -> RunRanks:
    user = np.asarray(user)
    return RunRanks(twice_rank=twice_rank, user=user, target=np.arange(len(user)),
                    third=np.zeros(len(user), dtype=int))


# Four users, nine windows; rank 1..3 hits Recall@20 (twice_rank <= 40), 0 is a NaN miss.
USERS = [0, 0, 0, 1, 1, 2, 3, 3, 3]
A = ranks([2, 4, 60, 2, 10, 80, 2, 2, 50], USERS)  # hits: 1 1 0 1 1 0 1 1 0 -> 6/9
B = ranks([4, 90, 60, 0, 10, 80, 6, 44, 50], USERS)  # hits: 1 0 0 0 1 0 1 0 0 -> 3/9


def _loop_replicates(cells, metric, n_boot, seed):
    """The bootstrap of `bootstrap_effect`, by hand: the same draws (its documented order),
    then plain loops over windows."""
    rng = np.random.default_rng(seed)
    strata = {}
    for i, c in enumerate(cells):
        strata.setdefault(c.stratum, []).append(i)
    # first stage: per stratum, the users drawn, as a weight per user, per replicate
    weights = [None] * len(cells)
    for idx in strata.values():
        users = sorted({int(u) for i in idx for r in cells[i].runs for u in r.user})
        draws = rng.integers(0, len(users), (n_boot, len(users)))
        w = [{u: 0 for u in users} for _ in range(n_boot)]
        for b in range(n_boot):
            for j in draws[b]:
                w[b][users[j]] += 1
        for i in idx:
            weights[i] = w
    cell_draws = (rng.integers(0, len(cells), (n_boot, len(cells))) if len(cells) > 1
                  else np.zeros((n_boot, 1), dtype=int))
    out = []
    for b in range(n_boot):
        total = 0.0
        for i in cell_draws[b]:  # second stage: the cells drawn
            c, w = cells[i], weights[i][b]
            for r, k in zip(c.runs, c.coefs, strict=True):
                per = r.per_window(metric)
                tot = sum(w[int(u)] * v for u, v in zip(r.user, per, strict=True))
                total += k * tot / sum(w[int(u)] for u in r.user)
        out.append(total / len(cells))
    if len(cells) > 1:  # the variance correction for drawing few cells
        est = np.mean([sum(k * r.per_window(metric).mean() for r, k in
                           zip(c.runs, c.coefs, strict=True)) for c in cells])
        out = [est + (x - est) * np.sqrt(len(cells) / (len(cells) - 1)) for x in out]
    return out


def test_worked_example_one_cell():
    eff = paired_difference([A], [B], "recall@20", n_boot=400, seed=7)
    assert eff.estimate == pytest.approx(3 / 9)  # by hand: 6/9 - 3/9
    reps = np.array(_loop_replicates([Cell((A, B), (1.0, -1.0))], "recall@20", 400, 7))
    assert eff.low == pytest.approx(np.quantile(reps, 0.025))
    assert eff.high == pytest.approx(np.quantile(reps, 0.975))
    assert eff.p_value == pytest.approx(min(1, 2 * min(np.mean(reps <= 0), np.mean(reps >= 0))))
    assert (eff.n_cells, eff.n_users, eff.n_windows) == (1, 4, 9)
    # MRR@20 by hand: a: 1 + 1/2 + 1 + 1/5 + 1 + 1 = 4.7; b: 1/2 + 1/5 + 1/3 = 31/30
    eff = paired_difference([A], [B], "mrr@20", n_boot=50, seed=1)
    assert eff.estimate == pytest.approx((4.7 - 31 / 30) / 9)


def test_worked_example_pooled_over_chunks_and_seeds():
    # chunk 0 with two seeds (same users, same windows), chunk 1 with one seed (other users)
    a2 = ranks([4, 4, 60, 2, 90, 80, 2, 2, 2], USERS)
    users1 = [5, 5, 6, 7]
    c = [Cell((A, B), (1.0, -1.0), stratum=0, seed=0),
         Cell((a2, B), (1.0, -1.0), stratum=0, seed=1),
         Cell((ranks([2, 90, 2, 2], users1), ranks([2, 2, 90, 90], users1)), (1.0, -1.0),
              stratum=1, seed=0)]
    eff = bootstrap_effect(c, "recall@20", n_boot=300, seed=3)
    # estimate: the mean of the three cells' differences
    assert eff.estimate == pytest.approx((3 / 9 + 3 / 9 + 1 / 4) / 3)  # 6/9-3/9, 3/4-2/4
    reps = np.array(_loop_replicates(c, "recall@20", 300, 3))
    assert eff.low == pytest.approx(np.quantile(reps, 0.025))
    assert eff.high == pytest.approx(np.quantile(reps, 0.975))
    assert eff.p_value == pytest.approx(min(1, 2 * min(np.mean(reps <= 0), np.mean(reps >= 0))))
    assert (eff.n_cells, eff.n_users, eff.n_windows) == (3, 7, 22)


def test_runs_sharing_users_but_not_windows_compare_user_by_user():
    # Another window length: other windows of the same users.
    other = ranks([2, 2, 90, 2, 2], [0, 1, 1, 2, 3])
    with pytest.raises(ValueError, match="same windows"):
        Cell((A, other), (1.0, -1.0))
    cell = Cell((A, other), (1.0, -1.0), paired=False)
    eff = bootstrap_effect([cell], n_boot=200, seed=0)
    assert eff.estimate == pytest.approx(6 / 9 - 4 / 5)
    reps = np.array(_loop_replicates([cell], "recall@20", 200, 0))
    assert eff.low == pytest.approx(np.quantile(reps, 0.025))


def test_identical_runs_give_zero_and_p_one():
    eff = paired_difference([A, B], [A, B], n_boot=500, seed=0)
    assert (eff.estimate, eff.low, eff.high, eff.p_value) == (0.0, 0.0, 0.0, 1.0)


def _generated(rng, n_users, per_user, p_hit):
    user = np.repeat(np.arange(n_users), per_user)
    # a per-user hit rate (users differ in how predictable they are)
    base = rng.uniform(0.1, 0.6, n_users)[user]
    return user, base


def test_a_model_built_better_excludes_zero_and_equal_models_mostly_do_not():
    rng = np.random.default_rng(0)
    user, base = _generated(rng, 60, 20, None)
    u = rng.uniform(size=len(user))
    # b hits where u < base; a hits there too and in a further 5 points of windows
    b = ranks(np.where(u < base, 2, 100), user)
    a = ranks(np.where(u < base + 0.05, 2, 100), user)
    eff = paired_difference([a], [b], n_boot=1000, seed=0)
    assert eff.estimate > 0.03 and eff.low > 0 and eff.p_value < 0.01
    # Two independent draws of one model, 50 times: the 95% interval holds 0 in about 95% of
    # them and p < 0.05 in about 5% (measured: 47 of 50 and 2 of 50; need >= 44 and <= 6).
    held = small = 0
    for i in range(50):
        x, y = (ranks(np.where(rng.uniform(size=len(user)) < base, 2, 100), user)
                for _ in range(2))
        eff = paired_difference([x], [y], n_boot=500, seed=i)
        held += eff.low <= 0 <= eff.high
        small += eff.p_value < 0.05
    assert held >= 44 and small <= 6, (held, small)


def test_seed_level_fallback_is_a_t_interval():
    x = [0.02, 0.03, 0.01, 0.04]
    eff = seed_effect(x)
    half = stats.t.ppf(0.975, 3) * np.std(x, ddof=1) / 2
    assert eff.estimate == pytest.approx(0.025)
    assert (eff.low, eff.high) == pytest.approx((0.025 - half, 0.025 + half))
    assert eff.p_value == pytest.approx(stats.ttest_1samp(x, 0).pvalue)
    assert not seed_effect([0.1]).decided
    assert seed_effect([0.0, 0.0]).p_value == 1.0

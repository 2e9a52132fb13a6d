"""Count baselines on tiny hand-made splits: scores and rankings worked out by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from seqrec.config import ModelConfig
from seqrec.data.windows import Windows
from seqrec.models.baselines import (
    ItemKNNBaseline,
    MarkovBaseline,
    PopBaseline,
    RecentBaseline,
    add_csr_rows_,
    keep_top_per_row,
    training_events,
)

N_ITEMS = 6


def hand_windows() -> Windows:
    """Three users, L = 3, all windows of stride 1.

    user 0: items 0 1 2 1 2 3   (positions 0-5, windows start 0..3)
    user 1: items 3 3 1 4       (positions 6-9, windows start 6..7)
    user 2: items 5 0           (positions 10-11, shorter than L: no window, never counted)
    Counted plays: item 0: 1, 1: 3, 2: 2, 3: 3, 4: 1, 5: 0.
    Transitions: 0>1, 1>2 (x2), 2>1, 2>3 | 3>3, 3>1, 1>4. Not 3>3 across users 0|1, not 4>5.
    """
    items = np.array([0, 1, 2, 1, 2, 3, 3, 3, 1, 4, 5, 0], dtype=np.int32)
    users = np.array([0] * 6 + [1] * 4 + [2] * 2, dtype=np.int32)
    starts = np.array([0, 1, 2, 3, 6, 7], dtype=np.int64)
    return Windows(items, users, starts, 3)


def fitted(cls, **kwargs):
    model = cls(ModelConfig(name="pop"), N_ITEMS, 3, **kwargs)
    model.fit(hand_windows())
    return model


def ranking(scores: torch.Tensor) -> list[int]:
    return torch.argsort(scores, descending=True, stable=True).tolist()


POP = [0.25, 0.75, 0.5, 0.75, 0.25, 0.0]  # count / (max count + 1) = count / 4


def test_training_events_follow_windows_not_the_flat_arrays():
    # One user, L = 2, windows (0, 1) and (3, 4) only: events 2 and 5 are in no window, and the
    # pairs 1-2, 2-3, 4-5 are in no common window.
    w = Windows(np.arange(6, dtype=np.int32), np.zeros(6, np.int32), np.array([0, 3]), 2)
    ev = training_events(w, 6)
    assert ev.covered.tolist() == [True, True, False, True, True, False]
    assert ev.linked.tolist() == [True, False, False, True, False]
    markov = MarkovBaseline(ModelConfig(name="markov"), 6, 1)
    markov.fit(w)
    assert markov.item_counts.tolist() == [1, 1, 0, 1, 1, 0]
    dense = torch.zeros(6, 6, dtype=torch.float64)
    add_csr_rows_(dense, *markov._csr("trans"), torch.arange(6))
    expected = torch.zeros(6, 6, dtype=torch.float64)
    expected[0, 1] = expected[3, 4] = 1
    assert torch.equal(dense, expected)


def test_pop_counts_and_top_items():
    model = fitted(PopBaseline)
    scores = model(torch.tensor([[0, 1], [4, 4]]), None)
    assert scores.shape == (2, N_ITEMS)
    assert scores[0].tolist() == [1.0, 3.0, 2.0, 3.0, 1.0, 0.0]
    assert torch.equal(scores[0], scores[1])  # the same for every window
    assert ranking(scores[0]) == [1, 3, 2, 0, 4, 5]  # equal counts stay real ties (1=3, 0=4)


def test_recent_ranks_the_window_by_last_play_then_popularity():
    model = fitted(RecentBaseline)
    scores = model(torch.tensor([[2, 0, 2, 1]]), None)[0]
    # item 1 last at t=3 -> 4 + pop; item 2 last at t=2 (its t=0 play is older) -> 3 + pop;
    # item 0 at t=1 -> 2 + pop; others by popularity: 3 (0.75), 4 (0.25), 5 (0).
    assert scores.tolist() == [2.25, 4.75, 3.5, 0.75, 0.25, 0.0]
    assert ranking(scores) == [1, 2, 0, 3, 4, 5]


def test_markov_transitions_backed_off_to_popularity():
    model = fitted(MarkovBaseline)
    scores = model(torch.tensor([[3, 0, 1], [0, 2, 3]]), None)
    # After 1: 1>2 twice, 1>4 once; the rest by popularity.
    assert scores[0].tolist() == [0.25, 0.75, 2.5, 0.75, 1.25, 0.0]
    assert ranking(scores[0]) == [2, 4, 1, 3, 0, 5]
    # After 3: 3>3 once (the 3|3 across users 0 and 1 is no transition), 3>1 once.
    assert scores[1].tolist() == [0.25, 1.75, 0.5, 1.75, 0.25, 0.0]


def test_item_knn_cosine_and_scores_by_hand():
    model = fitted(ItemKNNBaseline, window=1, neighbours=0)
    # Co-occurrence of neighbours (both directions): C[0,1]=1, C[1,2]=3, C[2,3]=1, C[1,3]=1,
    # C[1,4]=1, C[3,3]=2 (3 3 inside user 1 counts once each way; not across users 0|1).
    counts = [1, 3, 2, 3, 1, 0]
    cooc = {(0, 1): 1, (1, 2): 3, (2, 3): 1, (1, 3): 1, (1, 4): 1, (3, 3): 2}
    expected = torch.zeros(N_ITEMS, N_ITEMS, dtype=torch.float64)
    for (a, b), c in cooc.items():
        expected[a, b] = expected[b, a] = c / math.sqrt(counts[a] * counts[b])
    sim = add_csr_rows_(torch.zeros(N_ITEMS, N_ITEMS, dtype=torch.float64), *model._csr("sim"),
                        torch.arange(N_ITEMS))
    torch.testing.assert_close(sim, expected, rtol=0, atol=1e-12)
    assert float(model.min_similarity) == pytest.approx(1 / 3)
    # Window (0, 3), T = 2: weights 1/2 for item 0, 1 for item 3; popularity * (1/3) / 2 / 2.
    scores = model(torch.tensor([[0, 3]]), None)[0]
    knn = 0.5 * expected[0] + expected[3]
    torch.testing.assert_close(scores, knn + torch.tensor(POP, dtype=torch.float64) / 12,
                               rtol=0, atol=1e-12)
    assert ranking(scores) == [3, 1, 2, 0, 4, 5]  # 0 and 4: no similarity, equal popularity


def test_item_knn_window_reaches_further_events():
    # window=2 also pairs events two apart: 0 and 2 in user 0's "0 1 2".
    narrow, wide = fitted(ItemKNNBaseline, window=1), fitted(ItemKNNBaseline, window=2)
    row = torch.tensor([0])
    s1 = add_csr_rows_(torch.zeros(1, N_ITEMS, dtype=torch.float64), *narrow._csr("sim"), row)
    s2 = add_csr_rows_(torch.zeros(1, N_ITEMS, dtype=torch.float64), *wide._csr("sim"), row)
    assert s1[0, 2] == 0 and s2[0, 2] == pytest.approx(1 / math.sqrt(2))
    # The same settings read from config fields (should ModelConfig get knn_window/_neighbours).
    from_cfg = ItemKNNBaseline(SimpleNamespace(knn_window=2, knn_neighbours=1), N_ITEMS, 3)
    assert (from_cfg.window, from_cfg.neighbours) == (2, 1)
    from_cfg.fit(hand_windows())
    assert int((from_cfg.sim_crow[1:] - from_cfg.sim_crow[:-1]).max()) == 1  # one neighbour kept


def test_keep_top_per_row_by_value_then_column():
    m = sp.csr_matrix(np.array([[0.0, 3, 1, 3], [2, 0, 0, 0], [0, 0, 0, 0]]))
    kept = keep_top_per_row(m, 2).toarray()
    assert kept.tolist() == [[0, 3, 0, 3], [2, 0, 0, 0], [0, 0, 0, 0]]
    one = keep_top_per_row(m, 1).toarray()
    assert one.tolist() == [[0, 3, 0, 0], [2, 0, 0, 0], [0, 0, 0, 0]]
    assert keep_top_per_row(m, 0).toarray().tolist() == m.toarray().tolist()


def test_keep_top_per_row_matches_a_plain_per_row_sort():
    rng = np.random.default_rng(1)
    dense = rng.integers(0, 4, (30, 40)) * (rng.random((30, 40)) < rng.random((30, 1)))
    kept = keep_top_per_row(sp.csr_matrix(dense.astype(np.float64)), 5).toarray()
    expected = np.zeros_like(kept)
    for r, values in enumerate(dense):
        cols = sorted(np.flatnonzero(values), key=lambda c: (-values[c], c))[:5]
        expected[r, cols] = values[cols]
    assert np.array_equal(kept, expected)


def test_add_csr_rows_matches_dense_reference():
    rng = np.random.default_rng(0)
    dense = rng.random((7, 9)) * (rng.random((7, 9)) < 0.4)
    m = sp.csr_matrix(dense)
    rows = torch.tensor([3, 0, 3, 6, 2])
    weight = torch.tensor([0.5, 1.0, 2.0, -1.0, 3.0], dtype=torch.float64)
    out = torch.ones(5, 9, dtype=torch.float64)
    add_csr_rows_(out, torch.as_tensor(m.indptr, dtype=torch.int64),
                  torch.as_tensor(m.indices, dtype=torch.int64), torch.as_tensor(m.data),
                  rows, weight)
    expected = 1 + torch.as_tensor(dense)[rows] * weight[:, None]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls", [PopBaseline, RecentBaseline, MarkovBaseline, ItemKNNBaseline])
def test_deterministic_state_dict_round_trip_and_forward_all(cls):
    a, b = fitted(cls), fitted(cls)
    items = torch.tensor([[0, 1, 2, 1], [3, 3, 5, 4], [1, 4, 0, 2]])
    assert torch.equal(a(items, None), b(items, None))
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    fresh = cls(ModelConfig(name="pop"), N_ITEMS, 3)
    fresh.load_state_dict(a.state_dict())
    assert torch.equal(fresh(items, None), a(items, None))
    every = a.forward_all(items, None)
    assert every.shape == (3, 4, N_ITEMS)
    assert torch.equal(every[:, 1], a(items[:, :2], None))
    assert a.kind == "count" and list(a.parameters()) == []


def test_clear_errors():
    model = MarkovBaseline(ModelConfig(name="markov"), N_ITEMS, 3)
    with pytest.raises(RuntimeError, match="fit"):
        model(torch.tensor([[0, 1]]), None)
    model.fit(hand_windows())
    with pytest.raises(ValueError, match=r"item ids must lie in \[0, 6\) \(or be the padding"):
        model(torch.tensor([[0, N_ITEMS + 1]]), None)
    with pytest.raises(ValueError, match="padding .* may only precede a row's items"):
        model(torch.tensor([[0, N_ITEMS]]), None)  # N_ITEMS is padding, never a last input
    with pytest.raises(ValueError, match=r"\[batch, time\]"):
        model(torch.tensor([0, 1]), None)
    small = MarkovBaseline(ModelConfig(name="markov"), 4, 3)
    with pytest.raises(ValueError, match="n_items=4"):
        small.fit(hand_windows())
    w = hand_windows()
    empty = Windows(w.items, w.users, np.zeros(0, np.int64), 3)
    with pytest.raises(ValueError, match="seq_len"):
        model.fit(empty)


def test_registry_and_evaluate_end_to_end():
    # Markov on the training windows themselves, by hand (inputs -> target, last input's row):
    # [0 1]>2 rank 1 | [1 2]>1: 1 and 3 tie at 1.75, rank 2 | [2 1]>2 rank 1 | [1 2]>3 rank 2 |
    # [3 3]>1: tie with 3, rank 2 | [3 1]>4: below 2, rank 2.
    from seqrec.config import EvalConfig, RunConfig
    from seqrec.data.windows import Split
    from seqrec.metrics import evaluate
    from seqrec.models import build_model

    w = hand_windows()
    split = Split(train=w, val=w, test=w, n_items=N_ITEMS, n_users=3,
                  item_counts=np.array([1, 3, 2, 3, 1, 1]), dropped_unseen={"val": 0, "test": 0})
    model = build_model(ModelConfig(name="markov"), N_ITEMS, 3)
    model.fit(split.train)
    res = evaluate(model, split.test, split, RunConfig(eval=EvalConfig(ks=(1, 2))),
                   torch.device("cpu"))
    assert res["n_windows"] == 6
    assert res["metrics"]["recall@1"] == pytest.approx(2 / 6)
    assert res["metrics"]["recall@2"] == pytest.approx(1.0)
    assert res["metrics"]["mrr@2"] == pytest.approx(4 / 6)
    for name in ("pop", "recent", "item_knn"):
        other = build_model(ModelConfig(name=name), N_ITEMS, 3)
        other.fit(split.train)
        assert other(torch.tensor([[0, 1]]), None).shape == (1, N_ITEMS)

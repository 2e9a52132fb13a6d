"""Padding never changes a model's output: every registry model, left-padded against unpadded.

Item id `n_items` is padding (seqrec.models.base). For each model the scores of a batch of
left-padded windows equal, row by row, the scores of the same histories without the padding
(shorter windows); so do the final recurrent states and, for the neural models, the gradients
of every parameter. The padding id is never looked up in an embedding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from seqrec.config import ModelConfig
from seqrec.data.windows import Windows
from seqrec.models import build_model
from seqrec.models.gru import GRU

N_ITEMS, N_USERS = 13, 4
PAD = N_ITEMS
# Histories of 5, 2, 1 and 4 items (none uses item 0, to see that the padding never reaches
# item 0's embedding, which stands in for it), their users and targets.
HISTORIES = [[3, 7, 7, 1, 12], [5, 2], [9], [4, 4, 6, 11]]
USERS = [1, 3, 0, 2]
TARGETS = torch.tensor([2, 8, 0, 5])
STEPS = 5

NEURAL = {
    "gru": {},
    "gru_input_dropout": {"input_dropout": 0.2},  # eval mode: the fused path, no dropout
    "gru_one_hot": {"embedding_size": -1},  # the hand-written recurrence
    "user_gru": {},
    "dnc": {},
    "user_dnc": {},
    "sasrec": {"sasrec_inner_size": 12, "sasrec_activation": "gelu"},
    "sasrec_post": {"sasrec_norm": "post"},  # RecBole's layer-norm placement
}
BASELINES = ("pop", "recent", "markov", "item_knn")


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The histories left-padded to STEPS: items and users `[4, STEPS]`."""
    items = torch.tensor([[PAD] * (STEPS - len(h)) + h for h in HISTORIES])
    users = torch.tensor(USERS).unsqueeze(1).expand(-1, STEPS).clone()
    return items, users


def alone(i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """History i unpadded, as a batch of one: `[1, len]`."""
    h = torch.tensor([HISTORIES[i]])
    return h, torch.full_like(h, USERS[i])


def neural(key: str) -> torch.nn.Module:
    torch.manual_seed(3)
    name = "gru" if key.startswith("gru") else "sasrec" if key.startswith("sasrec") else key
    sizes = {"embedding_size": 8, "hidden_size": 8, "memory_cells": 5, "word_size": 4}
    cfg = ModelConfig(name=name, **{**sizes, **NEURAL[key]})
    return build_model(cfg, N_ITEMS, N_USERS).double().eval()


def fitted(name: str) -> torch.nn.Module:
    rng = np.random.default_rng(0)
    items = rng.integers(0, N_ITEMS, 60).astype(np.int32)
    users = np.repeat(np.arange(3, dtype=np.int32), 20)
    starts = np.concatenate([np.arange(u * 20, u * 20 + 16) for u in range(3)])
    model = build_model(ModelConfig(name=name), N_ITEMS, N_USERS)
    model.fit(Windows(items, users, starts.astype(np.int64), 5))
    return model


@pytest.fixture(params=[*NEURAL, *BASELINES])
def model(request):
    return (neural if request.param in NEURAL else fitted)(request.param)


def test_padded_scores_equal_unpadded_scores(model):
    items, users = padded_batch()
    scores = model(items, users)
    assert scores.shape == (len(HISTORIES), N_ITEMS)
    for i in range(len(HISTORIES)):
        torch.testing.assert_close(scores[i], model(*alone(i))[0], rtol=1e-12, atol=1e-12)
    # A row without padding in a padded batch is unaffected by the others' padding.
    full = items.clone()
    full[1:, : STEPS - 1] = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(model(full, users)[0], model(*alone(0))[0], rtol=1e-12,
                               atol=1e-12)


def test_hand_written_gru_recurrence_ignores_padding(monkeypatch):
    # The loop path (used in training with input dropout) in eval mode, so without dropout.
    m = neural("gru_input_dropout")
    items, users = padded_batch()
    fused = m(items, users)
    monkeypatch.setattr(GRU, "uses_fused", lambda self: False)
    torch.testing.assert_close(m(items, users), fused, rtol=1e-12, atol=1e-12)
    for i in range(len(HISTORIES)):
        torch.testing.assert_close(m(items, users)[i], m(*alone(i))[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("key", [k for k in NEURAL if not k.startswith("sasrec")])
def test_recurrent_state_does_not_change_on_padding(key):
    m = neural(key)
    items, users = padded_batch()
    _, state = m.forward_with_state(items, users)
    for i in range(len(HISTORIES)):
        _, want = m.forward_with_state(*alone(i))
        got = [x[i] for x in torch.utils._pytree.tree_leaves(state)]
        for a, b in zip(got, torch.utils._pytree.tree_leaves(want), strict=True):
            torch.testing.assert_close(a, b[0], rtol=1e-12, atol=1e-12)
    # The state carries on after a padded window as after the unpadded one.
    more = torch.tensor([[6, 1]] * len(HISTORIES))
    logits, _ = m.forward_with_state(more, users[:, :2], state)
    for i in range(len(HISTORIES)):
        _, s_i = m.forward_with_state(*alone(i))
        want, _ = m.forward_with_state(more[i:i + 1], users[i:i + 1, :2], s_i)
        torch.testing.assert_close(logits[i], want[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("key", list(NEURAL))
def test_gradients_with_padding_equal_gradients_without(key):
    m = neural(key)
    items, users = padded_batch()
    F.cross_entropy(m(items, users), TARGETS, reduction="sum").backward()
    padded = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    for i in range(len(HISTORIES)):
        F.cross_entropy(m(*alone(i)), TARGETS[i:i + 1], reduction="sum").backward()
    for n, p in m.named_parameters():
        torch.testing.assert_close(padded[n], p.grad, rtol=1e-10, atol=1e-12, msg=n)


@pytest.mark.parametrize("key", [k for k in NEURAL if not k.startswith("sasrec")])
def test_padding_is_never_looked_up(key):
    # No history holds item 0, which the padding is replaced by before any lookup: item 0's
    # input row gets no gradient, also in training with dropout. (SASRec ties its input
    # embedding to its output layer, so its row 0 learns from the target; the gradient test
    # above covers it.)
    m = neural(key).train()
    items, users = padded_batch()
    F.cross_entropy(m(items, users), TARGETS).backward()
    inputs = [p for n, p in m.named_parameters()
              if n.endswith(("input.embedding.weight", "item_embedding.weight"))
              or (p.shape[0] == N_ITEMS and "output" not in n)]
    assert inputs
    for p in inputs:
        assert p.grad is not None and torch.equal(p.grad[0], torch.zeros_like(p.grad[0]))
        assert p.grad[1:].abs().sum() > 0


def test_forward_all_at_padded_positions_is_finite(model):
    items, users = padded_batch()
    every = model.forward_all(items, users)
    assert every.shape == (len(HISTORIES), STEPS, N_ITEMS) and torch.isfinite(every).all()
    torch.testing.assert_close(every[:, -1], model(items, users), rtol=1e-12, atol=1e-12)


def test_baselines_score_padded_histories_by_their_items_only():
    # Markov: the last item's transitions; recent: positions from the first item; item-kNN:
    # weights (t + 1) / T over the history's own length T.
    items, users = padded_batch()
    recent = fitted("recent")
    scores = recent(items, users)[2]  # history [9]: item 9 at position 1, the rest popularity
    assert scores[9] == 1 + recent.popularity()[9]
    knn = fitted("item_knn")
    one = knn(items, users)[2]
    assert torch.equal(one, knn(torch.tensor([[9]]), None)[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_padded_scores_equal_unpadded_scores_on_cuda(model):
    # The same on the GPU (masked attention, gathers and scatters there), float64.
    model = model.to("cuda")
    items, users = (x.to("cuda") for x in padded_batch())
    scores = model(items, users)
    for i in range(len(HISTORIES)):
        h, u = (x.to("cuda") for x in alone(i))
        torch.testing.assert_close(scores[i], model(h, u)[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("key", ["gru", "gru_input_dropout", "gru_one_hot", "user_gru"])
def test_last_step_path_equals_the_full_features_path(key):
    # forward, loss and forward_with_state need the features after the last item only; with
    # padding the GRUs take them straight from the moved rows (`run_padded(last_only=True)`)
    # instead of moving all `[B, T, H]` features back. Same logits, loss, final state and
    # gradients as the last step of the full features (forward_all), in training with input
    # dropout too (the same seed draws the same masks), in float64.
    items, users = padded_batch()
    out = {}
    for path in ("last", "full"):
        m = neural(key).train()
        torch.manual_seed(11)
        if path == "last":
            loss = m.loss(items, users, TARGETS)
        else:
            loss = F.cross_entropy(m.forward_all(items, users)[:, -1], TARGETS)
        loss.backward()
        m.eval()
        logits, state = m.forward_with_state(items, users)
        full_state = m._features(items, users)[1]
        out[path] = (loss.detach(), logits, state.h, full_state.h,
                     {n: p.grad for n, p in m.named_parameters()})
    (l1, s1, h1, fh, g1), (l2, s2, h2, _, g2) = out["last"], out["full"]
    torch.testing.assert_close(l1, l2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s1, s2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h1, fh, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h1, h2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s1, m.forward_all(items, users)[:, -1], rtol=1e-12, atol=1e-12)
    for name, grad in g2.items():
        torch.testing.assert_close(g1[name], grad, rtol=1e-10, atol=1e-12, msg=name)


def test_padded_gru_loss_moves_no_per_step_features():
    # The padded loss gathers ids `[B, T]` and the last features `[B, 1, H]`, never the
    # `[B, T, H]` features (that gather and its backward, a scatter-add, were about a tenth of
    # a GRU training step at L 50; docs/peers.md).
    m = neural("gru").train()
    items, users = padded_batch()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                record_shapes=True) as prof:
        m.loss(items, users, TARGETS).backward()
    index_shapes = [e.input_shapes[2] for e in prof.events() if e.name == "aten::gather"]
    assert index_shapes and all(len(s) < 3 or s[1] == 1 for s in index_shapes), index_shapes

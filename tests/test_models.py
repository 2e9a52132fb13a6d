"""Tests of the model registry, the shared interface and the vanilla GRU."""

from __future__ import annotations

import pytest
import torch

from seqrec.config import ModelConfig
from seqrec.models import REGISTRY, build_model, model_class
from seqrec.models.gru import GRU

N_ITEMS, N_USERS = 23, 5
OURS = ("gru", "user_gru", "dnc", "user_dnc")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def small_cfg(name: str, **kw) -> ModelConfig:
    base = dict(name=name, embedding_size=6, hidden_size=8, memory_cells=5, word_size=4)
    base.update(kw)
    return ModelConfig(**base)


def batch(b: int = 4, t: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, N_ITEMS, (b, t), generator=g),
            torch.randint(0, N_USERS, (b, t), generator=g))


def plain_gru(x, h, w_ih, w_hh, b_ih, b_hh):
    """Reference cell, written out gate by gate; x [B, T, E] -> hidden states [B, T, H]."""
    hs = []
    n_h = h.shape[1]
    w = lambda m, k: m[k * n_h:(k + 1) * n_h]  # noqa: E731
    for t in range(x.shape[1]):
        xt = x[:, t]
        r = torch.sigmoid(xt @ w(w_ih, 0).T + w(b_ih, 0) + h @ w(w_hh, 0).T + w(b_hh, 0))
        z = torch.sigmoid(xt @ w(w_ih, 1).T + w(b_ih, 1) + h @ w(w_hh, 1).T + w(b_hh, 1))
        n = torch.tanh(xt @ w(w_ih, 2).T + w(b_ih, 2) + r * (h @ w(w_hh, 2).T + w(b_hh, 2)))
        h = (1 - z) * n + z * h
        hs.append(h)
    return torch.stack(hs, 1)


def test_registry_names_and_lazy_errors():
    assert set(OURS) <= set(REGISTRY)
    assert model_class("gru") is GRU
    with pytest.raises(ValueError, match="unknown model"):
        model_class("nope")
    REGISTRY["_missing"] = "seqrec.models._not_there:X"
    try:
        with pytest.raises(ValueError, match="not installed"):
            model_class("_missing")
    finally:
        del REGISTRY["_missing"]


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_gru_paths_equal_plain_reference(dropout):
    torch.manual_seed(1)
    m = GRU(small_cfg("gru", input_dropout=dropout), N_ITEMS, N_USERS).double()
    items, _ = batch()
    x = m.input.embedding(items)
    w_ih, b_ih = m.input.proj.weight, m.input.bias
    h0 = torch.zeros(4, 8, dtype=torch.float64)
    ref = plain_gru(x, h0, w_ih, m.weight_hh, b_ih, m.bias_hh)
    m.eval()
    assert m.uses_fused()
    torch.testing.assert_close(m.forward_all(items), m.output(ref), rtol=1e-10, atol=1e-12)
    m.train()
    if dropout == 0.0:
        assert m.uses_fused()
        torch.testing.assert_close(m(items), m.output(ref[:, -1]), rtol=1e-10, atol=1e-12)
    else:
        # Loop path with dropout on W_i x + b_i: rebuild the same mask from the same seed.
        assert not m.uses_fused()
        torch.manual_seed(7)
        got = m(items)
        torch.manual_seed(7)
        gi = torch.nn.functional.dropout(x @ w_ih.T + b_ih, dropout, True)
        eye = torch.eye(gi.shape[-1], dtype=torch.float64)
        ref_drop = plain_gru(gi, h0, eye, m.weight_hh, torch.zeros_like(b_ih), m.bias_hh)
        torch.testing.assert_close(got, m.output(ref_drop[:, -1]), rtol=1e-10, atol=1e-12)


def test_gru_one_hot_equals_one_hot_matmul():
    torch.manual_seed(2)
    m = GRU(small_cfg("gru", embedding_size=-1), N_ITEMS, N_USERS).double().eval()
    assert not m.uses_fused() and m.input.one_hot
    items, _ = batch()
    x = torch.nn.functional.one_hot(items, N_ITEMS).double()  # [B, T, n_items]
    ref = plain_gru(x, torch.zeros(4, 8, dtype=torch.float64), m.input.proj.weight.T,
                    m.weight_hh, m.input.bias, m.bias_hh)
    torch.testing.assert_close(m(items), m.output(ref[:, -1]), rtol=1e-10, atol=1e-12)


def test_gru_state_carries_across_windows():
    torch.manual_seed(3)
    m = GRU(small_cfg("gru"), N_ITEMS, N_USERS).double().eval()
    items, _ = batch(t=8)
    whole = m(items)
    _, state = m.forward_with_state(items[:, :5], None)
    logits, state2 = m.forward_with_state(items[:, 5:], None, state)
    torch.testing.assert_close(logits, whole)
    assert state2.h.shape == (4, 8)


def test_build_model_gru():
    m = build_model(small_cfg("gru"), N_ITEMS, N_USERS)
    assert isinstance(m, GRU) and m.requires_training

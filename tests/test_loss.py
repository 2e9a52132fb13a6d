"""The fused output layer + cross-entropy equals F.linear + F.cross_entropy, values and
gradients, and the models' `loss` equals cross-entropy of their logits."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from seqrec.config import ModelConfig
from seqrec.models import build_model
from seqrec.models.loss import linear_cross_entropy


def leaves(seed: int, b: int = 5, h: int = 4, n: int = 9, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, h, generator=g, dtype=dtype)
    w = 3 * torch.randn(n, h, generator=g, dtype=dtype)  # large logits: tests the max shift
    bias = torch.randn(n, generator=g, dtype=dtype)
    target = torch.randint(0, n, (b,), generator=g)
    return [v.requires_grad_() for v in (x, w, bias)], target


def test_equals_linear_then_cross_entropy():
    (x, w, b), target = leaves(0)
    fused = linear_cross_entropy(x, w, b, target)
    plain = F.cross_entropy(F.linear(x, w, b), target)
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    g_fused = torch.autograd.grad(3.0 * fused, (x, w, b))  # a non-unit incoming gradient
    g_plain = torch.autograd.grad(3.0 * plain, (x, w, b))
    for a, c in zip(g_fused, g_plain, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)


def test_hand_computed_case():
    # One row, logits [0, ln 3] -> softmax [1/4, 3/4]; target 0: loss ln 4, dz = [-3/4, 3/4].
    x = torch.tensor([[1.0]], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([[0.0], [math.log(3.0)]], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    loss = linear_cross_entropy(x, w, b, torch.tensor([0]))
    assert loss.item() == pytest.approx(math.log(4.0), abs=1e-12)
    loss.backward()
    torch.testing.assert_close(b.grad, torch.tensor([-0.75, 0.75], dtype=torch.float64))


def test_second_backward_is_refused_not_wrong():
    # The backward pass reuses its buffer in place; a retained graph must fail loudly.
    (x, w, b), target = leaves(1, b=3, h=2, n=4)
    loss = linear_cross_entropy(x, w, b, target)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="inplace"):
        loss.backward()


@pytest.mark.parametrize("name", ["gru", "user_gru", "dnc"])
def test_model_loss_equals_cross_entropy_of_logits(name):
    torch.manual_seed(2)
    cfg = ModelConfig(name=name, embedding_size=6, hidden_size=5, memory_cells=4, word_size=3,
                      input_dropout=0.0, user_dropout=0.0)
    model = build_model(cfg, 13, 3).double()
    g = torch.Generator().manual_seed(3)
    items, users = torch.randint(0, 13, (4, 5), generator=g), torch.randint(0, 3, (4, 5),
                                                                            generator=g)
    target = torch.randint(0, 13, (4,), generator=g)
    params = list(model.parameters())
    fused = model.loss(items, users, target)
    plain = F.cross_entropy(model(items, users), target)
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    for a, c in zip(torch.autograd.grad(fused, params), torch.autograd.grad(plain, params),
                    strict=True):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)


def test_autocast_falls_back_to_float32_cross_entropy():
    (x, w, b), target = leaves(4, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = linear_cross_entropy(x, w, b, target)
    assert loss.dtype == torch.float32
    plain = F.cross_entropy(F.linear(x, w, b), target)
    torch.testing.assert_close(loss, plain, rtol=0.05, atol=0.05)  # bfloat16 matmul


@pytest.mark.parametrize("name", ["gru", "user_gru", "dnc", "user_dnc"])
def test_models_train_under_autocast(name):
    # The hand-written recurrences and memory ops take float32 under autocast (CPU here, CUDA
    # in training); the loss stays close to the float32 one and every gradient is finite.
    torch.manual_seed(5)
    cfg = ModelConfig(name=name, embedding_size=8, hidden_size=8, memory_cells=4, word_size=3,
                      input_dropout=0.0, user_dropout=0.0)
    model = build_model(cfg, 20, 3)
    g = torch.Generator().manual_seed(6)
    items, users = torch.randint(0, 20, (4, 5), generator=g), torch.randint(0, 3, (4, 5),
                                                                            generator=g)
    target = torch.randint(0, 20, (4,), generator=g)
    full = model.loss(items, users, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model.loss(items, users, target)
    mixed.backward()
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, full, rtol=0.02, atol=0.02)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())

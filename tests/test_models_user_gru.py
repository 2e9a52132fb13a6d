"""User-based GRU: the precomputing loop equals the protocol's formulas written out step by step."""

from __future__ import annotations

import pytest
import torch

from seqrec.config import ModelConfig
from seqrec.models.dropout import dropout_mask
from seqrec.models.gru import GRUState
from seqrec.models.user_gru import (
    UserGRU,
    UserGRUInputs,
    UserGRURecurrence,
    fast_user_gru_recurrence,
    user_gru_recurrence,
    user_gru_step,
)

B, T, E, H, N_ITEMS, N_USERS = 3, 5, 4, 6, 11, 4




def plain_user_gru(m: UserGRU, items, users, mask_i=None, mask_u=None):
    """docs/protocol.md's cell, literally: concatenations and matmuls per step."""
    inp = m.input
    x_all = inp.item_embedding(items)  # [B, T, E]
    u_all = inp.user_embedding(users)
    w_i = inp.item_proj.weight[: 3 * H]
    w_a = torch.cat([m.weight_hh[3 * H:], inp.item_proj.weight[3 * H:], inp.user_attn.weight], 1)
    b_a = m.bias_hh[3 * H:]
    w_h, b_h = m.weight_hh[: 3 * H], m.bias_hh[: 3 * H]
    h = torch.zeros(items.shape[0], H, dtype=torch.float64)
    for t in range(items.shape[1]):
        x, u = x_all[:, t], u_all[:, t]
        a = torch.sigmoid(torch.cat([h, x, u], 1) @ w_a.T + b_a)  # [B, 1]
        i = ((1 - a) * x) @ w_i.T + inp.bias_i
        un = (a * u) @ inp.user_proj.weight.T
        if mask_i is not None:
            i, un = i * mask_i[:, t], un * mask_u[:, t]
        g = h @ w_h.T + b_h
        r = torch.sigmoid(i[:, :H] + g[:, :H])
        z = torch.sigmoid(i[:, H:2 * H] + g[:, H:2 * H])
        k = torch.tanh(r * g[:, 2 * H:] + i[:, 2 * H:] + un)
        h = (1 - z) * h + z * k
    return h


def make(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = ModelConfig(name="user_gru", embedding_size=E, hidden_size=H, **kw)
    return UserGRU(cfg, N_ITEMS, N_USERS).double()


def ids(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, N_ITEMS, (B, T), generator=g), torch.randint(0, N_USERS, (B, T),
                                                                          generator=g)


def test_equals_plain_reference_without_dropout():
    m = make().eval()
    items, users = ids()
    h = plain_user_gru(m, items, users)
    torch.testing.assert_close(m(items, users), m.output(h), rtol=1e-10, atol=1e-12)


def test_equals_plain_reference_with_shared_dropout_masks():
    m = make().train()
    items, users = ids()
    torch.manual_seed(11)
    got = m(items, users)
    # Same seed, same draw order as UserGRUInput: the user-term mask, then the input-gate mask.
    torch.manual_seed(11)
    kw = dict(device=torch.device("cpu"), dtype=torch.float64)
    # Drawn time-major, [T, B, ...], as UserGRUInput lays its tensors out.
    mask_u = dropout_mask((T, B, H), 0.5, **kw).transpose(0, 1)
    mask_i = dropout_mask((T, B, 3 * H), 0.2, **kw).transpose(0, 1)
    assert (mask_u == 0).any() and (mask_i == 0).any()  # dropout really acted
    h = plain_user_gru(m, items, users, mask_i, mask_u)
    torch.testing.assert_close(got, m.output(h), rtol=1e-10, atol=1e-12)


def test_one_hot_equals_one_hot_matmul():
    torch.manual_seed(3)
    cfg = ModelConfig(name="user_gru", embedding_size=-1, hidden_size=H)
    m = UserGRU(cfg, N_ITEMS, N_USERS).double().eval()
    items, users = ids()
    # Give the reference explicit identity "embeddings": x and u are one-hot vectors and the
    # weights are the stored (transposed) lookup tables.
    ref = make(seed=3)  # any user_gru of embedding size E is reshaped below
    ref.input.item_embedding = torch.nn.Embedding.from_pretrained(
        torch.eye(N_ITEMS, dtype=torch.float64))
    ref.input.user_embedding = torch.nn.Embedding.from_pretrained(
        torch.eye(N_USERS, dtype=torch.float64))
    ref.input.item_proj.weight = torch.nn.Parameter(m.input.item_proj.weight.T.clone())
    ref.input.user_attn.weight = torch.nn.Parameter(m.input.user_attn.weight.T.clone())
    ref.input.user_proj.weight = torch.nn.Parameter(m.input.user_proj.weight.T.clone())
    ref.input.bias_i, ref.weight_hh, ref.bias_hh = m.input.bias_i, m.weight_hh, m.bias_hh
    h = plain_user_gru(ref, items, users)
    torch.testing.assert_close(m(items, users), m.output(h), rtol=1e-10, atol=1e-12)


def test_attention_is_a_scalar_per_sample():
    m = make()
    assert m.input.user_attn.weight.shape == (1, E)
    assert m.weight_hh.shape == (3 * H + 1, H)


@pytest.mark.parametrize("with_mask", [False, True])
def test_gradcheck_cell(with_mask):
    g = torch.Generator().manual_seed(2)

    def r(*shape):
        return (torch.rand(*shape, generator=g, dtype=torch.float64) - 0.5).requires_grad_()

    mask = torch.ones(2, 3 * 3, dtype=torch.float64)
    if with_mask:
        mask[0, 1] = 0.0
        mask[1, 4] = 0.0
        mask = mask / 0.8

    def cell(gx, ax, gu, h, w_hh, b_hh, b_i):
        return user_gru_step(UserGRUInputs(gx, mask, ax, gu), GRUState(h), w_hh, b_hh, b_i).h

    args = (r(2, 9), r(2, 1), r(2, 3), r(2, 3), r(10, 3), r(10), r(9))
    assert torch.autograd.gradcheck(cell, args)


@pytest.mark.parametrize("with_mask", [False, True])
def test_hand_written_backward_equals_autograd_loop(with_mask):
    g = torch.Generator().manual_seed(5)
    b, t, h = 3, 6, 4

    def r(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64) - 0.5

    mask = dropout_mask((b, t, 3 * h), 0.3, device=torch.device("cpu"), dtype=torch.float64,
                        generator=g) if with_mask else torch.ones(1, 1, 1, dtype=torch.float64
                                                                  ).expand(b, t, 3 * h)
    assert not with_mask or (mask == 0).any()
    leaves = [r(b, t, 3 * h), r(b, t, 1), r(b, t, h), r(b, h), r(3 * h + 1, h), r(3 * h + 1),
              r(3 * h)]
    runs = []
    for fn in (fast_user_gru_recurrence, user_gru_recurrence):
        x = [v.clone().requires_grad_() for v in leaves]
        out, last = fn(UserGRUInputs(x[0], mask, x[1], x[2]), GRUState(x[3]), x[4], x[5], x[6])
        # A loss reading every step and the last state, as forward_all and forward do.
        ((out * torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out)).sum()
         + last.h.square().sum()).backward()
        runs.append((out, last.h, [v.grad for v in x]))
    (out_f, last_f, grads_f), (out_p, last_p, grads_p) = runs
    torch.testing.assert_close(out_f, out_p, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(last_f, last_p, rtol=1e-12, atol=1e-12)
    for gf, gp in zip(grads_f, grads_p, strict=True):
        torch.testing.assert_close(gf, gp, rtol=1e-10, atol=1e-12)


def test_hand_written_backward_gradcheck():
    g = torch.Generator().manual_seed(6)

    def r(*shape):
        return (torch.rand(*shape, generator=g, dtype=torch.float64) - 0.5).requires_grad_()

    mask = dropout_mask((3, 2, 6), 0.3, device=torch.device("cpu"), dtype=torch.float64,
                        generator=g)  # time-major [T, B, 3H]

    def fn(gx, ax, gu, h0, w_hh, b_hh, b_i):
        return UserGRURecurrence.apply(gx, mask, ax, gu, h0, w_hh, b_hh, b_i)

    args = (r(3, 2, 6), r(3, 2, 1), r(3, 2, 2), r(2, 2), r(7, 2), r(7), r(6))
    assert torch.autograd.gradcheck(fn, args)

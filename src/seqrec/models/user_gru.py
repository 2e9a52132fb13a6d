"""User-based GRU (Donkers, Loepp and Ziegler, "Sequential User-based Recurrent Neural Network
Recommendations", RecSys 2017), attentional user integration, as docs/protocol.md states it.

Per step, with item vector x `[B, E]`, user vector u `[B, E]` and previous state h `[B, H]`:
    a = sigmoid(W_a [h; x; u] + b_a)                      attention, one scalar per sample
    i = dropout_0.2(W_i((1 - a) x) + b_i)                 input gates i_r, i_z, i_n  [B, 3H]
    u_n = dropout_0.5(W_u (a u))                          user term, candidate only  [B, H]
    g = W_h h + b_h                                       h_r, h_z, h_n              [B, 3H]
    r = sigmoid(i_r + h_r);  z = sigmoid(i_z + h_z)
    k = tanh(r * h_n + i_n + u_n);  h' = (1 - z) * h + z * k

Decisions (documented because the protocol leaves them open):
- `a` is a scalar per sample and step (W_a has one output row): it weighs the item input
  against the user input, the reading of "attentional" integration as a convex mix of the two
  sources. A scalar also commutes with the linear maps, `W_i((1 - a) x) = (1 - a) W_i x`, so
  every projection of x and u is computed for all steps in one matmul and only the `[H] -> [3H
  + 1]` recurrent product is in the loop.
- The user term feeds the candidate k only (u_n), not r or z, exactly as the protocol writes;
  W_u has no bias (b_i already gives the candidate a bias).
- Dropout masks multiply the whole pre-activation of each term (bias included for i), the
  placement "dropout on the input projection" of the vanilla GRU.
- The paper also describes linear and rectified-linear user integrations; their exact formulas
  could not be established from available sources, so only the attentional variant is built
  (ModelConfig.user_integration accepts only "attentional").
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from seqrec.config import ModelConfig
from seqrec.models.base import (
    IdProjection,
    RecurrentRecommender,
    float32_backward,
    float32_forward,
    make_embedding,
    uniform_init_,
)
from seqrec.models.dropout import dropout, mask_like
from seqrec.models.gru import GRUState, HiddenStateRun, run_padded


class UserGRUInputs(NamedTuple):
    """Everything of one step that does not depend on h (all steps: a leading `[B, T, ...]`).

    gx `[B, 3H]`: W_i x (no bias, no dropout); mask `[B, 3H]`: dropout mask of i, already scaled
    by 1 / (1 - p) (ones when dropout is off); ax `[B, 1]`: the x and u parts of W_a [h; x; u];
    gu `[B, H]`: dropout_0.5(W_u u).
    """

    gx: Tensor
    mask: Tensor
    ax: Tensor
    gu: Tensor


def user_gru_step(
    inp: UserGRUInputs, state: GRUState, w_hh: Tensor, b_hh: Tensor, b_i: Tensor
) -> GRUState:
    """One user-based GRU step (formulas in the module docstring).

    w_hh `[3H + 1, H]` stacks W_h (rows 0..3H-1) and the h part of W_a (last row); b_hh
    `[3H + 1]` stacks b_h and b_a; b_i `[3H]`.
    """
    h = state.h
    n_h = h.shape[1]
    g = torch.addmm(b_hh, h, w_hh.t())  # [B, 3H + 1]
    a = torch.sigmoid(g[:, 3 * n_h:] + inp.ax)  # [B, 1]
    i = inp.mask * ((1 - a) * inp.gx + b_i)  # [B, 3H]
    rz = torch.sigmoid(i[:, : 2 * n_h] + g[:, : 2 * n_h])
    r, z = rz[:, :n_h], rz[:, n_h:]
    k = torch.tanh(r * g[:, 2 * n_h: 3 * n_h] + i[:, 2 * n_h:] + a * inp.gu)
    return GRUState(h + z * (k - h))  # = (1 - z) h + z k


def user_gru_recurrence(
    inp: UserGRUInputs, state: GRUState, w_hh: Tensor, b_hh: Tensor, b_i: Tensor
) -> tuple[Tensor, GRUState]:
    """Loop `user_gru_step` over time: inputs `[B, T, ...]` -> (states `[B, T, H]`, last).

    The plain autograd loop; `fast_user_gru_recurrence` computes the same function faster.
    """
    outputs = []
    # Time-major copies: each step then reads contiguous blocks (an expanded all-ones mask
    # stays a stride-0 view).
    tm = UserGRUInputs(*(x.transpose(0, 1) if x.stride(-1) == 0 else
                         x.transpose(0, 1).contiguous() for x in inp))
    for t in range(tm.gx.shape[0]):
        step = UserGRUInputs(tm.gx[t], tm.mask[t], tm.ax[t], tm.gu[t])
        state = user_gru_step(step, state, w_hh, b_hh, b_i)
        outputs.append(state.h)
    return torch.stack(outputs, 1), state


class UserGRURecurrence(torch.autograd.Function):
    """The user-based GRU recurrence with a hand-written backward (same function as
    `user_gru_recurrence`).

    Forward: gx `[T, B, 3H]`, mask `[T, B, 3H]` or None (no dropout), ax `[T, B, 1]`, gu
    `[T, B, H]` (time-major), h0 `[B, H]`, w_hh `[3H + 1, H]`, b_hh `[3H + 1]`, b_i `[3H]` ->
    hidden states `[T, B, H]`. Per step it keeps h, g = W_hh h + b_hh, a, (r, z) and k, where
    autograd would keep every intermediate, and runs without graph bookkeeping.

    Backward, per step from the last, with dh the gradient reaching h_t, m the mask (or 1),
    i = m ((1 - a) gx + b_i) and g = [g_r, g_z, g_n, g_a]:
        dk' = dh z (1 - k^2);  dz = dh (k - h);  dr = dk' g_n;  d(r, z)' = (dr, dz) rz (1 - rz)
        di = [d(r, z)', dk'];  da = sum(dk' gu) - sum(m di gx);  da' = da a (1 - a)
        dg = [d(r, z)', dk' r, da'];  dgx = m di (1 - a);  dgu = dk' a;  dax = da'
        dh_{t-1} = dh (1 - z) + dg W_hh
    and, after the loop, dW_hh = sum_t dg_t^T h_{t-1}, db_hh = sum_t dg_t, db_i = sum_t m di
    as one matmul and two sums over all steps. First-order gradients only.
    """

    @staticmethod
    @float32_forward
    def forward(ctx, gx: Tensor, mask: Tensor | None, ax: Tensor, gu: Tensor, h0: Tensor,
                w_hh: Tensor, b_hh: Tensor, b_i: Tensor) -> Tensor:  # noqa: D102
        steps, batch, three_h = gx.shape
        hidden = three_h // 3
        hs = gx.new_empty(steps + 1, batch, hidden)  # h_0 ... h_T
        hs[0] = h0
        g = gx.new_empty(steps, batch, three_h + 1)
        a = gx.new_empty(steps, batch, 1)
        rz = gx.new_empty(steps, batch, 2 * hidden)
        k = gx.new_empty(steps, batch, hidden)
        w_t = w_hh.t()
        for t in range(steps):
            torch.addmm(b_hh, hs[t], w_t, out=g[t])
            torch.sigmoid(g[t, :, three_h:] + ax[t], out=a[t])
            i = torch.addcmul(b_i, 1 - a[t], gx[t])  # (1 - a) gx + b_i      [B, 3H]
            if mask is not None:
                i.mul_(mask[t])
            torch.sigmoid(i[:, : 2 * hidden].add_(g[t, :, : 2 * hidden]), out=rz[t])
            pre = i[:, 2 * hidden:].addcmul_(rz[t, :, :hidden], g[t, :, 2 * hidden: three_h])
            torch.tanh(pre.addcmul_(a[t], gu[t]), out=k[t])
            torch.addcmul(hs[t], rz[t, :, hidden:], k[t] - hs[t], out=hs[t + 1])
        ctx.save_for_backward(gx, mask, gu, hs, g, a, rz, k, w_hh)
        return hs[1:]

    @staticmethod
    @float32_backward
    def backward(ctx, d_out: Tensor) -> tuple[Tensor | None, ...]:  # noqa: D102
        gx, mask, gu, hs, g, a, rz, k, w_hh = ctx.saved_tensors
        steps, batch, hidden = k.shape
        three_h = 3 * hidden
        d_i = gx.new_empty(steps, batch, three_h)  # m di, the gradient of (1 - a) gx + b_i
        dg = gx.new_empty(steps, batch, three_h + 1)
        dgu = gx.new_empty(steps, batch, hidden)
        dh = torch.zeros_like(hs[0])
        for t in range(steps - 1, -1, -1):
            dh = dh + d_out[t]
            z, k_t, a_t = rz[t, :, hidden:], k[t], a[t]
            dk = dh * z * (1 - k_t * k_t)  # [B, H]
            d_rz = torch.cat([dk * g[t, :, 2 * hidden: three_h], dh * (k_t - hs[t])], 1)
            d_rz.mul_(rz[t] * (1 - rz[t]))  # [B, 2H]
            d_i[t, :, : 2 * hidden] = d_rz
            d_i[t, :, 2 * hidden:] = dk
            if mask is not None:
                d_i[t].mul_(mask[t])
            da = (dk * gu[t]).sum(1, keepdim=True) - (d_i[t] * gx[t]).sum(1, keepdim=True)
            dg[t, :, : 2 * hidden] = d_rz
            torch.mul(dk, rz[t, :, :hidden], out=dg[t, :, 2 * hidden: three_h])
            torch.mul(da, a_t * (1 - a_t), out=dg[t, :, three_h:])
            torch.mul(dk, a_t, out=dgu[t])
            dh = torch.addmm(dh * (1 - z), dg[t], w_hh)  # [B, H]
        flat = dg.reshape(steps * batch, three_h + 1)
        dw = flat.t() @ hs[:-1].reshape(steps * batch, hidden)  # [3H + 1, H]
        d_bi = d_i.sum((0, 1))
        dgx = d_i.mul_(1 - a)
        return dgx, None, dg[:, :, three_h:], dgu, dh, dw, flat.sum(0), d_bi


def fast_user_gru_recurrence(
    inp: UserGRUInputs, state: GRUState, w_hh: Tensor, b_hh: Tensor, b_i: Tensor
) -> tuple[Tensor, GRUState]:
    """`user_gru_recurrence` through `UserGRURecurrence`: `[B, T, ...]` -> (`[B, T, H]`, last)."""
    # Time-major views, no copies: `UserGRUInput` lays its outputs out time-major already.
    gx, mask, ax, gu = (x.transpose(0, 1) for x in inp)
    mask = None if mask.stride(-1) == 0 else mask  # stride 0: the all-ones mask, no dropout
    out = UserGRURecurrence.apply(gx, mask, ax, gu, state.h, w_hh, b_hh, b_i)  # [T, B, H]
    return out.transpose(0, 1), GRUState(out[-1])


class UserGRUInput(nn.Module):
    """The h-independent projections of the user-based GRU cell, for all steps at once.

    Parameters: item and user embeddings (`embedding_size`, or one-hot when -1), `item_proj`
    (`[W_i; W_a,x]`, E -> 3H + 1), `user_attn` (W_a,u, E -> 1), `user_proj` (W_u, E -> H, the
    layer that gets user_weight_decay), `bias_i` (b_i).
    """

    def __init__(self, cfg: ModelConfig, n_items: int, n_users: int, n_out: int) -> None:
        super().__init__()
        e = cfg.embedding_size
        self.n_out = n_out
        self.input_dropout = cfg.input_dropout
        self.user_dropout = cfg.user_dropout
        self.item_embedding = make_embedding(n_items, e)
        self.user_embedding = make_embedding(n_users, e)
        self.item_proj = IdProjection(n_items, e, 3 * n_out + 1)
        self.user_attn = IdProjection(n_users, e, 1)
        self.user_proj = IdProjection(n_users, e, n_out)
        self.bias_i = nn.Parameter(torch.empty(3 * n_out))
        uniform_init_(self)

    def item_vectors(self, items: Tensor) -> Tensor | None:
        return None if self.item_embedding is None else self.item_embedding(items)

    def forward(self, items: Tensor, users: Tensor) -> UserGRUInputs:
        """items, users `[B, T]` -> `UserGRUInputs` with a time axis `[B, T, ...]`.

        Computed time-major (`[T, B, ...]` in memory, returned as `[B, T, ...]` views), so that
        the recurrence reads each step's block without a transposing copy.
        """
        items, users = items.t(), users.t()  # [T, B]
        u = None if self.user_embedding is None else self.user_embedding(users)
        px = self.item_proj(items, self.item_vectors(items))  # [T, B, 3H + 1]
        gx, ax = px[..., : 3 * self.n_out], px[..., 3 * self.n_out:]
        ax = ax + self.user_attn(users, u)  # [T, B, 1]
        gu = dropout(self.user_proj(users, u), self.user_dropout, self.training)  # [T, B, H]
        # The mask itself (scaled), so that i = mask * (...) is dropout of the whole term.
        mask = mask_like(gx, self.input_dropout, self.training)
        return UserGRUInputs(*(x.transpose(0, 1) for x in (gx, mask, ax, gu)))


class UserGRU(HiddenStateRun, RecurrentRecommender):
    """Item and user ids -> user-based GRU -> linear layer to all items.

    Path: the h-independent projections for all steps in one pass (`UserGRUInput`), then a
    Python loop over the recurrence only, with a hand-written backward
    (`fast_user_gru_recurrence`; tests check it against the autograd loop
    `user_gru_recurrence` and a plain step-by-step cell); no fused kernel computes this
    cell. Parameters beyond `UserGRUInput`: `weight_hh [3H + 1, H]`, `bias_hh [3H + 1]`.
    """

    uses_users = True

    def __init__(self, cfg: ModelConfig, n_items: int, n_users: int) -> None:
        super().__init__(n_items, n_users, cfg.hidden_size)
        hidden = cfg.hidden_size
        self.hidden_size = hidden
        self.input = UserGRUInput(cfg, n_items, n_users, hidden)
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden + 1, hidden))
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden + 1))
        uniform_init_(self)

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> GRUState:
        return GRUState(torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype))

    def run(self, items: Tensor, users: Tensor | None, state: GRUState,
            pad: Tensor | None = None) -> tuple[Tensor, GRUState]:
        """items, users `[B, T]` -> (hidden states `[B, T, H]`, last state).

        With padding `pad [B, T]`, through `gru.run_padded`: the state does not change on it.
        """
        if pad is not None:
            return run_padded(self.run, items, users, state, pad)
        inp = self.input(items, users)
        return fast_user_gru_recurrence(inp, state, self.weight_hh, self.bias_hh,
                                        self.input.bias_i)

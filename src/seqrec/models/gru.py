"""Vanilla GRU recommender (docs/protocol.md, "Models": GRU).

Cell (Cho et al. 2014, PyTorch's gate order r, z, n), with `gi = W_i x + b_i`, `gh = W_h h + b_h`:
    r = sigmoid(gi_r + gh_r);  z = sigmoid(gi_z + gh_z);  n = tanh(gi_n + r * gh_n)
    h' = (1 - z) * n + z * h
The thesis applied dropout 0.2 to the input projection `gi` (all three gates, bias included).

Padding (seqrec.models.base): `run_padded` moves each row's items to the front, runs the
unchanged recurrence, and moves the outputs back, the padded steps getting the initial state.
The state after a row's last item is then its output at that step, exactly as if the padding
were not there; both paths (fused kernel and hand-written recurrence) stay as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from seqrec.config import ModelConfig
from seqrec.models.base import (
    InputProjection,
    RecurrentRecommender,
    float32_backward,
    float32_forward,
    left_align,
    pad_counts,
    right_align,
    uniform_init_,
)
from seqrec.models.dropout import dropout


class GRUState(NamedTuple):
    """Recurrent state of a GRU: `h [B, H]`."""

    h: Tensor


def gru_step(gi: Tensor, state: GRUState, w_hh: Tensor, b_hh: Tensor) -> GRUState:
    """One GRU step from a precomputed input projection.

    gi `[B, 3H]` (= W_i x + b_i, dropout already applied), h `[B, H]`, w_hh `[3H, H]`,
    b_hh `[3H]` -> the next state.
    """
    h = state.h
    hidden = h.shape[1]
    gh = torch.addmm(b_hh, h, w_hh.t())  # [B, 3H]
    rz = torch.sigmoid(gi[:, : 2 * hidden] + gh[:, : 2 * hidden])  # r and z in one kernel
    r, z = rz[:, :hidden], rz[:, hidden:]
    n = torch.tanh(gi[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
    return GRUState(n + z * (h - n))  # = (1 - z) n + z h


def gru_recurrence(
    gi: Tensor, state: GRUState, w_hh: Tensor, b_hh: Tensor
) -> tuple[Tensor, GRUState]:
    """Loop `gru_step` over time: gi `[B, T, 3H]` -> (hidden states `[B, T, H]`, last state)."""
    outputs = []
    gi = gi.transpose(0, 1).contiguous()  # [T, B, 3H]: each step reads one contiguous block
    for t in range(gi.shape[0]):
        state = gru_step(gi[t], state, w_hh, b_hh)
        outputs.append(state.h)
    return torch.stack(outputs, 1), state


class GRURecurrence(torch.autograd.Function):
    """The GRU recurrence with a hand-written backward pass (same function as `gru_recurrence`).

    Forward: gi `[T, B, 3H]` (time-major, dropout already applied), h0 `[B, H]`, w_hh `[3H, H]`,
    b_hh `[3H]` -> hidden states `[T, B, H]`. It keeps only h, gh = W_h h + b_h, (r, z) and n
    per step, where autograd would keep every intermediate, and runs without graph bookkeeping.

    Backward, per step from the last, with dh the gradient reaching h_t (from the output and
    from step t + 1), writing a_n = gi_n + r * gh_n:
        da_n = dh (1 - z) (1 - n^2);   dr = da_n gh_n r (1 - r);   dz = dh (h_{t-1} - n) z (1 - z)
        dgi = [dr, dz, da_n];   dgh = [dr, dz, da_n r];   dh_{t-1} = dh z + dgh W_h
    and, after the loop, dW_h = sum_t dgh_t^T h_{t-1} and db_h = sum_t dgh_t as one matmul and
    one sum over all steps. First-order gradients only (no double backward).
    """

    @staticmethod
    @float32_forward
    def forward(ctx, gi: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor) -> Tensor:
        steps, batch, three_h = gi.shape
        hidden = three_h // 3
        hs = gi.new_empty(steps + 1, batch, hidden)  # h_0 ... h_T
        hs[0] = h0
        gh = gi.new_empty(steps, batch, three_h)
        rz = gi.new_empty(steps, batch, 2 * hidden)
        n = gi.new_empty(steps, batch, hidden)
        w_t = w_hh.t()
        for t in range(steps):
            torch.addmm(b_hh, hs[t], w_t, out=gh[t])
            torch.sigmoid(gi[t, :, : 2 * hidden] + gh[t, :, : 2 * hidden], out=rz[t])
            torch.tanh(torch.addcmul(gi[t, :, 2 * hidden:], rz[t, :, :hidden],
                                     gh[t, :, 2 * hidden:]), out=n[t])
            torch.addcmul(n[t], rz[t, :, hidden:], hs[t] - n[t], out=hs[t + 1])
        ctx.save_for_backward(hs, gh, rz, n, w_hh)
        return hs[1:]

    @staticmethod
    @float32_backward
    def backward(ctx, d_out: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        hs, gh, rz, n, w_hh = ctx.saved_tensors
        steps, batch, hidden = n.shape
        dgi = gh.new_empty(steps, batch, 3 * hidden)
        dgh = gh.new_empty(steps, batch, 3 * hidden)
        dh = torch.zeros_like(hs[0])
        for t in range(steps - 1, -1, -1):
            dh = dh + d_out[t]
            r, z, n_t = rz[t, :, :hidden], rz[t, :, hidden:], n[t]
            da_n = dh * (1 - z) * (1 - n_t * n_t)  # [B, H]
            d_rz = torch.cat([da_n * gh[t, :, 2 * hidden:], dh * (hs[t] - n_t)], 1)
            d_rz = d_rz * rz[t] * (1 - rz[t])  # [B, 2H]
            dgi[t, :, : 2 * hidden] = d_rz
            dgi[t, :, 2 * hidden:] = da_n
            dgh[t, :, : 2 * hidden] = d_rz
            torch.mul(da_n, r, out=dgh[t, :, 2 * hidden:])
            dh = torch.addmm(dh * z, dgh[t], w_hh)  # [B, H]
        flat = dgh.reshape(steps * batch, 3 * hidden)
        dw = flat.t() @ hs[:-1].reshape(steps * batch, hidden)  # [3H, H]
        return dgi, dh, dw, flat.sum(0)


def fast_gru_recurrence(
    gi: Tensor, state: GRUState, w_hh: Tensor, b_hh: Tensor
) -> tuple[Tensor, GRUState]:
    """`gru_recurrence` through `GRURecurrence`: gi `[B, T, 3H]` -> (`[B, T, H]`, last state).

    A gi laid out time-major in memory (a transposed view) is passed on without a copy.
    """
    out = GRURecurrence.apply(gi.transpose(0, 1).contiguous(), state.h, w_hh, b_hh)  # [T, B, H]
    return out.transpose(0, 1), GRUState(out[-1])


def run_padded(run: Callable[..., tuple[Tensor, GRUState]], items: Tensor, users: Tensor | None,
               state: GRUState, pad: Tensor, last_only: bool = False
               ) -> tuple[Tensor, GRUState]:
    """`run` on left-padded rows as if the padding were not there, for a recurrence whose
    per-step features are its state h (the GRU and the user-based GRU).

    items, users `[B, T]` (padded ids already replaced by real ones), pad `[B, T]` leading
    padding -> (features `[B, T, H]`, state after each row's last item). Each row is moved
    left by its padding (`left_align`), so the recurrence starts from `state` at the row's
    first item; the steps freed at the end are computed and discarded. The outputs are moved
    back (`right_align`), a padded step getting `state.h`: the state does not change on
    padding. Cost: two id gathers `[B, T]` and one feature gather `[B, T, H]`.

    `last_only`: (features after each row's last item `[B, H]`, that state) instead, read at
    step `T - 1 - pads` of the moved rows: a `[B, 1, H]` gather instead of `[B, T, H]`, and
    its backward a scatter of `[B, H]` (what `forward` and `loss` need).
    """
    pads = pad_counts(pad)
    out, _ = run(left_align(items, pads), None if users is None else left_align(users, pads),
                 state)
    if last_only:
        at = (out.shape[1] - 1 - pads).view(-1, 1, 1).expand(-1, 1, out.shape[2])
        last = out.gather(1, at).squeeze(1)
        return last, GRUState(last)
    out = right_align(out, pads, state.h)
    return out, GRUState(out[:, -1])


class HiddenStateRun:
    """`run_last` for a recurrent model whose per-step features are its state h (the GRU and
    the user-based GRU, mixed in before `RecurrentRecommender`): with padding, the last step is
    read straight from `run_padded`'s moved rows instead of moving every step back."""

    def run_last(self, items: Tensor, users: Tensor | None, state: GRUState,
                 pad: Tensor | None = None) -> tuple[Tensor, GRUState]:
        """`run`'s last step `[B, H]` and state."""
        if pad is None:
            return super().run_last(items, users, state)
        return run_padded(self.run, items, users if self.uses_users else None, state, pad,
                          last_only=True)


class GRU(HiddenStateRun, RecurrentRecommender):
    """Item ids -> GRU -> linear layer to all items.

    Parameters: `input` (item embedding + W_i, or the one-hot lookup table of W_i, see
    `InputProjection`), `weight_hh [3H, H]`, `bias_hh [3H]`, `output` (H -> n_items).

    Two paths compute the same function:
    - fused: `torch.nn.functional`-level `torch.gru` (cuDNN / oneDNN kernel) fed with the item
      embeddings and our W_i, used when no dropout is active on `gi` (eval mode, or
      input_dropout == 0) and the input is an embedding. Dropout on `W_i x` cannot be expressed
      through the fused kernel (it only drops its *input* x, a different function), and one-hot
      input would need a `[B, T, n_items]` tensor.
    - loop: all input projections in one matmul (time-major `[T, B, 3H]`), dropout on them
      (integer-threshold masks, `models/dropout.py`), then a Python loop over the recurrence
      only, with a hand-written backward pass (`GRURecurrence`: about 1.3x the autograd loop
      `gru_recurrence` on a CPU thread; docs/benchmarks.md). Used in training with dropout and
      for one-hot.
    Tests check that both equal a plain step-by-step cell.
    """

    def __init__(self, cfg: ModelConfig, n_items: int, n_users: int) -> None:
        super().__init__(n_items, n_users, cfg.hidden_size)
        hidden = cfg.hidden_size
        self.hidden_size = hidden
        self.input_dropout = cfg.input_dropout
        self.input = InputProjection(n_items, cfg.embedding_size, 3 * hidden)
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden, hidden))
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden))
        uniform_init_(self)

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> GRUState:
        return GRUState(torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype))

    def uses_fused(self) -> bool:
        """Whether `run` takes the fused kernel (see the class docstring)."""
        dropout_active = self.training and self.input_dropout > 0
        return not dropout_active and not self.input.one_hot

    def run(self, items: Tensor, users: Tensor | None, state: GRUState,
            pad: Tensor | None = None) -> tuple[Tensor, GRUState]:
        """items `[B, T]` -> (hidden states `[B, T, H]`, last state). `users` is ignored.

        With padding `pad [B, T]`, through `run_padded` (the same two paths underneath).
        """
        if pad is not None:
            return run_padded(self.run, items, None, state, pad)
        if self.uses_fused():
            x = self.input.embedding(items)  # [B, T, E]
            weights = [self.input.proj.weight, self.weight_hh, self.input.bias, self.bias_hh]
            out, h_n = torch.gru(x, state.h.unsqueeze(0).contiguous(), weights, True, 1, 0.0,
                                 self.training, False, True)
            return out, GRUState(h_n[0])
        # Computed time-major (`[T, B, 3H]` in memory), so the recurrence needs no copy.
        gi = dropout(self.input(items.t()), self.input_dropout, self.training)
        return fast_gru_recurrence(gi.transpose(0, 1), state, self.weight_hh, self.bias_hh)

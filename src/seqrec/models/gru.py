"""Vanilla GRU recommender (THESIS_PROTOCOL.md, "Models": GRU).

Cell (Cho et al. 2014, PyTorch's gate order r, z, n), with `gi = W_i x + b_i`, `gh = W_h h + b_h`:
    r = sigmoid(gi_r + gh_r);  z = sigmoid(gi_z + gh_z);  n = tanh(gi_n + r * gh_n)
    h' = (1 - z) * n + z * h
The thesis applied dropout 0.2 to the input projection `gi` (all three gates, bias included).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqrec.config import ModelConfig
from seqrec.models.base import InputProjection, RecurrentRecommender, uniform_init_


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


class GRU(RecurrentRecommender):
    """Item ids -> GRU -> linear layer to all items.

    Parameters: `input` (item embedding + W_i, or the one-hot lookup table of W_i, see
    `InputProjection`), `weight_hh [3H, H]`, `bias_hh [3H]`, `output` (H -> n_items).

    Two paths compute the same function:
    - fused: `torch.nn.functional`-level `torch.gru` (cuDNN / oneDNN kernel) fed with the item
      embeddings and our W_i, used when no dropout is active on `gi` (eval mode, or
      input_dropout == 0) and the input is an embedding. Dropout on `W_i x` cannot be expressed
      through the fused kernel (it only drops its *input* x, a different function), and one-hot
      input would need a `[B, T, n_items]` tensor.
    - loop: all input projections in one matmul `[B, T, 3H]`, dropout on them, then a Python loop
      over the recurrence only (`gru_recurrence`). Used in training with dropout and for one-hot.
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

    def run(self, items: Tensor, users: Tensor | None, state: GRUState) -> tuple[Tensor, GRUState]:
        """items `[B, T]` -> (hidden states `[B, T, H]`, last state). `users` is ignored."""
        if self.uses_fused():
            x = self.input.embedding(items)  # [B, T, E]
            weights = [self.input.proj.weight, self.weight_hh, self.input.bias, self.bias_hh]
            out, h_n = torch.gru(x, state.h.unsqueeze(0).contiguous(), weights, True, 1, 0.0,
                                 self.training, False, True)
            return out, GRUState(h_n[0])
        gi = F.dropout(self.input(items), self.input_dropout, self.training)  # [B, T, 3H]
        return gru_recurrence(gi, state, self.weight_hh, self.bias_hh)

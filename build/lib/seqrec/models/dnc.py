"""Differentiable Neural Computer recommender (Graves et al., Nature 2016) with the memory
changes of Csordas and Schmidhuber (ICLR 2019); addressing lives in `dnc_memory.py`.

Per step t, with item vector x_t and the previous read vectors r_t-1 `[B, R W]`:
    h_t = controller([x_t; r_t-1], h_t-1)     GRU cell, or the user-based GRU cell (+ user u)
    o_t = clamp(h_t, -c_o, c_o)                controller-output clipping (`controller_clip`)
    xi_t = clamp(W_xi o_t + b_xi, -c_i, c_i)   interface vector (`interface_clip`)
    r_t, memory = memory_step(memory, split_interface(xi_t))
    y_t = W_c o_t + W_r r_t                    per-step output `[B, H]` (Graves 2016, Methods)
and logits = W_o y_T + b_o. A clip of 0 is off. (docs/dnc.md: the two clippings and why.)

Two clippings, of two different quantities:
- `controller_clip` (default 5.0) clamps the controller output o_t, which feeds the interface
  and the output. This is what the thesis' notebook meant to do: it computed the clipping at 5.0
  and threw it away (defect 2); here it is applied. DeepMind's DNC clips its controller output
  the same way (its `clip_value`, which also clips the controller state and the final output).
  A GRU state lies in (-1, 1), so a clip >= 1 (the thesis' 5.0) never acts for these
  controllers; it matters only for clips below 1. Kept for fidelity to the thesis.
- `interface_clip` (default 0, off) clamps the raw interface vector, before its activations,
  as Csordas and Schmidhuber's implementation does (`clip_controller`, default 20, on the
  memory controls). It bounds the strengths and sharpness (oneplus(20) ~ 21) and stops the
  gradient of controls beyond the bound. Off by default: the thesis clipped no interface;
  `interface_clip=20` gives the authors' DNC.

Fast path: the item projections of every step (W_i x, and for the user-based cell all x and u
terms) are computed in one matmul before the loop; the loop does the read-vector part of the
input projection, the recurrent product, the interface and the memory step.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from seqrec.config import ModelConfig
from seqrec.models.base import (
    InputProjection,
    RecurrentRecommender,
    carry_state,
    pad_counts,
    uniform_init_,
)
from seqrec.models.dnc_memory import (
    MemoryOptions,
    MemoryState,
    initial_memory,
    interface_size,
    memory_step,
    split_interface,
)
from seqrec.models.dropout import mask_like
from seqrec.models.gru import GRUState, gru_step
from seqrec.models.user_gru import UserGRUInput, UserGRUInputs, user_gru_step


class DNCState(NamedTuple):
    """Everything the DNC carries from one step to the next.

    memory `MemoryState` (memory `[B, N, W]`, usage, link, precedence, read and write
    weights; see dnc_memory.py), read_vectors `[B, R, W]`, controller `GRUState` (h `[B, H]`).
    """

    memory: MemoryState
    read_vectors: Tensor
    controller: GRUState


class DNC(RecurrentRecommender):
    """DNC with a GRU controller (registry name `dnc`); `UserDNC` uses the user-based cell.

    Parameters: `input` (item projection W_i x + b_i to the controller's 3H gates),
    `weight_ir [3H (+1), R W]` (read-vector part of the controller input weights), controller
    `weight_hh`, `bias_hh`, `interface` (H -> interface vector), `out_controller` (W_c, H -> H,
    with bias), `out_read` (W_r, R W -> H), `output` (H -> n_items).
    """

    def __init__(self, cfg: ModelConfig, n_items: int, n_users: int) -> None:
        super().__init__(n_items, n_users, cfg.hidden_size)
        hidden = cfg.hidden_size
        self.hidden_size = hidden
        self.cells, self.word, self.heads = cfg.memory_cells, cfg.word_size, cfg.read_heads
        self.clip = cfg.controller_clip
        self.interface_clip = cfg.interface_clip
        self.input_dropout = cfg.input_dropout
        self.opts = MemoryOptions(cfg.masked_lookup, cfg.dealloc_content, cfg.link_sharpness)
        n_gates = self._gate_rows(hidden)
        self._build_input(cfg, n_items, n_users)
        self.weight_ir = nn.Parameter(torch.empty(n_gates, self.heads * self.word))
        self.weight_hh = nn.Parameter(torch.empty(n_gates, hidden))
        self.bias_hh = nn.Parameter(torch.empty(n_gates))
        self.interface = nn.Linear(hidden, interface_size(self.word, self.heads, self.opts))
        self.out_controller = nn.Linear(hidden, hidden)
        self.out_read = nn.Linear(self.heads * self.word, hidden, bias=False)
        uniform_init_(self)

    # -- controller-specific parts (overridden by UserDNC) -------------------------------------
    def _gate_rows(self, hidden: int) -> int:
        return 3 * hidden

    def _build_input(self, cfg: ModelConfig, n_items: int, n_users: int) -> None:
        self.input = InputProjection(n_items, cfg.embedding_size, 3 * cfg.hidden_size)

    def _precompute(self, items: Tensor, users: Tensor | None) -> tuple[Tensor, Tensor]:
        """(W_i x + b_i `[T, B, 3H]`, dropout mask `[T, B, 3H]`, scaled), time-major so that
        each step reads one block."""
        gx = self.input(items.t())
        return gx, mask_like(gx, self.input_dropout, self.training)

    def _controller_step(self, pre: object, t: int, reads: Tensor, h: GRUState) -> GRUState:
        gx, mask = pre
        gi = mask[t] * torch.addmm(gx[t], reads, self.weight_ir.t())  # [B, 3H]
        return gru_step(gi, h, self.weight_hh, self.bias_hh)

    # -- the recurrence ----------------------------------------------------------------------
    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> DNCState:
        mem = initial_memory(batch_size, self.cells, self.word, self.heads, device, dtype)
        reads = torch.zeros(batch_size, self.heads, self.word, device=device, dtype=dtype)
        h = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return DNCState(mem, reads, GRUState(h))

    def step(self, pre: object, t: int, state: DNCState) -> tuple[Tensor, DNCState]:
        """One DNC step -> (output y_t `[B, H]`, next state)."""
        out, state = self._advance(pre, t, state)
        return self._output(out, state.read_vectors), state

    def _advance(self, pre: object, t: int, state: DNCState) -> tuple[Tensor, DNCState]:
        """Controller and memory step t -> (clipped controller output o_t `[B, H]`, state)."""
        b = state.read_vectors.shape[0]
        reads = state.read_vectors.reshape(b, -1)  # [B, R W]
        ctrl = self._controller_step(pre, t, reads, state.controller)
        out = ctrl.h if self.clip <= 0 else ctrl.h.clamp(-self.clip, self.clip)
        raw = self.interface(out)  # [B, I]
        if self.interface_clip > 0:
            raw = raw.clamp(-self.interface_clip, self.interface_clip)
        iface = split_interface(raw, self.word, self.heads, self.opts)
        read_vectors, mem = memory_step(state.memory, iface, self.opts)
        return out, DNCState(mem, read_vectors, ctrl)

    def _output(self, out: Tensor, read_vectors: Tensor) -> Tensor:
        """y = W_c o + W_r r: out `[..., H]`, read_vectors `[..., R, W]` -> `[..., H]`."""
        return self.out_controller(out) + self.out_read(read_vectors.flatten(-2))

    def run(self, items: Tensor, users: Tensor | None, state: DNCState,
            pad: Tensor | None = None) -> tuple[Tensor, DNCState]:
        """items (and users) `[B, T]` -> (outputs `[B, T, H]`, last state).

        The outputs y_t do not feed the recurrence, so they are formed after the loop, for all
        steps in one product each (`[T B, H]`): fewer, larger matmuls than one pair per step.
        Leading padding `pad [B, T]` (seqrec.models.base): at a padded step a row keeps its
        state, memory and read vectors, and its controller output is zero (no item seen yet).
        Steps where every row pads are skipped; up to the last padded step the new state is
        merged with `carry_state`; after it the loop is as without padding.
        """
        pre = self._precompute(items, users)
        skip = keep_until = 0
        if pad is not None:
            pads = pad_counts(pad)
            skip, keep_until = int(pads.min()), int(pads.max())
            out = torch.zeros_like(state.controller.h)
        outs, reads = [], []
        for t in range(items.shape[1]):
            if t >= skip:
                new_out, new_state = self._advance(pre, t, state)
                if t < keep_until:
                    keep = pad[:, t]
                    new_out = new_out.masked_fill(keep.unsqueeze(1), 0)
                    new_state = carry_state(keep, state, new_state)
                out, state = new_out, new_state
            outs.append(out)
            reads.append(state.read_vectors)
        y = self._output(torch.stack(outs), torch.stack(reads))  # [T, B, H]
        return y.transpose(0, 1), state


class UserDNC(DNC):
    """DNC whose controller is the user-based GRU cell (registry name `user_dnc`).

    The cell's item input is [x; r_t-1]: the attention a weighs it against the user vector and
    W_i acts on it, so the read-vector parts of W_i and of W_a (stacked in `weight_ir`, rows
    rows 0..3H-1 and row 3H) are added per step; the rest is precomputed (`UserGRUInput`).
    """

    uses_users = True

    def _gate_rows(self, hidden: int) -> int:
        return 3 * hidden + 1

    def _build_input(self, cfg: ModelConfig, n_items: int, n_users: int) -> None:
        self.input = UserGRUInput(cfg, n_items, n_users, cfg.hidden_size)

    def _precompute(self, items: Tensor, users: Tensor | None) -> UserGRUInputs:
        return self.input(items, users)

    def _controller_step(self, pre: object, t: int, reads: Tensor, h: GRUState) -> GRUState:
        n3 = 3 * self.hidden_size
        rx = reads @ self.weight_ir.t()  # [B, 3H + 1]: W_i and W_a parts of r_t-1
        step = UserGRUInputs(pre.gx[:, t] + rx[:, :n3], pre.mask[:, t],
                             pre.ax[:, t] + rx[:, n3:], pre.gu[:, t])
        return user_gru_step(step, h, self.weight_hh, self.bias_hh, self.input.bias_i)

"""Shared pieces of the neural models: id checks, input lookup, output layer, param groups,
and padding.

Every neural model maps `items [B, T]` (and `users [B, T]`) to per-step features `[B, T, D]`
through a recurrence with explicit state; `RecurrentRecommender` turns those into logits over all
items and fixes the interface that training and evaluation code against (models/contract.py;
docs/protocol.md, "Models").

Padding (docs/protocols.md). Item id `n_items` is padding: it is no model's output (the output
layer has `n_items` rows), it may only precede a row's items, and the last input of a row is
always an item. Every model ignores it: its state does not change at a pad step, so a
left-padded window scores exactly as the same history without the padding. `check_item_ids`
finds padding in the min/max reduction it does anyway, so an unpadded batch costs nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqrec.models.loss import linear_cross_entropy

INIT_SCALE = 0.1  # thesis: every weight and embedding uniform(-0.1, 0.1)


def float32_forward(forward: Callable) -> Callable:
    """Decorate an autograd.Function's forward: under autocast (CUDA or CPU) its floating
    inputs arrive as float32 and it runs with autocast off. The hand-written recurrences and
    memory operations mix their inputs in in-place and `out=` products, which need one dtype,
    and their state accumulates over steps; under mixed precision they keep float32 while the
    large projections around them take the autocast dtype."""
    for device in ("cpu", "cuda"):
        forward = torch.amp.custom_fwd(device_type=device, cast_inputs=torch.float32)(forward)
    return forward


def float32_backward(backward: Callable) -> Callable:
    """The backward companion of `float32_forward` (runs with the forward's autocast state)."""
    for device in ("cpu", "cuda"):
        backward = torch.amp.custom_bwd(device_type=device)(backward)
    return backward


def check_sizes(n_items: int, n_users: int) -> None:
    """Raise a ValueError naming the empty part when a split has no items or no users."""
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}; the split has no items")
    if n_users < 1:
        raise ValueError(f"n_users must be >= 1, got {n_users}; the split has no users")


def check_ids(ids: Tensor, n: int, what: str) -> None:
    """Raise a ValueError when an id in `ids` lies outside `[0, n)`.

    One min/max reduction per call: cheap, and it turns what would be a CUDA device-side assert
    (an unrecoverable error far from its cause) into a sentence naming the input and the range.
    """
    if ids.numel() == 0:
        return
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= n:
        raise ValueError(
            f"{what} ids must lie in [0, {n}) but range over [{lo}, {hi}]; build the model "
            f"with the split's n_{what}s (largest id + 1) or re-index the {what}s"
        )


def check_item_ids(items: Tensor, n_items: int) -> Tensor | None:
    """Check item ids `[B, T]` and return the padding mask `[B, T]` (bool), or None without it.

    Ids lie in `[0, n_items]`, `n_items` being padding (see the module docstring). The one
    min/max reduction of `check_ids` tells whether padding occurs; only then is the mask
    built and checked: padding only before a row's items, and the last input an item (so no
    row is all padding). Raises a ValueError naming the rule otherwise.
    """
    if items.numel() == 0:
        return None
    lo, hi = int(items.min()), int(items.max())
    if lo < 0 or hi > n_items:
        raise ValueError(
            f"item ids must lie in [0, {n_items}) (or be the padding id {n_items}) but range "
            f"over [{lo}, {hi}]; build the model with the split's n_items (largest id + 1) or "
            f"re-index the items"
        )
    if hi < n_items:
        return None
    pad = items == n_items
    if bool(pad[:, -1].any()) or bool((pad[:, 1:] & ~pad[:, :-1]).any()):
        raise ValueError(
            f"padding (item id {n_items}) may only precede a row's items, and each row's last "
            f"input must be an item; windows from seqrec.data.windows are padded that way"
        )
    return pad


def pad_counts(pad: Tensor) -> Tensor:
    """Leading padded steps per row: pad mask `[B, T]` -> int64 `[B]`."""
    return pad.sum(1)


def left_align(x: Tensor, pads: Tensor) -> Tensor:
    """Row b of `x [B, T, ...]` moved `pads[b]` steps to the left: its items first.

    The freed last steps repeat the row's last step (valid ids; their results are discarded
    by `right_align`). A gather, O(B T).
    """
    steps = x.shape[1]
    src = (torch.arange(steps, device=x.device) + pads.unsqueeze(1)).clamp_(max=steps - 1)
    return x.gather(1, src.view(*src.shape, *([1] * (x.dim() - 2))).expand_as(x))


def right_align(y: Tensor, pads: Tensor, fill: Tensor) -> Tensor:
    """Undo `left_align` on per-step outputs `y [B, T, D]`: row b moved `pads[b]` steps right,
    its first `pads[b]` steps set to `fill [B, D]` (the output of the state before any item)."""
    steps = y.shape[1]
    src = torch.arange(steps, device=y.device) - pads.unsqueeze(1)  # [B, T]
    out = y.gather(1, src.clamp(min=0).unsqueeze(2).expand_as(y))
    return torch.where((src >= 0).unsqueeze(2), out, fill.unsqueeze(1))


def carry_state(keep: Tensor, old: Any, new: Any) -> Any:
    """`old` where `keep [B]` (a pad step), else `new`, for a state that is a tensor `[B, ...]`
    or a (nested) tuple of them: the state does not change on padding."""
    if isinstance(old, Tensor):
        return torch.where(keep.view(-1, *([1] * (old.dim() - 1))), old, new)
    return type(old)(*(carry_state(keep, o, n) for o, n in zip(old, new, strict=True)))


def uniform_init_(module: nn.Module, scale: float = INIT_SCALE) -> None:
    """Initialise every parameter of `module` uniform(-scale, scale), as the thesis did."""
    for p in module.parameters():
        nn.init.uniform_(p, -scale, scale)


class IdProjection(nn.Module):
    """`W x` (no bias) for ids whose vector x is a learned embedding or a one-hot vector.

    Shapes: `ids [B, T]` (and, with an embedding, `x [B, T, E]`) -> `[B, T, out_size]`.

    With `embedding_size == -1` (exp 3, one-hot input) x is the one-hot vector of the id, so
    `W x` is the id's column of W. We store W transposed, `[n_ids, out_size]`, and gather its
    rows (an embedding lookup): the same function as a one-hot matmul, at O(B T out) instead of
    O(B T n_ids out) and without a `[B, T, n_ids]` one-hot tensor. Either way the parameter is
    called `weight` and counts as a weight (not an embedding) for weight decay.
    """

    def __init__(self, n_ids: int, embedding_size: int, out_size: int) -> None:
        super().__init__()
        self.one_hot = embedding_size == -1
        shape = (n_ids, out_size) if self.one_hot else (out_size, embedding_size)
        self.weight = nn.Parameter(torch.empty(shape))
        uniform_init_(self)

    def forward(self, ids: Tensor, x: Tensor | None) -> Tensor:
        if self.one_hot:
            return F.embedding(ids, self.weight)  # [B, T, out]
        return F.linear(x, self.weight)  # [B, T, out]


def make_embedding(n_ids: int, embedding_size: int) -> nn.Embedding | None:
    """A uniform(-0.1, 0.1) embedding table, or None for one-hot input (`embedding_size == -1`)."""
    if embedding_size == -1:
        return None
    emb = nn.Embedding(n_ids, embedding_size)
    uniform_init_(emb)
    return emb


class InputProjection(nn.Module):
    """`W x + b` for item ids, x a learned embedding (`embedding`) or one-hot (see IdProjection).

    Shapes: ids `[B, T]` -> `[B, T, out_size]`.
    """

    def __init__(self, n_ids: int, embedding_size: int, out_size: int) -> None:
        super().__init__()
        self.one_hot = embedding_size == -1
        self.embedding = make_embedding(n_ids, embedding_size)
        self.proj = IdProjection(n_ids, embedding_size, out_size)
        self.bias = nn.Parameter(torch.empty(out_size))
        uniform_init_(self)

    def embed(self, ids: Tensor) -> Tensor | None:
        """The item vectors `[B, T, E]`, or None for one-hot input."""
        return None if self.embedding is None else self.embedding(ids)

    def forward(self, ids: Tensor) -> Tensor:
        return self.proj(ids, self.embed(ids)) + self.bias  # [B, T, out]


class RecurrentRecommender(nn.Module):
    """Base of the recurrent models: the interface, the output layer and the param groups.

    Subclasses implement `run(items, users, state, pad) -> (features [B, T, D], state)` and
    `initial_state(batch_size, device, dtype)`. Nothing per-sequence is kept on the module.
    `run` gets `pad` None for an unpadded batch (the thesis' windows: nothing else to do), else
    the padding mask `[B, T]`, with the padded ids already replaced by item 0 (any real id: the
    model must ignore those steps, and its embedding then needs no padding row).

    Parameter naming convention used by `param_groups` (subclasses follow it):
    `*embedding.weight` are embeddings (no decay), one-dimensional parameters are biases (no
    decay), `*user_proj.weight` is the user layer W_u (user_weight_decay), the rest are weights.
    """

    kind = "neural"
    uses_users = False

    def __init__(self, n_items: int, n_users: int, feature_size: int) -> None:
        super().__init__()
        check_sizes(n_items, n_users)
        self.n_items = n_items
        self.n_users = n_users
        self.output = nn.Linear(feature_size, n_items)
        uniform_init_(self.output)

    # -- to implement ------------------------------------------------------------------------
    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> Any:
        raise NotImplementedError

    def run(self, items: Tensor, users: Tensor | None, state: Any, pad: Tensor | None = None
            ) -> tuple[Tensor, Any]:
        raise NotImplementedError

    # -- the interface -------------------------------------------------------------------------
    def _check(self, items: Tensor, users: Tensor | None) -> Tensor | None:
        """Check the inputs; return the padding mask `[B, T]`, or None without padding."""
        if items.dim() != 2:
            raise ValueError(f"items must be a [batch, time] tensor, got {tuple(items.shape)}")
        if items.shape[1] == 0:
            raise ValueError("items has no time steps; windows need seq_len >= 2 (one input)")
        pad = check_item_ids(items, self.n_items)
        if self.uses_users:
            if users is None:
                raise ValueError(f"model {type(self).__name__} is user-based and needs users")
            if users.shape != items.shape:
                raise ValueError(f"users shape {tuple(users.shape)} must equal items shape "
                                 f"{tuple(items.shape)}")
            check_ids(users, self.n_users, "user")
        return pad

    def run_last(self, items: Tensor, users: Tensor | None, state: Any,
                 pad: Tensor | None = None) -> tuple[Tensor, Any]:
        """(features after the last position `[B, D]`, final state): the last step of `run`.
        A model whose padded path can give it without the other steps' features overrides
        this (the GRUs: `gru.HiddenStateRun`)."""
        features, state = self.run(items, users, state, pad)
        return features[:, -1], state

    def _features(self, items: Tensor, users: Tensor | None, state: Any = None,
                  last: bool = False) -> tuple[Tensor, Any]:
        """Checked inputs -> (features `[B, T, D]`, final state), from `state` or zeros;
        with `last`, the last position's features `[B, D]` only (`run_last`)."""
        pad = self._check(items, users)
        if state is None:
            dtype = next(self.parameters()).dtype
            state = self.initial_state(items.shape[0], items.device, dtype)
        run = self.run_last if last else self.run
        if pad is None:
            return run(items, users, state)
        return run(items.masked_fill(pad, 0), users, state, pad)

    def forward(self, items: Tensor, users: Tensor | None = None) -> Tensor:
        """Logits for the item after the last position: `[B, T]` -> `[B, n_items]`."""
        features, _ = self._features(items, users, last=True)
        return self.output(features)

    def loss(self, items: Tensor, users: Tensor | None, target: Tensor) -> Tensor:
        """Mean cross-entropy of the last-position logits against `target` `[B]` -> scalar.

        The same value as `F.cross_entropy(self(items, users), target)`, with the output layer
        and the loss fused (`linear_cross_entropy`: one `[B, n_items]` buffer instead of
        several); the trainer uses it.
        """
        features, _ = self._features(items, users, last=True)
        return linear_cross_entropy(features, self.output.weight, self.output.bias, target)

    def forward_all(self, items: Tensor, users: Tensor | None = None) -> Tensor:
        """Logits after every position: `[B, T]` -> `[B, T, n_items]`."""
        features, _ = self._features(items, users)
        return self.output(features)

    def forward_with_state(
        self, items: Tensor, users: Tensor | None, state: Any = None
    ) -> tuple[Tensor, Any]:
        """Last-position logits `[B, n_items]` and the final state, starting from `state`.

        `state=None` starts from `initial_state` (zeros); pass the returned state back in to
        carry a user's recurrent (and memory) state across consecutive windows.
        """
        features, state = self._features(items, users, state, last=True)
        return self.output(features), state

    def param_groups(self, weight_decay: float, user_weight_decay: float) -> list[dict]:
        """Parameter groups for Adam: W_u -> user_weight_decay; biases, embeddings -> 0; rest ->
        weight_decay (docs/protocol.md: L2 0.01 on the user layer only). Empty groups dropped.
        """
        groups: dict[str, list[nn.Parameter]] = {"weights": [], "user": [], "none": []}
        for name, p in self.named_parameters():
            groups[param_kind(name, p)].append(p)
        decay = {"weights": weight_decay, "user": user_weight_decay, "none": 0.0}
        return [{"params": ps, "weight_decay": decay[k], "name": k}
                for k, ps in groups.items() if ps]


def param_kind(name: str, p: Tensor) -> str:
    """'user' for the user layer W_u, 'none' for biases and embeddings, else 'weights'."""
    if name.endswith("user_proj.weight"):
        return "user"
    if p.dim() == 1 or name.endswith("embedding.weight"):
        return "none"
    return "weights"

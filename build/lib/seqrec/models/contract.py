"""The contract every model follows, as typed protocols (checked by `tests/test_models.py`).

A model is built as `Class(cfg: ModelConfig, n_items, n_users)` and scores the item after the
last position of each window: `forward(items [B, T], users [B, T] | None) -> [B, n_items]`,
higher is better. Item id `n_items` is padding (docs/protocols.md): it may precede a row's items
(never the last input), no model predicts it, and a model's scores and state do not change for
it, so a left-padded window scores as the same history without the padding. Its class
attribute `kind` says how it learns (`seqrec.models.registry`):

- `Trainable` (`kind = "neural"`): scores are logits; `loss` is the mean last-position
  cross-entropy; `param_groups` gives Adam its groups (weight decay per group).
- `Countable` (`kind = "count"`): `fit(windows)` counts the training windows once; its scores are
  not logits, so no loss is computed from them.

Code that trains or evaluates reads `kind` (never probes with `hasattr`), and the trainer reads
it from the model it builds anyway, never from a throwaway one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from torch import Tensor

    from seqrec.data.windows import Windows


@runtime_checkable
class Recommender(Protocol):
    kind: ClassVar[str]
    uses_users: ClassVar[bool]
    n_items: int

    def forward(self, items: Tensor, users: Tensor | None = None) -> Tensor: ...


@runtime_checkable
class Trainable(Recommender, Protocol):
    def loss(self, items: Tensor, users: Tensor | None, target: Tensor) -> Tensor: ...

    def param_groups(self, weight_decay: float, user_weight_decay: float) -> list[dict]: ...


@runtime_checkable
class Countable(Recommender, Protocol):
    def fit(self, windows: Windows) -> None: ...


def scores_are_logits(model: Recommender) -> bool:
    """Whether a cross-entropy of the model's scores is a loss (neural models only)."""
    return model.kind == "neural"

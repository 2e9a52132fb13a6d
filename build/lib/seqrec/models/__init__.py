"""The models: the registry (`registry.py`) lists them, `contract.py` says what each offers.

`build_model(cfg, n_items, n_users)` builds the model named `cfg.name` from its registry row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from seqrec.models.registry import (
    MODEL_NAMES,
    REGISTRY,
    ModelEntry,
    entry,
    model_class,
    model_label,
    model_order,
)

if TYPE_CHECKING:
    from seqrec.config import ModelConfig
    from seqrec.models.contract import Recommender


def build_model(cfg: ModelConfig, n_items: int, n_users: int) -> Recommender:
    """Build the model `cfg.name` for a split with `n_items` items and `n_users` users."""
    return model_class(cfg.name)(cfg, n_items, n_users)


__all__ = ["MODEL_NAMES", "REGISTRY", "ModelEntry", "build_model", "entry", "model_class",
           "model_label", "model_order"]

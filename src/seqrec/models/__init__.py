"""Model registry: a name -> "module:Class" table, imported lazily.

Every model class is built as `Class(cfg: ModelConfig, n_items, n_users)` and offers
`forward(items [B, T], users [B, T] | None) -> logits [B, n_items]`, `forward_all`,
`param_groups(weight_decay, user_weight_decay)` and `requires_training` (False for count-based
baselines). Lazy import keeps a missing or broken optional module from breaking the others: it
fails only when its name is asked for.
"""

from __future__ import annotations

import importlib

from torch import nn

from seqrec.config import ModelConfig

REGISTRY: dict[str, str] = {
    "gru": "seqrec.models.gru:GRU",
    "user_gru": "seqrec.models.user_gru:UserGRU",
    "dnc": "seqrec.models.dnc:DNC",
    "user_dnc": "seqrec.models.dnc:UserDNC",
    # Written by another engineer (sasrec.py, baselines.py); registered here by name only.
    "sasrec": "seqrec.models.sasrec:SASRec",
    "pop": "seqrec.models.baselines:PopBaseline",
    "recent": "seqrec.models.baselines:RecentBaseline",
    "markov": "seqrec.models.baselines:MarkovBaseline",
    "item_knn": "seqrec.models.baselines:ItemKNNBaseline",
}


def model_class(name: str) -> type:
    """The class registered under `name`; a clear error if unknown or not importable."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; set model.name to one of {sorted(REGISTRY)}")
    module_name, class_name = REGISTRY[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        raise ValueError(f"model {name!r} needs module {module_name}, which is not installed "
                         f"in this version of seqrec; choose another model.name") from err
    return getattr(module, class_name)


def build_model(cfg: ModelConfig, n_items: int, n_users: int) -> nn.Module:
    """Build the model `cfg.name` for a split with `n_items` items and `n_users` users."""
    return model_class(cfg.name)(cfg, n_items, n_users)


__all__ = ["REGISTRY", "build_model", "model_class"]

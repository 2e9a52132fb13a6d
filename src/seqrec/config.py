"""Configuration: frozen dataclasses, profiles, overrides and a stable hash.

One source of defaults: the field defaults below are the thesis' settings (docs/protocol.md),
except where the thesis' notebook had a defect (item identity: see `DataConfig.item_key`).
A profile is a `RunConfig` with some fields replaced; `--set KEY=VALUE` replaces more. Every
cache and run id is keyed by `config_hash` of the settings that made it, so a changed setting
can never pick up a stale file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any

from seqrec.data.options import parse_columns, parse_sep
from seqrec.models.registry import DNC, MODEL_NAMES, NEURAL, SASREC, USER, entry

ITEM_KEYS = ("title", "artist_title", "mbid")
TIE_POLICIES = ("conservative", "optimistic", "expected")
USER_INTEGRATIONS = ("attentional",)
SPLITS = ("thesis", "leave_one_out", "global_time")  # evaluation protocols, docs/protocols.md
SASREC_ACTIVATIONS = ("relu", "gelu")
SASREC_NORMS = ("pre", "post")

# ---------------------------------------------------------------------------------------------
# What a setting is to a run's identity (docs/design.md, "A run's identity")

NO_EFFECT = "no-effect"  # a setting that cannot change a result (how it is computed, not what)
_UNSET = object()


def setting(default: Any, section: str = "", as_before: Any = _UNSET) -> Any:
    """A config field with what identity needs to know of it.

    `section`: the settings section that reads it (`seqrec.models.registry.SECTIONS`; "" for
    every model, `NO_EFFECT` for none): a run's id hashes only the sections its model reads.
    `as_before`: for a setting added after runs were made, the value that reproduces the
    behaviour from before it existed; at that value it is left out of every hash, so adding it
    renames no run and no cache file.
    """
    meta = {"section": section}
    if as_before is not _UNSET:
        meta["as_before"] = as_before
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DataConfig:
    """How raw events become a split (docs/protocol.md, "Preprocessing").

    The rows of the time-sorted log in `[start_frac, end_frac)` are cut into `chunks` equal
    consecutive chunks (as `numpy.array_split`). Inside a chunk, the rows are cut again into
    `filter_parts` consecutive parts, each filtered on its own (exp 2 filters two halves), and
    merged. `split` chooses the evaluation protocol (docs/protocols.md): `thesis`, per user with
    `n` events, train is `[int(train_start_frac * n), int(train_frac * n))`, val the next
    `int((n - int(train_frac * n)) / 2)` events, test the rest, windows inside each part;
    `leave_one_out`, per user the last event is the test target, the one before it the
    validation target, every earlier event after the first a training target (`train_frac`
    unused); `global_time`, the chunk's rows cut by the same fractions in time order, once for
    every user. Both of the latter predict each target from up to `seq_len - 1` preceding
    events of its user, padded when fewer.
    """

    # Item identity (data/lastfm.py). The thesis used `title` (track name alone), which merges
    # different tracks of the same name (defect 7); `--set item_key=title` reproduces it.
    item_key: str = "artist_title"
    start_frac: float = 0.0
    end_frac: float = 1.0
    chunks: int = 10
    filter_parts: int = 1
    threshold: int = 20  # drop items with play count <= threshold in the (part of the) chunk
    train_frac: float = 0.9
    train_start_frac: float = 0.0
    seq_len: int = 20  # window length L: L - 1 inputs and one target
    # Unseen-item drop (step 4) against the uncut train part [0, train_frac n) rather than the
    # (possibly shrunk) [train_start_frac n, train_frac n): exp 2 then evaluates every training
    # size on the same val and test events (see data/protocol.py).
    fixed_eval: bool = False
    split: str = setting("thesis", as_before="thesis")  # evaluation protocol: one of SPLITS
    # Reading the raw log (data/options.py, docs/data.md). `columns` "" recognises LastFM-1K
    # or a user,item,time log; else ROLE=COLUMN for user, item and time, by 0-based position
    # or header name: "user=0,item=1,time=3" (MovieLens u.data). `sep` "" detects the
    # separator; else tab, comma, semicolon, pipe, space or one character.
    columns: str = setting("", as_before="")
    sep: str = setting("", as_before="")

    def __post_init__(self) -> None:
        _check(self.split in SPLITS, f"split must be one of {SPLITS}, got {self.split!r}")
        if self.split != "thesis":
            # Exp 2's axis cuts each user's own train part; the other protocols have no
            # per-user train fraction to cut from.
            _check(self.train_start_frac == 0.0,
                   f"train_start_frac={self.train_start_frac} applies to split=thesis only "
                   f"(exp 2's axis), not to split={self.split}; set train_start_frac=0")
            _check(not self.fixed_eval,
                   f"fixed_eval applies to split=thesis only (exp 2), not to "
                   f"split={self.split}; set fixed_eval=false")
        _check(self.item_key in ITEM_KEYS,
               f"item_key must be one of {ITEM_KEYS}, got {self.item_key!r}")
        parse_columns(self.columns)  # each raises a ValueError that names the setting
        parse_sep(self.sep)
        _check(0.0 <= self.start_frac < self.end_frac <= 1.0,
               f"need 0 <= start_frac < end_frac <= 1, got {self.start_frac} and {self.end_frac}")
        _check(self.chunks >= 1, f"chunks must be >= 1, got {self.chunks}")
        _check(self.filter_parts >= 1, f"filter_parts must be >= 1, got {self.filter_parts}")
        _check(self.threshold >= 0, f"threshold must be >= 0, got {self.threshold}")
        _check(0.0 < self.train_frac < 1.0, f"train_frac must be in (0, 1), got {self.train_frac}")
        _check(0.0 <= self.train_start_frac < self.train_frac,
               f"train_start_frac must be in [0, train_frac), got {self.train_start_frac}")
        _check(self.seq_len >= 2,
               f"seq_len must be >= 2 (inputs plus a target), got {self.seq_len}")


@dataclass(frozen=True)
class ModelConfig:
    """Model sizes and switches (docs/protocol.md, "Models")."""

    name: str = "gru"
    embedding_size: int = setting(1000, NEURAL)  # -1: one-hot input (exp 3), size = items
    hidden_size: int = setting(1000, NEURAL)
    input_dropout: float = setting(0.2, NEURAL)
    user_dropout: float = setting(0.5, USER)
    user_integration: str = setting("attentional", USER)
    # DNC (Graves et al. 2016) with the Csordas and Schmidhuber (2019) switches.
    memory_cells: int = setting(128, DNC)
    word_size: int = setting(64, DNC)
    read_heads: int = setting(1, DNC)
    masked_lookup: bool = setting(True, DNC)
    dealloc_content: bool = setting(True, DNC)
    link_sharpness: bool = setting(True, DNC)
    # 0 disables; the thesis intended 5.0 but never applied it
    controller_clip: float = setting(5.0, DNC)
    # clamp of the raw interface vector (xdever/dnc: 20); 0 = off
    interface_clip: float = setting(0.0, DNC)
    # SASRec (Kang and McAuley 2018) baseline.
    attention_heads: int = setting(2, SASREC)
    attention_layers: int = setting(2, SASREC)
    # Width of SASRec's point-wise feed-forward layer (0: hidden_size) and its activation;
    # RecBole's SASRec defaults to 256 and gelu.
    sasrec_inner_size: int = setting(0, SASREC)
    sasrec_activation: str = setting("relu", SASREC)
    # Where SASRec's layer norms sit: "pre" (the paper, Kang and McAuley 2018: x + f(LN(x)),
    # a final LN) or "post" (RecBole's and BERT's: LN(x + f(x)), and an LN on the embeddings).
    sasrec_norm: str = setting("pre", SASREC)

    def __post_init__(self) -> None:
        _check(self.name in MODEL_NAMES, f"model must be one of {MODEL_NAMES}, got {self.name!r}")
        _check(self.embedding_size == -1 or self.embedding_size >= 1,
               f"embedding_size must be >= 1 or -1 (one-hot), got {self.embedding_size}")
        _check(self.hidden_size >= 1, f"hidden_size must be >= 1, got {self.hidden_size}")
        for name in ("memory_cells", "word_size", "read_heads", "attention_heads",
                     "attention_layers"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("input_dropout", "user_dropout"):
            _check(0.0 <= getattr(self, name) < 1.0,
                   f"{name} must be in [0, 1), got {getattr(self, name)}")
        _check(self.controller_clip >= 0,
               f"controller_clip must be >= 0 (0 disables it), got {self.controller_clip}")
        _check(self.interface_clip >= 0,
               f"interface_clip must be >= 0 (0 disables it), got {self.interface_clip}")
        _check(self.sasrec_inner_size >= 0,
               f"sasrec_inner_size must be >= 0 (0: hidden_size), got {self.sasrec_inner_size}")
        _check(self.sasrec_activation in SASREC_ACTIVATIONS,
               f"sasrec_activation must be one of {SASREC_ACTIVATIONS}, "
               f"got {self.sasrec_activation!r}")
        _check(self.sasrec_norm in SASREC_NORMS,
               f"sasrec_norm must be one of {SASREC_NORMS}, got {self.sasrec_norm!r}")
        _check(self.user_integration in USER_INTEGRATIONS,
               f"user_integration must be one of {USER_INTEGRATIONS}, "
               f"got {self.user_integration!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and the two-stage protocol (docs/protocol.md, "Training and evaluation")."""

    lr: float = setting(1e-3, NEURAL)
    batch_size: int = setting(1000, NEURAL)
    epochs: int = setting(25, NEURAL)
    patience: int = setting(1, NEURAL)
    weight_decay: float = setting(0.0, NEURAL)
    # L2 on the user layer W_u of the user-based GRU only
    user_weight_decay: float = setting(0.01, USER)
    grad_clip: float = setting(0.0, NEURAL)  # max gradient norm; 0 disables
    retrain: bool = True  # stage (b): fresh model on train + val for the kept epochs
    # Results do not depend on the evaluation batch (tests/test_metrics.py), so it is no part
    # of a run's identity.
    eval_batch_size: int = setting(1000, NO_EFFECT)
    amp: bool = setting(False, NEURAL)  # autocast on CUDA only
    compile: bool = setting(False, NEURAL)
    seed: int = 0
    # experiments run seeds seed, seed + 1, ..., seed + seeds - 1 (a run's own is always 1)
    seeds: int = setting(1, NO_EFFECT)

    def __post_init__(self) -> None:
        _check(0 < self.lr < float("inf"), f"lr must be a finite number > 0, got {self.lr}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.patience >= 0, f"patience must be >= 0, got {self.patience}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(self.user_weight_decay >= 0,
               f"user_weight_decay must be >= 0, got {self.user_weight_decay}")
        _check(self.grad_clip >= 0, f"grad_clip must be >= 0 (0 disables it), got "
               f"{self.grad_clip}")
        _check(self.eval_batch_size >= 1,
               f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        _check(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        _check(self.seeds >= 1, f"seeds must be >= 1, got {self.seeds}")
        # torch's generators take a seed as a signed 64-bit integer; a larger one stopped a
        # run with torch's raw "Overflow when unpacking long long".
        _check(self.seed + self.seeds - 1 < 2**63,
               f"seed + seeds - 1 must be below 2**63 (torch takes a seed as a 64-bit signed "
               f"integer), got seed={self.seed}, seeds={self.seeds}")


@dataclass(frozen=True)
class EvalConfig:
    """Metrics: cut-offs and the tie policy (docs/design.md, "Evaluation you can trust")."""

    ks: tuple[int, ...] = (1, 5, 10, 20)
    ties: str = "conservative"

    def __post_init__(self) -> None:
        _check(len(self.ks) > 0 and all(k >= 1 for k in self.ks), f"ks must be >= 1, got {self.ks}")
        _check(self.ties in TIE_POLICIES, f"ties must be one of {TIE_POLICIES}, got {self.ties!r}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one run's result."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


# ---------------------------------------------------------------------------------------------
# Profiles

def _smoke() -> RunConfig:
    """Small sizes: all four experiments on the built-in generated log on a CPU in minutes, with
    neural models that visibly learn (docs/validation.md, "The demo and the count baselines").

    - Up to 10 epochs with the thesis' early stopping (patience 1): stage (a) stops after 3 to
      7 epochs here and stage (b) retrains 2 to 6 (mostly 3). Before, 2 epochs with patience 1
      made the thesis' rule (`epochs_kept`) retrain one epoch: the model saw the data once and
      scored at POP's level. This is most of the change.
    - Sizes 64 / 64 (were 16 / 16): 0.03 to 0.05 more Recall@20 at the same epochs.
    - lr 0.01 with batch 256: a chunk of exp 4 (8,000 plays) gives only about 28 steps an epoch.
    - 4 chunks: exp 1 and exp 3 train on a quarter of the log (20,000 plays, about 17,600
      training windows), not half.
    """
    return RunConfig(
        data=DataConfig(chunks=4, threshold=2, seq_len=10),
        model=ModelConfig(embedding_size=64, hidden_size=64, memory_cells=8, word_size=8),
        train=TrainConfig(lr=0.01, batch_size=256, epochs=10, eval_batch_size=1024),
    )


PROFILES = {"thesis": RunConfig, "smoke": _smoke}
# The profile wherever none is named (CLI, grid requests, the notebook's Session, the demo): the
# one that runs anywhere. The notebook's config cell names its own.
DEFAULT_PROFILE = "smoke"


def profile(name: str) -> RunConfig:
    """The `RunConfig` of a named profile."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name]()


# ---------------------------------------------------------------------------------------------
# Overrides: `--set KEY=VALUE`, flat keys (unique across sections) or dotted (`model.name`)

_SECTIONS = ("data", "model", "train", "eval")


def valid_keys() -> list[str]:
    """Every key `--set` accepts (flat names)."""
    return sorted(f.name for s in _SECTIONS for f in fields(_section_type(s)))


def _section_type(section: str) -> type:
    sections = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig,
                "eval": EvalConfig}
    return sections[section]


def _find_key(key: str) -> tuple[str, str]:
    if "." in key:
        section, name = key.split(".", 1)
        if section in _SECTIONS and name in {f.name for f in fields(_section_type(section))}:
            return section, name
    else:
        for section in _SECTIONS:
            if key in {f.name for f in fields(_section_type(section))}:
                return section, key
    raise ValueError(f"unknown setting {key!r}; valid keys: {', '.join(valid_keys())}")


def setting_key(key: str) -> str:
    """The flat name of a flat or dotted `--set` key (`model.name` -> `name`); unknown keys
    raise, listing the valid ones."""
    return _find_key(key)[1]


def get_setting(cfg: RunConfig, key: str) -> Any:
    """The value of a setting by flat or dotted key: `get_setting(cfg, "seq_len")`."""
    section, name = _find_key(key)
    return getattr(getattr(cfg, section), name)


def parse_setting_value(key: str, text: str) -> Any:
    """`text` parsed by the type of the setting `key` (flat or dotted)."""
    section, name = _find_key(key)
    return parse_setting(_section_type(section), name, text, key)


def _parse_value(text: str, annotation: Any, key: str) -> Any:
    hint = annotation
    if isinstance(hint, str):
        hint = eval(hint, {"tuple": tuple, "int": int, "float": float, "str": str, "bool": bool})  # noqa: S307
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        if hint is str:
            return text
        if origin is tuple:
            (elem,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
            return tuple(elem(x) for x in text.replace(" ", "").split(",") if x)
        if origin in (typing.Union, types.UnionType):
            for arg in typing.get_args(hint):
                if arg is type(None):
                    if text.lower() in ("none", "null"):
                        return None
                    continue
                return _parse_value(text, arg, key)
    except ValueError:
        pass
    raise ValueError(f"setting {key}={text!r}: expected a value of type {hint}")


def parse_assignments(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`["KEY=VALUE", ...]` -> `{KEY: VALUE}` (strings; see `parse_setting` for the types)."""
    pairs = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        pairs[key.strip()] = value.strip()
    return pairs


def parse_setting(cls: type, name: str, text: str, key: str | None = None) -> Any:
    """`text` parsed by the type of dataclass `cls`'s field `name` (tuples as comma lists)."""
    return _parse_value(text, typing.get_type_hints(cls)[name], key or name)


def apply_overrides(cfg: RunConfig, overrides: dict[str, Any] | list[str]) -> RunConfig:
    """Replace settings by flat or dotted key.

    `overrides` is a dict of values, or a list of `KEY=VALUE` strings (values parsed by the
    field's type; tuples as comma lists). Unknown keys raise, listing the valid keys.
    """
    if isinstance(overrides, list):
        overrides = parse_assignments(overrides)
    by_section: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        section, name = _find_key(key)
        if isinstance(value, str):
            value = parse_setting(_section_type(section), name, value, key)
        by_section.setdefault(section, {})[name] = value
    return replace(cfg, **{s: replace(getattr(cfg, s), **v) for s, v in by_section.items()})


# ---------------------------------------------------------------------------------------------
# Serialisation and hashing

def to_dict(obj: Any) -> dict:
    """A JSON-ready dict of a (nested) config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(obj)))


def from_dict(d: dict) -> RunConfig:
    """Rebuild a `RunConfig` from `to_dict` output (e.g. a checkpoint or a run record)."""
    def build(cls: type, values: dict) -> Any:
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in fields(cls):
            if f.name in values:
                v = values[f.name]
                kwargs[f.name] = tuple(v) if typing.get_origin(hints[f.name]) is tuple else v
        return cls(**kwargs)

    return RunConfig(**{s: build(_section_type(s), d.get(s, {})) for s in _SECTIONS})


def identity(obj: Any, sections: tuple[str, ...] | None = None) -> dict:
    """The settings of config dataclass `obj` as a result depends on them, for hashing.

    Left out: settings added later at their as-before value (`setting(as_before=...)`),
    settings of `NO_EFFECT`, and, when `sections` is given, settings of a section not in it
    (settings of no section are always in). The one mechanism behind run ids and cache keys.
    """
    out = {}
    values = to_dict(obj)
    for f in fields(obj):
        section = f.metadata.get("section", "")
        if section == NO_EFFECT or (sections is not None and section and section not in sections):
            continue
        if "as_before" in f.metadata and getattr(obj, f.name) == f.metadata["as_before"]:
            continue
        out[f.name] = values[f.name]
    return out


def run_identity(cfg: RunConfig) -> dict:
    """What of `cfg` can change a run's result: every section's settings that its model reads
    (the registry row of `cfg.model.name` names its sections), by `identity`."""
    sections = entry(cfg.model.name).sections
    return {s: identity(getattr(cfg, s), sections) for s in _SECTIONS}


def config_hash(obj: Any, length: int = 12) -> str:
    """Stable hex digest of a config dataclass or a JSON-able value (sorted keys)."""
    value = to_dict(obj) if dataclasses.is_dataclass(obj) else obj
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]

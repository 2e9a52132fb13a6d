"""The models seqrec knows: one row per model (name, label, kind, class), without importing any.

This table is the one place that lists the models. The config's model names, the report's
labels and order, the CLI's choices and the trainer's choice between training and counting all
derive from it; the classes themselves are imported only when a model is built (`model_class`),
so a module that fails to import breaks only its own model, and `--help` stays fast.

Kinds (see `seqrec.models.contract`):
- `neural`: trained by gradient descent; its scores are logits (a cross-entropy of them is a
  loss); it has `loss` and `param_groups`.
- `count`: fitted once by counting (`fit`), no epochs; its scores are not logits.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

KINDS = ("neural", "count")

# Settings sections (`seqrec.config`): each model setting belongs to one, and each model reads
# the sections its row names; a run's identity hashes only those (docs/design.md, "A run's
# identity"). A setting of no section is read by every model (the model's name, the data, the
# seed, the metrics).
NEURAL = "neural"  # what every trained model reads: sizes, dropout, optimisation
USER = "user"  # the user integration of the user-based models (Donkers et al. 2017)
DNC = "dnc"  # the DNC's memory (Graves et al. 2016; Csordas and Schmidhuber 2019)
SASREC = "sasrec"  # SASRec's attention blocks (Kang and McAuley 2018)
SECTIONS = (NEURAL, USER, DNC, SASREC)


@dataclass(frozen=True)
class ModelEntry:
    """One model: its `--models` name, the label tables and legends show, its kind, where its
    class lives (`"module:Class"`), the settings sections it reads (`SECTIONS`) and whether it
    reads the user of each event."""

    name: str
    label: str
    kind: str
    target: str
    sections: tuple[str, ...] = ()
    user_based: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"model {self.name!r}: kind must be one of {KINDS}, got "
                             f"{self.kind!r}")
        unknown = set(self.sections) - set(SECTIONS)
        if unknown:
            raise ValueError(f"model {self.name!r}: unknown settings sections {sorted(unknown)};"
                             f" known: {SECTIONS}")
        if (self.kind == "neural") != (NEURAL in self.sections):
            raise ValueError(f"model {self.name!r}: a model reads the {NEURAL!r} section if "
                             f"and only if it is trained")

    @property
    def trained(self) -> bool:
        """True when the model is trained by epochs (and checkpointed), False when counted."""
        return self.kind == "neural"


# Order = the order of tables and legends.
MODELS: tuple[ModelEntry, ...] = (
    ModelEntry("gru", "GRU", "neural", "seqrec.models.gru:GRU", (NEURAL,)),
    ModelEntry("user_gru", "User-based GRU", "neural", "seqrec.models.user_gru:UserGRU",
               (NEURAL, USER), user_based=True),
    ModelEntry("dnc", "DNC", "neural", "seqrec.models.dnc:DNC", (NEURAL, DNC)),
    ModelEntry("user_dnc", "User-based DNC", "neural", "seqrec.models.dnc:UserDNC",
               (NEURAL, USER, DNC), user_based=True),
    ModelEntry("sasrec", "SASRec", "neural", "seqrec.models.sasrec:SASRec", (NEURAL, SASREC)),
    ModelEntry("pop", "POP", "count", "seqrec.models.baselines:PopBaseline"),
    ModelEntry("recent", "Recent", "count", "seqrec.models.baselines:RecentBaseline"),
    ModelEntry("markov", "Markov", "count", "seqrec.models.baselines:MarkovBaseline"),
    ModelEntry("item_knn", "Item-KNN", "count", "seqrec.models.baselines:ItemKNNBaseline"),
)
REGISTRY: dict[str, ModelEntry] = {m.name: m for m in MODELS}
MODEL_NAMES: tuple[str, ...] = tuple(REGISTRY)
NEURAL_MODELS: tuple[str, ...] = tuple(m.name for m in MODELS if m.kind == "neural")
BASELINE_MODELS: tuple[str, ...] = tuple(m.name for m in MODELS if m.kind == "count")
# (vanilla, user-based) twins: trained on the same splits, compared by paired tests.
TWINS: tuple[tuple[str, str], ...] = (("gru", "user_gru"), ("dnc", "user_dnc"))


def entry(name: str) -> ModelEntry:
    """The registry row of `name`; a ValueError listing the names when it is unknown."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    return REGISTRY[name]


def model_label(name: str) -> str:
    """Readable name of a model: `"user_gru"` -> `"User-based GRU"` (unknown names as given)."""
    return REGISTRY[name].label if name in REGISTRY else name


def model_order(names) -> list[str]:  # noqa: ANN001 - any iterable of names
    """Model names in table order: registry order first, then unknown names sorted."""
    present = {str(n) for n in names}
    known = [m for m in MODEL_NAMES if m in present]
    return known + sorted(present - set(known))


def model_class(name: str) -> type:
    """The class of model `name`, imported now; a clear error if unknown or not importable."""
    module_name, class_name = entry(name).target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        raise ValueError(f"model {name!r} needs module {module_name}, which is not installed "
                         f"in this version of seqrec; choose another model") from err
    return getattr(module, class_name)

"""What an experiment is, what a run of it is, and how its grid is built from a request.

- `Experiment`: one entry of the registry in `seqrec.experiments` (name, title, the setting it
  varies and its values per profile, the chunks and models it runs, its fixed settings, its
  table, figure and tested comparisons). The CLI, the report, the notebook and the runner
  iterate that registry; nothing else lists experiments.
- `GridRequest`: what a user asked for (experiment, profile, `--set` overrides, models,
  baselines, chunks, data). Stored in every run record, so the report can rebuild the grid.
- `RunSpec`: one run of a grid. Its label (`value`) is read from the settings it trains with, so
  a run can never be labelled with a value it did not use, and its id hashes the settings its
  model reads and the data's fingerprint (docs/design.md, "A run's identity").

How a grid is built (`build_grid`): for each variant (one, or one per scenario in the
validation experiment) the profile's settings, then the experiment's own fixed settings, then
the variant's, then the user's overrides, then one value of the axis, a model and a seed. An
override of the axis itself (`--set seq_len=10,20` for exp 4) replaces the axis' values; an
override of the model name is refused (choose models with `models`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from seqrec.config import (
    DEFAULT_PROFILE,
    RunConfig,
    apply_overrides,
    config_hash,
    get_setting,
    parse_assignments,
    parse_setting_value,
    profile,
    run_identity,
    setting_key,
)
from seqrec.data.source import DataRef
from seqrec.models.registry import entry, model_label, model_order
from seqrec.record import RunLabel

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from seqrec.record import RunRecord


# ---------------------------------------------------------------------------------------------
# What a user asks for

def normalise_overrides(overrides: Mapping[str, Any] | list | tuple) -> tuple[str, ...]:
    """`--set` overrides as a tuple of `KEY=VALUE` strings (a dict's values written out)."""
    if isinstance(overrides, Mapping):
        def text(v: Any) -> str:
            return ",".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)
        return tuple(f"{k}={text(v)}" for k, v in overrides.items())
    return tuple(f"{k}={v}" for k, v in parse_assignments(list(overrides)).items())


@dataclass(frozen=True)
class GridRequest:
    """A grid as asked for. `models` / `baselines` / `chunks` None mean the experiment's own;
    `data` None means the profile's built-in log (or the experiment's own data)."""

    experiment: str
    profile: str = DEFAULT_PROFILE
    overrides: tuple[str, ...] = ()
    models: tuple[str, ...] | None = None
    baselines: tuple[str, ...] | None = None
    chunks: tuple[int, ...] | None = None
    data: DataRef | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", normalise_overrides(self.overrides))
        for name in ("models", "baselines", "chunks"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))

    def data_ref(self) -> DataRef:
        return self.data if self.data is not None else DataRef.of(None, self.profile)

    def to_json(self) -> dict:
        return {"experiment": self.experiment, "profile": self.profile,
                "overrides": list(self.overrides),
                "models": None if self.models is None else list(self.models),
                "baselines": None if self.baselines is None else list(self.baselines),
                "chunks": None if self.chunks is None else list(self.chunks),
                "data": None if self.data is None else self.data.to_json()}

    @classmethod
    def from_json(cls, d: dict) -> GridRequest:
        data = d.get("data")
        return cls(experiment=d["experiment"], profile=d.get("profile", "smoke"),
                   overrides=tuple(d.get("overrides") or ()),
                   models=d.get("models"), baselines=d.get("baselines"), chunks=d.get("chunks"),
                   data=DataRef.from_json(data) if isinstance(data, dict) else None)


# ---------------------------------------------------------------------------------------------
# One run

@dataclass(frozen=True)
class RunSpec:
    """One run of a grid: a value of the experiment's axis for one model, chunk and seed, on one
    data source. `value` is read from `config`, never stored beside it."""

    experiment: str
    group: str
    model: str
    chunk: int
    seed: int
    axis: str
    config: RunConfig
    profile: str
    data: DataRef
    request: GridRequest | None = None

    @property
    def value(self) -> Any:
        return get_setting(self.config, self.axis)

    def id_key(self) -> dict:
        """What can change this run's result, hashed into `run_id`: the settings its model
        reads (`run_identity`: a setting of another model, or one added later at its as-before
        value, is not in it), the chunk, the grid group and the data's fingerprint."""
        return {"settings": run_identity(self.config), "chunk": self.chunk,
                "group": self.group, "data": self.data.fingerprint}

    @property
    def run_id(self) -> str:
        """Readable id plus a short hash of `id_key` (one folder per run). Pinned by
        tests/test_run_identity.py: a change of identity is a deliberate act."""
        value = "onehot" if (self.axis == "embedding_size" and self.value == -1) else self.value
        return (f"{self.group}-c{self.chunk}-{self.model}-{self.axis}{value}-s{self.seed}"
                f"-{config_hash(self.id_key(), 8)}")

    def label(self) -> RunLabel:
        return RunLabel(run_id=self.run_id, experiment=self.experiment, group=self.group,
                        model=self.model, chunk=self.chunk, seed=self.seed, axis=self.axis,
                        value=self.value, profile=self.profile)


# ---------------------------------------------------------------------------------------------
# The experiment type

@dataclass(frozen=True)
class Variant:
    """One part of a grid with its own data and settings (the validation experiment has one per
    scenario; the thesis' experiments have one). `points` None: the experiment's own values."""

    group: str
    data: DataRef
    settings: Mapping[str, Any] = field(default_factory=dict)
    points: tuple | None = None


Table = Callable[[list["RunRecord"]], "pd.DataFrame"]
FigureFn = Callable[..., "Figure"]  # (records, table=table) -> Figure
Comparisons = Callable[[list["RunRecord"]], "tuple[list[str], pd.DataFrame]"]


def _all_models(value: Any, models: tuple[str, ...]) -> tuple[str, ...]:
    return models


@dataclass(frozen=True)
class Experiment:
    """One experiment of the registry (`seqrec.experiments`).

    `axis` is the `--set` key it varies, `points[profile]` its values and `chunks[profile]` the
    chunks it runs; `settings[profile]` are fixed settings (flat `--set` keys) on top of the
    profile. `models_at(value, models)` picks the models run at one axis value (exp 3: one-hot
    input for the GRU only). `variants(request)` returns the grid's variants and the overrides
    left for `apply_overrides` (the validation experiment takes its own `synth.*` and
    `validate.*` keys). `table`, `figure` and `comparisons` turn its records into the report's
    table, figure and tested comparisons (sentences and a table).
    """

    name: str
    title: str
    description: str
    axis: str
    axis_label: str
    points: Mapping[str, tuple]
    chunks: Mapping[str, tuple[int, ...]]
    models: tuple[str, ...]
    baselines: tuple[str, ...]
    table: Table
    figure: FigureFn | None = None
    comparisons: Comparisons | None = None
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    models_at: Callable[[Any, tuple[str, ...]], tuple[str, ...]] = _all_models
    variants: Callable[[GridRequest], tuple[list[Variant], tuple[str, ...]]] | None = None
    thesis: bool = True  # one of the thesis' experiments (`--experiment all` runs these)
    # (file name, what it holds): a summary of the experiment's own in OUT/report that the
    # report points to when it exists
    summary: tuple[str, str] | None = None

    def default_variants(self, request: GridRequest) -> tuple[list[Variant], tuple[str, ...]]:
        if self.variants is not None:
            return self.variants(request)
        return [Variant(self.name, request.data_ref())], request.overrides


def describe_grid(labels: list[RunLabel], axis_label: str) -> str:
    """What a grid ran, in one sentence written from its runs (not the thesis' design): the
    axis' values, the chunks, the models and the seeds, e.g. "This grid (profile smoke): window
    length L 5, 10; chunks 0, 1; models GRU, DNC; 1 seed; 8 runs."."""
    if not labels:
        return "This grid has no runs."

    def listed(values: list, on_axis: bool = False) -> str:
        return ", ".join(_shown(v, axis if on_axis else "") for v in values)

    axis = labels[0].axis
    # Ordered as a grid orders them whatever order the labels come in (records load by path):
    # values ascending with exp 3's one-hot last, models in registry order.
    # A label read from a damaged record may hold a value of another type: numbers first,
    # then the rest as text, so sorting never compares a number with a string.
    values = sorted({label.value for label in labels},
                    key=lambda v: (axis == "embedding_size" and v == -1,
                                   not isinstance(v, (int, float)),
                                   v if isinstance(v, (int, float)) else str(v)))
    chunks = sorted({label.chunk for label in labels})
    models = [model_label(m) for m in model_order(label.model for label in labels)]
    seeds = len({label.seed for label in labels})
    profiles = ", ".join(sorted({label.profile for label in labels if label.profile}))
    axis_text = axis_label[:1].lower() + axis_label[1:]
    return (f"This grid (profile {profiles}): {axis_text} {listed(values, on_axis=True)}; "
            f"chunk{'s' if len(chunks) > 1 else ''} {listed(chunks)}; "
            f"models {', '.join(models)}; {seeds} seed{'s' if seeds > 1 else ''}; "
            f"{len(labels)} runs.")


def _shown(value: Any, axis: str) -> str:
    if axis == "embedding_size" and value == -1:
        return "one-hot"  # exp 3's embedding size for one-hot input
    return f"{value:g}" if isinstance(value, float) else str(value)


def split_axis(overrides: tuple[str, ...], axis: str) -> tuple[tuple | None, tuple[str, ...]]:
    """(the axis values an override gives, or None; the other overrides).

    `seq_len=10,20` for axis `seq_len` gives `(10, 20)`; each value is parsed by the setting's
    type. An override of the model name is refused: the grid sets it per run.
    """
    values, rest = None, []
    for item in overrides:
        key, text = item.split("=", 1)
        name = setting_key(key)
        if name == "name":
            raise ValueError("model.name is set per run by the experiment; choose the models "
                             "with --models (Session(models=...)) instead of --set name=...")
        if name == setting_key(axis):
            parts = [p for p in text.replace(" ", "").split(",") if p]
            if not parts:
                raise ValueError(f"--set {key}= needs at least one value")
            parsed = tuple(parse_setting_value(axis, p) for p in parts)
            if len(set(parsed)) != len(parsed):
                raise ValueError(f"--set {key}={text} repeats a value")
            values = parsed
        else:
            rest.append(item)
    return values, tuple(rest)


# The most runs one grid may plan. The thesis' largest grid is a few hundred runs (exp 1: 2
# thresholds x 10 chunks x 7 models; times the seeds); 100,000 runs is centuries of training at
# the thesis' sizes and hours of planning alone. A request over it (a typing slip such as
# seeds=100000000, or a crafted record, whose stored request the report rebuilds) is refused
# before a single spec is built.
MAX_GRID_RUNS = 100_000


class GridTooLarge(ValueError):
    """A request whose grid would have more than `MAX_GRID_RUNS` runs."""


def build_grid(exp: Experiment, request: GridRequest) -> list[RunSpec]:
    """The run specs of one experiment for `request`, in a fixed order (see module docstring).
    `GridTooLarge` when the grid would hold more than `MAX_GRID_RUNS` runs."""
    prof = request.profile
    base = profile(prof)
    if prof not in exp.points:
        raise ValueError(f"experiment {exp.name} has no grid for profile {prof!r}; choose one "
                         f"of {sorted(exp.points)}")
    base = apply_overrides(base, dict(exp.settings.get(prof, {})))
    variants, overrides = exp.default_variants(request)
    axis_values, rest = split_axis(overrides, exp.axis)
    models = exp.models if request.models is None else request.models
    baselines = exp.baselines if request.baselines is None else request.baselines
    for name in (*models, *baselines):
        entry(name)  # unknown names raise, listing the valid ones
    chunks = exp.chunks[prof] if request.chunks is None else request.chunks
    specs = []
    planned = 0
    for variant in variants:
        cfg_v = apply_overrides(apply_overrides(base, dict(variant.settings)), list(rest))
        points = axis_values or variant.points or exp.points[prof]
        # an upper bound (models_at may pick fewer), counted before anything is built
        planned += len(points) * len(chunks) * (len(models) + len(baselines)) * cfg_v.train.seeds
        if planned > MAX_GRID_RUNS:
            raise GridTooLarge(
                f"{exp.name}: the request plans up to {planned:,} runs, more than the "
                f"{MAX_GRID_RUNS:,} one grid may hold; lower seeds (now {cfg_v.train.seeds:,}), "
                f"the axis values or the chunks")
        for value in points:
            cfg = apply_overrides(cfg_v, {exp.axis: value})
            for chunk in chunks:
                if not 0 <= chunk < cfg.data.chunks:
                    continue  # an override of `chunks` may leave fewer chunks than the grid's
                for model in exp.models_at(value, tuple(models)) + tuple(baselines):
                    for s in range(cfg.train.seeds):
                        seed = cfg.train.seed + s
                        # seeds=1 in the run's own settings: the seed count is the grid's, so a
                        # grid of 3 seeds reuses the runs of a grid of 1.
                        run_cfg = replace(cfg, model=replace(cfg.model, name=model),
                                          train=replace(cfg.train, seed=seed, seeds=1))
                        specs.append(RunSpec(exp.name, variant.group, model, int(chunk), seed,
                                             exp.axis, run_cfg, prof, variant.data, request))
    return specs


def select(specs: list[RunSpec], only: list[str] | None = None,
           shard_spec: str | None = None) -> list[RunSpec]:
    """Filter by `only` patterns (globs or substrings of run ids) and a shard `I/N`."""
    if only:
        pats = [p if any(c in p for c in "*?[") else f"*{p}*" for p in only]
        specs = [s for s in specs if any(fnmatch.fnmatchcase(s.run_id, p) for p in pats)]
    if shard_spec:
        try:
            i, n = (int(x) for x in shard_spec.split("/"))
        except ValueError as e:
            raise ValueError(f"--shard must look like I/N (e.g. 0/3), got {shard_spec!r}") from e
        specs = shard(specs, i, n)
    return specs


def shard(specs: list[RunSpec], index: int, count: int) -> list[RunSpec]:
    """The specs of shard `index` of `count` (round robin: no overlap, no gap)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard must be I/N with 0 <= I < N, got {index}/{count}")
    return [s for i, s in enumerate(specs) if i % count == index]

"""The thesis' four experiments as declarative grids of run specs (THESIS_PROTOCOL.md).

A grid is a plain list of `RunSpec`s: which experiment and group, which model, chunk and seed,
the value of the experiment's axis, and the full `RunConfig`. Nothing here trains or reads data;
`seqrec.runner` turns specs into run records. The `thesis` profile gives the thesis' sizes (a GPU
job); `smoke` keeps every axis but fewer points, so all four experiments run on a CPU in minutes.

User overrides (`--set KEY=VALUE`) are applied last, on top of the grid point, so they win
everywhere: overriding an experiment's own axis (e.g. `seq_len` in exp 4) collapses that axis.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from seqrec.config import (
    BASELINE_MODELS,
    MODEL_NAMES,
    DataConfig,
    RunConfig,
    apply_overrides,
    config_hash,
    profile,
    to_dict,
)

EXPERIMENTS = ("exp1", "exp2", "exp3", "exp4")

# Count baselines are cheap and make every table honest (Ludewig and Jannach, UMUAI 2018).
DEFAULT_BASELINES = BASELINE_MODELS


@dataclass(frozen=True)
class RunSpec:
    """One run of a grid: a point of an experiment's axis for one model, chunk and seed."""

    experiment: str
    group: str
    model: str
    chunk: int
    seed: int
    axis: str
    value: Any
    config: RunConfig
    profile: str

    def id_key(self) -> dict:
        """Everything that makes this run differ from another: hashed into `run_id`."""
        return {"config": to_dict(self.config), "chunk": self.chunk, "group": self.group}

    @property
    def run_id(self) -> str:
        """Readable id plus a short hash of every setting (so two specs never share a folder)."""
        value = "onehot" if (self.axis == "embedding_size" and self.value == -1) else self.value
        return (f"{self.group}-c{self.chunk}-{self.model}-{self.axis}{value}-s{self.seed}"
                f"-{config_hash(self.id_key(), 8)}")

    def spec_dict(self) -> dict:
        """The JSON-ready description stored in the run record under `spec`."""
        return {
            "experiment": self.experiment,
            "group": self.group,
            "model": self.model,
            "chunk": self.chunk,
            "seed": self.seed,
            "axis": self.axis,
            "value": self.value,
            "profile": self.profile,
            "run_id": self.run_id,
        }


@dataclass(frozen=True)
class GridSizes:
    """The points of each axis: the thesis' values, or fewer for the smoke profile."""

    exp1_thresholds: tuple[tuple[str, int], ...] = (("exp1.1", 20), ("exp1.2", 2))
    exp1_chunks: tuple[int, ...] = tuple(range(10))
    exp2_cuts: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    exp3_sizes: tuple[int, ...] = (32, 64, 128, 256, 512, 1000, 2048, 4096, 8192, -1)
    exp3_chunks: tuple[int, ...] = (0, 1, 2)
    exp4_lengths: tuple[int, ...] = (5, 10, 20, 50)
    exp4_chunks: tuple[int, ...] = (0, 1, 2)


GRID_SIZES = {
    "thesis": GridSizes(),
    "smoke": GridSizes(
        exp1_thresholds=(("exp1.1", 5), ("exp1.2", 2)),
        exp1_chunks=(0, 1),
        exp2_cuts=(0.0, 0.5),
        exp3_sizes=(8, 32, -1),
        exp3_chunks=(0,),
        exp4_lengths=(5, 10),
        exp4_chunks=(0, 1, 2),
    ),
}


def _with(cfg: RunConfig, data: dict | None = None, model: dict | None = None,
          train: dict | None = None) -> RunConfig:
    return replace(
        cfg,
        data=replace(cfg.data, **(data or {})),
        model=replace(cfg.model, **(model or {})),
        train=replace(cfg.train, **(train or {})),
    )


def _specs(experiment: str, group: str, models: tuple[str, ...], chunks: tuple[int, ...],
           axis: str, points: list[tuple[Any, RunConfig]], base_profile: str,
           overrides: dict | list) -> list[RunSpec]:
    out = []
    for value, cfg in points:
        cfg = apply_overrides(cfg, overrides)
        for chunk in chunks:
            if chunk >= cfg.data.chunks:
                continue  # an override of `chunks` may leave fewer chunks than the grid names
            for model in models:
                if model not in MODEL_NAMES:
                    raise ValueError(f"unknown model {model!r}; choose from {MODEL_NAMES}")
                for s in range(cfg.train.seeds):
                    seed = cfg.train.seed + s
                    run_cfg = _with(cfg, model={"name": model}, train={"seed": seed})
                    out.append(RunSpec(experiment, group, model, chunk, seed, axis, value,
                                       run_cfg, base_profile))
    return out


def exp1(prof: str = "thesis", overrides: dict | list = (), models: tuple[str, ...] = (
        "gru", "user_gru"), baselines: tuple[str, ...] = DEFAULT_BASELINES) -> list[RunSpec]:
    """Exp 1 (preprocessing): 10 time chunks; threshold 20 (1.1) and 2 (1.2); embedding and
    hidden 1000."""
    base, sizes = profile(prof), GRID_SIZES[prof]
    if prof == "thesis":
        base = _with(base, model={"embedding_size": 1000, "hidden_size": 1000})
    specs = []
    for group, threshold in sizes.exp1_thresholds:
        cfg = _with(base, data={"threshold": threshold})
        specs += _specs("exp1", group, models + baselines, sizes.exp1_chunks, "threshold",
                        [(threshold, cfg)], prof, list(overrides))
    return specs


def exp2_data(cut: float, base: DataConfig) -> DataConfig:
    """Exp 2's data: rows 30%-50%, filtered in two halves, per-user train [p n, 0.95 n).

    `fixed_eval` is on so that every training size is tested on the same events (the thesis
    dropped val/test items unseen in the shrunk train, so its test set shrank with the training
    set; `--set fixed_eval=false` gives that behaviour back).
    """
    return replace(base, start_frac=0.3, end_frac=0.5, chunks=1, filter_parts=2,
                   train_frac=0.95, train_start_frac=cut, fixed_eval=True)


def exp2(prof: str = "thesis", overrides: dict | list = (), models: tuple[str, ...] = (
        "gru", "user_gru"), baselines: tuple[str, ...] = DEFAULT_BASELINES) -> list[RunSpec]:
    """Exp 2 (training-set size): train = [p n, 0.95 n) per user for p = 0, 0.1, ..., 0.9."""
    base, sizes = profile(prof), GRID_SIZES[prof]
    if prof == "thesis":
        base = _with(base, data={"threshold": 20}, model={"embedding_size": 1000,
                                                          "hidden_size": 1000})
    points = [(p, replace(base, data=exp2_data(p, base.data))) for p in sizes.exp2_cuts]
    return _specs("exp2", "exp2", models + baselines, (0,), "train_start_frac", points, prof,
                  list(overrides))


def exp3(prof: str = "thesis", overrides: dict | list = (), models: tuple[str, ...] = (
        "gru", "user_gru"), baselines: tuple[str, ...] = ()) -> list[RunSpec]:
    """Exp 3 (embedding size): best validation loss of stage (a); one-hot (-1) for the GRU only.

    Only the early-stopping stage matters here, so `retrain` is off (the thesis reports the best
    validation loss). Count baselines have no validation loss and are left out.
    """
    base, sizes = profile(prof), GRID_SIZES[prof]
    base = _with(base, train={"retrain": False})
    if prof == "thesis":
        base = _with(base, model={"hidden_size": 1000})
    specs = []
    for size in sizes.exp3_sizes:
        cfg = _with(base, model={"embedding_size": size})
        chosen = tuple(m for m in models if size != -1 or m == "gru")
        specs += _specs("exp3", "exp3", chosen + tuple(baselines), sizes.exp3_chunks,
                        "embedding_size", [(size, cfg)], prof, list(overrides))
    return specs


def exp4(prof: str = "thesis", overrides: dict | list = (), models: tuple[str, ...] = (
        "gru", "user_gru", "dnc", "user_dnc"), baselines: tuple[str, ...] = DEFAULT_BASELINES,
         ) -> list[RunSpec]:
    """Exp 4 (sequence length): last 30% of the data in 3 chunks; L = 5, 10, 20, 50; embedding
    and hidden 128."""
    base, sizes = profile(prof), GRID_SIZES[prof]
    base = _with(base, data={"start_frac": 0.7, "end_frac": 1.0, "chunks": 3})
    if prof == "thesis":
        base = _with(base, data={"threshold": 20}, model={"embedding_size": 128,
                                                          "hidden_size": 128})
    points = [(L, _with(base, data={"seq_len": L})) for L in sizes.exp4_lengths]
    return _specs("exp4", "exp4", models + baselines, sizes.exp4_chunks, "seq_len", points,
                  prof, list(overrides))


GRIDS = {"exp1": exp1, "exp2": exp2, "exp3": exp3, "exp4": exp4}


def grid(experiment: str, prof: str = "smoke", overrides: dict | list = (),
         baselines: tuple[str, ...] | None = None,
         models: tuple[str, ...] | None = None) -> list[RunSpec]:
    """The run specs of one experiment (or `all`), in a fixed order.

    `models` and `baselines` replace the experiment's own lists when given (exp 3 never takes
    count baselines: they have no validation loss).
    """
    names = EXPERIMENTS if experiment == "all" else (experiment,)
    specs = []
    for name in names:
        if name not in GRIDS:
            raise ValueError(f"unknown experiment {name!r}; choose one of "
                             f"{', '.join(EXPERIMENTS)} or all")
        kwargs: dict = {}
        if baselines is not None and name != "exp3":
            kwargs["baselines"] = tuple(baselines)
        if models is not None:
            kwargs["models"] = tuple(models)
        specs += GRIDS[name](prof, overrides, **kwargs)
    return specs


def shard(specs: list[RunSpec], index: int, count: int) -> list[RunSpec]:
    """The specs of shard `index` of `count` (round robin: no overlap, no gap)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard must be I/N with 0 <= I < N, got {index}/{count}")
    return [s for i, s in enumerate(specs) if i % count == index]

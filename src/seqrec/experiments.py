"""The registry of experiments: the thesis' four ablations and the validation experiment.

Each entry is an `Experiment` (seqrec/experiment.py): the setting it varies and its values per
profile, its chunks, models and fixed settings, and its table, figure and tested comparisons.
The `thesis` profile gives the thesis' sizes (docs/protocol.md, "Experiments"; a GPU job);
`smoke` keeps every axis with fewer points, so all experiments run on a CPU in minutes.

A description states the experiment's design (with the thesis' own grid in words); what a
particular grid ran (its values, chunks, models, seeds) is written from its runs by
`seqrec.experiment.describe_grid`, for the notebook's headings and the report's sections.

Adding an experiment: one entry in `EXPERIMENTS` below, and its table function (a generic one
such as `table_exp2` may serve) in `seqrec/report/tables.py`. The CLI's choices, the report's
sections, the notebook's loop and the runner read this registry.
"""

from __future__ import annotations

from functools import partial

from seqrec.data.source import DataRef
from seqrec.experiment import Experiment, GridRequest, RunSpec, build_grid, select
from seqrec.models.registry import BASELINE_MODELS
from seqrec.report.claims import (
    Claim,
    cheap_settings,
    embedding_effect,
    length_relation,
    long_range_gains,
    recency_curve,
    threshold_twin_gain,
    twin_gains,
)
from seqrec.report.figures import figure_exp1, figure_exp2, figure_exp3, figure_exp4
from seqrec.report.stats import twin_comparisons
from seqrec.report.tables import table_exp1, table_exp2, table_exp3, table_exp4
from seqrec.report.validation import figure_validation, validation_comparisons, validation_table
from seqrec.validate import DEFAULT_BASELINES as VALIDATION_BASELINES
from seqrec.validate import DEFAULT_MODELS as VALIDATION_MODELS
from seqrec.validate import SIZES as VALIDATION_SIZES
from seqrec.validate import validation_variants

RECURRENT = ("gru", "user_gru")
ONE_HOT = -1  # exp 3's embedding size for one-hot input


def _one_hot_for_gru_only(value: int, models: tuple[str, ...]) -> tuple[str, ...]:
    # The thesis ran the one-hot input for the vanilla GRU only.
    return tuple(m for m in models if value != ONE_HOT or m == "gru")


_RECALL = ("recall@20", "recall@1")

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment(
        name="exp1",
        title="Exp 1: preprocessing (time chunks, item play-count threshold)",
        description="The whole log in equal consecutive time chunks; in each, items played "
                    "at most `threshold` times are dropped (the thesis: 10 chunks, thresholds "
                    "20, exp 1.1, and 2, exp 1.2). GRU and user-based GRU; Recall@20 and "
                    "Recall@1 per chunk.",
        axis="threshold", axis_label="Item play-count threshold",
        points={"thesis": (20, 2), "smoke": (5, 2)},
        chunks={"thesis": tuple(range(10)), "smoke": (0, 1)},
        models=RECURRENT, baselines=BASELINE_MODELS,
        settings={"thesis": {"embedding_size": 1000, "hidden_size": 1000}},
        table=table_exp1, figure=figure_exp1,
        comparisons=partial(twin_comparisons, experiment="exp1", metrics=_RECALL),
    ),
    Experiment(
        name="exp2",
        title="Exp 2: training-set size",
        description="Rows 30% to 50% of the time-sorted log, filtered in two halves; per user "
                    "the last 5% are validation and test, and training uses [p n, 0.95 n) "
                    "(the thesis: p = 0, 0.1, ..., 0.9). Every p is tested on the same events "
                    "(fixed_eval; the thesis' test set shrank with its training set).",
        axis="train_start_frac", axis_label="Train start p",
        points={"thesis": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
                "smoke": (0.0, 0.5)},
        chunks={"thesis": (0,), "smoke": (0,)},
        models=RECURRENT, baselines=BASELINE_MODELS,
        settings={p: {"start_frac": 0.3, "end_frac": 0.5, "chunks": 1, "filter_parts": 2,
                      "train_frac": 0.95, "fixed_eval": True, **extra}
                  for p, extra in (("thesis", {"threshold": 20, "embedding_size": 1000,
                                               "hidden_size": 1000}), ("smoke", {}))},
        table=table_exp2, figure=figure_exp2,
        comparisons=partial(twin_comparisons, experiment="exp2", metrics=_RECALL),
    ),
    Experiment(
        name="exp3",
        title="Exp 3: embedding size",
        description="Best validation loss of the GRU and the user-based GRU against the item "
                    "embedding size and one-hot input for the GRU, on chunks of exp 1 (the "
                    "thesis: sizes 32 to 8192, hidden size 1000, the first three chunks). Only "
                    "the early-stopping stage matters, so the retraining stage is off; count "
                    "baselines have no validation loss.",
        axis="embedding_size", axis_label="Embedding size",
        points={"thesis": (32, 64, 128, 256, 512, 1000, 2048, 4096, 8192, ONE_HOT),
                "smoke": (8, 32, ONE_HOT)},
        chunks={"thesis": (0, 1, 2), "smoke": (0,)},
        models=RECURRENT, baselines=(),
        settings={"thesis": {"retrain": False, "hidden_size": 1000},
                  "smoke": {"retrain": False}},
        models_at=_one_hot_for_gru_only,
        table=table_exp3, figure=figure_exp3,
        comparisons=partial(twin_comparisons, experiment="exp3", metrics=("best_val_loss",),
                            higher_is_better=False),
    ),
    Experiment(
        name="exp4",
        title="Exp 4: window length, overall and per popularity third",
        description="The last 30% of the log in 3 chunks; windows of several lengths (the "
                    "thesis: 5, 10, 20, 50 on all three chunks); GRU and DNC, each vanilla and "
                    "user-based; overall and per popularity third of the target item, mean "
                    "and standard deviation over the chunks.",
        axis="seq_len", axis_label="Window length L",
        points={"thesis": (5, 10, 20, 50), "smoke": (5, 10)},
        # smoke: two of the three chunks (the DNCs take most of the demo's minutes)
        chunks={"thesis": (0, 1, 2), "smoke": (0, 1)},
        models=("gru", "user_gru", "dnc", "user_dnc"), baselines=BASELINE_MODELS,
        settings={p: {"start_frac": 0.7, "end_frac": 1.0, "chunks": 3, **extra}
                  for p, extra in (("thesis", {"threshold": 20, "embedding_size": 128,
                                               "hidden_size": 128}), ("smoke", {}))},
        table=table_exp4, figure=figure_exp4,
        comparisons=partial(twin_comparisons, experiment="exp4", metrics=_RECALL),
    ),
    Experiment(
        name="validate",
        title="Validation: planted taste and long-range structure found, or not",
        description="Generated logs with a planted user taste, a planted long-range "
                    "dependency, or neither; a short window that cannot see the recalled play "
                    "and a long one that can (docs/validation.md).",
        axis="seq_len", axis_label="Window length L",
        points={p: (s.short_len, s.long_len) for p, s in VALIDATION_SIZES.items()},
        chunks={p: (0,) for p in VALIDATION_SIZES},
        models=VALIDATION_MODELS, baselines=VALIDATION_BASELINES,
        variants=validation_variants,
        table=validation_table, figure=figure_validation, comparisons=validation_comparisons,
        thesis=False,
        summary=("validation.md", "The checks of the validation experiment (planted effects "
                                  "found or not)"),
    ),
)}

# The thesis' conclusions (its abstract; docs/protocol.md, "The thesis' conclusions"), each read
# from experiments of this registry and tested by seqrec.report.claims.
CLAIMS: tuple[Claim, ...] = (
    Claim("1", "the user matters little",
          "Adding the user to the GRU (and to the DNC) matters less than earlier work reported: "
          "the user-based models gain little over their vanilla twins.",
          reads=("exp1", "exp2", "exp4"), kind="no_gain", comparisons=twin_gains),
    Claim("2", "long-term dependencies matter little",
          "Long-term dependencies do not seem important: the DNC does not beat the GRU, and "
          "longer windows do not beat shorter ones.",
          reads=("exp4",), kind="no_gain", comparisons=long_range_gains),
    Claim("3", "the most recent data matters most",
          "Shrinking the training set while keeping it next to the test period costs Recall "
          "less than in proportion: most useful information is the most recent.",
          reads=("exp2",), kind="gain", comparisons=recency_curve),
    Claim("4", "no relation of window length and scores",
          "There is no clear relation between the window length and the scores, overall or "
          "within any popularity third.",
          reads=("exp4",), kind="no_effect", comparisons=length_relation),
    Claim("5", "less data and shorter windows are cheap",
          "If runtime is key, use less data and shorter windows: they save training time and "
          "cost little accuracy.",
          reads=("exp2", "exp4"), kind="no_loss", comparisons=cheap_settings),
    Claim("exp1", "the threshold does not change the user's gain",
          "The item play-count threshold (2 instead of 20) does not change what the user adds "
          "to the GRU: preprocessing does not explain the gains earlier work reported.",
          reads=("exp1",), kind="no_effect", comparisons=threshold_twin_gain),
    Claim("exp3", "the embedding size matters little",
          "The size of the item embedding matters little: the largest and the smallest "
          "embedding score alike.",
          reads=("exp3",), kind="no_effect", comparisons=embedding_effect),
)
# The validation experiment's planted truth reads claims 1 and 2 on its scenarios
# (seqrec.report.claims.planted_claims; docs/validation.md).
PLANTED_CLAIMS: tuple[str, ...] = ("1", "2")


def _check_claims() -> None:
    """Every claim reads experiments of this registry (a renamed experiment fails here)."""
    for claim in CLAIMS:
        unknown = [name for name in claim.reads if name not in EXPERIMENTS]
        if unknown:
            raise ValueError(f"claim {claim.key} reads {unknown}, which are not in EXPERIMENTS")


_check_claims()

THESIS_EXPERIMENTS: tuple[str, ...] = tuple(n for n, e in EXPERIMENTS.items() if e.thesis)
CHOICES: tuple[str, ...] = (*EXPERIMENTS, "all")


def experiment(name: str) -> Experiment:
    """The registry entry `name`; a ValueError listing the names when it is unknown."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(CHOICES)}")
    return EXPERIMENTS[name]


def names(selection: str) -> tuple[str, ...]:
    """`all` -> the thesis' experiments; a name -> itself (checked)."""
    return THESIS_EXPERIMENTS if selection == "all" else (experiment(selection).name,)


def requests(selection: str, **kwargs) -> list[GridRequest]:  # noqa: ANN003 - GridRequest fields
    """One `GridRequest` per experiment of `selection` (`all` or a name)."""
    return [GridRequest(name, **kwargs) for name in names(selection)]


def grid(selection: str, prof: str = "smoke", overrides=(), baselines=None,  # noqa: ANN001
         models=None, data=None, chunks=None, only: list[str] | None = None,  # noqa: ANN001
         shard_spec: str | None = None) -> list[RunSpec]:
    """The run specs of one experiment (or `all`), in a fixed order: the one planner of a grid
    (CLI, notebook, validation and benchmarks all call it).

    `data` is a path, a `DataRef` or None (the profile's built-in log); `only` (globs or
    substrings of run ids) and `shard_spec` (`I/N`) select from the grid (`select`).
    """
    ref = data if isinstance(data, DataRef) or data is None else DataRef.file(data)
    reqs = requests(selection, profile=prof, overrides=overrides, models=models,
                    baselines=baselines, chunks=chunks, data=ref)
    specs = [spec for req in reqs for spec in build_grid(EXPERIMENTS[req.experiment], req)]
    return select(specs, only, shard_spec)

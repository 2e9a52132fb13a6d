"""Validation experiment: generated data with planted structure switched on and off.

Does the pipeline find an effect where one is planted, and none where none is? Three scenarios
share one generator (`seqrec.data.synthetic`) and differ only in two knobs:

- `taste`: fresh draws come almost always from a few favourite artists per user
  (`SynthConfig.taste` high, `taste_artists` small), no long-range dependency. Expected: the
  user-based models beat their vanilla twins, most of all with short windows, where the window
  alone shows too few plays to reveal the user's favourites.
- `long_range`: with probability `long_range` a play recalls `partner(track K plays back)`,
  `K = long_range_gap`; no taste. Expected: a window long enough to hold the recalled play
  (`L > K + 1`: `L - 1` inputs reach back `L - 1 >= K` plays) beats one that cannot
  (`L < K + 1`).
- `neither`: both off. Expected: no difference beyond seed noise.

Album order and replays are the same in all three; the replay window is kept inside the short
window, so a longer window gains nothing from replays (that would confound the long-range check).

The experiment is one entry of the registry (`seqrec.experiments`, name `validate`) whose grid
has one variant per scenario (`validation_variants`), each with its own generated log (under
OUT/data, named by its `SynthConfig` hash, which is also the data fingerprint in its run ids).
Its runs are ordinary runs of `seqrec.runner` with `group="validate-<scenario>"` and
`axis="seq_len"`; `seqrec.report.validation` summarises them. `--set synth.<field>=...` sets a
generator knob and `--set validate.<field>=...` a field of `ValidationSize`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from seqrec.config import parse_assignments, parse_setting
from seqrec.data.source import DataRef
from seqrec.data.synthetic import SynthConfig
from seqrec.experiment import GridRequest, Variant, normalise_overrides

EXPERIMENT = "validate"
SCENARIOS = ("taste", "long_range", "neither")
DEFAULT_MODELS = ("gru", "user_gru", "dnc")
DEFAULT_BASELINES = ("pop", "recent", "markov")


@dataclass(frozen=True)
class ValidationSize:
    """One size of the validation experiment: the shared generator, the planted strengths,
    the two window lengths and the training settings.

    `synth` holds the structure all scenarios share; its `taste` and `long_range` are replaced
    per scenario by `taste` / 0 and `long_range` / 0. `short_len < long_range_gap + 1 <
    long_len`: the short window cannot see the recalled play, the long one can. `settings` are
    `apply_overrides` pairs put on the profile's `RunConfig` before the user's `--set`.
    """

    synth: SynthConfig
    taste: float
    long_range: float
    short_len: int
    long_len: int
    settings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        gap = self.synth.long_range_gap
        if not 2 <= self.short_len < gap + 1 < self.long_len:
            raise ValueError(
                f"validation windows must satisfy 2 <= short_len < long_range_gap + 1 < long_len,"
                f" got short_len={self.short_len}, long_range_gap={gap}, "
                f"long_len={self.long_len}; change validate.short_len, validate.long_len or "
                f"synth.long_range_gap")
        if self.synth.replay_window > self.short_len - 1:
            raise ValueError(
                f"synth.replay_window ({self.synth.replay_window}) must be at most short_len - 1"
                f" ({self.short_len - 1}), or replays alone would favour the long window")


SIZES = {
    # CPU, minutes: a small catalogue (about 120 tracks), so that a GRU learns the partner of
    # every track in a few epochs; a gap of 5 plays; windows of 4 (3 inputs) and 10 (9 inputs).
    # Eight epochs at a high learning rate, evaluated at the best validation epoch without the
    # retraining stage: a third of the protocol's time (early stopping with patience 1 often
    # stopped at epoch 2 or 3 here, before the long-range mapping was learnt).
    "smoke": ValidationSize(
        synth=SynthConfig(seed=0, n_rows=8_000, n_users=12, n_artists=20, n_tracks=120,
                          taste_artists=3, replay_window=3, long_range_gap=5),
        taste=0.95, long_range=0.5, short_len=4, long_len=10,
        settings={"chunks": 1, "threshold": 2, "embedding_size": 32, "hidden_size": 64,
                  "memory_cells": 16, "word_size": 16, "lr": 0.01, "batch_size": 64,
                  "epochs": 8, "patience": 0, "retrain": False, "eval_batch_size": 1024,
                  "seeds": 3},
    ),
    # GPU: the generator's demo size; exp 4's model size; the gap of 30 sits between exp 4's
    # windows of 20 and 50.
    "thesis": ValidationSize(
        synth=SynthConfig(seed=0, n_rows=300_000, n_users=100, taste_artists=3,
                          replay_window=10, long_range_gap=30),
        taste=0.95, long_range=0.5, short_len=20, long_len=50,
        settings={"chunks": 1, "threshold": 5, "embedding_size": 128, "hidden_size": 128,
                  "batch_size": 256, "seeds": 3},
    ),
}


def scenario_synth(scenario: str, size: ValidationSize) -> SynthConfig:
    """The generator settings of one scenario: the shared ones with taste / long range on or off.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown validation scenario {scenario!r}; choose from {SCENARIOS}")
    return replace(size.synth, taste=size.taste if scenario == "taste" else 0.0,
                   long_range=size.long_range if scenario == "long_range" else 0.0)


def split_overrides(overrides: dict | list | tuple) -> tuple[dict, dict, dict]:
    """Split `--set` pairs into (synth.*, validate.*, run settings).

    `synth.<field>` sets a `SynthConfig` field, `validate.<field>` a `ValidationSize` field
    (`taste`, `long_range`, `short_len`, `long_len`); everything else goes to `apply_overrides`.
    Values of the first two are parsed by the type of the field's current value.
    """
    pairs = overrides if isinstance(overrides, dict) else parse_assignments(list(overrides))
    synth, own, rest = {}, {}, {}
    for key, value in pairs.items():
        if key.startswith("synth."):
            synth[key[len("synth."):]] = value
        elif key.startswith("validate."):
            own[key[len("validate."):]] = value
        else:
            rest[key] = value
    return synth, own, rest


def _typed(obj: Any, prefix: str, values: dict, allowed: tuple[str, ...]) -> dict:
    """`values` converted to the types of `obj`'s fields; unknown names raise."""
    out = {}
    for name, value in values.items():
        if name not in allowed:
            raise ValueError(f"unknown setting {prefix}.{name}; valid: "
                             f"{', '.join(f'{prefix}.{a}' for a in allowed)}")
        out[name] = (parse_setting(type(obj), name, value, f"{prefix}.{name}")
                     if isinstance(value, str) else value)
    return out


def validation_size(prof: str = "smoke", overrides: dict | list | tuple = (),
                    size: ValidationSize | None = None) -> tuple[ValidationSize, dict]:
    """The profile's `ValidationSize` (or `size`) with `synth.*` / `validate.*` overrides, and
    the remaining run-setting overrides."""
    if size is None:
        if prof not in SIZES:
            raise ValueError(f"unknown profile {prof!r} for validate; choose one of "
                             f"{sorted(SIZES)}")
        size = SIZES[prof]
    synth, own, rest = split_overrides(overrides)
    synth_fields = tuple(f.name for f in fields(SynthConfig))
    own_fields = ("taste", "long_range", "short_len", "long_len")
    size = replace(size, synth=replace(size.synth, **_typed(size.synth, "synth", synth,
                                                            synth_fields)),
                   **_typed(size, "validate", own, own_fields))
    if "seq_len" in rest:
        raise ValueError("seq_len is the validation experiment's own axis; set "
                         "validate.short_len and validate.long_len instead")
    return size, rest


def validation_variants(request: GridRequest) -> tuple[list[Variant], tuple[str, ...]]:
    """The validation grid's variants, one per scenario, and the overrides left for the runs.

    Each scenario has its own generated log (its `DataRef` fingerprint is the generator's
    settings, so runs on differently generated logs never share a run id), the size's run
    settings and the two window lengths as its axis values. Used as the registry entry's
    `variants` (seqrec/experiments.py).
    """
    size, rest = validation_size(request.profile, request.overrides)
    variants = [Variant(group=f"{EXPERIMENT}-{scenario}",
                        data=DataRef.generated(scenario_synth(scenario, size)),
                        settings=dict(size.settings), points=(size.short_len, size.long_len))
                for scenario in SCENARIOS]
    return variants, normalise_overrides(rest)


def scenario_of(group: str) -> str:
    """The scenario of a validation run's group: `validate-taste` -> `taste`."""
    return group.removeprefix(f"{EXPERIMENT}-")


def describe_size(size: ValidationSize) -> str:
    """One sentence on what was planted, for the summary."""
    s = size.synth
    return (f"Generated logs of {s.n_rows:,} plays by {s.n_users} users ({s.n_tracks:,} tracks "
            f"of {s.n_artists} artists, album order {s.album_order}, replays {s.replay} within "
            f"the last {s.replay_window} plays). Planted: taste {size.taste} with "
            f"{s.taste_artists} favourite artists per user (scenario taste); a recall of the "
            f"track {s.long_range_gap} plays back with probability {size.long_range} (scenario "
            f"long_range); neither. Windows: L = {size.short_len} (cannot see the recalled play) "
            f"and L = {size.long_len} (can).")

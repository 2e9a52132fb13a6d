"""Summary of the validation experiment (`seqrec.validate`): table, checks, figure, report.

Every run of `experiment == "validate"` belongs to a scenario (its group `validate-<scenario>`)
and a window length (its axis value). The checks compare paired results: two runs pair up when
they share chunk and seed, so the variation between seeds cancels (`paired_test`).

We call a difference an *effect* when it holds at the 5% level and is at least `MIN_EFFECT`
Recall@20: with few seeds and near-deterministic training, a paired test can call a difference
of a thousandth significant, and such a difference is not what the scenarios plant.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from seqrec.io import atomic_write, atomic_write_text
from seqrec.models.registry import TWINS
from seqrec.report.coverage import TEST_WINDOWS, WINDOWS_KEY
from seqrec.report.records import metric_label, model_label, model_order, runs_frame
from seqrec.report.render import STD_SUFFIX, to_markdown
from seqrec.report.stats import ALPHA, paired_test

EXPERIMENT = "validate"
METRIC = "recall@20"
MIN_EFFECT = 0.01  # smallest Recall@20 difference we call an effect (one percentage point)
LONG_RANGE_MODELS = ("gru", "dnc")  # window length matters to these (thesis exp 4)
CHECK_COLUMNS = ["Scenario", "Comparison", "Window length", "Expected", "Pairs",
                 "Mean difference", "p", "Test", "Effect", "Verdict"]


def validation_runs(records: list) -> pd.DataFrame:
    """`runs_frame` rows of the validation experiment, with `scenario` and `L` columns."""
    runs = runs_frame(records)
    if runs.empty or "experiment" not in runs.columns:
        return pd.DataFrame(columns=["scenario", "model", "L", "chunk", "seed", METRIC])
    runs = runs[runs["experiment"] == EXPERIMENT].reset_index(drop=True)
    scenario = runs["group"].astype(str).str.removeprefix(f"{EXPERIMENT}-")
    length = pd.to_numeric(runs["value"], errors="coerce")
    return runs.assign(scenario=scenario, L=length)


def _scenarios(runs: pd.DataFrame) -> list[str]:
    order = ("taste", "long_range", "neither")
    present = set(runs["scenario"].dropna())
    return [s for s in order if s in present] + sorted(present - set(order))


def validation_table(records: list, metric: str = METRIC) -> pd.DataFrame:
    """Mean and sample std over seeds of `metric` per scenario x model x window length.

    Columns: Scenario, Model, Window length, `<Metric>`, `<Metric> std`, Test windows (the
    fewest of the cell's runs), Runs.
    """
    label = metric_label(metric)
    columns = ["Scenario", "Model", "Window length", label, label + STD_SUFFIX, TEST_WINDOWS,
               "Runs"]
    runs = validation_runs(records)
    rows = []
    for scenario in _scenarios(runs):
        mine = runs[runs["scenario"] == scenario]
        for model in model_order(mine["model"].dropna()):
            for length in sorted(mine.loc[mine["model"] == model, "L"].dropna().unique()):
                cell = mine[(mine["model"] == model) & (mine["L"] == length)]
                v = cell[metric].dropna().to_numpy(float) if metric in cell else np.zeros(0)
                n = cell[WINDOWS_KEY].dropna() if WINDOWS_KEY in cell else pd.Series([])
                rows.append([scenario, model_label(model), int(length),
                             float(v.mean()) if len(v) else math.nan,
                             float(v.std(ddof=1)) if len(v) > 1 else math.nan,
                             float(n.min()) if len(n) else math.nan, len(cell)])
    return pd.DataFrame(rows, columns=columns)


def _paired(part_a: pd.DataFrame, part_b: pd.DataFrame, metric: str
            ) -> tuple[np.ndarray, np.ndarray]:
    """Values of `metric` of two sets of runs joined on (chunk, seed)."""
    keys = ["chunk", "seed"]

    def side(p: pd.DataFrame) -> pd.DataFrame:
        if metric not in p.columns:
            return pd.DataFrame(columns=[*keys, metric])
        return p[[*keys, metric]].dropna().drop_duplicates(subset=keys, keep="last")

    both = side(part_a).merge(side(part_b), on=keys, suffixes=("_a", "_b"))
    return both[f"{metric}_a"].to_numpy(float), both[f"{metric}_b"].to_numpy(float)


def _check(scenario: str, a: str, b: str, length: str, expected: str, x: np.ndarray,
           y: np.ndarray, metric: str) -> dict:
    """One comparison of runs `a` against runs `b`; `expected` is "a > b", "none" or "-"."""
    t = paired_test(x, y, a, b, metric)
    effect = bool(t.n >= 2 and t.p_value < ALPHA and abs(t.mean_diff) >= MIN_EFFECT)
    if t.n < 2:
        verdict = "not tested (fewer than 2 pairs)"
    elif expected == "a > b":
        verdict = "found" if effect and t.mean_diff > 0 else "NOT found"
    elif expected == "none":
        verdict = "none, as expected" if not effect else "UNEXPECTED effect"
    else:
        verdict = "observed" if effect else "no effect"
    return {"Scenario": scenario, "Comparison": f"{a} vs {b}", "Window length": length,
            "Expected": {"a > b": f"{a} > {b}", "none": "no difference"}.get(expected, "-"),
            "Pairs": t.n, "Mean difference": t.mean_diff, "p": t.p_value, "Test": t.test,
            "Effect": effect, "Verdict": verdict}


def validation_checks(records: list, metric: str = METRIC) -> pd.DataFrame:
    """The planted-effect checks, one row per comparison (columns `CHECK_COLUMNS`).

    - user-based vs vanilla twin at every window length, in every scenario: expected better in
      `taste`, no difference in `neither`, no expectation in `long_range`;
    - long vs short window for the GRU and the DNC, in every scenario: expected better in
      `long_range`, no difference in `neither`;
    - DNC vs GRU at each window length in `long_range` (reported, no expectation).
    """
    runs = validation_runs(records)
    rows = []
    for scenario in _scenarios(runs):
        mine = runs[runs["scenario"] == scenario]
        lengths = sorted(mine["L"].dropna().unique())
        models = set(mine["model"].dropna())
        twin_expect = {"taste": "a > b", "neither": "none"}.get(scenario, "-")
        for vanilla, user in TWINS:
            if {vanilla, user} <= models:
                for length in lengths:
                    at = mine[mine["L"] == length]
                    x, y = _paired(at[at["model"] == user], at[at["model"] == vanilla], metric)
                    rows.append(_check(scenario, user, vanilla, str(int(length)), twin_expect,
                                       x, y, metric))
        if len(lengths) >= 2:
            short, long = lengths[0], lengths[-1]
            long_expect = {"long_range": "a > b", "neither": "none"}.get(scenario, "-")
            for model in LONG_RANGE_MODELS:
                if model not in models:
                    continue
                own = mine[mine["model"] == model]
                x, y = _paired(own[own["L"] == long], own[own["L"] == short], metric)
                rows.append(_check(scenario, f"{model} L={int(long)}", f"{model} L={int(short)}",
                                   f"{int(long)} vs {int(short)}", long_expect, x, y, metric))
        if scenario == "long_range" and {"gru", "dnc"} <= models:
            for length in lengths:
                at = mine[mine["L"] == length]
                x, y = _paired(at[at["model"] == "dnc"], at[at["model"] == "gru"], metric)
                rows.append(_check(scenario, "dnc", "gru", str(int(length)), "-", x, y, metric))
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


def validation_sentences(checks: pd.DataFrame, metric: str = METRIC) -> list[str]:
    """Plain sentences, one per check, saying what was expected and what was found."""
    label = metric_label(metric)
    out = []
    for _, c in checks.iterrows():
        a, b = c["Comparison"].split(" vs ")
        if c["Pairs"] < 2:
            out.append(f"[{c['Scenario']}] {a} vs {b} (L {c['Window length']}): not tested, "
                       f"fewer than 2 paired seeds.")
            continue
        diff, p = float(c["Mean difference"]), float(c["p"])
        how = "higher" if diff > 0 else ("lower" if diff < 0 else "equal")
        p_text = "p undefined" if math.isnan(p) else f"p = {p:.3g}"
        head = (f"[{c['Scenario']}] {a} scores {abs(diff):.4f} {label} {how} than {b} "
                f"(L {c['Window length']}; {p_text}, {c['Test']}, {int(c['Pairs'])} pairs)")
        verdict = c["Verdict"]
        if verdict == "found":
            tail = "the planted effect is found."
        elif verdict == "NOT found":
            tail = (f"the planted effect is NOT found (expected {c['Expected']}; an effect "
                    f"needs p < {ALPHA} and a difference of at least {MIN_EFFECT}).")
        elif verdict == "none, as expected":
            tail = "within seed noise, as expected where nothing is planted."
        elif verdict == "UNEXPECTED effect":
            tail = "an effect where none was planted: the pipeline (or the generator) is biased."
        elif verdict == "observed":
            tail = "a clear difference (no expectation stated)."
        else:
            tail = "no clear difference (no expectation stated)."
        out.append(f"{head}: {tail}")
    return out


def validation_comparisons(records: list) -> tuple[list[str], pd.DataFrame]:
    """The planted-effect checks for the report: one sentence per check, and the checks."""
    checks = validation_checks(records)
    return validation_sentences(checks), checks.drop(columns=["Effect"])


def figure_validation(records: list, table: pd.DataFrame | None = None,
                      metric: str = METRIC) -> Figure:
    """Bars of `metric` (mean, std over seeds as error bars) by model and window length, one
    panel per scenario. `table`: `validation_table(records, metric)` when already computed."""
    table = validation_table(records, metric) if table is None else table
    label = metric_label(metric)
    scenarios = list(dict.fromkeys(table["Scenario"]))
    fig = Figure(figsize=(4.2 * max(len(scenarios), 1), 3.6))
    if not scenarios:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no runs yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    lengths = sorted(table["Window length"].unique())
    width = 0.8 / len(lengths)
    axes = fig.subplots(1, len(scenarios), sharey=True, squeeze=False)[0]
    for ax, scenario in zip(axes, scenarios, strict=True):
        mine = table[table["Scenario"] == scenario]
        models = list(dict.fromkeys(mine["Model"]))
        for j, length in enumerate(lengths):
            part = mine[mine["Window length"] == length].set_index("Model").reindex(models)
            xs = np.arange(len(models)) + (j - (len(lengths) - 1) / 2) * width
            ax.bar(xs, part[label].to_numpy(float), width,
                   yerr=np.nan_to_num(part[label + STD_SUFFIX].to_numpy(float)),
                   label=f"L = {length}", color=f"C{j}", capsize=2)
        ax.set_xticks(np.arange(len(models)))
        ax.set_xticklabels(models, rotation=35, ha="right", fontsize=8)
        ax.set_title(f"scenario: {scenario}")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(label)
    axes[0].legend(fontsize=8)
    fig.subplots_adjust(bottom=0.3, wspace=0.08, left=0.06, right=0.99)
    return fig


def validation_markdown(records: list, description: str = "",
                        figure_name: str = "validation.png") -> str:
    """The summary as Markdown: description, table, checks, sentences and the figure."""
    checks = validation_checks(records)
    table = validation_table(records)
    lines = ["# Validation experiment", ""]
    if description:
        lines += [description, ""]
    lines += [f"An effect: p < {ALPHA} (paired over seeds) and a difference of at least "
              f"{MIN_EFFECT} {metric_label(METRIC)}.", "", "## Findings", ""]
    sentences = validation_sentences(checks)
    lines += [f"- {s}" for s in sentences] or ["- no checks: no validation runs yet"]
    shown = checks.drop(columns=["Effect"])
    lines += ["", f"## {metric_label(METRIC)} by scenario, model and window length "
                  "(mean ± std over seeds)", "", to_markdown(table), "## Checks", "",
              to_markdown(shown), f"![{metric_label(METRIC)} by model and window length]"
                                  f"({figure_name})", ""]
    return "\n".join(lines)


def write_validation_report(out_dir: str | Path, records: list,
                            description: str = "") -> Path:
    """Write OUT/report/validation.md and validation.png (atomically); return the .md path."""
    folder = Path(out_dir) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    fig = figure_validation(records)
    atomic_write(folder / "validation.png", lambda f: fig.savefig(f, format="png", dpi=110))
    path = folder / "validation.md"
    atomic_write_text(path, validation_markdown(records, description))
    return path

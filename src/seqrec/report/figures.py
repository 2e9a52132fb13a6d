"""The four experiments' figures (matplotlib), drawn from the tables.

Each function returns a `matplotlib.figure.Figure` built with the object API: no pyplot, no
global figure registry and no backend switch (saving to PNG/PDF uses the Agg renderer whatever
the session's backend), so the notebook can show it inline and the report can save it. Axes
carry metric names ("Recall@20") and legends readable model names: the thesis swapped labels
(docs/protocol.md, defects 5 and 14). `table`, when given, is the experiment's table already
computed from the same records (the report passes it so as not to compute it twice).

Every figure is titled with its experiment, the profile and the data its runs read
(`data_name`); its legend sits right of the panels, never over the data; error bars are one
standard deviation over chunks and seeds, cut at zero (no metric is negative), as the note under
the panels says; and a point resting on fewer test windows than `coverage.MIN_TEST_WINDOWS` is
circled in red.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from seqrec.data.windows import THIRDS
from seqrec.report.coverage import MIN_TEST_WINDOWS, TEST_WINDOWS, VAL_WINDOWS, WINDOWS_KEY, is_few
from seqrec.report.records import THIRD_LABELS, data_name, metric_label, model_label
from seqrec.report.render import STD_SUFFIX
from seqrec.report.tables import (
    METRICS,
    table_exp1,
    table_exp2,
    table_exp3,
    table_exp4,
)
from seqrec.report.tables import experiment_runs as _experiment_runs

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LEGEND_WIDTH = 2.5  # inches right of the panels, for the legend
TITLE_HEIGHT = 0.45  # inches above the panels' own titles, for the figure's title
NOTE_HEIGHT = 0.35  # inches below the x labels, for the note on error bars and marks
FEW_LABEL = f"fewer than {MIN_TEST_WINDOWS} windows"


class ReportFigure(Figure):
    """A Figure that shows itself in Jupyter without pyplot.

    IPython draws a bare `Figure` as PNG only once a pyplot backend has registered its
    formatter; before that it prints "<Figure size ...>". `_repr_png_` is IPython's fallback, so
    the notebook shows the plot either way (a registered formatter, if any, still wins).
    """

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=100)
        return buf.getvalue()


def _figure(width: float, height: float, rows: int = 1) -> ReportFigure:
    """A figure with fixed margins in inches: `width` x `height` of panels, plus room for the
    title above, the note below and the legend to the right.

    Fixed margins instead of constrained layout: the layout solver took most of the report's
    build time (it runs again on every save), and our panels all look alike anyway.
    """
    total_w, total_h = width + LEGEND_WIDTH, height + TITLE_HEIGHT + NOTE_HEIGHT
    fig = ReportFigure(figsize=(total_w, total_h))
    fig.subplots_adjust(left=0.85 / total_w, right=(width - 0.2) / total_w,
                        bottom=(0.55 + NOTE_HEIGHT) / total_h,
                        top=1 - (0.4 + TITLE_HEIGHT) / total_h, wspace=0.38,
                        hspace=0.42 if rows > 1 else 0.2)
    return fig


def _finish(fig: Figure, records: list, title: str, bars: bool = True,
            windows: str = "test") -> Figure:
    """Title the figure (experiment, profile, data), put one legend right of the panels and
    say under them what the error bars and circles mean (`windows`: which windows count)."""
    profiles = sorted({str(r.spec.profile) for r in records if r.spec.profile})
    sources = list(dict.fromkeys(data_name(r.data) for r in records))
    fig.suptitle(f"{title}; profile {', '.join(profiles) or '?'}; data: {'; '.join(sources)}",
                 x=0.01, ha="left", fontsize=11)
    handles: dict = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if FEW_LABEL in handles:  # the mark's entry last
        handles[FEW_LABEL] = handles.pop(FEW_LABEL)
    if handles:
        right = fig.subplotpars.right
        fig.legend(list(handles.values()), list(handles), loc="upper left", fontsize="small",
                   bbox_to_anchor=(right + 0.01, fig.subplotpars.top), frameon=False)
    note = ("Error bars: one standard deviation over chunks and seeds, cut at 0. "
            if bars else "")
    if FEW_LABEL in handles:
        note += (f"Circled in red: fewer than {MIN_TEST_WINDOWS} {windows} windows behind the "
                 "point, too few to read much into.")
    fig.text(0.01, 0.01, note, fontsize="small", va="bottom")
    return fig


def _bars(y: np.ndarray, std: np.ndarray | None) -> np.ndarray | None:
    """Asymmetric error bars [2, n]: one std up, and down to no lower than 0 (a mean of a
    metric that cannot be negative minus its std can be: issue 22's bars below zero)."""
    if std is None:
        return None
    std = np.where(np.isnan(std), 0.0, std)
    lower = np.minimum(std, np.clip(np.nan_to_num(y), 0.0, None))
    return np.vstack([lower, std])


def _circle(ax, xs, ys) -> None:  # noqa: ANN001
    """A red circle around each point resting on too few test windows."""
    if len(xs):
        ax.scatter(xs, ys, s=200, facecolors="none", edgecolors="red", linewidths=1.4,
                   label=FEW_LABEL, zorder=5)


def _empty(fig: Figure, text: str = "no runs yet") -> Figure:
    ax = fig.add_subplot(1, 1, 1)
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def _style(models: list[str]) -> dict[str, tuple[str, str]]:
    """(marker, colour) per model label, stable across panels of one figure."""
    colours = [f"C{i % 10}" for i in range(len(models))]
    return {m: (MARKERS[i % len(MARKERS)], colours[i]) for i, m in enumerate(models)}


def figure_exp1(records: list, metrics: tuple[str, ...] = METRICS,
                table: pd.DataFrame | None = None) -> Figure:
    """Exp 1 scatter: x chunk, y metric (one panel per metric); marker per model, filled for
    the first (highest) threshold and hollow for the next."""
    table = table_exp1(records, metrics) if table is None else table
    fig = _figure(5.5 * len(metrics), 4.2)
    if table.empty:
        return _empty(fig)
    chunk_cols = [c for c in table.columns if c.startswith("Chunk ")]
    chunks = [int(c.split()[1]) for c in chunk_cols]
    models = list(dict.fromkeys(table["Model"]))
    style = _style(models)
    thresholds = list(dict.fromkeys(table["Threshold"]))
    few = _few_chunks(records)
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        for _, row in table[table["Metric"] == metric_label(metric)].iterrows():
            marker, colour = style[row["Model"]]
            hollow = thresholds.index(row["Threshold"]) % 2 == 1
            y = row[chunk_cols].to_numpy(float)
            thr_text = f"threshold {int(row['Threshold'])}"
            ax.scatter(chunks, y, marker=marker, s=45, label=f"{row['Model']}, {thr_text}",
                       facecolors="none" if hollow else colour, edgecolors=colour)
            marked = [j for j, c in enumerate(chunks)
                      if (float(row["Threshold"]), row["Model"], c) in few]
            _circle(ax, [chunks[j] for j in marked], y[marked])
        ax.set_xlabel("Chunk")
        ax.set_ylabel(metric_label(metric))
        ax.set_xticks(chunks)
        ax.set_title(f"{metric_label(metric)} per chunk")
        ax.grid(alpha=0.3)
    return _finish(fig, records, "Exp 1: preprocessing", bars=False)


def _few_chunks(records: list) -> set[tuple[float, str, int]]:
    """(threshold, model label, chunk) of exp 1's runs on too few test windows."""
    runs = _experiment_runs(records, "exp1")
    if runs.empty or WINDOWS_KEY not in runs.columns:
        return set()
    few = runs[[is_few(c) for c in runs[WINDOWS_KEY].to_numpy(float)]]
    return {(float(r["threshold"]), model_label(str(r["model"])), int(r["chunk"]))
            for _, r in few.iterrows()}


def _lines(ax, table, x_col: str, y_col: str, style, dodge: float = 0.0,  # noqa: ANN001
           count_col: str = TEST_WINDOWS) -> None:
    """One line with error bars (`<y_col> std`, cut at 0) per model, its points on too few
    windows (`count_col`) circled. `dodge` shifts each model's points sideways by that fraction
    of the x range, so overlapping error bars stay readable."""
    models = list(dict.fromkeys(table["Model"]))
    xs = table[x_col].to_numpy(float)
    span = float(np.nanmax(xs) - np.nanmin(xs)) if len(xs) else 0.0
    span = span if span > 0 else 1.0
    for i, model in enumerate(models):
        part = table[table["Model"] == model].sort_values(x_col)
        marker, colour = style[model]
        shift = (i - (len(models) - 1) / 2) * dodge * span
        std_col = y_col + STD_SUFFIX
        err = part[std_col].to_numpy(float) if std_col in part.columns else None
        if err is not None and np.all(np.isnan(err)):
            err = None
        x, y = part[x_col].to_numpy(float) + shift, part[y_col].to_numpy(float)
        ax.errorbar(x, y, yerr=_bars(y, err), marker=marker, color=colour, capsize=3,
                    label=model)
        if count_col in part.columns:
            few = np.array([is_few(c) for c in part[count_col].to_numpy(float)], dtype=bool)
            _circle(ax, x[few], y[few])


def figure_exp2(records: list, metrics: tuple[str, ...] = METRICS,
                table: pd.DataFrame | None = None) -> Figure:
    """Exp 2: each metric against the training fraction; error bars = std over chunks/seeds."""
    table = table_exp2(records, metrics) if table is None else table
    fig = _figure(5.5 * len(metrics), 4.2)
    if table.empty:
        return _empty(fig)
    style = _style(list(dict.fromkeys(table["Model"])))
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        _lines(ax, table, "Training fraction", metric_label(metric), style, dodge=0.01)
        ax.set_xlabel("Training fraction of each user's events (train_frac - p)")
        ax.set_ylabel(metric_label(metric))
        ax.set_title(f"{metric_label(metric)} against training size")
        ax.grid(alpha=0.3)
    return _finish(fig, records, "Exp 2: training-set size")


def figure_exp3(records: list, table: pd.DataFrame | None = None) -> Figure:
    """Exp 3: best validation loss against embedding size on a log2 axis; one-hot is placed at
    the number of items and labelled "one-hot"."""
    table = table_exp3(records) if table is None else table
    fig = _figure(6.5, 4.2)
    if table.empty:
        return _empty(fig)
    ax = fig.add_subplot(1, 1, 1)
    style = _style(list(dict.fromkeys(table["Model"])))
    label = "Best validation loss"
    dense = table[table["Embedding"] != "one-hot"]
    if not dense.empty:
        _lines(ax, dense, "Embedding size", label, style, count_col=VAL_WINDOWS)
    for _, row in table[table["Embedding"] == "one-hot"].iterrows():
        marker, colour = style[row["Model"]]
        x = row["Embedding size"]
        if math.isnan(x):
            continue  # the item count is unknown, so one-hot has no place on the axis
        std = np.array([row[label + STD_SUFFIX]], dtype=float)
        err = None if math.isnan(std[0]) else _bars(np.array([row[label]], dtype=float), std)
        if is_few(float(row.get(VAL_WINDOWS, math.nan))):
            _circle(ax, [x], [row[label]])
        ax.errorbar([x], [row[label]], yerr=err, marker=marker, color=colour, capsize=3,
                    linestyle="none", markerfacecolor="none", markersize=9,
                    label=f"{row['Model']}, one-hot")
        ax.annotate(f"one-hot ({int(x)} items)", (x, row[label]), textcoords="offset points",
                    xytext=(0, 8), ha="center", fontsize="small")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("Embedding size (log2)")
    ax.set_ylabel(label)
    ax.set_title("Best validation loss against embedding size")
    ax.grid(alpha=0.3)
    return _finish(fig, records, "Exp 3: embedding size", windows="validation")


def figure_exp4(records: list, metrics: tuple[str, ...] = METRICS,
                table: pd.DataFrame | None = None) -> Figure:
    """Exp 4: metrics against window length L; one column of panels per scope (overall and
    each popularity third), one row per metric; error bars = std over chunks and seeds."""
    table = table_exp4(records, metrics) if table is None else table
    scopes = [THIRD_LABELS[t] for t in ("overall", *THIRDS)]
    fig = _figure(4.2 * len(scopes), 3.6 * len(metrics), rows=len(metrics))
    if table.empty:
        return _empty(fig)
    style = _style(list(dict.fromkeys(table["Model"])))
    lengths = sorted(table["Window length"].unique())
    for r, metric in enumerate(metrics):
        for c, scope in enumerate(scopes):
            ax = fig.add_subplot(len(metrics), len(scopes), r * len(scopes) + c + 1)
            _lines(ax, table[table["Scope"] == scope], "Window length", metric_label(metric),
                   style, dodge=0.012)
            ax.set_xticks(lengths)
            ax.set_xlabel("Window length L")
            ax.set_ylabel(metric_label(metric))
            ax.set_title(f"{scope}: {metric_label(metric)}")
            ax.grid(alpha=0.3)
    return _finish(fig, records, "Exp 4: window length")



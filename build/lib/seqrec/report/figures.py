"""The four experiments' figures (matplotlib), drawn from the tables.

Each function returns a `matplotlib.figure.Figure` built with the object API: no pyplot, no
global figure registry and no backend switch (saving to PNG/PDF uses the Agg renderer whatever
the session's backend), so the notebook can show it inline and the report can save it. Axes
carry metric names ("Recall@20") and legends readable model names: the thesis swapped labels
(docs/protocol.md, defects 5 and 14). `table`, when given, is the experiment's table already
computed from the same records (the report passes it so as not to compute it twice).
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from seqrec.data.windows import THIRDS
from seqrec.report.records import THIRD_LABELS, metric_label
from seqrec.report.render import STD_SUFFIX
from seqrec.report.tables import (
    METRICS,
    table_exp1,
    table_exp2,
    table_exp3,
    table_exp4,
)

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


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
    """A figure with fixed margins in inches.

    Fixed margins instead of constrained layout: the layout solver took most of the report's
    build time (it runs again on every save), and our panels all look alike anyway.
    """
    fig = ReportFigure(figsize=(width, height))
    fig.subplots_adjust(left=0.85 / width, right=1 - 0.2 / width, bottom=0.55 / height,
                        top=1 - 0.4 / height, wspace=0.38, hspace=0.42 if rows > 1 else 0.2)
    return fig


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
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        for _, row in table[table["Metric"] == metric_label(metric)].iterrows():
            marker, colour = style[row["Model"]]
            hollow = thresholds.index(row["Threshold"]) % 2 == 1
            y = row[chunk_cols].to_numpy(float)
            thr_text = f"threshold {int(row['Threshold'])}"
            ax.scatter(chunks, y, marker=marker, s=45, label=f"{row['Model']}, {thr_text}",
                       facecolors="none" if hollow else colour, edgecolors=colour)
        ax.set_xlabel("Chunk")
        ax.set_ylabel(metric_label(metric))
        ax.set_xticks(chunks)
        ax.set_title(f"Exp 1: {metric_label(metric)} per chunk")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return fig


def _lines(ax, table, x_col: str, y_col: str, style, dodge: float = 0.0) -> None:  # noqa: ANN001
    """One line with error bars (`<y_col> std`) per model. `dodge` shifts each model's points
    sideways by that fraction of the x range, so overlapping error bars stay readable."""
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
        ax.errorbar(part[x_col].to_numpy(float) + shift, part[y_col].to_numpy(float), yerr=err,
                    marker=marker, color=colour, capsize=3, label=model)


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
        ax.set_title(f"Exp 2: {metric_label(metric)} against training size")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return fig


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
        _lines(ax, dense, "Embedding size", label, style)
    for _, row in table[table["Embedding"] == "one-hot"].iterrows():
        marker, colour = style[row["Model"]]
        x = row["Embedding size"]
        if math.isnan(x):
            continue  # the item count is unknown, so one-hot has no place on the axis
        err = None if math.isnan(row[label + STD_SUFFIX]) else row[label + STD_SUFFIX]
        ax.errorbar([x], [row[label]], yerr=err, marker=marker, color=colour, capsize=3,
                    linestyle="none", markerfacecolor="none", markersize=9,
                    label=f"{row['Model']}, one-hot")
        ax.annotate(f"one-hot ({int(x)} items)", (x, row[label]), textcoords="offset points",
                    xytext=(0, 8), ha="center", fontsize="small")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("Embedding size (log2)")
    ax.set_ylabel(label)
    ax.set_title("Exp 3: best validation loss against embedding size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


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
            if r == 0 and c == 0:
                ax.legend(fontsize="small")
    return fig



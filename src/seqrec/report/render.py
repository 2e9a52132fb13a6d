"""Tables as text: display formatting, Markdown, LaTeX (booktabs) and plain monospace text.

Small renderers of our own, so the report needs neither `tabulate` (DataFrame.to_markdown) nor
`jinja2` (DataFrame.style.to_latex).
"""

from __future__ import annotations

import math
import re
from numbers import Integral, Real

import pandas as pd

from seqrec.report.coverage import COUNT_COLUMNS, count_text

STD_SUFFIX = " std"
MISSING = "-"
# Columns whose numbers are counts or sizes: shown without decimals.
INT_COLUMNS = {"Runs", "Pairs", "Window length", "Chunk", "Seed", "Threshold", "Train windows"}
FORMATS = {"p-value": "{:.3g}", "Training fraction": "{:.2f}", "Train start p": "{:.2f}",
           "Train windows": "{:,.0f}", "Mean difference": "{:+.4f}", "Embedding size": "{:.0f}"}
DEFAULT_FORMAT = "{:.4f}"


def _cell(value: object, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool) or not isinstance(value, Real):
        return str(value)
    if column in COUNT_COLUMNS:
        return count_text(float(value))
    if column in FORMATS:
        return FORMATS[column].format(value)
    if isinstance(value, Integral) or (column in INT_COLUMNS and float(value).is_integer()):
        return str(int(value))
    return DEFAULT_FORMAT.format(value)


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """All cells as text; a column `X` followed by `X std` merges into one `X` of "mean ± std".

    The numeric frames stay numeric for the notebook and the tests; only the rendered tables
    carry text.
    """
    out = {}
    columns = list(df.columns)
    for col in columns:
        if str(col).endswith(STD_SUFFIX) and str(col)[: -len(STD_SUFFIX)] in columns:
            continue
        text = [_cell(v, str(col)) for v in df[col]]
        std_col = f"{col}{STD_SUFFIX}"
        if std_col in columns:
            text = [t if s == MISSING or t == MISSING else f"{t} ± {s}"
                    for t, s in zip(text, (_cell(v, str(col)) for v in df[std_col]), strict=True)]
        out[str(col)] = text
    return pd.DataFrame(out, columns=list(out), index=range(len(df)))


def _is_numeric_text(column: list[str]) -> bool:
    cells = [c for c in column if c != MISSING]
    return bool(cells) and all(c[:1].isdigit() or c[:1] in "+-." for c in cells)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table of `display_frame(df)`; numbers right-aligned."""
    shown = display_frame(df)
    if shown.columns.empty:
        return "(empty table)\n"

    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    head = "| " + " | ".join(esc(c) for c in shown.columns) + " |"
    rule = "|" + "|".join("---:" if _is_numeric_text(list(shown[c])) else ":---"
                          for c in shown.columns) + "|"
    body = ["| " + " | ".join(esc(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX table cell; "±" becomes `$\\pm$`."""
    escaped = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
    return escaped.replace("±", r"$\pm$")


def latex_label(text: str) -> str:
    """A `\\label{}` key: letters, digits and `: . _ -` kept, anything else (a brace, a
    backslash, a space) replaced by `-`, so a name from a record cannot end the label."""
    return re.sub(r"[^A-Za-z0-9:._-]", "-", text)


def to_latex(df: pd.DataFrame, caption: str | None = None, label: str | None = None) -> str:
    """A booktabs `table` environment of `display_frame(df)` (needs `\\usepackage{booktabs}`)."""
    shown = display_frame(df)
    align = "".join("r" if _is_numeric_text(list(shown[c])) else "l" for c in shown.columns)
    lines = [r"\begin{table}[ht]", r"\centering", rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(latex_escape(c) for c in shown.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(v) for v in row) + r" \\"
              for row in shown.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{latex_label(label)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_text(df: pd.DataFrame) -> list[str]:
    """Lines of a monospace table of `display_frame(df)` (for the PDF pages)."""
    shown = display_frame(df)
    if shown.columns.empty:
        return ["(empty table)"]
    widths = [max([len(c), *(len(v) for v in shown[c])]) for c in shown.columns]
    right = [_is_numeric_text(list(shown[c])) for c in shown.columns]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w)
                         for c, w, r in zip(cells, widths, right, strict=True)).rstrip()

    header = line(list(shown.columns))
    return [header, "-" * len(header), *(line(list(row)) for row in shown.itertuples(index=False))]

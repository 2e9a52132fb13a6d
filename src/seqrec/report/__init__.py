"""The report: run records -> tables (Markdown, LaTeX), figures (PNG), report.md and report.pdf.

Issue 5 ("Report") and issue 6 ("Seeds and significance"). The notebook shows the tables and
figures inline through the functions below; `build_report` writes everything to disk.
"""

from seqrec.report.build import build_report
from seqrec.report.figures import figure_exp1, figure_exp2, figure_exp3, figure_exp4
from seqrec.report.records import (
    load_records,
    metric_label,
    model_label,
    runs_frame,
    status_lists,
)
from seqrec.report.render import to_latex, to_markdown
from seqrec.report.stats import PairedTest, paired_test, twin_tests
from seqrec.report.tables import table_exp1, table_exp2, table_exp3, table_exp4, table_other

__all__ = [
    "PairedTest",
    "build_report",
    "figure_exp1",
    "figure_exp2",
    "figure_exp3",
    "figure_exp4",
    "load_records",
    "metric_label",
    "model_label",
    "paired_test",
    "runs_frame",
    "status_lists",
    "table_exp1",
    "table_exp2",
    "table_exp3",
    "table_exp4",
    "table_other",
    "to_latex",
    "to_markdown",
    "twin_tests",
]

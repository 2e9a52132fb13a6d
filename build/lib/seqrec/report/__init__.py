"""The report: run records -> tables (Markdown, LaTeX), figures (PNG), report.md and report.pdf.

The notebook shows each experiment's table and figure inline through its registry entry
(`seqrec.experiments`); `build_report` writes everything to disk.
"""

from seqrec.report.records import load_records, metric_label, runs_frame, status_lists
from seqrec.report.render import to_latex, to_markdown
from seqrec.report.stats import PairedTest, paired_test, twin_tests


def build_report(out_dir, experiments=None):  # noqa: ANN001, ANN201 - see report/build.py
    """`seqrec.report.build.build_report`, imported on first use: the builder iterates the
    experiment registry, which itself imports the report's tables and figures."""
    from seqrec.report.build import build_report as build

    return build(out_dir, experiments)


__all__ = ["PairedTest", "build_report", "load_records", "metric_label", "paired_test",
           "runs_frame", "status_lists", "to_latex", "to_markdown", "twin_tests"]

"""The report: run records -> tables (Markdown, LaTeX), figures (PNG), report.md and report.pdf.

The notebook shows each experiment's table and figure inline through its registry entry
(`seqrec.experiments`); `seqrec.app.build_report` writes everything to disk.
"""

from seqrec.report.records import load_records, metric_label, runs_frame, status_lists
from seqrec.report.render import to_latex, to_markdown
from seqrec.report.stats import PairedTest, paired_test, twin_tests

__all__ = ["PairedTest", "load_records", "metric_label", "paired_test",
           "runs_frame", "status_lists", "to_latex", "to_markdown", "twin_tests"]

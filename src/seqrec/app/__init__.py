"""The orchestration layer: what only the top decides. Planning a grid is `experiments.grid`;
here a grid's backend is chosen and its options resolved (`grid.py`), and the report is
assembled from the records (`report.py`). The CLI and the notebook call this layer; the
libraries below it (runner, ray_backend, experiments, report) never call up
(docs/design.md, "Layers")."""

from seqrec.app.grid import BACKENDS, resolved_options, run_experiment, run_grid
from seqrec.app.report import build_report

__all__ = ["BACKENDS", "build_report", "resolved_options", "run_experiment", "run_grid"]

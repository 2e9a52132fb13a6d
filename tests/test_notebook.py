"""The Colab notebook: stored clean, and executed end to end on a tiny profile."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from seqrec.data.synthetic import SynthConfig, write_synthetic
from seqrec.notebook import NOTEBOOK, run_notebook

ROOT = Path(__file__).resolve().parents[1]
TINY = ["epochs=1", "hidden_size=8", "embedding_size=8", "memory_cells=4", "word_size=4",
        "batch_size=512"]


def test_notebook_is_stored_without_outputs_and_without_logic():
    nb = nbformat.read(ROOT / NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for name in ("DATA_PATH", "OUT_DIR", "PROFILE", "EXPERIMENTS", "DEVICE", "SEQREC_SOURCE"):
        assert f"{name} =" in params[0].source
    # Thin front end: no function or class definitions, no loops over data.
    for c in code:
        lines = [line.strip() for line in c.source.splitlines()]
        assert not [line for line in lines if line.startswith(("def ", "class ", "for ",
                                                               "while "))]
    assert "colab-badge" in nb.cells[0].source


@pytest.mark.slow
def test_notebook_runs_all_experiments_and_continues_after_a_restart(tmp_path):
    log = write_synthetic(tmp_path / "log.tsv", SynthConfig(n_rows=20_000, n_users=6, seed=3))
    out = tmp_path / "out"
    executed = run_notebook(out, profile="smoke", data=str(log), overrides=TINY, timeout=600)
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4  # one figure per experiment, inline
    records = sorted((out / "runs").glob("*/record.json"))
    experiments = {json.loads(p.read_text())["spec"]["experiment"] for p in records}
    assert experiments == {"exp1", "exp2", "exp3", "exp4"}
    assert (out / "report" / "report.md").exists() and (out / "report" / "report.pdf").exists()

    # "Run all" again, as after a Colab disconnect: every finished run is skipped.
    stamps = {p: p.stat().st_mtime_ns for p in records}
    run_notebook(out, profile="smoke", data=str(log), overrides=TINY, timeout=600)
    assert {p: p.stat().st_mtime_ns for p in records} == stamps

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


def test_notebook_cells_carry_ids_and_validate_without_warnings():
    # Before: every cell but the first lacked the "id" that nbformat 4.5 requires; each read
    # of the notebook (the demo, nbclient, Colab) warned "Cell is missing an id field".
    import warnings

    raw = json.loads((ROOT / NOTEBOOK).read_text())
    ids = [c.get("id") for c in raw["cells"]]
    assert all(ids) and len(set(ids)) == len(ids)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nbformat.validate(nbformat.read(ROOT / NOTEBOOK, as_version=4))


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
    # the claims cell after run_all shows the claims table with a verdict per claim
    (claims,) = [c for c in nb.cells if c.get("id") == "claims"]
    shown = "".join(o.get("data", {}).get("text/plain", "") for o in claims.outputs)
    assert "Verdict" in shown and "exp4" in shown
    records = sorted((out / "runs").glob("*/record.json"))
    experiments = {json.loads(p.read_text())["spec"]["experiment"] for p in records}
    assert experiments == {"exp1", "exp2", "exp3", "exp4"}
    assert (out / "report" / "report.md").exists() and (out / "report" / "report.pdf").exists()

    # "Run all" again, as after a Colab disconnect: every finished run is skipped.
    stamps = {p: p.stat().st_mtime_ns for p in records}
    run_notebook(out, profile="smoke", data=str(log), overrides=TINY, timeout=600)
    assert {p: p.stat().st_mtime_ns for p in records} == stamps


def _cell(marker: str) -> str:
    nb = nbformat.read(ROOT / NOTEBOOK, as_version=4)
    (source,) = [c.source for c in nb.cells if c.cell_type == "code" and marker in c.source]
    return source


def test_the_notebook_names_its_version_and_one_repository():
    import re

    import seqrec

    nb = nbformat.read(ROOT / NOTEBOOK, as_version=4)
    setup = _cell("SEQREC_VERSION =")
    assert f'SEQREC_VERSION = "{seqrec.__version__}"' in setup
    # The install is pinned to the notebook's version (its tag), never the moving head, and a
    # source holding another version is refused: one grid, one code.
    assert f'SEQREC_REF = "v{seqrec.__version__}"' in setup
    assert 'f"{SEQREC_SOURCE}@{SEQREC_REF}"' in setup
    assert "if installed != SEQREC_VERSION:" in setup
    badge = re.search(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/", nb.cells[0].source)
    source = re.search(r'SEQREC_SOURCE = "git\+https://github\.com/([\w.-]+/[\w.-]+)\.git"',
                       _cell("SEQREC_SOURCE ="))
    assert badge and source and badge.group(1) == source.group(1)
    assert "item_key=title" in _cell("SEQREC_SOURCE =")


def test_setup_cell_installs_seqrec_into_a_fresh_environment(tmp_path):
    # A fresh virtual environment that sees this environment's packages (torch, numpy, ...)
    # but not seqrec; a folder named seqrec in the working directory, as a clone on Colab
    # leaves one (before: find_spec found it as a namespace package, the install was skipped
    # and the next line failed with "No module named 'seqrec.notebook'").
    import site
    import subprocess
    import sys

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    inner = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    # This environment's packages without seqrec: links to every entry but seqrec's own (its
    # editable install and metadata), added by a plain path line (whose folder's .pth files
    # Python does not process).
    view = tmp_path / "packages"
    view.mkdir()
    outer = Path(site.getsitepackages()[0])
    for entry in outer.iterdir():
        if "seqrec" not in entry.name:
            (view / entry.name).symlink_to(entry)
    (Path(inner) / "outer.pth").write_text(f"{view}\n")
    work = tmp_path / "content"
    (work / "seqrec").mkdir(parents=True)
    probe = subprocess.run([str(python), "-c", "import seqrec.notebook"], cwd=work,
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "seqrec.notebook" in probe.stderr
    # The checkout as a folder on Drive would hold it (pip builds in the source folder: a copy
    # keeps build/ out of this checkout).
    import shutil

    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "src", checkout / "src",
                    ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, checkout / name)
    config = (f"DATA_PATH = None\nOUT_DIR = {str(tmp_path / 'out')!r}\nPROFILE = 'smoke'\n"
              f"EXPERIMENTS = ['exp2']\nDEVICE = 'cpu'\nOVERRIDES = {TINY!r}\n"
              f"CHECKPOINT_DIR = None\nTENSORBOARD = False\nSEQREC_SOURCE = {str(checkout)!r}\n"
              "DEBUG = False\n")
    setup = _cell("SEQREC_VERSION =").replace("plan = session.describe(EXPERIMENTS)",
                                             "print('session ready:', session.profile)")
    ran = subprocess.run([str(python), "-c", config + setup], cwd=work, capture_output=True,
                         text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "installing seqrec" in ran.stdout and "session ready: smoke" in ran.stdout
    # Run again: installed now, nothing to install.
    again = subprocess.run([str(python), "-c", config + setup], cwd=work, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0 and "installing" not in again.stdout, again.stderr
    # A bad source shows pip's own words and one sentence saying what to set.
    broken = config.replace(f"SEQREC_SOURCE = {str(checkout)!r}",
                            f"SEQREC_SOURCE = {str(tmp_path / 'no-such-folder')!r}")
    bad = subprocess.run([str(python), "-c", broken + setup.replace(
        "installed = seqrec.__version__", "installed = None")], cwd=work,
        capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0
    assert "no-such-folder" in bad.stdout and "set SEQREC_SOURCE in the config cell" in bad.stderr


def test_demo_without_the_notebook_runs_the_same_calls(tmp_path, monkeypatch, capsys):
    # Before: after a plain `pip install`, `seqrec demo` failed with "No module named
    # 'nbformat'" (and the notebook is not in the package).
    import seqrec.notebook as notebook

    monkeypatch.setattr(notebook, "demo_blockers", lambda: ["nbclient not installed"])
    calls = []
    monkeypatch.setattr(notebook.Session, "run_all", lambda self, e=None: calls.append("run"))
    monkeypatch.setattr(notebook.Session, "report", lambda self: calls.append("report"))
    assert notebook.run_demo(tmp_path) is None
    assert calls == ["run", "report"]
    assert "not executed here: nbclient not installed" in capsys.readouterr().out
    monkeypatch.undo()
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "nbclient" else real(name, *a))
    assert notebook.demo_blockers() == ["nbclient not installed (pip install 'seqrec[demo]')"]


def test_demo_trains_on_one_thread_unless_told_otherwise(tmp_path, monkeypatch):
    # Before: the demo's kernel trained on torch's default threads (one per core); on the
    # shared 2-core machine single epochs of the first demo took up to 40 times as long as the
    # same epoch alone. The kernel now gets OMP_NUM_THREADS=1 (or the number asked for).
    import nbclient

    import seqrec.notebook as notebook

    seen = []

    class FakeClient:
        def __init__(self, nb, **kwargs):
            self.nb = nb

        def execute(self, **kwargs):
            seen.append(kwargs.get("env", {}).get("OMP_NUM_THREADS"))
            return self.nb

    monkeypatch.setattr(nbclient, "NotebookClient", FakeClient)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    notebook.run_demo(tmp_path / "a")
    notebook.run_demo(tmp_path / "b", threads=3)
    notebook.run_demo(tmp_path / "c", threads=None)
    assert seen == ["1", "3", "7"]


def test_demo_command_passes_threads(monkeypatch):
    import seqrec.cli as cli
    from seqrec.cli import main

    got = []
    monkeypatch.setattr(cli, "run_demo", lambda out, **kw: got.append(kw["threads"]))
    assert main(["demo", "--out", "x"]) == 0
    assert main(["demo", "--out", "x", "--threads", "0"]) == 0
    assert main(["demo", "--out", "x", "--threads", "2"]) == 0
    assert got == [1, None, 2]
    assert main(["demo", "--out", "x", "--threads", "-1"]) == 2


def test_headless_execution_says_which_cell_runs():
    # Before: `seqrec demo` printed nothing between the kernel's start and the end of the last
    # cell (about five minutes); now one line per code cell as it starts and ends.
    import seqrec.notebook as notebook

    nb = nbformat.read(ROOT / NOTEBOOK, as_version=4)
    lines = []
    progress = notebook.CellProgress(nb.cells, write=lines.append)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    for i in code:
        progress.start(cell=nb.cells[i], cell_index=i)
        progress.done(cell=nb.cells[i], cell_index=i, execute_reply={})
    starts = [line for line in lines if line.startswith("cell ")]
    assert len(starts) == len(code) and starts[0].startswith(f"cell 1/{len(code)}: ")
    assert starts[-1].startswith(f"cell {len(code)}/{len(code)}: report_md = session.report(")
    assert all(line.startswith("  done in ") for line in lines[1::2])

"""Clear errors instead of tracebacks (issue 19): each case through the CLI's `main()`, and the
demo's kernel started outside the output folder."""

from __future__ import annotations

import json

import nbformat

from seqrec.notebook import run_notebook


def test_the_demo_kernel_does_not_import_a_seqrec_py_planted_in_the_output_folder(tmp_path,
                                                                                 monkeypatch):
    # Failed before the fix: the kernel started in OUT, whose seqrec.py then ran as the package.
    # A kernel's working folder comes before site-packages on its path, but after PYTHONPATH:
    # without PYTHONPATH, as a user runs it, the kernel imports the installed seqrec.
    monkeypatch.delenv("PYTHONPATH", raising=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "seqrec.py").write_text("open(__file__ + '.ran', 'w').close()\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("OUT_DIR = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import json, os, seqrec\n"
            "with open(os.path.join(OUT_DIR, 'where.json'), 'w') as f:\n"
            "    json.dump({'package': seqrec.__file__, 'cwd': os.getcwd()}, f)"),
    ]
    notebook = tmp_path / "probe.ipynb"
    nbformat.write(nb, notebook)
    run_notebook(out, notebook=notebook, timeout=120)
    where = json.loads((out / "where.json").read_text())
    assert not (out / "seqrec.py.ran").exists()
    assert where["package"].endswith("seqrec/__init__.py")
    assert not where["cwd"].startswith(str(out.resolve()))

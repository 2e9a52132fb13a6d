"""What the Colab notebook calls, and the headless runner behind `make demo`.

The notebook `thesis_experiments.ipynb` holds no logic: a config cell (tagged `parameters`),
a set-up cell, then per experiment `session.run(...)` and `session.show(...)`. `run_notebook`
executes it with nbclient, injecting parameters after the tagged cell (the papermill
convention), so the demo and the tests run exactly what a Colab user runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

NOTEBOOK = "thesis_experiments.ipynb"


def _display(obj) -> None:
    try:
        from IPython.display import display
    except ImportError:  # outside IPython: print what a notebook would show
        print(obj)
        return
    display(obj)


@dataclass
class Session:
    """The notebook's settings and calls: run an experiment, show its table and figure."""

    out_dir: str
    data: str | None = None
    profile: str = "thesis"
    device: str = "auto"
    overrides: list[str] = field(default_factory=list)
    baselines: tuple[str, ...] | None = None

    def describe(self) -> None:
        import torch

        from seqrec.device import resolve_device

        dev = resolve_device(self.device)
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
        print(f"seqrec: profile {self.profile!r} on {name}; data: "
              f"{self.data or 'built-in generated log'}; results in {self.out_dir}")

    def run(self, experiment: str) -> list[dict]:
        """Run (or continue) one experiment's grid; finished runs are skipped."""
        from seqrec.runner import run_experiment

        return run_experiment(experiment, self.out_dir, data=self.data, profile=self.profile,
                              device=self.device, overrides=self.overrides,
                              baselines=self.baselines)

    def show(self, experiment: str) -> None:
        """Display the experiment's table(s) and figure inline from the records on disk."""
        from seqrec import report

        records = [r for r in report.load_records(Path(self.out_dir))
                   if r.get("spec", {}).get("experiment") == experiment]
        if not records:
            print(f"{experiment}: no runs yet")
            return
        _display(getattr(report, f"table_{experiment}")(records))
        fig = getattr(report, f"figure_{experiment}")(records)
        _display(fig)
        import matplotlib.pyplot as plt

        plt.close(fig)

    def report(self) -> Path:
        """Build report.md and report.pdf from every record in the output folder."""
        from seqrec.report import build_report
        from seqrec.runner import expected_specs

        expected = expected_specs("all", self.profile, self.overrides, self.baselines)
        path = build_report(Path(self.out_dir), expected=expected)
        print(f"report: {path} and {path.with_suffix('.pdf')}")
        return path


def _find_notebook() -> Path:
    # src/seqrec/notebook.py -> repository root (editable install or source checkout)
    path = Path(__file__).resolve().parents[2] / NOTEBOOK
    if not path.exists():
        raise FileNotFoundError(f"{NOTEBOOK} not found next to the package ({path}); run the "
                                "demo from a source checkout")
    return path


def run_notebook(out_dir: Path, profile: str = "smoke", data: str | None = None,
                 overrides: list[str] | None = None, experiments: list[str] | None = None,
                 notebook: Path | None = None, timeout: int = 3600) -> Path:
    """Execute the notebook headlessly with the given parameters; save it executed in out_dir.

    Returns the path of the executed notebook. The notebook's own config cell is kept; a cell
    inserted after it sets OUT_DIR, DATA_PATH, PROFILE, DEVICE (cpu), OVERRIDES and EXPERIMENTS.
    """
    import nbformat
    from nbclient import NotebookClient

    from seqrec.runner import check_writable

    out = check_writable(out_dir).resolve()
    src = notebook or _find_notebook()
    nb = nbformat.read(src, as_version=4)
    params = {
        "OUT_DIR": str(out),
        "DATA_PATH": data,
        "PROFILE": profile,
        "DEVICE": "cpu",
        "OVERRIDES": list(overrides or []),
    }
    if experiments is not None:
        params["EXPERIMENTS"] = list(experiments)
    source = "# Parameters injected by seqrec.notebook.run_notebook\n" + "\n".join(
        f"{k} = {v!r}" for k, v in params.items())
    index = next((i for i, c in enumerate(nb.cells)
                  if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if index is None:
        raise ValueError(f"{src} has no cell tagged 'parameters'")
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected"]}))
    t0 = time.time()
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(out)}})
    executed = out / NOTEBOOK
    try:
        client.execute()
    finally:
        nbformat.write(nb, executed)
    print(f"executed {src.name} in {time.time() - t0:.0f}s -> {executed}")
    print(f"records: {out / 'runs'}; report: {out / 'report' / 'report.md'} "
          f"and {out / 'report' / 'report.pdf'}")
    return executed

"""What the Colab notebook calls, and the headless runner behind `make demo`.

The notebook `thesis_experiments.ipynb` holds no logic: a config cell (tagged `parameters`),
a set-up cell, then per experiment `session.run(...)` and `session.show(...)`. `run_notebook`
executes it with nbclient, injecting parameters after the tagged cell (the papermill
convention), so the demo and the tests run exactly what a Colab user runs.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from seqrec import __version__
from seqrec.app import build_report, resolved_options, run_grid
from seqrec.config import DEFAULT_PROFILE
from seqrec.experiment import describe_grid
from seqrec.experiments import CLAIMS, THESIS_EXPERIMENTS, grid
from seqrec.experiments import experiment as lookup
from seqrec.plan import make_plan, plan_lines
from seqrec.preflight import as_list, grid_lines, optional_path, probe_device
from seqrec.ranks import RanksReader
from seqrec.report import load_records
from seqrec.report.baselines import baseline_check, baseline_sentences
from seqrec.report.claims import claims_frame, evaluate_claims
from seqrec.report.coverage import few_window_sentence
from seqrec.report.records import results_frame
from seqrec.report.render import to_markdown
from seqrec.runner import (
    RunOptions,
    check_writable,
    failed_count,
    plan,
    status,
    versions_of_finished,
)

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
    """The notebook's settings and calls: run an experiment, show its table and figure.

    Every call reads the experiment registry (`seqrec.experiments`); `experiments()` lists the
    thesis' experiments in order, which the notebook loops over.
    """

    out_dir: str
    data: str | None = None
    profile: str = DEFAULT_PROFILE
    device: str = "auto"
    overrides: list[str] = field(default_factory=list)
    models: tuple[str, ...] | None = None
    baselines: tuple[str, ...] | None = None
    tensorboard: bool = True  # event files under OUT_DIR/tensorboard
    checkpoint_dir: str | None = None  # None: beside the records (see RunOptions)
    keep_model: bool = False
    backend: str = "local"  # "ray": every run a Ray task (docs/cluster.md)
    backend_options: dict = field(default_factory=dict)  # RayOptions' fields, e.g. address

    def __post_init__(self) -> None:
        # The config cell's values as a newcomer types them (issue 22): one string where a
        # list is expected, an empty form field for "none".
        self.data = optional_path(self.data, "DATA_PATH")
        self.checkpoint_dir = optional_path(self.checkpoint_dir, "CHECKPOINT_DIR")
        self.overrides = as_list(self.overrides, "OVERRIDES") or []
        for name in ("models", "baselines"):
            value = as_list(getattr(self, name), name)
            setattr(self, name, None if value is None else tuple(value))

    def options(self, retry_failed: bool = False) -> RunOptions:
        return RunOptions(device=self.device, retry_failed=retry_failed,
                          tensorboard=self.tensorboard, checkpoint_dir=self.checkpoint_dir,
                          keep_model=self.keep_model)

    @staticmethod
    def experiments() -> list[str]:
        return list(THESIS_EXPERIMENTS)

    def describe(self, experiments: list[str] | None = None, steps: int = 3) -> list:
        """Print the device, the data, and the plan: per experiment the runs done, to do and
        failed, and an estimate of the time left on this device (seqrec/plan.py says how it is
        made); warn when the thesis profile would run on a CPU or the plan outlasts a Colab
        session. Returns the `ExperimentPlan`s."""
        options = resolved_options(self.options())
        dev = torch.device(options.device)
        name = (torch.cuda.get_device_name(dev) if dev.type == "cuda"
                else f"CPU ({torch.get_num_threads()} threads)")
        print(f"seqrec {__version__}: profile {self.profile!r} on {name}; data: "
              f"{self.data or 'built-in generated log'}; results in {self.out_dir}")
        names = as_list(experiments, "EXPERIMENTS") or self.experiments()
        specs = [s for name in names for s in self.specs(name)]
        states = [state for _, state in plan(specs, self.out_dir, options)]
        mixed = versions_of_finished(specs, states, Path(self.out_dir))
        if mixed:
            print(mixed)
        plans = make_plan(specs, Path(self.out_dir), options, steps)
        for line in plan_lines(plans, self.profile, dev):
            print(line)
        for line in grid_lines(specs, self.out_dir, self.options(), probe_device(self.device)):
            print(line)
        return plans

    def specs(self, experiment: str, only: list[str] | None = None, shard: str | None = None):
        """The run specs of one experiment (or `all`) with this session's settings."""
        return grid(experiment, self.profile, self.overrides, self.baselines, self.models,
                    self.data, only=only, shard_spec=shard)

    def run(self, experiment: str, only: list[str] | None = None, shard: str | None = None,
            retry_failed: bool = False, backend: str | None = None, **backend_options) -> list:
        """Run (or continue) one experiment's grid; finished runs are skipped, failed ones
        too unless `retry_failed`. `only`: run-id patterns; `shard`: "I/N". `backend`
        (default: the session's): "local" or "ray", with `backend_options` (RayOptions'
        fields: address, cpus_per_run, gpus_per_run, max_retries) over the session's."""
        specs = self.specs(experiment, only, shard)
        records = run_grid(specs, self.out_dir, self.options(retry_failed),
                           backend=backend or self.backend,
                           **{**self.backend_options, **backend_options})
        failed = failed_count(records, planned=len(specs))
        if failed:
            print(f"{failed} of {len(specs)} runs of {experiment} failed (reasons below and "
                  f"in the report); to retry them: session.run({experiment!r}, "
                  f"retry_failed=True)")
        return records

    def results(self, experiment: str):  # noqa: ANN201 - a pandas DataFrame
        """One row per run of the experiment's grid with this session's settings: its status
        (ok, failed with its reason, partial, missing), label and main metrics."""
        specs = self.specs(experiment)
        states = {s.run_id: status(self.out_dir, s, self.options()) for s in specs}
        wanted = set(states)
        records = [r for r in load_records(Path(self.out_dir)) if r.run_id in wanted]
        return results_frame([s.label() for s in specs], records, states)

    def show(self, experiment: str, heading: bool = True) -> None:
        """Display the experiment's title, table, figure and failed runs from the records of
        this session's grid on disk."""
        exp = lookup(experiment)
        results = self.results(experiment)
        wanted = set(results["run_id"])
        records = [r for r in load_records(Path(self.out_dir)) if r.run_id in wanted]
        if heading:
            _display_markdown(self.heading(experiment))
        ok = [r for r in records if r.ok]
        not_ok = results[results["status"] != "ok"]
        if len(not_ok):
            print(f"{len(not_ok)} of {len(results)} runs are not finished (failed ones with "
                  "their reasons; session.results(...) lists every run):")
            _display_whole(not_ok[["run_id", "status", "reason"]])
        if not ok:
            print(f"{experiment}: no finished runs yet")
            return
        table = exp.table(ok)
        _display_markdown(to_markdown(table))  # as the report shows it: "0.3637 ± 0.0110"
        print(f"session.table({experiment!r}) gives this table as a DataFrame, "
              f"session.results({experiment!r}) one row per run")
        few = few_window_sentence(ok, experiment, table)
        for sentence in [*([few] if few else []), *baseline_sentences(
                baseline_check(ok, experiment))]:
            print(sentence)
        if exp.figure is not None:
            fig = exp.figure(ok, table=table)
            _display(fig)

    def table(self, experiment: str):  # noqa: ANN201 - a pandas DataFrame
        """The experiment's table (as `show` displays it) as a numeric DataFrame: means and
        `<metric> std` columns, `Test windows` and `Runs`, from this session's finished runs."""
        wanted = {s.run_id for s in self.specs(experiment)}
        ok = [r for r in load_records(Path(self.out_dir)) if r.run_id in wanted and r.ok]
        return lookup(experiment).table(ok)

    def heading(self, experiment: str) -> str:
        """The experiment's heading as Markdown: title, design, and what this grid runs
        (written from the grid, not the thesis': `describe_grid`)."""
        exp = lookup(experiment)
        labels = [s.label() for s in self.specs(experiment)]
        return f"### {exp.title}\n\n{exp.description}\n\n{describe_grid(labels, exp.axis_label)}"

    def run_all(self, experiments: list[str] | None = None) -> None:
        """Run and show each experiment in turn (default: the thesis' four, in order)."""
        for name in as_list(experiments, "EXPERIMENTS") or self.experiments():
            _display_markdown(self.heading(name))
            self.run(name)
            self.show(name, heading=False)

    def claims(self, experiments: list[str] | None = None):  # noqa: ANN201 - a DataFrame
        """The thesis' conclusions tested on this session's runs (default: the thesis'
        experiments): one row per claim with its statement, the runs it reads, its effect on
        Recall@20 with a 95% interval, p-value, method, verdict and one plain sentence
        (seqrec/report/claims.py; docs/validation.md, "Claims and their verdicts")."""
        wanted = {s.run_id for name in as_list(experiments, "EXPERIMENTS") or self.experiments()
                  for s in self.specs(name)}
        records = [r for r in load_records(Path(self.out_dir)) if r.run_id in wanted]
        return claims_frame(evaluate_claims(CLAIMS, records, RanksReader(self.out_dir)))

    def report(self, download: bool = False) -> Path | None:
        """Build report.md and report.pdf from every record in the output folder, show its
        summary (what finished, failed and is missing) inline and, with `download` on Colab,
        send report.pdf to the browser as a download. Returns the path of report.md."""
        path = build_report(Path(self.out_dir))
        if path is None:
            print("no run records yet; no report written")
            return None
        pdf = path.with_suffix(".pdf")
        _display_markdown(report_summary(path.read_text()))
        print(f"report: {path} and {pdf} (tables also as .md, .tex and .csv, figures as .png, "
              "in the same folder)")
        if download:
            _download(pdf)
        return path


def report_summary(markdown: str) -> str:
    """A report.md without its experiments' sections: its introduction and each group's
    heading and counts (the tables and figures are shown above it in the notebook)."""
    kept, inside = [], False
    for line in markdown.splitlines():
        if line.startswith("## "):
            inside = True  # an experiment's section, up to the next group
        elif line.startswith("# "):
            inside = False
        if not inside:
            kept.append(line)
    return "\n".join(kept).rstrip()


def _download(path: Path) -> None:
    """Offer `path` for download: Colab's browser download, elsewhere where the file is."""
    try:
        from google.colab import files  # only on Colab
    except ImportError:
        print(f"download: open {path} (not on Colab: no browser download from here)")
        return
    files.download(str(path))


def _display_whole(frame) -> None:  # noqa: ANN001 - a pandas DataFrame
    """Display a table with every row and column (exp 4's has 64 rows in smoke, 128 in thesis;
    pandas would cut it to 10 with an ellipsis)."""
    with pd.option_context("display.max_rows", None, "display.max_columns", None,
                           "display.width", 250):
        _display(frame)


def _display_markdown(text: str) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import Markdown
    except ImportError:
        print(text)
        return
    if get_ipython() is None:  # IPython installed but not running: its repr would show
        print(text)
        return
    _display(Markdown(text))


def _find_notebook() -> Path:
    # src/seqrec/notebook.py -> repository root (editable install or source checkout)
    path = Path(__file__).resolve().parents[2] / NOTEBOOK
    if not path.exists():
        raise FileNotFoundError(f"{NOTEBOOK} not found next to the package ({path}); run the "
                                "demo from a source checkout")
    return path


def demo_blockers() -> list[str]:
    """Why the notebook cannot be executed here (empty when it can): the packages that execute
    it (the `demo` extra) are missing, or the notebook is not beside the package (an install
    from a wheel rather than a source checkout)."""
    missing = [m for m in ("nbformat", "nbclient", "ipykernel")
               if importlib.util.find_spec(m) is None]
    out = []
    if missing:
        out.append(f"{', '.join(missing)} not installed (pip install 'seqrec[demo]')")
    try:
        _find_notebook()
    except FileNotFoundError:
        out.append(f"{NOTEBOOK} is not beside the package (it is in the source repository: "
                   "git clone it and run `make demo` there)")
    return out


DEMO_THREADS = 1  # CPU threads of the demo's training (see `run_demo`)


def run_demo(out_dir: Path, profile: str = DEFAULT_PROFILE, timeout: int = 3600,
             threads: int | None = DEMO_THREADS) -> Path | None:
    """`seqrec demo`: execute the notebook headlessly when it can be (see `demo_blockers`);
    otherwise say why and run the same calls the notebook makes (every thesis experiment,
    then the report) without it. Returns the executed notebook, or None without one.

    `threads`: torch's CPU threads for the training (None: torch's default, one per core). The
    default is one: the smoke models are too small to gain from a second thread, and on a
    machine whose cores other processes share, two threads that wait on each other made single
    epochs up to 40 times slower than the same epoch alone (the first demo of issue 12).
    """
    blockers = demo_blockers()
    if not blockers:
        return run_notebook(out_dir, profile=profile, timeout=timeout, threads=threads)
    print("seqrec demo: the notebook is not executed here: " + "; ".join(blockers) + ". "
          "Running the same experiments and report without it.")
    if threads is not None:
        torch.set_num_threads(threads)
    session = Session(str(out_dir), profile=profile, device="cpu")
    session.run_all()
    _display_whole(session.claims())
    session.report()
    return None


class CellProgress:
    """One line per code cell as a headless execution starts and ends it: the kernel's own
    output (the plan, the grid's bar) stays in the executed notebook, so without these lines
    `seqrec demo` would be silent for its minutes. Hooks for nbclient's `on_cell_execute` and
    `on_cell_executed`."""

    def __init__(self, cells: list, write=None) -> None:
        self.code = [i for i, c in enumerate(cells) if c.cell_type == "code"]
        self.write = write or (lambda line: print(line, flush=True))
        self.started = 0.0

    def start(self, cell, cell_index: int, **_) -> None:
        first = next((line for line in cell.source.splitlines()
                      if line.strip() and not line.startswith("#")), cell.source.strip())
        self.write(f"cell {self.code.index(cell_index) + 1}/{len(self.code)}: {first[:70]}")
        self.started = time.time()

    def done(self, cell, cell_index: int, **_) -> None:
        self.write(f"  done in {time.time() - self.started:.0f}s")


def run_notebook(out_dir: Path, profile: str = DEFAULT_PROFILE, data: str | None = None,
                 overrides: list[str] | None = None, experiments: list[str] | None = None,
                 notebook: Path | None = None, timeout: int = 3600,
                 threads: int | None = None) -> Path:
    """Execute the notebook headlessly with the given parameters; save it executed in out_dir.

    Returns the path of the executed notebook. The notebook's own config cell is kept; a cell
    inserted after it sets OUT_DIR, DATA_PATH, PROFILE, DEVICE (cpu), OVERRIDES and EXPERIMENTS.
    `threads` sets the kernel's OMP_NUM_THREADS (torch's CPU threads); None leaves it as it is.
    """
    import nbformat
    from nbclient import NotebookClient

    out = check_writable(out_dir).resolve()
    src = notebook or _find_notebook()
    nb = nbformat.read(src, as_version=4)
    params = {
        "OUT_DIR": str(out),
        "DATA_PATH": None if data is None else str(Path(data).resolve()),
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
    progress = CellProgress(nb.cells)
    executed = out / NOTEBOOK
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    # The kernel starts in a fresh empty folder of ours, not in OUT: Python puts a kernel's
    # working folder first on its import path, so a seqrec.py (or torch.py, ...) that someone
    # placed in a shared output folder would otherwise run as the package.
    with tempfile.TemporaryDirectory(prefix="seqrec-kernel-") as kernel_dir:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": kernel_dir}},
                                on_cell_execute=progress.start, on_cell_executed=progress.done)
        try:
            client.execute(env=env)
        finally:
            nbformat.write(nb, executed)
    print(f"executed {src.name} in {time.time() - t0:.0f}s -> {executed}")
    print(f"records: {out / 'runs'}; report: {out / 'report' / 'report.md'} "
          f"and {out / 'report' / 'report.pdf'}")
    return executed

"""The notebook as a newcomer meets it (issue 22): the runtime checked first, one-sentence
errors, a string where a list is expected, honest small numbers, figures and tables that say
what ran, and bars that do not flood a cell."""

from __future__ import annotations

import errno
import math
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from seqrec.data.synthetic import SynthConfig, write_synthetic
from seqrec.experiment import describe_grid
from seqrec.experiments import grid
from seqrec.notebook import NOTEBOOK, Session, report_summary
from seqrec.notebook_errors import STOPPED, short_errors, short_message
from seqrec.preflight import (
    ASSUMED_ITEMS,
    GIB,
    DeviceInfo,
    DiskEstimate,
    SetupError,
    as_list,
    check_runtime,
    disk_lines,
    grid_lines,
    parameter_count,
    train_memory_bytes,
)
from seqrec.record import RunRecord
from seqrec.report.coverage import MIN_TEST_WINDOWS, few_window_sentence
from seqrec.report.figures import FEW_LABEL, figure_exp2, figure_exp4
from seqrec.report.render import to_markdown
from seqrec.report.tables import table_exp2, table_exp4
from seqrec.runner import RunOptions, Sources

ROOT = Path(__file__).resolve().parents[1]
TINY = ["epochs=1", "hidden_size=8", "embedding_size=8", "memory_cells=4", "word_size=4",
        "batch_size=512"]
CPU = DeviceInfo("cpu", "CPU (2 threads)", None, 2)


def _one_sentence(text: str) -> bool:
    return "\n" not in text and text.count(". ") == 0


# ---------------------------------------------------------------------------------------------
# 1. The runtime first

def test_thesis_on_a_cpu_stops_at_once_with_one_sentence(monkeypatch):
    # Before: the set-up cell timed thesis-size models for 27 minutes before the CPU warning.
    # Now nothing is timed or built: a grid lookup would fail here.
    import seqrec.preflight as preflight

    monkeypatch.setattr(preflight, "grid", lambda *a, **k: pytest.fail("built a grid"))
    with pytest.raises(SetupError) as err:
        check_runtime("thesis", "auto", info=CPU)
    text = str(err.value)
    assert _one_sentence(text)
    assert 'PROFILE = "smoke"' in text and "Runtime > Change runtime type" in text
    lines = []
    check_runtime("smoke", "auto", info=CPU, log=lines.append)
    assert lines == ["Device: CPU (2 threads); the smoke profile runs here."]


def test_cuda_asked_for_on_a_cpu_runtime_says_how_to_get_a_gpu():
    # Before: "device 'cuda' was asked for but no CUDA GPU is available; use --device cpu".
    with pytest.raises(SetupError) as err:
        check_runtime("smoke", "cuda", info=CPU)
    text = str(err.value)
    assert _one_sentence(text) and "Change runtime type" in text and "--device" not in text


def test_a_gpu_is_named_with_its_memory_and_whether_the_thesis_fits():
    big = DeviceInfo("cuda", "NVIDIA A100-SXM4-40GB", 40 * GIB)
    small = DeviceInfo("cuda", "Tesla T4", 2 * GIB)
    lines = []
    check_runtime("thesis", "auto", info=big, log=lines.append)
    assert lines[0] == "Device: GPU NVIDIA A100-SXM4-40GB with 40.0 GiB of memory."
    assert lines[1].startswith("Memory: the largest model of this grid (exp3, ")
    assert f"at an assumed {ASSUMED_ITEMS:,} items" in lines[1] and lines[1].endswith("it fits.")
    lines.clear()
    check_runtime("thesis", "auto", info=small, experiments="exp4", log=lines.append)
    assert "(exp4, " in lines[1] and "does NOT fit" in lines[1]


def test_training_memory_estimate_by_hand():
    cfg = grid("exp2", "smoke", TINY)[0].config  # a GRU, embedding 8, hidden 8
    n_items, n_users = 100, 7
    # GRU: embedding 100 x 8, GRU 3 x 8 x (8 + 8) + 2 x 3 x 8 biases, output 8 x 100 + 100
    params = 100 * 8 + 3 * 8 * 16 + 48 + 8 * 100 + 100
    assert parameter_count(cfg, n_items, n_users) == params
    b, t = cfg.train.batch_size, cfg.data.seq_len - 1
    expected = 4 * (5 * params + 8 * b * t * (8 + 8) + 3 * b * n_items)
    assert train_memory_bytes(cfg, n_items, n_users) == expected


def test_a_wrong_data_path_suggests_the_built_in_data(tmp_path):
    # Before: "... (or generate a demo file with seqrec.data.synthetic.write_synthetic)".
    with pytest.raises(SetupError) as err:
        check_runtime("smoke", "cpu", str(tmp_path / "lastfm.tsv"), info=CPU)
    assert "DATA_PATH = None" in str(err.value) and "write_synthetic" not in str(err.value)
    (tmp_path / "lastfm").mkdir()
    (tmp_path / "lastfm" / "userid-timestamp-artid-artname-traid-traname.tsv").write_text("x")
    with pytest.raises(ValueError, match="is a folder; pass the log inside it"):
        check_runtime("smoke", "cpu", str(tmp_path / "lastfm"), info=CPU)


# ---------------------------------------------------------------------------------------------
# 5. A string where a list is expected

def test_a_string_where_a_list_is_expected(tmp_path):
    # Before: OVERRIDES = "epochs=2" failed character by character and EXPERIMENTS = "exp4"
    # gave "unknown experiment 'e'".
    assert as_list("exp4", "EXPERIMENTS") == ["exp4"] and as_list(None, "X") is None
    session = Session(str(tmp_path), profile="smoke", overrides="epochs=2", models="gru",
                      data="", checkpoint_dir="")
    assert session.overrides == ["epochs=2"] and session.models == ("gru",)
    assert session.data is None and session.checkpoint_dir is None
    assert {s.config.train.epochs for s in session.specs("exp2")} == {2}
    with pytest.raises(SetupError, match="EXPERIMENTS must be a list of strings"):
        as_list(["exp4", 4], "EXPERIMENTS")
    lines = []
    check_runtime("smoke", "cpu", experiments="exp4", overrides="epochs=2", info=CPU,
                  log=lines.append)


# ---------------------------------------------------------------------------------------------
# 3. One sentence, not a traceback

def test_short_message_keeps_tracebacks_for_what_is_not_seqrecs():
    from seqrec.config import profile

    try:
        profile("nope")
    except ValueError as e:
        assert short_message(e) == str(e)
    try:
        raise ValueError("a bug outside seqrec")
    except ValueError as e:
        assert short_message(e) is None
    assert short_message(KeyboardInterrupt()) == STOPPED
    full = OSError(errno.ENOSPC, "No space left on device", "/content/drive/MyDrive/x/ckpt.pt")
    text = short_message(full)
    assert "Drive's trash" in text and "CHECKPOINT_DIR" in text and "Google Drive is full" in text
    local = short_message(OSError(errno.ENOSPC, "No space left on device", "/tmp/x"))
    assert "Drive" not in local and "CHECKPOINT_DIR" in local


def test_outside_ipython_no_handler_is_installed():
    assert short_errors() is False


def test_in_a_kernel_seqrecs_errors_are_one_line_and_stop_run_all(tmp_path):
    from nbclient import NotebookClient

    def notebook(*sources: str):
        return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])

    install = ("from seqrec.notebook_errors import short_errors\nprint(short_errors())\n"
               "from seqrec.progress import text_only_kernel\nprint(text_only_kernel())")
    wrong = (f"from seqrec.preflight import check_runtime\n"
             f"check_runtime('smoke', 'cpu', {str(tmp_path / 'no.tsv')!r})")
    nb = notebook(install, wrong, "raise ValueError('not seqrec')", "print('after')")
    replies = []
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   on_cell_executed=lambda execute_reply, **_: replies.append(
                       execute_reply["content"]["status"])).execute()
    # The cell still fails (its reply says "error"), so "Run all" stops there.
    assert replies == ["ok", "error", "error", "ok"]
    # The epoch bars' switch sees this kernel as it is (before: it never saw the fallback).
    import importlib.util

    widgets = importlib.util.find_spec("ipywidgets") is not None
    printed = "".join(o.text for o in nb.cells[0].outputs if o.get("name") == "stdout")
    assert printed.split() == ["True", str(not widgets)]
    # ... and tqdm's "IProgress not found" warning no longer opens the set-up cell's output.
    assert not [o for o in nb.cells[0].outputs if "IProgress" in o.get("text", "")]
    (error,) = [o for o in nb.cells[1].outputs if o.output_type == "error"]
    shown = "\n".join(error.traceback)
    assert error.ename == "SetupError" and "DATA_PATH = None" in error.evalue
    assert len(shown.splitlines()) == 1 and "DEBUG = True" in shown
    (other,) = [o for o in nb.cells[2].outputs if o.output_type == "error"]
    assert len("\n".join(other.traceback).splitlines()) > 1  # a full traceback


# ---------------------------------------------------------------------------------------------
# 4. The disk

def test_disk_lines_warn_about_drive_and_its_trash():
    quiet = disk_lines(DiskEstimate(peak=10**9, written=5 * 10**9, free=10**11), on_drive=True)
    assert len(quiet) == 1 and quiet[0].startswith("Checkpoints: the runs still to train write "
                                                   "about 5.0 GB")
    trash = disk_lines(DiskEstimate(peak=10**9, written=5 * 10**9, free=2 * 10**9), True)
    assert "trash" in trash[1] and "CHECKPOINT_DIR" in trash[1]
    full = disk_lines(DiskEstimate(peak=10**9, written=5 * 10**9, free=10**8), True)
    assert full[1].startswith("WARNING: Google Drive is full")
    assert disk_lines(DiskEstimate(0, 0, None), True) == []


# ---------------------------------------------------------------------------------------------
# 2. Few test windows

def _record(run_id: str, model: str, value: float, chunk: int, recall: float, windows: int,
            experiment: str = "exp2", axis: str = "train_start_frac") -> RunRecord:
    return RunRecord.from_json({
        "run_id": run_id, "status": "ok",
        "spec": {"experiment": experiment, "group": experiment, "model": model, "chunk": chunk,
                 "seed": 0, "axis": axis, "value": value, "profile": "smoke"},
        "config": {"data": {"train_frac": 0.95, "train_start_frac": value if axis ==
                            "train_start_frac" else 0.0, "seq_len": value if axis == "seq_len"
                            else 10}},
        "data": {"kind": "file", "file": "/data/lastfm-small.tsv", "fingerprint": "f"},
        "split": {"windows": {"train": 500, "val": 50, "test": windows}},
        "metrics": {"recall@20": recall, "recall@1": recall / 3},
        "metrics_by_popularity": {t: {"recall@20": recall, "recall@1": recall / 3}
                                  for t in ("popular", "semi", "unpopular")},
        "n_windows_by_popularity": {"popular": windows // 2, "semi": windows // 3,
                                    "unpopular": windows - windows // 2 - windows // 3},
        "n_test_windows": windows})


def test_tables_give_the_test_windows_and_mark_too_few():
    records = [_record("a", "gru", 0.0, 0, 0.30, 500), _record("b", "gru", 0.0, 1, 0.0, 1),
               _record("c", "gru", 0.5, 0, 0.25, 400), _record("d", "gru", 0.5, 1, 0.27, 300)]
    table = table_exp2(records)
    assert list(table["Test windows"]) == [1, 300]
    text = to_markdown(table)
    assert "| 1 (few) |" in text and "| 300 |" in text
    sentence = few_window_sentence(records, "exp2", table)
    assert sentence.startswith(f"WARNING: 1 exp2 run rests on fewer than {MIN_TEST_WINDOWS} "
                               "test windows")
    assert "b (1)" in sentence and "a (" not in sentence
    # Exp 4 counts each popularity third: 300 windows leave 50 unpopular ones.
    exp4 = [_record(f"x{c}", "gru", 5, c, 0.3, 300, "exp4", "seq_len") for c in range(2)]
    t4 = table_exp4(exp4)
    assert list(t4["Test windows"]) == [300, 150, 100, 50]
    assert "2 exp4 runs" in few_window_sentence(exp4, "exp4", t4)


def test_figures_circle_too_few_windows_and_keep_bars_above_zero():
    records = [_record("a", "gru", 0.0, 0, 0.02, 500), _record("b", "gru", 0.0, 1, 0.0, 1),
               _record("c", "gru", 0.5, 0, 0.25, 400), _record("d", "gru", 0.5, 1, 0.27, 300)]
    fig = figure_exp2(records)
    ax = fig.axes[0]  # Recall@20
    circles = [c for c in ax.collections if c.get_label() == FEW_LABEL]
    assert len(circles) == 1 and np.allclose(circles[0].get_offsets(), [[0.95, 0.01]], atol=0.01)
    # Error bars: mean 0.01, std 0.0141 -> the bar ends at 0, not at -0.004.
    (bars,) = [c for c in ax.containers if hasattr(c, "lines")]
    (low,) = [seg for seg in bars.lines[2][0].get_segments() if seg[0, 0] > 0.7]  # p = 0
    assert low[:, 1].min() == pytest.approx(0.0, abs=1e-12)
    assert low[:, 1].max() == pytest.approx(0.01 + math.sqrt(2e-4))
    # Title: experiment, profile, data; the legend right of every panel.
    title = fig._suptitle.get_text()
    assert title.startswith("Exp 2") and "profile smoke" in title
    assert "lastfm-small.tsv" in title
    fig.canvas.draw()
    legend = fig.legends[0].get_window_extent()
    assert all(legend.x0 >= a.get_window_extent().x1 for a in fig.axes)
    assert any("cut at 0" in t.get_text() for t in fig.texts)
    four = figure_exp4([_record("x", "gru", 5, 0, 0.3, 300, "exp4", "seq_len")])
    assert FEW_LABEL in {c.get_label() for a in four.axes for c in a.collections}


# ---------------------------------------------------------------------------------------------
# 6. Headings from the grid that runs

def test_headings_describe_the_grid_that_runs(tmp_path):
    # Before: "window length 5, 10, 20, 50" and "3 chunks" above the smoke grid of 5, 10 on
    # chunks 0 and 1.
    text = Session(str(tmp_path), profile="smoke").heading("exp4")
    assert text.endswith("This grid (profile smoke): window length L 5, 10; chunks 0, 1; models "
                         "GRU, User-based GRU, DNC, User-based DNC, POP, Recent, Markov, "
                         "Item-KNN; 1 seed; 32 runs.")
    labels = [s.label() for s in grid("exp3", "smoke")]
    assert "embedding size 8, 32, one-hot; chunk 0;" in describe_grid(labels, "Embedding size")
    # The report passes records in path order: the same sentence (was "32, 8, one-hot" and
    # the models alphabetical in the demo's report).
    assert describe_grid(labels[::-1], "Embedding size") == describe_grid(labels,
                                                                          "Embedding size")
    exp4 = [s.label() for s in grid("exp4", "smoke")]
    assert describe_grid(sorted(exp4, key=lambda x: x.run_id), "Window length L") == \
        describe_grid(exp4, "Window length L")


# ---------------------------------------------------------------------------------------------
# A tiny grid run as the notebook runs it: plan warnings, show, bars, report

@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("newcomer")
    log = write_synthetic(tmp / "log.tsv", SynthConfig(n_rows=20_000, n_users=6, seed=3))
    return tmp, log


def test_plan_warns_before_training_when_a_split_leaves_few_windows(ran):
    tmp, log = ran
    session = Session(str(tmp / "plan"), data=str(log), profile="smoke", overrides=TINY)
    lines = grid_lines(session.specs("exp2"), session.out_dir, session.options())
    assert lines[0].startswith("WARNING: 1 split leaves fewer than 100 windows") or \
        lines[0].startswith("WARNING: 2 splits leave fewer than 100 windows")
    assert "exp2 train_start_frac=0.0 chunk 0: " in lines[0]
    assert lines[1].startswith("Checkpoints: the runs still to train write about")
    # On a GPU the largest run is set against its memory at the data's own item count.
    gpu = DeviceInfo("cuda", "Tesla T4", 15 * GIB)
    specs = session.specs("exp2")
    lines = grid_lines(specs, session.out_dir, session.options(), gpu)
    split_items = Sources(Path(session.out_dir))(specs[0].data).split(
        specs[0].config.data, 0).n_items
    assert lines[1].startswith("Memory: the largest model of this grid (exp2, user_gru, ")
    assert f"at this data's {split_items:,} items" in lines[1] and lines[1].endswith("fits.")


def test_epoch_bars_stay_off_in_a_kernel_without_widgets(ran, capsys, monkeypatch):
    # Before: without ipywidgets, every redraw of the per-batch bars was a line of the cell's
    # output (about 3,600 lines, 1.9 MB in the executed demo notebook).
    import seqrec.progress as progress
    from seqrec.runner import run_specs

    tmp, log = ran
    specs = Session(str(tmp), data=str(log), profile="smoke",
                    overrides=[*TINY, "epochs=3"]).specs("exp2")[:1]
    monkeypatch.setattr(progress, "text_only_kernel", lambda: False)
    run_specs(specs, tmp / "before", RunOptions(device="cpu", tensorboard=False))
    before = capsys.readouterr()
    assert "seq/s" in before.err  # the per-batch bars
    monkeypatch.setattr(progress, "text_only_kernel", lambda: True)
    run_specs(specs, tmp / "after", RunOptions(device="cpu", tensorboard=False))
    after = capsys.readouterr()
    assert "seq/s" not in after.err
    lines = (after.out + after.err).replace("\r", "\n").splitlines()
    assert len(lines) < 60 and len(after.out + after.err) < 6_000
    assert sum("epoch" in line for line in lines) >= 3  # one line per epoch stays


def test_show_prints_the_table_as_the_report_does(ran, capsys):
    tmp, log = ran
    session = Session(str(tmp / "show"), data=str(log), profile="smoke", overrides=TINY,
                      tensorboard=False, device="cpu", models=("gru",), baselines=("pop",))
    session.run("exp2")
    capsys.readouterr()
    session.show("exp2")
    out = capsys.readouterr().out
    assert "This grid (profile smoke): train start p 0, 0.5; chunk 0; models GRU, POP" in out
    assert "| Test windows | Runs |" in out and not re.search(r"\d\.\d{5}", out)
    assert "session.table('exp2') gives this table as a DataFrame" in out
    assert "WARNING: " in out and "(few)" in out  # this tiny log leaves few test windows
    table = session.table("exp2")
    assert table["Recall@20"].dtype == float and "Recall@20 std" in table.columns
    path = session.report()
    out = capsys.readouterr().out
    assert "Group 1: log.tsv, profile smoke" in out and "## " not in out
    assert path.name == "report.md"
    two = "# r\nintro\n# Group 1: a\nA\n## Exp 1\nt\n### x\nt\n# Group 2: b\nB\n## Exp 1\nt"
    assert report_summary(two) == "# r\nintro\n# Group 1: a\nA\n# Group 2: b\nB"


# ---------------------------------------------------------------------------------------------
# 9. The notebook's first cell, its form and its last cell

def test_the_notebook_says_where_the_data_is_and_what_to_expect():
    nb = nbformat.read(ROOT / NOTEBOOK, as_version=4)
    first = nb.cells[0].source
    for text in ("lastfm-dataset-1K.tar.gz", "642 MB", "ocelma.net", "Do not unpack",
                 "File upload", "/content/drive/MyDrive/", "12 hours", "five minutes",
                 "Group 1"):
        assert text in first, text
    config = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])][0].source
    assignments = [line for line in config.splitlines() if line and not line.startswith("#")]
    assert assignments and all("#@param" in line for line in assignments)
    setup = [c.source for c in nb.cells if "check_runtime(" in c.source][0]
    # the runtime is checked before the session is built and the plan timed
    assert setup.index("check_runtime(") < setup.index("session.describe(")
    assert setup.index("short_errors(") < setup.index("check_runtime(")
    last = [c for c in nb.cells if c.cell_type == "code"][-1].source
    assert last.startswith("report_md = session.report(")  # no PosixPath(...) echo

"""Clear errors instead of tracebacks (issue 19): each case through the CLI's `main()`, and the
demo's kernel started outside the output folder."""

from __future__ import annotations

import errno
import json
import os
import resource
import sys
import warnings

import nbformat
import pytest
import torch
from train_helper import TinyModel, kill_cfg, run_toy, toy_split

from seqrec import cli
from seqrec.cli import main
from seqrec.data.synthetic import SynthConfig, write_synthetic
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


# ---------------------------------------------------------------------------------------------
# The CLI's clear errors. Each failed before the fix with a traceback (or, for --only and
# --out '', with exit 0 and no word).

TINY = ["epochs=1", "hidden_size=8", "embedding_size=8", "batch_size=512"]


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "log.tsv"
    return write_synthetic(path, SynthConfig(n_rows=20_000, n_users=6, seed=3))


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def _failing(monkeypatch, error: BaseException) -> None:
    """Make `report` raise `error` once it starts (the command is irrelevant: main's wrapper
    maps what any command raises)."""
    def fail(args):
        raise error

    monkeypatch.setitem(cli.COMMANDS, "report", fail)


def test_ctrl_c_is_one_line_that_says_the_run_resumes(monkeypatch, capsys, tmp_path):
    _failing(monkeypatch, KeyboardInterrupt())
    assert main(["report", "--out", str(tmp_path)]) == 130
    assert _one_line(capsys) == (
        "interrupted; finished runs keep their records and an interrupted run resumes from its "
        "last checkpoint when you run the same command again")


@pytest.mark.parametrize(("error", "expected"), [
    (OSError(errno.ENOSPC, "No space left on device"),
     "error: no space left on the device; free some space or choose another --out"),
    (OSError(errno.ENOSPC, "No space left on device", "/o/runs/r/ckpt.pt"),
     "error: no space left on the device while writing /o/runs/r/ckpt.pt; free some space"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"),
     "error: the disk quota is exhausted; free some space, then run again: finished runs"),
    (OSError(errno.EFBIG, "File too large"),
     "error: a file grew past the size limit of this process (ulimit -f); raise it"),
    (PermissionError(errno.EACCES, "Permission denied", "/ro/ckpt/r"),
     "error: /ro/ckpt/r cannot be written (Permission denied); make the folder writable or "
     "choose another --out (or --checkpoint-dir)"),
    (OSError(errno.EROFS, "Read-only file system", "/ro/out/runs"),
     "error: /ro/out/runs cannot be written (Read-only file system); make the folder"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:118] data. DefaultCPUAllocator: not enough "
                  "memory: you tried to allocate 1099511627776 bytes."),
     "error: out of memory ([enforce fail at alloc_cpu.cpp:118] data. DefaultCPUAllocator"),
    (MemoryError(), "error: out of memory (MemoryError); lower batch_size, eval_batch_size, "
                    "hidden_size and embedding_size, or seq_len with --set"),
])
def test_system_errors_are_one_sentence(monkeypatch, capsys, tmp_path, error, expected):
    _failing(monkeypatch, error)
    assert main(["report", "--out", str(tmp_path)]) == 2
    assert _one_line(capsys).startswith(expected)


def test_a_bug_is_still_a_traceback(monkeypatch, tmp_path):
    _failing(monkeypatch, RuntimeError("some bug"))
    with pytest.raises(RuntimeError, match="some bug"):
        main(["report", "--out", str(tmp_path)])


def test_a_broken_pipe_exits_quietly(monkeypatch, capsys, tmp_path):
    _failing(monkeypatch, BrokenPipeError(errno.EPIPE, "Broken pipe"))
    assert main(["report", "--out", str(tmp_path)]) == 141
    assert capsys.readouterr().err == ""


def test_dry_run_into_a_closed_pipe_ends_quietly(monkeypatch, capsys, tmp_path):
    # `seqrec run --dry-run | head -1`: stdout is a pipe whose reader has gone (Python ignores
    # SIGPIPE, so the write raises BrokenPipeError).
    read, write = os.pipe()
    os.close(read)
    with open(write, "w") as closed:
        monkeypatch.setattr(sys, "stdout", closed)
        code = main(["run", "--experiment", "exp4", "--out", str(tmp_path), "--dry-run",
                     "--no-estimate"])
        monkeypatch.undo()
    assert code == 141 and capsys.readouterr().err == ""


def test_a_file_size_limit_is_one_sentence(capsys, tmp_path):
    # `ulimit -f 256` in this process (the soft limit only, so it can be raised again): Python
    # ignores SIGXFSZ, so the write that crosses the limit fails with EFBIG.
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, hard))
    try:
        code = main(["synth", "--out", str(tmp_path / "log.tsv"), "--rows", "5000", "--users",
                     "5"])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert code == 2
    assert _one_line(capsys).startswith("error: a file grew past the size limit of this "
                                        "process (ulimit -f); raise it (ulimit -f unlimited)")
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone


def test_empty_out_synth_into_a_folder_seed_and_only_are_refused(capsys, tmp_path):
    assert main(["run", "--experiment", "exp4", "--out", ""]) == 2
    assert _one_line(capsys) == ("error: --out is empty; give a folder (an empty path would "
                                 "write into the current folder)")
    assert main(["run", "--experiment", "exp4", "--out", str(tmp_path), "--checkpoint-dir",
                 " "]) == 2
    assert "--checkpoint-dir is empty" in _one_line(capsys)
    assert main(["synth", "--out", str(tmp_path)]) == 2
    assert _one_line(capsys) == (f"error: --out {tmp_path} is a folder; give the path of the "
                                 f"log file to write, e.g. {tmp_path / 'log.tsv'}")
    assert main(["run", "--experiment", "exp4", "--out", str(tmp_path), "--dry-run",
                 "--set", f"seed={2**64}"]) == 2
    assert "seed + seeds - 1 must be below 2**63" in _one_line(capsys)
    assert main(["run", "--experiment", "exp4", "--out", str(tmp_path), "--dry-run",
                 "--set", f"seed={2**63 - 2}", "--set", "seeds=2", "--no-estimate"]) == 0
    capsys.readouterr()
    assert main(["run", "--experiment", "exp4", "--out", str(tmp_path), "--only", "nope*"]) == 2
    err = _one_line(capsys)
    assert err.startswith("error: --only nope* matches none of the 32 runs of exp4 (e.g. "
                          "exp4-c0-gru-seq_len5-s0-")


def test_a_file_in_place_of_a_folder_is_named(log, capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "tensorboard").write_text("")
    args = ["run", "--experiment", "exp4", "--data", str(log), "--out", str(out), "--quiet",
            "--only", "exp4-c0-pop-seq_len5-*", "--no-report"]
    assert main(args) == 2
    err = _one_line(capsys)
    assert err.startswith(f"error: {out / 'tensorboard'} is a file where seqrec needs a "
                          f"folder (for {out / 'tensorboard'}/exp4-c0-pop-seq_len5-")
    (out / "tensorboard").unlink()
    blocker = tmp_path / "ckpt"
    blocker.write_text("")
    args = ["run", "--experiment", "exp4", "--data", str(log), "--out", str(out), "--quiet",
            "--only", "exp4-c0-gru-seq_len5-*", "--no-report", "--checkpoint-dir", str(blocker),
            *[a for o in TINY for a in ("--set", o)]]
    assert main(args) == 2
    assert _one_line(capsys).startswith(f"error: {blocker} is a file where seqrec needs a "
                                        f"folder")


def test_out_of_memory_in_training_names_the_settings_to_lower(tmp_path):
    class Hungry(TinyModel):
        def forward(self, items, users):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] data. DefaultCPUAllocator: "
                               "not enough memory: you tried to allocate 1099511627776 bytes.")

    rec = run_toy(toy_split(), kill_cfg(), tmp_path / "r", torch.device("cpu"), run_id="oom",
                  progress=False, model_factory=lambda n, u: Hungry(n, u))
    assert rec["status"] == "failed"
    assert rec["reason"] == ("run oom: out of memory on cpu; lower batch_size (now 16) or "
                             "eval_batch_size (now 64), hidden_size and embedding_size (the "
                             "model), or seq_len (now 5)")


def test_damaged_lines_are_one_warning_line_on_the_console(monkeypatch, capsys, tmp_path):
    log = write_synthetic(tmp_path / "log.tsv",
                          SynthConfig(n_rows=20_000, n_users=6, seed=3, damaged=0.001))
    with pytest.warns(UserWarning) as caught:  # pytest records warnings instead of printing
        assert main(["prepare", "--experiment", "exp4", "--data", str(log), "--out",
                     str(tmp_path / "out")]) == 0
    (only,) = caught
    assert str(only.message).startswith(f"data {log}: 20000 rows read, 20 damaged lines "
                                        f"skipped (line 3078: unparsable time")
    # ... and main prints each warning as one line while a command runs, as it prints errors.
    shown = []
    monkeypatch.setitem(cli.COMMANDS, "report", lambda args: shown.append(
        warnings.formatwarning("a cache was rebuilt", UserWarning, "x.py", 1)) or 0)
    default = warnings.formatwarning
    assert main(["report", "--out", str(tmp_path)]) == 0
    assert shown == ["warning: a cache was rebuilt\n"] and warnings.formatwarning is default

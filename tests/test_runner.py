"""The runner and the command line, end to end on a tiny generated log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqrec import runner
from seqrec.cli import main
from seqrec.data.synthetic import SynthConfig, write_synthetic
from seqrec.experiments import grid

# Tiny sizes: every model trains in well under a second per epoch.
TINY = ["epochs=1", "hidden_size=8", "embedding_size=8", "memory_cells=4", "word_size=4",
        "batch_size=512"]


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> Path:
    """A 20,000-row log of 6 heavy users: exp 4's last 30% in 3 chunks still has windows."""
    path = tmp_path_factory.mktemp("data") / "log.tsv"
    return write_synthetic(path, SynthConfig(n_rows=20_000, n_users=6, seed=3))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "seqrec", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_help_lists_every_command():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("synth", "prepare", "train", "run", "report", "demo"):
        assert command in out.stdout
    sub = run_cli("run", "--help")
    assert sub.returncode == 0 and "--shard" in sub.stdout and "--dry-run" in sub.stdout


def test_bad_input_is_one_clear_sentence(tmp_path, capsys):
    assert main(["prepare", "--data", str(tmp_path / "missing.tsv"), "--out", str(tmp_path),
                 "--experiment", "exp1"]) == 2
    err = capsys.readouterr().err
    assert "missing.tsv" in err and "does not exist" in err and "Traceback" not in err
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["run", "--experiment", "exp1", "--out", str(a_file / "sub")]) == 2
    assert "not writable" in capsys.readouterr().err
    assert main(["run", "--experiment", "exp1", "--out", str(tmp_path), "--profile", "huge",
                 "--dry-run"]) == 2
    assert "unknown profile" in capsys.readouterr().err
    assert main(["run", "--experiment", "exp1", "--out", str(tmp_path), "--dry-run",
                 "--set", "seqlen=3"]) == 2
    assert "valid keys" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: unknown experiment
        main(["run", "--experiment", "exp9", "--out", str(tmp_path)])


def test_prepare_json_summary(log, tmp_path, capsys):
    assert main(["prepare", "--data", str(log), "--out", str(tmp_path), "--experiment",
                 "exp4", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows_read"] == 20_000 and summary["lines_skipped"] == 0
    assert summary["users"] == 6
    splits = summary["splits"]
    assert {(s["value"], s["chunk"]) for s in splits} == {(L, c) for L in (5, 10)
                                                          for c in range(3)}
    for s in splits:
        assert s["windows"]["train"] > 0 and s["windows"]["test"] > 0
        assert set(s["dropped_unseen"]) == {"val", "test"}


def test_train_prints_its_record_and_does_not_train_twice(log, tmp_path, capsys):
    args = ["train", "--data", str(log), "--out", str(tmp_path), "--experiment", "exp4",
            "--model", "gru", "--chunk", "1", "--quiet", "--json"]
    for o in TINY:
        args += ["--set", o]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["status"] == "ok" and first["spec"]["chunk"] == 1
    assert 0.0 <= first["metrics"]["recall@20"] <= 1.0
    record = tmp_path / "runs" / first["run_id"] / "record.json"
    stamp = record.stat().st_mtime_ns
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == first
    assert record.stat().st_mtime_ns == stamp


def test_run_skips_finished_runs_and_builds_a_report(log, tmp_path, monkeypatch):
    overrides = TINY
    recs = runner.run_experiment("exp2", tmp_path, data=log, overrides=overrides,
                                 progress=False, log=lambda *a: None)
    assert len(recs) == len(grid("exp2", "smoke", overrides))
    assert all(r["status"] == "ok" for r in recs)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("seqrec.train.train_run", no_training)
    again = runner.run_experiment("exp2", tmp_path, data=log, overrides=overrides,
                                  progress=False, log=lambda *a: None)
    assert again == recs
    assert main(["report", "--out", str(tmp_path), "--set", "epochs=1", "--set",
                 "hidden_size=8", "--set", "embedding_size=8", "--set", "memory_cells=4",
                 "--set", "word_size=4", "--set", "batch_size=512"]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Exp 2" in text and (tmp_path / "report" / "report.pdf").stat().st_size > 0


def test_dry_run_shows_status(log, tmp_path, capsys):
    spec = grid("exp1", "smoke", TINY)[0]
    runner.run_specs([spec], runner.data_source(log, tmp_path), tmp_path, progress=False,
                     log=lambda *a: None)
    args = ["run", "--experiment", "exp1", "--out", str(tmp_path), "--dry-run"]
    for o in TINY:
        args += ["--set", o]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"ok       {spec.run_id}"
    assert lines[-1] == f"1 ok, {len(lines) - 2} todo"


def test_a_failing_run_is_recorded_and_the_grid_goes_on(log, tmp_path):
    # seq_len 60: exp 4's chunks of this log have no val windows that long.
    specs = grid("exp4", "smoke", TINY + ["seq_len=60"], baselines=())[:2]
    source = runner.data_source(log, tmp_path)
    recs = runner.run_specs(specs, source, tmp_path, progress=False, log=lambda *a: None)
    assert [r["status"] for r in recs] == ["failed", "failed"]
    assert "seq_len" in recs[0]["reason"]
    assert runner.status(tmp_path, specs[0]) == "failed"


def test_a_killed_run_resumes_and_ends_as_an_uninterrupted_one(log, tmp_path):
    long_run = ["epochs=12", "patience=12", "hidden_size=16", "embedding_size=16",
                "batch_size=64"]
    (spec,) = grid("exp4", "smoke", long_run, baselines=(), models=("gru",))[:1]
    args = ["run", "--experiment", "exp4", "--data", str(log), "--quiet", "--no-report",
            "--only", spec.run_id]
    for o in long_run:
        args += ["--set", o]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "seqrec", *args, "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    ckpt = runner.run_dir(killed, spec) / "ckpt.pt"
    deadline = time.monotonic() + 240
    while proc.poll() is None and not ckpt.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    was_running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert was_running, "the run ended before it could be killed"
    assert runner.status(killed, spec) == "partial"

    quiet = dict(progress=False, log=lambda *a: None)
    (resumed,) = runner.run_specs([spec], runner.data_source(log, killed), killed, **quiet)
    plain = tmp_path / "plain"
    (uninterrupted,) = runner.run_specs([spec], runner.data_source(log, plain), plain, **quiet)
    assert resumed["resumed_from"] is not None
    assert resumed["metrics"] == uninterrupted["metrics"]
    assert ([h["train_loss"] for h in resumed["history"]]
            == [h["train_loss"] for h in uninterrupted["history"]])

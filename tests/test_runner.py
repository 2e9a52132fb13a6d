"""The runner and the command line, end to end on a tiny generated log."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqrec import runner
from seqrec.app import run_experiment
from seqrec.cli import main
from seqrec.data.source import DataRef
from seqrec.data.synthetic import SynthConfig, write_synthetic
from seqrec.experiments import EXPERIMENTS, grid
from seqrec.record import read_record

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
    assert main(["run", "--experiment", "exp1", "--data", str(tmp_path), "--out",
                 str(tmp_path / "o"), "--dry-run"]) == 2
    assert "is a folder" in capsys.readouterr().err
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
    assert {(s["value"], s["chunk"]) for s in splits} == {
        (L, c) for L in (5, 10) for c in EXPERIMENTS["exp4"].chunks["smoke"]}
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


def quiet(**kwargs) -> dict:
    return dict(options=runner.RunOptions(progress=False, tensorboard=False),
                log=lambda *a: None, **kwargs)


def test_run_skips_finished_runs_and_builds_a_report(log, tmp_path, monkeypatch, capsys):
    recs = run_experiment("exp2", tmp_path, data=log, overrides=TINY, **quiet())
    assert len(recs) == len(grid("exp2", "smoke", TINY))
    assert all(r.ok for r in recs)
    assert {r.data["fingerprint"] for r in recs} == {DataRef.file(log).fingerprint}
    assert {r.data["rows_read"] for r in recs} == {20_000}
    assert all(r.request["experiment"] == "exp2" for r in recs)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("seqrec.train.train_run", no_training)
    again = run_experiment("exp2", tmp_path, data=log, overrides=TINY, **quiet())
    assert again == recs
    # The report takes the grid, its settings and its data from the records: no --profile,
    # no --set (before: without them it wrote "0 run records ... no runs yet" over a good one).
    assert main(["report", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Exp 2" in text and "no runs yet" not in text
    assert f"{len(recs)} run records: {len(recs)} finished, 0 failed; 0 of {len(recs)} expected" \
        in text
    assert str(log) in text and "20,000 rows read" in text
    assert (tmp_path / "report" / "report.pdf").stat().st_size > 0


def test_report_never_replaces_a_report_with_an_empty_one(tmp_path, capsys):
    (tmp_path / "report").mkdir(parents=True)
    (tmp_path / "report" / "report.md").write_text("a report with runs\n")
    assert main(["report", "--out", str(tmp_path)]) == 1
    assert "no run records" in capsys.readouterr().out
    assert (tmp_path / "report" / "report.md").read_text() == "a report with runs\n"


def test_one_grid_on_two_logs_trains_both_and_the_report_keeps_them_apart(tmp_path):
    # Before: the second log's runs were skipped as done and the first log's records returned.
    other = write_synthetic(tmp_path / "other.tsv", SynthConfig(n_rows=20_000, n_users=6,
                                                                seed=4))
    first = write_synthetic(tmp_path / "first.tsv", SynthConfig(n_rows=20_000, n_users=6,
                                                                seed=3))
    out = tmp_path / "out"
    kw = quiet(overrides=TINY, models=("gru",), baselines=("pop",))
    a = run_experiment("exp2", out, data=first, **kw)
    b = run_experiment("exp2", out, data=other, **kw)
    assert len(a) == len(b) == 4 and not {r.run_id for r in a} & {r.run_id for r in b}
    assert {r.metrics["recall@20"] for r in a} != {r.metrics["recall@20"] for r in b}
    assert len(list((out / "runs").glob("*/record.json"))) == 8
    from seqrec.app.report import build_report

    text = build_report(out).read_text()
    assert text.count("# Group ") == 2 and str(first) in text and str(other) in text
    assert text.count("4 run records: 4 finished, 0 failed; 0 of 4 expected") == 2
    tables = sorted(p.name for p in (out / "report").glob("exp2-*.md"))
    assert len(tables) == 2 and all("tests" not in t for t in tables)


def test_dry_run_shows_status(log, tmp_path, capsys):
    spec = grid("exp1", "smoke", TINY, data=DataRef.file(log))[0]
    runner.run_specs([spec], tmp_path, **quiet())
    args = ["run", "--experiment", "exp1", "--data", str(log), "--out", str(tmp_path),
            "--dry-run"]
    for o in TINY:
        args += ["--set", o]
    assert main([*args, "--no-estimate"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"ok       {spec.run_id}"
    assert lines[-1] == f"1 ok, {len(lines) - 2} todo"
    # With the estimate (the default): the plan per experiment, and how it was made.
    assert main(args) == 0
    out = capsys.readouterr().out
    n = len(grid("exp1", "smoke", TINY))
    assert f"exp1: {n} runs: 1 done, {n - 1} to do, 0 failed; at most " in out
    assert "timing gru (threshold=" in out and "as if no run stopped early" in out
    # A record.json that holds valid JSON but no record object: the run is redone, with a
    # warning (before: --dry-run crashed on it).
    (runner.run_dir(tmp_path, spec) / "record.json").write_text("[1, 2]")
    with pytest.warns(RuntimeWarning, match="holds a JSON list"):
        assert main([*args, "--no-estimate"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"todo     {spec.run_id}"


def test_data_that_cannot_be_prepared_stops_the_grid_and_records_nothing(log, tmp_path):
    # seq_len 60: exp 4's chunks of this log have no val windows that long. Before: every spec
    # got a failed record, and after fixing the setting `Run all` skipped them all.
    with pytest.raises(runner.DataError, match="seq_len=60.*no window"):
        run_experiment("exp4", tmp_path, data=log, overrides=TINY + ["seq_len=60"],
                              **quiet())
    assert not list(tmp_path.glob("runs/*/record.json"))
    code = main(["run", "--experiment", "exp4", "--data", str(log), "--out", str(tmp_path),
                 "--set", "seq_len=60", "--quiet"])
    assert code == 2 and not list(tmp_path.glob("runs/*/record.json"))


def test_failed_runs_count_exit_non_zero_and_are_retried_on_request(log, tmp_path, monkeypatch,
                                                                     capsys):
    import seqrec.train.stages as stages
    from seqrec.train import EpochResult

    def diverging(*args, **kwargs):
        return EpochResult(float("nan"), 0.1, 1.0)

    monkeypatch.setattr(stages, "train_epoch", diverging)
    args = ["run", "--experiment", "exp2", "--data", str(log), "--out", str(tmp_path),
            "--models", "gru", "--baselines", "pop", "--quiet", "--no-report"]
    for o in TINY:
        args += ["--set", o]
    assert main(args) == 1  # before: exit 0 with every run failed
    out, err = capsys.readouterr()
    assert "4 runs, 2 failed" in out and "2 of 4 runs failed" in err
    assert "--retry-failed" in err
    failed = [r for r in (read_record(p.parent) for p in tmp_path.glob("runs/*/record.json"))
              if not r.ok]
    assert len(failed) == 2 and all("training loss became nan" in r.reason for r in failed)
    monkeypatch.undo()
    assert main(args) == 1  # failed runs stay failed until asked
    assert main([*args, "--retry-failed"]) == 0
    assert "4 runs, 0 failed" in capsys.readouterr().out


def test_a_damaged_record_is_redone_and_temporaries_are_cleaned(log, tmp_path):
    spec = grid("exp4", "smoke", TINY, data=DataRef.file(log), models=("gru",),
                baselines=())[0]
    folder = runner.run_dir(tmp_path, spec)
    folder.mkdir(parents=True)
    (folder / "record.json").write_text('{"run_id": "x", "sta')  # cut by a crash of a copy
    (folder / ".record.json.abc123.tmp").write_text("half a record")  # left by a kill
    with pytest.warns(RuntimeWarning, match="cannot be read"):
        (rec,) = runner.run_specs([spec], tmp_path, **quiet())
    assert rec.ok and read_record(folder) == rec
    assert not list(folder.glob(".*.tmp")) and not list(folder.glob("*.pt"))


def test_a_killed_run_resumes_and_ends_as_an_uninterrupted_one(log, tmp_path):
    long_run = ["epochs=12", "patience=12", "hidden_size=16", "embedding_size=16",
                "batch_size=64"]
    (spec,) = grid("exp4", "smoke", long_run, baselines=(), models=("gru",),
                   data=DataRef.file(log))[:1]
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

    (resumed,) = runner.run_specs([spec], killed, **quiet())
    plain = tmp_path / "plain"
    (uninterrupted,) = runner.run_specs([spec], plain, **quiet())
    assert resumed.resumed_from is not None
    assert resumed.metrics == uninterrupted.metrics
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"]
                                                         for h in uninterrupted.history]


def test_a_fifth_experiment_is_one_registry_entry(log, tmp_path, monkeypatch, capsys):
    # An experiment defined here, as it would be in seqrec/experiments.py (with a generic
    # table): the CLI, the runner, the report and the notebook session take it from there.
    from functools import partial

    from seqrec.app.report import build_report
    from seqrec.experiment import Experiment
    from seqrec.experiments import EXPERIMENTS
    from seqrec.notebook import Session
    from seqrec.report.tables import table_other

    exp5 = Experiment(
        name="exp5", title="Exp 5: hidden size", description="GRU width against accuracy.",
        axis="hidden_size", axis_label="Hidden size", points={"smoke": (8, 16)},
        chunks={"smoke": (0,)}, models=("gru",), baselines=("pop",),
        settings={"smoke": {"epochs": 1, "embedding_size": 8, "batch_size": 512,
                            "start_frac": 0.5, "chunks": 1}},
        table=partial(table_other, experiment="exp5"), thesis=False)
    monkeypatch.setitem(EXPERIMENTS, "exp5", exp5)
    assert main(["run", "--experiment", "exp5", "--data", str(log), "--out", str(tmp_path),
                 "--dry-run", "--no-estimate"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[1].split("-")[3] for line in listed[:-1]] == [
        "hidden_size8", "hidden_size8", "hidden_size16", "hidden_size16"]
    Session(str(tmp_path), data=str(log), profile="smoke", device="cpu").run_all(["exp5"])
    md = build_report(tmp_path).read_text()
    assert "## Exp 5: hidden size" in md and "4 finished (seeds 0), 0 failed, 0 missing" in md


def test_tensorboard_event_files_hold_each_epoch_and_the_final_metrics(log, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = grid("exp4", "smoke", [*TINY, "epochs=3", "patience=3"], data=DataRef.file(log),
                models=("gru",), baselines=())[0]
    lines: list[str] = []
    (rec,) = runner.run_specs([spec], tmp_path, runner.RunOptions(progress=False),
                              log=lines.append)
    acc = EventAccumulator(str(tmp_path / "tensorboard" / spec.run_id))
    acc.Reload()

    def values(tag):
        return [e.value for e in acc.Scalars(tag)]

    stage_a = [h for h in rec.history if h["stage"] == "a"]
    stage_b = [h for h in rec.history if h["stage"] == "b"]
    assert len(stage_a) == 3 and stage_b
    assert values("loss/train_a") == pytest.approx([h["train_loss"] for h in stage_a], rel=1e-6)
    assert values("loss/val") == pytest.approx([h["val_loss"] for h in stage_a], rel=1e-6)
    assert values("loss/train_b") == pytest.approx([h["train_loss"] for h in stage_b], rel=1e-6)
    assert values("test/recall@20") == pytest.approx([rec.metrics["recall@20"]], rel=1e-6)
    assert values("test_popular/recall@20") == pytest.approx(
        [rec.metrics_by_popularity["popular"]["recall@20"]], rel=1e-6)
    # One line per finished epoch stays in the log: losses, improvement, time.
    epochs = [line for line in lines if " epoch " in line and "train loss" in line]
    assert len(epochs) == len(rec.history)
    assert f"val loss {stage_a[0]['val_loss']:.4f} (improved)" in epochs[0]
    assert lines[-1] == "1 of 1 runs done (0 before, 1 now)"
    runner.run_specs([spec], tmp_path, runner.RunOptions(progress=False), log=lines.append)
    assert lines[-1] == "1 of 1 runs done (1 before, 0 now)"


def test_checkpoints_can_live_outside_the_output_folder(log, tmp_path, monkeypatch):
    import seqrec.train.stages as stages

    real = stages.train_epoch
    calls = [0]

    def dies_in_epoch_two(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("the machine went away")
        return real(*args, **kwargs)

    spec = grid("exp4", "smoke", [*TINY, "epochs=3", "patience=3"], data=DataRef.file(log),
                models=("gru",), baselines=())[0]
    local = tmp_path / "local"
    options = runner.RunOptions(progress=False, tensorboard=False, checkpoint_dir=str(local))
    monkeypatch.setattr(stages, "train_epoch", dies_in_epoch_two)
    (failed,) = runner.run_specs([spec], tmp_path / "out", options, log=lambda *a: None)
    monkeypatch.undo()
    assert not failed.ok and "went away" in failed.reason
    assert (local / spec.run_id / "ckpt.pt").exists()
    assert not list((tmp_path / "out" / "runs" / spec.run_id).glob("*.pt"))
    retry = dataclasses.replace(options, retry_failed=True)
    (rec,) = runner.run_specs([spec], tmp_path / "out", retry, log=lambda *a: None)
    assert rec.ok and rec.resumed_from["stage"] == "a" and rec.resumed_from["epoch"] == 0
    assert not (local / spec.run_id).exists()  # removed with the finished run's checkpoints
    (plain,) = runner.run_specs([spec], tmp_path / "plain",
                                runner.RunOptions(progress=False, tensorboard=False),
                                log=lambda *a: None)
    assert rec.metrics == plain.metrics


@pytest.mark.parametrize("split", ["leave_one_out", "global_time"])
def test_other_protocols_work_through_prepare_train_and_run(log, tmp_path, capsys, split):
    sets = [a for o in [*TINY, f"split={split}"] for a in ("--set", o)]
    assert main(["prepare", "--data", str(log), "--out", str(tmp_path), "--experiment", "exp4",
                 "--json", *sets]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {s["split"] for s in summary["splits"]} == {split}
    assert all(s["windows"]["test"] > 0 for s in summary["splits"])
    assert main(["train", "--data", str(log), "--out", str(tmp_path), "--experiment", "exp4",
                 "--model", "user_dnc", "--quiet", "--json", *sets]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["status"] == "ok" and record["split"]["split"] == split
    assert main(["run", "--experiment", "exp4", "--data", str(log), "--out", str(tmp_path),
                 "--only=-c0-", "--quiet", "--no-report", *sets]) == 0
    out = capsys.readouterr().out
    n = len([s for s in grid("exp4", "smoke", [*TINY, f"split={split}"]) if s.chunk == 0])
    assert f"{n} runs, 0 failed" in out
    # The protocol is part of every run's identity.
    assert not {s.run_id for s in grid("exp4", "smoke", TINY)} & {
        s.run_id for s in grid("exp4", "smoke", [*TINY, f"split={split}"])}

"""The Ray backend, end to end on a local Ray instance of 2 CPUs and a tiny generated log.

One Ray instance serves the module (starting one takes seconds); the backend uses the
instance this process is connected to and leaves it running. Each test's grid is tiny. The
tests that train with one thread come first: their workers (each one imports torch once) serve
the next test, while the 2-thread runs need workers of their own.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from seqrec import runner
from seqrec.app import run_grid
from seqrec.cli import main
from seqrec.data.source import DataRef
from seqrec.data.synthetic import SynthConfig, write_synthetic
from seqrec.experiments import grid
from seqrec.record import read_record, write_record

ray = pytest.importorskip("ray")

from seqrec.ray_backend import RAY_MISSING, RayOptions, run_specs_ray  # noqa: E402

TINY = ["epochs=1", "hidden_size=8", "embedding_size=8", "memory_cells=4", "word_size=4",
        "batch_size=512"]
QUIET = runner.RunOptions(progress=False, tensorboard=False)
# Everything a record says of its result and its settings (not the time it took).
TIMES = ("seconds", "seq_per_s")


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "log.tsv"
    return write_synthetic(path, SynthConfig(n_rows=20_000, n_users=6, seed=3))


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="warning")
    yield
    ray.shutdown()


def result(record) -> dict:  # noqa: ANN001 - a RunRecord
    d = record.to_json()
    d["history"] = [{k: v for k, v in h.items() if k not in TIMES} for h in d["history"]]
    for key in ("seconds", "seq_per_s", "peak_memory_bytes", "resumed_from", "versions"):
        d.pop(key)
    return d


def test_exp4_smoke_grid_through_ray_gives_the_local_runner_records(log, tmp_path, local_ray,
                                                                    capsys):
    sets = [a for o in TINY for a in ("--set", o)]
    args = ["run", "--experiment", "exp4", "--data", str(log), "--models", "gru,dnc",
            "--baselines", "pop", "--quiet", "--no-report", "--no-tensorboard", *sets]
    specs = grid("exp4", "smoke", TINY, models=("gru", "dnc"), baselines=("pop",), data=log)
    assert main([*args, "--out", str(tmp_path / "local")]) == 0
    assert main([*args, "--out", str(tmp_path / "ray"), "--backend", "ray"]) == 0
    out = capsys.readouterr().out
    assert f"{len(specs)} runs, 0 failed" in out
    assert "each run asks for 1 CPU and 0 GPUs (1 thread): up to 2 at a time" in out
    # Every run trained in a worker with its share of threads (1 of the 2 CPUs).
    started = [line for line in out.splitlines() if " started on " in line]
    assert len(started) == len(specs) and all(", 1 thread" in line for line in started)
    assert os.getpid() not in {int(pid) for pid in re.findall(r"pid (\d+)", out)}
    for spec in specs:
        here = read_record(runner.run_dir(tmp_path / "local", spec))
        there = read_record(runner.run_dir(tmp_path / "ray", spec))
        assert result(there) == result(here), spec.run_id
        assert not list(runner.run_dir(tmp_path / "ray", spec).glob("*.pt"))

    # Run again: everything is skipped, and Ray is not asked for anything.
    lines: list[str] = []
    again = run_specs_ray(specs, tmp_path / "ray", QUIET, lines.append)
    assert [r.run_id for r in again] == [s.run_id for s in specs]
    assert lines == [f"{len(specs)} of {len(specs)} runs done ({len(specs)} before, 0 now)"]


def test_a_killed_worker_resumes_its_run_from_the_checkpoint(log, tmp_path, local_ray):
    long_run = ["epochs=30", "patience=30", "hidden_size=16", "embedding_size=16",
                "batch_size=32"]
    (spec,) = grid("exp4", "smoke", long_run, baselines=(), models=("gru",),
                   data=DataRef.file(log))[:1]
    others = grid("exp4", "smoke", TINY, baselines=("pop",), models=("gru",),
                  data=DataRef.file(log))[:4]
    out = tmp_path / "killed"
    ckpt = runner.checkpoint_path(out, spec)
    pids: list[int] = []
    killed = threading.Event()

    def kill_once_checkpointed() -> None:
        deadline = time.monotonic() + 120
        while not ckpt.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        if ckpt.exists() and not (runner.run_dir(out, spec) / "record.json").exists():
            os.kill(pids[0], signal.SIGKILL)
            killed.set()

    lines: list[str] = []

    def log_line(*parts) -> None:
        line = " ".join(map(str, parts))
        lines.append(line)
        match = re.match(rf"{re.escape(spec.run_id)} started on .*pid (\d+)", line)
        if match and not pids:
            pids.append(int(match.group(1)))
            threading.Thread(target=kill_once_checkpointed, daemon=True).start()

    records = run_specs_ray([spec, *others], out, QUIET, log_line, RayOptions(max_retries=2))
    assert killed.is_set(), "the run ended before its worker could be killed"
    assert len(records) == 5 and all(r.ok for r in records)
    resumed = records[0]
    assert resumed.resumed_from is not None
    assert [line for line in lines if line.startswith(f"{spec.run_id} started (resuming after "
                                                      "its worker died)")], lines
    assert lines[-1] == "5 of 5 runs done (0 before, 5 now)"
    (plain,) = runner.run_specs([spec], tmp_path / "plain", QUIET, log=lambda *a: None)
    assert result(resumed) == result(plain)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in plain.history]


def test_session_runs_on_ray_and_retries_failed_runs_there(log, tmp_path, local_ray, capsys):
    from seqrec.notebook import Session

    session = Session(str(tmp_path), data=str(log), profile="smoke", device="cpu",
                      overrides=TINY, models=("gru",), baselines=(), tensorboard=False,
                      backend="ray")
    (spec,) = session.specs("exp4", only=["-c0-gru-seq_len5-"])
    # A failed record, as a diverged run leaves one: skipped, then retried on Ray when asked.
    (rec,) = runner.run_specs([spec], tmp_path, QUIET, log=lambda *a: None)
    write_record(runner.run_dir(tmp_path, spec),
                 dataclasses.replace(rec, status="failed", reason="diverged", metrics={}))
    (skipped,) = session.run("exp4", only=[spec.run_id])
    assert not skipped.ok and "to retry them: session.run('exp4', retry_failed=True)" in \
        capsys.readouterr().out
    (retried,) = session.run("exp4", only=[spec.run_id], retry_failed=True, cpus_per_run=2)
    assert retried.ok and read_record(runner.run_dir(tmp_path, spec)) == retried
    out = capsys.readouterr().out
    assert "(1 thread)" not in out and f"{spec.run_id} started (retrying a failed run) on " \
        in out and ", 2 threads" in out


def test_data_that_cannot_be_prepared_stops_the_grid_before_ray(log, tmp_path, monkeypatch):
    # No Ray instance: the data is prepared (and fails) before Ray would be started.
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray was started"))
    specs = grid("exp4", "smoke", [*TINY, "seq_len=60"], models=("gru",), baselines=(),
                 data=log)
    with pytest.raises(runner.DataError, match="seq_len=60"):
        run_specs_ray(specs, tmp_path, QUIET, lambda *a: None)
    assert not list(tmp_path.glob("runs/*/record.json"))


def test_without_ray_the_backend_says_how_to_install_it(log, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ValueError, match=re.escape("pip install 'seqrec[ray]'")):
        run_grid([], tmp_path, QUIET, backend="ray")
    code = main(["run", "--experiment", "exp4", "--data", str(log), "--out", str(tmp_path),
                 "--backend", "ray", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err == f"error: {RAY_MISSING}\n"
    assert not (tmp_path / "runs").exists()


def test_bad_backend_settings_are_one_sentence(log, tmp_path, capsys):
    for bad, text in ((dict(cpus_per_run=0), "cpus_per_run must be above 0"),
                      (dict(gpus_per_run=1.5), "gpus_per_run must be 0, a fraction"),
                      (dict(max_retries=-2), "max_retries must be -1")):
        with pytest.raises(ValueError, match=text):
            RayOptions(**bad)
    with pytest.raises(ValueError, match="only apply to the ray backend"):
        run_grid([], tmp_path, QUIET, address="auto")
    assert main(["run", "--experiment", "exp4", "--out", str(tmp_path), "--address", "auto",
                 "--quiet"]) == 2
    assert "--address only apply with --backend ray" in capsys.readouterr().err

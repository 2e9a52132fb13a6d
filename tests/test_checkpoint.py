"""Checkpoints: validation on load, fall-back, RNG states, and a real SIGKILL and resume."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor
from train_helper import TinyModel, kill_cfg, run_toy, toy_split

from seqrec import checkpoint as ckpt
from seqrec.config import to_dict
from seqrec.train import CHECKPOINT_FILE, MODEL_FILE

CPU = torch.device("cpu")
HELPER = Path(__file__).with_name("train_helper.py")




def payload(epoch: int) -> dict:
    return {"stage": "a", "epoch": epoch, "model": {"w": torch.full((3,), float(epoch))},
            "optimizer": {}, "early": {}, "history": [], "config": {}, "rng": ckpt.rng_state()}


# ---------------------------------------------------------------------------------------------
# Files

def test_round_trip_and_previous_kept(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    ckpt.save_checkpoint(path, payload(0))
    ckpt.save_checkpoint(path, payload(1))
    assert ckpt.read_checkpoint(path)["epoch"] == 1
    assert ckpt.read_checkpoint(tmp_path / "ckpt.prev.pt")["epoch"] == 0
    got, source = ckpt.load_latest(path)
    assert source == path and torch.equal(got["model"]["w"], torch.ones(3))


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "foreign"])
def test_damaged_checkpoint_is_reported_and_skipped(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "ckpt.pt"
    ckpt.save_checkpoint(path, payload(0))
    ckpt.save_checkpoint(path, payload(1))
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:])
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a plain torch.save file: loadable by torch, but not ours and unchecked
        torch.save(payload(1), path)
    with pytest.raises(ckpt.CheckpointError, match=str(path)):
        ckpt.read_checkpoint(path)
    with pytest.warns(RuntimeWarning, match=r"ckpt\.pt.*falling back.*ckpt\.prev\.pt"):
        got, source = ckpt.load_latest(path)
    assert source == tmp_path / "ckpt.prev.pt" and got["epoch"] == 0


def test_both_damaged_starts_from_scratch(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    ckpt.save_checkpoint(path, payload(0))
    ckpt.save_checkpoint(path, payload(1))
    for p in (path, ckpt.previous_path(path)):
        p.write_bytes(p.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match="from scratch"):
        assert ckpt.load_latest(path) == (None, None)
    assert ckpt.load_latest(tmp_path / "none.pt") == (None, None)  # absent: no warning


def test_remove_checkpoints_leaves_other_files(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    ckpt.save_checkpoint(path, payload(0))
    ckpt.save_checkpoint(path, payload(1))
    (tmp_path / ".ckpt.pt.abc123.tmp").write_bytes(b"half")  # as a kill mid-write leaves
    (tmp_path / "record.json").write_text("{}")
    ckpt.remove_checkpoints(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_missing_fields_rejected(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    ckpt.save_checkpoint(path, {"epoch": 0})
    with pytest.raises(ckpt.CheckpointError, match="lacks the fields"):
        ckpt.read_checkpoint(path)


def test_rng_state_round_trip(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.normal()  # leaves a cached gaussian in numpy's legacy state
    path = tmp_path / "ckpt.pt"
    p = payload(0)  # rng_state() taken here
    ckpt.save_checkpoint(path, p)
    want = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    ckpt.set_rng_state(ckpt.read_checkpoint(path)["rng"])  # through weights_only loading
    got = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    assert got[:3] == want[:3] and torch.equal(got[3], want[3])


# ---------------------------------------------------------------------------------------------
# Runs: the reference, a real kill, damaged checkpoints of a run

def factory(n: int, u: int) -> TinyModel:
    return TinyModel(n, u)


def weights(run_dir: Path) -> dict[str, Tensor]:
    return torch.load(run_dir / MODEL_FILE, weights_only=True)


def assert_same_run(rec: dict, run_dir: Path, ref: tuple[dict, dict[str, Tensor]]) -> None:
    ref_rec, ref_w = ref
    assert rec["status"] == "ok", rec["reason"]
    assert rec["metrics"] == ref_rec["metrics"]
    assert rec["test_loss"] == ref_rec["test_loss"]
    assert [h["train_loss"] for h in rec["history"]] == [h["train_loss"]
                                                         for h in ref_rec["history"]]
    assert [h["val_loss"] for h in rec["history"]] == [h["val_loss"] for h in ref_rec["history"]]
    w = weights(run_dir)
    assert w.keys() == ref_w.keys()
    assert all(torch.equal(w[k], ref_w[k]) for k in w), "final weights differ"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[bool, tuple[dict, dict[str, Tensor]]]:
    """Uninterrupted runs (retrain on and off), in this process, on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    for retrain in (True, False):
        run_dir = tmp_path_factory.mktemp(f"ref{retrain}")
        rec = run_toy(toy_split(), kill_cfg(retrain), run_dir, CPU, run_id="kill",
                        progress=False, keep_model=True, model_factory=factory)
        out[retrain] = (rec, weights(run_dir))
    torch.set_num_threads(before)
    # The case must exercise both stages and more than one epoch in each.
    stages = [h["stage"] for h in out[True][0]["history"]]
    assert stages.count("a") >= 2 and stages.count("b") >= 2
    return out


def poll_checkpoint(path: Path) -> dict | None:
    try:
        return ckpt.read_checkpoint(path)
    except (OSError, ckpt.CheckpointError):
        return None  # not written yet, or between the rename and the atomic write


@pytest.mark.parametrize("kill_in_stage,retrain", [("a", True), ("b", True)])
def test_sigkill_and_resume_is_bitwise_identical(tmp_path: Path, reference, kill_in_stage: str,
                                                 retrain: bool) -> None:
    run_dir = tmp_path / "run"
    args = [sys.executable, str(HELPER), str(run_dir), "retrain" if retrain else "noretrain"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed_at = None
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            found = poll_checkpoint(run_dir / CHECKPOINT_FILE)
            if found is not None and found["stage"] == kill_in_stage:
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = (found["stage"], found["epoch"])
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None and killed_at is None:
            proc.kill()
        proc.wait()
    assert killed_at is not None, f"the helper ended before the kill: {proc.stderr.read()!r}"
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "record.json").exists()
    rec = run_toy(toy_split(), kill_cfg(retrain), run_dir, CPU, run_id="kill", progress=False,
                    keep_model=True, model_factory=factory)
    # It resumed from a checkpoint of the killed process, at or after the one seen.
    assert rec["resumed_from"]["stage"] == kill_in_stage
    assert rec["resumed_from"]["epoch"] >= killed_at[1]
    assert_same_run(rec, run_dir, reference[retrain])


def failing_factory(fail_at: int):
    """Models whose forward raises on the `fail_at`-th call, counted over all models built."""
    calls = [0]

    class Failing(TinyModel):
        def forward(self, items: Tensor, users: Tensor) -> Tensor:
            calls[0] += 1
            if calls[0] == fail_at:
                raise RuntimeError("simulated crash")
            return super().forward(items, users)

    return lambda n, u: Failing(n, u)


@pytest.mark.parametrize("damage,retrain", [("latest", True), ("both", True), ("none", False)])
def test_crash_and_damaged_checkpoints_fall_back(tmp_path: Path, reference, damage: str,
                                                 retrain: bool) -> None:
    """A run crashes in stage (a) epoch 3 (in process); its newest, both or no checkpoints are
    damaged; the retried run warns, resumes from what is left and ends bitwise as the reference.
    With retrain off, the best weights held in the checkpoint are what gets evaluated."""
    run_dir = tmp_path / "run"
    cfg = kill_cfg(retrain)
    # 17 training batches + 1 validation batch per epoch: crash during stage (a) epoch 3.
    crashed = run_toy(toy_split(), cfg, run_dir, CPU, run_id="kill", progress=False,
                        keep_model=True, model_factory=failing_factory(3 * 18 + 5))
    assert crashed["status"] == "failed" and "simulated crash" in crashed["reason"]
    assert [h["epoch"] for h in crashed["history"]] == [0, 1, 2]  # the epochs it finished
    latest = run_dir / CHECKPOINT_FILE
    assert ckpt.read_checkpoint(latest)["epoch"] == 2
    expect, resumed = None, ("a", 2)
    if damage in ("latest", "both"):
        latest.write_bytes(latest.read_bytes()[:-10])
        expect, resumed = "falling back to the previous checkpoint", ("a", 1)
    if damage == "both":
        ckpt.previous_path(latest).write_bytes(b"garbage")
        expect, resumed = "from scratch", None

    def retry() -> dict:
        return run_toy(toy_split(), cfg, run_dir, CPU, run_id="kill", progress=False,
                       keep_model=True, model_factory=factory)

    if expect is None:
        rec = retry()
    else:
        with pytest.warns(RuntimeWarning, match=expect):
            rec = retry()
    got = rec["resumed_from"] and (rec["resumed_from"]["stage"], rec["resumed_from"]["epoch"])
    assert got == resumed
    assert_same_run(rec, run_dir, reference[retrain])


def test_checkpoint_of_another_config_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = kill_cfg(True)
    p = payload(0)
    p["config"] = to_dict(kill_cfg(False))
    ckpt.save_checkpoint(run_dir / CHECKPOINT_FILE, p)
    with pytest.raises(ValueError, match="different configuration"):
        run_toy(toy_split(), cfg, run_dir, CPU, run_id="x", progress=False,
                  model_factory=factory)

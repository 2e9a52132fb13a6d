"""Run folders: claims (two sessions on one folder), TensorBoard after a kill, leftovers.

Before (main at 76c5e97): two `run`s on one grid trained every run twice; a kill between an
epoch's checkpoint and its TensorBoard write lost that point for good; a kill after the record
left checkpoints in the run folder and temporary files in report/ and cache/ forever.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqrec import checkpoint as ckpt
from seqrec import runner
from seqrec.board import RunBoard
from seqrec.claim import (
    CLAIM_FILE,
    MAX_TTL_S,
    MIN_TTL_S,
    ClaimLost,
    Owner,
    RunClaimed,
    claim,
    read_lease,
)
from seqrec.data.source import DataRef
from seqrec.data.synthetic import SynthConfig, write_synthetic
from seqrec.experiments import grid
from seqrec.io import STALE_TMP_SECONDS
from seqrec.record import RunRecord, read_record, write_record

TINY = ["epochs=1", "hidden_size=8", "embedding_size=8", "batch_size=512"]


def owner(token: str) -> Owner:
    """A second owner in this process: same host and pid, its own token."""
    return Owner(Owner.this_process().host, os.getpid(), token)


# ---------------------------------------------------------------------------------------------
# The lease itself

def test_a_second_claim_is_refused_while_the_first_is_live(tmp_path):
    a = claim(tmp_path, owner("a" * 32), now=1000.0)
    with pytest.raises(RunClaimed, match=rf"skipped, process {os.getpid()} on .* is training "
                                         rf"it .*delete .*{CLAIM_FILE}"):
        claim(tmp_path, owner("b" * 32), now=1000.0 + MIN_TTL_S - 1)
    assert read_lease(tmp_path).owner.token == "a" * 32
    a.renew(epoch_seconds=1.0, now=1000.0 + MIN_TTL_S - 1)  # still ours: a fresh heartbeat
    assert read_lease(tmp_path).heartbeat == 1000.0 + MIN_TTL_S - 1
    a.release()
    assert not (tmp_path / CLAIM_FILE).exists()
    claim(tmp_path, owner("b" * 32), now=1000.0)  # free again


def test_an_expired_lease_is_taken_over_and_its_holder_stops(tmp_path):
    a = claim(tmp_path, owner("a" * 32), now=1000.0)
    b = claim(tmp_path, owner("b" * 32), now=1000.0 + MIN_TTL_S + 1)  # no heartbeat for 15 min
    assert read_lease(tmp_path).owner.token == "b" * 32
    with pytest.raises(ClaimLost, match="taken over by process"):
        a.renew(epoch_seconds=1.0)
    a.release()  # never removes someone else's lease
    assert read_lease(tmp_path).owner.token == "b" * 32
    b.release()
    assert not (tmp_path / CLAIM_FILE).exists()


def test_the_lease_lasts_three_of_the_longest_epochs_within_bounds(tmp_path):
    a = claim(tmp_path, owner("a" * 32), now=0.0)
    a.renew(epoch_seconds=60.0, now=5.0)
    assert read_lease(tmp_path).ttl_s == MIN_TTL_S  # 3 x 60 s is under the 15-minute floor
    a.renew(epoch_seconds=600.0, now=10.0)
    assert read_lease(tmp_path).ttl_s == 1800.0
    a.renew(epoch_seconds=1200.0, now=20.0)
    assert read_lease(tmp_path).ttl_s == 3600.0
    a.renew(epoch_seconds=100.0, now=30.0)  # the longest epoch so far counts
    assert read_lease(tmp_path).ttl_s == 3600.0
    with pytest.raises(RunClaimed):
        claim(tmp_path, owner("b" * 32), now=30.0 + 3599.0)
    a.renew(epoch_seconds=1e9, now=40.0)
    assert read_lease(tmp_path).ttl_s == MAX_TTL_S


def test_a_lease_of_a_dead_process_on_this_host_or_a_damaged_one_is_free(tmp_path):
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    dead = Owner(Owner.this_process().host, int(child.stdout), "d" * 32)
    claim(tmp_path, dead, now=time.time())
    claim(tmp_path, owner("b" * 32))  # its process is gone: no need to wait 15 minutes
    for text in ("{", '{"host": "h", "pid": 1}', '{"host": "h", "pid": 1, "token": "t", '
                 '"heartbeat": 1e300, "ttl_s": 1e300}'):
        (tmp_path / CLAIM_FILE).write_text(text)
        claim(tmp_path, owner("c" * 32))


# ---------------------------------------------------------------------------------------------
# The runner

@pytest.fixture(scope="module")
def log(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "log.tsv"
    return write_synthetic(path, SynthConfig(n_rows=20_000, n_users=6, seed=3))


def a_spec(log: Path, extra=()):  # noqa: ANN001, ANN201
    return grid("exp4", "smoke", [*TINY, *extra], data=DataRef.file(log), models=("gru",),
                baselines=())[0]


def quiet(lines: list) -> dict:
    return dict(options=runner.RunOptions(progress=False, tensorboard=False), log=lines.append)


def test_a_run_claimed_by_a_live_process_is_skipped_with_one_line(log, tmp_path, monkeypatch):
    spec = a_spec(log)
    folder = runner.run_dir(tmp_path, spec)
    folder.mkdir(parents=True)
    other = Owner("colab-2", 4242, "f" * 32)  # another session's claim, with a heartbeat now
    claim(folder, other)
    lines: list[str] = []
    assert runner.run_specs([spec], tmp_path, **quiet(lines)) == []  # before: trained it
    (line,) = [ln for ln in lines if "skipped" in ln]
    assert "process 4242 on colab-2 is training it" in line
    assert read_record(folder) is None and read_lease(folder).owner == other
    # the other session died: once its lease has run out, this one takes the run over
    stale = json.loads((folder / CLAIM_FILE).read_text())
    (folder / CLAIM_FILE).write_text(json.dumps({**stale, "heartbeat": time.time() - 3600}))
    (rec,) = runner.run_specs([spec], tmp_path, **quiet(lines))
    assert rec.ok and read_record(folder) == rec
    assert not (folder / CLAIM_FILE).exists()  # released when the run ended


def test_a_run_taken_over_mid_run_stops_before_its_next_checkpoint(log, tmp_path):
    spec = a_spec(log, ["epochs=3", "patience=3"])
    folder = runner.run_dir(tmp_path, spec)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if "stage a epoch 0:" in line:  # another process takes the run over during epoch 1
            claim(folder, Owner("colab-2", 4242, "f" * 32), now=time.time() + MIN_TTL_S + 1)

    assert runner.run_specs([spec], tmp_path, runner.RunOptions(progress=False,
                                                                tensorboard=False),
                            log=say) == []
    assert any("stopped, the run was taken over by process 4242 on colab-2" in ln
               for ln in lines)
    assert read_record(folder) is None and read_lease(folder).owner.host == "colab-2"
    assert ckpt.read_checkpoint(folder / "ckpt.pt")["epoch"] == 0  # epoch 1 not saved


class Killed(BaseException):
    """A kill at a chosen point (not an Exception: nothing may catch it)."""


def test_an_epoch_killed_before_its_tensorboard_point_is_written_again(log, tmp_path,
                                                                     monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = a_spec(log, ["epochs=3", "patience=3"])
    real = RunBoard.epoch
    kills = [1]

    def epoch(self, row):  # noqa: ANN001, ANN202
        if row["stage"] == "a" and row["epoch"] == 1 and kills:
            kills.pop()
            raise Killed  # before: epoch 1's checkpoint was already written
        return real(self, row)

    monkeypatch.setattr(RunBoard, "epoch", epoch)
    options = runner.RunOptions(progress=False)
    with pytest.raises(Killed):
        runner.run_specs([spec], tmp_path, options, log=lambda *a: None)
    (rec,) = runner.run_specs([spec], tmp_path, options, log=lambda *a: None)
    acc = EventAccumulator(str(tmp_path / "tensorboard" / spec.run_id))
    acc.Reload()
    steps = sorted({e.step for e in acc.Scalars("loss/train_a")})
    assert steps == [0, 1, 2]  # before: [0, 2]
    by_step = {e.step: e.value for e in acc.Scalars("loss/train_a")}
    stage_a = [h for h in rec.history if h["stage"] == "a"]
    assert [by_step[h["epoch"]] for h in stage_a] == pytest.approx(
        [h["train_loss"] for h in stage_a], rel=1e-6)


def test_each_pass_cleans_what_a_kill_after_the_record_left(log, tmp_path):
    spec = a_spec(log)
    folder = runner.run_dir(tmp_path, spec)
    write_record(folder, RunRecord(spec=spec.label(), status="ok",
                                   metrics={"recall@20": 0.25}))
    left = [folder / "ckpt.pt", folder / "ckpt.prev.pt", folder / ".ckpt.pt.x1y2.tmp"]
    old = time.time() - STALE_TMP_SECONDS - 60
    stale = [tmp_path / "report" / ".report.pdf.abc.tmp",
             tmp_path / "cache" / "splits" / ".split.npz.def.tmp"]
    young = tmp_path / "cache" / ".events.parquet.ghi.tmp"  # maybe another process' write
    busy = tmp_path / "cache" / ".events-key2.mno.tmp"  # an old folder with a file being written
    (busy / "events.parquet").parent.mkdir(parents=True)
    (busy / "events.parquet").write_bytes(b"x")
    for p in [*left, *stale, young]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    stale_dir = tmp_path / "cache" / ".events-key.jkl.tmp"  # a cut-short Parquet cache build
    (stale_dir / "part").mkdir(parents=True)
    (stale_dir / "part" / "0.parquet").write_bytes(b"x")
    for p in [*stale, stale_dir, stale_dir / "part", stale_dir / "part" / "0.parquet", busy]:
        os.utime(p, (old, old))
    lines: list[str] = []
    (rec,) = runner.run_specs([spec], tmp_path, **quiet(lines))
    assert rec.ok and lines[-1] == "1 of 1 runs done (1 before, 0 now)"  # not retrained
    assert not [p for p in [*left, *stale, stale_dir] if p.exists()]  # before: all stayed
    assert young.exists() and busy.exists() and read_record(folder) == rec

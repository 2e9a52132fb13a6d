"""The divergence rule: a run whose loss blew up far above a uniform prediction's is failed.

Before: only NaN and inf losses failed a run; `--set lr=1e12` trained to a loss of 4e13,
wrote `status: ok` with a Recall@20 and the report tabulated it beside healthy runs.
"""

from __future__ import annotations

import math

import pytest
import torch

from seqrec.cli import main
from seqrec.config import apply_overrides
from seqrec.data.synthetic import SynthConfig, write_synthetic
from seqrec.record import read_record
from seqrec.train.stages import DIVERGED_FACTOR, loss_blew_up
from tests.train_helper import TinyModel, kill_cfg, run_toy, toy_split

TINY = ["epochs=2", "hidden_size=8", "embedding_size=8", "batch_size=512"]


def test_the_rule_is_ten_uniform_losses():
    n = 600
    uniform = math.log(n)  # 6.397
    assert not loss_blew_up(uniform, n)
    assert not loss_blew_up(DIVERGED_FACTOR * uniform, n)  # the bound itself is allowed
    assert loss_blew_up(DIVERGED_FACTOR * uniform * 1.0001, n)
    assert loss_blew_up(4.4e13, n) and loss_blew_up(float("nan"), n)
    assert loss_blew_up(float("inf"), n)
    assert not loss_blew_up(0.0, 2) and loss_blew_up(10 * math.log(2) + 0.01, 1)


def test_a_blown_up_toy_run_is_failed_with_its_reason(tmp_path):
    split = toy_split()
    cfg = apply_overrides(kill_cfg(epochs=2), {"lr": 1e12})
    rec = run_toy(split, cfg, tmp_path, torch.device("cpu"), progress=False,
                  model_factory=lambda n, u: TinyModel(n, u))
    assert rec["status"] == "failed"
    assert "blew up" in rec["reason"] and "uniform prediction" in rec["reason"]
    assert "lower lr (now 1000000000000.0)" in rec["reason"]
    assert rec["metrics"] == {}


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "log.tsv"
    return write_synthetic(path, SynthConfig(n_rows=20_000, n_users=6, seed=3))


def test_the_issue_case_lr_1e12_fails_and_is_retried_only_on_request(log, tmp_path, capsys):
    args = ["run", "--experiment", "exp4", "--data", str(log), "--out", str(tmp_path),
            "--baselines", "", "--only", "*c0-gru-*seq_len5-*", "--quiet", "--no-report",
            "--no-tensorboard", "--set", "lr=1e12"]
    for o in TINY:
        args += ["--set", o]
    assert main(args) == 1  # before: exit 0, status ok, Recall@20 reported
    (path,) = tmp_path.glob("runs/*/record.json")
    rec = read_record(path.parent)
    assert rec.status == "failed" and not rec.metrics
    assert "blew up" in rec.reason and f"over {DIVERGED_FACTOR:g}x" in rec.reason
    assert rec.history == [] or all(not math.isfinite(h["train_loss"] or 0.0)
                                    or h["train_loss"] <= DIVERGED_FACTOR * math.log(rec.n_items)
                                    for h in rec.history)
    capsys.readouterr()
    assert main(args) == 1  # stays failed until asked
    assert "1 runs, 1 failed" in capsys.readouterr().out
    assert read_record(path.parent) == rec  # not retrained

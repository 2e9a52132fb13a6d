"""Training: early-stopping bookkeeping, the two stages, learning, failures, the run record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from train_helper import TinyModel, kill_cfg, random_split, run_toy, toy_split

import seqrec.train.stages as stages
from seqrec.config import apply_overrides
from seqrec.data.windows import Split, Windows
from seqrec.record import RunRecord
from seqrec.train import (
    EarlyStopping,
    early_stopping_step,
    epoch_order,
    epochs_kept,
    train_epoch,
)

CPU = torch.device("cpu")




def run_losses(losses: list[float], patience: int, epochs: int) -> EarlyStopping:
    """Feed a scripted validation-loss sequence as stage (a)'s loop does."""
    state = EarlyStopping()
    for epoch in range(epochs):
        state = early_stopping_step(state, epoch, losses[epoch], patience)
        if state.stopped:
            break
    return state


def test_epochs_kept_formula() -> None:
    assert epochs_kept(2, 1) == 2  # stopped at epoch 2 (0-based): epochs 0, 1 kept
    assert epochs_kept(0, 1) == 1  # never below one epoch
    assert epochs_kept(5, 2) == 4
    assert epochs_kept(24, 1) == 24  # budget of 25 ran out: the thesis still drops one
    assert epochs_kept(4, 0) == 5


def test_early_stopping_on_scripted_losses() -> None:
    losses = [3.0, 2.0, 2.5, 1.9, 2.0, 2.1, 1.0]
    s = run_losses(losses, patience=1, epochs=7)
    assert (s.stopped, s.last_epoch, s.best_epoch, s.best_loss) == (True, 2, 1, 2.0)
    assert epochs_kept(s.last_epoch, 1) == 2 == s.best_epoch + 1
    s = run_losses(losses, patience=2, epochs=7)  # epoch 2 is bad, epoch 3 improves again
    assert (s.stopped, s.last_epoch, s.best_epoch, s.bad_epochs) == (True, 5, 3, 2)
    assert epochs_kept(s.last_epoch, 2) == 4 == s.best_epoch + 1
    s = run_losses(losses, patience=0, epochs=7)  # patience 0: never stops early
    assert (s.stopped, s.last_epoch, s.best_epoch) == (False, 6, 6)
    assert epochs_kept(s.last_epoch, 0) == 7
    s = run_losses([3.0, 2.0, 1.0], patience=1, epochs=3)  # budget runs out while improving
    assert (s.stopped, s.last_epoch) == (False, 2)
    assert epochs_kept(s.last_epoch, 1) == 2
    s = run_losses([1.0, 1.0], patience=1, epochs=2)  # equal is not an improvement
    assert (s.stopped, s.last_epoch, s.best_epoch) == (True, 1, 0)


def test_epoch_order_is_a_function_of_seed_stage_epoch() -> None:
    a = epoch_order(100, 0, "a", 3)
    assert torch.equal(a, epoch_order(100, 0, "a", 3))
    assert torch.equal(torch.sort(a).values, torch.arange(100))
    assert not torch.equal(a, epoch_order(100, 0, "a", 4))
    assert not torch.equal(a, epoch_order(100, 0, "b", 3))
    assert not torch.equal(a, epoch_order(100, 1, "a", 3))


def tiny(n: int, u: int) -> nn.Module:
    return TinyModel(n, u)


def test_stages_follow_scripted_validation_losses(tmp_path: Path, monkeypatch) -> None:
    # Stage (a) stops at epoch 2 (patience 1), so stage (b) trains epochs_kept = 2 epochs.
    losses = iter([3.0, 2.0, 2.5, 1.0, 1.0])
    monkeypatch.setattr(stages, "mean_loss", lambda *a, **k: next(losses))
    cfg = apply_overrides(kill_cfg(epochs=5), {"patience": 1})
    rec = run_toy(toy_split(), cfg, tmp_path / "r", CPU, run_id="s", progress=False,
                    model_factory=tiny)
    assert [(h["stage"], h["epoch"]) for h in rec["history"]] == [
        ("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)]
    assert [h["val_loss"] for h in rec["history"]] == [3.0, 2.0, 2.5, None, None]
    assert rec["epochs_kept"] == 2 and rec["best_val_loss"] == 2.0


def test_no_retrain_evaluates_the_best_epoch(tmp_path: Path, monkeypatch) -> None:
    # Best validation loss at epoch 0, stop at epoch 1: the weights after epoch 0 are tested,
    # which are those of a run that trains only one epoch.
    losses = iter([1.0, 2.0])
    monkeypatch.setattr(stages, "mean_loss", lambda *a, **k: next(losses))
    cfg = apply_overrides(kill_cfg(retrain=False, epochs=5), {"patience": 1})
    rec = run_toy(toy_split(), cfg, tmp_path / "best", CPU, run_id="best", progress=False,
                    model_factory=tiny, keep_model=True)
    monkeypatch.undo()
    one = apply_overrides(cfg, {"epochs": 1})
    rec1 = run_toy(toy_split(), one, tmp_path / "one", CPU, run_id="one", progress=False,
                     model_factory=tiny, keep_model=True)
    assert [h["stage"] for h in rec["history"]] == ["a", "a"]
    assert rec["epochs_kept"] == 1
    w = torch.load(tmp_path / "best" / "model.pt", weights_only=True)
    w1 = torch.load(tmp_path / "one" / "model.pt", weights_only=True)
    assert all(torch.equal(w[k], w1[k]) for k in w)
    assert rec["metrics"] == rec1["metrics"]


def test_training_learns_a_predictable_sequence(tmp_path: Path) -> None:
    cfg = apply_overrides(kill_cfg(epochs=4), {"patience": 0})  # keep all 4 epochs
    rec = run_toy(toy_split(step=5), cfg, tmp_path / "r", CPU, run_id="learn", progress=False,
                    model_factory=tiny)
    assert rec["status"] == "ok", rec["reason"]
    assert rec["metrics"]["recall@1"] > 0.9
    assert rec["history"][-1]["train_loss"] < rec["history"][0]["train_loss"]


def test_gru_from_the_registry_learns(tmp_path: Path) -> None:
    cfg = apply_overrides(kill_cfg(epochs=3), {
        "name": "gru", "embedding_size": 8, "hidden_size": 16, "patience": 0, "lr": 0.05,
        "input_dropout": 0.0})
    rec = run_toy(toy_split(step=5, length=80), cfg, tmp_path / "r", CPU, run_id="gru",
                    progress=False)
    assert rec["status"] == "ok", rec["reason"]
    assert rec["metrics"]["recall@1"] > 0.8


class NaNModel(TinyModel):
    def forward(self, items: Tensor, users: Tensor) -> Tensor:
        return super().forward(items, users) * float("nan")


def test_nan_loss_gives_a_failed_record(tmp_path: Path) -> None:
    rec = run_toy(toy_split(), kill_cfg(), tmp_path / "r", CPU, run_id="nan-run",
                    progress=False, model_factory=lambda n, u: NaNModel(n, u))
    assert rec["status"] == "failed"
    assert "nan-run" in rec["reason"] and "epoch 0" in rec["reason"]
    assert "lr" in rec["reason"] and "grad_clip" in rec["reason"]
    assert rec["metrics"] == {}
    # Training never writes the record (the runner owns the run folder: tests/test_runner.py).
    assert not (tmp_path / "r" / "record.json").exists()


def test_runtime_error_in_training_gives_a_failed_record(tmp_path: Path) -> None:
    class Broken(TinyModel):
        def forward(self, items: Tensor, users: Tensor) -> Tensor:
            raise RuntimeError("CUDA error: something broke")

    rec = run_toy(toy_split(), kill_cfg(), tmp_path / "r", CPU, run_id="broken",
                    progress=False, model_factory=lambda n, u: Broken(n, u))
    assert rec["status"] == "failed" and "broken" in rec["reason"]
    assert "something broke" in rec["reason"]


def test_record_fields_and_types(tmp_path: Path) -> None:
    rec = run_toy(toy_split(), kill_cfg(), tmp_path / "r", CPU, run_id="rec",
                  progress=False, model_factory=tiny)
    types = {"run_id": str, "status": str, "spec": dict, "config": dict, "split": dict,
             "metrics": dict, "metrics_by_popularity": dict, "n_items": int, "n_users": int,
             "epochs_kept": int, "best_val_loss": float, "history": list, "seq_per_s": float,
             "peak_memory_bytes": int, "device": str, "versions": dict, "seed": int,
             "seconds": float}
    for key, typ in types.items():
        assert isinstance(rec[key], typ), key
    assert rec["reason"] is None and rec["status"] == "ok"
    assert rec["spec"]["run_id"] == "rec" and rec["spec"]["experiment"] == "test"
    keys = {f"{m}@{k}" for m in ("recall", "mrr", "ndcg") for k in (1, 5)}
    assert set(rec["metrics"]) == keys
    assert set(rec["metrics_by_popularity"]) == {"popular", "semi", "unpopular"}
    assert all(set(v) == keys for v in rec["metrics_by_popularity"].values())
    assert rec["split"]["third_bounds"] and rec["split"]["windows"]["test"] == 12
    assert set(rec["versions"]) == {"python", "torch", "numpy", "seqrec", "commit"}
    for h in rec["history"]:
        assert set(h) == {"stage", "epoch", "train_loss", "val_loss", "improved", "seconds",
                          "seq_per_s"}
    assert rec["peak_memory_bytes"] > 0 and rec["seed"] == 3
    assert RunRecord.from_json(json.loads(json.dumps(rec))).to_json() == rec


def test_out_of_range_ids_are_a_clear_error(tmp_path: Path) -> None:
    s = toy_split()
    bad = Windows(s.test.items.copy(), s.test.users, s.test.starts, s.test.seq_len)
    bad.items[0] = 99
    split = Split(s.train, s.val, bad, s.n_items, s.n_users, s.item_counts, {}, {})
    with pytest.raises(ValueError, match="item ids of the test part"):
        run_toy(split, kill_cfg(), tmp_path / "r", CPU, run_id="ids", model_factory=tiny)
    empty = Windows(s.val.items, s.val.users, np.zeros(0, np.int64), s.val.seq_len)
    split = Split(s.train, empty, s.test, s.n_items, s.n_users, s.item_counts, {}, {})
    with pytest.raises(ValueError, match="val part of the split has no windows"):
        run_toy(split, kill_cfg(), tmp_path / "r2", CPU, run_id="ids", model_factory=tiny)


def test_grad_clip_limits_the_update() -> None:
    split = toy_split()
    dw = split.train.to(CPU)
    order = epoch_order(len(dw), 0, "a", 0)

    def moved(grad_clip: float) -> float:
        torch.manual_seed(0)
        model = TinyModel(12, 6)
        start = [p.detach().clone() for p in model.parameters()]
        # SGD, whose step is proportional to the (clipped) gradient.
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        tcfg = apply_overrides(kill_cfg(), {"grad_clip": grad_clip}).train
        train_epoch(model, model, opt, None, dw, order, tcfg, CPU)
        now = [p.detach() for p in model.parameters()]
        return sum(float((p - s).norm()) for p, s in zip(now, start, strict=True))

    free, clipped = moved(0.0), moved(1e-3)
    assert clipped < 0.05 * free
    assert clipped < 17 * 0.1 * 1e-3 * 4 + 1e-9  # <= batches * lr * clip per tensor (4 tensors)


class CountModel(nn.Module):
    """A count baseline stand-in: scores = training counts; records what it was fitted on."""

    kind = "count"
    uses_users = False

    def __init__(self, n_items: int, log: list[int]) -> None:
        super().__init__()
        self.counts = torch.zeros(n_items)
        self.log = log

    def fit(self, windows: Windows) -> None:
        self.log.append(len(windows))
        self.counts = torch.bincount(torch.from_numpy(windows.targets()),
                                     minlength=self.counts.shape[0]).float()

    def forward(self, items: Tensor, users: Tensor) -> Tensor:
        return self.counts.expand(items.shape[0], -1)


@pytest.mark.parametrize("retrain", [True, False])
def test_count_baseline_is_fitted_not_trained(tmp_path: Path, retrain: bool) -> None:
    split = random_split()
    fitted: list[int] = []
    rec = run_toy(split, kill_cfg(retrain=retrain), tmp_path / "r", CPU, run_id="pop",
                    progress=False, model_factory=lambda n, u: CountModel(n, fitted))
    assert rec["status"] == "ok", rec["reason"]
    # Fitted on train, then (retrain) a fresh model on train + val; no epochs.
    assert fitted == [len(split.train)] + ([len(split.train) + len(split.val)] if retrain else [])
    assert rec["n_test_windows"] == len(split.test) and rec["epochs_kept"] is None


def test_amp_is_a_no_op_on_cpu_and_compile_only_on_request(tmp_path: Path, monkeypatch) -> None:
    compiled: list[nn.Module] = []

    def fake_compile(model: nn.Module) -> nn.Module:  # the wiring, without a compiler
        compiled.append(model)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    cfg = kill_cfg(epochs=2)
    plain = run_toy(toy_split(), cfg, tmp_path / "plain", CPU, run_id="p", progress=False,
                      model_factory=tiny)
    assert compiled == []
    amp = run_toy(toy_split(), apply_overrides(cfg, {"amp": True, "compile": True}),
                    tmp_path / "amp", CPU, run_id="a", progress=False, model_factory=tiny)
    assert len(compiled) == 2  # one per stage
    assert amp["metrics"] == plain["metrics"]
    assert [h["train_loss"] for h in amp["history"]] == [h["train_loss"]
                                                         for h in plain["history"]]

"""Training: the thesis' two stages with early stopping, checkpoints, resume and a run record.

THESIS_PROTOCOL.md, "Training and evaluation":
(a) train on train with Adam, cross-entropy on the last position; after every epoch compute the
    validation loss; stop early when it has not improved for `patience` epochs (at most
    `epochs`); the number of epochs kept is `epochs_kept(stop_epoch, patience)`.
(b) (`retrain=True`) a fresh model, same seed hence the same initial weights, is trained on
    train + val for that many epochs and evaluated on test. With `retrain=False` the weights of
    the epoch with the best validation loss are evaluated on test directly.

Batches are gathered on the device from the flat split arrays, in an order that is a function of
(seed, stage, epoch) only; with the random-number states in every checkpoint, a run killed and
resumed ends bitwise where an uninterrupted one ends (on CPU). `train_run` is the one entry point
of the runner and the CLI.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import platform
import random
import resource
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

import seqrec
from seqrec import checkpoint as ckpt
from seqrec.config import RunConfig, TrainConfig, to_dict
from seqrec.data.windows import PARTS, DeviceWindows, Split
from seqrec.io import atomic_write_bytes, atomic_write_json, read_json
from seqrec.metrics import evaluate

RECORD_FILE = "record.json"
CHECKPOINT_FILE = "ckpt.pt"
MODEL_FILE = "model.pt"

ModelFactory = Callable[[int, int], nn.Module]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the run, stage, epoch and a remedy."""


# ---------------------------------------------------------------------------------------------
# Early stopping

class EarlyStopping(NamedTuple):
    """Early-stopping bookkeeping after `last_epoch` (0-based; -1 before the first epoch)."""

    best_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    last_epoch: int = -1
    stopped: bool = False


def early_stopping_step(state: EarlyStopping, epoch: int, val_loss: float, patience: int
                        ) -> EarlyStopping:
    """Record epoch `epoch`'s validation loss.

    A loss strictly below the best so far is an improvement and resets the count of bad epochs;
    any other loss adds one. Training stops at the epoch where `bad_epochs` reaches `patience`
    (`patience=0` never stops early). With the thesis' patience 1: at the first epoch whose
    validation loss is not lower than the best.
    """
    if val_loss < state.best_loss:
        state = state._replace(best_loss=val_loss, best_epoch=epoch, bad_epochs=0)
    else:
        state = state._replace(bad_epochs=state.bad_epochs + 1)
    return state._replace(last_epoch=epoch,
                          stopped=patience > 0 and state.bad_epochs >= patience)


def epochs_kept(stop_epoch: int, patience: int) -> int:
    """How many epochs stage (b) trains: `max(stop_epoch + 1 - patience, 1)` (the thesis' rule).

    `stop_epoch` is the 0-based index of the last epoch stage (a) ran: the stopping epoch, or
    `epochs - 1` when the budget ran out first. After an early stop, `stop_epoch = best_epoch +
    patience`, so this is `best_epoch + 1`: every epoch up to and including the best one. When
    the budget runs out, the thesis' rule still drops the last `patience` epochs (even if they
    improved); we keep that rule to reproduce it. `patience=0` keeps every epoch run.
    """
    return max(stop_epoch + 1 - patience, 1)


def stage_a_done(state: EarlyStopping, max_epochs: int) -> bool:
    return state.stopped or state.last_epoch + 1 >= max_epochs


# ---------------------------------------------------------------------------------------------
# Seeds and batch order

def seed_everything(seed: int) -> None:
    """Seed python `random`, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_order(n: int, seed: int, stage: str, epoch: int) -> Tensor:
    """The permutation of `n` training windows for one epoch: int64 `[n]` on the CPU.

    A function of (seed, stage, epoch) only, drawn from its own generator (never the global
    one), so a resumed run recomputes the exact order of any epoch.
    """
    key = hashlib.sha256(f"seqrec-order/{seed}/{stage}/{epoch}".encode()).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(key[:8], "little") % 2**63)
    return torch.randperm(n, generator=gen)


def autocast(device: torch.device, amp: bool):
    """Autocast on CUDA when `amp` is asked for (bfloat16 where supported, else float16);
    a no-op context elsewhere, so CPU results never change with the setting."""
    on = bool(amp) and device.type == "cuda"
    dtype = torch.bfloat16 if on and torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=on)


# ---------------------------------------------------------------------------------------------
# One epoch, one loss pass

def batch_loss(model: nn.Module, forward: Callable[..., Tensor], items: Tensor, users: Tensor,
               target: Tensor) -> Tensor:
    """Mean last-position cross-entropy of one batch (`[B, T]`, `[B, T]`, `[B]` -> scalar).

    Through the model's own `loss` (the output layer and the cross-entropy fused, see
    models/loss.py) where it has one and `forward` is the model itself; through `forward`'s
    logits and `F.cross_entropy` in float32 otherwise (a compiled model, where the compiler
    fuses them, and models without `loss`). Both compute the same value.
    """
    if forward is model and hasattr(model, "loss"):
        return model.loss(items, users, target)
    return F.cross_entropy(forward(items, users).float(), target)


class EpochResult(NamedTuple):
    loss: float  # mean cross-entropy over the epoch's windows
    seconds: float
    seq_per_s: float


def train_epoch(model: nn.Module, forward: Callable[..., Tensor], optimizer: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler | None, windows: DeviceWindows, order: Tensor,
                tcfg: TrainConfig, device: torch.device, *, desc: str = "",
                progress: bool = False) -> EpochResult:
    """One pass over `windows` in `order` (int64 `[N]`), one Adam step per batch.

    Cross-entropy on the last position (`batch_loss`), in float32 even under autocast. The last,
    smaller batch
    is trained on too. The loss is summed on the device and read once per epoch (and every few
    batches for the progress bar), so CUDA is not synchronised per batch.
    """
    model.train()
    order = order.to(device)
    n = int(order.shape[0])
    total = torch.zeros((), dtype=torch.float64, device=device)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    start = time.perf_counter()
    with tqdm(total=n, desc=desc, unit="seq", disable=not progress, leave=False) as bar:
        for step, lo in enumerate(range(0, n, tcfg.batch_size)):
            idx = order[lo: lo + tcfg.batch_size]
            items, users, target = windows.batch(idx)  # [B, L-1], [B, L-1], [B]
            with autocast(device, tcfg.amp):
                loss = batch_loss(model, forward, items, users, target)
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
            else:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            if tcfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, tcfg.grad_clip)
            if scaler is None:
                optimizer.step()
            else:
                scaler.step(optimizer)
                scaler.update()
            total += loss.detach().double() * idx.shape[0]
            bar.update(int(idx.shape[0]))
            if progress and step % 20 == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return EpochResult(float(total) / n, seconds, n / max(seconds, 1e-9))


def mean_loss(model: nn.Module, windows: DeviceWindows, batch_size: int, device: torch.device,
              amp: bool = False) -> float:
    """Mean last-position cross-entropy over all `windows`, in eval mode, without gradients."""
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    n = len(windows)
    with torch.inference_mode(), autocast(device, amp):
        for lo in range(0, n, batch_size):
            idx = torch.arange(lo, min(lo + batch_size, n), device=device)
            items, users, target = windows.batch(idx)
            logits = model(items, users)
            total += F.cross_entropy(logits.float(), target, reduction="sum").double()
    model.train()
    return float(total) / n


# ---------------------------------------------------------------------------------------------
# Checks

def check_split(split: Split) -> None:
    """Stop with one sentence when a part is empty or an id lies outside the split's sizes."""
    for part in PARTS:
        w = split.part(part)
        if len(w) == 0:
            raise ValueError(f"the {part} part of the split has no windows (seq_len "
                             f"{w.seq_len}); lower seq_len or threshold, or use larger chunks")
        for name, arr, n in (("item", w.items, split.n_items), ("user", w.users, split.n_users)):
            if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= n):
                raise ValueError(
                    f"{name} ids of the {part} part range over [{int(arr.min())}, "
                    f"{int(arr.max())}] but the split has n_{name}s={n}; rebuild the split so "
                    f"ids are dense in [0, n_{name}s)")


def _make_optimizer(model: nn.Module, tcfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam over the model's parameter groups, as the fused single-kernel update where this
    torch has one for the device (CPU since torch 2.4, CUDA): the same update rule, one pass
    over each parameter instead of several (about 25 ms of a 180 ms GRU step at exp 4 sizes
    on 2 CPU threads, docs/benchmarks.md)."""
    if hasattr(model, "param_groups"):
        groups = model.param_groups(tcfg.weight_decay, tcfg.user_weight_decay)
    else:
        groups = [{"params": list(model.parameters()), "weight_decay": tcfg.weight_decay}]
    try:
        return torch.optim.Adam(groups, lr=tcfg.lr, fused=True)
    except RuntimeError:  # no fused kernel for these parameters' device in this torch
        return torch.optim.Adam(groups, lr=tcfg.lr)


def _make_scaler(device: torch.device, amp: bool) -> torch.amp.GradScaler | None:
    # Loss scaling is only needed for float16 autocast (GPUs without bfloat16, e.g. Colab's T4).
    if amp and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.amp.GradScaler("cuda")
    return None


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


# ---------------------------------------------------------------------------------------------
# The two stages

class Trained(NamedTuple):
    model: nn.Module
    history: list[dict]
    epochs_kept: int | None
    best_val_loss: float | None
    resumed_from: dict | None


def _fresh(factory: ModelFactory, split: Split, tcfg: TrainConfig, device: torch.device
           ) -> tuple[nn.Module, torch.optim.Optimizer, torch.amp.GradScaler | None]:
    seed_everything(tcfg.seed)  # same seed for both stages: the same initial weights
    model = factory(split.n_items, split.n_users).to(device)
    return model, _make_optimizer(model, tcfg), _make_scaler(device, tcfg.amp)


def _restore(payload: dict, model: nn.Module, opt: torch.optim.Optimizer,
             scaler: torch.amp.GradScaler | None) -> None:
    model.load_state_dict(payload["model"])
    opt.load_state_dict(payload["optimizer"])
    if scaler is not None and payload.get("scaler"):
        scaler.load_state_dict(payload["scaler"])
    ckpt.set_rng_state(payload["rng"])


def _fit_neural(split: Split, cfg: RunConfig, run_dir: Path, device: torch.device,
                factory: ModelFactory, run_id: str, progress: bool, history: list[dict]
                ) -> Trained:
    """Both stages with checkpoints; appends to `history` (the caller keeps it on failure)."""
    tcfg = cfg.train
    path = run_dir / CHECKPOINT_FILE
    payload, source = ckpt.load_latest(path)
    if payload is not None and payload["config"] != to_dict(cfg):
        raise ValueError(f"checkpoint {source} was written for a different configuration; "
                         f"delete it or use another run directory")
    resumed_from = None if payload is None else {"stage": payload["stage"],
                                                 "epoch": payload["epoch"], "file": str(source)}
    history[:] = list(payload["history"]) if payload else []
    early = EarlyStopping(**payload["early"]) if payload else EarlyStopping()
    best_state = payload.get("best_state") if payload else None

    def save(stage: str, epoch: int, model: nn.Module, opt: torch.optim.Optimizer,
             scaler: torch.amp.GradScaler | None) -> None:
        ckpt.save_checkpoint(path, {
            "stage": stage, "epoch": epoch, "model": model.state_dict(),
            "optimizer": opt.state_dict(), "scaler": scaler.state_dict() if scaler else None,
            "early": early._asdict(), "best_state": best_state, "history": history,
            "config": to_dict(cfg), "rng": ckpt.rng_state(),
        })

    def run_epoch(stage: str, epoch: int, model: nn.Module, forward: Callable[..., Tensor],
                  opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
                  windows: DeviceWindows) -> EpochResult:
        order = epoch_order(len(windows), tcfg.seed, stage, epoch)
        res = train_epoch(model, forward, opt, scaler, windows, order, tcfg, device,
                          desc=f"{run_id} stage {stage} epoch {epoch}", progress=progress)
        if not math.isfinite(res.loss):
            raise TrainingDiverged(
                f"run {run_id}: the training loss became {res.loss} in stage ({stage}) epoch "
                f"{epoch}; try a lower lr (now {tcfg.lr}) or set grad_clip (now "
                f"{tcfg.grad_clip}, e.g. 5)")
        return res

    # Stage (a): train on train, early stopping on the validation loss.
    model, opt, scaler = _fresh(factory, split, tcfg, device)
    if payload is not None and payload["stage"] == "a":
        _restore(payload, model, opt, scaler)
    if not (payload is not None and payload["stage"] == "b") and not stage_a_done(early,
                                                                                tcfg.epochs):
        forward = torch.compile(model) if tcfg.compile else model
        train_w, val_w = split.train.to(device), split.val.to(device)
        for epoch in range(early.last_epoch + 1, tcfg.epochs):
            res = run_epoch("a", epoch, model, forward, opt, scaler, train_w)
            val = mean_loss(model, val_w, tcfg.eval_batch_size, device, tcfg.amp)
            if not math.isfinite(val):
                raise TrainingDiverged(
                    f"run {run_id}: the validation loss became {val} after stage (a) epoch "
                    f"{epoch}; try a lower lr (now {tcfg.lr}) or set grad_clip (now "
                    f"{tcfg.grad_clip}, e.g. 5)")
            early = early_stopping_step(early, epoch, val, tcfg.patience)
            if not tcfg.retrain and early.best_epoch == epoch:
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            history.append({"stage": "a", "epoch": epoch, "train_loss": res.loss,
                            "val_loss": val, "seconds": res.seconds, "seq_per_s": res.seq_per_s})
            save("a", epoch, model, opt, scaler)
            if early.stopped:
                break
        del train_w, val_w
    kept = epochs_kept(early.last_epoch, tcfg.patience)

    if not tcfg.retrain:
        model.load_state_dict(best_state)
        return Trained(model, history, early.best_epoch + 1, early.best_loss, resumed_from)

    # Stage (b): a fresh model (same initial weights) on train + val for `kept` epochs.
    del model, opt, scaler  # free stage (a)'s weights and Adam moments before building anew
    model, opt, scaler = _fresh(factory, split, tcfg, device)
    start = 0
    if payload is not None and payload["stage"] == "b":
        _restore(payload, model, opt, scaler)
        start = payload["epoch"] + 1
    if start < kept:
        forward = torch.compile(model) if tcfg.compile else model
        trainval_w = split.trainval().to(device)
        for epoch in range(start, kept):
            res = run_epoch("b", epoch, model, forward, opt, scaler, trainval_w)
            history.append({"stage": "b", "epoch": epoch, "train_loss": res.loss,
                            "val_loss": None, "seconds": res.seconds,
                            "seq_per_s": res.seq_per_s})
            save("b", epoch, model, opt, scaler)
    return Trained(model, history, kept, early.best_loss, resumed_from)


def _fit_counts(split: Split, cfg: RunConfig, device: torch.device, factory: ModelFactory
                ) -> Trained:
    """Count baselines: one `fit` on train, then, with `retrain`, a fresh one on train + val.
    No epochs, no checkpoints, and no losses: their scores are not logits."""
    seed_everything(cfg.train.seed)
    model = factory(split.n_items, split.n_users).to(device)
    start = time.perf_counter()
    model.fit(split.train)
    seconds = time.perf_counter() - start
    history = [{"stage": "a", "epoch": 0, "train_loss": None, "val_loss": None,
                "seconds": seconds, "seq_per_s": len(split.train) / max(seconds, 1e-9)}]
    if cfg.train.retrain:
        seed_everything(cfg.train.seed)
        model = factory(split.n_items, split.n_users).to(device)
        start = time.perf_counter()
        model.fit(split.trainval())
        seconds = time.perf_counter() - start
        history.append({"stage": "b", "epoch": 0, "train_loss": None, "val_loss": None,
                        "seconds": seconds,
                        "seq_per_s": (len(split.train) + len(split.val)) / max(seconds, 1e-9)})
    return Trained(model, history, None, None, None)


# ---------------------------------------------------------------------------------------------
# The entry point and the run record

def default_factory(cfg: RunConfig) -> ModelFactory:
    """`build_model(cfg.model, n_items, n_users)` from the model registry."""
    from seqrec.models import build_model  # imported late: train.py stays importable alone

    return lambda n_items, n_users: build_model(cfg.model, n_items, n_users)


def train_run(split: Split, cfg: RunConfig, run_dir: Path, device: torch.device, *, run_id: str,
              spec: dict | None = None, progress: bool = True,
              model_factory: ModelFactory | None = None, keep_model: bool = False,
              retry_failed: bool = False) -> dict:
    """Train (both stages), evaluate on test and write `run_dir/record.json`; return the record.

    Resumes from `run_dir/ckpt.pt` (or `ckpt.prev.pt`) when present. An existing record.json is
    returned as is, without training (with `retry_failed`, a failed one is retried). A run that
    fails (NaN/inf loss, out of memory, any RuntimeError while training) gets a record with
    status "failed" and the reason, and is returned, not raised; bad settings raise ValueError.
    After a successful run the checkpoints are deleted; `keep_model` writes the final weights
    to `run_dir/model.pt` (a state dict). `model_factory(n_items, n_users)` replaces the model
    registry (tests, custom models).
    """
    run_dir = Path(run_dir)
    record_path = run_dir / RECORD_FILE
    if record_path.exists():
        try:
            record = read_json(record_path)
        except (OSError, ValueError) as e:  # written atomically, so only damage gets here
            warnings.warn(f"ignoring unreadable run record {record_path} ({e}); running again",
                          RuntimeWarning, stacklevel=2)
        else:
            if not (retry_failed and record.get("status") == "failed"):
                return record
    check_split(split)
    factory = model_factory or default_factory(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    status, reason, result, trained = "ok", None, None, None
    history: list[dict] = []  # filled as epochs finish, so a failed run records them too
    try:
        if model_factory is None:
            from seqrec.models import model_class

            neural = getattr(model_class(cfg.model.name), "requires_training", True)
        else:  # a custom factory: ask a throwaway model (tests, small custom models)
            neural = getattr(factory(split.n_items, split.n_users), "requires_training", True)
        if neural:
            trained = _fit_neural(split, cfg, run_dir, device, factory, run_id, progress,
                                  history)
        else:
            trained = _fit_counts(split, cfg, device, factory)
        result = evaluate(trained.model, split.test, split, cfg, device)
    except torch.OutOfMemoryError:
        status = "failed"
        reason = (f"run {run_id}: out of memory on {device}; lower batch_size (now "
                  f"{cfg.train.batch_size}) or eval_batch_size (now {cfg.train.eval_batch_size})"
                  f", or use a smaller model")
    except RuntimeError as e:
        status = "failed"
        reason = str(e) if isinstance(e, TrainingDiverged) else f"run {run_id}: {e}"
    if status == "failed" and device.type == "cuda":
        torch.cuda.empty_cache()
    if status == "ok" and keep_model:
        weights = {k: v.detach().cpu() for k, v in trained.model.state_dict().items()}
        atomic_write_bytes(run_dir / MODEL_FILE, _torch_bytes(weights))
    record = _record(split, cfg, device, run_id, spec, status, reason, result, trained,
                     trained.history if trained else history, time.perf_counter() - start)
    atomic_write_json(record_path, record)
    if status == "ok":
        ckpt.remove_checkpoints(run_dir / CHECKPOINT_FILE)
    return record


def _torch_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def peak_memory_bytes(device: torch.device) -> int:
    """Peak allocated CUDA memory on CUDA; the process' peak resident set size on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # Linux reports KiB


def _jsonable(value: Any) -> Any:
    def default(x: Any) -> Any:
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, (np.ndarray, tuple, set)):
            return list(x.tolist() if isinstance(x, np.ndarray) else x)
        return str(x)

    return json.loads(json.dumps(value, default=default))


def _record(split: Split, cfg: RunConfig, device: torch.device, run_id: str, spec: dict | None,
            status: str, reason: str | None, result: dict | None, trained: Trained | None,
            history: list[dict], seconds: float) -> dict:
    history = [{k: (_finite_or_none(v) if isinstance(v, float) else v) for k, v in h.items()}
               for h in history]
    train_rows = [h for h in history if h["seconds"] and h["seq_per_s"]]
    total_seq = sum(h["seq_per_s"] * h["seconds"] for h in train_rows)
    total_s = sum(h["seconds"] for h in train_rows)
    dev = str(device)
    if device.type == "cuda":
        dev += f" ({torch.cuda.get_device_name(device)})"
    return _jsonable({
        "run_id": run_id,
        "status": status,
        "reason": reason,
        "spec": spec or {},
        "config": to_dict(cfg),
        "split": {**split.summary(), "third_bounds": split.third_bounds},
        "metrics": result["metrics"] if result else {},
        "metrics_by_popularity": result["metrics_by_popularity"] if result else {},
        "n_windows_by_popularity": result["n_windows_by_popularity"] if result else {},
        "n_test_windows": result["n_windows"] if result else 0,
        "test_loss": _finite_or_none(result["loss"]) if result else None,
        "n_items": split.n_items,
        "n_users": split.n_users,
        "epochs_kept": trained.epochs_kept if trained else None,
        "best_val_loss": _finite_or_none(trained.best_val_loss) if trained else None,
        "history": history,
        "seq_per_s": total_seq / total_s if total_s else None,
        "peak_memory_bytes": peak_memory_bytes(device),
        "device": dev,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "numpy": np.__version__, "seqrec": seqrec.__version__},
        "seed": cfg.train.seed,
        "seconds": seconds,
        "resumed_from": trained.resumed_from if trained else None,
    })


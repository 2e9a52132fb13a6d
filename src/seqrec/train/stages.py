"""The thesis' two-stage protocol, with an explicit state that every checkpoint holds whole.

docs/protocol.md, "Training and evaluation":
(a) train on train with Adam, cross-entropy on the last position; after every epoch compute the
    validation loss; stop early when it has not improved for `patience` epochs (at most
    `epochs`); the number of epochs kept is `epochs_kept(stop_epoch, patience)`.
(b) (`retrain=True`) a fresh model, same seed hence the same initial weights, is trained on
    train + val for that many epochs and evaluated on test. With `retrain=False` the weights of
    the epoch with the best validation loss are evaluated on test directly.

Where the protocol stands is one value, `StageState` (stage, epoch, early stopping, best
weights, history). After every epoch the state, the model, the optimiser and every random-number
state go into one checkpoint; `fit_neural` starts from the latest checkpoint's state, so a run
killed and resumed ends bitwise where an uninterrupted one ends (on the CPU). Count baselines
have no epochs: `fit_counts` fits them once per stage.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from seqrec import checkpoint as ckpt
from seqrec.config import RunConfig, to_dict
from seqrec.data.windows import DeviceWindows, Split
from seqrec.train.epoch import (
    EpochResult,
    epoch_order,
    make_optimizer,
    make_scaler,
    mean_loss,
    seed_everything,
    train_epoch,
)

ModelFactory = Callable[[int, int], nn.Module]
EpochCallback = Callable[[dict], None]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite, or blew up (`loss_blew_up`); the message names the run,
    stage, epoch and a remedy."""


# The divergence rule. A model that predicts every item with equal probability has the
# cross-entropy ln(n_items) (the "uniform loss": 6.4 at 600 items, 13.8 at a million), and a
# freshly initialised model starts near it. Learning lowers the loss; overfitting raises the
# validation loss by a fraction of it. A mean epoch loss of ten times the uniform loss says the
# average target got a probability below n_items ** -10 (1e-28 at 600 items): no model gets
# there by learning, only by weights that its updates blew up (a learning rate far too high,
# e.g. lr=1e12 gives a loss of 4e13). Such a run is failed, not finished. The factor leaves a
# wide margin on both sides: healthy runs stay below 2x, blown-up ones reach 1e3x and more.
DIVERGED_FACTOR = 10.0


def loss_blew_up(loss: float, n_items: int) -> bool:
    """Whether a mean cross-entropy over `n_items` classes is more than `DIVERGED_FACTOR` times
    that of the uniform prediction, ln(n_items) (NaN and inf included)."""
    return not math.isfinite(loss) or loss > DIVERGED_FACTOR * math.log(max(n_items, 2))


class TrainingFailed(RuntimeError):
    """Training stopped for the run's own reason (divergence, out of memory, a runtime error).
    `history` holds the epochs that finished, for the failed run's record."""

    def __init__(self, reason: str, history: tuple[dict, ...]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.history = history


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
# The protocol's state

class StageState(NamedTuple):
    """Where the two-stage protocol stands.

    `stage` "a" or "b"; `epoch` the last finished epoch of that stage (-1 before its first; in
    stage (a) it equals `early.last_epoch`); `best_state` the weights of stage (a)'s best epoch
    (kept only without retraining); `history` one dict per finished epoch.
    """

    stage: str = "a"
    epoch: int = -1
    early: EarlyStopping = EarlyStopping()
    best_state: dict | None = None
    history: tuple[dict, ...] = ()

    def payload(self, cfg: RunConfig, model: nn.Module, opt: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler | None) -> dict:
        """Everything a checkpoint holds: this state, the weights, the optimiser, the RNGs."""
        return {"stage": self.stage, "epoch": self.epoch, "early": self.early._asdict(),
                "best_state": self.best_state, "history": list(self.history),
                "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scaler": scaler.state_dict() if scaler else None, "config": to_dict(cfg),
                "rng": ckpt.rng_state()}

    @classmethod
    def from_payload(cls, payload: dict) -> StageState:
        return cls(stage=payload["stage"], epoch=payload["epoch"],
                   early=EarlyStopping(**payload["early"]),
                   best_state=payload.get("best_state"), history=tuple(payload["history"]))


class Trained(NamedTuple):
    model: nn.Module
    history: tuple[dict, ...]
    epochs_kept: int | None
    best_val_loss: float | None
    resumed_from: dict | None


@dataclass(frozen=True)
class Fit:
    """What one neural run is trained with."""

    split: Split
    cfg: RunConfig
    device: torch.device
    factory: ModelFactory
    checkpoint: Path
    run_id: str
    progress: bool = True
    on_epoch: EpochCallback | None = None  # called with each finished epoch's history row


def new_model(factory: ModelFactory, split: Split, seed: int, device: torch.device) -> nn.Module:
    """A model for `split`, built right after seeding: the same seed gives the same weights."""
    seed_everything(seed)
    return factory(split.n_items, split.n_users).to(device)


def _optimiser(fit: Fit, model: nn.Module
               ) -> tuple[nn.Module, torch.optim.Optimizer, torch.amp.GradScaler | None]:
    return model, make_optimizer(model, fit.cfg.train), make_scaler(fit.device, fit.cfg.train.amp)


def _restore(payload: dict, model: nn.Module, opt: torch.optim.Optimizer,
             scaler: torch.amp.GradScaler | None) -> None:
    model.load_state_dict(payload["model"])
    opt.load_state_dict(payload["optimizer"])
    if scaler is not None and payload.get("scaler"):
        scaler.load_state_dict(payload["scaler"])
    ckpt.set_rng_state(payload["rng"])


def _diverged(fit: Fit, what: str, value: float, when: str) -> TrainingDiverged:
    t = fit.cfg.train
    uniform = math.log(max(fit.split.n_items, 2))
    became = f"became {value}" if not math.isfinite(value) else (
        f"blew up to {value:.4g}, over {DIVERGED_FACTOR:g}x the {uniform:.2f} of a uniform "
        f"prediction")
    return TrainingDiverged(f"run {fit.run_id}: the {what} {became} {when}; try a lower "
                            f"lr (now {t.lr}) or set grad_clip (now {t.grad_clip}, e.g. 5)")


def _forward(fit: Fit, model: nn.Module) -> Callable:
    """What a stage's epochs call: the model, or its compiled form (built once per stage)."""
    return torch.compile(model) if fit.cfg.train.compile else model


def _epoch(fit: Fit, stage: str, epoch: int, model: nn.Module, forward: Callable,
           opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
           windows: DeviceWindows) -> EpochResult:
    order = epoch_order(len(windows), fit.cfg.train.seed, stage, epoch)
    res = train_epoch(model, forward, opt, scaler, windows, order, fit.cfg.train, fit.device,
                      desc=f"{fit.run_id} stage {stage} epoch {epoch}", progress=fit.progress)
    if loss_blew_up(res.loss, fit.split.n_items):
        raise _diverged(fit, "training loss", res.loss, f"in stage ({stage}) epoch {epoch}")
    return res


def _finished(fit: Fit, state: StageState, row: dict, model: nn.Module,
              opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> StageState:
    """Append an epoch's row to the history, tell the callback, checkpoint the new state.

    The callback (the epoch's line and TensorBoard point, the run claim's heartbeat) comes
    before the checkpoint: a kill between the two then redoes the epoch on resume, which tells
    the callback again (with the same values on the CPU), instead of resuming after an epoch
    the callback never heard of (a point missing from TensorBoard for good)."""
    state = state._replace(history=(*state.history, row))
    if fit.on_epoch is not None:
        fit.on_epoch(row)
    ckpt.save_checkpoint(fit.checkpoint, state.payload(fit.cfg, model, opt, scaler))
    return state


# What torch's allocators say when memory runs out: CUDA raises torch.OutOfMemoryError ("CUDA
# out of memory"), the CPU allocator a plain RuntimeError ("DefaultCPUAllocator: not enough
# memory: you tried to allocate ..."; "can't allocate memory" in older versions).
_OOM_TEXTS = ("out of memory", "DefaultCPUAllocator", "not enough memory",
              "can't allocate memory")
# The settings that size a run's memory, largest effect first, for every out-of-memory message.
MEMORY_SETTINGS = "batch_size, eval_batch_size, hidden_size and embedding_size, or seq_len"


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is memory running out: torch's OutOfMemoryError, its CPU allocator's
    RuntimeError, or Python's MemoryError (numpy)."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(t in str(error) for t in _OOM_TEXTS)


def out_of_memory_reason(run_id: str, device: torch.device, cfg: RunConfig) -> str:
    """The one-line reason of a run that ran out of memory, with the settings to lower."""
    t = cfg.train
    return (f"run {run_id}: out of memory on {device}; lower batch_size (now {t.batch_size}) "
            f"or eval_batch_size (now {t.eval_batch_size}), hidden_size and embedding_size "
            f"(the model), or seq_len (now {cfg.data.seq_len})")


def _failure(fit: Fit, error: RuntimeError, state: StageState) -> TrainingFailed:
    """The run's own failure as a `TrainingFailed` carrying the epochs that finished."""
    if is_out_of_memory(error):
        reason = out_of_memory_reason(fit.run_id, fit.device, fit.cfg)
    elif isinstance(error, TrainingDiverged):
        reason = str(error)
    else:
        reason = f"run {fit.run_id}: {error}"
    return TrainingFailed(reason, state.history)


def _follow(fit: Fit, state: StageState, states: Iterator[StageState]) -> StageState:
    """Run a stage to its end (`states` yields the state after each epoch); a failure raises
    `TrainingFailed` with the epochs finished before it."""
    try:
        for state in states:  # noqa: B007 - the last state is what a failure reports
            pass
    except RuntimeError as e:
        raise _failure(fit, e, state) from e
    return state


def _stage_a(fit: Fit, state: StageState, model: nn.Module, opt: torch.optim.Optimizer,
             scaler: torch.amp.GradScaler | None) -> Iterator[StageState]:
    """Stage (a) from where `state` stands until early stopping or the epoch budget."""
    tcfg = fit.cfg.train
    if stage_a_done(state.early, tcfg.epochs):
        return
    train_w, val_w = fit.split.train.to(fit.device), fit.split.val.to(fit.device)
    forward = _forward(fit, model)
    for epoch in range(state.early.last_epoch + 1, tcfg.epochs):
        res = _epoch(fit, "a", epoch, model, forward, opt, scaler, train_w)
        val = mean_loss(model, val_w, tcfg.eval_batch_size, fit.device, tcfg.amp)
        if loss_blew_up(val, fit.split.n_items):
            raise _diverged(fit, "validation loss", val, f"after stage (a) epoch {epoch}")
        early = early_stopping_step(state.early, epoch, val, tcfg.patience)
        improved = early.best_epoch == epoch
        best = state.best_state
        if not tcfg.retrain and improved:
            best = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        state = state._replace(epoch=epoch, early=early, best_state=best)
        row = {"stage": "a", "epoch": epoch, "train_loss": res.loss, "val_loss": val,
               "improved": improved, "seconds": res.seconds, "seq_per_s": res.seq_per_s}
        state = _finished(fit, state, row, model, opt, scaler)
        yield state
        if early.stopped:
            break


def _stage_b(fit: Fit, state: StageState, kept: int, model: nn.Module,
             opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None
             ) -> Iterator[StageState]:
    """Stage (b) from where `state` stands until `kept` epochs on train + val are done."""
    if state.epoch + 1 >= kept:
        return
    trainval_w = fit.split.trainval().to(fit.device)
    forward = _forward(fit, model)
    for epoch in range(state.epoch + 1, kept):
        res = _epoch(fit, "b", epoch, model, forward, opt, scaler, trainval_w)
        state = state._replace(epoch=epoch)
        row = {"stage": "b", "epoch": epoch, "train_loss": res.loss, "val_loss": None,
               "improved": None, "seconds": res.seconds, "seq_per_s": res.seq_per_s}
        state = _finished(fit, state, row, model, opt, scaler)
        yield state


def fit_neural(fit: Fit, model: nn.Module) -> Trained:
    """Both stages, resumed from `fit.checkpoint` (or its `.prev.pt`) when one is there.

    `model` is `new_model(fit.factory, ...)` with the run's seed: the start of stage (a), or the
    model a stage (b) checkpoint is restored into.

    Raises `TrainingFailed` (with the finished epochs) when training stops for the run's own
    reason; a checkpoint of another configuration is a ValueError.
    """
    payload, source = ckpt.load_latest(fit.checkpoint)
    if payload is not None and payload["config"] != to_dict(fit.cfg):
        raise ValueError(f"checkpoint {source} was written for a different configuration; "
                         f"delete it or use another run directory")
    state = StageState.from_payload(payload) if payload is not None else StageState()
    resumed_from = None if payload is None else {"stage": payload["stage"],
                                                 "epoch": payload["epoch"], "file": str(source)}
    tcfg = fit.cfg.train
    try:
        model, opt, scaler = _optimiser(fit, model)
        if payload is not None:
            _restore(payload, model, opt, scaler)
    except RuntimeError as e:
        raise _failure(fit, e, state) from e
    if state.stage == "a":
        state = _follow(fit, state, _stage_a(fit, state, model, opt, scaler))
    kept = epochs_kept(state.early.last_epoch, tcfg.patience)
    if not tcfg.retrain:
        model.load_state_dict(state.best_state)
        return Trained(model, state.history, state.early.best_epoch + 1, state.early.best_loss,
                       resumed_from)
    if state.stage == "a":
        # Stage (b): a fresh model (same initial weights) on train + val; stage (a)'s weights
        # and Adam moments are freed first.
        del model, opt, scaler
        try:
            model, opt, scaler = _optimiser(fit, new_model(fit.factory, fit.split, tcfg.seed,
                                                           fit.device))
        except RuntimeError as e:
            raise _failure(fit, e, state) from e
        state = state._replace(stage="b", epoch=-1)
    state = _follow(fit, state, _stage_b(fit, state, kept, model, opt, scaler))
    return Trained(model, state.history, kept, state.early.best_loss, resumed_from)


def fit_counts(split: Split, cfg: RunConfig, device: torch.device, model: nn.Module,
               factory: ModelFactory) -> Trained:
    """Count baselines: `model.fit` on train, then, with `retrain`, a fresh one on train + val.
    No epochs, no checkpoints, and no losses: their scores are not logits."""
    start = time.perf_counter()
    model.fit(split.train)
    seconds = time.perf_counter() - start
    history = [{"stage": "a", "epoch": 0, "train_loss": None, "val_loss": None,
                "improved": None, "seconds": seconds,
                "seq_per_s": len(split.train) / max(seconds, 1e-9)}]
    if cfg.train.retrain:
        model = new_model(factory, split, cfg.train.seed, device)
        start = time.perf_counter()
        model.fit(split.trainval())
        seconds = time.perf_counter() - start
        history.append({"stage": "b", "epoch": 0, "train_loss": None, "val_loss": None,
                        "improved": None, "seconds": seconds,
                        "seq_per_s": (len(split.train) + len(split.val)) / max(seconds, 1e-9)})
    return Trained(model, tuple(history), None, None, None)

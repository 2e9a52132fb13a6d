"""One run: train (or fit) a model on a split, evaluate it on test, return its `RunRecord`.

`train_run` trains in a run folder (its checkpoints live there, so a killed run resumes) but
never reads or writes the run's record: deciding whether a run is done, retrying it and writing
its record belong to the runner (seqrec/runner.py), which owns a run folder's life.
"""

from __future__ import annotations

import io
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrec.config import RunConfig, to_dict
from seqrec.data.windows import Split
from seqrec.io import atomic_write_bytes
from seqrec.metrics import evaluate
from seqrec.models import build_model
from seqrec.provenance import code_version
from seqrec.ranks import RunRanks, write_ranks
from seqrec.record import RunLabel, RunRecord, RunState
from seqrec.train.epoch import check_split
from seqrec.train.stages import (
    EpochCallback,
    Fit,
    ModelFactory,
    Trained,
    TrainingFailed,
    fit_counts,
    fit_neural,
    is_out_of_memory,
    new_model,
    out_of_memory_reason,
)

CHECKPOINT_FILE = "ckpt.pt"
MODEL_FILE = "model.pt"


def default_factory(cfg: RunConfig) -> ModelFactory:
    """`build_model(cfg.model, n_items, n_users)` from the model registry."""
    return lambda n_items, n_users: build_model(cfg.model, n_items, n_users)


def train_run(split: Split, cfg: RunConfig, run_dir: Path, device: torch.device, *,
              label: RunLabel, progress: bool = True, model_factory: ModelFactory | None = None,
              keep_model: bool = False, on_epoch: EpochCallback | None = None,
              checkpoint: Path | None = None, ranks_file: Path | None = None) -> RunRecord:
    """Train (both stages, or one count fit) and evaluate on test; return the run's record.

    Resumes from `checkpoint` (default `run_dir/ckpt.pt`; or its `.prev.pt`) when present. A
    run that fails for its own reason (NaN/inf loss, out of memory, a RuntimeError while
    training or evaluating) gets a record with status "failed", its reason and the epochs it
    finished; bad settings raise ValueError. `keep_model` writes the final weights to
    `run_dir/model.pt` (a state dict).
    `model_factory(n_items, n_users)` replaces the model registry (tests, custom models); the
    model it builds says by its `kind` whether it is trained or counted (models/contract.py).
    `on_epoch(row)` is called after every finished epoch with its history row.
    `ranks_file`: where a finished run writes its per-window test ranks (`seqrec.ranks`; the
    runner puts them beside the record); None writes none.
    """
    run_dir = Path(run_dir)
    check_split(split)
    factory = model_factory or default_factory(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    status, reason, result, trained, history = RunState.OK, None, None, None, ()
    try:
        model = new_model(factory, split, cfg.train.seed, device)
        if model.kind == "neural":
            fit = Fit(split, cfg, device, factory, checkpoint or run_dir / CHECKPOINT_FILE,
                      label.run_id, progress, on_epoch)
            trained = fit_neural(fit, model)
        else:
            trained = fit_counts(split, cfg, device, model, factory)
        history = trained.history
        result = evaluate(trained.model, split.test, split, cfg, device,
                          keep_ranks=ranks_file is not None)
    except TrainingFailed as e:
        status, reason, history = RunState.FAILED, e.reason, e.history
    except RuntimeError as e:
        status = RunState.FAILED
        reason = (out_of_memory_reason(label.run_id, device, cfg) if is_out_of_memory(e)
                  else f"run {label.run_id}: {e}")
    if status == RunState.FAILED and device.type == "cuda":
        torch.cuda.empty_cache()
    if status == RunState.OK and ranks_file is not None:
        write_ranks(ranks_file, RunRanks.from_evaluation(result["ranks"], cfg.eval.ties))
    if status == RunState.OK and keep_model:
        weights = {k: v.detach().cpu() for k, v in trained.model.state_dict().items()}
        atomic_write_bytes(run_dir / MODEL_FILE, _torch_bytes(weights))
    return make_record(split, cfg, device, label, status, reason, result, trained, history,
                       time.perf_counter() - start)


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


def make_record(split: Split, cfg: RunConfig, device: torch.device, label: RunLabel,
                status: str, reason: str | None, result: dict | None, trained: Trained | None,
                history: tuple[dict, ...], seconds: float) -> RunRecord:
    """The `RunRecord` of a finished or failed run (without its data and request, which the
    runner adds)."""
    train_rows = [h for h in history if h["seconds"] and h["seq_per_s"]]
    total_seq = sum(h["seq_per_s"] * h["seconds"] for h in train_rows)
    total_s = sum(h["seconds"] for h in train_rows)
    dev = str(device)
    if device.type == "cuda":
        dev += f" ({torch.cuda.get_device_name(device)})"
    ok = result is not None
    return RunRecord(
        spec=label,
        status=status.value,
        reason=reason,
        config=to_dict(cfg),
        split={**split.summary(), "third_bounds": split.third_bounds},
        metrics=result["metrics"] if ok else {},
        metrics_by_popularity=result["metrics_by_popularity"] if ok else {},
        n_windows_by_popularity=result["n_windows_by_popularity"] if ok else {},
        n_test_windows=result["n_windows"] if ok else 0,
        test_loss=result["loss"] if ok else None,
        n_items=split.n_items,
        n_users=split.n_users,
        epochs_kept=trained.epochs_kept if trained else None,
        best_val_loss=trained.best_val_loss if trained else None,
        history=[dict(h) for h in history],
        seq_per_s=total_seq / total_s if total_s else None,
        peak_memory_bytes=peak_memory_bytes(device),
        device=dev,
        versions={"python": platform.python_version(), "torch": torch.__version__,
                  "numpy": np.__version__, **code_version()},
        seconds=seconds,
        resumed_from=trained.resumed_from if trained else None,
    )

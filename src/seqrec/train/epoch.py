"""One epoch of training, one loss pass, and what they need: seeds, batch order, optimiser.

Batches are gathered on the device from the flat split arrays, in an order that is a function
of (seed, stage, epoch) only (`epoch_order`), so a resumed run recomputes any epoch's order.
The loss is the mean last-position cross-entropy (docs/protocol.md, "Training and evaluation").
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqrec.config import TrainConfig
from seqrec.data.windows import PARTS, DeviceWindows, Split
from seqrec.progress import progress_bar


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

    Through the model's own `loss` (every trainable model has one, see models/contract.py; the
    recurrent models fuse the output layer and the cross-entropy, models/loss.py) when `forward`
    is the model itself; through `forward`'s logits and `F.cross_entropy` in float32 for a
    compiled model, where the compiler fuses them. Both compute the same value.
    """
    if forward is model:
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
    with progress_bar(per_batch=True, total=n, desc=desc, unit="seq", disable=not progress,
                      leave=False) as bar:
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


def make_optimizer(model: nn.Module, tcfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam over the model's parameter groups, as the fused single-kernel update where this
    torch has one for the device (CPU since torch 2.4, CUDA): the same update rule, one pass
    over each parameter instead of several (about 25 ms of a 180 ms GRU step at exp 4 sizes
    on 2 CPU threads, docs/benchmarks.md)."""
    groups = model.param_groups(tcfg.weight_decay, tcfg.user_weight_decay)
    try:
        return torch.optim.Adam(groups, lr=tcfg.lr, fused=True)
    except RuntimeError:  # no fused kernel for these parameters' device in this torch
        return torch.optim.Adam(groups, lr=tcfg.lr)


def make_scaler(device: torch.device, amp: bool) -> torch.amp.GradScaler | None:
    # Loss scaling is only needed for float16 autocast (GPUs without bfloat16, e.g. Colab's T4).
    if amp and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.amp.GradScaler("cuda")
    return None

"""Dropout masks drawn from 32-bit random integers (fast on CPU).

`torch.nn.functional.dropout` on a CPU tensor draws one Bernoulli variate per element, and
that draw dominates a GRU training step at the thesis' exp 4 sizes (about 20 ms of a 160 ms step
for the `[256, 19, 384]` input projection on 2 threads; docs/benchmarks.md). Here the random
bits come from `random_` over the full int64 range, each int64 giving two independent uniform
32-bit integers, and an element is kept when its integer clears a threshold: about a quarter of
the cost. The keep probability is `1 - p` to within 2^-32 (Bernoulli draws from a float32
uniform are exact to 2^-24 only). On other devices the fused `F.dropout` kernel is used: there
the draw is cheap already. Either way the result is inverted dropout, `x * mask / (1 - p)`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

_TWO_32 = 1 << 32


def keep_threshold(p: float) -> int:
    """The signed 32-bit threshold t such that P(v >= t) = 1 - p for v uniform on int32."""
    return round(p * _TWO_32) - (1 << 31)


def dropout_mask(shape: tuple[int, ...], p: float, *, device: torch.device,
                 dtype: torch.dtype, generator: torch.Generator | None = None) -> Tensor:
    """A scaled keep mask `shape`: each element 1 / (1 - p) with probability 1 - p, else 0.

    Elements are independent; the draw uses `generator` (default: the global one), so a seed
    reproduces the mask.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must lie in [0, 1), got {p}")
    n = math.prod(shape)
    if device.type != "cpu":
        ones = torch.ones(shape, device=device, dtype=dtype)
        return F.dropout(ones, p, True)
    bits = torch.empty((n + 1) // 2, dtype=torch.int64, device=device)
    bits.random_(-(1 << 63), None, generator=generator)
    keep = bits.view(torch.int32)[:n].view(shape) >= keep_threshold(p)
    return keep.to(dtype).mul_(1.0 / (1.0 - p))


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Inverted dropout of `x` (any shape): `x * dropout_mask(...)` in training, else `x`."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    return x * dropout_mask(tuple(x.shape), p, device=x.device, dtype=x.dtype)


def mask_like(x: Tensor, p: float, training: bool) -> Tensor:
    """The scaled dropout mask for `x`'s shape in training with p > 0, else an all-ones
    stride-0 view (no memory, and recognisable by its zero stride): for terms that multiply a
    mask into a sum they compute later, e.g. `mask * ((1 - a) W x + b)`."""
    if training and p > 0:
        return dropout_mask(tuple(x.shape), p, device=x.device, dtype=x.dtype)
    return x.new_ones(1).expand_as(x)

"""The output layer and the cross-entropy over all items as one function (fewer passes on CPU).

At the thesis' sizes the logits `[B, n_items]` are the largest tensor of a GRU step (30 MB at
B 256, 30,000 items). `F.linear` followed by `F.cross_entropy` makes about ten passes over
that size and four fresh allocations of it (log-softmax output, a zero-filled gradient, the
log-softmax gradient), each of which costs page faults on a CPU. `linear_cross_entropy` keeps
one buffer: the forward pass turns the logits into exp(logit - max) in place; the backward pass
turns that buffer into the logit gradient (softmax - one-hot) / B in place and feeds it to the
two matmuls. Same function and gradients as `F.cross_entropy(F.linear(x, W, b), target)`.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


class _LinearCrossEntropy(torch.autograd.Function):
    """loss = mean_b [logsumexp(W x_b + c) - (W x_b + c)[y_b]] with a hand-written backward.

    With e = exp(z - max z) per row and s = sum e, the gradient of the mean loss in the logits
    is (e / s - onehot(y)) / B; then dx = G W, dW = G^T x, dc = sum_b G. Inputs: x `[B, H]`,
    weight `[N, H]`, bias `[N]`, target `[B]` (int64) -> scalar. The buffer e is reused in
    place by the backward pass, so the graph can be backpropagated once (no retain_graph).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, target: Tensor) -> Tensor:  # noqa: D102
        z = torch.addmm(bias, x, weight.t())  # [B, N]
        rows = torch.arange(z.shape[0], device=z.device)
        picked = z[rows, target]  # [B]
        top = z.amax(1, keepdim=True)  # [B, 1]
        e = z.sub_(top).exp_()  # in place: the logits are not needed again
        total = e.sum(1, keepdim=True)  # [B, 1]
        ctx.save_for_backward(x, weight, e, total, target)
        return (total.log().squeeze(1) + top.squeeze(1) - picked).mean()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # noqa: D102
        x, weight, e, total, target = ctx.saved_tensors
        batch = e.shape[0]
        scale = grad / batch
        g = e.mul_(scale / total)  # softmax / B, in place
        g[torch.arange(batch, device=g.device), target] -= scale
        dx = g @ weight if ctx.needs_input_grad[0] else None
        dw = g.t() @ x if ctx.needs_input_grad[1] else None
        db = g.sum(0) if ctx.needs_input_grad[2] else None
        return dx, dw, db, None


def linear_cross_entropy(x: Tensor, weight: Tensor, bias: Tensor, target: Tensor) -> Tensor:
    """Mean cross-entropy of the logits `x W^T + b` against `target`.

    x `[B, H]`, weight `[N, H]`, bias `[N]`, target `[B]` -> scalar. Takes the one-buffer path
    (`_LinearCrossEntropy`) for float32/float64 inputs outside autocast; under autocast it
    is `F.cross_entropy` of float32 logits (the matmul stays in the autocast dtype).
    """
    if torch.is_autocast_enabled(x.device.type) or x.dtype not in (torch.float32, torch.float64):
        return F.cross_entropy(F.linear(x, weight, bias).float(), target)
    return _LinearCrossEntropy.apply(x, weight, bias, target)


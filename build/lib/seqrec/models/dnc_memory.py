"""DNC memory addressing: functions that take the memory state and an interface, and return the
next state (Graves et al., "Hybrid computing using a neural network with dynamic external
memory", Nature 538, 2016, Methods; Csordas and Schmidhuber, "Improving Differentiable Neural
Computers Through Memory Masking, De-allocation, and Link Distribution Sharpness Control", ICLR
2019, section 3).

Shapes: B batch, N memory cells, W word size, R read heads.

Per step, in Graves' order (Methods, "Dynamic memory allocation" ... "Read weighting"):
    psi = prod_i (1 - f_i w^r_i,t-1)                                retention          [B, N]
    u_t = (u_t-1 + sg(w^w_t-1) (1 - u_t-1)) * psi                   usage              [B, N]
    u' = EPS + (1 - EPS) u_t                                        usage floor        [B, N]
    a[phi_j] = (1 - u'[phi_j]) prod_{i<j} u'[phi_i], phi = argsort(u') allocation      [B, N]
    c^w = C(M_t-1, k^w, beta^w)                                     write content      [B, N]
    w^w = g_w (g_a a + (1 - g_a) c^w)                               write weights      [B, N]
    M_t = M_t-1 * (1 - w^w e^T) + w^w v^T                           memory          [B, N, W]
    L_t[i, j] = (1 - w_i - w_j) L_t-1[i, j] + w_i p_t-1[j], L[i, i] = 0                [B, N, N]
    p_t = (1 - sum w^w) p_t-1 + w^w                                 precedence         [B, N]
    f_i = L_t w^r_i,t-1;  b_i = L_t^T w^r_i,t-1                     link reads      [B, R, N]
    w^r_i = pi_i,1 b_i + pi_i,2 C(M_t, k^r_i, beta^r_i) + pi_i,3 f_i
    r_i = M_t^T w^r_i                                               read vectors    [B, R, W]
with C(M, k, beta)[n] = softmax_n(beta * M[n] . k / (|M[n]| |k| + EPS)), beta = oneplus(.) =
1 + softplus(.), and sg(.) a stop-gradient: usage is not differentiated through the previous
write weights, as in DeepMind's reference implementation (`Freeness`) and Csordas and
Schmidhuber's (xdever/dnc); Graves et al. define the values only.

Csordas and Schmidhuber's three changes, each a switch in `MemoryOptions`:
- masked_lookup (their eq. for masked content addressing): every key comes with a mask
  m = sigmoid(.) in [0, 1]^W and the similarity is cos(M[n] * m, k * m), so the network can look
  up by part of a word (key-value separation).
- dealloc_content (de-allocation): the retention vector also wipes freed cells,
  M_t = M_t-1 * psi 1^T * (1 - w^w e^T) + w^w v^T, so freed content cannot alias a lookup.
- link_sharpness (sharpness control): f_i = S(L_t w^r_i, s^f_i), b_i = S(L_t^T w^r_i, s^b_i)
  with S(d, s)[n] = d[n]^s / sum_m d[m]^s and s = oneplus(.) >= 1, against the blur that
  accumulates in chained link reads. Computed as their implementation does, with d + EPS for d:
  every sharpened read sums to 1, and an empty link matrix reads the uniform 1/N.

One epsilon, EPS = 1e-6, in the three places where Csordas and Schmidhuber's implementation has
it: the cosine's denominator (|a| |b| + EPS, with exact norms; an empty cell's norm gradient is
0, so its score's gradient is beta k m^2 / EPS), the usage floor of the allocation (products
never reach 0 on the way, as in Graves' reference) and the sharpening's offset. The tests hold
the step against values computed by running their implementation (tests/fixtures/README.md).

The functions here are the plain autograd statement of each formula (`memory_step_reference`
chains them); `memory_step` computes the same step through the hand-written functions of
`dnc_kernels.py`, which the tests hold against these.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from seqrec.models.dnc_kernels import (
    EPS,
    ContentWeights,
    LinkStep,
    ReadPath,
    Sharpen,
    WritePath,
)


class MemoryOptions(NamedTuple):
    """Csordas and Schmidhuber (2019) switches; all on by default (ModelConfig fields)."""

    masked_lookup: bool = True
    dealloc_content: bool = True
    link_sharpness: bool = True


class MemoryState(NamedTuple):
    """Memory and addressing state of one step.

    memory `[B, N, W]`, usage `[B, N]`, link `[B, N, N]`, precedence `[B, N]`,
    read_weights `[B, R, N]`, write_weights `[B, N]`.
    """

    memory: Tensor
    usage: Tensor
    link: Tensor
    precedence: Tensor
    read_weights: Tensor
    write_weights: Tensor


class Interface(NamedTuple):
    """The controller's commands to the memory for one step (already squashed to their ranges).

    read_keys `[B, R, W]`, read_strengths `[B, R]` (>= 1), write_key `[B, W]`, write_strength
    `[B]` (>= 1), erase `[B, W]` in [0, 1], write_vector `[B, W]`, free_gates `[B, R]`,
    alloc_gate `[B]`, write_gate `[B]` in [0, 1], read_modes `[B, R, 3]` (backward, content,
    forward; rows sum to 1); read_masks `[B, R, W]`, write_mask `[B, W]` (None without
    masked_lookup); forward_sharpness, backward_sharpness `[B, R]` (>= 1; None without
    link_sharpness).
    """

    read_keys: Tensor
    read_strengths: Tensor
    write_key: Tensor
    write_strength: Tensor
    erase: Tensor
    write_vector: Tensor
    free_gates: Tensor
    alloc_gate: Tensor
    write_gate: Tensor
    read_modes: Tensor
    read_masks: Tensor | None
    write_mask: Tensor | None
    forward_sharpness: Tensor | None
    backward_sharpness: Tensor | None


def _sizes(word: int, heads: int, opts: MemoryOptions) -> list[int]:
    sizes = [heads * word, heads, word, 1, word, word, heads, 1, 1, 3 * heads]
    if opts.masked_lookup:
        sizes += [heads * word, word]
    if opts.link_sharpness:
        sizes += [heads, heads]
    return sizes


def interface_size(word: int, heads: int, opts: MemoryOptions) -> int:
    """Length of the raw interface vector the controller emits."""
    return sum(_sizes(word, heads, opts))


def oneplus(x: Tensor) -> Tensor:
    """1 + softplus(x), in [1, inf) (Graves et al. 2016, Methods)."""
    return 1 + F.softplus(x)


def split_interface(raw: Tensor, word: int, heads: int, opts: MemoryOptions) -> Interface:
    """Cut the raw interface vector `[B, I]` into its parts and squash each to its range."""
    b = raw.shape[0]
    parts = list(torch.split(raw, _sizes(word, heads, opts), dim=1))
    rk, rs, wk, ws, er, wv, fg, ag, wg, rm = parts[:10]
    rest = parts[10:]
    read_masks = write_mask = fwd = bwd = None
    if opts.masked_lookup:
        read_masks = torch.sigmoid(rest[0]).view(b, heads, word)
        write_mask = torch.sigmoid(rest[1])
        rest = rest[2:]
    if opts.link_sharpness:
        fwd, bwd = oneplus(rest[0]), oneplus(rest[1])
    return Interface(
        read_keys=rk.view(b, heads, word), read_strengths=oneplus(rs),
        write_key=wk, write_strength=oneplus(ws[:, 0]), erase=torch.sigmoid(er),
        write_vector=wv, free_gates=torch.sigmoid(fg), alloc_gate=torch.sigmoid(ag[:, 0]),
        write_gate=torch.sigmoid(wg[:, 0]), read_modes=torch.softmax(rm.view(b, heads, 3), -1),
        read_masks=read_masks, write_mask=write_mask,
        forward_sharpness=fwd, backward_sharpness=bwd,
    )


def content_weights_reference(memory: Tensor, keys: Tensor, strengths: Tensor,
                              masks: Tensor | None = None) -> Tensor:
    """Plain autograd version of `content_weights` (kept as the tests' reference)."""
    if masks is None:
        dots = torch.bmm(keys, memory.transpose(1, 2))  # [B, K, N]
        sq_norm = (memory * memory).sum(2).unsqueeze(1)  # [B, 1, N]
    else:
        # (M[n] m) . (k m) = M[n] . (k m^2), and |M[n] m| = sqrt((M^2)[n] . m^2): no [B, K, N, W].
        m2 = masks * masks  # [B, K, W]
        dots = torch.bmm(keys * m2, memory.transpose(1, 2))
        sq_norm = torch.bmm(m2, (memory * memory).transpose(1, 2))
        keys = keys * masks
    mem_norm = _norm_from_square(sq_norm)
    key_norm = keys.norm(dim=2, keepdim=True)  # [B, K, 1]
    cos = dots / (key_norm * mem_norm + EPS)
    return torch.softmax(strengths.unsqueeze(2) * cos, dim=2)


def _norm_from_square(sq: Tensor) -> Tensor:
    """sqrt(sq) for sq >= 0, with the gradient 0 at sq = 0 (torch's `norm` convention) in place
    of sqrt's infinite one: an empty cell's norm then adds nothing to its gradient."""
    positive = sq > 0
    return torch.where(positive, sq.where(positive, 1.0).sqrt(), 0.0)


def content_weights(memory: Tensor, keys: Tensor, strengths: Tensor,
                    masks: Tensor | None = None) -> Tensor:
    """C(M, k, beta, m): softmax over cells of beta * cos(M[n] * m, k * m).

    memory `[B, N, W]`, keys `[B, K, W]`, strengths `[B, K]`, masks `[B, K, W]` or None
    (unmasked, Graves 2016) -> `[B, K, N]`. Masked lookups go through `ContentWeights`
    (`dnc_kernels.py`: same values as `content_weights_reference`, fewer passes over M);
    unmasked ones through the plain expression.
    """
    if masks is None:
        return content_weights_reference(memory, keys, strengths)
    return ContentWeights.apply(memory, keys, strengths, masks)


def retention(free_gates: Tensor, read_weights: Tensor) -> Tensor:
    """psi = prod_i (1 - f_i w^r_i): free_gates `[B, R]`, read_weights `[B, R, N]` -> `[B, N]`."""
    return torch.prod(1 - free_gates.unsqueeze(2) * read_weights, dim=1)


def update_usage(usage: Tensor, write_weights: Tensor, psi: Tensor) -> Tensor:
    """u_t = (u + sg(w^w) (1 - u)) psi (Graves et al. 2016, Methods, "Dynamic memory
    allocation") with the previous step's write weights w^w; all `[B, N]`.

    sg: the write weights enter detached, as in DeepMind's and Csordas and Schmidhuber's
    implementations (usage is not differentiable w.r.t. the write weights there); the gradient
    still flows through u and psi.
    """
    return (usage + write_weights.detach() * (1 - usage)) * psi


def ascending_order(usage: Tensor) -> Tensor:
    """The indices that sort each row of usage `[B, N]` (> 0) ascending, ties by index (a
    stable sort) -> int64 `[B, N]`.

    On the CPU in float32, each positive value's bit pattern (as int32) orders like the value,
    so (bits << 32 | index) packs value and tie-break into one int64 key; NumPy's vectorised
    integer sort of those keys takes a fifth of `torch.sort`'s time on rows of 128 cells
    (0.2 ms against 1.3 ms at B 256, once per DNC step). Elsewhere `torch.sort(stable=True)`.
    """
    if usage.device.type == "cpu" and usage.dtype == torch.float32:
        bits = usage.detach().view(torch.int32).to(torch.int64)
        keys = (bits << 32) | torch.arange(usage.shape[1])
        return torch.from_numpy(np.sort(keys.numpy(), axis=1)) & 0xFFFFFFFF
    return torch.sort(usage, dim=1, stable=True).indices


def allocation_weights(usage: Tensor) -> Tensor:
    """a[phi_j] = (1 - u[phi_j]) prod_{i<j} u[phi_i], phi = usage sorted ascending; `[B, N]`.

    The sort order is not differentiated (a permutation), as in Graves et al. 2016. Equal
    usages (an empty memory, say) are taken in cell order (`ascending_order`), so the lowest
    cell is allocated first.
    """
    usage = EPS + (1 - EPS) * usage
    order = ascending_order(usage)
    sorted_usage = usage.gather(1, order)
    # Exclusive cumulative product: prod of the usages of all freer cells.
    before = torch.cumprod(torch.cat([torch.ones_like(sorted_usage[:, :1]),
                                      sorted_usage[:, :-1]], dim=1), dim=1)
    sorted_alloc = (1 - sorted_usage) * before
    return torch.empty_like(sorted_alloc).scatter_(1, order, sorted_alloc)


def write_weighting(memory: Tensor, usage: Tensor, iface: Interface) -> Tensor:
    """w^w = g_w (g_a a + (1 - g_a) c^w) from the pre-write memory `[B, N, W]` -> `[B, N]`.
    Plain autograd (part of `memory_step_reference`)."""
    mask = None if iface.write_mask is None else iface.write_mask.unsqueeze(1)
    content = content_weights_reference(memory, iface.write_key.unsqueeze(1),
                                        iface.write_strength.unsqueeze(1), mask)[:, 0]  # [B, N]
    alloc = allocation_weights(usage)
    g_a = iface.alloc_gate.unsqueeze(1)
    return iface.write_gate.unsqueeze(1) * (g_a * alloc + (1 - g_a) * content)


def write_memory(memory: Tensor, write_weights: Tensor, erase: Tensor, vector: Tensor,
                 psi: Tensor | None = None) -> Tensor:
    """M * (1 - w e^T) + w v^T, first scaled by psi per cell when psi is given (Csordas'
    de-allocation). memory `[B, N, W]`, write_weights, psi `[B, N]`, erase, vector `[B, W]`.
    Plain autograd (part of `memory_step_reference`; `memory_step` writes in `WritePath`)."""
    w = write_weights.unsqueeze(2)  # [B, N, 1]
    keep = 1 - w * erase.unsqueeze(1)  # [B, N, W]
    if psi is not None:
        keep = keep * psi.unsqueeze(2)
    return memory * keep + w * vector.unsqueeze(1)


def update_precedence(precedence: Tensor, write_weights: Tensor) -> Tensor:
    """p <- (1 - sum w) p + w: precedence, write_weights `[B, N]` -> `[B, N]`."""
    return (1 - write_weights.sum(1, keepdim=True)) * precedence + write_weights


def update_link(link: Tensor, precedence: Tensor, write_weights: Tensor) -> tuple[Tensor, Tensor]:
    """Temporal link matrix and precedence: link `[B, N, N]`, precedence, write_weights `[B, N]`.

    L[i, j] <- (1 - w_i - w_j) L[i, j] + w_i p[j] with a zero diagonal (L[i, j] ~ "i was written
    right after j"), then p <- (1 - sum w) p + w. Plain autograd, the tests' reference;
    `memory_step` computes it together with the link reads in `link_step` (same values, fewer
    passes).
    """
    w_i = write_weights.unsqueeze(2)  # [B, N, 1]
    w_j = write_weights.unsqueeze(1)  # [B, 1, N]
    link = (1 - w_i - w_j) * link + w_i * precedence.unsqueeze(1)
    link = link * (1 - torch.eye(link.shape[1], dtype=link.dtype, device=link.device))
    return link, update_precedence(precedence, write_weights)


def link_step(link: Tensor, precedence: Tensor, write_weights: Tensor,
              prev_read: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """`update_link`, then the raw link reads f = L' w^r, b = L'^T w^r of the previous read
    weights `[B, R, N]` -> (link, precedence, (f, b) `[2, B, R, N]`) via `LinkStep`."""
    link, reads = LinkStep.apply(link, precedence, write_weights, prev_read)
    return link, update_precedence(precedence, write_weights), reads


def sharpen(d: Tensor, s: Tensor) -> Tensor:
    """S(d, s)[n] = (d[n] + EPS)^s / sum_m (d[m] + EPS)^s over the last axis (Csordas and
    Schmidhuber 2019, section 3, with their implementation's offset EPS): d `[..., N]` >= 0,
    s `[...]` >= 1 (e.g. `[B, R, N]` and `[B, R]`). Rows sum to 1; d = 0 reads 1/N.

    Plain autograd; `memory_step` uses `Sharpen`. Before the power, d + EPS is divided by its
    row maximum, which cancels in the ratio but keeps the powers in range in float32; the
    maximum is a constant to autograd, since the result does not depend on it.
    """
    d = d + EPS
    q = d / d.detach().amax(-1, keepdim=True)
    p = q ** s.unsqueeze(-1)
    return p / p.sum(-1, keepdim=True)


def read_weighting(memory: Tensor, forward: Tensor, backward: Tensor,
                   iface: Interface) -> Tensor:
    """w^r = pi_b b + pi_c c + pi_f f from the post-write memory `[B, N, W]` and the raw link
    reads f = L w^r_t-1, b = L^T w^r_t-1 `[B, R, N]` -> `[B, R, N]`. Plain autograd (part of
    `memory_step_reference`)."""
    if iface.forward_sharpness is not None:
        forward = sharpen(forward, iface.forward_sharpness)
        backward = sharpen(backward, iface.backward_sharpness)
    content = content_weights_reference(memory, iface.read_keys, iface.read_strengths,
                                        iface.read_masks)
    modes = iface.read_modes  # [B, R, 3]
    return modes[..., 0:1] * backward + modes[..., 1:2] * content + modes[..., 2:3] * forward


def memory_step_reference(state: MemoryState, iface: Interface,
                          opts: MemoryOptions) -> tuple[Tensor, MemoryState]:
    """`memory_step` in plain autograd, one formula of the module docstring after the other:
    the tests' reference for the fast path."""
    psi = retention(iface.free_gates, state.read_weights)
    usage = update_usage(state.usage, state.write_weights, psi)
    write_w = write_weighting(state.memory, usage, iface)
    memory = write_memory(state.memory, write_w, iface.erase, iface.write_vector,
                          psi if opts.dealloc_content else None)
    link, precedence = update_link(state.link, state.precedence, write_w)
    forward = torch.bmm(state.read_weights, link.transpose(1, 2))  # f_i = L w_i      [B, R, N]
    backward = torch.bmm(state.read_weights, link)  # b_i = L^T w_i                   [B, R, N]
    read_w = read_weighting(memory, forward, backward, iface)
    read_vectors = torch.bmm(read_w, memory)  # [B, R, W]
    return read_vectors, MemoryState(memory, usage, link, precedence, read_w, write_w)


def memory_step(state: MemoryState, iface: Interface,
                opts: MemoryOptions) -> tuple[Tensor, MemoryState]:
    """One memory step (order in the module docstring) -> (read vectors `[B, R, W]`, state).

    The same function as `memory_step_reference`, with the large operations in the hand-written
    functions of `dnc_kernels.py`: `WritePath` (write lookup, write weights, erase and write),
    `LinkStep` (link update and link reads), `Sharpen` (both link reads at once) and `ReadPath`
    (read lookup, read weights, read vectors). The small `[B, N]` parts (retention, usage,
    allocation, gates) stay in autograd. Without masked lookup the masks are all ones, the
    same function.
    """
    psi = retention(iface.free_gates, state.read_weights)
    usage = update_usage(state.usage, state.write_weights, psi)
    g_w, g_a = iface.write_gate.unsqueeze(1), iface.alloc_gate.unsqueeze(1)
    alloc_mix = (g_w * g_a) * allocation_weights(usage)  # [B, N]
    content_gate = (g_w * (1 - g_a)).squeeze(1)  # [B]
    write_mask = _ones_if_none(iface.write_mask, iface.write_key)
    psi_write = psi if opts.dealloc_content else torch.ones_like(psi)
    write_w, memory = WritePath.apply(state.memory, iface.write_key, iface.write_strength,
                                      write_mask, alloc_mix, content_gate, iface.erase,
                                      iface.write_vector, psi_write)
    link, precedence, reads = link_step(state.link, state.precedence, write_w,
                                        state.read_weights)  # (f, b) [2, B, R, N]
    modes = iface.read_modes  # [B, R, 3]: backward, content, forward
    if iface.forward_sharpness is not None:  # one sharpening of f and b together
        reads = Sharpen.apply(reads, torch.stack([iface.forward_sharpness,
                                                  iface.backward_sharpness]))
    # pi_f f + pi_b b as one product with (pi_f, pi_b) and a sum over the pair
    link_mix = (reads * torch.stack([modes[..., 2], modes[..., 0]]).unsqueeze(3)).sum(0)
    read_masks = _ones_if_none(iface.read_masks, iface.read_keys)
    read_w, read_vectors = ReadPath.apply(memory, iface.read_keys, iface.read_strengths,
                                          read_masks, link_mix, modes[..., 1])
    return read_vectors, MemoryState(memory, usage, link, precedence, read_w, write_w)


def _ones_if_none(mask: Tensor | None, like: Tensor) -> Tensor:
    """The lookup mask, or all ones (no memory: a stride-0 view) for unmasked lookups."""
    return like.new_ones(()).expand_as(like) if mask is None else mask


def initial_memory(batch: int, cells: int, word: int, heads: int, device: torch.device,
                   dtype: torch.dtype) -> MemoryState:
    """An empty memory: every tensor zero."""
    def z(*shape: int) -> Tensor:
        return torch.zeros(*shape, device=device, dtype=dtype)
    return MemoryState(z(batch, cells, word), z(batch, cells), z(batch, cells, cells),
                       z(batch, cells), z(batch, heads, cells), z(batch, cells))

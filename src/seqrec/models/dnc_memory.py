"""DNC memory addressing: functions that take the memory state and an interface, and return the
next state (Graves et al., "Hybrid computing using a neural network with dynamic external
memory", Nature 538, 2016, Methods; Csordas and Schmidhuber, "Improving Differentiable Neural
Computers Through Memory Masking, De-allocation, and Link Distribution Sharpness Control", ICLR
2019, section 3).

Shapes: B batch, N memory cells, W word size, R read heads.

Per step, in Graves' order (Methods, "Dynamic memory allocation" ... "Read weighting"):
    psi = prod_i (1 - f_i w^r_i,t-1)                                retention          [B, N]
    u_t = (u_t-1 + w^w_t-1 - u_t-1 * w^w_t-1) * psi                 usage              [B, N]
    a[phi_j] = (1 - u[phi_j]) prod_{i<j} u[phi_i], phi = argsort(u) allocation         [B, N]
    c^w = C(M_t-1, k^w, beta^w)                                     write content      [B, N]
    w^w = g_w (g_a a + (1 - g_a) c^w)                               write weights      [B, N]
    M_t = M_t-1 * (1 - w^w e^T) + w^w v^T                           memory          [B, N, W]
    L_t[i, j] = (1 - w_i - w_j) L_t-1[i, j] + w_i p_t-1[j], L[i, i] = 0                [B, N, N]
    p_t = (1 - sum w^w) p_t-1 + w^w                                 precedence         [B, N]
    f_i = L_t w^r_i,t-1;  b_i = L_t^T w^r_i,t-1                     link reads      [B, R, N]
    w^r_i = pi_i,1 b_i + pi_i,2 C(M_t, k^r_i, beta^r_i) + pi_i,3 f_i
    r_i = M_t^T w^r_i                                               read vectors    [B, R, W]
with C(M, k, beta)[n] = softmax_n(beta * cos(M[n], k)), beta = oneplus(.) = 1 + softplus(.).

Csordas and Schmidhuber's three changes, each a switch in `MemoryOptions`:
- masked_lookup (their eq. for masked content addressing): every key comes with a mask
  m = sigmoid(.) in [0, 1]^W and the similarity is cos(M[n] * m, k * m), so the network can look
  up by part of a word (key-value separation).
- dealloc_content (de-allocation): the retention vector also wipes freed cells,
  M_t = M_t-1 * psi 1^T * (1 - w^w e^T) + w^w v^T, so freed content cannot alias a lookup.
- link_sharpness (sharpness control): f_i = S(L_t w^r_i, s^f_i), b_i = S(L_t^T w^r_i, s^b_i)
  with S(d, s)[n] = d[n]^s / sum_m d[m]^s and s = oneplus(.) >= 1, against the blur that
  accumulates in chained link reads.

Numerical safety in float32: cosine similarity divides by (|a| |b| + EPS); allocation works on
usage mapped into [EPS, 1] (so products never hit exact 0 on the way, as Graves' reference
implementation does); S(d, s) raises d clamped at TINY to s (no 0 ** s gradient NaN) and divides
by (sum + EPS), which keeps link-read sums below 1 and an empty link matrix reading ~0.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

from seqrec.models.base import float32_backward, float32_forward

EPS = 1e-6
TINY = 1e-20
# Batch chunk of the large memory operations on the CPU, in bytes of their largest operand.
CHUNK_BYTES = 4 << 20


def batch_slices(x: Tensor) -> list[slice]:
    """Slices of the batch axis (dim 0) of `x`, each covering about `CHUNK_BYTES` of it on the
    CPU; one slice of the whole batch on other devices.

    Why: a DNC step makes several passes over the link matrix `[B, N, N]` (16 MB at B 256,
    N 128) and the memory `[B, N, W]`. Over the whole batch each pass streams from main memory;
    over a few-MB chunk only the first does, and the rest hit the cache. A GPU has no such
    cache to fit and pays per kernel launch, so it takes the batch at once.
    """
    b = x.shape[0]
    if x.device.type != "cpu" or b == 0:
        return [slice(0, b)]
    per = max(1, CHUNK_BYTES // max(1, x[0].numel() * x.element_size()))
    return [slice(i, min(i + per, b)) for i in range(0, b, per)]


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
        mem_norm = memory.norm(dim=2).unsqueeze(1)  # [B, 1, N]
    else:
        # (M[n] m) . (k m) = M[n] . (k m^2), and |M[n] m| = sqrt((M^2)[n] . m^2): no [B, K, N, W].
        m2 = masks * masks  # [B, K, W]
        dots = torch.bmm(keys * m2, memory.transpose(1, 2))
        # + TINY: sqrt's gradient at an empty cell stays finite.
        mem_norm = (torch.bmm(m2, (memory * memory).transpose(1, 2)).clamp_min(0) + TINY).sqrt()
        keys = keys * masks
    key_norm = keys.norm(dim=2, keepdim=True)  # [B, K, 1]
    cos = dots / (key_norm * mem_norm + EPS)
    return torch.softmax(strengths.unsqueeze(2) * cos, dim=2)


class _ContentWeights(torch.autograd.Function):
    """Masked content weights C(M, k, beta, m) with a hand-written backward.

    Why: M `[B, N, W]` is read by two lookups per step, and autograd of the plain expression
    forms its gradient from batched outer products (a slow kernel for `[N, 1] x [1, W]`), a
    separate `M * M` and its two products, each a fresh `[B, N, W]` tensor; here dM is built
    in one buffer. With q = k m^2, v = (M^2) (m^2)^T, n_M = sqrt(v + TINY), n_k = |k m|,
    d = n_k n_M + EPS, cos = (q M^T) / d, c = softmax(beta cos), per key (rows of `[B, K, N]`):
        dz = c (dc - sum_n dc c);  dbeta = sum_n dz cos;  ddots = beta dz / d
        dd = -beta dz cos / d;  dn_M = dd n_k;  dn_k = sum_n dd n_M;  dv = dn_M / (2 n_M)
        dM = ddots^T q + 2 M * (dv^T m^2);  dq = ddots M;  d(m^2) = dv M^2
        dk = dq m^2 + dn_k (k m) m / n_k;  dm = 2 m d(m^2) + 2 m k dq + dn_k (k m) k / n_k.
    Shapes: memory `[B, N, W]`, keys `[B, K, W]`, strengths `[B, K]`, masks `[B, K, W]` ->
    `[B, K, N]`. Same values as `content_weights_reference` with masks.
    """

    @staticmethod
    @float32_forward
    def forward(ctx, memory: Tensor, keys: Tensor, strengths: Tensor,
                masks: Tensor) -> Tensor:  # noqa: D102
        m2 = masks * masks
        q = keys * m2  # [B, K, W]
        km = keys * masks
        b, heads, n_cells = memory.shape[0], keys.shape[1], memory.shape[1]
        dots = memory.new_empty(b, heads, n_cells)
        mem_norm = memory.new_empty(b, heads, n_cells)
        slices = batch_slices(memory)
        scratch = torch.empty_like(memory[slices[0]])
        for s in slices:
            mem = memory[s]
            torch.bmm(q[s], mem.transpose(1, 2), out=dots[s])  # [c, K, N]
            sq = torch.mul(mem, mem, out=scratch[: s.stop - s.start])
            torch.bmm(m2[s], sq.transpose(1, 2), out=mem_norm[s])
        mem_norm.clamp_min_(0).add_(TINY).sqrt_()
        key_norm = km.norm(dim=2, keepdim=True)  # [B, K, 1]
        den = key_norm * mem_norm + EPS
        cos = dots.div_(den)
        c = torch.softmax(strengths.unsqueeze(2) * cos, dim=2)
        ctx.save_for_backward(memory, keys, strengths, masks, mem_norm, key_norm, den, cos, c)
        return c

    @staticmethod
    @float32_backward
    def backward(ctx, dc: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # noqa: D102
        memory, keys, strengths, masks, mem_norm, key_norm, den, cos, c = ctx.saved_tensors
        m2, km = masks * masks, keys * masks
        q = keys * m2
        dz = c * (dc - (dc * c).sum(2, keepdim=True))  # [B, K, N]
        d_strength = (dz * cos).sum(2)  # [B, K]
        dcos = dz * strengths.unsqueeze(2)
        d_dots = dcos / den
        d_den = -d_dots * cos  # = -dcos cos / d
        dv = d_den * key_norm / (2 * mem_norm)  # [B, K, N]
        d_key_norm = (d_den * mem_norm).sum(2, keepdim=True)  # [B, K, 1]
        d_memory, dq, d_m2 = (torch.empty_like(x) for x in (memory, keys, keys))
        dv2 = 2 * dv
        slices = batch_slices(memory)
        scratch = torch.empty_like(memory[slices[0]])
        for s in slices:
            mem, dm = memory[s], d_memory[s]
            if keys.shape[1] == 1:  # broadcast products: bmm with an inner size of 1 is slow
                torch.mul(mem, dv2[s, 0].unsqueeze(2), out=dm).mul_(m2[s, 0].unsqueeze(1))
                dm.addcmul_(d_dots[s, 0].unsqueeze(2), q[s, 0].unsqueeze(1))
            else:
                torch.bmm(dv2[s].transpose(1, 2), m2[s], out=dm).mul_(mem)
                dm.baddbmm_(d_dots[s].transpose(1, 2), q[s])
            torch.bmm(d_dots[s], mem, out=dq[s])  # [c, K, W]
            sq = torch.mul(mem, mem, out=scratch[: s.stop - s.start])
            torch.bmm(dv[s], sq, out=d_m2[s])  # [c, K, W]
        d_km = d_key_norm * km / key_norm.clamp_min(TINY)  # norm's gradient, 0 at a zero key
        d_keys = dq * m2 + d_km * masks
        d_masks = 2 * masks * (d_m2 + dq * keys) + d_km * keys
        return d_memory, d_keys, d_strength, d_masks


def content_weights(memory: Tensor, keys: Tensor, strengths: Tensor,
                    masks: Tensor | None = None) -> Tensor:
    """C(M, k, beta, m): softmax over cells of beta * cos(M[n] * m, k * m).

    memory `[B, N, W]`, keys `[B, K, W]`, strengths `[B, K]`, masks `[B, K, W]` or None
    (unmasked, Graves 2016) -> `[B, K, N]`. Masked lookups go through `_ContentWeights`
    (same values as `content_weights_reference`, fewer passes over M); unmasked ones through
    the plain expression.
    """
    if masks is None:
        return content_weights_reference(memory, keys, strengths)
    return _ContentWeights.apply(memory, keys, strengths, masks)


def retention(free_gates: Tensor, read_weights: Tensor) -> Tensor:
    """psi = prod_i (1 - f_i w^r_i): free_gates `[B, R]`, read_weights `[B, R, N]` -> `[B, N]`."""
    return torch.prod(1 - free_gates.unsqueeze(2) * read_weights, dim=1)


def update_usage(usage: Tensor, write_weights: Tensor, psi: Tensor) -> Tensor:
    """u_t = (u + w^w - u w^w) psi, with the previous step's write weights; all `[B, N]`."""
    return (usage + write_weights - usage * write_weights) * psi


def allocation_weights(usage: Tensor) -> Tensor:
    """a[phi_j] = (1 - u[phi_j]) prod_{i<j} u[phi_i], phi = usage sorted ascending; `[B, N]`.

    The sort order is not differentiated (a permutation), as in Graves et al. 2016.
    """
    usage = EPS + (1 - EPS) * usage
    sorted_usage, order = torch.sort(usage, dim=1)
    # Exclusive cumulative product: prod of the usages of all freer cells.
    before = torch.cumprod(torch.cat([torch.ones_like(sorted_usage[:, :1]),
                                      sorted_usage[:, :-1]], dim=1), dim=1)
    sorted_alloc = (1 - sorted_usage) * before
    return torch.empty_like(sorted_alloc).scatter_(1, order, sorted_alloc)


def write_weighting(memory: Tensor, usage: Tensor, iface: Interface) -> Tensor:
    """w^w = g_w (g_a a + (1 - g_a) c^w) from the pre-write memory `[B, N, W]` -> `[B, N]`."""
    mask = None if iface.write_mask is None else iface.write_mask.unsqueeze(1)
    content = content_weights(memory, iface.write_key.unsqueeze(1),
                              iface.write_strength.unsqueeze(1), mask)[:, 0]  # [B, N]
    alloc = allocation_weights(usage)
    g_a = iface.alloc_gate.unsqueeze(1)
    return iface.write_gate.unsqueeze(1) * (g_a * alloc + (1 - g_a) * content)


def write_memory_reference(memory: Tensor, write_weights: Tensor, erase: Tensor,
                           vector: Tensor, psi: Tensor | None = None) -> Tensor:
    """Plain autograd version of `write_memory` (kept as the tests' reference)."""
    w = write_weights.unsqueeze(2)  # [B, N, 1]
    keep = 1 - w * erase.unsqueeze(1)  # [B, N, W]
    if psi is not None:
        keep = keep * psi.unsqueeze(2)
    return memory * keep + w * vector.unsqueeze(1)


class _MemoryWrite(torch.autograd.Function):
    """M' = M * psi 1^T * (1 - w e^T) + w v^T with a hand-written backward.

    Why: autograd of the plain expression keeps two `[B, N, W]` tensors per step (the keep
    factor and a product); this saves only the inputs (M is kept alive as state anyway), and
    works through the batch in cache-sized chunks (`batch_slices`).
    Backward, with G the incoming gradient and GM = G * M:
        dM = G * psi (1 - w e^T);  dpsi = rowsum(GM) - w (GM e);  dw = -psi (GM e) + G v;
        de = -(psi w)^T GM;  dv = w^T G.
    """

    @staticmethod
    @float32_forward
    def forward(ctx, memory: Tensor, w: Tensor, erase: Tensor, vector: Tensor,
                psi: Tensor) -> Tensor:  # noqa: D102
        ctx.save_for_backward(memory, w, erase, vector, psi)
        out = torch.empty_like(memory)
        neg_pw = -psi * w
        # Broadcast products throughout: bmm with an inner size of 1 is a slow outer product.
        for s in batch_slices(memory):
            o = torch.addcmul(psi[s].unsqueeze(2), neg_pw[s].unsqueeze(2), erase[s].unsqueeze(1),
                              out=out[s])  # psi_i (1 - w_i e_k)
            o.mul_(memory[s]).addcmul_(w[s].unsqueeze(2), vector[s].unsqueeze(1))
        return out

    @staticmethod
    @float32_backward
    def backward(ctx, grad: Tensor) -> tuple[Tensor, ...]:  # noqa: D102
        memory, w, erase, vector, psi = ctx.saved_tensors
        b, n_cells = w.shape
        neg_pw = -psi * w
        e_one = torch.stack([erase, torch.ones_like(erase)], 1)  # [B, 2, W]
        d_memory = torch.empty_like(memory)
        sums = memory.new_empty(b, 2, n_cells)  # (GM e, rowsum GM)
        g_v = torch.empty_like(w)
        d_erase, d_vector = torch.empty_like(erase), torch.empty_like(vector)
        slices = batch_slices(memory)
        scratch = torch.empty_like(memory[slices[0]])
        for s in slices:
            g = grad[s]
            torch.addcmul(psi[s].unsqueeze(2), neg_pw[s].unsqueeze(2), erase[s].unsqueeze(1),
                          out=d_memory[s]).mul_(g)
            gm = torch.mul(g, memory[s], out=scratch[: s.stop - s.start])  # [c, N, W]
            # Row vectors times matrices (the fast bmm layout), not matrices times columns.
            torch.bmm(e_one[s], gm.transpose(1, 2), out=sums[s])
            torch.bmm(neg_pw[s].unsqueeze(1), gm, out=d_erase[s].unsqueeze(1))
            torch.bmm(vector[s].unsqueeze(1), g.transpose(1, 2), out=g_v[s].unsqueeze(1))
            torch.bmm(w[s].unsqueeze(1), g, out=d_vector[s].unsqueeze(1))
        gm_e, rowsum = sums.unbind(1)
        d_psi = rowsum - w * gm_e
        d_w = g_v.sub_(psi * gm_e)
        return d_memory, d_w, d_erase, d_vector, d_psi


def write_memory(memory: Tensor, write_weights: Tensor, erase: Tensor, vector: Tensor,
                 psi: Tensor | None = None) -> Tensor:
    """M * (1 - w e^T) + w v^T, first scaled by psi per cell when psi is given (Csordas'
    de-allocation). memory `[B, N, W]`, write_weights, psi `[B, N]`, erase, vector `[B, W]`.
    Uses `_MemoryWrite` (same values as `write_memory_reference`, less memory)."""
    if psi is None:
        psi = torch.ones_like(write_weights)
    return _MemoryWrite.apply(memory, write_weights, erase, vector, psi)


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


class _LinkStep(torch.autograd.Function):
    """The link update and both raw link reads of one step, with a hand-written backward:
    L' = (1 - w_i - w_j) L + w_i p_j with zero diagonal, f_h = L' r_h, b_h = L'^T r_h.

    Why one function: the link matrix is the DNC's largest tensor (`[B, N, N]`, 16 MB at B 256,
    N 128) and every pass over it costs. Autograd of the plain expressions keeps two more such
    tensors per step, forms the read gradients as batched outer products (a slow kernel for
    `[N, 1] x [1, N]`) and adds the three gradients reaching L' in separate passes. Here the
    outer products go straight into one gradient buffer, only the inputs and L' are kept (both
    are state that the next step holds anyway), and both directions work through the batch in
    cache-sized chunks (`batch_slices`), writing into their outputs in place.

    Backward, with D the gradient of L' from later steps and df_h, db_h those of the reads:
        G = D + sum_h df_h r_h^T + r_h db_h^T, then its diagonal zeroed (L'_ii is constant 0)
        dr_h = L'^T df_h + L' db_h;  dp_j = sum_i G_ij w_i
        dw_i = sum_j G_ij (p_j - L_ij) - sum_j G_ji L_ji;  dL = G * (1 - w_i - w_j).
    Shapes: link `[B, N, N]`, precedence, w `[B, N]`, prev_read `[B, R, N]` -> (L', f, b).
    """

    @staticmethod
    @float32_forward
    def forward(ctx, link: Tensor, precedence: Tensor, w: Tensor,
                prev_read: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # noqa: D102
        new = torch.empty_like(link)
        forward, backward = torch.empty_like(prev_read), torch.empty_like(prev_read)
        for s in batch_slices(link):
            n, ws = new[s], w[s]
            torch.sub((1 - ws).unsqueeze(2), ws.unsqueeze(1), out=n)  # 1 - w_i - w_j
            n.mul_(link[s]).addcmul_(ws.unsqueeze(2), precedence[s].unsqueeze(1))
            n.diagonal(dim1=1, dim2=2).zero_()
            torch.bmm(prev_read[s], n.transpose(1, 2), out=forward[s])  # f_h = L' r_h
            torch.bmm(prev_read[s], n, out=backward[s])  # b_h = L'^T r_h
        ctx.save_for_backward(link, precedence, w, prev_read, new)
        ctx.set_materialize_grads(False)
        return new, forward, backward

    @staticmethod
    @float32_backward
    def backward(ctx, d_new: Tensor | None, d_fwd: Tensor | None,
                 d_bwd: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # noqa: D102
        link, precedence, w, prev_read, new = ctx.saved_tensors
        # No gradient for L' (the last step's link): D = 0, without a zero [B, N, N] tensor.
        d_fwd = torch.zeros_like(prev_read) if d_fwd is None else d_fwd
        d_bwd = torch.zeros_like(prev_read) if d_bwd is None else d_bwd
        d_link, d_read = torch.empty_like(link), torch.empty_like(prev_read)
        d_p, d_w = torch.empty_like(precedence), torch.empty_like(w)
        slices = batch_slices(link)
        scratch = torch.empty_like(link[slices[0]])
        for s in slices:
            g, tmp = d_link[s], scratch[: s.stop - s.start]
            r, df, db, n, ws = prev_read[s], d_fwd[s], d_bwd[s], new[s], w[s]
            if d_new is None:
                torch.mul(df[:, 0].unsqueeze(2), r[:, 0].unsqueeze(1), out=g)
            else:
                torch.addcmul(d_new[s], df[:, 0].unsqueeze(2), r[:, 0].unsqueeze(1), out=g)
            g.addcmul_(r[:, 0].unsqueeze(2), db[:, 0].unsqueeze(1))
            for h in range(1, r.shape[1]):
                g.addcmul_(df[:, h].unsqueeze(2), r[:, h].unsqueeze(1))
                g.addcmul_(r[:, h].unsqueeze(2), db[:, h].unsqueeze(1))
            torch.bmm(df, n, out=d_read[s]).baddbmm_(db, n.transpose(1, 2))
            g.diagonal(dim1=1, dim2=2).zero_()
            torch.bmm(ws.unsqueeze(1), g, out=d_p[s].unsqueeze(1))
            # sum_j G_ij p_j as p^T G^T: a row vector times a matrix, the fast bmm layout.
            dws = torch.bmm(precedence[s].unsqueeze(1), g.transpose(1, 2),
                            out=d_w[s].unsqueeze(1)).squeeze(1)
            gl = torch.mul(g, link[s], out=tmp)
            dws.sub_(gl.sum(2)).sub_(gl.sum(1))
            torch.sub((1 - ws).unsqueeze(2), ws.unsqueeze(1), out=tmp)
            g.mul_(tmp)  # dL = G (1 - w_i - w_j)
        return d_link, d_p, d_w, d_read


def link_step(link: Tensor, precedence: Tensor, write_weights: Tensor,
              prev_read: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """`update_link`, then the raw link reads f = L' w^r, b = L'^T w^r of the previous read
    weights `[B, R, N]` -> (link, precedence, f `[B, R, N]`, b `[B, R, N]`) via `_LinkStep`."""
    link, forward, backward = _LinkStep.apply(link, precedence, write_weights, prev_read)
    return link, update_precedence(precedence, write_weights), forward, backward


def sharpen(d: Tensor, s: Tensor) -> Tensor:
    """S(d, s) = d^s / (sum d^s + EPS) over the last axis: d `[B, R, N]` >= 0, s `[B, R]` >= 1."""
    p = d.clamp_min(TINY) ** s.unsqueeze(2)
    return p / (p.sum(2, keepdim=True) + EPS)


def read_weighting(memory: Tensor, link: Tensor, prev_read: Tensor, iface: Interface,
                   link_reads: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """w^r = pi_b b + pi_c c + pi_f f from the post-write memory and link -> `[B, R, N]`.

    `link_reads` = (L w^r_t-1, L^T w^r_t-1) when already computed (`link_step`), else they are
    read from `link` here.
    """
    if link_reads is None:
        forward = torch.bmm(prev_read, link.transpose(1, 2))  # f_i = L w_i         [B, R, N]
        backward = torch.bmm(prev_read, link)  # b_i = L^T w_i                      [B, R, N]
    else:
        forward, backward = link_reads
    if iface.forward_sharpness is not None:
        forward = sharpen(forward, iface.forward_sharpness)
        backward = sharpen(backward, iface.backward_sharpness)
    content = content_weights(memory, iface.read_keys, iface.read_strengths, iface.read_masks)
    modes = iface.read_modes  # [B, R, 3]
    return modes[..., 0:1] * backward + modes[..., 1:2] * content + modes[..., 2:3] * forward


def memory_step(state: MemoryState, iface: Interface,
                opts: MemoryOptions) -> tuple[Tensor, MemoryState]:
    """One memory step (order in the module docstring) -> (read vectors `[B, R, W]`, state)."""
    psi = retention(iface.free_gates, state.read_weights)
    usage = update_usage(state.usage, state.write_weights, psi)
    write_w = write_weighting(state.memory, usage, iface)
    memory = write_memory(state.memory, write_w, iface.erase, iface.write_vector,
                          psi if opts.dealloc_content else None)
    link, precedence, fwd, bwd = link_step(state.link, state.precedence, write_w,
                                           state.read_weights)
    read_w = read_weighting(memory, link, state.read_weights, iface, (fwd, bwd))
    read_vectors = torch.bmm(read_w, memory)  # [B, R, W]
    return read_vectors, MemoryState(memory, usage, link, precedence, read_w, write_w)


def initial_memory(batch: int, cells: int, word: int, heads: int, device: torch.device,
                   dtype: torch.dtype) -> MemoryState:
    """An empty memory: every tensor zero."""
    def z(*shape: int) -> Tensor:
        return torch.zeros(*shape, device=device, dtype=dtype)
    return MemoryState(z(batch, cells, word), z(batch, cells), z(batch, cells, cells),
                       z(batch, cells), z(batch, heads, cells), z(batch, cells))

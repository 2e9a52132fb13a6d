"""Hand-written forward and backward passes of the DNC's large memory operations.

`dnc_memory.py` states what a memory step computes, in plain autograd functions that the tests
keep as references; `memory_step` there calls the functions here, which compute the same values
and gradients with fewer passes over the two large tensors of a step: the memory `[B, N, W]`
and the temporal link matrix `[B, N, N]` (8 MB and 16 MB at B 256, N 128, W 64). Formulas:
Graves et al., Nature 2016, Methods; Csordas and Schmidhuber, ICLR 2019, section 3.

Three things make them faster than autograd of the plain expressions, on a CPU above all:
- One buffer per gradient. Autograd forms each consumer's gradient of M in a fresh tensor and
  adds them in further passes; here the read path (lookup and read vectors) and the write path
  (lookup and the erase/write) each build their gradient of M in one buffer.
- Batch chunks (`batch_slices`). Each function works through the batch in chunks of a few MB,
  so that of the several passes over a chunk only the first streams from main memory.
- No slow kernels: outer products with an inner size of 1 as broadcast products, not `bmm`;
  matrix-vector products as row vector times matrix, the layout `bmm` runs fastest.

For its backward pass each function keeps only its inputs, the state it returns (alive anyway
as the next step's input) and a few `[B, K, N]` tensors; first-order gradients only. Under
autocast they run in float32 (`float32_forward`).
Shapes: B batch, N cells, W word size, R read heads, K keys of one lookup (R, or 1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
from torch import Tensor

from seqrec.models.base import float32_backward, float32_forward

# The one epsilon of Csordas and Schmidhuber's implementation (xdever/dnc), in the same three
# places: the cosine's denominator, the allocation's usage floor and the sharpening's offset.
EPS = 1e-6
TINY = 1e-20  # guards a division by a norm that is 0 exactly where its numerator is 0
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


def _chunks(x: Tensor) -> Iterator[tuple[slice, Tensor]]:
    """`batch_slices(x)`, each with a scratch tensor shaped like `x[s]`: views of one buffer
    made for the first (largest) chunk, so the chunks reuse one allocation."""
    slices = batch_slices(x)
    scratch = torch.empty_like(x[slices[0]])
    for s in slices:
        yield s, scratch[: s.stop - s.start]


# ---------------------------------------------------------------------------------------------
# Masked content lookup, in parts that the lookup alone and the fused read and write paths share

class _Lookup(NamedTuple):
    """The lookup's values that its backward pass reuses: weights c, cos, the denominator d and
    the memory norms n_M `[B, K, N]`; the key norms n_k `[B, K, 1]`."""

    weights: Tensor
    cos: Tensor
    den: Tensor
    mem_norm: Tensor
    key_norm: Tensor


def _lookup(memory: Tensor, keys: Tensor, strengths: Tensor, masks: Tensor) -> _Lookup:
    """C(M, k, beta, m) = softmax_n(beta cos(M[n] m, k m)) with its saved values.

    (M[n] m) . (k m) = M[n] . (k m^2) and |M[n] m| = sqrt((M^2)[n] . m^2): two `bmm` per chunk,
    no `[B, K, N, W]` tensor. The norm is exact (no offset under the root), as in Csordas and
    Schmidhuber's implementation; its gradient at an empty cell is taken as 0 in
    `_lookup_backward`, as torch's `norm` takes it.
    """
    m2 = masks * masks
    q = keys * m2  # [B, K, W]
    b, heads, n_cells = memory.shape[0], keys.shape[1], memory.shape[1]
    dots = memory.new_empty(b, heads, n_cells)
    mem_norm = memory.new_empty(b, heads, n_cells)
    for s, scratch in _chunks(memory):
        mem = memory[s]
        torch.bmm(q[s], mem.transpose(1, 2), out=dots[s])  # [c, K, N]
        sq = torch.mul(mem, mem, out=scratch)
        torch.bmm(m2[s], sq.transpose(1, 2), out=mem_norm[s])
    mem_norm.clamp_min_(0).sqrt_()
    key_norm = (keys * masks).norm(dim=2, keepdim=True)  # [B, K, 1]
    den = key_norm * mem_norm + EPS
    cos = dots.div_(den)
    weights = torch.softmax(strengths.unsqueeze(2) * cos, dim=2)
    return _Lookup(weights, cos, den, mem_norm, key_norm)


class _LookupGrads(NamedTuple):
    """Gradients of the lookup in its intermediate values: d_dots, dv `[B, K, N]` (dots and
    v = (M^2)(m^2)^T), d_strength `[B, K]`, d_key_norm `[B, K, 1]`."""

    d_dots: Tensor
    dv: Tensor
    d_strength: Tensor
    d_key_norm: Tensor


def _lookup_backward(dc: Tensor, lk: _Lookup, strengths: Tensor) -> _LookupGrads:
    """With d = n_k n_M + EPS, cos = dots / d, c = softmax(beta cos), per key:
        dz = c (dc - sum_n dc c);  dbeta = sum_n dz cos;  ddots = beta dz / d
        dd = -beta dz cos / d;  dn_M = dd n_k;  dn_k = sum_n dd n_M;  dv = dn_M / (2 n_M).
    At an empty cell (n_M = 0) the dot and so cos are exactly 0, hence dd = 0 and dv = 0: the
    norm's gradient at 0 is 0 (torch's convention for `norm`), and the cell's gradient is the
    dot's alone, beta dz k m^2 / EPS (Csordas and Schmidhuber's values scale so, by 1/EPS)."""
    c = lk.weights
    dz = c * (dc - (dc * c).sum(2, keepdim=True))  # [B, K, N]
    d_strength = (dz * lk.cos).sum(2)  # [B, K]
    d_dots = dz.mul_(strengths.unsqueeze(2)).div_(lk.den)
    d_den = -d_dots * lk.cos
    dv = d_den * lk.key_norm / (2 * lk.mem_norm.clamp_min(TINY))  # 0 / TINY = 0 at n_M = 0
    d_key_norm = (d_den * lk.mem_norm).sum(2, keepdim=True)
    return _LookupGrads(d_dots, dv, d_strength, d_key_norm)


def _lookup_memory_grad(d_memory: Tensor, memory: Tensor, g: _LookupGrads, q: Tensor,
                        m2: Tensor, dq: Tensor, d_m2: Tensor, scratch: Tensor,
                        fresh: bool) -> None:
    """For one batch chunk: write (fresh) or add the lookup's gradient in M,
    dM = ddots^T q + 2 M * (dv^T m^2), into `d_memory`, and write dq = ddots M and
    d(m^2) = dv M^2 into `dq` and `d_m2`. All arguments are the chunk's slices."""
    torch.bmm(g.d_dots, memory, out=dq)  # [c, K, W]
    sq = torch.mul(memory, memory, out=scratch)
    torch.bmm(g.dv, sq, out=d_m2)
    if q.shape[1] == 1:  # broadcast products: bmm with an inner size of 1 is slow
        term = torch.mul(memory, 2 * g.dv[:, 0].unsqueeze(2), out=d_memory if fresh else scratch)
        if fresh:
            term.mul_(m2[:, 0].unsqueeze(1))
        else:
            d_memory.addcmul_(term, m2[:, 0].unsqueeze(1))
        d_memory.addcmul_(g.d_dots[:, 0].unsqueeze(2), q[:, 0].unsqueeze(1))
    else:
        term = torch.bmm(g.dv.transpose(1, 2), m2, out=d_memory if fresh else scratch)
        if fresh:
            term.mul_(memory).mul_(2)
        else:
            d_memory.addcmul_(term, memory, value=2)
        d_memory.baddbmm_(g.d_dots.transpose(1, 2), q)


def _lookup_input_grads(dq: Tensor, d_m2: Tensor, g: _LookupGrads, keys: Tensor,
                        masks: Tensor, key_norm: Tensor) -> tuple[Tensor, Tensor]:
    """(dk, dm) from dq and d(m^2):
    dk = dq m^2 + dn_k (k m) m / n_k;  dm = 2 m d(m^2) + 2 m k dq + dn_k (k m) k / n_k."""
    d_km = g.d_key_norm * (keys * masks) / key_norm.clamp_min(TINY)  # 0 at a zero key
    d_keys = dq * masks * masks + d_km * masks
    d_masks = 2 * masks * (d_m2 + dq * keys) + d_km * keys
    return d_keys, d_masks


def _lookup_grads_in_memory(memory: Tensor, g: _LookupGrads, keys: Tensor, masks: Tensor,
                            key_norm: Tensor, d_memory: Tensor, fresh: bool,
                            extra: Callable[[slice, Tensor], None] | None = None
                            ) -> tuple[Tensor, Tensor]:
    """Run `_lookup_memory_grad` over the batch chunks, then `extra(s, d_memory[s])` per chunk
    (a fused function's own term, added while the chunk is in cache); return (dk, dm)."""
    m2 = masks * masks
    q = keys * m2
    dq, d_m2 = torch.empty_like(keys), torch.empty_like(keys)
    for s, scratch in _chunks(memory):
        _lookup_memory_grad(d_memory[s], memory[s], _LookupGrads(*(x[s] for x in g)), q[s],
                            m2[s], dq[s], d_m2[s], scratch, fresh)
        if extra is not None:
            extra(s, d_memory[s])
    return _lookup_input_grads(dq, d_m2, g, keys, masks, key_norm)


class ContentWeights(torch.autograd.Function):
    """Masked content weights C(M, k, beta, m) `[B, K, N]` from memory `[B, N, W]`, keys and
    masks `[B, K, W]` and strengths `[B, K]`. Backward formulas: `_lookup_backward`,
    `_lookup_memory_grad`, `_lookup_input_grads`."""

    @staticmethod
    @float32_forward
    def forward(ctx, memory: Tensor, keys: Tensor, strengths: Tensor,
                masks: Tensor) -> Tensor:  # noqa: D102
        lk = _lookup(memory, keys, strengths, masks)
        ctx.save_for_backward(memory, keys, strengths, masks, *lk)
        return lk.weights

    @staticmethod
    @float32_backward
    def backward(ctx, dc: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # noqa: D102
        memory, keys, strengths, masks, *saved = ctx.saved_tensors
        lk = _Lookup(*saved)
        g = _lookup_backward(dc, lk, strengths)
        d_memory = torch.empty_like(memory)
        d_keys, d_masks = _lookup_grads_in_memory(memory, g, keys, masks, lk.key_norm, d_memory,
                                                  fresh=True)
        return d_memory, d_keys, g.d_strength, d_masks


class ReadPath(torch.autograd.Function):
    """The read weights and read vectors of one step, lookup included:
        w^r = l + pi_c C(M, k^r, beta^r, m^r);   r = w^r M
    with l = pi_b b + pi_f f, the link part of the read mode mix, computed outside.

    Inputs: memory `[B, N, W]` (after this step's write), keys, masks `[B, R, W]`, strengths,
    content_mode pi_c `[B, R]`, link_mix l `[B, R, N]` -> (w^r `[B, R, N]`, r `[B, R, W]`).
    Backward: dw = dw^r + dr M^T;  dl = dw;  dpi_c = sum_n dw c;  dc = pi_c dw (into the
    lookup's backward);  dM = the lookup's terms + (w^r)^T dr, in one buffer.
    """

    @staticmethod
    @float32_forward
    def forward(ctx, memory: Tensor, keys: Tensor, strengths: Tensor, masks: Tensor,
                link_mix: Tensor, content_mode: Tensor) -> tuple[Tensor, Tensor]:  # noqa: D102
        lk = _lookup(memory, keys, strengths, masks)
        weights = torch.addcmul(link_mix, content_mode.unsqueeze(2), lk.weights)
        reads = torch.bmm(weights, memory)  # [B, R, W]
        ctx.save_for_backward(memory, keys, strengths, masks, content_mode, weights, *lk)
        return weights, reads

    @staticmethod
    @float32_backward
    def backward(ctx, d_weights: Tensor, d_reads: Tensor) -> tuple[Tensor, ...]:  # noqa: D102
        memory, keys, strengths, masks, content_mode, weights, *saved = ctx.saved_tensors
        lk = _Lookup(*saved)
        d_w = torch.baddbmm(d_weights, d_reads, memory.transpose(1, 2))  # [B, R, N]
        d_mode = (d_w * lk.weights).sum(2)
        g = _lookup_backward(d_w * content_mode.unsqueeze(2), lk, strengths)

        def add_read_term(s: slice, d_mem: Tensor) -> None:  # dM += (w^r)^T dr
            if weights.shape[1] == 1:
                d_mem.addcmul_(weights[s, 0].unsqueeze(2), d_reads[s, 0].unsqueeze(1))
            else:
                d_mem.baddbmm_(weights[s].transpose(1, 2), d_reads[s])

        d_memory = torch.empty_like(memory)
        d_keys, d_masks = _lookup_grads_in_memory(memory, g, keys, masks, lk.key_norm, d_memory,
                                                  fresh=True, extra=add_read_term)
        return d_memory, d_keys, g.d_strength, d_masks, d_w, d_mode


# ---------------------------------------------------------------------------------------------
# The temporal link matrix

class LinkStep(torch.autograd.Function):
    """The link update and both raw link reads of one step, with a hand-written backward:
    L' = (1 - w_i - w_j) L + w_i p_j with zero diagonal, f_h = L' r_h, b_h = L'^T r_h, the
    reads stacked as (f, b) `[2, B, R, N]` (one tensor for the sharpening that follows).

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
    Shapes: link `[B, N, N]`, precedence, w `[B, N]`, prev_read `[B, R, N]` ->
    (L' `[B, N, N]`, (f, b) `[2, B, R, N]`).
    """

    @staticmethod
    @float32_forward
    def forward(ctx, link: Tensor, precedence: Tensor, w: Tensor,
                prev_read: Tensor) -> tuple[Tensor, Tensor]:  # noqa: D102
        new = torch.empty_like(link)
        reads = prev_read.new_empty(2, *prev_read.shape)
        forward, backward = reads  # each [B, R, N], contiguous
        for s in batch_slices(link):
            n, ws = new[s], w[s]
            torch.sub((1 - ws).unsqueeze(2), ws.unsqueeze(1), out=n)  # 1 - w_i - w_j
            n.mul_(link[s]).addcmul_(ws.unsqueeze(2), precedence[s].unsqueeze(1))
            n.diagonal(dim1=1, dim2=2).zero_()
            torch.bmm(prev_read[s], n.transpose(1, 2), out=forward[s])  # f_h = L' r_h
            torch.bmm(prev_read[s], n, out=backward[s])  # b_h = L'^T r_h
        ctx.save_for_backward(link, precedence, w, prev_read, new)
        ctx.set_materialize_grads(False)
        return new, reads

    @staticmethod
    @float32_backward
    def backward(ctx, d_new: Tensor | None,
                 d_reads: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # noqa: D102
        link, precedence, w, prev_read, new = ctx.saved_tensors
        # No gradient for L' (the last step's link): D = 0, without a zero [B, N, N] tensor.
        if d_reads is None:
            d_reads = prev_read.new_zeros(2, *prev_read.shape)
        d_fwd, d_bwd = d_reads.contiguous()
        d_link, d_read = torch.empty_like(link), torch.empty_like(prev_read)
        d_p, d_w = torch.empty_like(precedence), torch.empty_like(w)
        for s, tmp in _chunks(link):
            g = d_link[s]
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


# ---------------------------------------------------------------------------------------------
# Erase and write, with the write weighting

def _write(memory: Tensor, w: Tensor, erase: Tensor, vector: Tensor, psi: Tensor) -> Tensor:
    """M' = M * psi 1^T * (1 - w e^T) + w v^T, chunk by chunk into a fresh tensor."""
    out = torch.empty_like(memory)
    neg_pw = -psi * w
    for s in batch_slices(memory):
        o = torch.addcmul(psi[s].unsqueeze(2), neg_pw[s].unsqueeze(2), erase[s].unsqueeze(1),
                          out=out[s])  # psi_i (1 - w_i e_k)
        o.mul_(memory[s]).addcmul_(w[s].unsqueeze(2), vector[s].unsqueeze(1))
    return out


def _write_backward(grad: Tensor, memory: Tensor, w: Tensor, erase: Tensor, vector: Tensor,
                    psi: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of `_write` -> (dM, dw, de, dv, dpsi). With G = grad and GM = G * M:
        dM = G * psi (1 - w e^T);  dpsi = rowsum(GM) - w (GM e);  dw = -psi (GM e) + G v;
        de = -(psi w)^T GM;  dv = w^T G."""
    b, n_cells = w.shape
    neg_pw = -psi * w
    e_one = torch.stack([erase, torch.ones_like(erase)], 1)  # [B, 2, W]
    d_memory = torch.empty_like(memory)
    sums = memory.new_empty(b, 2, n_cells)  # (GM e, rowsum GM)
    g_v = torch.empty_like(w)
    d_erase, d_vector = torch.empty_like(erase), torch.empty_like(vector)
    for s, scratch in _chunks(memory):
        g = grad[s]
        torch.addcmul(psi[s].unsqueeze(2), neg_pw[s].unsqueeze(2), erase[s].unsqueeze(1),
                      out=d_memory[s]).mul_(g)
        gm = torch.mul(g, memory[s], out=scratch)  # [c, N, W]
        # Row vectors times matrices (the fast bmm layout), not matrices times columns.
        torch.bmm(e_one[s], gm.transpose(1, 2), out=sums[s])
        torch.bmm(neg_pw[s].unsqueeze(1), gm, out=d_erase[s].unsqueeze(1))
        torch.bmm(vector[s].unsqueeze(1), g.transpose(1, 2), out=g_v[s].unsqueeze(1))
        torch.bmm(w[s].unsqueeze(1), g, out=d_vector[s].unsqueeze(1))
    gm_e, rowsum = sums.unbind(1)
    d_psi = rowsum - w * gm_e
    d_w = g_v.sub_(psi * gm_e)
    return d_memory, d_w, d_erase, d_vector, d_psi


class WritePath(torch.autograd.Function):
    """The write weights and the memory write of one step, lookup included:
        w^w = a_mix + g_c C(M, k^w, beta^w, m^w);   M' = M * psi 1^T * (1 - w^w e^T) + w^w v^T
    with a_mix = g_w g_a a (the allocation part) and g_c = g_w (1 - g_a) computed outside.

    Inputs: memory `[B, N, W]`, key, mask, erase, vector `[B, W]`, strength, content_gate g_c
    `[B]`, alloc_mix, psi `[B, N]` -> (w^w `[B, N]`, M' `[B, N, W]`).
    Backward: `_write_backward` gives dM and dw from M'; then dw^w = (incoming) + dw;
    da_mix = dw^w;  dg_c = sum_n dw^w c;  dc = g_c dw^w into the lookup, whose dM terms are
    added into the same buffer.
    """

    @staticmethod
    @float32_forward
    def forward(ctx, memory: Tensor, key: Tensor, strength: Tensor, mask: Tensor,
                alloc_mix: Tensor, content_gate: Tensor, erase: Tensor, vector: Tensor,
                psi: Tensor) -> tuple[Tensor, Tensor]:  # noqa: D102
        keys, strengths, masks = key.unsqueeze(1), strength.unsqueeze(1), mask.unsqueeze(1)
        lk = _lookup(memory, keys, strengths, masks)
        weights = torch.addcmul(alloc_mix, content_gate.unsqueeze(1), lk.weights[:, 0])
        new = _write(memory, weights, erase, vector, psi)
        ctx.save_for_backward(memory, keys, strengths, masks, content_gate, weights, erase,
                              vector, psi, *lk)
        return weights, new

    @staticmethod
    @float32_backward
    def backward(ctx, d_weights: Tensor, d_new: Tensor) -> tuple[Tensor, ...]:  # noqa: D102
        (memory, keys, strengths, masks, content_gate, weights, erase, vector, psi,
         *saved) = ctx.saved_tensors
        lk = _Lookup(*saved)
        d_memory, d_w, d_erase, d_vector, d_psi = _write_backward(d_new, memory, weights, erase,
                                                                  vector, psi)
        d_w.add_(d_weights)
        d_gate = (d_w * lk.weights[:, 0]).sum(1)
        g = _lookup_backward((d_w * content_gate.unsqueeze(1)).unsqueeze(1), lk, strengths)
        d_keys, d_masks = _lookup_grads_in_memory(memory, g, keys, masks, lk.key_norm, d_memory,
                                                  fresh=False)
        return (d_memory, d_keys[:, 0], g.d_strength[:, 0], d_masks[:, 0], d_w, d_gate,
                d_erase, d_vector, d_psi)


class Sharpen(torch.autograd.Function):
    """S(d, s)[n] = (d[n] + EPS)^s / sum_m (d[m] + EPS)^s over the last axis: Csordas and
    Schmidhuber 2019, section 3 (sharpness enhancement of the temporal link distributions), with
    the offset EPS of their implementation. d `[..., N]` >= 0, s `[...]` >= 1 -> `[..., N]`, rows
    summing to 1; an all-zero d (an empty link matrix) gives the uniform 1/N.

    Computed as softmax_n(s log(d + EPS)), the same function: the softmax subtracts the row's
    largest exponent, so nothing underflows in float32 where (d + EPS)^s would (1e-6^8 < 1e-45).
    Why hand-written: autograd of `d ** s` with a tensor exponent runs the slow broadcasting
    `pow` twice more in its backward. With z = s log(d + EPS) and y = softmax(z):
        dz = y (dy - sum_n dy y);  dd = dz s / (d + EPS);  ds = sum_n dz log(d + EPS).
    """

    @staticmethod
    @float32_forward
    def forward(ctx, d: Tensor, s: Tensor) -> Tensor:  # noqa: D102
        log_d = torch.add(d, EPS).log_()
        y = torch.softmax(log_d * s.unsqueeze(-1), dim=-1)
        ctx.save_for_backward(d, s, log_d, y)
        return y

    @staticmethod
    @float32_backward
    def backward(ctx, dy: Tensor) -> tuple[Tensor, Tensor]:  # noqa: D102
        d, s, log_d, y = ctx.saved_tensors
        dz = (dy - (dy * y).sum(-1, keepdim=True)).mul_(y)
        d_s = (dz * log_d).sum(-1)
        d_d = dz.mul_(s.unsqueeze(-1)).div_(d + EPS)
        return d_d, d_s

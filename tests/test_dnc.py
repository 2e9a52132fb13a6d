"""DNC: memory addressing on hand-computed cases, invariants, gradients, and the model's fast
path against a plain step-by-step reference."""

from __future__ import annotations

import itertools

import pytest
import torch

from seqrec.config import ModelConfig
from seqrec.models.dnc import DNC, DNCState, UserDNC
from seqrec.models.dnc_memory import (
    Interface,
    MemoryOptions,
    MemoryState,
    allocation_weights,
    content_weights,
    interface_size,
    memory_step,
    sharpen,
    split_interface,
    update_link,
    write_memory,
)
from seqrec.models.gru import GRUState

D = torch.float64


N, W, R = 5, 4, 2


def test_allocation_hand_computed():
    usage = torch.tensor([[0.5, 0.2, 0.9], [0.0, 1.0, 0.3]], dtype=D)
    # Row 0: order 0.2, 0.5, 0.9 -> a = 0.8, 0.5 * 0.2, 0.1 * 0.2 * 0.5.
    # Row 1: order 0.0, 0.3, 1.0 -> a = 1, 0.7 * 0, 0 (up to the EPS floor on usage).
    expected = torch.tensor([[0.1, 0.8, 0.01], [1.0, 0.0, 0.0]], dtype=D)
    torch.testing.assert_close(allocation_weights(usage), expected, atol=1e-5, rtol=0)


def test_allocation_takes_ties_in_cell_order_and_sorts_like_torch():
    from seqrec.models.dnc_memory import ascending_order

    # An empty memory: every usage equal, so cell 0 gets (1 - EPS), cell 1 (1 - EPS) EPS, ...
    alloc = allocation_weights(torch.zeros(1, 4))
    assert alloc[0, 0] > 0.99 and alloc[0, 1:].sum() < 1e-5
    g = torch.Generator().manual_seed(2)
    usage = torch.rand(64, 33, generator=g)
    usage[:, 5:9] = 0.25  # ties
    for dtype in (torch.float32, torch.float64):  # the packed-key sort and torch.sort
        u = usage.to(dtype)
        expected = torch.sort(u, dim=1, stable=True).indices
        assert torch.equal(ascending_order(u), expected)


def test_content_weights_hand_computed():
    memory = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]], dtype=D)  # [1, 3, 2]
    key = torch.tensor([[[2.0, 0.0]]], dtype=D)
    cos = torch.tensor([1.0, 0.0, 2 ** -0.5], dtype=D)
    got = content_weights(memory, key, torch.tensor([[3.0]], dtype=D))
    torch.testing.assert_close(got[0, 0], torch.softmax(3 * cos, 0), atol=1e-6, rtol=0)
    # A mask on the first component only: every cell with a first component matches fully.
    mask = torch.tensor([[[1.0, 0.0]]], dtype=D)
    got = content_weights(memory, key, torch.tensor([[3.0]], dtype=D), mask)
    torch.testing.assert_close(got[0, 0], torch.softmax(3 * torch.tensor([1.0, 0.0, 1.0],
                                                                         dtype=D), 0),
                               atol=1e-5, rtol=0)


def test_link_and_precedence_hand_computed():
    link = torch.zeros(1, 3, 3, dtype=D)
    prec = torch.tensor([[1.0, 0.0, 0.0]], dtype=D)  # cell 0 was written last
    link, prec = update_link(link, prec, torch.tensor([[0.0, 1.0, 0.0]], dtype=D))
    expected = torch.zeros(1, 3, 3, dtype=D)
    expected[0, 1, 0] = 1.0  # cell 1 written right after cell 0
    torch.testing.assert_close(link, expected)
    torch.testing.assert_close(prec, torch.tensor([[0.0, 1.0, 0.0]], dtype=D))
    # A half write to cell 2 afterwards.
    link, prec = update_link(link, prec, torch.tensor([[0.0, 0.0, 0.5]], dtype=D))
    expected[0, 1, 0] = 1.0  # (1 - 0 - 0) * 1
    expected[0, 2, 1] = 0.5  # 0.5 * p[1]
    torch.testing.assert_close(link, expected)
    torch.testing.assert_close(prec, torch.tensor([[0.0, 0.5, 0.5]], dtype=D))


def test_sharpen_hand_computed():
    d = torch.tensor([[[0.2, 0.6, 0.0]]], dtype=D)
    got = sharpen(d, torch.tensor([[2.0]], dtype=D))
    # (d + EPS)^2 normalised: 0.04 / 0.4 and 0.36 / 0.4, and EPS^2 / 0.4 for the zero read
    torch.testing.assert_close(got, torch.tensor([[[0.1, 0.9, 2.5e-12]]], dtype=D), atol=1e-6,
                               rtol=0)


def sharpen_both():
    from seqrec.models.dnc_kernels import Sharpen

    return {"plain": sharpen, "fast": Sharpen.apply}


@pytest.mark.parametrize("which", ["plain", "fast"])
@pytest.mark.parametrize("dtype", [torch.float32, D])
def test_sharpened_reads_sum_to_one_and_an_empty_link_reads_uniform(which, dtype):
    """S(d, s) = (d + EPS)^s / sum (d + EPS)^s (Csordas and Schmidhuber's implementation) is a
    distribution for any d >= 0; d = 0 gives 1/N, in float32 too at a large sharpness, where
    EPS^s itself underflows."""
    fn = sharpen_both()[which]
    g = torch.Generator().manual_seed(4)
    d = (torch.rand(3, 2, N, generator=g, dtype=D) / N).to(dtype)
    s = (1 + 4 * torch.rand(3, 2, generator=g, dtype=D)).to(dtype)
    torch.testing.assert_close(fn(d, s).sum(-1), torch.ones(3, 2, dtype=dtype))
    empty = fn(torch.zeros(2, 1, N, dtype=dtype), torch.tensor([[1.0], [30.0]], dtype=dtype))
    torch.testing.assert_close(empty, torch.full((2, 1, N), 1 / N, dtype=dtype), rtol=0,
                               atol=1e-7)


def test_fast_sharpen_equals_plain_sharpen():
    from seqrec.models.dnc_kernels import Sharpen

    g = torch.Generator().manual_seed(13)
    d = torch.rand(2, 3, 2, N, generator=g, dtype=D) / N  # (f, b) pairs, as memory_step has
    d[0, 1, 0, 2] = 0.0  # a zero link read: d + EPS, so a finite gradient there too
    s = 1 + 3 * torch.rand(2, 3, 2, generator=g, dtype=D)
    args = [x.clone().requires_grad_() for x in (d, s)]
    assert_same_values_and_grads([Sharpen.apply(*args)], [sharpen(*args)], args, g,
                                 tol=(1e-12, 1e-14), grad_tol=(1e-10, 1e-12))
    # gradcheck's finite differences step 1e-6 to either side: keep d - 1e-6 + EPS > 0
    away = [(d + (d == 0) * 0.1).requires_grad_(), s.clone().requires_grad_()]
    assert torch.autograd.gradcheck(Sharpen.apply, away)


def test_write_memory_and_deallocation():
    memory = torch.ones(1, 3, 2, dtype=D)
    w = torch.tensor([[0.0, 1.0, 0.0]], dtype=D)
    erase = torch.tensor([[1.0, 0.0]], dtype=D)
    vec = torch.tensor([[5.0, 7.0]], dtype=D)
    got = write_memory(memory, w, erase, vec)
    torch.testing.assert_close(got[0], torch.tensor([[1, 1], [5, 8], [1, 1]], dtype=D))
    psi = torch.tensor([[0.0, 1.0, 0.5]], dtype=D)  # cell 0 freed, cell 2 half freed
    got = write_memory(memory, w, erase, vec, psi)
    torch.testing.assert_close(got[0], torch.tensor([[0, 0], [5, 8], [0.5, 0.5]], dtype=D))


def random_state(b=3, seed=0, dtype=D) -> MemoryState:
    g = torch.Generator().manual_seed(seed)

    def rand(*s):
        return torch.rand(*s, generator=g, dtype=dtype)

    read = torch.softmax(3 * rand(b, R, N), -1) * 0.9
    write = torch.softmax(3 * rand(b, N), -1) * 0.8
    link = rand(b, N, N) / N * (1 - torch.eye(N, dtype=dtype))
    return MemoryState(rand(b, N, W) - 0.5, rand(b, N) * 0.9, link,
                       torch.softmax(rand(b, N), -1) * 0.7, read, write)


def random_interface(b, opts, seed=1, scale=2.0, dtype=D):
    g = torch.Generator().manual_seed(seed)
    raw = scale * torch.randn(b, interface_size(W, R, opts), generator=g, dtype=dtype)
    return split_interface(raw, W, R, opts)


def differentiable_leaves(state: MemoryState) -> list[torch.Tensor]:
    """Copies of the state as gradcheck inputs; the previous write weights without a gradient:
    usage takes them detached (a stop-gradient), so finite differences in them would not match
    the analytical gradient 0 by design."""
    return [x.clone().requires_grad_(name != "write_weights")
            for name, x in zip(MemoryState._fields, state, strict=True)]


ALL_OPTS = [MemoryOptions(*flags) for flags in itertools.product([False, True], repeat=3)]


@pytest.mark.parametrize("opts", ALL_OPTS)
def test_invariants_over_a_long_random_run(opts):
    state = MemoryState(*(torch.zeros_like(x) for x in random_state(b=4)))
    for t in range(50):
        iface = random_interface(4, opts, seed=t, scale=3.0)
        _, state = memory_step(state, iface, opts)
        assert all(torch.isfinite(x).all() for x in state)
        assert (state.usage >= 0).all() and (state.usage <= 1 + 1e-9).all()
        for w in (state.read_weights, state.write_weights):
            assert (w >= 0).all() and (w.sum(-1) <= 1 + 1e-9).all()
        if opts.link_sharpness:  # sharpened link reads, content weights and modes sum to 1
            torch.testing.assert_close(state.read_weights.sum(-1), torch.ones(4, R, dtype=D))
        assert (torch.diagonal(state.link, dim1=1, dim2=2) == 0).all()
        assert (state.link >= 0).all()
        assert (state.link.sum(1) <= 1 + 1e-9).all() and (state.link.sum(2) <= 1 + 1e-9).all()
        assert (state.precedence >= 0).all() and (state.precedence.sum(-1) <= 1 + 1e-9).all()


@pytest.mark.parametrize("dealloc", [False, True])
def test_memory_unchanged_when_write_gate_is_zero(dealloc):
    opts = MemoryOptions(True, dealloc, True)
    state = random_state()
    iface = random_interface(3, opts)._replace(write_gate=torch.zeros(3, dtype=D))
    if dealloc:  # de-allocation wipes freed cells, so nothing may be freed either
        iface = iface._replace(free_gates=torch.zeros(3, R, dtype=D))
    _, new = memory_step(state, iface, opts)
    torch.testing.assert_close(new.memory, state.memory, rtol=0, atol=0)
    assert (new.write_weights == 0).all()
    torch.testing.assert_close(new.link, state.link, rtol=0, atol=0)


def test_free_gate_wipes_a_cell_only_with_dealloc_content():
    state = random_state(b=1)
    read = torch.zeros(1, R, N, dtype=D)
    read[0, 0, 2] = 1.0  # head 0 read cell 2 last step
    state = state._replace(read_weights=read)
    base = random_interface(1, MemoryOptions())._replace(
        write_gate=torch.zeros(1, dtype=D), free_gates=torch.tensor([[1.0, 0.0]], dtype=D))
    _, on = memory_step(state, base, MemoryOptions(dealloc_content=True))
    _, off = memory_step(state, base, MemoryOptions(dealloc_content=False))
    assert (on.memory[0, 2] == 0).all() and on.usage[0, 2] == 0
    torch.testing.assert_close(off.memory, state.memory)
    torch.testing.assert_close(on.memory[0, [0, 1, 3, 4]], state.memory[0, [0, 1, 3, 4]])


def both_steps():
    from seqrec.models.dnc_memory import memory_step_reference

    return {"fast": memory_step, "plain": memory_step_reference}


@pytest.mark.parametrize("which", ["fast", "plain"])
def test_usage_takes_no_gradient_through_the_previous_write_weights(which):
    """u_t = (u + sg(w^w) (1 - u)) psi: the previous write weights reach no output
    differentiably (DeepMind's and Csordas and Schmidhuber's implementations), while the
    previous usage and the free gates (through psi) still do."""
    opts = MemoryOptions()
    state = MemoryState(*(x.clone().requires_grad_() for x in random_state(b=2)))
    raw = torch.randn(2, interface_size(W, R, opts), generator=torch.Generator().manual_seed(2),
                      dtype=D).requires_grad_()
    reads, new = both_steps()[which](state, split_interface(raw, W, R, opts), opts)
    loss = sum(x.sum() for x in (reads, *new))
    d_write, d_usage, d_raw = torch.autograd.grad(loss, [state.write_weights, state.usage, raw],
                                                  allow_unused=True)
    assert d_write is None or (d_write == 0).all()
    assert d_usage.abs().max() > 1e-3
    free = slice(R * W + R + 3 * W + 1, R * W + 2 * R + 3 * W + 1)  # the free gates' columns
    assert d_raw[:, free].abs().max() > 1e-3
    # The value still uses them: usage moves with the previous write weights.
    _, moved = both_steps()[which](state._replace(write_weights=state.write_weights * 0.5),
                                   split_interface(raw, W, R, opts), opts)
    assert (moved.usage - new.usage).abs().max() > 1e-3


@pytest.mark.parametrize("which", ["fast", "plain"])
def test_sharpened_reads_from_the_empty_memory_are_uniform(which):
    """From the empty memory the link matrix is 0, so with sharpness each link read is 1/N
    (S(0, s) = 1/N): a read weighting's link part is (pi_b + pi_f) / N and it sums to 1."""
    from seqrec.models.dnc_memory import content_weights_reference

    opts = MemoryOptions()
    empty = MemoryState(*(torch.zeros_like(x) for x in random_state(b=3)))
    iface = random_interface(3, opts, seed=7)
    _, new = both_steps()[which](empty, iface, opts)
    modes = iface.read_modes
    content = content_weights_reference(new.memory, iface.read_keys, iface.read_strengths,
                                        iface.read_masks)
    link_part = new.read_weights - modes[..., 1:2] * content
    expected = ((modes[..., 0] + modes[..., 2]) / N).unsqueeze(-1).expand(3, R, N)
    torch.testing.assert_close(link_part, expected, rtol=0, atol=1e-14)
    torch.testing.assert_close(new.read_weights.sum(-1), torch.ones(3, R, dtype=D), rtol=0,
                               atol=1e-14)


@pytest.mark.parametrize("masked", [False, True])
def test_gradient_at_an_empty_cell_is_the_dot_products_over_eps(masked):
    """At an all-zero cell cos = 0 / (|k m| 0 + EPS) = 0 and the norm's gradient is taken as 0
    (torch's convention, as in Csordas and Schmidhuber's implementation), so the cell's gradient
    is that of beta (M[n] . k m^2) / EPS alone: sum_k dz_k beta_k k_k m_k^2 / EPS, with
    dz = c (dc - sum_n dc c) the softmax's backward. Both lookups, fast and plain."""
    from seqrec.models.dnc_kernels import EPS
    from seqrec.models.dnc_memory import content_weights_reference

    g = torch.Generator().manual_seed(9)
    memory = torch.randn(2, N, W, generator=g, dtype=D)
    memory[1, 3] = 0.0
    keys = torch.randn(2, R, W, generator=g, dtype=D)
    strengths = 1 + torch.rand(2, R, generator=g, dtype=D)
    masks = torch.rand(2, R, W, generator=g, dtype=D) if masked else torch.ones(2, R, W, dtype=D)
    dc = torch.randn(2, R, N, generator=g, dtype=D)
    fns = [content_weights, content_weights_reference]
    for fn in fns:
        mem = memory.clone().requires_grad_()
        c = fn(mem, keys, strengths, masks if masked else None)
        (d_mem,) = torch.autograd.grad((c * dc).sum(), [mem])
        c = c.detach()
        dz = c * (dc - (dc * c).sum(-1, keepdim=True))  # [2, R, N]
        expected = (dz[1, :, 3, None] * strengths[1, :, None] * keys[1] * masks[1] ** 2).sum(0)
        torch.testing.assert_close(d_mem[1, 3], expected / EPS, rtol=1e-12, atol=0)
        assert expected.abs().max() / EPS > 1e3  # the 1/EPS scale: not a vanishing check


@pytest.mark.parametrize("opts", [MemoryOptions(), MemoryOptions(False, False, False)])
def test_gradcheck_memory_step(opts):
    state = random_state(b=2)
    g = torch.Generator().manual_seed(3)
    raw = torch.randn(2, interface_size(W, R, opts), generator=g, dtype=D).requires_grad_()
    leaves = differentiable_leaves(state)

    def step(raw, *tensors):
        reads, new = memory_step(MemoryState(*tensors), split_interface(raw, W, R, opts), opts)
        return (reads, *new)

    assert torch.autograd.gradcheck(step, (raw, *leaves), fast_mode=True)


# ---------------------------------------------------------------------------------------------
# The model

def dnc_cfg(name="dnc", **kw):
    base = dict(name=name, embedding_size=6, hidden_size=7, memory_cells=N, word_size=W,
                read_heads=R)
    base.update(kw)
    return ModelConfig(**base)


def plain_dnc(m: DNC, items, clip, interface_clip=0.0):
    """Reference: GRU controller on the concatenated input [x; r] with one weight matrix."""
    x_all = m.input.embedding(items)
    w_in = torch.cat([m.input.proj.weight, m.weight_ir], 1)  # [3H, E + R W]
    b, hsz = items.shape[0], m.hidden_size
    state = m.initial_state(b, items.device, D)
    mem, reads, h = state.memory, state.read_vectors, state.controller.h
    for t in range(items.shape[1]):
        gi = torch.cat([x_all[:, t], reads.reshape(b, -1)], 1) @ w_in.T + m.input.bias
        gh = h @ m.weight_hh.T + m.bias_hh
        r = torch.sigmoid(gi[:, :hsz] + gh[:, :hsz])
        z = torch.sigmoid(gi[:, hsz:2 * hsz] + gh[:, hsz:2 * hsz])
        n = torch.tanh(gi[:, 2 * hsz:] + r * gh[:, 2 * hsz:])
        h = (1 - z) * n + z * h
        o = torch.clamp(h, -clip, clip) if clip > 0 else h
        raw = o @ m.interface.weight.T + m.interface.bias
        if interface_clip > 0:
            raw = torch.clamp(raw, -interface_clip, interface_clip)
        iface = split_interface(raw, W, R, m.opts)
        reads, mem = memory_step(mem, iface, m.opts)
        y = o @ m.out_controller.weight.T + m.out_controller.bias \
            + reads.reshape(b, -1) @ m.out_read.weight.T
    return m.output(y)


@pytest.mark.parametrize("clip, interface_clip", [(0.0, 0.0), (0.3, 0.0), (0.0, 1.5)])
def test_dnc_equals_plain_reference(clip, interface_clip):
    torch.manual_seed(0)
    m = DNC(dnc_cfg(controller_clip=clip, interface_clip=interface_clip), 13, 3).double().eval()
    items = torch.randint(0, 13, (3, 8), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(m(items, None), plain_dnc(m, items, clip, interface_clip),
                               rtol=1e-10, atol=1e-12)


def test_interface_clip_is_applied():
    """interface_clip clamps the raw interface vector (Csordas and Schmidhuber's +-20): it
    acts once the interface leaves the range, and changes nothing inside it."""
    torch.manual_seed(0)
    m = DNC(dnc_cfg(), 13, 3).double().eval()
    with torch.no_grad():  # raw interface values well beyond +-20 (the bias), varying with h
        g = torch.Generator().manual_seed(3)
        m.interface.bias.copy_(40 * torch.randn(m.interface.bias.shape, generator=g, dtype=D))
        m.interface.weight.mul_(100)
    items = torch.randint(0, 13, (3, 8), generator=torch.Generator().manual_seed(1))
    assert m.interface_clip == 0.0  # off by default
    off = m(items)
    m.interface_clip = 20.0
    assert (m(items) - off).abs().max() > 1e-3
    m.interface_clip = 1e6  # never reached: the same function
    torch.testing.assert_close(m(items), off, rtol=0, atol=0)


def test_controller_clip_is_applied():
    torch.manual_seed(0)
    m = DNC(dnc_cfg(controller_clip=0.0), 13, 3).double().eval()
    with torch.no_grad():
        m.weight_hh.mul_(30)  # saturate h to about +-1
    items = torch.randint(0, 13, (3, 8), generator=torch.Generator().manual_seed(1))
    off = m(items)
    m.clip = 5.0  # a GRU state lies in [-1, 1]: a clip of 5 changes nothing
    torch.testing.assert_close(m(items), off, rtol=0, atol=0)
    m.clip = 0.1
    assert (m(items) - off).abs().max() > 1e-3


@pytest.mark.parametrize("switch", ["masked_lookup", "dealloc_content", "link_sharpness"])
def test_each_switch_changes_the_function(switch):
    torch.manual_seed(0)
    on = DNC(dnc_cfg(), 13, 3).double().eval()
    off = DNC(dnc_cfg(**{switch: False}), 13, 3).double().eval()
    assert getattr(off.opts, switch) is False and getattr(on.opts, switch) is True
    shared = {k: v for k, v in on.state_dict().items() if not k.startswith("interface")}
    off.load_state_dict(shared, strict=False)
    with torch.no_grad():  # the interface rows both variants have, in the same layout order
        off.interface.weight.copy_(on.interface.weight[: off.interface.out_features])
        off.interface.bias.copy_(on.interface.bias[: off.interface.out_features])
    items = torch.randint(0, 13, (3, 12), generator=torch.Generator().manual_seed(1))
    assert (on(items) - off(items)).abs().max() > 1e-8
    sizes = {True: interface_size(W, R, on.opts), False: interface_size(W, R, off.opts)}
    assert sizes[True] - sizes[False] == {"masked_lookup": R * W + W, "dealloc_content": 0,
                                          "link_sharpness": 2 * R}[switch]


def test_user_dnc_controller_matches_user_gru_cell_on_concatenated_input():
    """With read vectors forced to zero (read modes unused), the user DNC's controller is the
    user-based GRU cell: its hidden state after one step equals a UserGRU's with shared weights."""
    from seqrec.models.user_gru import UserGRU

    torch.manual_seed(0)
    m = UserDNC(dnc_cfg("user_dnc"), 13, 3).double().eval()
    g = UserGRU(ModelConfig(name="user_gru", embedding_size=6, hidden_size=7), 13, 3).double()
    g.load_state_dict({k: v for k, v in m.state_dict().items() if k.startswith("input.")
                       or k in ("weight_hh", "bias_hh", "output.weight", "output.bias")})
    g.eval()
    items = torch.randint(0, 13, (3, 1))
    users = torch.randint(0, 3, (3, 1))
    _, state = m.forward_with_state(items, users)  # first step: r_0 = 0
    _, gstate = g.forward_with_state(items, users)
    torch.testing.assert_close(state.controller.h, gstate.h, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["dnc", "user_dnc"])
def test_no_nan_on_long_sequences_float32(name):
    torch.manual_seed(0)
    m = (DNC if name == "dnc" else UserDNC)(dnc_cfg(name), 13, 3)
    with torch.no_grad():
        m.interface.weight.mul_(20)  # extreme gates and strengths
    items = torch.randint(0, 13, (4, 60))
    users = torch.randint(0, 3, (4, 60))
    logits, state = m.forward_with_state(items, users)
    logits.logsumexp(1).sum().backward()
    assert torch.isfinite(logits).all()
    assert all(torch.isfinite(x).all() for x in (*state.memory, state.read_vectors))
    assert all(torch.isfinite(p.grad).all() for p in m.parameters())


def test_gradcheck_one_dnc_step():
    torch.manual_seed(0)
    m = UserDNC(dnc_cfg("user_dnc", hidden_size=3, controller_clip=0.5), 7, 2).double().eval()
    items, users = torch.tensor([[1], [4]]), torch.tensor([[0], [1]])
    pre = m._precompute(items, users)
    base = random_state(b=2)
    g = torch.Generator().manual_seed(5)
    reads = torch.randn(2, R, W, generator=g, dtype=D).requires_grad_()
    h = (0.5 * torch.randn(2, 3, generator=g, dtype=D)).requires_grad_()
    leaves = differentiable_leaves(base)

    def step(reads, h, *mem):
        y, new = m.step(pre, 0, DNCState(MemoryState(*mem), reads, GRUState(h)))
        return (y, *new.memory, new.read_vectors, new.controller.h)

    assert torch.autograd.gradcheck(step, (reads, h, *leaves), fast_mode=True)


@pytest.mark.parametrize("opts", ALL_OPTS)
def test_split_interface_squashes_each_part_in_the_layout(opts):
    """Against the layout written out part by part: keys and vectors raw, gates and masks
    through a sigmoid, strengths and sharpness through oneplus, read modes a softmax."""
    g = torch.Generator().manual_seed(6)
    raw = torch.randn(3, interface_size(W, R, opts), generator=g, dtype=D)
    parts = iter(torch.split(raw, dm_sizes(opts), dim=1))
    one = lambda x: 1 + torch.nn.functional.softplus(x)  # noqa: E731
    rk, rs, wk, ws, er, wv, fg, ag, wg, rm = (next(parts) for _ in range(10))
    rmask, wmask = (next(parts), next(parts)) if opts.masked_lookup else (None, None)
    sf, sb = (next(parts), next(parts)) if opts.link_sharpness else (None, None)
    expected = Interface(
        rk.view(3, R, W), one(rs), wk, one(ws[:, 0]), torch.sigmoid(er), wv, torch.sigmoid(fg),
        torch.sigmoid(ag[:, 0]), torch.sigmoid(wg[:, 0]), torch.softmax(rm.view(3, R, 3), -1),
        None if rmask is None else torch.sigmoid(rmask).view(3, R, W),
        None if wmask is None else torch.sigmoid(wmask),
        None if sf is None else one(sf), None if sb is None else one(sb))
    got = split_interface(raw, W, R, opts)
    for name, a, b in zip(Interface._fields, got, expected, strict=True):
        if b is None:
            assert a is None, name
        else:
            torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-15, msg=name)


def dm_sizes(opts):
    """The part sizes in layout order (Interface's docstring)."""
    sizes = [R * W, R, W, 1, W, W, R, 1, 1, 3 * R]
    return sizes + ([R * W, W] if opts.masked_lookup else []) + ([R, R] if opts.link_sharpness
                                                                   else [])


def test_interface_is_the_documented_layout():
    opts = MemoryOptions()
    iface = random_interface(2, opts)
    assert isinstance(iface, Interface)
    assert iface.read_keys.shape == (2, R, W) and iface.read_masks.shape == (2, R, W)
    assert (iface.read_strengths >= 1).all() and (iface.forward_sharpness >= 1).all()
    torch.testing.assert_close(iface.read_modes.sum(-1), torch.ones(2, R, dtype=D))


def assert_same_values_and_grads(fast, ref, inputs, g, tol, grad_tol):
    """Outputs equal (rtol, atol = tol), and so are the gradients in `inputs` of one random
    linear function of all outputs (grad_tol)."""
    for a, b in zip(fast, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=tol[0], atol=tol[1])
    weights = [torch.randn(x.shape, generator=g, dtype=D) for x in fast]

    def pull(outs):  # an input that no output depends on differentiably gets a zero gradient
        grads = torch.autograd.grad(sum((w * x).sum() for w, x in zip(weights, outs, strict=True)),
                                    inputs, allow_unused=True)
        return [torch.zeros_like(x) if d is None else d for x, d in zip(inputs, grads, strict=True)]

    for a, b in zip(pull(fast), pull(ref), strict=True):
        torch.testing.assert_close(a, b, rtol=grad_tol[0], atol=grad_tol[1])


@pytest.fixture(params=["whole batch", "chunks of 2"])
def chunking(request, monkeypatch):
    """Run the fast memory operations over the whole batch, or (at b = 3) over batch chunks of
    2 and 1, so that the chunked loops and their reused scratch buffers are checked too."""
    if request.param == "chunks of 2":
        from seqrec.models import dnc_kernels

        # Two samples' link matrices (float64); the memory [N, W] is smaller, also 2 per chunk.
        monkeypatch.setattr(dnc_kernels, "CHUNK_BYTES", 2 * N * N * 8)
    return request.param


def test_batch_slices_cover_the_batch_in_chunks(monkeypatch):
    from seqrec.models import dnc_kernels

    monkeypatch.setattr(dnc_kernels, "CHUNK_BYTES", 2 * N * N * 8)
    assert dnc_kernels.batch_slices(torch.zeros(5, N, N, dtype=D)) == [
        slice(0, 2), slice(2, 4), slice(4, 5)]
    assert dnc_kernels.batch_slices(torch.zeros(3, N, W, dtype=D)) == [slice(0, 2), slice(2, 3)]
    assert dnc_kernels.batch_slices(torch.zeros(0, N, N)) == [slice(0, 0)]


@pytest.mark.parametrize("opts", ALL_OPTS)
@pytest.mark.parametrize("heads", [1, 2])
def test_memory_step_equals_plain_reference(opts, heads, chunking):
    """The fast memory step (WritePath, LinkStep, ReadPath) against `memory_step_reference`:
    the same read vectors, state and gradients in every input, for every switch setting."""
    from seqrec.models.dnc_memory import memory_step_reference

    g = torch.Generator().manual_seed(21)
    state = random_state(b=3, seed=4)
    read = torch.softmax(3 * torch.rand(3, heads, N, generator=g, dtype=D), -1) * 0.9
    state = state._replace(read_weights=read)
    state.memory[0, 1] = 0.0  # an empty cell
    raw = torch.randn(3, interface_size(W, heads, opts), generator=g, dtype=D)
    leaves = [x.clone().requires_grad_() for x in (raw, *state)]

    def run(step):
        raw, *tensors = leaves
        reads, new = step(MemoryState(*tensors), split_interface(raw, W, heads, opts), opts)
        return (reads, *new)

    assert_same_values_and_grads(run(memory_step), run(memory_step_reference), leaves, g,
                                 tol=(1e-10, 1e-12), grad_tol=(1e-9, 1e-11))


@pytest.mark.parametrize("heads", [1, 2])
def test_link_step_equals_plain_reference(heads, chunking):
    from seqrec.models.dnc_memory import link_step

    state = random_state(b=3)
    g = torch.Generator().manual_seed(8)
    prev_read = torch.softmax(torch.randn(3, heads, N, generator=g, dtype=D), -1)
    args = [x.clone().requires_grad_() for x in (state.link, state.precedence,
                                                  state.write_weights, prev_read)]

    def reference(link, precedence, w, read):
        link, precedence = update_link(link, precedence, w)
        return (link, precedence, torch.stack([torch.bmm(read, link.transpose(1, 2)),
                                               torch.bmm(read, link)]))

    assert_same_values_and_grads(link_step(*args), reference(*args), args, g,
                                 tol=(1e-12, 1e-14), grad_tol=(1e-12, 1e-14))
    # Also with an unused link output (the last step's link gets no gradient).
    fast_reads = torch.autograd.grad(link_step(*args)[2].sum(), args)
    ref_reads = torch.autograd.grad(reference(*args)[2].sum(), args)
    for a, b in zip(fast_reads, ref_reads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert torch.autograd.gradcheck(lambda *a: link_step(*a), args)


def test_masked_content_weights_equal_plain_reference(chunking):
    from seqrec.models.dnc_memory import content_weights_reference

    g = torch.Generator().manual_seed(12)
    for heads in (1, 2):
        memory = torch.randn(3, N, W, generator=g, dtype=D)
        memory[0, 1] = 0.0  # an empty cell: the TINY guard
        keys = torch.randn(3, heads, W, generator=g, dtype=D)
        strengths = 1 + torch.rand(3, heads, generator=g, dtype=D)
        masks = torch.rand(3, heads, W, generator=g, dtype=D)
        args = [x.clone().requires_grad_() for x in (memory, keys, strengths, masks)]
        fast = content_weights(*args)
        ref = content_weights_reference(*args)
        torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-14)
        weights = torch.randn(fast.shape, generator=g, dtype=D)
        for a, b in zip(torch.autograd.grad((fast * weights).sum(), args),
                        torch.autograd.grad((ref * weights).sum(), args), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
        # gradcheck away from the empty cell, where sqrt(v + TINY) is not smooth at eps 1e-6
        args[0] = (memory + (memory == 0)).requires_grad_()
        assert torch.autograd.gradcheck(content_weights, args)

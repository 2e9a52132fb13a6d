"""Tests of the model registry, the shared interface and the vanilla GRU."""

from __future__ import annotations

import pytest
import torch

from seqrec.config import ModelConfig
from seqrec.models import REGISTRY, ModelEntry, build_model, model_class, model_label
from seqrec.models.contract import Countable, Recommender, Trainable, scores_are_logits
from seqrec.models.dropout import dropout_mask
from seqrec.models.gru import (
    GRU,
    GRURecurrence,
    GRUState,
    fast_gru_recurrence,
    gru_recurrence,
)

N_ITEMS, N_USERS = 23, 5
OURS = ("gru", "user_gru", "dnc", "user_dnc")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])




def small_cfg(name: str, **kw) -> ModelConfig:
    base = dict(name=name, embedding_size=6, hidden_size=8, memory_cells=5, word_size=4)
    base.update(kw)
    return ModelConfig(**base)


def batch(b: int = 4, t: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, N_ITEMS, (b, t), generator=g),
            torch.randint(0, N_USERS, (b, t), generator=g))


def plain_gru(x, h, w_ih, w_hh, b_ih, b_hh):
    """Reference cell, written out gate by gate; x [B, T, E] -> hidden states [B, T, H]."""
    hs = []
    n_h = h.shape[1]
    w = lambda m, k: m[k * n_h:(k + 1) * n_h]  # noqa: E731
    for t in range(x.shape[1]):
        xt = x[:, t]
        r = torch.sigmoid(xt @ w(w_ih, 0).T + w(b_ih, 0) + h @ w(w_hh, 0).T + w(b_hh, 0))
        z = torch.sigmoid(xt @ w(w_ih, 1).T + w(b_ih, 1) + h @ w(w_hh, 1).T + w(b_hh, 1))
        n = torch.tanh(xt @ w(w_ih, 2).T + w(b_ih, 2) + r * (h @ w(w_hh, 2).T + w(b_hh, 2)))
        h = (1 - z) * n + z * h
        hs.append(h)
    return torch.stack(hs, 1)


def test_registry_names_and_lazy_errors():
    assert set(OURS) <= set(REGISTRY)
    assert model_class("gru") is GRU
    with pytest.raises(ValueError, match="unknown model"):
        model_class("nope")
    REGISTRY["_missing"] = ModelEntry("_missing", "Missing", "neural",
                                      "seqrec.models._not_there:X", ("neural",))
    try:
        with pytest.raises(ValueError, match="not installed"):
            model_class("_missing")
    finally:
        del REGISTRY["_missing"]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_model_follows_the_contract_of_its_registry_row(name):
    row = REGISTRY[name]
    cls = model_class(name)
    assert cls.kind == row.kind and cls.uses_users == row.user_based
    model = build_model(small_cfg(name, hidden_size=8, attention_heads=2), N_ITEMS, N_USERS)
    assert isinstance(model, Recommender)
    assert isinstance(model, Trainable if row.kind == "neural" else Countable)
    assert scores_are_logits(model) == (row.kind == "neural")
    assert model_label(name) == row.label


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_gru_paths_equal_plain_reference(dropout):
    torch.manual_seed(1)
    m = GRU(small_cfg("gru", input_dropout=dropout), N_ITEMS, N_USERS).double()
    items, _ = batch()
    x = m.input.embedding(items)
    w_ih, b_ih = m.input.proj.weight, m.input.bias
    h0 = torch.zeros(4, 8, dtype=torch.float64)
    ref = plain_gru(x, h0, w_ih, m.weight_hh, b_ih, m.bias_hh)
    m.eval()
    assert m.uses_fused()
    torch.testing.assert_close(m.forward_all(items), m.output(ref), rtol=1e-10, atol=1e-12)
    m.train()
    if dropout == 0.0:
        assert m.uses_fused()
        torch.testing.assert_close(m(items), m.output(ref[:, -1]), rtol=1e-10, atol=1e-12)
    else:
        # Loop path with dropout on W_i x + b_i: rebuild the same mask from the same seed.
        assert not m.uses_fused()
        torch.manual_seed(7)
        got = m(items)
        torch.manual_seed(7)
        gi = x @ w_ih.T + b_ih
        # The model draws its mask time-major, [T, B, 3H].
        mask = dropout_mask((gi.shape[1], gi.shape[0], gi.shape[2]), dropout, device=gi.device,
                            dtype=gi.dtype)
        gi = gi * mask.transpose(0, 1)
        assert (gi == 0).any()  # dropout really acted
        eye = torch.eye(gi.shape[-1], dtype=torch.float64)
        ref_drop = plain_gru(gi, h0, eye, m.weight_hh, torch.zeros_like(b_ih), m.bias_hh)
        torch.testing.assert_close(got, m.output(ref_drop[:, -1]), rtol=1e-10, atol=1e-12)


def test_gru_hand_written_backward_equals_autograd_loop():
    torch.manual_seed(4)
    T, B, H = 6, 3, 5
    leaves = [torch.randn(B, T, 3 * H, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64),
              0.5 * torch.randn(3 * H, H, dtype=torch.float64),
              torch.randn(3 * H, dtype=torch.float64)]
    fast = [x.clone().requires_grad_() for x in leaves]
    plain = [x.clone().requires_grad_() for x in leaves]
    out_f, last_f = fast_gru_recurrence(fast[0], GRUState(fast[1]), fast[2], fast[3])
    out_p, last_p = gru_recurrence(plain[0], GRUState(plain[1]), plain[2], plain[3])
    torch.testing.assert_close(out_f, out_p, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(last_f.h, last_p.h, rtol=1e-12, atol=1e-12)
    # A loss that reads every step and the last state, as forward_all and forward do.
    weights = torch.randn(B, T, H, dtype=torch.float64)
    ((out_f * weights).sum() + last_f.h.square().sum()).backward()
    ((out_p * weights).sum() + last_p.h.square().sum()).backward()
    for f, p in zip(fast, plain, strict=True):
        torch.testing.assert_close(f.grad, p.grad, rtol=1e-10, atol=1e-12)
    args = tuple(x[:2, :2].clone() if x.dim() == 3 else x.clone() for x in leaves)
    args = (args[0].transpose(0, 1).contiguous().requires_grad_(), args[1][:2].requires_grad_(),
            args[2].requires_grad_(), args[3].requires_grad_())
    assert torch.autograd.gradcheck(GRURecurrence.apply, args)


def test_gru_one_hot_equals_one_hot_matmul():
    torch.manual_seed(2)
    m = GRU(small_cfg("gru", embedding_size=-1), N_ITEMS, N_USERS).double().eval()
    assert not m.uses_fused() and m.input.one_hot
    items, _ = batch()
    x = torch.nn.functional.one_hot(items, N_ITEMS).double()  # [B, T, n_items]
    ref = plain_gru(x, torch.zeros(4, 8, dtype=torch.float64), m.input.proj.weight.T,
                    m.weight_hh, m.input.bias, m.bias_hh)
    torch.testing.assert_close(m(items), m.output(ref[:, -1]), rtol=1e-10, atol=1e-12)


def test_gru_state_carries_across_windows():
    torch.manual_seed(3)
    m = GRU(small_cfg("gru"), N_ITEMS, N_USERS).double().eval()
    items, _ = batch(t=8)
    whole = m(items)
    _, state = m.forward_with_state(items[:, :5], None)
    logits, state2 = m.forward_with_state(items[:, 5:], None, state)
    torch.testing.assert_close(logits, whole)
    assert state2.h.shape == (4, 8)


def test_build_model_gru():
    m = build_model(small_cfg("gru"), N_ITEMS, N_USERS)
    assert isinstance(m, GRU) and m.kind == "neural"


# ---------------------------------------------------------------------------------------------
# The shared interface, for every model of ours

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("embedding", [6, -1])
@pytest.mark.parametrize("name", OURS)
def test_forward_backward_every_model(name, embedding, device):
    torch.manual_seed(0)
    m = build_model(small_cfg(name, embedding_size=embedding), N_ITEMS, N_USERS).to(device)
    items, users = (x.to(device) for x in batch())
    m.train()
    logits = m(items, users)
    assert logits.shape == (4, N_ITEMS) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, items[:, 0]).backward()
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # The output layer and the recurrent weights receive a non-zero gradient.
    assert m.output.weight.grad.abs().sum() > 0 and m.weight_hh.grad.abs().sum() > 0
    m.eval()
    all_logits = m.forward_all(items, users)
    assert all_logits.shape == (4, 6, N_ITEMS)
    torch.testing.assert_close(all_logits[:, -1], m(items, users))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("embedding", [6, -1])
@pytest.mark.parametrize("name", OURS)
def test_cuda_computes_what_the_cpu_computes(name, embedding):
    """The CUDA paths (fused nn.GRU kernel in eval, whole-batch memory operations, the loss)
    give the CPU's loss and gradients, in float64 with dropout off."""
    torch.manual_seed(0)
    cpu = build_model(small_cfg(name, embedding_size=embedding), N_ITEMS, N_USERS).double()
    gpu = build_model(small_cfg(name, embedding_size=embedding), N_ITEMS, N_USERS).double()
    gpu.load_state_dict(cpu.state_dict())
    gpu.cuda()
    items, users = batch(b=5, t=7)
    target = items[:, 0]
    losses = []
    for m, dev in ((cpu, "cpu"), (gpu, "cuda")):
        m.eval()
        loss = m.loss(items.to(dev), users.to(dev), target.to(dev))
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[1].cpu(), losses[0], rtol=1e-10, atol=1e-12)
    for (name_p, p_cpu), p_gpu in zip(cpu.named_parameters(), gpu.parameters(), strict=True):
        torch.testing.assert_close(p_gpu.grad.cpu(), p_cpu.grad, rtol=1e-8, atol=1e-10,
                                   msg=lambda m, n=name_p: f"{n}: {m}")


@pytest.mark.parametrize("name", OURS)
def test_out_of_range_ids_raise(name):
    m = build_model(small_cfg(name), N_ITEMS, N_USERS)
    items, users = batch()
    with pytest.raises(ValueError, match=r"item ids must lie in \[0, 23\)"):
        m(items.clone().fill_(N_ITEMS + 1), users)
    with pytest.raises(ValueError, match="padding .* each row's last input must be an item"):
        m(items.clone().fill_(N_ITEMS), users)  # N_ITEMS is padding: a row of it only
    after = items.clone()
    after[:, 2] = N_ITEMS
    with pytest.raises(ValueError, match=r"padding \(item id 23\) may only precede"):
        m(after, users)
    with pytest.raises(ValueError, match="item ids"):
        m(items - 1, users)
    if m.uses_users:
        with pytest.raises(ValueError, match=r"user ids must lie in \[0, 5\)"):
            m(items, users + N_USERS)
        with pytest.raises(ValueError, match="needs users"):
            m(items, None)
    else:
        m(items, None)  # vanilla models ignore users


@pytest.mark.parametrize("name", OURS)
def test_batch_independence(name):
    torch.manual_seed(4)
    m = build_model(small_cfg(name), N_ITEMS, N_USERS).double().eval()
    items, users = batch(b=5, t=7)
    full = m(items, users)
    alone = torch.cat([m(items[i:i + 1], users[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(full, alone, rtol=1e-10, atol=1e-12)
    other_items, other_users = batch(b=5, t=7, seed=9)
    mixed = m(torch.cat([items[:2], other_items[2:]]), torch.cat([users[:2], other_users[2:]]))
    torch.testing.assert_close(mixed[:2], full[:2], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", OURS)
def test_state_carries_across_windows(name):
    torch.manual_seed(5)
    m = build_model(small_cfg(name), N_ITEMS, N_USERS).double().eval()
    items, users = batch(t=9)
    _, state = m.forward_with_state(items[:, :4], users[:, :4])
    logits, _ = m.forward_with_state(items[:, 4:], users[:, 4:], state)
    torch.testing.assert_close(logits, m(items, users), rtol=1e-10, atol=1e-12)


def _names(m, group):
    ids = {id(p) for p in group["params"]}
    return {n for n, p in m.named_parameters() if id(p) in ids}


@pytest.mark.parametrize("name", OURS)
def test_param_groups(name):
    m = build_model(small_cfg(name), N_ITEMS, N_USERS)
    groups = {g["name"]: g for g in m.param_groups(0.5, 0.01)}
    counted = sum(len(g["params"]) for g in groups.values())
    assert counted == len(list(m.parameters()))  # every parameter exactly once
    none = _names(m, groups["none"])
    weights = _names(m, groups["weights"])
    assert groups["weights"]["weight_decay"] == 0.5 and groups["none"]["weight_decay"] == 0.0
    assert "output.bias" in none and "bias_hh" in none and "output.weight" in weights
    assert "weight_hh" in weights
    assert any(n.endswith("embedding.weight") for n in none)
    if name.startswith("user"):
        assert _names(m, groups["user"]) == {"input.user_proj.weight"}
        assert groups["user"]["weight_decay"] == 0.01
        assert "input.user_embedding.weight" in none
    else:
        assert "user" not in groups
    torch.optim.Adam(m.param_groups(0.5, 0.01), lr=1e-3)  # accepted as given


def test_one_hot_weight_is_a_weight_not_an_embedding():
    m = build_model(small_cfg("gru", embedding_size=-1), N_ITEMS, N_USERS)
    groups = {g["name"]: g for g in m.param_groups(0.5, 0.01)}
    assert "input.proj.weight" in _names(m, groups["weights"])
    assert m.input.proj.weight.shape == (N_ITEMS, 3 * 8)
    assert not any(isinstance(mod, torch.nn.Embedding) for mod in m.modules())


def test_init_is_uniform_within_a_tenth():
    m = build_model(ModelConfig(name="user_dnc", embedding_size=32, hidden_size=32,
                                memory_cells=8, word_size=8), 200, 10)
    for name, p in m.named_parameters():
        assert p.abs().max() <= 0.1, name
        if p.numel() > 500:
            assert p.abs().max() > 0.09, name  # spread over the whole interval


@pytest.mark.parametrize("name", OURS)
def test_int32_ids_as_stored_in_splits(name):
    torch.manual_seed(6)
    m = build_model(small_cfg(name), N_ITEMS, N_USERS).double().eval()
    items, users = batch()
    torch.testing.assert_close(m(items.int(), users.int()), m(items, users))
    with pytest.raises(ValueError, match="no time steps"):
        m(items[:, :0], users[:, :0])

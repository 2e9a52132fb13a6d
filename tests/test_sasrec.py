"""SASRec: causality, batch independence, gradients, param groups, a toy task, clear errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.nn import functional as F

from seqrec.config import ModelConfig
from seqrec.models.sasrec import SASRec

N_ITEMS = 17




def make(embedding_size: int = 16, hidden: int = 16, dropout: float = 0.0, **kw) -> SASRec:
    torch.manual_seed(0)
    cfg = ModelConfig(name="sasrec", embedding_size=embedding_size, hidden_size=hidden,
                      input_dropout=dropout, attention_heads=2, attention_layers=2)
    return SASRec(cfg, N_ITEMS, 3, **kw)


@pytest.mark.parametrize("embedding_size", [16, 8])  # tied as is, and through a projection
def test_causal_every_position_sees_only_the_past(embedding_size):
    model = make(embedding_size).eval()
    items = torch.randint(0, N_ITEMS, (3, 7), generator=torch.Generator().manual_seed(1))
    changed = items.clone()
    changed[:, 4] = (changed[:, 4] + 1) % N_ITEMS
    a, b = model.forward_all(items), model.forward_all(changed)
    assert a.shape == (3, 7, N_ITEMS)
    torch.testing.assert_close(a[:, :4], b[:, :4], rtol=0, atol=0)
    assert (a[:, 4:] - b[:, 4:]).abs().amax() > 1e-4  # later positions do see the change
    torch.testing.assert_close(model(items), a[:, -1])


def test_batch_rows_are_independent():
    model = make().eval()
    items = torch.randint(0, N_ITEMS, (5, 6), generator=torch.Generator().manual_seed(2))
    alone = torch.cat([model(items[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(model(items), alone, rtol=1e-5, atol=1e-5)
    other = items.clone()
    other[1:] = (other[1:] + 3) % N_ITEMS  # other rows change, row 0 must not
    torch.testing.assert_close(model(other)[0], model(items)[0], rtol=1e-5, atol=1e-5)


def test_forward_backward_and_param_groups():
    model = make(8, 16, dropout=0.3).train()
    items = torch.randint(0, N_ITEMS, (4, 5), generator=torch.Generator().manual_seed(3))
    loss = F.cross_entropy(model(items, None), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    groups = model.param_groups(0.1, 0.5)
    by_name = {g["name"]: g for g in groups}
    assert by_name["weights"]["weight_decay"] == 0.1 and by_name["none"]["weight_decay"] == 0.0
    ids = {id(p) for g in groups for p in g["params"]}
    assert ids == {id(p) for p in model.parameters()} and len(ids) == sum(
        len(g["params"]) for g in groups)
    none = {id(p) for p in by_name["none"]["params"]}
    assert id(model.item_embedding.weight) in none and id(model.pos_embedding.weight) in none
    assert id(model.final_norm.weight) in none and id(model.output_bias) in none
    assert id(model.blocks[0].qkv.weight) not in none and id(model.input_proj.weight) not in none


def test_dropout_only_in_training():
    model = make(dropout=0.5)
    items = torch.randint(0, N_ITEMS, (2, 5), generator=torch.Generator().manual_seed(4))
    model.eval()
    torch.testing.assert_close(model(items), model(items), rtol=0, atol=0)
    model.train()
    assert not torch.equal(model(items), model(items))


def test_learns_next_is_last_plus_one():
    # Random inputs, target = (last input + 1) mod n: the model must attend to the last position.
    model = make(hidden=32, embedding_size=32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(5)
    for _ in range(80):
        items = torch.randint(0, N_ITEMS, (64, 5), generator=gen)
        loss = F.cross_entropy(model(items), (items[:, -1] + 1) % N_ITEMS)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    items = torch.randint(0, N_ITEMS, (256, 5), generator=gen)
    accuracy = (model(items).argmax(1) == (items[:, -1] + 1) % N_ITEMS).float().mean()
    assert accuracy > 0.95


def test_clear_errors():
    model = make(max_len=6)
    with pytest.raises(ValueError, match="item ids"):
        model(torch.tensor([[0, N_ITEMS + 1]]))
    with pytest.raises(ValueError, match="padding .* may only precede"):
        model(torch.tensor([[0, N_ITEMS]]))  # N_ITEMS pads, and never as the last input
    with pytest.raises(ValueError, match="item ids"):
        model(torch.tensor([[-1, 0]]))
    with pytest.raises(ValueError, match="seq_len"):
        model(torch.zeros(1, 7, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[batch, time\]"):
        model(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_heads"):
        SASRec(ModelConfig(name="sasrec", hidden_size=15, attention_heads=2), N_ITEMS, 1)
    with pytest.raises(ValueError, match="one-hot"):
        SASRec(ModelConfig(name="sasrec", embedding_size=-1), N_ITEMS, 1)


def test_feed_forward_width_and_activation_are_settings():
    # Default: the hidden size and ReLU, the model of the code before the settings existed
    # (these logits are from commit 7931b6e, same seed and sizes).
    torch.manual_seed(0)
    cfg = ModelConfig(name="sasrec", embedding_size=8, hidden_size=16, attention_heads=2,
                      attention_layers=2, input_dropout=0.0)
    model = SASRec(cfg, N_ITEMS, 3).eval()
    assert model.blocks[0].ffn_in.weight.shape == (16, 16)
    items = torch.randint(0, N_ITEMS, (3, 6), generator=torch.Generator().manual_seed(5))
    before = torch.tensor([[-0.036362484, -0.025267769, -0.011789897],
                           [-0.021110537, -0.075924955, -0.045489073],
                           [-0.033129070, -0.035779387, -0.026180979]])
    torch.testing.assert_close(model(items)[:, :3], before, rtol=0, atol=1e-6)
    # RecBole's defaults: 256 wide, GELU.
    wide = SASRec(dataclasses.replace(cfg, sasrec_inner_size=256, sasrec_activation="gelu"),
                  N_ITEMS, 3).eval()
    assert wide.blocks[1].ffn_in.weight.shape == (256, 16)
    assert wide.blocks[1].ffn_out.weight.shape == (16, 256)
    y = torch.linspace(-2, 2, 9)
    assert torch.equal(wide.blocks[0].activation(y), F.gelu(y))
    assert torch.equal(model.blocks[0].activation(y), F.relu(y))
    with pytest.raises(ValueError, match="sasrec_inner_size must be >= 0"):
        ModelConfig(sasrec_inner_size=-1)
    with pytest.raises(ValueError, match="sasrec_activation must be one of"):
        ModelConfig(sasrec_activation="tanh")


def test_training_dropout_draws_no_bernoulli_variates_on_cpu():
    # F.dropout draws one Bernoulli variate per element on a CPU, which took about 28% of a
    # SASRec training step at the peer benchmark's sizes (docs/peers.md); every dropout of the
    # model (embedding, attention weights, both residual branches, the feed-forward layer)
    # uses seqrec's integer-threshold masks instead (models/dropout.py).
    model = make(8, 16, dropout=0.3).train()
    items = torch.randint(0, N_ITEMS, (4, 5), generator=torch.Generator().manual_seed(6))
    pad = torch.zeros(4, 5, dtype=torch.bool)
    pad[1, :2] = True
    padded = items.masked_fill(pad, N_ITEMS)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for batch in (items, padded):
            F.cross_entropy(model(batch), torch.tensor([0, 1, 2, 3])).backward()
    ops = {e.key for e in prof.key_averages()}
    assert not {"aten::bernoulli_", "aten::bernoulli", "aten::native_dropout"} & ops


@pytest.mark.parametrize("padded", [False, True])
def test_dropout_path_equals_the_plain_attention_when_its_masks_keep_everything(
        padded, monkeypatch):
    # In training with dropout the attention is written out (scores, softmax, dropout of the
    # weights, values) instead of F.scaled_dot_product_attention, whose dropout draws Bernoulli
    # variates. With every mask forced to keep all, that path must be the plain function:
    # the same logits and gradients as the model without dropout (the SDPA path), in float64.
    import seqrec.models.sasrec as sasrec

    items = torch.randint(0, N_ITEMS, (4, 6), generator=torch.Generator().manual_seed(7))
    if padded:
        items[1, :3] = N_ITEMS
        items[2, :5] = N_ITEMS
    target = torch.tensor([0, 1, 2, 3])
    results = []
    for p in (0.0, 0.3):
        model = make(8, 16, dropout=p).double().train()
        if p:
            monkeypatch.setattr(sasrec, "dropout", lambda x, p, training: x)
        loss = F.cross_entropy(model.forward_all(items)[:, -1], target)
        loss.backward()
        logits = model(items).detach()
        results.append((logits, {n: q.grad for n, q in model.named_parameters()}))
    (plain, plain_grads), (fast, fast_grads) = results
    torch.testing.assert_close(fast, plain, rtol=1e-12, atol=1e-12)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_a_block_is_torchs_transformer_encoder_layer(norm):
    # The block against an independent implementation: torch's TransformerEncoderLayer with the
    # same weights, norm_first for the paper's pre-norm, not for RecBole's post-norm.
    from seqrec.models.sasrec import AttentionBlock

    torch.manual_seed(0)
    block = AttentionBlock(16, 2, 0.0, 24, "gelu", norm).double().eval()
    layer = torch.nn.TransformerEncoderLayer(16, 2, 24, dropout=0.0, activation="gelu",
                                             batch_first=True, norm_first=norm == "pre")
    layer = layer.double().eval()
    with torch.no_grad():
        for mine, theirs in ((block.qkv, None), (block.attn_out, layer.self_attn.out_proj),
                             (block.ffn_in, layer.linear1), (block.ffn_out, layer.linear2),
                             (block.attn_norm, layer.norm1), (block.ffn_norm, layer.norm2)):
            if theirs is None:
                layer.self_attn.in_proj_weight.copy_(mine.weight)
                layer.self_attn.in_proj_bias.copy_(mine.bias)
            else:
                theirs.weight.copy_(mine.weight)
                theirs.bias.copy_(mine.bias)
    x = torch.randn(3, 6, 16, dtype=torch.float64)
    causal = torch.nn.Transformer.generate_square_subsequent_mask(6, dtype=torch.float64)
    torch.testing.assert_close(block(x), layer(x, src_mask=causal, is_causal=True),
                               rtol=1e-12, atol=1e-12)


def test_post_norm_normalises_the_embeddings_and_ends_without_a_norm():
    cfg = ModelConfig(name="sasrec", embedding_size=16, hidden_size=16, attention_heads=2,
                      attention_layers=1, input_dropout=0.0)
    pre = SASRec(cfg, N_ITEMS, 3)
    post = SASRec(dataclasses.replace(cfg, sasrec_norm="post"), N_ITEMS, 3)
    assert pre.input_norm is None and isinstance(pre.final_norm, torch.nn.LayerNorm)
    assert isinstance(post.input_norm, torch.nn.LayerNorm)
    assert isinstance(post.final_norm, torch.nn.Identity)
    items = torch.randint(0, N_ITEMS, (2, 5), generator=torch.Generator().manual_seed(2))
    features = post.eval().features(items)  # the last block's own LN: mean 0, variance 1
    torch.testing.assert_close(features.mean(-1), torch.zeros(2, 5), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="sasrec_norm must be one of"):
        ModelConfig(sasrec_norm="middle")

"""SASRec: self-attentive sequential recommendation (Kang and McAuley, ICDM 2018).

Per window of item ids x_0..x_{T-1} (Kang and McAuley, Sec. III):
    E_t = e(x_t) [W_p] + P_t                     item embedding (projected to the hidden size
                                                 when embedding_size != hidden_size) plus a
                                                 learned position embedding; dropout
    F <- F + Dropout(SA(LN(F)))                  causal multi-head self-attention (Sec. III-B)
    F <- F + Dropout(FFN(LN(F)))                 FFN(y) = W_2 Dropout(act(W_1 y + b_1)) + b_2,
                                                 W_1 [inner, H]; act ReLU (the paper) or GELU
    ...                                          `attention_layers` blocks, then a final LN
    (`sasrec_norm="post"`, RecBole's SASRec: F = LN(E) before the dropout, and in each block
    F <- LN(F + Dropout(SA(F))), F <- LN(F + Dropout(FFN(F))), no final LN.)
    r_{t, j} = F_t . M_j + b_j                   scores with the shared (tied) item embedding,
                                                 M = e W_p^T (Sec. III-D), plus an item bias

Differences from the paper, on purpose: it is trained like every model of this package, with
cross-entropy over ALL items at the last position (full softmax), not the paper's binary
cross-entropy against one sampled negative per step; the item bias b (not in the paper) lets
that softmax learn popularity directly. The feed-forward width `inner` is
`ModelConfig.sasrec_inner_size` (0: the hidden size, as the paper) and the activation
`sasrec_activation` (RecBole's SASRec: 256 and GELU).

Padding (seqrec.models.base; left padding, docs/protocols.md). Without it (the thesis' windows)
the causal mask alone makes position t see inputs 0..t. With it, three things change, so that a
padded window scores exactly as the same history unpadded: (1) a key padding mask: no position
attends to a padded one (a padded position attends to itself only, which keeps its softmax
finite; its output is never used by a real position); (2) positions count from the row's first
item, so item k of the history has position embedding P_k whatever the padding (as RecBole's
right-padded sequences have; the paper's code left-pads and counts from the padded start).
Cost with padding: a boolean mask `[B, 1, T, T]` per batch and a gathered `[B, T, H]` position
embedding instead of a broadcast one.
Dropout uses seqrec's integer-threshold masks (models/dropout.py), on the attention weights
too: in training on a CPU the attention is written out (`attention_with_dropout`) rather than
left to `F.scaled_dot_product_attention`, whose CPU dropout, like `F.dropout`, draws one
Bernoulli variate per element (about 28% of a training step at L 50, docs/peers.md).
Embeddings start uniform(-0.1, 0.1) like the thesis' models; linear layers use PyTorch's
default initialisation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqrec.config import ModelConfig
from seqrec.models.base import INIT_SCALE, check_item_ids, check_sizes, pad_counts, param_kind
from seqrec.models.dropout import dropout

MAX_LEN = 200  # learned positions available; windows longer than this are refused


class AttentionBlock(nn.Module):
    """One transformer block: causal self-attention, then a point-wise FFN.

    Shapes: `[B, T, H]` -> `[B, T, H]`. Dropout `dropout` on the attention weights and on both
    residual branches (Kang and McAuley, Sec. III-C "Stacking Self-Attention Blocks").
    `norm="pre"` (the paper): x + Dropout(f(LN(x))) for each sub-layer f; `norm="post"`
    (RecBole's SASRec, BERT): LN(x + Dropout(f(x))).
    """

    def __init__(self, hidden: int, heads: int, dropout: float, inner: int | None = None,
                 activation: str = "relu", norm: str = "pre") -> None:
        super().__init__()
        inner = hidden if not inner else inner
        self.post = norm == "post"
        self.heads = heads
        self.dropout = dropout
        self.activation = {"relu": F.relu, "gelu": F.gelu}[activation]
        self.attn_norm = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.ffn_norm = nn.LayerNorm(hidden)
        self.ffn_in = nn.Linear(hidden, inner)
        self.ffn_out = nn.Linear(inner, hidden)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """`x [B, T, H]` -> `[B, T, H]`; `mask` bool `[B, 1, T, T]` (True: may attend) replaces
        the plain causal mask when the batch is padded (`attention_mask`)."""
        batch, steps, hidden = x.shape
        p = self.dropout if self.training else 0.0
        qkv = self.qkv(x if self.post else self.attn_norm(x))
        qkv = qkv.view(batch, steps, 3, self.heads, hidden // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, heads, T, H / heads]
        # Causal: position t attends to positions <= t only (no look at later items).
        if p > 0 and x.device.type == "cpu":  # SDPA's dropout draws Bernoulli variates
            a = attention_with_dropout(q, k, v, mask, p)
        elif mask is None:
            a = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        a = a.transpose(1, 2).reshape(batch, steps, hidden)  # [B, T, H]
        x = x + dropout(self.attn_out(a), p, self.training)
        if self.post:
            x = self.attn_norm(x)
        y = dropout(self.activation(self.ffn_in(x if self.post else self.ffn_norm(x))), p,
                    self.training)
        x = x + dropout(self.ffn_out(y), p, self.training)
        return self.ffn_norm(x) if self.post else x


def attention_with_dropout(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, p: float
                           ) -> Tensor:
    """Causal attention with dropout `p` on its weights, written out (training on a CPU).

    q, k, v `[B, heads, T, d]`, mask bool `[B, 1, T, T]` (True: may attend; None: causal)
    -> `[B, heads, T, d]`: softmax(q k^T / sqrt(d), masked) with seqrec's dropout
    (models/dropout.py) on the weights, times v. The same function as
    `F.scaled_dot_product_attention(..., dropout_p=p)`, whose CPU dropout draws one Bernoulli
    variate per weight; tested equal to it with the masks forced to keep everything.
    """
    steps = q.shape[2]
    allowed = mask if mask is not None else torch.ones(
        steps, steps, dtype=torch.bool, device=q.device).tril_()
    scores = torch.matmul(q, k.transpose(-2, -1)).mul_(q.shape[-1] ** -0.5)
    weights = scores.masked_fill_(~allowed, float("-inf")).softmax(-1)  # [B, heads, T, T]
    return torch.matmul(dropout(weights, p, True), v)


def attention_mask(pad: Tensor) -> Tensor:
    """Causal mask without padded keys: pad `[B, T]` -> bool `[B, 1, T, T]`, True = may attend.

    Query t attends to keys s <= t that are items; a padded query attends to itself only (its
    row would otherwise be empty, and an all-masked softmax is NaN).
    """
    steps = pad.shape[1]
    causal = torch.ones(steps, steps, dtype=torch.bool, device=pad.device).tril_()
    self_only = torch.eye(steps, dtype=torch.bool, device=pad.device)
    return ((causal & ~pad.unsqueeze(1)) | self_only).unsqueeze(1)


class SASRec(nn.Module):
    """SASRec with a full-softmax output (see the module docstring).

    Sizes from `cfg`: `embedding_size` (item embedding; -1, one-hot, is not supported),
    `hidden_size` (model width; a multiple of `attention_heads`), `attention_heads`,
    `attention_layers`, `input_dropout` (every dropout of the model), `sasrec_inner_size` and
    `sasrec_activation` (the feed-forward layer). `users` are ignored.
    """

    kind = "neural"
    uses_users = False

    def __init__(self, cfg: ModelConfig, n_items: int, n_users: int, *,
                 max_len: int = MAX_LEN) -> None:
        super().__init__()
        check_sizes(n_items, n_users)
        if cfg.embedding_size == -1:
            raise ValueError("sasrec does not take one-hot input (model.embedding_size=-1); "
                             "set model.embedding_size to a positive size")
        if cfg.attention_layers < 1 or cfg.attention_heads < 1:
            raise ValueError(f"sasrec needs model.attention_layers >= 1 and "
                             f"model.attention_heads >= 1, got {cfg.attention_layers} and "
                             f"{cfg.attention_heads}")
        if cfg.hidden_size % cfg.attention_heads:
            raise ValueError(f"model.hidden_size ({cfg.hidden_size}) must be a multiple of "
                             f"model.attention_heads ({cfg.attention_heads}) for sasrec")
        self.n_items = n_items
        self.n_users = n_users
        self.max_len = max_len
        self.dropout = cfg.input_dropout
        hidden = cfg.hidden_size
        self.item_embedding = nn.Embedding(n_items, cfg.embedding_size)
        self.pos_embedding = nn.Embedding(max_len, hidden)
        # W_p maps embeddings to the hidden size; the output reuses it (tied item embedding).
        self.input_proj = (nn.Linear(cfg.embedding_size, hidden, bias=False)
                           if cfg.embedding_size != hidden else None)
        self.blocks = nn.ModuleList(
            AttentionBlock(hidden, cfg.attention_heads, cfg.input_dropout, cfg.sasrec_inner_size,
                           cfg.sasrec_activation, cfg.sasrec_norm)
            for _ in range(cfg.attention_layers))
        # Pre-norm ends with a layer norm; post-norm starts with one on the embeddings.
        post = cfg.sasrec_norm == "post"
        self.input_norm = nn.LayerNorm(hidden) if post else None
        self.final_norm = nn.Identity() if post else nn.LayerNorm(hidden)
        self.output_bias = nn.Parameter(torch.zeros(n_items))
        for emb in (self.item_embedding, self.pos_embedding):
            nn.init.uniform_(emb.weight, -INIT_SCALE, INIT_SCALE)

    def _check(self, items: Tensor) -> Tensor | None:
        """Check the inputs; return the padding mask `[B, T]`, or None without padding."""
        if items.dim() != 2 or items.shape[1] < 1:
            raise ValueError(f"items must be a [batch, time] tensor with time >= 1, got shape "
                             f"{tuple(items.shape)}")
        if items.shape[1] > self.max_len:
            raise ValueError(f"sasrec was built for windows of at most {self.max_len} inputs, "
                             f"got {items.shape[1]}; lower data.seq_len")
        return check_item_ids(items, self.n_items)

    def features(self, items: Tensor, pad: Tensor | None = None) -> Tensor:
        """Per-position outputs F after the last block and norm: `[B, T]` -> `[B, T, H]`.

        `pad [B, T]`: the padding mask (the ids there are not looked up), or None; the module
        docstring says what padding changes. Outputs at padded positions mean nothing.
        """
        if pad is None:
            x = self.item_embedding(items)  # [B, T, E]
        else:
            x = self.item_embedding(items.masked_fill(pad, 0))  # any id: padding is masked
        if self.input_proj is not None:
            x = self.input_proj(x)  # [B, T, H]
        if pad is None:
            x = x + self.pos_embedding.weight[: items.shape[1]]  # positions 0..T-1 from the start
            mask = None
        else:  # positions from each row's first item; padded positions get P_0, unused
            steps = torch.arange(items.shape[1], device=items.device)
            x = x + self.pos_embedding((steps - pad_counts(pad).unsqueeze(1)).clamp_(min=0))
            mask = attention_mask(pad)
        if self.input_norm is not None:
            x = self.input_norm(x)
        x = dropout(x, self.dropout, self.training)
        for block in self.blocks:
            x = block(x, mask)
        return self.final_norm(x)

    def scores(self, features: Tensor) -> Tensor:
        """`[..., H]` -> `[..., n_items]`: dot products with the (projected) item embeddings.

        With a projection, `F . (e_j W_p^T) = (F W_p) . e_j`: projecting F (O(H E) per row)
        rather than the whole item table (O(n_items H E) per call).
        """
        if self.input_proj is not None:
            features = features @ self.input_proj.weight  # [..., E]
        return F.linear(features, self.item_embedding.weight, self.output_bias)

    def forward(self, items: Tensor, users: Tensor | None = None) -> Tensor:
        """Logits for the item after the last position: `[B, T]` -> `[B, n_items]`."""
        pad = self._check(items)
        return self.scores(self.features(items, pad)[:, -1])

    def loss(self, items: Tensor, users: Tensor | None, target: Tensor) -> Tensor:
        """Mean cross-entropy of the last-position logits against `target` `[B]` -> scalar."""
        return F.cross_entropy(self(items, users).float(), target)

    def forward_all(self, items: Tensor, users: Tensor | None = None) -> Tensor:
        """Logits after every position (causal): `[B, T]` -> `[B, T, n_items]`."""
        pad = self._check(items)
        return self.scores(self.features(items, pad))

    def param_groups(self, weight_decay: float, user_weight_decay: float) -> list[dict]:
        """Adam groups: weight matrices -> `weight_decay`; biases, layer norms, embeddings -> 0.

        There is no user layer, so `user_weight_decay` is unused. Empty groups are dropped.
        """
        groups: dict[str, list[nn.Parameter]] = {"weights": [], "none": []}
        for name, p in self.named_parameters():
            groups["none" if param_kind(name, p) == "none" else "weights"].append(p)
        decay = {"weights": weight_decay, "none": 0.0}
        return [{"params": ps, "weight_decay": decay[k], "name": k}
                for k, ps in groups.items() if ps]

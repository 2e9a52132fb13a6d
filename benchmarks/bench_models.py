"""Training throughput and peak memory of the models against plain reference cells (not a test).

Exp 4 sizes: embedding 128, hidden 128, 30,000 items, L = 20 (19 inputs), batch 256, Adam,
cross-entropy on the last step; DNC 128 cells x word 64, 1 read head. CPU, 2 threads.

Throughput: each of our models and its reference are built in one subprocess and their training
steps interleaved (1 warm-up, then 5 timed steps each), so that load from other jobs on the
machine hits both alike; throughput = batch / median step time. Peak memory: one subprocess per
model running two training steps; its ru_maxrss (resident-set high-water mark of the whole
process) minus that of a subprocess that imports the same modules and builds nothing ("base").
The machine's matmul rate is a 2048^3 float32 torch.matmul timed in the same subprocess,
interleaved with the models' steps (median); a model's achieved rate counts the matmul FLOPs of
a training step (forward x 3).

References ("as the thesis notebook wrote them"): a Python loop over time calling a cell that
holds one nn.Linear per gate and per input (x and h separately); the DNC reference uses such a
GRU controller, one nn.Linear per interface part and the memory operations written directly
(masked lookup materialising `[B, R, N, W]`). `nn.GRU` is the plain fused-GRU model.

Every model is trained as `seqrec.train` trains it: fused Adam (`fused=True`, for the references
too) and `batch_loss`, which for our models is their fused output layer + cross-entropy
(`models/loss.py`) and for the references `nn.Linear` + `F.cross_entropy`, as the notebook.

`--features` times the recurrent part alone (output layer replaced by an identity, loss = mean
square of the last features): the part where the models differ, without the 30,000-way output
layer, cross-entropy and Adam update that every model shares.

Usage: .venv/bin/python benchmarks/bench_models.py [--only gru,dnc] [--steps 5] [--features]
On a GPU, at the thesis' sizes (batch 1000, embedding and hidden 1000; the DNC at L = 50):
    python benchmarks/bench_models.py --device cuda --sizes thesis --steps 5 [--compile]
(peak memory there is `torch.cuda.max_memory_allocated`).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from seqrec.config import ModelConfig
from seqrec.models import build_model
from seqrec.train import batch_loss


class Sizes(NamedTuple):
    """batch B, inputs T (= L - 1), embedding E, hidden H, items, users; DNC memory."""

    batch: int
    steps: int
    emb: int
    hidden: int
    items: int = 30_000
    users: int = 1_000
    cells: int = 128
    word: int = 64
    heads: int = 1


# exp 4's CPU sizes, and the thesis' (batch 1000, hidden 1000; the DNC at L = 50) for a GPU.
SIZES = {"exp4": Sizes(256, 19, 128, 128), "thesis": Sizes(1000, 19, 1000, 1000)}


def sizes_for(name: str, label: str) -> Sizes:
    sz = SIZES[label]
    return sz._replace(steps=49) if label == "thesis" and "dnc" in name else sz


OURS = ("gru", "user_gru", "dnc", "user_dnc")
REFS = {"gru": "ref_gru", "user_gru": "ref_user_gru", "dnc": "ref_dnc", "user_dnc": None}


# ---------------------------------------------------------------------------------------------
# Reference cells, thesis-notebook style: one Linear per gate, a Python loop over time

class RefGRUCell(nn.Module):
    def __init__(self, e: int, h: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.xr, self.xz, self.xn = nn.Linear(e, h), nn.Linear(e, h), nn.Linear(e, h)
        self.hr, self.hz, self.hn = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, h):
        r = torch.sigmoid(self.drop(self.xr(x)) + self.hr(h))
        z = torch.sigmoid(self.drop(self.xz(x)) + self.hz(h))
        n = torch.tanh(self.drop(self.xn(x)) + r * self.hn(h))
        return (1 - z) * n + z * h


class RefUserGRUCell(nn.Module):
    def __init__(self, e: int, h: int) -> None:
        super().__init__()
        self.att = nn.Linear(h + 2 * e, 1)
        self.xr, self.xz, self.xn = nn.Linear(e, h), nn.Linear(e, h), nn.Linear(e, h)
        self.un = nn.Linear(e, h, bias=False)
        self.hr, self.hz, self.hn = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        self.drop, self.udrop = nn.Dropout(0.2), nn.Dropout(0.5)

    def forward(self, x, u, h):
        a = torch.sigmoid(self.att(torch.cat([h, x, u], 1)))
        xa = (1 - a) * x
        r = torch.sigmoid(self.drop(self.xr(xa)) + self.hr(h))
        z = torch.sigmoid(self.drop(self.xz(xa)) + self.hz(h))
        k = torch.tanh(r * self.hn(h) + self.drop(self.xn(xa)) + self.udrop(self.un(a * u)))
        return (1 - z) * h + z * k


class RefRecurrent(nn.Module):
    """Embedding -> reference cell loop -> Linear to all items."""

    def __init__(self, kind: str, sz: Sizes) -> None:
        super().__init__()
        self.kind, self.hidden = kind, sz.hidden
        self.emb = nn.Embedding(sz.items, sz.emb)
        self.uemb = nn.Embedding(sz.users, sz.emb)
        cell = RefUserGRUCell if kind == "user" else RefGRUCell
        self.cell = cell(sz.emb, sz.hidden)
        self.out = nn.Linear(sz.hidden, sz.items)

    def forward(self, items, users):
        x, u = self.emb(items), self.uemb(users)
        h = x.new_zeros(items.shape[0], self.hidden)
        for t in range(items.shape[1]):
            h = self.cell(x[:, t], u[:, t], h) if self.kind == "user" else self.cell(x[:, t], h)
        return self.out(h)


class RefDNC(nn.Module):
    """Straightforward DNC: reference GRU controller, one Linear per interface part."""

    def __init__(self, sz: Sizes) -> None:
        super().__init__()
        self.sz = sz
        e, h, word, heads = sz.emb, sz.hidden, sz.word, sz.heads
        self.emb = nn.Embedding(sz.items, e)
        self.cell = RefGRUCell(e + heads * word, h)
        parts = dict(rk=heads * word, rs=heads, wk=word, ws=1, er=word, wv=word, fg=heads,
                     ag=1, wg=1, rm=3 * heads, rmask=heads * word, wmask=word, sf=heads,
                     sb=heads)
        self.iface = nn.ModuleDict({k: nn.Linear(h, v) for k, v in parts.items()})
        self.wc, self.wr = nn.Linear(h, h), nn.Linear(heads * word, h, bias=False)
        self.out = nn.Linear(h, sz.items)

    @staticmethod
    def content(mem, key, beta, mask):
        mm = mem.unsqueeze(1) * mask.unsqueeze(2)  # [B, R, N, W]
        km = (key * mask).unsqueeze(2)  # [B, R, 1, W]
        cos = (mm * km).sum(-1) / (mm.norm(dim=-1) * km.norm(dim=-1) + 1e-6)
        return torch.softmax(beta.unsqueeze(-1) * cos, -1)

    def forward(self, items, users):
        b = items.shape[0]
        CELLS, WORD, HEADS = self.sz.cells, self.sz.word, self.sz.heads  # noqa: N806
        x = self.emb(items)
        mem = x.new_zeros(b, CELLS, WORD)
        usage, prec, ww = (x.new_zeros(b, CELLS) for _ in range(3))
        link = x.new_zeros(b, CELLS, CELLS)
        rw = x.new_zeros(b, HEADS, CELLS)
        r = x.new_zeros(b, HEADS, WORD)
        h = x.new_zeros(b, self.sz.hidden)
        eye = torch.eye(CELLS, device=x.device)
        for t in range(items.shape[1]):
            h = self.cell(torch.cat([x[:, t], r.reshape(b, -1)], 1), h)
            i = {k: lin(h) for k, lin in self.iface.items()}
            one = lambda v: 1 + F.softplus(v)  # noqa: E731
            fg = torch.sigmoid(i["fg"])
            psi = torch.prod(1 - fg.unsqueeze(-1) * rw, 1)
            usage = (usage + ww.detach() * (1 - usage)) * psi  # no gradient through ww
            su, order = torch.sort(1e-6 + (1 - 1e-6) * usage, 1)
            cp = torch.cumprod(torch.cat([torch.ones_like(su[:, :1]), su[:, :-1]], 1), 1)
            alloc = torch.zeros_like(su).scatter(1, order, (1 - su) * cp)
            cw = self.content(mem, i["wk"].unsqueeze(1), one(i["ws"]),
                              torch.sigmoid(i["wmask"]).unsqueeze(1))[:, 0]
            ga, gw = torch.sigmoid(i["ag"]), torch.sigmoid(i["wg"])
            ww = gw * (ga * alloc + (1 - ga) * cw)
            er, wv = torch.sigmoid(i["er"]), i["wv"]
            mem = mem * psi.unsqueeze(-1) * (1 - ww.unsqueeze(-1) * er.unsqueeze(1)) \
                + ww.unsqueeze(-1) * wv.unsqueeze(1)
            link = ((1 - ww.unsqueeze(2) - ww.unsqueeze(1)) * link
                    + ww.unsqueeze(2) * prec.unsqueeze(1)) * (1 - eye)
            prec = (1 - ww.sum(1, keepdim=True)) * prec + ww
            fwd, bwd = rw @ link.transpose(1, 2), rw @ link
            sf, sb = one(i["sf"]).unsqueeze(-1), one(i["sb"]).unsqueeze(-1)
            # (d + eps)^s / sum (d + eps)^s, with d + eps scaled to a row maximum of 1 first
            fwd = fwd + 1e-6
            fwd = (fwd / fwd.amax(-1, keepdim=True)) ** sf
            fwd = fwd / fwd.sum(-1, keepdim=True)
            bwd = bwd + 1e-6
            bwd = (bwd / bwd.amax(-1, keepdim=True)) ** sb
            bwd = bwd / bwd.sum(-1, keepdim=True)
            c = self.content(mem, i["rk"].view(b, HEADS, WORD), one(i["rs"]),
                             torch.sigmoid(i["rmask"]).view(b, HEADS, WORD))
            pi = torch.softmax(i["rm"].view(b, HEADS, 3), -1)
            rw = pi[..., :1] * bwd + pi[..., 1:2] * c + pi[..., 2:] * fwd
            r = rw @ mem
            y = self.wc(h) + self.wr(r.reshape(b, -1))
        return self.out(y)


class TorchGRU(nn.Module):
    """The plain fused nn.GRU model (dropout on the embedding input)."""

    def __init__(self, sz: Sizes) -> None:
        super().__init__()
        self.emb = nn.Embedding(sz.items, sz.emb)
        self.drop = nn.Dropout(0.2)
        self.rnn = nn.GRU(sz.emb, sz.hidden, batch_first=True)
        self.out = nn.Linear(sz.hidden, sz.items)

    def forward(self, items, users):
        return self.out(self.rnn(self.drop(self.emb(items)))[0][:, -1])


def build(name: str, sz: Sizes) -> nn.Module:
    if name in OURS:
        cfg = ModelConfig(name=name, embedding_size=sz.emb, hidden_size=sz.hidden,
                          memory_cells=sz.cells, word_size=sz.word, read_heads=sz.heads)
        return build_model(cfg, sz.items, sz.users)
    return {"ref_gru": lambda: RefRecurrent("plain", sz),
            "ref_user_gru": lambda: RefRecurrent("user", sz),
            "ref_dnc": lambda: RefDNC(sz), "nn_gru": lambda: TorchGRU(sz)}[name]()


# ---------------------------------------------------------------------------------------------
# FLOPs of one training step (matmuls only; backward ~ 2x forward)

def train_flops(name: str, sz: Sizes) -> float:
    B, T, E, H = sz.batch, sz.steps, sz.emb, sz.hidden  # noqa: N806
    CELLS, WORD, HEADS = sz.cells, sz.word, sz.heads  # noqa: N806
    out = 2 * B * H * sz.items
    gru = 2 * B * T * (E * 3 * H + H * 3 * H)
    if name in ("gru", "ref_gru", "nn_gru"):
        fwd = gru + out
    elif name in ("user_gru", "ref_user_gru"):
        fwd = gru + 2 * B * T * (E * (H + 2) + H) + out
    else:  # DNC: controller on [x; r], interface, output mix, memory products
        iface = 2 * WORD * HEADS + 2 * WORD + 3 * WORD + 6 * HEADS + 3
        ctrl = 2 * B * T * ((E + HEADS * WORD) * 3 * H + H * 3 * H)
        mix = 2 * B * T * (H * iface + H * H + HEADS * WORD * H)
        mem = 2 * B * T * (2 * (HEADS + 1) * CELLS * WORD + 2 * HEADS * CELLS * CELLS
                           + HEADS * CELLS * WORD)
        fwd = ctrl + mix + mem + out
    return 3.0 * fwd


# ---------------------------------------------------------------------------------------------
# Measurement

def make_step(name: str, features: bool, label: str, device: torch.device, compiled: bool):
    """A closure running one training step of model `name` at sizes `label` on `device`."""
    sz = sizes_for(name, label)
    model = build(name, sz).to(device).train()
    if features:  # recurrent part only: no output layer, a cheap loss on the last features
        setattr(model, "output" if hasattr(model, "output") else "out", nn.Identity())
    groups = model.param_groups(0.0, 0.01) if hasattr(model, "param_groups") else \
        model.parameters()
    opt = torch.optim.Adam(groups, lr=1e-3, fused=True)  # the trainer's Adam, for every model
    g = torch.Generator().manual_seed(0)
    items = torch.randint(0, sz.items, (sz.batch, sz.steps), generator=g).to(device)
    users = torch.randint(0, sz.users, (sz.batch, sz.steps), generator=g).to(device)
    target = torch.randint(0, sz.items, (sz.batch,), generator=g).to(device)
    # torch.compile for our models only, as `train.compile=true` does (the whole model).
    forward = torch.compile(model) if compiled and name in OURS else model

    def step() -> None:
        if features:
            loss = forward(items, users).square().mean()
        elif hasattr(model, "loss"):  # the trainer's loss: our models' fused output layer
            loss = batch_loss(model, forward, items, users, target)
        else:  # the references, as the notebook: nn.Linear logits and F.cross_entropy
            loss = F.cross_entropy(forward(items, users), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_group(names: list[str], steps: int, features: bool, label: str,
                  device: torch.device, compiled: bool) -> dict:
    """Throughput of several models in one process, their steps interleaved (A B A B ...) with
    a large matmul, so that a change of machine load during the run hits all of them and the
    matmul rate alike; "matmul" in the result is that rate (GFLOP/s, median)."""
    if device.type == "cpu":
        torch.set_num_threads(2)
    torch.manual_seed(0)
    runs = {n: make_step(n, features, label, device, compiled) for n in names}
    size = 2048 if device.type == "cpu" else 8192
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    runs["matmul"] = lambda: torch.matmul(a, b)
    times: dict[str, list[float]] = {n: [] for n in runs}
    for i in range(1 + steps):
        for n, step in runs.items():
            sync(device)
            t0 = time.perf_counter()
            step()
            sync(device)
            if i >= 1:
                times[n].append(time.perf_counter() - t0)
    out = {"matmul": 2 * size ** 3 / statistics.median(times["matmul"]) / 1e9}
    for n in names:
        sz = sizes_for(n, label)
        med = statistics.median(times[n])
        flops = train_flops(n, sz) - (3.0 * 2 * sz.batch * sz.hidden * sz.items
                                      if features else 0.0)
        out[n] = {"seq_per_s": sz.batch / med, "gflops": flops / med / 1e9,
                  "runs_s": [round(t, 4) for t in times[n]]}
    return out


def measure_memory(name: str, features: bool, label: str, device: torch.device,
                   compiled: bool) -> dict:
    """Peak memory of a process that builds `name` and runs two training steps (Adam's state
    is allocated in the first): ru_maxrss on CPU, `max_memory_allocated` on CUDA."""
    if device.type == "cpu":
        torch.set_num_threads(2)
    if name != "base":
        step = make_step(name, features, label, device, compiled)
        step()
        step()
    if device.type == "cuda":
        return {"peak_mb": torch.cuda.max_memory_allocated(device) / 2 ** 20}
    return {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_subprocess(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--group", help="internal: time these models, interleaved")
    parser.add_argument("--memory", help="internal: peak memory of one model")
    parser.add_argument("--only", default=",".join(OURS), help="comma list of our models")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--features", action="store_true",
                        help="time the recurrent part only (output layer replaced by identity)")
    parser.add_argument("--sizes", choices=sorted(SIZES), default="exp4",
                        help="exp4 (CPU default) or thesis (batch 1000, hidden 1000, DNC L 50)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile our models (as train.compile=true does)")
    args = parser.parse_args()
    device = torch.device(args.device)
    common = ["--sizes", args.sizes, "--device", args.device]
    common += ["--features"] if args.features else []
    common += ["--compile"] if args.compile else []
    if args.group:
        print(json.dumps(measure_group(args.group.split(","), args.steps, args.features,
                                       args.sizes, device, args.compile)))
        return
    if args.memory:
        print(json.dumps(measure_memory(args.memory, args.features, args.sizes, device,
                                        args.compile)))
        return
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else "CPU, 2 threads")
    base = run_subprocess("--memory", "base", *common)["peak_mb"]
    print(f"{where}; sizes {args.sizes} {SIZES[args.sizes]}; compile {args.compile}; base "
          f"memory {base:.0f} MB; matmul rate = a square float32 torch.matmul (2048 on CPU, "
          "8192 on CUDA) timed interleaved with each group's steps")
    if args.features:
        print("recurrent part only (no output layer, no cross-entropy)")
    print("| config | seq/s | vs reference | GFLOP/s | matmul rate (GFLOP/s) | of matmul rate "
          "| peak memory - base (MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for ours in args.only.split(","):
        group = [ours] + ([REFS[ours]] if REFS.get(ours) else [])
        group += ["nn_gru"] if ours == "gru" else []
        res = run_subprocess("--group", ",".join(group), "--steps", str(args.steps), *common)
        rate = res["matmul"]
        for n in group:
            r = res[n]
            mem = run_subprocess("--memory", n, *common)["peak_mb"] - base
            ref = REFS.get(n)
            ratio = f"{r['seq_per_s'] / res[ref]['seq_per_s']:.2f}x" if ref in res else ""
            print(f"| {n} | {r['seq_per_s']:.0f} | {ratio} | {r['gflops']:.1f} | {rate:.0f} | "
                  f"{r['gflops'] / rate:.0%} | {mem:.0f} |", flush=True)


if __name__ == "__main__":
    main()

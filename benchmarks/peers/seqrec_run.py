"""One seqrec run on a saved split, in its own process (so its peak memory is its own).

    .venv/bin/python benchmarks/peers/seqrec_run.py MODE --split split.npz --model NAME ...

MODE `train`: `seqrec.train.train_run` exactly as `seqrec run` trains (checkpoint per epoch,
validation loss per epoch, early stopping with `patience`), with `retrain=false`: the weights
of the best validation epoch are tested, as RecBole does (the thesis' protocol would retrain
on train + val for the kept epochs). MODE `step`: the training step alone on real training
batches (`windows.batch`, `batch_loss`, backward, the trainer's fused Adam), timed after
warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from memory import peak_rss_bytes, rss_bytes
from runner_args import add_shared_arguments

from seqrec.config import apply_overrides, profile
from seqrec.data.windows import Split
from seqrec.models import build_model
from seqrec.record import RunLabel
from seqrec.train import train_run
from seqrec.train.epoch import batch_loss, epoch_order, make_optimizer, seed_everything


def settings(args: argparse.Namespace) -> dict:
    """The `--set` overrides of this run (thesis profile underneath)."""
    embedding = args.hidden if args.model == "sasrec" else args.embedding
    return {
        "split": "leave_one_out", "seq_len": args.seq_len, "chunks": 1,
        "threshold": args.threshold, "name": args.model, "embedding_size": embedding,
        "hidden_size": args.hidden, "input_dropout": args.dropout,
        "attention_heads": 2, "attention_layers": 2, "sasrec_inner_size": args.inner,
        "sasrec_activation": "gelu", "sasrec_norm": args.sasrec_norm,
        "batch_size": args.batch_size, "lr": args.lr,
        "epochs": args.epochs, "patience": args.patience, "retrain": False,
        "eval_batch_size": args.eval_batch_size, "seed": args.seed, "ks": (10, 20),
    }


def recbole_init(model: torch.nn.Module) -> torch.nn.Module:
    """RecBole's SASRec initialisation on a seqrec model (`--init recbole`, a diagnostic probe
    of why seqrec's SASRec learns slower, docs/peers.md): every linear and embedding weight
    normal(0, 0.02), linear biases 0, layer norms 1 and 0. seqrec's own rule: embeddings
    uniform(-0.1, 0.1), linear layers at PyTorch's default."""
    nn = torch.nn
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def train(args: argparse.Namespace, split: Split) -> dict:
    cfg = apply_overrides(profile("thesis"), settings(args))
    factory = None  # the model registry's, as `seqrec run`
    if args.init == "recbole":
        def factory(n_items: int, n_users: int) -> torch.nn.Module:
            return recbole_init(build_model(cfg.model, n_items, n_users))
    device = torch.device("cpu")
    label = RunLabel(run_id=f"peers-{args.model}-{args.seed}", experiment="peers",
                     model=args.model, seed=args.seed)
    rss_before = rss_bytes()
    with tempfile.TemporaryDirectory(prefix="seqrec-peers-") as run_dir:
        record = train_run(split, cfg, Path(run_dir), device, label=label, progress=False,
                           model_factory=factory)
    if not record.ok:
        raise RuntimeError(record.reason)
    rows = [h for h in record.history if h["stage"] == "a"]
    seed_everything(args.seed)
    model = build_model(cfg.model, split.n_items, split.n_users)
    return {
        "tool": "seqrec", "model": args.model, "seed": args.seed, "dropout": args.dropout,
        "init": args.init, "sasrec_norm": args.sasrec_norm,
        "metrics": {k: v for k, v in record.metrics.items() if k.split("@")[1] in ("10", "20")},
        "epochs_trained": len(rows), "best_epoch": record.epochs_kept,
        "val_losses": [h["val_loss"] for h in rows],
        "epoch_seconds": [h["seconds"] for h in rows], "train_samples": len(split.train),
        "params": int(sum(p.numel() for p in model.parameters())),
        "n_items": split.n_items, "n_test": record.n_test_windows,
        "peak_rss_bytes": peak_rss_bytes(), "rss_before_training_bytes": rss_before,
        "seconds": record.seconds, "threads": torch.get_num_threads(),
    }


def step(args: argparse.Namespace, split: Split) -> dict:
    """Each of `args.variants` ("MODEL:DROPOUT", ...) in turn: warm-up, then timed steps."""
    windows = split.train.to("cpu")
    order = epoch_order(len(windows), args.seed, "a", 0)
    out = {}
    for variant in args.variants.split(","):
        name, dropout = variant.split(":")
        args.model, args.dropout = name, float(dropout)
        cfg = apply_overrides(profile("thesis"), settings(args))
        seed_everything(args.seed)
        model = build_model(cfg.model, split.n_items, split.n_users)
        optimizer = make_optimizer(model, cfg.train)
        model.train()
        times = []
        # Batches gathered beforehand: RecBole's come collated from its DataLoader, and the
        # step alone is forward, loss, backward and the optimiser.
        batches = [windows.batch(order[i * args.batch_size: (i + 1) * args.batch_size])
                   for i in range(args.warmup + args.steps)]
        for i, (items, users, target) in enumerate(batches):
            t0 = time.perf_counter()
            loss = batch_loss(model, model, items, users, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        fused = getattr(model, "uses_fused", None)
        out[f"{name}:{args.dropout:g}"] = {
            "step_seconds": statistics.median(times), "step_times": times,
            "fused_gru": fused() if fused else None,
            "params": int(sum(p.numel() for p in model.parameters()))}
    return {"tool": "seqrec", "variants": out, "batch": args.batch_size,
            "n_items": split.n_items, "peak_rss_bytes": peak_rss_bytes(),
            "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=("train", "step"))
    p.add_argument("--split", required=True)
    p.add_argument("--model", default="gru", choices=("pop", "gru", "sasrec"))
    p.add_argument("--seq-len", type=int, default=50)
    p.add_argument("--threshold", type=int, default=5)
    p.add_argument("--patience", type=int, default=2)
    add_shared_arguments(p)
    p.add_argument("--variants", default="gru:0,gru:0.2,sasrec:0.2",
                   help="step mode: MODEL:DROPOUT, ...")
    p.add_argument("--init", choices=("seqrec", "recbole"), default="seqrec",
                   help="train mode: the model's own initialisation, or RecBole's (a probe)")
    p.add_argument("--sasrec-norm", choices=("pre", "post"), default="pre",
                   help="SASRec's layer norms: the paper's pre-norm, or RecBole's post-norm")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    split = Split.load(args.split)
    result = {"train": train, "step": step}[args.mode](args, split)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

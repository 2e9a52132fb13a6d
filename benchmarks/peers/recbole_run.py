"""One RecBole 1.2.1 run on seqrec's split, in RecBole's own environment (`venv.py`).

    peers_venv/bin/python recbole_run.py MODE --data DIR --model NAME [...] --out FILE.json

MODE `train`: RecBole's own `Trainer.fit` with early stopping on the validation metric, then
`Trainer.evaluate(test, load_best_model=True)` (the best-validation checkpoint), as
`run_recbole` does minus its logging set-up. Besides RecBole's own metrics it ranks every test
target with seqrec's rule (conservative ties: rank = number of items scoring at least the
target's score, `[PAD]` excluded), so the two tools' figures can also be compared under one
tie policy (it matters for Pop, whose scores tie often).
MODE `step`: the training step alone (forward, loss, backward, optimiser step) on real
training batches, timed with `time.perf_counter` after warm-up.
MODE `dump`: the samples RecBole will train, validate and test on, mapped back to seqrec's
ids (user, history, target per row), to check that both tools see the same samples.

Pop is a general (non-sequential) model in RecBole; here it is given the same
`SequentialDataset` and the sequential full-sort evaluation (no history masking) as the other
two, so that its test samples are the same rows. Everything runs in the current folder
(RecBole writes `saved/` and `log_tensorboard/` there).
"""

from __future__ import annotations

import shims  # noqa: F401 - before RecBole: numpy/torch compatibility (see shims.py)

# isort: split

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from memory import peak_rss_bytes, rss_bytes
from recbole.config import Config
from recbole.data import data_preparation
from recbole.data.dataset import SequentialDataset
from recbole.trainer import TraditionalTrainer, Trainer
from recbole.utils import ModelType, get_model, init_seed
from runner_args import add_shared_arguments

get_model("GRU4Rec")  # imports every sequential model, as any RecBole run does
RECBOLE_ANOMALY = torch.is_anomaly_enabled()  # what that import left set (see `anomaly`)

SEQUENTIAL = ("GRU4Rec", "SASRec")


def make_config(args: argparse.Namespace, model: str, dropout: float) -> Config:
    """RecBole's Config for `model` on the pre-split files, with the shared settings."""
    params = {
        "data_path": str(Path(args.data).resolve()), "dataset": args.name,
        "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": None,
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"], "item": ["item_id"]},
        "alias_of_item_id": ["item_id_list"],  # histories and targets share one id space
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user",
                      "mode": "full"},
        "metrics": ["Recall", "MRR", "NDCG"], "topk": [10, 20], "valid_metric": "MRR@20",
        "metric_decimal_place": 6, "train_neg_sample_args": None, "loss_type": "CE",
        "train_batch_size": args.batch_size, "eval_batch_size": args.eval_batch_size,
        "learner": "adam", "learning_rate": args.lr, "weight_decay": 0.0,
        "epochs": args.epochs, "stopping_step": args.stopping_step, "eval_step": 1,
        "seed": args.seed, "reproducibility": True, "device": "cpu", "use_gpu": False,
        "worker": 0, "show_progress": False, "state": "WARNING", "checkpoint_dir": "saved",
    }
    if model == "GRU4Rec":
        params.update(embedding_size=args.embedding, hidden_size=args.hidden, num_layers=1,
                      dropout_prob=dropout)
    elif model == "SASRec":
        params.update(hidden_size=args.hidden, inner_size=args.inner, n_layers=2, n_heads=2,
                      hidden_dropout_prob=dropout, attn_dropout_prob=dropout,
                      hidden_act="gelu")
    config = Config(model=model, dataset=args.name, config_dict=params)
    if model not in SEQUENTIAL:  # Pop: the same sequential samples and evaluation
        config["MODEL_TYPE"] = ModelType.SEQUENTIAL
    return config


def build(args: argparse.Namespace, model: str | None = None, dropout: float | None = None):
    """Config, dataset and the three dataloaders."""
    config = make_config(args, model or args.model,
                         args.dropout if dropout is None else dropout)
    init_seed(config["seed"], config["reproducibility"])
    dataset = SequentialDataset(config)
    train, valid, test = data_preparation(config, dataset)
    return config, dataset, train, valid, test


def new_model(config, train_data, anomaly_setting: str) -> torch.nn.Module:
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    anomaly(anomaly_setting)
    return model


def anomaly(setting: str) -> None:
    """RecBole 1.2.1 turns on autograd's anomaly detection for the whole process when its
    sequential models are imported (`recbole/model/sequential_recommender/sine.py` calls
    `torch.autograd.set_detect_anomaly(True)` at import; `get_model` imports them all). It
    checks every backward output for NaN and costs about half of GRU4Rec's CPU step here.
    `shipped` leaves it as RecBole sets it, `off` turns it off (the numbers are the same:
    it only checks)."""
    torch.autograd.set_detect_anomaly(setting == "shipped")


def id_tokens(dataset) -> tuple[np.ndarray, np.ndarray]:
    """RecBole id -> seqrec id for users and items (-1 for `[PAD]`)."""
    def table(field: str) -> np.ndarray:
        tokens = dataset.field2id_token[field]
        return np.array([-1] + [int(t) for t in tokens[1:]], dtype=np.int64)
    return table("user_id"), table("item_id")


def dump(args: argparse.Namespace) -> dict:
    config, dataset, train, valid, test = build(args)
    users, items = id_tokens(dataset)
    arrays, sizes = {}, {}
    for part, loader in (("train", train), ("valid", valid), ("test", test)):
        inter = loader._dataset.inter_feat
        hist = inter["item_id_list"].numpy()
        arrays[f"{part}_user"] = users[inter["user_id"].numpy()]
        arrays[f"{part}_target"] = items[inter["item_id"].numpy()]
        arrays[f"{part}_length"] = inter["item_length"].numpy()
        arrays[f"{part}_history"] = items[hist]  # right-padded with -1 ([PAD])
        sizes[part] = int(hist.shape[0])
    np.savez(args.dump, **arrays)
    return {"rows": sizes, "n_items": int(dataset.item_num), "n_users": int(dataset.user_num),
            "history_width": int(arrays["train_history"].shape[1])}


def conservative_metrics(model, loader, ks=(10, 20)) -> dict:
    """Recall@k, MRR@k, NDCG@k of the test targets with seqrec's rule (ties count against)."""
    model.eval()
    ranks = []
    with torch.no_grad():
        for batch in loader:
            interaction = batch[0]
            scores = model.full_sort_predict(interaction).view(len(interaction), -1).float()
            scores[:, 0] = -torch.inf
            target = interaction["item_id"]
            t = scores.gather(1, target.unsqueeze(1))
            ranks.append((scores >= t).sum(1))
    r = torch.cat(ranks).double()
    out = {}
    for k in ks:
        hit = r <= k
        out[f"recall@{k}"] = float(hit.double().mean())
        out[f"mrr@{k}"] = float((hit / r).mean())
        out[f"ndcg@{k}"] = float((hit / torch.log2(1 + r)).mean())
    return out


def train(args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    config, dataset, train_data, valid_data, test_data = build(args)
    model = new_model(config, train_data, args.anomaly)
    rss_before = rss_bytes()
    trainer_class = Trainer if args.model in SEQUENTIAL else TraditionalTrainer
    trainer = trainer_class(config, model)
    epoch_seconds, valid_scores = [], []
    train_epoch = trainer._train_epoch

    def timed_epoch(*a, **k):
        t0 = time.perf_counter()
        loss = train_epoch(*a, **k)
        epoch_seconds.append(time.perf_counter() - t0)
        return loss

    trainer._train_epoch = timed_epoch
    best_valid, _ = trainer.fit(train_data, valid_data, saved=True, show_progress=False,
                                callback_fn=lambda epoch, score: valid_scores.append(score))
    result = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    metrics = {k.lower(): float(v) for k, v in result.items()}
    # RecBole counts an equal score as an improvement (`early_stopping`: value >= best), so
    # the checkpoint it tests is the last epoch with the best validation score.
    best = max(valid_scores) if valid_scores else None
    best_epoch = max((i for i, s in enumerate(valid_scores) if s == best), default=0)
    return {
        "tool": "recbole", "model": args.model, "seed": args.seed, "dropout": args.dropout,
        "anomaly_detection": args.anomaly, "recbole_turned_anomaly_on": RECBOLE_ANOMALY,
        "metrics": metrics, "metrics_conservative": conservative_metrics(trainer.model,
                                                                        test_data),
        "epochs_trained": len(epoch_seconds), "best_epoch": best_epoch + 1,
        "valid_scores": valid_scores, "best_valid": float(best_valid),
        "epoch_seconds": epoch_seconds, "train_samples": int(len(train_data._dataset)),
        "params": int(sum(p.numel() for p in trainer.model.parameters())),
        "n_items": int(dataset.item_num), "n_test": int(len(test_data._dataset)),
        "peak_rss_bytes": peak_rss_bytes(), "rss_before_training_bytes": rss_before,
        "seconds": time.perf_counter() - start, "threads": torch.get_num_threads(),
    }


def step(args: argparse.Namespace) -> dict:
    """Each of `args.variants` ("MODEL:DROPOUT", ...) in turn: warm-up, then timed steps."""
    variants = [(v.split(":")[0], float(v.split(":")[1])) for v in args.variants.split(",")]
    _, dataset, train_data, _, _ = build(args, *variants[0])
    batches = []
    for batch in train_data:
        batches.append(batch)
        if len(batches) == args.warmup + args.steps:
            break
    out = {}
    for name, dropout in variants:
        config = make_config(args, name, dropout)
        model = new_model(config, train_data, args.anomaly)
        trainer = Trainer(config, model)  # its optimiser, exactly as `fit` builds it
        model.train()
        row = {"params": int(sum(p.numel() for p in model.parameters()))}
        # As shipped (anomaly detection on, see `anomaly`) and without it, in turn.
        for key, on in (("shipped", True), ("", False)):
            torch.autograd.set_detect_anomaly(on)
            times = []
            for i, interaction in enumerate(batches):
                t0 = time.perf_counter()
                trainer.optimizer.zero_grad()
                loss = model.calculate_loss(interaction)
                loss.backward()
                trainer.optimizer.step()
                if i >= args.warmup:
                    times.append(time.perf_counter() - t0)
            row[f"step_seconds{'_' + key if key else ''}"] = statistics.median(times)
            row[f"step_times{'_' + key if key else ''}"] = times
        out[f"{name}:{dropout:g}"] = row
        anomaly(args.anomaly)
    return {"tool": "recbole", "variants": out, "recbole_turned_anomaly_on": RECBOLE_ANOMALY,
            "batch": int(len(batches[0])),
            "n_items": int(dataset.item_num), "peak_rss_bytes": peak_rss_bytes(),
            "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=("train", "step", "dump"))
    p.add_argument("--data", required=True, help="RecBole data_path (holds NAME/)")
    p.add_argument("--name", default="peers")
    p.add_argument("--model", default="GRU4Rec", choices=("Pop", "GRU4Rec", "SASRec"))
    p.add_argument("--max-len", type=int, default=49, help="MAX_ITEM_LIST_LENGTH (L - 1)")
    p.add_argument("--stopping-step", type=int, default=1)
    add_shared_arguments(p)
    p.add_argument("--variants", default="GRU4Rec:0,GRU4Rec:0.2,SASRec:0.2",
                   help="step mode: MODEL:DROPOUT, ...")
    p.add_argument("--anomaly", choices=("off", "shipped"), default="off",
                   help="autograd anomaly detection, which RecBole turns on at import")
    p.add_argument("--dump", default="samples.npz")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    sys.argv = sys.argv[:1]  # RecBole's Config reads `--key=value` from the command line
    warnings.filterwarnings("ignore", category=FutureWarning)  # pandas on RecBole's code
    torch.set_num_threads(args.threads)
    result = {"train": train, "step": step, "dump": dump}[args.mode](args)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""docs/peers.md's generated part, from the JSON results `bench_peers.py` keeps.

Only the text between the markers BEGIN and END is generated; the rest of docs/peers.md is
written by hand and kept as it is.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

BEGIN = "<!-- bench_peers: generated from here -->"
END = "<!-- bench_peers: generated up to here -->"
MODELS = (("pop", "Pop"), ("gru", "GRU4Rec"), ("sasrec", "SASRec"))
METRICS = ("recall@10", "recall@20", "mrr@20", "ndcg@20")


def _runs(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((folder / "runs").glob("*.json"))
            if p.name != "samples.json"]


def _mean_sd(values: list[float], digits: int = 4) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _mb(b: float) -> str:
    return f"{b / 2**20:,.0f}"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(x: float | None, digits: int = 3, suffix: str = "") -> str:
    return "-" if x is None else f"{x:.{digits}f}{suffix}"


def _data_lines(folder: Path) -> list[str]:
    info = json.loads((folder / "data.json").read_text())
    s, syn = info["summary"], info["synth"]
    w = s["windows"]
    lines = [f"Generated log: `SynthConfig(n_rows={syn['n_rows']:,}, n_users={syn['n_users']:,}, "
             f"n_artists={syn['n_artists']:,}, n_tracks={syn['n_tracks']:,}, seed=0)`, "
             f"{info['rows_read']:,} plays; `split=leave_one_out`, `seq_len=50`, "
             f"`threshold={info['data']['threshold']}`, one chunk: {s['n_items']:,} items, "
             f"{s['n_users']:,} users, {w['train']:,} train / {w['val']:,} validation / "
             f"{w['test']:,} test samples (dropped as unseen: validation "
             f"{s['dropped_unseen']['val']}, test {s['dropped_unseen']['test']})."]
    check_path = folder / "runs" / "samples.json"
    if check_path.exists():
        c = json.loads(check_path.read_text())
        parts = c["parts"]
        rows = ", ".join(f"{p} {v['rows']['recbole']:,}" for p, v in parts.items())
        if c["equal"]:
            lines.append(
                f"Split handed over: RecBole's `benchmark_filename` files were read back by "
                f"RecBole itself ({rows} rows; history width {c['recbole']['history_width']}"
                f" = `MAX_ITEM_LIST_LENGTH` 49). In every row of every part the user, the "
                f"target, the history length and every history item equal seqrec's window "
                f"(its padding removed), in the same order; RecBole's catalogue is "
                f"{c['recbole']['n_items']:,} = seqrec's {c['seqrec_n_items']:,} items + "
                f"`[PAD]`. **The samples agree exactly.**")
        else:
            lines.append(f"Split handed over: **the samples DIFFER**: {json.dumps(parts)}; "
                         f"RecBole items {c['recbole']['n_items']}, seqrec "
                         f"{c['seqrec_n_items']}.")
    return lines


def _accuracy(runs: list[dict], epochs: int | None) -> list[str]:
    head = ("| model | tool | seeds | " + " | ".join(m.replace("@", "@") for m in METRICS)
            + " | R@20 / MRR@20, ties against | epochs trained | best epoch | s / epoch "
            "| samples / s | peak RSS MB | params |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s_model, r_model in MODELS:
        for tool, name in (("seqrec", s_model), ("recbole", r_model)):
            rs = [r for r in runs if r.get("key", "").startswith(f"train-{tool}-{name}-")
                  and (r["dropout"] > 0 or name.lower() == "pop")]
            if not rs:
                continue
            ms = [" | ".join(_mean_sd([r["metrics"][m] for r in rs]) for m in METRICS)]
            cons = "same rule" if tool == "seqrec" else (
                _mean_sd([r["metrics_conservative"]["recall@20"] for r in rs]) + " / "
                + _mean_sd([r["metrics_conservative"]["mrr@20"] for r in rs]))
            ep = [r["epochs_trained"] for r in rs]
            best = [r["best_epoch"] for r in rs]
            # Counting baselines: one pass over the counts, not an epoch of training.
            counted = s_model == "pop"
            sec = None if counted else _median([s for r in rs for s in r["epoch_seconds"]])
            rate = rs[0]["train_samples"] / sec if sec else None
            best = ["-" if b is None else b for b in best]
            rss = _median([r["peak_rss_bytes"] for r in rs])
            lines.append(
                f"| {s_model} | {tool} `{name}` | {len(rs)} | {ms[0]} | {cons} | "
                f"{', '.join(map(str, ep))} | {', '.join(map(str, best))} | "
                f"{_fmt(sec, 1)} | {_fmt(rate, 0)} | {_mb(rss)} | {rs[0]['params']:,} |")
    return lines


def _epoch_seconds(runs: list[dict], tool: str, name: str, dropout: str) -> float | None:
    """Median seconds per training epoch over every run of `tool`'s `name` at `dropout`."""
    prefix = f"train-{tool}-{name}-d{dropout}-"
    return _median([s for r in runs if r.get("key", "").startswith(prefix)
                    for s in r["epoch_seconds"]])


def _speed(runs: list[dict]) -> tuple[list[str], dict]:
    steps = {"seqrec": [r for r in runs if r.get("key", "").startswith("step-seqrec")],
             "recbole": [r for r in runs if r.get("key", "").startswith("step-recbole")]}
    head = ("| variant | params seqrec / RecBole | step s seqrec | step s RecBole "
            "| step: seqrec x RecBole | per-repeat ratios | step s RecBole as shipped "
            "| step: seqrec x RecBole as shipped | s / epoch seqrec | s / epoch RecBole "
            "| epoch: seqrec x RecBole |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    pairs = (("gru", "GRU4Rec", "0", "GRU, no dropout (seqrec: fused `torch.gru`)"),
             ("gru", "GRU4Rec", "0.2", "GRU, dropout 0.2 (seqrec: hand-written recurrence)"),
             ("sasrec", "SASRec", "0.2", "SASRec, dropout 0.2"))
    headline = {}
    for s_model, r_model, d, label in pairs:
        s_runs = [r["variants"][f"{s_model}:{d}"] for r in steps["seqrec"]]
        r_runs = [r["variants"][f"{r_model}:{d}"] for r in steps["recbole"]]
        s_step = _median([v["step_seconds"] for v in s_runs])
        r_step = _median([v["step_seconds"] for v in r_runs])
        r_shipped = _median([v["step_seconds_shipped"] for v in r_runs
                             if "step_seconds_shipped" in v])
        per = [b["step_seconds"] / a["step_seconds"]
               for a, b in zip(s_runs, r_runs, strict=False)]
        ratio = r_step / s_step if s_step and r_step else None
        shipped = r_shipped / s_step if s_step and r_shipped else None
        s_ep, r_ep = _epoch_seconds(runs, "seqrec", s_model, d), _epoch_seconds(
            runs, "recbole", r_model, d)
        e_ratio = r_ep / s_ep if s_ep and r_ep else None
        params = (f"{s_runs[0]['params']:,} / {r_runs[0]['params']:,}" if s_runs and r_runs
                  else "-")
        lines.append(f"| {label} | {params} | {_fmt(s_step)} | {_fmt(r_step)} | "
                     f"{_fmt(ratio, 2, 'x')} | {', '.join(f'{x:.2f}' for x in per) or '-'} | "
                     f"{_fmt(r_shipped)} | {_fmt(shipped, 2, 'x')} | "
                     f"{_fmt(s_ep, 1)} | {_fmt(r_ep, 1)} | {_fmt(e_ratio, 2, 'x')} |")
        headline[(s_model, d)] = (ratio, e_ratio, shipped)
    return lines, headline


def _load_line(runs: list[dict]) -> str:
    loads = [r["load_before"][0] for r in runs if "load_before" in r]
    loads += [r["load_after"][0] for r in runs if "load_after" in r]
    if not loads:
        return ""
    first = min(r["finished"] for r in runs if "finished" in r)
    last = max(r["finished"] for r in runs if "finished" in r)
    return (f"1-minute load average at the start and end of each run: median "
            f"{statistics.median(loads):.2f}, range {min(loads):.2f}-{max(loads):.2f} "
            f"({len(runs)} runs finished between {first} and {last}).")


def _invocation_lines(meta: dict) -> list[str]:
    lines = []
    for inv in meta.get("invocations", []):
        idle = inv.get("idle_check", {})
        state = ("idle" if idle.get("idle") else
                 f"not idle after waiting (1-minute load {idle.get('load1', 0):.2f})"
                 if idle.get("idle") is False else
                 f"not waited for (1-minute load {idle.get('load1', 0):.2f})")
        lines.append(f"- `.venv/bin/python {inv['command']}` (started {inv['started']}; "
                     f"machine {state})")
    return lines


def generated(out: Path, sizes: list[str], args) -> str:
    meta_path = out / "machine.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    runs = {s: _runs(out / s) for s in sizes}
    threads = sorted({r["threads"] for rs in runs.values() for r in rs if "threads" in r})
    lines = [BEGIN, "", "## Results", "",
             f"Machine: {meta.get('platform', '')}, Python {meta.get('python', '')}, "
             f"{meta.get('cpus', '?')} CPUs, torch 2.13.0 (CPU) on both sides, "
             f"{'/'.join(map(str, threads)) or '?'} torch thread(s) per process. The runs "
             f"kept under {out.name}/ were made by:", ""]
    lines += _invocation_lines(meta)
    heads = []
    for size in sizes:
        folder = out / size
        runs = _runs(folder)
        trained = [r for r in runs if r.get("key", "").startswith("train-")]
        lines += ["", f"### {size} plays", ""]
        lines += _data_lines(folder)
        lines += ["", _load_line(runs), "",
                  "Accuracy on test (mean ± standard deviation over the seeds; RecBole's "
                  "own metrics, and in the next column RecBole's scores ranked by seqrec's "
                  "rule, ties counted against the model):", ""]
        if trained:
            lines += _accuracy(runs, args.epochs.get(size))
        else:
            lines.append("(no training run at this size yet)")
        speed, head = _speed(runs)
        lines += ["", "Speed (step: median over the repeats of each process' median step; "
                  "x: RecBole's time / seqrec's, so above 1 means seqrec is faster; epoch: "
                  "median over every epoch of every training run of the variant):", ""]
        lines += speed
        heads.append((size, head))
    lines += ["", "### Headline", ""]
    for size, head in heads:
        parts = []
        for (model, d), (step, epoch, shipped) in head.items():
            name = {"gru": "GRU", "sasrec": "SASRec"}[model] + f" (dropout {d})"
            parts.append(f"{name} step {_fmt(step, 2, 'x')} ({_fmt(shipped, 2, 'x')} against "
                         f"RecBole as shipped), epoch {_fmt(epoch, 2, 'x')}")
        lines.append(f"- {size}: seqrec against RecBole (anomaly detection off): "
                     + "; ".join(parts) + ".")
    lines += ["", END]
    return "\n".join(lines) + "\n"


def render(out: Path, sizes: list[str], args) -> str:
    """docs/peers.md with its generated part replaced (appended when it has none)."""
    doc = Path(__file__).resolve().parents[2] / "docs" / "peers.md"
    old = doc.read_text(encoding="utf-8") if doc.exists() else "# seqrec beside RecBole\n"
    new = generated(out, sizes, args)
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        return head + new + ("\n" + tail if tail else "")
    return old.rstrip("\n") + "\n\n" + new

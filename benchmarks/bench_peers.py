"""seqrec beside RecBole 1.2.1 on the same leave-one-out split (a benchmark, not a test).

    .venv/bin/python benchmarks/bench_peers.py [--sizes 100k,1m] [--seeds 3] [--write]

For each data size (seqrec's generated LastFM-format log, `seqrec.data.synthetic`):

1. seqrec prepares the split (`split=leave_one_out`, one chunk, `seq_len` 50) and writes it
   as RecBole atomic files (`peers/atomic.py`); RecBole reads them through its pre-split
   `benchmark_filename` mechanism. `recbole_run.py dump` then returns the samples RecBole
   actually trains, validates and tests on, and they are compared with seqrec's row by row.
2. The training step alone (forward, loss, backward, optimiser step; batch 256) of each
   variant, one process per tool and repeat, the tools' order alternating between repeats.
3. Training runs, one process each, the tools' order alternating between runs: seqrec's
   `pop`, `gru` and `sasrec` against RecBole's `Pop`, `GRU4Rec` and `SASRec`, for every seed,
   with early stopping on validation and the same maximum of epochs; seqrec with
   `retrain=false` (the best validation epoch is tested, as RecBole does). One more pair
   trains the GRU without dropout (the fused path) for its whole-epoch rate.

Every run's result is kept as JSON under `--out` (default bench_out/peers), so an interrupted
benchmark continues where it stopped; `--write` renders docs/peers.md from all results there
(sizes or seeds still missing are listed as such). The equal settings, and what cannot be made
equal, are in docs/peers.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import venv  # noqa: E402
from peers.atomic import compare_samples, write_atomic  # noqa: E402
from peers.report import render  # noqa: E402

from seqrec.config import DataConfig  # noqa: E402
from seqrec.data.source import DataRef, DataSource  # noqa: E402
from seqrec.data.synthetic import SynthConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "peers"
DOC = ROOT / "docs" / "peers.md"
SEQ_LEN = 50  # seqrec's window: 49 inputs and the target; RecBole MAX_ITEM_LIST_LENGTH 49
THRESHOLD = 5  # items played <= 5 times in the log are dropped (seqrec's step 1)
# About 100 plays per user, as LastFM-1K's heavy users have thousands; the catalogue grows
# with the log (about 5 and 20 thousand tracks before the threshold).
SIZES = {
    "100k": SynthConfig(seed=0, n_rows=100_000, n_users=1_000, n_artists=250, n_tracks=5_000),
    "1m": SynthConfig(seed=0, n_rows=1_000_000, n_users=10_000, n_artists=1_000,
                      n_tracks=20_000),
    "tiny": SynthConfig(seed=0, n_rows=20_000, n_users=200, n_artists=100, n_tracks=2_000),
}
# (seqrec model, RecBole model, dropout) pairs trained for accuracy, per seed.
PAIRS = (("pop", "Pop", 0.0), ("gru", "GRU4Rec", 0.2), ("sasrec", "SASRec", 0.2))
FUSED_PAIR = ("gru", "GRU4Rec", 0.0)  # one seed: the fused GRU's whole-epoch rate
STEP_VARIANTS = (("gru", "GRU4Rec", 0.0), ("gru", "GRU4Rec", 0.2), ("sasrec", "SASRec", 0.2))


def load() -> tuple[float, float, float]:
    return os.getloadavg()


def others_busy() -> list[str]:
    """Python processes on the machine that are not this benchmark's."""
    out = subprocess.run(["pgrep", "-fa", "python"], capture_output=True, text=True).stdout
    mine = {str(os.getpid()), str(os.getppid())}
    return [line for line in out.splitlines() if line.split(" ", 1)[0] not in mine
            and "bench_peers" not in line and "recbole_run" not in line
            and "seqrec_run" not in line]


def wait_idle(minutes: float, log) -> dict:
    """Wait (checking every 5 minutes, at most `minutes`) for load < 0.3 and no other
    Python job; return what was seen."""
    start = time.time()
    while True:
        one, _, _ = load()
        busy = others_busy()
        if one < 0.3 and not busy:
            return {"idle": True, "load1": one, "waited_min": (time.time() - start) / 60}
        if time.time() - start >= minutes * 60:
            return {"idle": False, "load1": one, "waited_min": (time.time() - start) / 60,
                    "others": len(busy)}
        log(f"machine busy (load {one:.2f}, {len(busy)} other python processes); waiting")
        time.sleep(min(300, max(1.0, minutes * 60 - (time.time() - start))))


class Bench:
    """One size's folder: the split, RecBole's files, and one JSON per finished run."""

    def __init__(self, args: argparse.Namespace, size: str) -> None:
        self.args = args
        self.size = size
        self.folder = Path(args.out) / size
        self.runs = self.folder / "runs"
        self.runs.mkdir(parents=True, exist_ok=True)
        self.split_path = self.folder / "split.npz"
        self.data_dir = self.folder / "recbole"

    def log(self, *parts) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {self.size}:", *parts, flush=True)

    def prepare(self) -> None:
        """The split (seqrec) and its atomic files (for RecBole), once per size."""
        info_path = self.folder / "data.json"
        if info_path.exists() and self.split_path.exists():
            return
        synth = SIZES[self.size]
        source = DataSource(DataRef.generated(synth), Path(self.args.out))
        cfg = DataConfig(chunks=1, threshold=THRESHOLD, seq_len=SEQ_LEN, split="leave_one_out")
        t0 = time.perf_counter()
        split = source.split(cfg, 0)
        split.save(self.split_path)
        rows = write_atomic(split, self.data_dir)
        self.log(f"split and atomic files in {time.perf_counter() - t0:.1f} s: {rows}")
        info = {"synth": asdict(synth), "data": asdict(cfg), "summary": split.summary(),
                "recbole_rows": rows, "rows_read": source.events(cfg.item_key).report.rows_read}
        info_path.write_text(json.dumps(info, indent=1, default=str))

    def _run(self, key: str, tool: str, argv: list[str]) -> dict:
        """Run one tool's process (cached by `key`), recording load and wall time."""
        return self._wait(self._start(key, tool, argv))

    def _start(self, key: str, tool: str, argv: list[str]) -> tuple:
        """Start one tool's process; `_wait` collects it (both: nothing when cached)."""
        path = self.runs / f"{key}.json"
        if path.exists():
            return key, path, None, None, None, None
        work = self.folder / "work" / key
        work.mkdir(parents=True, exist_ok=True)
        out = work / "result.json"
        if tool == "seqrec":
            cmd = [sys.executable, str(HERE / "seqrec_run.py"), *argv,
                   "--split", str(self.split_path.resolve())]
        else:
            cmd = [str(venv.ensure(self.log)), str(HERE / "recbole_run.py"), *argv,
                   "--data", str(self.data_dir.resolve())]
        cmd += ["--threads", str(self.args.threads), "--out", str(out.resolve())]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")} if tool == "seqrec" else None
        before, t0 = load(), time.perf_counter()
        self.log(f"{key} ...")
        err = open(work / "stderr.txt", "w")  # noqa: SIM115 - closed in _wait
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=err)
        return key, path, proc, (before, t0, err), work, out

    def _wait(self, started: tuple) -> dict:
        key, path, proc, info, work, out = started
        if proc is None:
            return json.loads(path.read_text())
        before, t0, err = info
        code = proc.wait()
        wall = time.perf_counter() - t0
        err.close()
        if code != 0:
            tail = (work / "stderr.txt").read_text()[-2000:]
            raise RuntimeError(f"{key} failed (exit {code}); see {work / 'stderr.txt'}:\n"
                               f"{tail}")
        result = json.loads(out.read_text())
        result.update(key=key, wall_seconds=wall, load_before=before, load_after=load(),
                      finished=time.strftime("%Y-%m-%d %H:%M:%S %Z"))
        path.write_text(json.dumps(result, indent=1))
        self.log(f"{key} done in {wall:.0f} s (load {before[0]:.2f} -> {load()[0]:.2f})")
        return result

    def check_samples(self) -> dict:
        """Dump what RecBole loaded and compare it with seqrec's windows, row by row."""
        path = self.runs / "samples.json"
        if path.exists():
            return json.loads(path.read_text())
        dump = self._run("dump", "recbole", ["dump", "--dump", "samples.npz"])
        from seqrec.data.windows import Split

        samples = dict(np.load(self.folder / "work" / "dump" / "samples.npz"))
        split = Split.load(self.split_path)
        check = {"parts": compare_samples(split, samples), "recbole": dump,
                 "seqrec_n_items": split.n_items}
        check["equal"] = all(p["equal"] for p in check["parts"].values()) and \
            dump["n_items"] == split.n_items + 1
        path.write_text(json.dumps(check, indent=1))
        self.log("samples " + ("agree" if check["equal"] else f"DIFFER: {check['parts']}"))
        return check

    def steps(self) -> None:
        seqrec_v = ",".join(f"{s}:{d:g}" for s, _, d in STEP_VARIANTS)
        recbole_v = ",".join(f"{r}:{d:g}" for _, r, d in STEP_VARIANTS)
        common = ["--steps", str(self.args.steps), "--warmup", "2"]
        for rep in range(self.args.step_repeats):
            order = ("seqrec", "recbole") if rep % 2 == 0 else ("recbole", "seqrec")
            for tool in order:
                variants = seqrec_v if tool == "seqrec" else recbole_v
                self._run(f"step-{tool}-r{rep}", tool,
                          ["step", "--variants", variants, *common])

    def train_pair(self, pair: tuple[str, str, float], seed: int, turn: int) -> None:
        s_model, r_model, dropout = pair
        epochs = self.args.epochs[self.size]
        patience = self.args.patience
        runs = {
            "seqrec": (f"train-seqrec-{s_model}-d{dropout:g}-s{seed}-e{epochs}-p{patience}",
                       ["train", "--model", s_model, "--dropout", str(dropout),
                        "--seed", str(seed), "--epochs", str(epochs),
                        "--patience", str(patience), "--threshold", str(THRESHOLD)]),
            # RecBole stops when `cur_step > stopping_step`: after stopping_step + 1 epochs
            # without improvement, i.e. seqrec's patience is RecBole's stopping_step + 1.
            "recbole": (f"train-recbole-{r_model}-d{dropout:g}-s{seed}-e{epochs}-p{patience}"
                        + ("-shipped" if self.args.recbole_anomaly == "shipped" else ""),
                        ["train", "--model", r_model, "--dropout", str(dropout),
                         "--seed", str(seed), "--epochs", str(epochs),
                         "--stopping-step", str(patience - 1),
                         "--anomaly", self.args.recbole_anomaly]),
        }
        order = ("seqrec", "recbole") if turn % 2 == 0 else ("recbole", "seqrec")
        if self.args.parallel:  # side by side, one process per tool, started together
            for started in [self._start(runs[t][0], t, runs[t][1]) for t in order]:
                self._wait(started)
            return
        for tool in order:
            self._run(runs[tool][0], tool, runs[tool][1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100k,1m", help=f"comma list of {sorted(SIZES)}")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", default="100k=10,1m=3,tiny=2",
                   help="maximum epochs per size, SIZE=N,... (the same for both tools)")
    p.add_argument("--patience", type=int, default=2, help="seqrec patience; RecBole "
                   "stopping_step = patience - 1 (the same number of epochs)")
    p.add_argument("--steps", type=int, default=10, help="timed training steps per variant")
    p.add_argument("--step-repeats", type=int, default=3, help="processes per tool")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--recbole-anomaly", choices=("off", "shipped"), default="off",
                   help="RecBole's training runs with autograd anomaly detection off, or on "
                   "as RecBole 1.2.1 turns it on at import (steps are timed both ways)")
    p.add_argument("--models", default="pop,sasrec,gru",
                   help="seqrec models to train, in this order (each against its peer)")
    p.add_argument("--parallel", action="store_true",
                   help="train the two tools of a pair side by side (one process each; use "
                   "--threads 1 on 2 cores) instead of one after the other")
    p.add_argument("--phases", default="check,steps,train",
                   help="what to run: check (samples), steps, train")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="MINUTES",
                   help="first wait up to this long for an idle machine")
    p.add_argument("--out", default=str(ROOT / "bench_out" / "peers"))
    p.add_argument("--write", action="store_true", help=f"render {DOC.relative_to(ROOT)}")
    p.add_argument("--render-only", action="store_true", help="only render, run nothing")
    args = p.parse_args()
    args.epochs = {k: int(v) for k, v in (kv.split("=") for kv in args.epochs.split(","))}
    sizes = [s for s in args.sizes.split(",") if s]
    phases = set(args.phases.split(","))
    meta_path = Path(args.out) / "machine.json"
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if not args.render_only:
        idle = wait_idle(args.wait_idle, print) if args.wait_idle else {"idle": None,
                                                                        "load1": load()[0]}
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        meta.update(platform=platform.platform(), python=platform.python_version(),
                    cpus=os.cpu_count())
        meta.setdefault("invocations", []).append(
            {"idle_check": idle, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
             "command": " ".join(["benchmarks/bench_peers.py", *sys.argv[1:]])})
        meta_path.write_text(json.dumps(meta, indent=1))
        benches = [Bench(args, s) for s in sizes]
        for b in benches:  # the cheap, decisive parts first, for every size
            b.prepare()
            if "check" in phases:
                b.check_samples()
            if "steps" in phases:
                b.steps()
        if "train" in phases:
            models = args.models.split(",")
            for b in benches:
                pairs = [next(p for p in PAIRS if p[0] == m) for m in models]
                for i, pair in enumerate(pairs):
                    for seed in range(args.seeds):
                        b.train_pair(pair, seed, seed + i)
                if "gru" in models:
                    b.train_pair(FUSED_PAIR, 0, 1)
    if args.write or args.render_only:
        text = render(Path(args.out), [s for s in SIZES if (Path(args.out) / s).exists()
                                       and s in sizes], args)
        DOC.write_text(text, encoding="utf-8")
        print(f"wrote {DOC}")


if __name__ == "__main__":
    main()

"""RecBole 1.2.1 in its own virtual environment (`bench_out/peers_venv`), built on first use.

RecBole is not a dependency of seqrec. Its environment reuses this machine's torch 2.13.0 CPU
build: torch is always pinned (an unpinned torch lets pip resolve a multi-GB CUDA build), and
RecBole itself is installed with `--no-deps` beside the few packages it imports on the paths
we use. Left out on purpose: `ray` (RecBole 1.2.1 asks for `ray<=2.6.3`; only
`recbole.quick_start` and hyper-parameter tuning import it, and the harness uses neither),
`plotly` and `hyperopt` (tuning only). `pandas<3`: RecBole 1.2.1 fills empty
token sequences with a chained in-place `fillna`, which pandas 3's copy-on-write ignores.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / "bench_out" / "peers_venv"
TORCH = "torch==2.13.0"
RECBOLE = "recbole==1.2.1"
# What recbole's modules on our path import (data, trainer, evaluator, utils, models).
DEPS = ("numpy", "scipy", "pandas>=2.2,<3", "tqdm", "colorlog==4.7.2", "colorama==0.4.4",
        "scikit-learn", "pyyaml", "tensorboard", "texttable", "thop", "tabulate", "psutil")
MARKER = VENV / ".installed"


def python() -> Path:
    return VENV / "bin" / "python"


def ensure(log=print) -> Path:
    """The environment's Python, building the environment first when it is missing."""
    want = " ".join((TORCH, RECBOLE, *DEPS))
    if MARKER.exists() and MARKER.read_text() == want:
        return python()
    log(f"building RecBole's environment in {VENV} (once)")
    if not python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(python()), "-m", "pip", "install", "-q"]
    subprocess.run(pip + [TORCH, *DEPS], check=True)
    subprocess.run(pip + ["--no-deps", RECBOLE], check=True)
    out = subprocess.run([str(python()), "-c", "import torch, recbole; "
                          "print(torch.__version__, recbole.__version__)"],
                         check=True, capture_output=True, text=True).stdout.split()
    if out[0].split("+")[0] != TORCH.split("==")[1]:
        raise RuntimeError(f"RecBole's environment got torch {out[0]}, not {TORCH}")
    MARKER.write_text(want)
    return python()


if __name__ == "__main__":
    print(ensure())

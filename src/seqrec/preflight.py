"""Checks made before any work: the config cell's values, the device the profile needs, and
room on the disk the grid writes to.

The notebook calls `check_runtime` first thing after seqrec is imported, so a thesis grid on a
CPU runtime, `DEVICE = "cuda"` without a GPU or a wrong `DATA_PATH` stops with one sentence
before anything is read, timed or trained (issue 22). Every check is cheap: a stat, a
`torch.cuda` query, and the parameter count of models built on PyTorch's `meta` device (shapes
only, no memory).

The memory and disk figures are estimates, stated as such where they are printed:

- training memory of one run (float32): the weights, their gradients, Adam's two moments and
  the best weights early stopping keeps (5 x the parameter bytes), the output layer's logits,
  softmax and their gradient (3 x B x n_items), and the recurrent activations kept for the
  backward pass (about 8 x B x T x (E + H) for the GRUs; the DNC adds its memory and link
  matrix per step, 2 x B x T x (N x W + N x N));
- a checkpoint: the weights, Adam's two moments and the best weights (4 x the parameter
  bytes); a run rewrites it after every epoch and keeps the previous one beside it.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from seqrec.config import RunConfig
from seqrec.data.inputs import inspect_path
from seqrec.experiment import RunSpec
from seqrec.experiments import grid
from seqrec.models import build_model
from seqrec.models.registry import REGISTRY
from seqrec.report.coverage import MIN_TEST_WINDOWS
from seqrec.runner import RunOptions, Sources, status

FLOAT_BYTES = 4
ASSUMED_ITEMS = 50_000  # the catalogue assumed by the GPU check before any data is read
GIB = 1024**3
COLAB_GPU_HINT = ("on Colab choose Runtime > Change runtime type > a GPU (T4, L4 or A100) "
                  "and run all again")


class SetupError(ValueError):
    """A value of the notebook's config cell (or a runtime) that cannot work: one sentence
    naming the setting and what to change."""


# ---------------------------------------------------------------------------------------------
# The config cell's values

def as_list(value: object, name: str) -> list[str] | None:
    """A config value that takes a list of strings: None stays None, one string becomes a
    list of it (`EXPERIMENTS = "exp4"` is `["exp4"]`; before, it was read letter by letter as
    "unknown experiment 'e'"); anything else must be a list or tuple of strings."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise SetupError(f"{name} must be a list of strings such as [\"exp4\"] or a single "
                     f"string, not {value!r}")


def optional_path(value: object, name: str) -> str | None:
    """A path setting where None (or an empty form field) means "not set"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, (str, Path)):
        raise SetupError(f"{name} must be a path in quotes or None, not {value!r}")
    return str(value)


def check_data_path(data: str | None) -> None:
    """A DATA_PATH that does not exist stops with the sentence a notebook user needs; one that
    exists is inspected at once (a folder, an empty or binary file: `inspect_path`'s
    sentences), so these stop in the first seconds rather than after the plan."""
    if data is None:
        return
    if not Path(data).exists():
        raise SetupError(f"DATA_PATH {data!r} does not exist; check the path (on Colab, Drive "
                         "files are under /content/drive/MyDrive/), or set DATA_PATH = None to "
                         "use the built-in generated log")
    inspect_path(data)


# ---------------------------------------------------------------------------------------------
# The device

@dataclass(frozen=True)
class DeviceInfo:
    """What a runtime offers: `kind` "cpu" or "cuda", the card's name and memory (CUDA)."""

    kind: str
    name: str
    memory_bytes: int | None = None
    threads: int = 1


def probe_device(device: str = "auto") -> DeviceInfo:
    """The device `device` ("auto", "cpu", "cuda", "cuda:N") would give on this runtime,
    without asking for it (a missing GPU is reported by `device_lines`)."""
    threads = torch.get_num_threads()
    if device == "cpu" or not torch.cuda.is_available():
        return DeviceInfo("cpu", f"CPU ({threads} thread{'s' if threads != 1 else ''})", None,
                          threads)
    index = int(device.split(":")[1]) if device.startswith("cuda:") else 0
    props = torch.cuda.get_device_properties(index)
    return DeviceInfo("cuda", props.name, int(props.total_memory), threads)


def train_memory_bytes(cfg: RunConfig, n_items: int, n_users: int) -> int:
    """Estimated bytes one training step of `cfg`'s model needs (see the module docstring)."""
    params = parameter_count(cfg, n_items, n_users)
    m, d = cfg.model, cfg.data
    b, t = cfg.train.batch_size, d.seq_len - 1
    width = max(m.embedding_size, 0) + m.hidden_size
    activations = 8 * b * t * width + 3 * b * n_items
    if m.name in ("dnc", "user_dnc"):
        cells = m.memory_cells
        activations += 2 * b * t * (cells * m.word_size + cells * cells)
    return FLOAT_BYTES * (5 * params + activations)


def parameter_count(cfg: RunConfig, n_items: int, n_users: int) -> int:
    """Parameters of `cfg`'s model at these sizes, counted on the meta device (no memory)."""
    if not REGISTRY[cfg.model.name].trained:
        return 0
    with torch.device("meta"):
        model = build_model(cfg.model, n_items, n_users)
    return sum(p.numel() for p in model.parameters())


def largest_run(specs: Iterable[RunSpec], n_items: int, n_users: int
                ) -> tuple[RunSpec | None, int]:
    """The trained run of `specs` needing the most memory at these sizes, and its bytes."""
    best, most, seen = None, 0, set()
    for spec in specs:
        cfg = spec.config
        key = (cfg.model, cfg.data.seq_len, cfg.train.batch_size)
        if key in seen or not REGISTRY[spec.model].trained:
            continue
        seen.add(key)
        need = train_memory_bytes(cfg, n_items, n_users)
        if need > most:
            best, most = spec, need
    return best, most


def device_lines(profile: str, device: str, info: DeviceInfo, thesis_specs: list[RunSpec],
                 n_items: int = ASSUMED_ITEMS, n_users: int = 992) -> list[str]:
    """What to say about the runtime before anything runs; `SetupError` (one sentence) when
    it cannot work: a GPU asked for on a CPU runtime, or the thesis profile on a CPU.

    `thesis_specs`: the grid whose largest run is set against a GPU's memory."""
    if device.startswith("cuda") and info.kind != "cuda":
        raise SetupError(f"DEVICE = {device!r} but this runtime has no GPU; {COLAB_GPU_HINT}, "
                         "or set DEVICE = \"auto\" to use what there is")
    if info.kind != "cuda":
        if profile == "thesis":
            raise SetupError("This is a CPU runtime and PROFILE = \"thesis\" trains the "
                             "thesis' 1000-wide models, a job of days on a GPU and far longer "
                             f"here: {COLAB_GPU_HINT}, or set PROFILE = \"smoke\" to try the "
                             "whole pipeline in minutes")
        return [f"Device: {info.name}; the {profile} profile runs here."]
    lines = [f"Device: GPU {info.name} with {info.memory_bytes / GIB:.1f} GiB of memory."]
    spec, need = largest_run(thesis_specs, n_items, n_users)
    if spec is not None:
        lines.append(memory_line(spec, need, info, f"at an assumed {n_items:,} items (the "
                                                   "plan checks again with the data's own)"))
    return lines


def memory_line(spec: RunSpec, need: int, info: DeviceInfo, where: str) -> str:
    """Whether the run needing the most memory fits the GPU, in one line."""
    what = (f"the largest model of this grid ({spec.experiment}, {spec.model}, "
            f"{spec.axis}={spec.value}) needs about {need / GIB:.1f} GiB to train {where}; an "
            "estimate, seqrec/preflight.py says how it is made")
    if need <= 0.9 * (info.memory_bytes or 0):
        return f"Memory: {what}: it fits."
    return (f"Memory: {what}: it does NOT fit; such runs will fail for lack of memory and be "
            "recorded as failed (the rest of the grid goes on); choose a GPU with more memory "
            "(an L4 has 22 GiB, an A100 40 or 80).")


def check_runtime(profile: str, device: str = "auto", data: object = None,
                  experiments: object = None, overrides: object = (),
                  info: DeviceInfo | None = None, log=print) -> DeviceInfo:  # noqa: ANN001
    """The notebook's first check (see the module docstring): the config cell's values, then
    the device. Prints what it found; raises `SetupError` with one sentence when it cannot
    work. `info`: the device as probed (tests pass one)."""
    names = as_list(experiments, "EXPERIMENTS")
    extra = as_list(overrides, "OVERRIDES") or []
    check_data_path(optional_path(data, "DATA_PATH"))
    info = info or probe_device(device)
    specs = []
    if info.kind == "cuda":  # the largest model only matters where it may not fit
        specs = [s for name in names or ["all"] for s in grid(name, profile, extra)]
    for line in device_lines(profile, device, info, specs):
        log(line)
    return info


# ---------------------------------------------------------------------------------------------
# The disk

def checkpoint_bytes(cfg: RunConfig, n_items: int, n_users: int) -> int:
    """Estimated size of one checkpoint of `cfg`'s model (see the module docstring)."""
    return 4 * FLOAT_BYTES * parameter_count(cfg, n_items, n_users)


@dataclass(frozen=True)
class DiskEstimate:
    """What a grid writes: `peak` bytes at once (one run's checkpoint and its previous one),
    `written` bytes in all (every epoch's checkpoint), and `free` bytes on the disk (None when
    the disk cannot tell)."""

    peak: int
    written: int
    free: int | None


def disk_estimate(sizes: Iterable[tuple[RunConfig, int, int]], folder: str | Path
                  ) -> DiskEstimate:
    """`sizes`: (config, items, users) of every run still to train; `folder`: where their
    checkpoints go."""
    peak = written = 0
    known: dict[tuple, int] = {}
    for cfg, n_items, n_users in sizes:
        key = (cfg.model, n_items, n_users)
        if key not in known:
            known[key] = checkpoint_bytes(cfg, n_items, n_users)
        one = known[key]
        epochs = cfg.train.epochs * (2 if cfg.train.retrain else 1)
        peak = max(peak, 2 * one)
        written += one * epochs
    return DiskEstimate(peak, written, free_bytes(folder))


def free_bytes(folder: str | Path) -> int | None:
    """Free bytes on the disk holding `folder` (or its nearest existing parent); None when
    the disk does not say."""
    path = Path(folder)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return int(shutil.disk_usage(path).free)
    except OSError:
        return None


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def disk_lines(estimate: DiskEstimate, on_drive: bool) -> list[str]:
    """The estimate as text, with a warning when the disk has less room than a run needs."""
    if not estimate.written:
        return []
    line = (f"Checkpoints: the runs still to train write about {_gb(estimate.written)} of "
            f"checkpoints in all, at most {_gb(estimate.peak)} at once (an estimate: every "
            "epoch of the budget counted)")
    if estimate.free is not None:
        line += f"; {_gb(estimate.free)} free there"
    lines = [line + "."]
    if estimate.free is not None and estimate.free < estimate.peak:
        lines.append(f"WARNING: {disk_full_advice(on_drive)}")
    elif on_drive and estimate.free is not None and estimate.free < estimate.written:
        lines.append("WARNING: Drive keeps every replaced checkpoint in its trash for 30 days, "
                     "against your quota, so the grid may fill Drive; empty the trash while "
                     "it runs, or set CHECKPOINT_DIR = \"/content/ckpt\" to keep checkpoints "
                     "on the Colab machine's disk.")
    return lines


def disk_full_advice(on_drive: bool) -> str:
    """What to do when the output disk is (or will be) full."""
    if on_drive:
        return ("Google Drive is full: deleted and replaced checkpoints stay in Drive's trash "
                "and count against the quota, so empty the trash (drive.google.com > Trash) "
                "or free space, or set CHECKPOINT_DIR = \"/content/ckpt\" to keep "
                "checkpoints off Drive; then run all again (finished runs are kept)")
    return ("the disk is full: free space there, or set CHECKPOINT_DIR (--checkpoint-dir) to "
            "a folder on another disk; then run again (finished runs are kept)")


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def on_drive(path: str | Path | None) -> bool:
    """Whether `path` is on Colab's Drive mount."""
    return path is not None and str(Path(path)).startswith("/content/drive")


# ---------------------------------------------------------------------------------------------
# The grid's splits: too few windows, and what the grid writes

def grid_lines(specs: list[RunSpec], out_dir: str | Path, options: RunOptions,
               info: DeviceInfo | None = None) -> list[str]:
    """What to warn about before a grid trains, from its splits (prepared and cached here, as
    the runner would before training): splits with fewer test (or validation) windows than
    `MIN_TEST_WINDOWS`, whose numbers will be noise; on a GPU (`info`), whether the largest
    run fits its memory at the data's own item counts; and the checkpoints the runs still to
    train will write against the free space where they go (`disk_lines`)."""
    sources = Sources(Path(out_dir))
    few: dict[tuple, tuple[str, int]] = {}
    sized: list[tuple[RunSpec, int, int]] = []  # trained runs to do, with items and users
    for spec in specs:
        state = status(out_dir, spec, options)
        if state not in ("todo", "partial"):
            continue
        split = sources(spec.data).split(spec.config.data, spec.chunk)
        part, n = min((("test", len(split.test)), ("validation", len(split.val))),
                      key=lambda p: p[1])
        if n < MIN_TEST_WINDOWS:
            few.setdefault((spec.experiment, spec.axis, spec.value, spec.chunk),
                           (part, n))
        if REGISTRY[spec.model].trained:
            sized.append((spec, split.n_items, split.n_users))
    lines = []
    if few:
        shown = "; ".join(f"{e} {a}={v} chunk {c}: {n} {part} windows"
                          for (e, a, v, c), (part, n) in list(few.items())[:4])
        more = f"; and {len(few) - 4} more" if len(few) > 4 else ""
        lines.append(f"WARNING: {len(few)} split{'s' if len(few) > 1 else ''} leave fewer than "
                     f"{MIN_TEST_WINDOWS} windows to evaluate on ({shown}{more}); their "
                     "numbers will be noise and are marked in the tables and figures: use a "
                     "larger log, fewer chunks or a shorter window length.")
    if info is not None and info.kind == "cuda" and sized:
        need, spec, n_items = max(((train_memory_bytes(s.config, i, u), s, i)
                                   for s, i, u in sized), key=lambda p: p[0])
        lines.append(memory_line(spec, need, info, f"at this data's {n_items:,} items"))
    folder = options.checkpoint_dir or out_dir
    sizes = [(s.config, i, u) for s, i, u in sized]
    lines += disk_lines(disk_estimate(sizes, folder), on_drive(folder))
    return lines

"""Run specs -> run records: skip finished runs, resume interrupted ones, never lose a result.

Layout of an output folder (a Drive folder on Colab; several machines may share it):
```
OUT/data/      the built-in generated log, when no data path is given
OUT/cache/     parsed events (Parquet) and splits (npz), keyed by the hash of their settings
OUT/runs/ID/   one folder per run: checkpoints while it trains, record.json when it is done
OUT/report/    tables, figures, report.md and report.pdf (seqrec.report)
```
A run whose `record.json` exists is skipped; one with a checkpoint resumes from it. Shards
(`--shard I/N`) split a grid round robin, so machines sharing the folder need no coordination.
"""

from __future__ import annotations

import fnmatch
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from seqrec.config import DataConfig, to_dict
from seqrec.device import resolve_device
from seqrec.experiments import RunSpec, grid, shard
from seqrec.io import atomic_write_json, read_json

RECORD = "record.json"


def check_writable(out_dir: str | Path) -> Path:
    """Create `out_dir` if needed and prove a file can be written there, or stop clearly."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ValueError(f"output folder {str(out)!r} is not writable ({e.strerror}); "
                         "choose another --out") from e
    return out


# The built-in generated log per profile: smoke data is small enough for every experiment of
# the smoke grid to train on a CPU in minutes, and large enough that exp 4's last 30% in three
# chunks still leaves every user val and test windows of length 10.
BUILTIN_DATA = {"smoke": {"n_rows": 100_000, "n_users": 40}, "thesis": {}}


def builtin_data(out_dir: str | Path, profile: str = "smoke", seed: int = 0) -> Path:
    """The built-in generated log (LastFM-1K format) under OUT/data, generated once."""
    from seqrec.data.synthetic import SynthConfig, generate

    return generate(SynthConfig(seed=seed, **BUILTIN_DATA.get(profile, {})),
                    Path(out_dir) / "data")


@dataclass
class DataSource:
    """A raw log and the caches derived from it; events are read once per item identity."""

    path: Path
    cache_dir: Path
    _events: dict = field(default_factory=dict)
    _last_split: tuple = ()  # (data config, chunk, split): a grid runs several models in a row

    def events(self, item_key: str):
        if item_key not in self._events:
            from seqrec.data.lastfm import read_events

            self._events[item_key] = read_events(self.path, item_key=item_key,
                                                 cache_dir=self.cache_dir)
        return self._events[item_key]

    def split(self, data: DataConfig, chunk: int):
        from seqrec.data.protocol import load_or_prepare_split

        if self._last_split[:2] == (data, chunk):
            return self._last_split[2]
        ev = self.events(data.item_key)
        split = load_or_prepare_split(ev.key, ev.users, ev.items, data, chunk, self.cache_dir)
        self._last_split = (data, chunk, split)
        return split


def data_source(data: str | Path | None, out_dir: str | Path,
                profile: str = "smoke") -> DataSource:
    """A `DataSource` for a given log, or for the profile's built-in one when `data` is None."""
    out = check_writable(out_dir)
    if data is None:
        path = builtin_data(out, profile)
    else:
        path = Path(data)
        if not path.is_file():
            raise ValueError(f"data file {str(path)!r} does not exist; give the path of the "
                             "LastFM-1K TSV (userid-timestamp-artid-artname-traid-traname.tsv) or "
                             "of a user,item,timestamp log, or leave --data out for built-in data")
    return DataSource(path=path, cache_dir=out / "cache")


def run_dir(out_dir: str | Path, spec: RunSpec) -> Path:
    return Path(out_dir) / "runs" / spec.run_id


def status(out_dir: str | Path, spec: RunSpec) -> str:
    """`ok` or `failed` when a record exists, `partial` with only a checkpoint, else `todo`."""
    d = run_dir(out_dir, spec)
    if (d / RECORD).exists():
        try:
            return read_json(d / RECORD).get("status", "failed")
        except (OSError, ValueError):
            return "todo"  # an unreadable record is redone (records are written atomically)
    if d.exists() and any(d.glob("*.pt")):
        return "partial"
    return "todo"


def select(specs: list[RunSpec], only: list[str] | None = None,
           shard_spec: str | None = None) -> list[RunSpec]:
    """Filter by `--only` patterns (globs or substrings of run ids) and `--shard I/N`."""
    if only:
        pats = [p if any(c in p for c in "*?[") else f"*{p}*" for p in only]
        specs = [s for s in specs if any(fnmatch.fnmatchcase(s.run_id, p) for p in pats)]
    if shard_spec:
        try:
            i, n = (int(x) for x in shard_spec.split("/"))
        except ValueError as e:
            raise ValueError(f"--shard must look like I/N (e.g. 0/3), got {shard_spec!r}") from e
        specs = shard(specs, i, n)
    return specs


def failed_record(spec: RunSpec, reason: str) -> dict:
    """The record of a run that could not start (e.g. its chunk has no windows)."""
    return {
        "run_id": spec.run_id,
        "status": "failed",
        "reason": reason,
        "spec": spec.spec_dict(),
        "config": to_dict(spec.config),
        "metrics": {},
        "metrics_by_popularity": {},
        "seed": spec.seed,
    }


def run_specs(specs: list[RunSpec], source: DataSource, out_dir: str | Path,
              device: str = "auto", progress: bool = True, retry_failed: bool = False,
              log=print) -> list[dict]:
    """Run every spec that has no record yet, in order; return all their records."""
    from seqrec.train import train_run

    out = check_writable(out_dir)
    dev = resolve_device(device)
    records = []
    for n, spec in enumerate(specs, 1):
        d = run_dir(out, spec)
        state = status(out, spec)
        if state == "ok" or (state == "failed" and not retry_failed):
            records.append(read_json(d / RECORD))
            continue
        if state == "failed":
            (d / RECORD).unlink()
        log(f"[{n}/{len(specs)}] {spec.run_id}" + (" (resuming)" if state == "partial" else ""))
        t0 = time.time()
        try:
            split = source.split(spec.config.data, spec.chunk)
        except ValueError as e:
            rec = failed_record(spec, f"data preparation failed: {e}")
            atomic_write_json(d / RECORD, rec)
            log(f"    failed: {rec['reason']}")
            records.append(rec)
            continue
        rec = train_run(split, spec.config, d, dev, run_id=spec.run_id, spec=spec.spec_dict(),
                        progress=progress)
        if rec.get("status") != "ok":
            log(f"    failed: {rec.get('reason')}")
        else:
            m = rec.get("metrics", {})
            shown = ", ".join(f"{k}={m[k]:.4f}" for k in ("recall@20", "recall@1", "mrr@20")
                              if k in m)
            log(f"    done in {time.time() - t0:.1f}s: {shown}")
        records.append(rec)
    return records


def run_experiment(experiment: str, out_dir: str | Path, data: str | Path | None = None,
                   profile: str = "smoke", device: str = "auto",
                   overrides: list[str] | dict = (), only: list[str] | None = None,
                   shard_spec: str | None = None, baselines: tuple[str, ...] | None = None,
                   progress: bool = True, retry_failed: bool = False, log=print) -> list[dict]:
    """Build an experiment's grid (or `all`), select, and run it. The notebook's one call."""
    specs = select(grid(experiment, profile, overrides, baselines), only, shard_spec)
    source = data_source(data, out_dir, profile)
    return run_specs(specs, source, out_dir, device=device, progress=progress,
                     retry_failed=retry_failed, log=log)


def plan(experiment: str, out_dir: str | Path, profile: str = "smoke",
         overrides: list[str] | dict = (), only: list[str] | None = None,
         shard_spec: str | None = None, baselines: tuple[str, ...] | None = None,
         ) -> list[tuple[RunSpec, str]]:
    """What `--dry-run` shows: every selected spec and its status."""
    specs = select(grid(experiment, profile, overrides, baselines), only, shard_spec)
    return [(s, status(out_dir, s)) for s in specs]


def expected_specs(experiment: str, profile: str, overrides=(), baselines=None) -> list[dict]:
    """The spec dicts of a full grid, for the report's list of missing runs."""
    return [s.spec_dict() for s in grid(experiment, profile, overrides, baselines)]

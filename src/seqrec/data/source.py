"""Where a run's events come from (`DataRef`), and the reading of them for a grid (`DataSource`).

A `DataRef` is a value: a log file (its path and a fingerprint of its identity) or the built-in
generator (its `SynthConfig`). Its fingerprint is part of every run id, so a grid run on one log
and then on another into the same output folder trains both and never returns the first one's
records for the second (docs/design.md, "A run's identity"). The fingerprint of a file is
that of its contents (`content_fingerprint`: its size and a bounded sample of its bytes, no
parse), so the same log at another path or copied again keeps its runs; that of generated data
is the hash of the generator's settings, so it does not depend on when or where the file was
written.

A `DataSource` binds a `DataRef` to an output folder: it generates the built-in log under
`OUT/data` when needed, reads events once per item identity (through the Parquet cache under
`OUT/cache`) and keeps the last split, since a grid trains several models on one split in a row.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from seqrec.config import DataConfig, config_hash
from seqrec.data.identity import content_fingerprint
from seqrec.data.lastfm import check_data_path, read_events, read_options
from seqrec.data.protocol import load_or_prepare_split
from seqrec.data.synthetic import SynthConfig, generate

# The built-in generated log per profile. Smoke: 80,000 plays of 40 users, so that `make demo`
# trains every experiment of the smoke grid in about five minutes on one CPU thread (100,000
# took 6 min 21 s, over the demo's six-minute budget); and a catalogue of 600 tracks by 60
# artists (the generator's default is 4,000 by 200), so that a chunk of exp 4 (8,000 plays)
# holds each item about 13 times rather than 2: on the sparse default catalogue the smoke models
# sat at POP's level. With these the neural models reach 1.46x to 1.66x POP's Recall@20 in every
# experiment of the demo (docs/validation.md, "The demo and the count baselines").
BUILTIN_DATA: dict[str, dict] = {
    "smoke": {"n_rows": 80_000, "n_users": 40, "n_tracks": 600, "n_artists": 60},
    "thesis": {},
}


def builtin_synth(profile: str) -> SynthConfig:
    """The generator settings of a profile's built-in log."""
    if profile not in BUILTIN_DATA:
        raise ValueError(f"no built-in data for profile {profile!r}; choose one of "
                         f"{sorted(BUILTIN_DATA)} or give a data file")
    return SynthConfig(seed=0, **BUILTIN_DATA[profile])


@dataclass(frozen=True)
class DataRef:
    """The events of a run: a log file (`path`) or the generator (`synth`), and a fingerprint.

    Build with `DataRef.file(path)` or `DataRef.generated(synth)`; `to_json` / `from_json` keep
    the fingerprint as computed when the grid was planned (a record names the data it used).
    """

    kind: str  # "file" | "generated"
    fingerprint: str
    path: str = ""
    synth: SynthConfig | None = None

    @classmethod
    def file(cls, path: str | Path) -> DataRef:
        """A log file (or the LastFM-1K archive), checked now: a folder, a missing, empty,
        compressed or binary file stops here with one sentence (`check_data_path`)."""
        p = check_data_path(path)
        return cls("file", content_fingerprint(p), path=str(p.resolve()))

    @classmethod
    def generated(cls, synth: SynthConfig) -> DataRef:
        return cls("generated", f"synth-{config_hash(synth)}", synth=synth)

    @classmethod
    def of(cls, data: str | Path | None, profile: str) -> DataRef:
        """A file given by path, or the profile's built-in log when `data` is None."""
        return cls.generated(builtin_synth(profile)) if data is None else cls.file(data)

    def describe(self) -> str:
        """One line for logs and report headers."""
        if self.kind == "file":
            return f"{self.path} ({self.fingerprint})"
        s = self.synth
        return (f"built-in generated log ({s.n_rows:,} plays, {s.n_users} users, seed {s.seed};"
                f" {self.fingerprint})")

    def to_json(self) -> dict:
        return {"kind": self.kind, "fingerprint": self.fingerprint, "path": self.path,
                "synth": asdict(self.synth) if self.synth is not None else None}

    @classmethod
    def from_json(cls, d: dict) -> DataRef:
        synth = d.get("synth")
        return cls(kind=str(d["kind"]), fingerprint=str(d["fingerprint"]),
                   path=str(d.get("path") or ""),
                   synth=SynthConfig(**synth) if isinstance(synth, dict) else None)


@dataclass
class DataSource:
    """A `DataRef` bound to an output folder: the file, its events and its splits."""

    ref: DataRef
    out_dir: Path
    _path: Path | None = None
    _events: dict = field(default_factory=dict)
    _last_split: tuple = ()  # (data config, chunk, split)

    @property
    def path(self) -> Path:
        """The log file (generated under OUT/data on first use for built-in data)."""
        if self._path is None:
            if self.ref.kind == "generated":
                self._path = generate(self.ref.synth, self.out_dir / "data")
            else:
                self._path = check_data_path(self.ref.path)
        return self._path

    @property
    def cache_dir(self) -> Path:
        return self.out_dir / "cache"

    def events(self, data: DataConfig):  # noqa: ANN201 - seqrec.data.events.Events
        """The events as `data`'s reading options read them, read once per set of options.

        When the reader skipped damaged lines, one warning says how many (on the console, and
        in the notebook's output), each time a process first reads them, cached or not: a run
        trained on a log with damaged lines says so where it is watched, not only in its
        record.
        """
        options = read_options(data)
        key = tuple(sorted(options.items()))
        if key not in self._events:
            events = read_events(self.path, cache_dir=self.cache_dir, **options)
            if events.report.lines_skipped:
                warnings.warn(f"data {self.path}: {events.report.describe()}", stacklevel=2)
            self._events[key] = events
        return self._events[key]

    def split(self, data: DataConfig, chunk: int):  # noqa: ANN201 - seqrec.data.windows.Split
        if self._last_split[:2] == (data, chunk):
            return self._last_split[2]
        ev = self.events(data)
        split = load_or_prepare_split(ev.key, ev.users, ev.items, data, chunk, self.cache_dir)
        self._last_split = (data, chunk, split)
        return split

    def summary(self, data: DataConfig) -> dict[str, Any]:
        """What a run record says of its data: the reference (whose fingerprint is in the run
        id), the file read (and the archive member), its size and the rows read and skipped."""
        read = self.events(data).report.source()
        return {**self.ref.to_json(), "file": read["path"], "member": read["member"],
                "size_bytes": read["size_bytes"], "file_fingerprint": read["fingerprint"],
                "rows_read": read["rows_read"], "lines_skipped": read["lines_skipped"]}

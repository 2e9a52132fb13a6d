"""Claims on run folders: one process trains a run at a time, even on a shared Drive folder.

Before a run trains, the runner claims its folder with a lease file, `claim.json`: the owner
(host name, process id and a random token), the time of its last heartbeat and how long the
lease lasts without one (`ttl_s`). The holder renews it after every epoch (`Lease.renew`) and
removes it when the run ends (`Lease.release`). Another process that finds a live lease of
someone else skips the run with one line (`RunClaimed`); a lease whose heartbeat is older than
its `ttl_s` (a holder that died), or that names this host and a process that no longer exists,
is taken over.

Why a lease file and not a lock: Google Drive (the output folder on Colab) has no `flock` and no
atomic create-if-absent; the one primitive that works on it and on every local or network file
system is writing a whole file (seqrec.io's write-then-rename) and reading it back. Claiming is
therefore: read the lease; if it is live and not ours, skip; else write ours and read it back;
whoever's token is in the file holds the run. The residual race, stated honestly:
- on one machine (or one file system with atomic renames), two processes that both read "free"
  and both write before either reads back can both see their own token, when the second rename
  lands between the first process' write and its read-back: a window of milliseconds;
- between two Colab sessions on one Drive folder, each machine sees the other's file only after
  Drive syncs it (seconds, sometimes minutes), so two sessions that start the same run within
  that window both claim it.
What bounds the damage: every renewal reads the lease back first, and a holder that finds
another token there stops the run at once (`ClaimLost`, before it writes that epoch's checkpoint
or TensorBoard point), so a race costs at most one epoch of duplicated work, never a record
written twice or a checkpoint pulled from under a run.

How long a lease lasts: `ttl_s` is written by its holder, `max(MIN_TTL_S, 3 x its longest
epoch so far)` (capped at `MAX_TTL_S`, also for a crafted file): three epochs without a
heartbeat mean the holder is gone. Until its first epoch ends the holder's lease lasts
`MIN_TTL_S` (15 minutes); a first epoch longer than that can be taken over by a second process,
and the first then stops at its first renewal (above). Expiry compares the holder's clock with
the reader's: hosts sharing a folder need clocks within minutes of each other (NTP gives that).
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from seqrec.io import atomic_write_json, read_json

CLAIM_FILE = "claim.json"
MIN_TTL_S = 15 * 60.0
MAX_TTL_S = 24 * 3600.0
EPOCHS_OF_SILENCE = 3  # renewals missed before a lease counts as abandoned


class RunClaimed(Exception):  # noqa: N818 - a state, not an error: the run is skipped
    """Another live process holds the run's folder; the message is the one line to show.

    Not a RuntimeError on purpose: training turns RuntimeErrors into failed runs, and a claimed
    run has not failed."""


class ClaimLost(RunClaimed):  # noqa: N818
    """The lease was taken over while this process trained the run (a race, or a lease that
    expired during an epoch longer than its `ttl_s`): this process stops the run."""


@dataclass(frozen=True)
class Owner:
    """Who holds a lease: host name, process id and a token unique to this claim."""

    host: str
    pid: int
    token: str

    @classmethod
    def this_process(cls) -> Owner:
        return cls(socket.gethostname(), os.getpid(), secrets.token_hex(16))

    def text(self) -> str:
        return f"process {self.pid} on {self.host}"


@dataclass(frozen=True)
class LeaseState:
    """A lease file's content."""

    owner: Owner
    heartbeat: float  # time.time() of the holder's last write
    ttl_s: float

    def live(self, now: float) -> bool:
        """Whether the holder may still be training: heartbeat within its ttl, and (on this
        host) its process still exists."""
        age = now - self.heartbeat
        # A heartbeat far in the future or not a number is a damaged or crafted file.
        if not (math.isfinite(age) and -MAX_TTL_S <= age <= min(self.ttl_s, MAX_TTL_S)):
            return False
        return not (self.owner.host == socket.gethostname() and not _process_exists(self.owner.pid))


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or a number we cannot ask about: assume alive
    return True


def read_lease(folder: str | Path) -> LeaseState | None:
    """The lease in `folder`, or None when there is none or it cannot be read (a damaged
    lease protects nothing: it is taken over)."""
    try:
        d = read_json(Path(folder) / CLAIM_FILE)
        owner = Owner(str(d["host"]), int(d["pid"]), str(d["token"]))
        return LeaseState(owner, float(d["heartbeat"]), float(d["ttl_s"]))
    except (OSError, ValueError, KeyError, TypeError, OverflowError):  # JSONDecodeError too
        return None


class Lease:
    """A claim this process holds on a run folder (from `claim`)."""

    def __init__(self, folder: Path, owner: Owner, ttl_s: float) -> None:
        self.folder, self.owner, self.ttl_s = folder, owner, ttl_s
        self.longest_epoch = 0.0

    @property
    def path(self) -> Path:
        return self.folder / CLAIM_FILE

    def _write(self, now: float) -> None:
        atomic_write_json(self.path, {"host": self.owner.host, "pid": self.owner.pid,
                                      "token": self.owner.token, "heartbeat": now,
                                      "ttl_s": self.ttl_s})

    def held(self) -> bool:
        state = read_lease(self.folder)
        return state is not None and state.owner.token == self.owner.token

    def renew(self, epoch_seconds: float = 0.0, now: float | None = None) -> None:
        """After an epoch of `epoch_seconds`: check the lease is still ours (`ClaimLost` if
        not) and write a fresh heartbeat, with the ttl grown to three of the longest epochs."""
        state = read_lease(self.folder)
        if state is None or state.owner.token != self.owner.token:
            who = "nobody" if state is None else state.owner.text()
            raise ClaimLost(f"{self.folder.name}: stopped, the run was taken over by {who} "
                            f"while this process trained it")
        self.longest_epoch = max(self.longest_epoch, epoch_seconds)
        self.ttl_s = min(max(MIN_TTL_S, EPOCHS_OF_SILENCE * self.longest_epoch), MAX_TTL_S)
        self._write(time.time() if now is None else now)

    def release(self) -> None:
        """Remove the lease if it is still ours (never someone else's)."""
        if self.held():
            self.path.unlink(missing_ok=True)


def claim(folder: str | Path, owner: Owner | None = None, now: float | None = None) -> Lease:
    """Claim `folder` for `owner` (default: this process with a fresh token), or raise
    `RunClaimed` with one line naming the holder and when its lease runs out."""
    folder = Path(folder)
    owner = owner or Owner.this_process()
    now = time.time() if now is None else now
    state = read_lease(folder)
    if state is not None and state.owner.token != owner.token and state.live(now):
        until = time.strftime("%H:%M UTC", time.gmtime(state.heartbeat + min(state.ttl_s,
                                                                         MAX_TTL_S)))
        raise RunClaimed(f"{folder.name}: skipped, {state.owner.text()} is training it (its "
                         f"claim runs out at {until} without a heartbeat; delete "
                         f"{folder / CLAIM_FILE} if that process is gone)")
    lease = Lease(folder, owner, MIN_TTL_S)
    lease._write(now)
    if not lease.held():  # another process wrote between our read and our write
        state = read_lease(folder)
        who = "another process" if state is None else state.owner.text()
        raise RunClaimed(f"{folder.name}: skipped, {who} claimed it at the same moment")
    return lease


__all__ = ["CLAIM_FILE", "ClaimLost", "Lease", "LeaseState", "MAX_TTL_S", "MIN_TTL_S", "Owner",
           "RunClaimed", "claim", "read_lease"]

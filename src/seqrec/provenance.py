"""Which code made a result: seqrec's version and, where it can be known, its git commit.

Every run record carries `code_version()` (in `versions`), so a grid trained over weeks can
tell when its runs came from more than one seqrec (`versions_line`): the notebook pins the
version it installs, and the runner, the plan and the report say when a folder mixes versions.

The commit is read without running git: pip records the commit of an install from a git URL
(`direct_url.json`, PEP 610); a checkout installed from its folder is read from its `.git`
(HEAD, then the ref it names, loose or packed). Anything else gives "".
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from seqrec import __version__


def code_version() -> dict[str, str]:
    """`{"seqrec": version, "commit": sha or ""}` of the running seqrec."""
    return {"seqrec": __version__, "commit": _commit()}


def version_text(versions: dict) -> str:
    """`0.3.0` or `0.3.0 (1a2b3c4d)`: a record's seqrec version as shown to a user."""
    version = str(versions.get("seqrec") or "unknown")
    commit = str(versions.get("commit") or "")
    return f"{version} ({commit[:8]})" if commit else version


def version_counts(all_versions: Iterable[dict]) -> tuple[list[str], str]:
    """The distinct seqrec versions of records' `versions`, and a text counting the records of
    each: (["0.2.0", "0.3.0"], "2 by seqrec 0.2.0, 1 by seqrec 0.3.0")."""
    counts = Counter(version_text(v) for v in all_versions)
    return sorted(counts), ", ".join(f"{n} by seqrec {v}" for v, n in sorted(counts.items()))


def versions_line(all_versions: Iterable[dict], what: str = "finished runs") -> str | None:
    """One line when `all_versions` (records' `versions`) name more than one seqrec, or one
    other than the running code; None when they all came from this code."""
    counts, parts = version_counts(all_versions)
    here = version_text(code_version())
    if not counts or counts == [here]:
        return None
    mixed = "more than one version" if len(counts) > 1 else "another version"
    return (f"{what} came from {mixed}: {parts}; this is seqrec {here}. Their results stand; "
            "compare runs of different versions with care (the README's notes on versions)")


def _commit() -> str:
    try:
        dist = metadata.distribution("seqrec")
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, ValueError):
        return ""
    commit = (direct.get("vcs_info") or {}).get("commit_id")
    if commit:
        return str(commit)
    url = urlparse(str(direct.get("url", "")))
    return _git_head(Path(unquote(url.path))) if url.scheme == "file" else ""


def _git_head(folder: Path) -> str:
    """The commit a checkout's HEAD names, read from its files; "" when it cannot be read."""
    git = folder / ".git"
    try:
        if git.is_file():  # a worktree: "gitdir: PATH"
            git = Path(git.read_text().split(":", 1)[1].strip())
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(":", 1)[1].strip()
        common = git / "commondir"
        roots = [git] + ([git / common.read_text().strip()] if common.is_file() else [])
        for root in roots:
            if (root / ref).is_file():
                return (root / ref).read_text().strip()
            packed = root / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
    except (OSError, IndexError):
        return ""
    return ""

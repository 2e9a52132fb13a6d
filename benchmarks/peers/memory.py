"""Memory of the current process, for both runners (no seqrec or RecBole import)."""

from __future__ import annotations

import resource


def peak_rss_bytes() -> int:
    """The process' resident-set high-water mark so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_bytes() -> int:
    """The process' resident set now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

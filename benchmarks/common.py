"""What the benchmark scripts share: median timing and writing their section of the docs."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall-clock seconds of `fn()` over `repeats` calls, and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def write_section(heading: str, body: str, doc: Path = DOC) -> None:
    """Replace (or append) the section `## heading` of docs/benchmarks.md, nothing else.

    The file is read just before writing: other benchmarks own the other sections.
    """
    old = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    block = f"## {heading}\n\n{body.strip()}\n\n"
    new = (pattern.sub(lambda _: block, old) if pattern.search(old)
           else old.rstrip("\n") + "\n\n" + block)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(new.rstrip("\n") + "\n", encoding="utf-8")

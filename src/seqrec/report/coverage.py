"""How many test windows stand behind a number, and the minimum below which it is noise.

A Recall@20 over n test windows is a proportion: its standard error is sqrt(p (1 - p) / n),
0.046 at p = 0.3 and n = 100, and a single window gives 0 or 1. On a small log or a long window
length a chunk can leave a handful of test windows (issue 22: one window, shown as
"0.000000 +- 0.000000"). So every table gives the fewest test windows behind each of its cells
(validation windows for exp 3's validation loss), and a run below `MIN_TEST_WINDOWS`, overall
or in the popularity third a cell shows, is marked: "(few)" beside the count in tables, a
circle around its point in figures, and named in a warning (`few_window_sentence`). The plan
warns before training when a split leaves that few (`seqrec.preflight`).
"""

from __future__ import annotations

import math

import pandas as pd

from seqrec.data.windows import THIRDS

MIN_TEST_WINDOWS = 100
FEW_MARK = "(few)"
TEST_WINDOWS = "Test windows"
VAL_WINDOWS = "Val windows"
COUNT_COLUMNS = (TEST_WINDOWS, VAL_WINDOWS)
WINDOWS_KEY = "test_windows"  # runs_frame's column (per third: "<third>/test_windows")


def is_few(count: float) -> bool:
    """Whether a window count (NaN: unknown) is below the minimum."""
    return not math.isnan(count) and count < MIN_TEST_WINDOWS


def count_text(count: float) -> str:
    """A window count as a table shows it: "1 (few)" below the minimum."""
    return f"{count:,.0f}" + (f" {FEW_MARK}" if is_few(count) else "")


def few_runs(records: list, thirds: tuple[str, ...] = (), part: str = "test"
             ) -> list[tuple[str, int]]:
    """(run id, fewest windows) of every finished run with fewer windows of `part` ("test",
    or "val" for exp 3's validation loss) than the minimum, overall or in one of `thirds`."""
    out = []
    for r in records:
        if not r.ok:
            continue
        if part == "val":
            counts = [int(((r.split or {}).get("windows") or {}).get("val", 0))]
        else:
            by_third = r.n_windows_by_popularity or {}
            counts = [*([r.n_test_windows] if r.n_test_windows else []),  # 0: not recorded
                      *(by_third[t] for t in thirds if t in by_third)]
        counts = [c for c in counts if c or part == "test"]
        if counts and min(counts) < MIN_TEST_WINDOWS:
            out.append((r.run_id, int(min(counts))))
    return out


def few_window_sentence(records: list, experiment: str, table: pd.DataFrame | None = None,
                        shown: int = 5) -> str | None:
    """One sentence naming the runs of `experiment` below the minimum (None when there are
    none). Which windows count is read from its `table`: validation windows where it shows
    `Val windows`, and each popularity third where it has a `Scope` column (exp 4)."""
    columns = set(table.columns) if table is not None else set()
    part = "val" if VAL_WINDOWS in columns else "test"
    thirds = THIRDS if "Scope" in columns else ()
    few = few_runs([r for r in records if r.experiment == experiment], thirds, part)
    if not few:
        return None
    where = " overall or in a popularity third" if thirds else ""
    names = ", ".join(f"{run_id} ({n})" for run_id, n in few[:shown])
    more = f" and {len(few) - shown} more" if len(few) > shown else ""
    what = "validation" if part == "val" else "test"
    runs = f"{len(few)} {experiment} run" + (" rests" if len(few) == 1 else "s rest")
    return (f"WARNING: {runs} on fewer "
            f"than {MIN_TEST_WINDOWS} {what} windows{where}, too few for their numbers to "
            f"mean much (marked {FEW_MARK} in the table and circled in the figure): "
            f"{names}{more}")

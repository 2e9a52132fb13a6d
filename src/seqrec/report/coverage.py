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


def few_runs(records: list, thirds: tuple[str, ...] = ()) -> list[tuple[str, int]]:
    """(run id, fewest windows) of every finished run with fewer test windows than the minimum,
    overall or in one of `thirds` (exp 4's tables show each third)."""
    out = []
    for r in records:
        if not r.ok:
            continue
        counts = [r.n_test_windows, *((r.n_windows_by_popularity or {}).get(t, 0)
                                      for t in thirds)]
        if min(counts) < MIN_TEST_WINDOWS:
            out.append((r.run_id, int(min(counts))))
    return out


def few_window_sentence(records: list, experiment: str, thirds: tuple[str, ...] = (),
                        shown: int = 5) -> str | None:
    """One sentence naming the runs below the minimum (None when there are none)."""
    few = few_runs([r for r in records if r.experiment == experiment], thirds)
    if not few:
        return None
    where = " overall or in a popularity third" if thirds else ""
    names = ", ".join(f"{run_id} ({n})" for run_id, n in few[:shown])
    more = f" and {len(few) - shown} more" if len(few) > shown else ""
    return (f"WARNING: {len(few)} {experiment} run{'s' if len(few) != 1 else ''} rest on fewer "
            f"than {MIN_TEST_WINDOWS} test windows{where}, too few for the numbers to mean "
            f"much (marked {FEW_MARK} in the table and circled in the figure): {names}{more}")

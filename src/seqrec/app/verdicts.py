"""The claims chapter of a report, the planted-truth check of the claims, and verdict lines.

`claims_chapter` evaluates the registry's claims (`seqrec.experiments.CLAIMS`) on one request
context's records and writes their table (Markdown, LaTeX, CSV) and forest plot; the report
opens with it (`seqrec.app.report`). `planted_claims` evaluates claims 1 and 2 on the
validation experiment's scenarios, where the truth is known (docs/validation.md):

- `taste` (the user's favourite artists planted): claim 1 must come out *contradicted*;
- `long_range` (a recall of the play 5 back planted): claim 2 must come out *contradicted*,
  through the DNC at the long window (against its short window, or against the GRU);
- `neither`: claims 1 and 2 must come out *supported* or *undecided*, never contradicted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from seqrec.experiments import CLAIMS, PLANTED_CLAIMS
from seqrec.io import atomic_write, atomic_write_text
from seqrec.record import RunRecord
from seqrec.report.claims import (
    MARGIN,
    Claim,
    ClaimResult,
    ComparisonResult,
    RanksOf,
    claims_frame,
    details_frame,
    evaluate_claim,
    evaluate_claims,
    figure_claims,
)
from seqrec.report.paired import BOOTSTRAP
from seqrec.report.render import to_latex, to_markdown, to_text
from seqrec.validate import EXPERIMENT as VALIDATE
from seqrec.validate import SCENARIOS, scenario_of

# What each scenario's planted truth demands of claims 1 and 2.
PLANTED: dict[tuple[str, str], tuple[str, ...]] = {
    ("taste", "1"): ("contradicted",),
    ("long_range", "2"): ("contradicted",),
    ("neither", "1"): ("supported", "undecided"),
    ("neither", "2"): ("supported", "undecided"),
}
# ... and claim 2 on `long_range` must be contradicted through the DNC at the long window.
PLANTED_VIA = {("long_range", "2"): "dnc"}
PLANTED_COLUMNS = ["Scenario", "Claim", "Expected", "Verdict", "As expected",
                   "Deciding comparison", "Effect (Recall@20)", "Low", "High"]


def _via_long(res: ClaimResult, model: str) -> ComparisonResult | None:
    """The strongest contradicted comparison whose first run is `model` at the longest window
    of its comparison (the DNC at the long window, against its short window or the GRU)."""
    found = []
    for c in res.results:
        first = c.comparison.cells[0].runs[0]
        values = {r.spec.value for cell in c.comparison.cells for r in cell.runs}
        if (c.verdict == "contradicted" and first.spec.model == model
                and first.spec.value == max(values)):
            found.append(c)
    return max(found, key=lambda c: c.effect.estimate) if found else None


def _claim(key: str) -> Claim:
    return next(c for c in CLAIMS if c.key == key)


def planted_claims(records: list[RunRecord], ranks_of: RanksOf, n_boot: int = 2000
                   ) -> tuple[pd.DataFrame, dict[tuple[str, str], ClaimResult]]:
    """Claims 1 and 2 on each validation scenario's runs, against what was planted: a table
    (columns `PLANTED_COLUMNS`) and the results by (scenario, claim)."""
    mine = [r for r in records if r.ok and r.experiment == VALIDATE]
    present = list(dict.fromkeys(scenario_of(r.spec.group) for r in mine))
    scenarios = [s for s in SCENARIOS if s in present] + [s for s in present
                                                         if s not in SCENARIOS]
    rows, results = [], {}
    for scenario in scenarios:
        part = [r for r in mine if scenario_of(r.spec.group) == scenario]
        for key in PLANTED_CLAIMS:
            res = evaluate_claim(_claim(key), part, ranks_of, reads=(VALIDATE,), n_boot=n_boot)
            results[scenario, key] = res
            expected = PLANTED.get((scenario, key))
            shown, ok = res.deciding, expected is not None and res.verdict in expected
            via = PLANTED_VIA.get((scenario, key))
            if via is not None:
                shown = _via_long(res, via)
                ok = ok and shown is not None
            e = shown.effect if shown else None
            rows.append([scenario, key, " or ".join(expected) if expected else "-",
                         res.verdict, "-" if expected is None else ("yes" if ok else "NO"),
                         shown.comparison.label if shown else "-",
                         e.estimate if e else float("nan"), e.low if e else float("nan"),
                         e.high if e else float("nan")])
    return pd.DataFrame(rows, columns=PLANTED_COLUMNS), results


@dataclass
class ClaimsChapter:
    """What the claims add to a report chapter: Markdown lines, PDF pages (title, text lines or
    a figure, header lines to repeat) and one verdict line per claim."""

    md: list[str] = field(default_factory=list)
    pdf: list[tuple[str, list[str] | Figure, int]] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    frame: pd.DataFrame | None = None


def _save(fig: Figure, path: Path) -> None:
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))


def _shown(frame: pd.DataFrame) -> pd.DataFrame:
    """The claims table as the report shows it (the sentence goes below, not in a cell)."""
    return frame.drop(columns=["Statement", "Sentence"])


def claims_chapter(records: list[RunRecord], ranks_of: RanksOf, folder: Path,
                   suffix: str = "") -> ClaimsChapter:
    """Evaluate the claims on one context's records; write `claims<suffix>.md/.tex/.csv`,
    `claims<suffix>_details.md` and the forest plot `claims<suffix>.png` into `folder`."""
    out = ClaimsChapter()
    results = evaluate_claims(CLAIMS, records, ranks_of)
    planted, by_scenario = planted_claims(records, ranks_of)
    if not results and planted.empty:
        return out
    out.md += ["## The thesis' conclusions on these runs", ""]
    if results:
        frame = claims_frame(results)
        out.frame = frame
        details = details_frame(results)
        stem = f"claims{suffix}"
        atomic_write_text(folder / f"{stem}.md", to_markdown(frame))
        atomic_write_text(folder / f"{stem}.tex", to_latex(
            _shown(frame), caption="The thesis' conclusions as claims", label=f"tab:{stem}"))
        atomic_write_text(folder / f"{stem}.csv", frame.to_csv(index=False))
        atomic_write_text(folder / f"{stem}_details.md", to_markdown(details))
        fig = figure_claims(results)
        _save(fig, folder / f"{stem}.png")
        fallback = [r.claim.key for r in results if r.fallback]
        out.md += [f"Each claim's effect is on Recall@20, pooled over chunks and seeds, with an "
                   f"interval from a bootstrap over users and seeds of the runs' per-window "
                   f"ranks, at 95% for the claim as a whole: each of a claim's m comparisons at "
                   f"1 - 0.05/m, its p-value times m (Bonferroni). Margin: {MARGIN:g} "
                   f"Recall@20 (docs/validation.md, \"Claims and their verdicts\"). Files: "
                   f"[{stem}.md]({stem}.md), [{stem}.tex]({stem}.tex), [{stem}.csv]({stem}.csv);"
                   f" every comparison: "
                   f"[{stem}_details.md]({stem}_details.md).", ""]
        if fallback:
            out.md += [f"Some runs of claim(s) {', '.join(fallback)} have no ranks file (an "
                       f"older seqrec, or a damaged file): those comparisons fall back to the "
                       f"seed-level test over their records (method \"seed-level t\").", ""]
        out.md += [to_markdown(_shown(frame))]
        out.md += [f"- **Claim {r.claim.key}** ({r.claim.statement}) {r.sentence}"
                   for r in results] + [""]
        out.md += [f"![Claims: effect and interval per cell]({stem}.png)", ""]
        lines = [f"Claim {r.claim.key}: {r.claim.statement}  ->  {r.verdict.upper()}. "
                 f"{r.sentence}" for r in results]
        out.pdf.append(("The thesis' conclusions on these runs", [
            *lines, "", *to_text(_shown(frame).drop(columns=["Runs read"]))], 0))
        out.pdf.append(("Claims: effect and interval per cell", fig, 0))
        out.verdicts += [f"claim {r.claim.key}: {r.verdict} -- {r.sentence}" for r in results]
        if any(r.effect.method != BOOTSTRAP for res in results for r in res.results):
            out.verdicts.append("(some comparisons used the seed-level fallback: runs without "
                                "ranks)")
    if not planted.empty:
        out.md += ["### Claims on planted truth (validation experiment)", "",
                   "Claims 1 and 2 on the validation scenarios, where what is planted is known: "
                   "with a planted taste the user must matter (claim 1 contradicted), with a "
                   "planted long-range recall the long window must matter (claim 2 "
                   "contradicted), with neither both must not be contradicted.", "",
                   to_markdown(planted)]
        fig = figure_claims(list(by_scenario.values()), titles=[
            f"{scenario}: claim {key} ({_claim(key).title})" for scenario, key in by_scenario])
        _save(fig, folder / f"claims_planted{suffix}.png")
        out.md += [f"![Claims on planted truth]({f'claims_planted{suffix}.png'})", ""]
        out.pdf.append(("Claims on planted truth", to_text(planted), 2))
        out.pdf.append(("Claims on planted truth: effect and interval per cell", fig, 0))
        out.verdicts += [f"planted {row.Scenario}, claim {row.Claim}: {row.Verdict} (expected "
                         f"{row.Expected}: {row._5})" for row in planted.itertuples()]
    return out


def side_by_side(chapters: list[tuple[str, pd.DataFrame | None]]) -> pd.DataFrame:
    """Verdicts of the same claims under several contexts (e.g. splits): one row per claim,
    one column per context."""
    keys: list[str] = []
    for _, frame in chapters:
        if frame is not None:
            keys += [k for k in frame["Claim"] if k not in keys]
    data = {"Claim": keys}
    for title, frame in chapters:
        got = {} if frame is None else dict(zip(frame["Claim"], frame["Verdict"], strict=True))
        data[title] = [got.get(k, "-") for k in keys]
    return pd.DataFrame(data)


def verdicts_path(folder: Path) -> Path:
    """Where the report keeps its verdict lines (`seqrec report` prints them)."""
    return folder / "verdicts.txt"

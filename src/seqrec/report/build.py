"""Assemble the report: tables, figures and tests into `<out>/report/` (Markdown + PDF).

The report builds from whatever records exist: an experiment without runs gets "no runs yet",
failed runs are listed with their reasons and expected runs without a record are listed as
missing. Every file is written atomically (seqrec.io), so a reader never sees half a report.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import IO

import matplotlib
import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from seqrec.io import atomic_write, atomic_write_text
from seqrec.report.figures import FIGURES
from seqrec.report.records import EXPERIMENTS, load_records, status_lists
from seqrec.report.render import to_latex, to_markdown, to_text
from seqrec.report.stats import MIN_WILCOXON_PAIRS, twin_tests
from seqrec.report.tables import TABLES, table_other

TITLES = {
    "exp1": "Exp 1: preprocessing (time chunks, item play-count threshold)",
    "exp2": "Exp 2: training-set size",
    "exp3": "Exp 3: embedding size",
    "exp4": "Exp 4: window length, overall and per popularity third",
}
# Twin tests per experiment: (metrics, higher is better). Exp 3's metric is a loss.
TESTED = {"exp1": (("recall@20", "recall@1"), True), "exp2": (("recall@20", "recall@1"), True),
          "exp3": (("best_val_loss",), False), "exp4": (("recall@20", "recall@1"), True)}
PAGE = (11.69, 8.27)  # A4 landscape, inches


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _spec_text(spec: dict) -> str:
    keys = ("experiment", "group", "model", "chunk", "seed", "axis", "value")
    return ", ".join(f"{k}={spec[k]}" for k in keys if spec.get(k) is not None)


def _spec_of(entry: dict) -> dict:
    """The spec of an expected-grid entry: `{"run_id", "spec"}` or a flat spec dict."""
    return entry["spec"] if isinstance(entry.get("spec"), dict) else entry


def _experiments(records: list[dict], experiments: list[str] | None,
                 expected: list[dict] | None) -> list[str]:
    present = {str(r.get("spec", {}).get("experiment")) for r in records}
    present |= {str(_spec_of(e).get("experiment")) for e in expected or []}
    if experiments is None:
        return [*EXPERIMENTS, *sorted(present - set(EXPERIMENTS) - {"None"})]
    known = set(EXPERIMENTS) | present
    unknown = [e for e in experiments if e not in known]
    if unknown:
        raise ValueError(f"experiments: unknown name(s) {unknown}; choose from {sorted(known)}")
    return list(experiments)


def _save_figure(fig: Figure, path: Path) -> None:
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))


def _tests_table(tests: pd.DataFrame) -> pd.DataFrame:
    shown = tests.drop(columns=["Conclusion"]).rename(columns={"p": "p-value"})
    return shown


class _Section:
    """What one experiment contributes: Markdown lines, PDF text pages and figures."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.md: list[str] = [f"## {title}", ""]
        # (page title, text lines or a figure, header lines to repeat on continuation pages)
        self.pdf: list[tuple[str, list[str] | Figure, int]] = []


def _experiment_section(name: str, records: list[dict], folder: Path) -> _Section:
    section = _Section(TITLES.get(name, f"Other runs: {name}"))
    mine = [r for r in records if r.get("spec", {}).get("experiment") == name]
    ok = [r for r in mine if r.get("status", "ok") == "ok"]
    if not ok:
        section.md += ["no runs yet" + (f" ({len(mine)} failed, listed below)" if mine else ""),
                       ""]
        return section
    table = TABLES[name](ok) if name in TABLES else table_other(ok, name)
    if name == "validate" and (folder / "validation.md").exists():
        # written by `seqrec validate` with the planted-effect checks; point readers at it
        section.md += ["The checks of the validation experiment (planted effects found or not) "
                       "are in [validation.md](validation.md).", ""]
    atomic_write_text(folder / f"{name}.md", to_markdown(table))
    atomic_write_text(folder / f"{name}.tex", to_latex(table, caption=section.title,
                                                       label=f"tab:{name}"))
    atomic_write_text(folder / f"{name}.csv", table.to_csv(index=False))
    section.md += [f"{_count(len(ok), 'finished run')}. Table files: [{name}.md]({name}.md), "
                   f"[{name}.tex]({name}.tex), [{name}.csv]({name}.csv).", "",
                   to_markdown(table)]
    section.pdf.append((f"{section.title}: table", to_text(table), 2))
    if name in FIGURES:
        fig = FIGURES[name](ok, table=table)
        _save_figure(fig, folder / f"{name}.png")
        section.md += [f"![{section.title}]({name}.png)", ""]
        section.pdf.append((section.title, fig, 0))
    if name in TESTED:
        tests = twin_tests(ok, name, *TESTED[name])
        if not tests.empty:
            atomic_write_text(folder / f"{name}_tests.md", to_markdown(_tests_table(tests)))
            section.md += ["### User-based vs vanilla: paired tests", "",
                           f"Pairs are runs on the same (chunk, seed); Wilcoxon signed-rank from "
                           f"{MIN_WILCOXON_PAIRS} pairs, paired t-test below that (under "
                           f"{MIN_WILCOXON_PAIRS} pairs Wilcoxon cannot reach p < 0.05).", ""]
            pooled = tests[tests["Setting"] == "all"]
            section.md += [f"- {g}: {s}" for g, s in zip(pooled["Group"], pooled["Conclusion"],
                                                         strict=True)]
            section.md += ["", to_markdown(_tests_table(tests))]
            lines = [*(f"{g}: {s}" for g, s in zip(pooled["Group"], pooled["Conclusion"],
                                                   strict=True)), "", *to_text(_tests_table(tests))]
            section.pdf.append((f"{section.title}: paired tests", lines, 0))
    return section


def _split_stale(records: list[dict], expected: list[dict] | None
                 ) -> tuple[list[dict], list[dict]]:
    """(records of the grid, stale records): a record is stale when the grid covers its
    experiment but not its run id, i.e. it was run with other settings or on other data (run
    ids hash both) into the same folder. Stale records stay out of the tables, which would
    otherwise pool them with the grid's runs as if they were more seeds."""
    if expected is None:
        return records, []
    planned = {e.get("run_id") for e in expected}
    covered = {_spec_of(e).get("experiment") for e in expected}
    is_stale = [r.get("spec", {}).get("experiment") in covered and r.get("run_id") not in planned
                for r in records]
    return ([r for r, old in zip(records, is_stale, strict=True) if not old],
            [r for r, old in zip(records, is_stale, strict=True) if old])


def _status_section(failed: list[dict], missing: list[dict],
                    expected: list[dict] | None, stale: list[dict] = ()) -> _Section:
    section = _Section("Failed and missing runs")
    lines = [f"Failed runs: {len(failed)}"]
    lines += [f"- `{f['run_id']}` ({_spec_text(f['spec'])}): {f['reason']}" for f in failed]
    lines.append("")
    if expected is None:
        lines.append("Missing runs: unknown (no expected grid given)")
    else:
        lines.append(f"Missing runs: {len(missing)} of {len(expected)} expected")
        lines += [f"- `{m['run_id']}` ({_spec_text(m['spec'])})" for m in missing]
    if stale:
        lines += ["", f"Records outside this grid, left out of the tables: {len(stale)} (run "
                  "with other settings or on other data into this folder; move them away or "
                  "report them with their own settings)"]
        lines += [f"- `{r.get('run_id')}`" for r in stale[:10]]
        lines += [f"- ... and {len(stale) - 10} more"] if len(stale) > 10 else []
    section.md += [*lines, ""]
    section.pdf.append((section.title, [line.replace("`", "") for line in lines], 0))
    return section


def _summary(records: list[dict], failed: list[dict], missing: list[dict],
             expected: list[dict] | None, names: list[str], stale: list[dict] = ()
             ) -> list[str]:
    ok = [r for r in records if r.get("status", "ok") == "ok"]
    lines = [f"{_count(len(records), 'run record')}: {len(ok)} finished, {len(failed)} failed"
             + ("" if expected is None else f"; {len(missing)} of {len(expected)} expected "
                "runs missing")
             + (f"; {_count(len(stale), 'record')} from other settings or data left out"
                if stale else "") + "."]
    for name in names:
        n_ok = sum(r.get("spec", {}).get("experiment") == name for r in ok)
        n_fail = sum(f["spec"].get("experiment") == name for f in failed)
        n_miss = sum(m["spec"].get("experiment") == name for m in missing)
        seeds = sorted({r["spec"].get("seed") for r in ok
                        if r.get("spec", {}).get("experiment") == name} - {None})
        seed_text = f" (seeds {', '.join(map(str, seeds))})" if seeds else ""
        lines.append(f"- {TITLES.get(name, name)}: {n_ok} finished{seed_text}, {n_fail} failed, "
                     f"{n_miss} missing")
    return lines


def _text_pages(pdf: PdfPages, title: str, lines: list[str], repeat: int = 0) -> None:
    """Monospace text pages; the font shrinks to fit the widest line, long lists paginate and
    the first `repeat` lines (a table's header) are repeated on every continuation page."""
    wrapped = [part for line in lines
               for part in (textwrap.wrap(line, 160, subsequent_indent="    ") or [""])]
    head, body = wrapped[:repeat], wrapped[repeat:]
    widest = max([len(line) for line in wrapped] + [40])
    size = min(9.0, PAGE[0] * 72 * 0.9 / (0.6 * widest))
    per_page = max(10, int(PAGE[1] * 72 * 0.82 / (size * 1.3)) - len(head))
    for page, start in enumerate(range(0, max(len(body), 1), per_page)):
        fig = Figure(figsize=PAGE)
        fig.text(0.04, 0.95, title + (" (continued)" if page else ""), fontsize=13,
                 family="Helvetica", weight="bold", va="top")
        fig.text(0.04, 0.90, "\n".join(head + body[start:start + per_page]),
                 family="Courier", weight="medium", fontsize=size, va="top", linespacing=1.3)
        # The PDF's built-in Courier and Helvetica (WinAnsi: "±" included) need no embedded
        # glyphs: ten times faster than DejaVu for pages of text. Scoped to this save only.
        with matplotlib.rc_context({"pdf.use14corefonts": True}):
            pdf.savefig(fig)


def _write_pdf(f: IO[bytes], summary: list[str], sections: list[_Section]) -> None:
    with PdfPages(f, metadata={"Title": "seqrec report"}) as pdf:
        _text_pages(pdf, "seqrec report", summary)
        for section in sections:
            for title, content, repeat in section.pdf:
                if isinstance(content, Figure):
                    pdf.savefig(content)
                else:
                    _text_pages(pdf, title, content, repeat)


def build_report(out_dir: str | Path, expected: list[dict] | None = None,
                 experiments: list[str] | None = None) -> Path:
    """Write tables, figures, `report.md` and `report.pdf` under `<out_dir>/report/`.

    `expected`: the runner's full grid (dicts with "run_id" and "spec"), to list missing runs;
    `experiments`: names to include (default exp1..exp4 plus any other experiment present).
    Returns the path of `report.md`.
    """
    records = load_records(out_dir)
    names = _experiments(records, experiments, expected)
    folder = Path(out_dir) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    chosen = [r for r in records if r.get("spec", {}).get("experiment") in names]
    chosen_expected = None if expected is None else [
        e for e in expected if _spec_of(e).get("experiment") in names]
    chosen, stale = _split_stale(chosen, chosen_expected)
    failed, missing = status_lists(chosen, chosen_expected)
    sections = [_experiment_section(name, chosen, folder) for name in names]
    sections.append(_status_section(failed, missing, chosen_expected, stale))
    summary = _summary(chosen, failed, missing, chosen_expected, names, stale)
    md = ["# seqrec report", "", f"Run records from `{Path(out_dir)}`. Every number is named by "
          "its metric (e.g. Recall@20); means and standard deviations (sample, ddof = 1) pool "
          "chunks and seeds.", "", *summary, ""]
    for section in sections:
        md += section.md
    atomic_write_text(folder / "report.md", "\n".join(md).rstrip() + "\n")
    atomic_write(folder / "report.pdf", lambda f: _write_pdf(f, summary, sections))
    return folder / "report.md"

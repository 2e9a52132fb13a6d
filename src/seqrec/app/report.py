"""Assemble the report: tables, figures and tests into `<out>/report/` (Markdown + PDF).

The report takes everything it tabulates from the run records in the folder: each record names
the grid request that planned it (experiment, profile, overrides, models, data), so the grid is
rebuilt from the records themselves and the runs it still lacks are listed as missing. Records
of different requests (another data file, other settings, another profile) are never pooled:
each request context gets its own chapter ("Group N: <data>, profile <p>"), headed by its data
source and settings, with the experiments in registry order. Failed runs are listed with their
reasons. Every file is written atomically (seqrec.io), and a folder without records never
overwrites a report.

Records are input like any other file (output folders are shared): a damaged record is left out
and listed, with the records the runner set aside and those of a format without a checksum; a
file name made from a record passes `seqrec.io.safe_name`; LaTeX gets every string escaped; a
stored grid request larger than `seqrec.experiment.MAX_GRID_RUNS` is refused with one line.
The report owns the files it writes into `report/` and lists them in `.report-files.json`;
a build removes the files of the previous build that it no longer writes (tables of an
experiment or a chapter that is gone), and nothing else (docs/reliability.md).
"""

from __future__ import annotations

import re
import textwrap
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import matplotlib
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from seqrec.app.verdicts import claims_chapter, side_by_side, verdicts_path
from seqrec.config import config_hash
from seqrec.experiment import GridRequest, GridTooLarge, build_grid, describe_grid, split_axis
from seqrec.experiments import EXPERIMENTS
from seqrec.io import atomic_write, atomic_write_json, atomic_write_text, read_json, safe_name
from seqrec.provenance import version_counts
from seqrec.ranks import RanksReader
from seqrec.record import RunLabel, RunRecord
from seqrec.report.baselines import METRIC, baseline_check, baseline_sentences
from seqrec.report.coverage import FEW_MARK, MIN_TEST_WINDOWS, few_window_sentence
from seqrec.report.records import (
    RecordScan,
    data_name,
    metric_label,
    scan_records,
    status_lists,
)
from seqrec.report.render import to_latex, to_markdown, to_text
from seqrec.report.stats import MIN_WILCOXON_PAIRS
from seqrec.report.tables import table_other

PAGE = (11.69, 8.27)  # A4 landscape, inches


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


MANIFEST = ".report-files.json"  # the files of report/ the last build wrote
# Before the manifest (seqrec before issue 19), the files the report owned were named by this
# pattern: an experiment of the registry, a chapter suffix, a table kind.
_LEGACY = re.compile(r"(?P<exp>[A-Za-z0-9.]+)(-[0-9a-f]{6})?(_tests)?\.(md|tex|csv|png)")


class _Files:
    """The report folder and the names written into it in this build."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.names: set[str] = set()

    def path(self, name: str) -> Path:
        self.names.add(safe_name(name, "report file name"))
        return self.folder / name

    def text(self, name: str, text: str) -> None:
        atomic_write_text(self.path(name), text)

    def figure(self, name: str, fig: Figure) -> None:
        atomic_write(self.path(name), lambda f: fig.savefig(f, format="png", dpi=110))

    def remove_stale(self) -> list[str]:
        """Delete the files the previous build wrote (its manifest; without one, the files the
        report's names match) that this build did not, then record this build's names."""
        try:
            before = read_json(self.folder / MANIFEST)["files"]
            owned = {n for n in before if isinstance(n, str)}
        except (OSError, ValueError, KeyError, TypeError):  # no manifest: an older seqrec
            owned = {p.name for p in self.folder.iterdir() if p.is_file()
                     and (m := _LEGACY.fullmatch(p.name)) and m["exp"] in EXPERIMENTS}
        removed = []
        for name in sorted(owned - self.names - {"report.md", "report.pdf"}):
            try:
                path = self.folder / safe_name(name, "report file name")
            except ValueError:
                continue  # a manifest entry that is no name of ours: never act on it
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed.append(name)
        atomic_write_json(self.folder / MANIFEST, {"files": sorted(self.names)})
        return removed


class _Section:
    """What one experiment contributes: Markdown lines, PDF text pages and figures."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.md: list[str] = [f"## {title}", ""]
        # (page title, text lines or a figure, header lines to repeat on continuation pages)
        self.pdf: list[tuple[str, list[str] | Figure, int]] = []


def _experiment_section(name: str, records: list[RunRecord], files: _Files,
                        suffix: str = "") -> _Section:
    exp = EXPERIMENTS.get(name)
    section = _Section(exp.title if exp else f"Other runs: {name}")
    mine = [r for r in records if r.experiment == name]
    ok = [r for r in mine if r.ok]
    if not ok:
        section.md += ["no runs yet" + (f" ({len(mine)} failed, listed below)" if mine else ""),
                       ""]
        return section
    stem = safe_name(f"{name}{suffix}", "the experiment name in a run record")
    table = exp.table(ok) if exp else table_other(ok, name)
    if exp is not None and exp.summary and (files.folder / exp.summary[0]).exists():
        # a file of the experiment's own (written by `seqrec validate`): point readers at it
        file, what = exp.summary
        section.md += [f"{what} are in [{file}]({file}).", ""]
    files.text(f"{stem}.md", to_markdown(table))
    files.text(f"{stem}.tex", to_latex(table, caption=section.title, label=f"tab:{stem}"))
    files.text(f"{stem}.csv", table.to_csv(index=False))
    ran = describe_grid([r.spec for r in ok], exp.axis_label) if exp else ""
    few = few_window_sentence(ok, name, table)
    notes = [f"{FEW_MARK}: fewer than {MIN_TEST_WINDOWS} windows behind a number."]
    section.md += [f"{ran} {_count(len(ok), 'finished run')}. Table files: "
                   f"[{stem}.md]({stem}.md), [{stem}.tex]({stem}.tex), [{stem}.csv]({stem}.csv).",
                   "", *([f"**{few}**", ""] if few else []), to_markdown(table), *notes, ""]
    section.pdf.append((f"{section.title}: table",
                        [*to_text(table), "", *notes, *([few] if few else []), "", ran], 2))
    if exp is not None and exp.figure is not None:
        fig = exp.figure(ok, table=table)
        files.figure(f"{stem}.png", fig)
        section.md += [f"![{section.title}]({stem}.png)", ""]
        section.pdf.append((section.title, fig, 0))
    check = baseline_check(ok, name)
    if not check.empty:
        warnings = baseline_sentences(check)
        section.md += ["### Against the count baselines", "",
                       f"Mean {metric_label(METRIC)} of each neural model and of the count "
                       "baselines on the same runs (axis value, chunk, seed).", ""]
        section.md += [f"- {w}" for w in warnings] + ([""] if warnings else [])
        section.md += [to_markdown(check)]
        section.pdf.append((f"{section.title}: against the count baselines",
                            [*warnings, "", *to_text(check)], 0))
    if exp is not None and exp.comparisons is not None:
        sentences, tests = exp.comparisons(ok)
        if not tests.empty:
            files.text(f"{stem}_tests.md", to_markdown(tests))
            section.md += ["### Tested comparisons", "",
                           f"Pairs are runs on the same (chunk, seed); Wilcoxon signed-rank from "
                           f"{MIN_WILCOXON_PAIRS} pairs, paired t-test below that (under "
                           f"{MIN_WILCOXON_PAIRS} pairs Wilcoxon cannot reach p < 0.05).", ""]
            section.md += [f"- {s}" for s in sentences]
            section.md += ["", to_markdown(tests)]
            section.pdf.append((f"{section.title}: tested comparisons",
                                [*sentences, "", *to_text(tests)], 0))
    return section


def _label_text(label: RunLabel) -> str:
    keys = ("experiment", "group", "model", "chunk", "seed", "axis", "value")
    return ", ".join(f"{k}={getattr(label, k)}" for k in keys if getattr(label, k) is not None)


def _status_section(failed: list[RunRecord], missing: list[RunLabel] | None,
                    n_expected: int | None) -> _Section:
    section = _Section("Failed and missing runs")
    lines = [f"Failed runs: {len(failed)}"]
    lines += [f"- `{f.run_id}` ({_label_text(f.spec)}): {f.reason or 'no reason given'}"
              for f in failed]
    lines.append("")
    if missing is None:
        lines.append("Missing runs: unknown (these records name no grid request)")
    else:
        lines.append(f"Missing runs: {len(missing)} of {n_expected} expected")
        lines += [f"- `{m.run_id}` ({_label_text(m)})" for m in missing]
    section.md += [*lines, ""]
    section.pdf.append((section.title, [line.replace("`", "") for line in lines], 0))
    return section


# ---------------------------------------------------------------------------------------------
# Chapters: one per request context

@dataclass
class Chapter:
    """The runs of one request context: one data source, profile and set of settings.

    `expected` holds the labels of every run its grids plan (None when the records name no
    request, e.g. records of an older seqrec); `suffix` keeps its table files apart from other
    chapters'; `names` are its experiments.
    """

    title: str
    context: list[str]
    records: list[RunRecord]
    expected: list[RunLabel] | None
    names: list[str] = field(default_factory=list)
    suffix: str = ""


def _other_settings(req: GridRequest) -> tuple[str, ...]:
    """A request's overrides without its experiment's own axis values."""
    exp = EXPERIMENTS.get(req.experiment)
    return split_axis(req.overrides, exp.axis)[1] if exp else req.overrides


def _context_key(req: GridRequest) -> tuple:
    """What a chapter shares: everything of a request but the experiment and its axis values
    (the grids of several experiments run together, e.g. `--experiment all`, share one)."""
    data = req.data.fingerprint if req.data is not None else None
    return (req.profile, tuple(sorted(_other_settings(req))), data, req.models, req.baselines)


def _data_line(d: dict) -> str:
    if d.get("kind") == "file":
        return (f"Data: `{d.get('file') or d.get('path')}` ({d.get('size_bytes', 0):,} bytes, "
                f"{d.get('rows_read', 0):,} rows read, {d.get('lines_skipped', 0):,} damaged "
                f"lines skipped; fingerprint {d.get('fingerprint')})")
    synth = d.get("synth") or {}
    return (f"Data: built-in generated log ({synth.get('n_rows', 0):,} plays, "
            f"{synth.get('n_users', 0)} users, seed {synth.get('seed')}; "
            f"{d.get('rows_read', 0):,} rows read; fingerprint {d.get('fingerprint')})")


def _context_lines(req: GridRequest, records: list[RunRecord]) -> list[str]:
    sources = {r.data.get("fingerprint"): r.data for r in records if r.data}
    lines = [_data_line(d) for d in sources.values()] + [_code_line(records)]
    settings = ", ".join(_other_settings(req)) or "the profile as is"
    lines.append(f"Profile: {req.profile}; settings: {settings}"
                 + ("" if req.models is None else f"; models {', '.join(req.models)}")
                 + ("" if req.baselines is None
                    else f"; baselines {', '.join(req.baselines) or 'none'}"))
    return lines


def _code_line(records: list[RunRecord]) -> str:
    """Which seqrec trained the chapter's runs; a warning when more than one did."""
    counts, parts = version_counts(r.versions for r in records)
    if len(counts) == 1:
        return f"Trained by seqrec {counts[0]}"
    return (f"WARNING: these runs came from more than one version of seqrec ({parts}); "
            "compare them with care (README, notes on versions)")


def _subsumed(ids: list[set], i: int) -> bool:
    """Whether grid `i`'s runs all belong to another (larger, or equal and earlier) grid."""
    return any(j != i and ids[i] <= ids[j] and (ids[i] != ids[j] or j < i)
               for j in range(len(ids)))


def _grids(records: list[RunRecord]) -> tuple[list[tuple[GridRequest, list[RunLabel]]],
                                              list[RunRecord]]:
    """The distinct grids the records' requests plan (a grid inside another dropped), and the
    records no grid plans."""
    requests: dict[str, GridRequest] = {}
    unplanned = []
    for r in records:
        try:
            req = GridRequest.from_json(r.request) if r.request is not None else None
        except (KeyError, TypeError, ValueError, AttributeError):
            req = None
        if req is None:
            unplanned.append(r)
        else:
            requests.setdefault(config_hash(req.to_json()), req)
    grids = []
    for req in requests.values():
        if not isinstance(req.experiment, str) or req.experiment not in EXPERIMENTS:
            # an experiment this version lacks
            continue
        try:
            labels = [s.label() for s in build_grid(EXPERIMENTS[req.experiment], req)]
        except GridTooLarge as e:  # a crafted record must not make the report run for ever
            warnings.warn(f"a grid request stored in a run record is refused: {e}",
                          RuntimeWarning, stacklevel=2)
            continue
        except (KeyError, TypeError, ValueError, AttributeError):  # a setting this version lacks
            continue
        grids.append((req, labels))
    ids = [{label.run_id for label in labels} for _, labels in grids]
    grids = [g for i, g in enumerate(grids) if not _subsumed(ids, i)]
    planned = {label.run_id for _, labels in grids for label in labels}
    unplanned += [r for r in records if r not in unplanned and r.run_id not in planned]
    return grids, unplanned


def chapters(records: list[RunRecord]) -> list[Chapter]:
    """Partition records by the grid requests that planned them (see the module docstring)."""
    grids, unplanned = _grids(records)
    by_context: dict[tuple, list[tuple[GridRequest, list[RunLabel]]]] = {}
    for req, labels in grids:
        by_context.setdefault(_context_key(req), []).append((req, labels))
    out = []
    for n, members in enumerate(by_context.values(), 1):
        labels = [label for _, ls in members for label in ls]
        wanted = {label.run_id for label in labels}
        mine = [r for r in records if r.run_id in wanted]
        sources = ", ".join(dict.fromkeys(data_name(r.data) for r in mine)) or "no data yet"
        title = f"Group {n}: {sources}, profile {members[0][0].profile}"
        splits = sorted({str((r.config.get("data") or {}).get("split", "thesis")) for r in mine})
        if splits and splits != ["thesis"]:  # the protocol tells groups of one log apart
            title += f", split {', '.join(splits)}"
        out.append(Chapter(title, _context_lines(members[0][0], mine), mine, labels,
                           names=list(dict.fromkeys(req.experiment for req, _ in members))))
    if unplanned:
        out.append(Chapter(
            "Records without a grid request",
            ["Records written by an older seqrec, or whose grid this version cannot rebuild; "
             "shown as they are."], unplanned, None,
            names=list(dict.fromkeys(r.experiment for r in unplanned))))
    if len(out) > 1:
        for c in out:
            c.suffix = "-" + config_hash(c.context, 6)
    return out


# ---------------------------------------------------------------------------------------------
# Writing

def _summary(records: list[RunRecord], expected: list[RunLabel] | None,
             failed: list[RunRecord], missing: list[RunLabel], names: list[str]) -> list[str]:
    ok = [r for r in records if r.ok]
    lines = [f"{_count(len(records), 'run record')}: {len(ok)} finished, {len(failed)} failed"
             + ("" if expected is None else f"; {len(missing)} of {len(expected)} expected "
                "runs missing") + "."]
    for name in names:
        mine = [r for r in ok if r.experiment == name]
        n_fail = sum(f.experiment == name for f in failed)
        n_miss = "an unknown number of" if expected is None else sum(
            m.experiment == name for m in missing)
        seeds = sorted({r.spec.seed for r in mine})
        seed_text = f" (seeds {', '.join(map(str, seeds))})" if seeds else ""
        title = EXPERIMENTS[name].title if name in EXPERIMENTS else name
        lines.append(f"- {title}: {len(mine)} finished{seed_text}, {n_fail} failed, "
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


def _ordered(names: list[str]) -> list[str]:
    """Registry order first (exp1 ... exp4, validate), then any other name sorted."""
    return [n for n in EXPERIMENTS if n in names] + sorted(set(names) - set(EXPERIMENTS))


def _integrity_lines(out: Path, scan: RecordScan | None) -> list[str]:
    """What the report could not use or verify: damaged records (left out), records the runner
    set aside (their runs redone), records without a checksum (an older format)."""
    if scan is None:
        return []
    lines = []
    if scan.damaged:
        lines.append(f"Damaged run records left out: {len(scan.damaged)} (the next run of their "
                     "grid sets them aside and redoes the runs)")
        lines += [f"- `{path.relative_to(out)}`: {reason.split(' is damaged: ')[-1]}"
                  for path, reason in scan.damaged]
    if scan.set_aside:
        lines.append(f"Damaged run records set aside and their runs redone: "
                     f"{len(scan.set_aside)}")
        lines += [f"- `{path.relative_to(out)}`" for path in scan.set_aside]
    if scan.unverified:
        lines.append(f"Run records without a checksum (written before seqrec checked records; "
                     f"read, values checked, content unverified): {len(scan.unverified)}")
    return lines


def render_report(out_dir: str | Path, parts: list[Chapter],
                  experiments: list[str] | None = None, scan: RecordScan | None = None) -> Path:
    """Write the chapters' tables, figures, `report.md` and `report.pdf`; return report.md.
    `scan` (from `scan_records`) adds what was damaged, set aside or unverified."""
    folder = Path(out_dir) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    files = _Files(folder)
    md = ["# seqrec report", "", f"Run records from `{Path(out_dir)}`. Every number is named by "
          "its metric (e.g. Recall@20); means and standard deviations (sample, ddof = 1) pool "
          "chunks and seeds. Records of other data or settings are never pooled: each request "
          "context (data, profile, settings) is a group of its own.", ""]
    integrity = _integrity_lines(Path(out_dir), scan)
    if integrity:
        md += [*integrity, ""]
    summary: list[str] = [*integrity, *([""] if integrity else [])]
    sections: list[_Section] = []
    ranks_of = RanksReader(out_dir)  # per-window ranks beside the records (seqrec.ranks)
    verdicts: list[str] = []
    by_chapter: list[tuple[str, object]] = []
    for chapter in parts:
        names = _ordered([n for n in chapter.names if experiments is None or n in experiments])
        if not names:
            continue
        records = [r for r in chapter.records if r.experiment in names]
        expected = None if chapter.expected is None else [
            e for e in chapter.expected if e.experiment in names]
        failed, missing = status_lists(records, expected)
        head = [*chapter.context, *_summary(records, expected, failed, missing, names)]
        md += [f"# {chapter.title}", ""]
        md += [*(f"{line}  " for line in head), ""]  # two spaces: a Markdown line break
        summary += [chapter.title, *head, ""]
        # The chapter opens with the thesis' conclusions tested on its runs (issue 21).
        claims = claims_chapter(records, ranks_of, folder, chapter.suffix)
        stem = f"claims{chapter.suffix}"
        for name in (f"{stem}.md", f"{stem}.tex", f"{stem}.csv", f"{stem}_details.md",
                     f"{stem}.png"):
            if (folder / name).exists():
                files.path(name)  # written by claims_chapter: tracked like every report file
        opening = _Section("The thesis' conclusions")
        opening.md, opening.pdf = claims.md, claims.pdf
        verdicts += [f"{chapter.title}: {line}" for line in claims.verdicts]
        by_chapter.append((chapter.title, claims.frame))
        mine = [opening] + [_experiment_section(n, records, files, chapter.suffix)
                            for n in names]
        mine.append(_status_section(failed, None if expected is None else missing,
                                    None if expected is None else len(expected)))
        for section in mine:
            md += section.md
        sections += mine
    table = side_by_side(by_chapter)
    if ((table.drop(columns=["Claim"]) != "-").sum(axis=1) > 1).any():
        # One folder, several contexts (e.g. splits): does each conclusion survive them all?
        md[4:4] = ["## Verdicts side by side", "", "The same claims under each chapter's "
                   "context (data, split, settings; each chapter's head names them):", "",
                   to_markdown(table)]
        summary += ["Verdicts side by side", *to_text(table), ""]
    summary = [f"Runs are grouped by the data they read, the profile and the settings; each "
               "group is reported on its own, never pooled with another "
               f"({_count(len(parts), 'group')} here).", "", *summary]
    files.text(verdicts_path(folder).name, "\n".join(verdicts) + "\n")
    files.text("report.md", "\n".join(md).rstrip() + "\n")
    atomic_write(files.path("report.pdf"), lambda f: _write_pdf(f, summary, sections))
    files.remove_stale()
    return folder / "report.md"


def build_report(out_dir: str | Path, experiments: list[str] | None = None) -> Path | None:
    """Write the report of every record under `<out_dir>/runs` into `<out_dir>/report/`.

    `experiments`: names to include (default: every experiment present). Returns the path of
    `report.md`, or None when the folder has no run records (an existing report is then left
    as it is: a report with runs is never replaced by an empty one).
    """
    if experiments is not None:
        unknown = [e for e in experiments if e not in EXPERIMENTS]
        if unknown:
            raise ValueError(f"experiments: unknown name(s) {unknown}; choose from "
                             f"{sorted(EXPERIMENTS)}")
    scan = scan_records(out_dir)
    for _, reason in scan.damaged:
        warnings.warn(f"skipping {reason}", stacklevel=2)
    if not scan.records:
        return None
    return render_report(out_dir, chapters(scan.records), experiments, scan)

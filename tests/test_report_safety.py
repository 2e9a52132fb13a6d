"""Records are input like any other file: the report writes only inside --out, escapes what it
puts into LaTeX, refuses absurd stored grids, and removes the files it no longer writes.

Before (main at 76c5e97): a record whose experiment was `../../evil` made `report` write
`evil.md` two folders above `report/`; `\\label{}` took a name raw; a stored request of
`seeds=100000000` made `report` run until killed; old `report/exp1.*` tables stayed beside the
per-chapter ones for good.
"""

from __future__ import annotations

import signal

import pytest

from seqrec.app import build_report
from seqrec.app.report import MANIFEST, _Files
from seqrec.experiment import MAX_GRID_RUNS, GridRequest, GridTooLarge, build_grid
from seqrec.experiments import EXPERIMENTS
from seqrec.experiments import grid as experiment_grid
from seqrec.record import RunLabel, RunRecord, write_record
from seqrec.report import to_latex
from seqrec.report.render import latex_label


def finished(label: RunLabel, request: dict | None, recall: float = 0.2, **config) -> RunRecord:
    return RunRecord(spec=label, status="ok", config={"data": {"seq_len": 5, **config}},
                     request=request, metrics={"recall@20": recall, "recall@1": recall / 2},
                     best_val_loss=5.0)


def grid_records(overrides: list[str], recall: float = 0.2) -> list[RunRecord]:
    return [finished(s.label(), s.request.to_json(), recall)
            for s in experiment_grid("exp3", "smoke", overrides)]


def write_all(out, records) -> None:
    for r in records:
        write_record(out / "runs" / r.run_id, r)


def files_under(path) -> set:
    return {p.relative_to(path) for p in path.rglob("*") if p.is_file()}


def test_a_crafted_experiment_name_cannot_make_the_report_write_outside_out(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    write_all(out, grid_records(["epochs=1"])[:2])
    for name in ("../../evil", "/tmp/evil", "..", "a/b"):
        label = RunLabel(run_id="crafted", experiment=name, model="gru")
        write_record(out / "runs" / "crafted", finished(label, None))
        before = files_under(tmp_path)
        with pytest.warns(UserWarning, match="not a safe file name"):
            md = build_report(out).read_text()
        new = files_under(tmp_path) - before
        assert all(str(p).startswith("a/b/out/report/") for p in new), new
        assert not (tmp_path / "a" / "evil.md").exists() and not (out / "evil.md").exists()
        assert "Damaged run records left out: 1" in md and "crafted" in md
    # the one check every file name of the report passes
    files = _Files(out / "report")
    for bad in ("../x.md", "/etc/passwd", ".hidden", "", "a/b.md", "x" * 300):
        with pytest.raises(ValueError, match="not a safe file name"):
            files.path(bad)
    assert files.path("exp4-abc123_tests.md") == out / "report" / "exp4-abc123_tests.md"


def test_latex_escapes_every_string_and_labels_cannot_break_out():
    import pandas as pd

    df = pd.DataFrame({"Model": [r"\input{/etc/passwd}", "a_b & c%"], "x": [0.5, 0.25]})
    tex = to_latex(df, caption=r"cap \write18{rm}", label=r"tab:x}\input{/etc/passwd}")
    assert r"\input" not in tex and r"\write18" not in tex
    assert r"\textbackslash{}input\{/etc/passwd\}" in tex and r"a\_b \& c\%" in tex
    assert r"\label{tab:x--input-/etc/passwd-}" not in tex  # '/' is not kept either
    assert r"\label{tab:x--input--etc-passwd-}" in tex
    assert latex_label("tab:exp1.1-c0_x") == "tab:exp1.1-c0_x"


def test_report_tex_files_hold_no_raw_string_from_a_record(tmp_path):
    label = RunLabel(run_id="odd-model", experiment="custom", model=r"\input{evil}",
                     group=r"g}\def", axis="seq_len", value=5)
    write_all(tmp_path, [finished(label, None)])
    build_report(tmp_path)
    (tex,) = (tmp_path / "report").glob("*.tex")
    assert r"\input{evil}" not in tex.read_text() and r"\def" not in tex.read_text()


def test_a_stored_grid_request_over_the_bound_is_refused_at_once(tmp_path):
    request = GridRequest("exp3", "smoke", ("seeds=100000000",))
    with pytest.raises(GridTooLarge, match=r"more than the 100,000 .* lower seeds \(now "
                                           r"100,000,000\)"):
        build_grid(EXPERIMENTS["exp3"], request)
    assert MAX_GRID_RUNS == 100_000
    records = grid_records(["epochs=1"])
    crafted = records[0]
    crafted = RunRecord(**{**{f: getattr(crafted, f) for f in crafted.__dataclass_fields__},
                           "request": {**crafted.request, "overrides": ["seeds=100000000"]}})
    write_all(tmp_path, [crafted, *records[1:]])

    def too_long(*_):
        raise TimeoutError("the report ran for 30 s on a crafted grid request")

    old = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(30)  # before: it ran until killed
    try:
        with pytest.warns(RuntimeWarning, match="grid request stored in a run record is "
                                                "refused: exp3: the request plans up to"):
            md = build_report(tmp_path).read_text()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    # the crafted request plans nothing; its record is one of the epochs=1 grid's runs
    assert f"{len(records)} run records: {len(records)} finished" in md


def test_the_report_removes_the_tables_it_no_longer_writes(tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    # left by an older seqrec (no manifest), beside files the report does not own
    old = ["exp3.md", "exp3.tex", "exp3.csv", "exp3.png", "exp3_tests.md", "exp1.md"]
    kept = ["notes.md", "validation.md", "validation.png", "my-exp3.md"]
    for name in old + kept:
        (report / name).write_text("old\n")
    # two request contexts: two chapters, tables named exp3-<hash>.*
    write_all(tmp_path, grid_records(["epochs=1"]) + grid_records(["epochs=2"], 0.3))
    build_report(tmp_path)
    names = {p.name for p in report.iterdir()}
    assert not set(old) & names, set(old) & names  # before: all six stayed
    assert set(kept) <= names
    chapter_tables = sorted(n for n in names if n.startswith("exp3-") and n.endswith(".tex"))
    assert len(chapter_tables) == 2
    # one context left: the per-chapter files of the last build go, exp3.* comes back
    for r in grid_records(["epochs=2"], 0.3):
        for f in (tmp_path / "runs" / r.run_id).iterdir():
            f.unlink()
        (tmp_path / "runs" / r.run_id).rmdir()
    build_report(tmp_path)
    names = {p.name for p in report.iterdir()}
    assert "exp3.md" in names and not [n for n in names if n.startswith("exp3-")]
    assert set(kept) <= names and MANIFEST in names

"""The report: tables hold the records' numbers in the right cells, labels are right, the paired
tests decide correctly, and the report files are written from a partial grid."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from seqrec.app import build_report
from seqrec.app.report import Chapter, chapters, render_report
from seqrec.experiments import grid as experiment_grid
from seqrec.record import RunRecord, write_record
from seqrec.report import load_records, paired_test, to_latex, to_markdown, twin_tests
from seqrec.report.figures import figure_exp1, figure_exp3, figure_exp4
from seqrec.report.tables import table_exp1, table_exp2, table_exp3, table_exp4

BASE = {"gru": 0.30, "user_gru": 0.32, "dnc": 0.28, "user_dnc": 0.29, "pop": 0.05, "sasrec": 0.33}
THIRD_SHIFT = {"popular": 0.15, "semi": 0.0, "unpopular": -0.12}
KEYS = ("recall@1", "recall@5", "recall@10", "recall@20", "mrr@1", "mrr@5", "mrr@10", "mrr@20",
        "ndcg@20")


def metrics_for(model: str, chunk: int, seed: int, value: float, shift: float = 0.0) -> dict:
    """Distinct, realistic numbers per key, so a swapped key would show in a test."""
    r20 = BASE[model] + 0.01 * chunk + 0.003 * seed + 0.001 * value + shift
    r20 = r20 if r20 > 0 else 0.001 * (1 + chunk + seed)  # a share: records refuse < 0
    return {"recall@1": r20 / 2.5, "recall@5": r20 * 0.7, "recall@10": r20 * 0.85,
            "recall@20": r20, "mrr@1": r20 / 2.5, "mrr@5": r20 / 2.1, "mrr@10": r20 / 2.05,
            "mrr@20": r20 / 2.02, "ndcg@20": r20 / 1.6}


def record(experiment: str, group: str, model: str, chunk: int, seed: int, axis: str,
           value: float, *, threshold: int = 20, train_frac: float = 0.9, status: str = "ok",
           reason: str | None = None) -> RunRecord:
    run_id = f"{group}-c{chunk}-{model}-s{seed}-v{value}"
    ok = status == "ok"
    metrics = metrics_for(model, chunk, seed, value) if ok else {}
    thirds = {t: metrics_for(model, chunk, seed, value, s) for t, s in THIRD_SHIFT.items()}
    n_items = 400 + 10 * chunk
    return RunRecord.from_json({
        "run_id": run_id, "status": status, "reason": reason,
        "spec": {"experiment": experiment, "group": group, "model": model, "chunk": chunk,
                 "seed": seed, "axis": axis, "value": value, "profile": "smoke"},
        "config": {"data": {"threshold": threshold, "train_frac": train_frac,
                            "train_start_frac": value if axis == "train_start_frac" else 0.0,
                            "seq_len": value if axis == "seq_len" else 20},
                   "model": {"name": model,
                             "embedding_size": value if axis == "embedding_size" else 16}},
        "split": {"n_items": n_items, "n_users": 50,
                  "windows": {"train": 1000 * (chunk + 1) - int(1000 * value * (
                      axis == "train_start_frac")), "val": 100, "test": 100},
                  "dropped_unseen": {"val": 3, "test": 4}},
        "metrics": metrics, "metrics_by_popularity": thirds if ok else {},
        "epochs_kept": 2, "best_val_loss": (6.0 - 0.1 * chunk + 0.2 / max(value, 1)
                                            + 0.01 * seed) if ok else None,
        "history": [], "n_items": n_items, "n_users": 50, "seq_per_s": 1000.0, "device": "cpu",
        "seed": seed, "seconds": 1.0,
    })


def grid() -> tuple[list[RunRecord], list]:
    """(records written, expected grid): exp1..exp4 with one missing and one failed run."""
    expected = []
    for group, thr in (("exp1.1", 20), ("exp1.2", 2)):
        for model in ("gru", "user_gru", "pop"):
            for chunk in range(3):
                seeds = (0, 1) if (group, model) == ("exp1.1", "gru") else (0,)
                expected += [record("exp1", group, model, chunk, s, "threshold", thr,
                                    threshold=thr) for s in seeds]
    for model in ("gru", "user_gru"):
        for p in (0.0, 0.5):
            expected += [record("exp2", "exp2", model, c, 0, "train_start_frac", p,
                                train_frac=0.95) for c in range(2)]
    for size in (32, 64, -1):
        expected += [record("exp3", "exp3", "gru", c, 0, "embedding_size", size)
                     for c in range(2)]
    for model in ("gru", "dnc", "user_dnc"):
        for length in (5, 10):
            expected += [record("exp4", "exp4", model, c, 0, "seq_len", length)
                         for c in range(3)]
    missing_id = "exp1.2-c2-user_gru-s0-v2"
    failed_id = "exp1.2-c2-gru-s0-v2"
    records = []
    for r in expected:
        if r.run_id == missing_id:
            continue
        if r.run_id == failed_id:
            r = record("exp1", "exp1.2", "gru", 2, 0, "threshold", 2, threshold=2,
                       status="failed", reason="NaN loss at epoch 1; lower lr")
        records.append(r)
    return records, [r.spec for r in expected]


def write_records(out, records: list[RunRecord]) -> None:
    for r in records:
        write_record(out / "runs" / r.run_id, r)


@pytest.fixture(scope="module")
def records() -> list[RunRecord]:
    return grid()[0]


def value(records: list[RunRecord], run_id: str, key: str = "recall@20",
          third: str | None = None):
    (r,) = [r for r in records if r.run_id == run_id]
    return r.metrics_by_popularity[third][key] if third else r.metrics[key]


# ------------------------------------------------------------------------------------------
# Loading

def test_load_records_skips_damaged_files_with_a_warning(tmp_path, records):
    write_records(tmp_path, records[:3])
    bad = tmp_path / "runs" / "broken" / "record.json"
    bad.parent.mkdir()
    bad.write_text('{"run_id": "bro')
    listed = tmp_path / "runs" / "listed" / "record.json"
    listed.parent.mkdir()
    listed.write_text("[1, 2]")
    with pytest.warns(UserWarning, match="broken") as caught:
        loaded = load_records(tmp_path)
    assert any("listed" in str(w.message) and "JSON list" in str(w.message) for w in caught)
    assert loaded == sorted(records[:3], key=lambda r: r.run_id)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_records(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------
# Tables: specific cells against the record values


def of(records, experiment):
    """The records of one experiment: what the report and the notebook give its table."""
    return [r for r in records if r.experiment == experiment]

def test_table_exp1_cells_by_metric_model_and_threshold(records):
    t = table_exp1(of(records, "exp1"))
    assert list(t.columns) == ["Threshold", "Model", "Metric", "Chunk 0", "Chunk 1", "Chunk 2",
                               "Mean", "Mean std", "Test windows", "Runs"]
    assert list(dict.fromkeys(t["Threshold"])) == [20, 2]  # the thesis' order: 1.1, then 1.2

    def row(group, model, metric):
        threshold = {"exp1.1": 20, "exp1.2": 2}[group]
        (i,) = t.index[(t["Threshold"] == threshold) & (t["Model"] == model)
                       & (t["Metric"] == metric)]
        return t.loc[i]

    r = row("exp1.1", "User-based GRU", "Recall@20")
    assert r["Chunk 1"] == pytest.approx(value(records, "exp1.1-c1-user_gru-s0-v20"))
    assert r["Threshold"] == 20
    # Recall@1 is Recall@1, not the next metric in some list (thesis defect 14).
    r1 = row("exp1.1", "User-based GRU", "Recall@1")
    assert r1["Chunk 1"] == pytest.approx(value(records, "exp1.1-c1-user_gru-s0-v20", "recall@1"))
    # gru in exp1.1 has two seeds per chunk: the chunk cell is their mean.
    g = row("exp1.1", "GRU", "Recall@20")
    seeds = [value(records, f"exp1.1-c2-gru-s{s}-v20") for s in (0, 1)]
    assert g["Chunk 2"] == pytest.approx((seeds[0] + seeds[1]) / 2)
    assert g["Runs"] == 6
    # exp1.2: gru failed on chunk 2 and user_gru never ran there; Mean over present chunks.
    f = row("exp1.2", "GRU", "Recall@20")
    assert math.isnan(f["Chunk 2"]) and f["Threshold"] == 2 and f["Runs"] == 2
    expected_mean = np.mean([value(records, f"exp1.2-c{c}-gru-s0-v2") for c in (0, 1)])
    assert f["Mean"] == pytest.approx(expected_mean)
    # Mean std: sample std of the chunk means (seeds averaged first).
    chunk_means = [g[f"Chunk {c}"] for c in range(3)]
    assert g["Mean std"] == pytest.approx(statistics.stdev(chunk_means))
    assert set(t["Model"]) == {"GRU", "User-based GRU", "POP"}  # the baseline is an extra row


def test_table_exp2_training_fraction_means_and_std(records):
    t = table_exp2(of(records, "exp2"))
    (i,) = t.index[(t["Model"] == "User-based GRU") & (t["Train start p"] == 0.5)]
    r = t.loc[i]
    assert r["Training fraction"] == pytest.approx(0.95 - 0.5)
    vals = [value(records, f"exp2-c{c}-user_gru-s0-v0.5") for c in (0, 1)]
    assert r["Recall@20"] == pytest.approx(statistics.mean(vals))
    assert r["Recall@20 std"] == pytest.approx(statistics.stdev(vals))
    assert r["Train windows"] == pytest.approx(((1000 - 500) + (2000 - 500)) / 2)
    assert r["Runs"] == 2


def test_table_exp3_one_hot_last_at_item_count(records):
    t = table_exp3(of(records, "exp3"))
    assert list(t["Embedding"]) == ["32", "64", "one-hot"]
    onehot = t.iloc[2]
    assert onehot["Embedding size"] == pytest.approx((400 + 410) / 2)
    losses = [r.best_val_loss for r in records if r.run_id.startswith("exp3-")
              and r.spec.value == -1]
    assert onehot["Best validation loss"] == pytest.approx(statistics.mean(losses))
    assert onehot["Best validation loss std"] == pytest.approx(statistics.stdev(losses))
    assert "| GRU | one-hot | 405 | " in to_markdown(t)


def test_table_exp4_per_third_mean_and_std(records):
    t = table_exp4(of(records, "exp4"))
    sel = (t["Scope"] == "Popular") & (t["Model"] == "DNC") & (t["Window length"] == 10)
    (i,) = t.index[sel]
    vals = [value(records, f"exp4-c{c}-dnc-s0-v10", "recall@1", third="popular")
            for c in range(3)]
    assert t.loc[i, "Recall@1"] == pytest.approx(statistics.mean(vals))
    assert t.loc[i, "Recall@1 std"] == pytest.approx(statistics.stdev(vals))
    assert set(t["Scope"]) == {"Overall", "Popular", "Semi-popular", "Unpopular"}
    (j,) = t.index[(t["Scope"] == "Overall") & (t["Model"] == "User-based DNC")
                   & (t["Window length"] == 5)]
    overall = [value(records, f"exp4-c{c}-user_dnc-s0-v5") for c in range(3)]
    assert t.loc[j, "Recall@20"] == pytest.approx(statistics.mean(overall))


def test_tables_of_no_records_are_empty_not_errors():
    for table in (table_exp1, table_exp2, table_exp3, table_exp4):
        assert table([]).empty


# ------------------------------------------------------------------------------------------
# Rendering

def test_markdown_and_latex_renderers():
    import pandas as pd
    df = pd.DataFrame({"Model": ["GRU", "a_b|c"], "Recall@20": [0.25, float("nan")],
                       "Recall@20 std": [0.0125, 0.1], "Runs": [3, 1]})
    assert to_markdown(df) == ("| Model | Recall@20 | Runs |\n|:---|---:|---:|\n"
                               "| GRU | 0.2500 ± 0.0125 | 3 |\n| a_b\\|c | - | 1 |\n")
    tex = to_latex(df, caption="50% & more")
    assert r"a\_b|c & - & 1 \\" in tex
    assert r"0.2500 $\pm$ 0.0125" in tex and r"\toprule" in tex and r"50\% \& more" in tex


# ------------------------------------------------------------------------------------------
# Figures: labels name the right model's data (thesis defect 5 swapped them)

def _legend_lines(ax) -> dict:
    handles, labels = ax.get_legend_handles_labels()
    return dict(zip(labels, handles, strict=True))


def test_figure_exp4_lines_carry_the_right_models(records):
    fig = figure_exp4(of(records, "exp4"))
    ax = fig.axes[0]  # Overall, Recall@20
    assert ax.get_ylabel() == "Recall@20" and ax.get_title() == "Overall: Recall@20"
    lines = _legend_lines(ax)
    assert set(lines) == {"GRU", "DNC", "User-based DNC"}
    dnc = lines["DNC"].lines[0].get_ydata()
    expected = [statistics.mean(value(records, f"exp4-c{c}-dnc-s0-v{L}") for c in range(3))
                for L in (5, 10)]
    assert np.allclose(dnc, expected)
    assert fig.axes[5].get_ylabel() == "Recall@1" and "Popular" in fig.axes[5].get_title()


def test_figure_exp1_and_exp3_labels(records):
    labels = set(_legend_lines(figure_exp1(of(records, "exp1")).axes[0]))
    assert "User-based GRU, threshold 2" in labels and "GRU, threshold 20" in labels
    ax = figure_exp3(of(records, "exp3")).axes[0]
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "Best validation loss"
    assert any(t.get_text().startswith("one-hot") for t in ax.texts)
    # Jupyter shows the figure even when no pyplot backend registered a formatter.
    assert figure_exp3(of(records, "exp3"))._repr_png_()[:4] == b"\x89PNG"
    empty = figure_exp4([])
    assert [t.get_text() for t in empty.axes[0].texts] == ["no runs yet"]


# ------------------------------------------------------------------------------------------
# Paired tests

def test_paired_test_declares_a_planted_difference_significant():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.4, size=8)
    user = base + 0.012 + rng.normal(0, 0.002, size=8)
    t = paired_test(user, base, "user_gru", "gru", "recall@20")
    assert t.test == "Wilcoxon" and t.n == 8 and t.p_value < 0.05
    assert t.mean_diff == pytest.approx(float(np.mean(user - base)))
    assert t.sentence.startswith("user_gru beats gru on recall@20 by 0.01")
    assert t.sentence.endswith("holds at the 5% level") and "does not" not in t.sentence


def test_paired_test_noise_is_not_significant():
    diff = np.array([0.01, -0.012, 0.008, -0.009, 0.011, -0.01, 0.002, -0.001])
    base = np.full(8, 0.3)
    t = paired_test(base + diff, base, "user_gru", "gru", "recall@20")
    assert t.p_value > 0.05 and t.sentence.endswith("does not hold at the 5% level")


def test_paired_test_few_pairs():
    t = paired_test([0.3], [0.2], "user_dnc", "dnc", "recall@1")
    assert t.n == 1 and math.isnan(t.p_value) and "too few pairs" in t.sentence
    assert paired_test([], [], "a", "b", "m").n == 0
    t3 = paired_test([0.31, 0.33, 0.35], [0.30, 0.31, 0.34], "a", "b", "recall@20")
    assert t3.test == "paired t-test"
    # Hand check: diffs 0.01, 0.02, 0.01 -> mean 0.04/3, sd 0.005774, t = 4.0, df 2.
    from scipy import stats
    assert t3.p_value == pytest.approx(2 * stats.t.sf(4.0, 2), rel=1e-6)
    same = paired_test([0.3] * 7, [0.3] * 7, "a", "b", "m")
    assert same.p_value == 1.0 and "does not hold" in same.sentence


def test_paired_test_on_a_loss_lower_is_better():
    user = np.array([5.90, 6.00, 6.10, 6.20, 6.30, 6.40, 6.50])
    t = paired_test(user, user + 0.05, "user_gru", "gru", "best_val_loss",
                    higher_is_better=False)
    assert t.mean_diff == pytest.approx(-0.05)
    assert t.sentence.startswith("user_gru beats gru on best_val_loss (lower is better) by 0.05")
    assert t.p_value < 0.05


def test_twin_tests_pair_by_chunk_and_seed(records):
    t = twin_tests(records, "exp1")
    r = t[(t["Group"] == "exp1.1") & (t["Metric"] == "recall@20")].iloc[0]
    # user_gru has seed 0 only: 3 pairs (gru's seed-1 runs have no partner).
    assert r["Pairs"] == 3 and r["Comparison"] == "user_gru vs gru"
    assert r["Mean difference"] == pytest.approx(0.02)
    r2 = t[(t["Group"] == "exp1.2") & (t["Metric"] == "recall@20")].iloc[0]
    assert r2["Pairs"] == 2  # chunk 2: gru failed and user_gru missing
    t4 = twin_tests(records, "exp4")
    assert set(t4["Comparison"]) == {"user_dnc vs dnc"}
    assert list(t4["Setting"]) == ["5", "5", "10", "10", "all", "all"]  # numeric order
    assert t4.loc[t4["Setting"] == "all", "Pairs"].iloc[0] == 6


def test_twin_tests_leave_out_settings_one_twin_never_trains():
    # exp 3 gives the one-hot input to the GRU only: before, the demo report's exp 3 table had a
    # row "-1 | user_gru vs gru | 0 pairs" for it, a comparison that cannot exist.
    recs = [record("exp3", "exp3", m, c, 0, "embedding_size", size)
            for m, sizes in (("gru", (8, 32, -1)), ("user_gru", (8, 32))) for size in sizes
            for c in range(2)]
    t = twin_tests(recs, "exp3", metrics=("best_val_loss",), higher_is_better=False)
    assert list(t["Setting"]) == ["8", "32", "all"]
    assert list(t["Pairs"]) == [2, 2, 4]


# ------------------------------------------------------------------------------------------
# The whole report

def test_render_report_from_partial_grid(tmp_path):
    records, expected = grid()
    other = record("custom", "custom", "sasrec", 0, 0, "model", 0)
    write_records(tmp_path, [*records, other])
    loaded = load_records(tmp_path)
    chapter = Chapter("Runs 1", ["Data: hand-made records"], loaded, expected,
                      names=["exp1", "exp2", "exp3", "exp4", "custom"])
    path = render_report(tmp_path, [chapter])
    folder = tmp_path / "report"
    assert path == folder / "report.md"
    for name in ("exp1", "exp2", "exp3", "exp4"):
        for ext in ("md", "tex", "png"):
            assert (folder / f"{name}.{ext}").stat().st_size > 0
        assert (folder / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    pdf = (folder / "report.pdf").read_bytes()
    assert pdf[:5] == b"%PDF-" and len(pdf) > 10_000
    md = path.read_text()
    assert "Data: hand-made records" in md
    assert "![Exp 1" in md and "(exp1.png)" in md and "(exp4.png)" in md
    assert "`exp1.2-c2-gru-s0-v2`" in md and "NaN loss at epoch 1; lower lr" in md
    assert "Missing runs: 1 of" in md and "`exp1.2-c2-user_gru-s0-v2`" in md
    assert "19 finished (seeds 0, 1), 1 failed, 1 missing" in md  # exp 1 summary line
    # Chunks 0 and 1: losses 6.00625 and 5.90625.
    assert "| GRU | 32 | 32 | 5.9562 ± 0.0707 | 100 | 2 |" in (folder / "exp3.md").read_text()
    assert "User-based GRU" in md and "user_gru beats gru on recall@20" in md
    assert "no runs yet" not in md
    # An experiment outside the registry gets a per-run table of its own.
    assert "## Other runs: custom" in md and "| custom | SASRec | 0 | 0 |" in md


def fake_records(specs, recall: float) -> list[RunRecord]:
    """Finished records of real grid specs, with one made-up Recall@20."""
    return [RunRecord(spec=s.label(), status="ok", config={"data": {"seq_len": 5}},
                      request=s.request.to_json(), data=s.data.to_json(),
                      metrics={"recall@20": recall, "recall@1": recall / 2},
                      best_val_loss=5.0) for s in specs]


def test_records_of_other_settings_get_their_own_chapter_never_pooled(tmp_path):
    # Before: records of other settings in one folder were pooled into the tables as extra
    # seeds (`make demo` over an older demo_out: 178 records for 89 runs).
    one = experiment_grid("exp3", "smoke", ["epochs=1"])
    two = experiment_grid("exp3", "smoke", ["epochs=2"])
    records = fake_records(one, 0.1) + fake_records(two, 0.3)[:-1]
    parts = chapters(records)
    assert [len(c.records) for c in parts] == [len(one), len(two) - 1]
    assert [len(c.expected) for c in parts] == [len(one), len(two)]
    assert "settings: epochs=1" in parts[0].context[-1]
    assert "settings: epochs=2" in parts[1].context[-1]
    assert parts[0].suffix != parts[1].suffix
    write_records(tmp_path, records)
    md = build_report(tmp_path).read_text()
    assert md.count("# Group ") == 2 and "Missing runs: 1 of" in md and "Missing runs: 0 of" in md
    # A grid whose runs all belong to a larger one (1 seed inside 2 seeds) is not a chapter.
    seeds = experiment_grid("exp3", "smoke", ["epochs=1", "seeds=2"])
    parts = chapters(fake_records(one, 0.1) + fake_records(seeds, 0.1)[len(one):])
    assert len(parts) == 1 and len(parts[0].expected) == len(seeds)
    # Records without a request (an older seqrec) are shown apart, missing runs unknown.
    parts = chapters([*fake_records(one, 0.1), record("exp4", "exp4", "gru", 0, 0, "seq_len",
                                                      5)])
    assert [c.title.split(":")[0] for c in parts] == ["Group 1", "Records without a grid request"]
    assert parts[1].expected is None


def test_status_lists_take_expected_labels(records):
    from seqrec.record import RunLabel
    from seqrec.report import status_lists
    expected = [records[0].spec, RunLabel("never-ran", "exp2", model="gru")]
    failed, missing = status_lists(records, expected)
    assert [m.run_id for m in missing] == ["never-ran"] and missing[0].model == "gru"
    assert [f.run_id for f in failed] == ["exp1.2-c2-gru-s0-v2"]
    # A failed run that was rerun successfully is no longer listed as failed.
    rerun = record("exp1", "exp1.2", "gru", 2, 0, "threshold", 2, threshold=2)
    assert status_lists([*records, rerun], None)[0] == []


def test_long_tables_paginate_with_repeated_header():
    from seqrec.app.report import _text_pages

    class Pages:
        def __init__(self):
            self.texts = []

        def savefig(self, fig):
            self.texts.append([t.get_text() for t in fig.texts])

    lines = ["Model  Recall@20", "-----------------", *(f"GRU    0.{i:04d}" for i in range(100))]
    pages = Pages()
    _text_pages(pages, "Exp 4: table", lines, repeat=2)
    assert len(pages.texts) >= 2
    assert pages.texts[1][0] == "Exp 4: table (continued)"
    body = [t[1].splitlines() for t in pages.texts]
    assert all(b[:2] == lines[:2] for b in body)
    assert [x for b in body for x in b[2:]] == lines[2:]  # every row once, in order


def test_report_of_failed_runs_only(tmp_path):
    expected = grid()[1]
    write_records(tmp_path, [record("exp3", "exp3", "gru", 0, 0, "embedding_size", 32,
                                    status="failed", reason="out of memory")])
    chapter = Chapter("Runs 1", [], load_records(tmp_path), expected[:2],
                      names=["exp1", "exp3"])
    md = render_report(tmp_path, [chapter]).read_text()
    assert md.count("no runs yet") == 2
    assert "no runs yet (1 failed, listed below)" in md and "out of memory" in md
    assert "Missing runs: 2 of 2" in md
    assert (tmp_path / "report" / "report.pdf").stat().st_size > 0
    with pytest.raises(ValueError, match="experiments"):
        build_report(tmp_path, experiments=["exp9"])


def test_a_neural_model_that_does_not_beat_pop_is_called_out(tmp_path):
    # gru at 0.30 + ..., pop at 0.05 + ...: beats POP; a copy of gru scored below POP is not.
    records, expected = grid()
    from dataclasses import replace

    from seqrec.report.baselines import baseline_check, baseline_sentences
    check = baseline_check(records, "exp1")
    gru = check[check["Model"] == "GRU"].iloc[0]
    assert gru["Verdict"] == "beats every baseline" and gru["Best baseline"] == "POP"
    assert gru["x POP"] == pytest.approx(gru["Model mean"] / gru["POP mean"])
    weak = [replace(r, metrics={**r.metrics, "recall@20": r.metrics["recall@20"] / 10})
            if r.spec.model == "user_gru" else r for r in records]
    check = baseline_check(weak, "exp1")
    user = check[check["Model"] == "User-based GRU"].iloc[0]
    assert user["Verdict"] == "below POP" and user["x POP"] < 1
    (warning,) = baseline_sentences(check)
    assert warning.startswith("WARNING: User-based GRU scores no better than POP")
    write_records(tmp_path, weak)
    chapter = Chapter("Runs 1", [], load_records(tmp_path), expected, names=["exp1"])
    assert warning in render_report(tmp_path, [chapter]).read_text()

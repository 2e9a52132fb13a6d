"""The thesis' conclusions as claims (seqrec.report.claims, app/verdicts.py): verdict rules,
claims on hand-made runs with hand-made ranks, the fallback without ranks, and the report, the
CLI and the notebook session showing them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqrec import runner
from seqrec.cli import main
from seqrec.data.synthetic import SynthConfig, write_synthetic
from seqrec.experiments import CLAIMS, EXPERIMENTS, grid
from seqrec.notebook import Session
from seqrec.ranks import RANKS_FILE, RunRanks
from seqrec.record import RunRecord
from seqrec.report.claims import (
    CLAIM_COLUMNS,
    MARGIN,
    claims_frame,
    comparison_effect,
    evaluate_claim,
    evaluate_claims,
    family_level,
    verdict,
)
from seqrec.report.paired import SEED_LEVEL, Effect


def claim(key):
    return next(c for c in CLAIMS if c.key == key)


def eff(est, low, high):
    return Effect(est, low, high, 0.5, 2, 10, 100, "test")


@pytest.mark.parametrize("kind, effect, expected", [
    ("no_gain", eff(0.05, 0.02, 0.08), "contradicted"),  # a significant gain >= margin
    ("no_gain", eff(0.005, 0.001, 0.009), "supported"),  # significant but below the margin
    ("no_gain", eff(-0.05, -0.08, -0.02), "supported"),  # a clear loss: no gain
    ("no_gain", eff(0.02, -0.01, 0.05), "undecided"),
    ("no_gain", eff(0.02, math.nan, math.nan), "undecided"),  # no interval
    ("no_loss", eff(-0.05, -0.08, -0.02), "contradicted"),
    ("no_loss", eff(0.0, -0.005, 0.2), "supported"),
    ("no_loss", eff(-0.01, -0.03, 0.01), "undecided"),
    ("no_effect", eff(-0.05, -0.08, -0.02), "contradicted"),
    ("no_effect", eff(0.05, 0.02, 0.08), "contradicted"),
    ("no_effect", eff(0.0, -0.009, 0.009), "supported"),
    ("no_effect", eff(0.0, -0.02, 0.009), "undecided"),
    ("gain", eff(0.05, 0.02, 0.08), "supported"),
    ("gain", eff(0.0, -0.02, 0.009), "contradicted"),
    ("gain", eff(0.02, -0.01, 0.05), "undecided"),
])
def test_verdict_rules(kind, effect, expected):
    assert verdict(effect, kind, MARGIN) == expected


def test_every_claim_reads_registered_experiments_and_the_margin_is_the_projects_effect():
    assert [c.key for c in CLAIMS] == ["1", "2", "3", "4", "5", "exp1", "exp3"]
    assert all(set(c.reads) <= set(EXPERIMENTS) for c in CLAIMS)
    from seqrec.report.validation import MIN_EFFECT

    assert MARGIN == MIN_EFFECT == 0.01


# ---------------------------------------------------------------------------------------------
# Hand-made runs

USERS = np.repeat(np.arange(40), 10)  # 40 users of 10 windows


def _record(exp, model, value, chunk, seed, recall, axis="seq_len", train=1000, seconds=10.0):
    return RunRecord.from_json({
        "run_id": f"{exp}-{model}-{value}-{chunk}-{seed}", "status": "ok",
        "spec": {"experiment": exp, "group": exp, "model": model, "chunk": chunk, "seed": seed,
                 "axis": axis, "value": value},
        "split": {"windows": {"train": train}},
        "history": [{"seconds": seconds}],
        "metrics": {"recall@20": recall}})


def _ranks(hit: np.ndarray) -> RunRanks:
    return RunRanks(np.where(hit, 2, 200), USERS, np.arange(len(USERS)),
                    np.arange(len(USERS)) % 3)


def _runs(exp, models_hits, values=(5, 10), chunks=(0, 1), axis="seq_len"):
    """Records and their ranks: `models_hits[model](value, chunk)` -> boolean hits [400]."""
    records, ranks = [], {}
    for model, hits in models_hits.items():
        for v in values:
            for c in chunks:
                h = hits(v, c)
                r = _record(exp, model, v, c, 0, float(h.mean()), axis)
                records.append(r)
                ranks[r.run_id] = _ranks(h)
    return records, ranks


BASE = np.random.default_rng(0).uniform(size=len(USERS))


def test_claim_1_is_contradicted_by_a_clear_user_gain_and_supported_by_twins():
    better = {"gru": lambda v, c: BASE < 0.4, "user_gru": lambda v, c: BASE < 0.5}
    records, ranks = _runs("exp4", better)
    res = evaluate_claim(claim("1"), records, lambda r: ranks[r.run_id])
    assert res.verdict == "contradicted"
    assert len(res.results) == 2  # one comparison per window length, pooled over 2 chunks
    top = res.deciding
    assert top.effect.estimate == pytest.approx(float(np.mean(BASE < 0.5) - np.mean(BASE < 0.4)))
    assert top.effect.low > 0 and top.effect.n_cells == 2 and top.verdict == "contradicted"
    assert res.sentence.startswith("Contradicted:") and "User-based GRU - GRU" in res.sentence

    same = {"gru": lambda v, c: BASE < 0.4, "user_gru": lambda v, c: BASE < 0.4}
    records, ranks = _runs("exp4", same)
    res = evaluate_claim(claim("1"), records, lambda r: ranks[r.run_id])
    assert res.verdict == "supported"
    assert all((r.effect.estimate, r.effect.low, r.effect.high, r.effect.p_value)
               == (0, 0, 0, 1) for r in res.results)
    frame = claims_frame([res])
    assert list(frame.columns) == CLAIM_COLUMNS and frame.loc[0, "Verdict"] == "supported"


def test_without_ranks_claims_fall_back_to_the_records_seed_level():
    better = {"gru": lambda v, c: BASE < 0.4 - 0.02 * c, "user_gru": lambda v, c: BASE < 0.5}
    records, _ = _runs("exp4", better)
    res = evaluate_claim(claim("1"), records, lambda r: None)
    assert res.fallback and {r.effect.method for r in res.results} == {SEED_LEVEL}
    diffs = [np.mean(BASE < 0.5) - np.mean(BASE < 0.4 - 0.02 * c) for c in (0, 1)]
    assert res.results[0].effect.estimate == pytest.approx(np.mean(diffs))


def test_claim_3_measures_the_curve_against_its_chord():
    # Three training sizes 100, 200, 400 windows with Recall 0.2, 0.35, 0.4: the chord at 200
    # is 0.2 + (100 / 300) * 0.2 = 0.2667, so the curve lies 0.0833 above it.
    cut = {0.0: 0.4, 0.5: 0.35, 0.75: 0.2}
    size = {0.0: 400, 0.5: 200, 0.75: 100}
    records, ranks = [], {}
    for model in ("gru",):
        for p, q in cut.items():
            for c in (0, 1):
                hit = np.arange(len(USERS)) % 20 < q * 20
                r = _record("exp2", model, p, c, 0, float(hit.mean()), "train_start_frac",
                            train=size[p])
                records.append(r)
                ranks[r.run_id] = _ranks(hit)
    res = evaluate_claim(claim("3"), records, lambda r: ranks[r.run_id])
    (comp,) = res.results
    assert "chord" in comp.comparison.label
    assert comp.effect.estimate == pytest.approx(0.35 - (0.2 + 100 / 300 * 0.2))
    assert res.verdict == "supported"


def test_claim_5_weighs_the_cost_against_the_training_time():
    records, ranks = _runs("exp4", {"gru": lambda v, c: BASE < 0.4})
    res = evaluate_claim(claim("5"), records, lambda r: ranks[r.run_id])
    (comp,) = res.results
    assert comp.comparison.extra["time_ratio"] == pytest.approx(1.0)  # the same seconds
    assert res.verdict == "contradicted" and "no training time" in res.sentence


# ---------------------------------------------------------------------------------------------
# End to end: the report, the CLI and the notebook session

TINY = ["epochs=1", "hidden_size=8", "embedding_size=8", "memory_cells=4", "word_size=4",
        "batch_size=512"]


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "log.tsv"
    return write_synthetic(path, SynthConfig(n_rows=20_000, n_users=6, seed=3))


def _grid(log, out, overrides=()):
    specs = grid("exp4", "smoke", [*TINY, *overrides], models=("gru", "user_gru"),
                 baselines=("pop",), data=log, chunks=(0,))
    return runner.run_specs(specs, out, runner.RunOptions(progress=False, tensorboard=False),
                            log=lambda *a: None)


def test_report_opens_with_the_claims_and_cli_prints_the_verdicts(log, tmp_path, capsys):
    records = _grid(log, tmp_path)
    assert main(["report", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for key in ("1", "2", "4", "5"):
        assert f"claim {key}: " in printed
    text = (tmp_path / "report" / "report.md").read_text()
    assert text.index("The thesis' conclusions on these runs") < text.index("## Exp 4")
    assert "| 1 |" in text and "claims.png" in text and "seed-level" not in text
    folder = tmp_path / "report"
    for name in ("claims.md", "claims.tex", "claims.csv", "claims_details.md"):
        assert (folder / name).exists()
    assert (folder / "claims.png").read_bytes()[:4] == b"\x89PNG"
    # the notebook's session returns the same table
    session = Session(str(tmp_path), data=str(log), profile="smoke", overrides=TINY,
                      models=("gru", "user_gru"), baselines=("pop",))
    frame = session.claims(["exp4"])
    assert list(frame["Claim"]) == ["1", "2", "4", "5"]
    assert list(frame.columns) == CLAIM_COLUMNS
    assert set(frame["Verdict"]) <= {"supported", "contradicted", "undecided"}
    # A damaged ranks file: warned once, and that run's claims fall back to the records.
    victim = runner.run_dir(tmp_path, records[0].spec) / RANKS_FILE
    victim.write_bytes(victim.read_bytes()[:-10])
    with pytest.warns(RuntimeWarning, match="treated as absent"):
        assert main(["report", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "fall back to the seed-level test" in text


def test_one_folder_with_two_splits_sets_the_verdicts_side_by_side(log, tmp_path):
    _grid(log, tmp_path)
    _grid(log, tmp_path, ["split=leave_one_out"])
    assert main(["report", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    head = text[:text.index("# Group 1")]
    assert "## Verdicts side by side" in head
    assert ("| Claim | Group 1: log.tsv, profile smoke | Group 2: log.tsv, profile smoke, split "
            "leave_one_out |") in head
    assert text.count("The thesis' conclusions on these runs") == 2


def test_claims_of_unrun_experiments_are_left_out():
    assert evaluate_claims(CLAIMS, [], lambda r: None) == []


def test_a_claims_comparisons_are_held_at_the_bonferroni_level():
    """A claim is contradicted when any of its m comparisons is: each interval is taken at
    1 - 0.05 / m and each p-value multiplied by m, so a claim true everywhere is contradicted
    by chance in at most 5% of reports (before: every comparison at 95%, up to 1 - 0.95^m)."""
    assert family_level(1) == pytest.approx(0.95)
    assert family_level(16) == pytest.approx(1 - 0.05 / 16)
    noisy = np.random.default_rng(1)
    hits = {m: {(v, c): noisy.uniform(size=len(USERS)) < 0.4 for v in (5, 10, 20)
                for c in (0, 1)} for m in ("gru", "user_gru")}
    records, ranks = _runs("exp4", {m: (lambda v, c, m=m: hits[m][v, c]) for m in hits},
                           values=(5, 10, 20))
    res = evaluate_claim(claim("1"), records, lambda r: ranks[r.run_id])
    m = len(res.results)
    assert m == 3
    for r in res.results:
        plain, _ = comparison_effect(r.comparison, lambda x: ranks[x.run_id])
        wide, _ = comparison_effect(r.comparison, lambda x: ranks[x.run_id],
                                    level=family_level(m))
        assert r.effect.level == pytest.approx(family_level(m))
        assert (r.effect.low, r.effect.high) == (wide.low, wide.high)
        assert wide.low <= plain.low and plain.high <= wide.high
        assert r.effect.p_value == pytest.approx(min(1.0, m * plain.p_value))
    assert "98.33% interval" in res.sentence

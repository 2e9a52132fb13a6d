"""Per-window ranks (seqrec.ranks): written beside every record, checksummed, and every metric of
the record recomputes from them exactly, for every model and count baseline."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from seqrec import runner
from seqrec.data.synthetic import SynthConfig, write_synthetic
from seqrec.experiments import grid
from seqrec.metrics import metrics_from_ranks
from seqrec.models.registry import BASELINE_MODELS
from seqrec.ranks import RANKS_FILE, RunRanks, decode, encode, read_ranks, write_ranks

TINY = ["epochs=1", "hidden_size=8", "embedding_size=8", "memory_cells=4", "word_size=4",
        "batch_size=512", "eval_batch_size=64"]  # several evaluation batches per run


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, list]:
    """Every neural model and every count baseline of exp 4 at one window length and chunk."""
    out = tmp_path_factory.mktemp("runs")
    log = write_synthetic(out / "log.tsv", SynthConfig(n_rows=20_000, n_users=6, seed=3))
    specs = [s for s in grid("exp4", "smoke", TINY, models=("gru", "user_gru", "dnc", "sasrec"),
                             baselines=BASELINE_MODELS, data=log)
             if s.chunk == 0 and s.value == 5]
    records = runner.run_specs(specs, out, runner.RunOptions(progress=False, tensorboard=False),
                               log=lambda *a: None)
    return out, records


def _plain_metrics(ranks: RunRanks, k: int) -> dict[str, float]:
    """Recall, MRR and NDCG at k with a plain loop over windows (rank = twice_rank / 2)."""
    rec = mrr = ndcg = 0.0
    for h in ranks.twice_rank.tolist():
        r = h / 2
        if h >= 1 and r <= k:
            rec += 1
            mrr += 1 / r
            ndcg += 1 / np.log2(1 + r)
    n = len(ranks)
    return {f"recall@{k}": rec / n, f"mrr@{k}": mrr / n, f"ndcg@{k}": ndcg / n}


def test_every_run_recomputes_its_record_from_its_ranks(finished):
    out, records = finished
    assert {r.spec.model for r in records} == {"gru", "user_gru", "dnc", "sasrec",
                                               *BASELINE_MODELS}
    for rec in records:
        assert rec.ok, rec.reason
        ranks = read_ranks(runner.run_dir(out, rec.spec))
        assert ranks is not None and len(ranks) == rec.n_test_windows
        assert ranks.ties == rec.config["eval"]["ties"] == "conservative"
        # conservative ranks are whole numbers: twice the rank is even
        assert (ranks.twice_rank % 2 == 0).all() and ranks.twice_rank.min() >= 2
        again = metrics_from_ranks(ranks.twice_rank, ranks.third, rec.config["eval"]["ks"])
        assert again["metrics"] == rec.metrics, rec.spec.model  # exact, every key
        assert again["metrics_by_popularity"] == rec.metrics_by_popularity, rec.spec.model
        assert again["n_windows_by_popularity"] == rec.n_windows_by_popularity
        # ... and against a plain loop, independently of the histogram code
        for k in rec.config["eval"]["ks"]:
            for key, value in _plain_metrics(ranks, k).items():
                assert rec.metrics[key] == pytest.approx(value, abs=1e-12), (rec.spec.model, key)
        for t, third in enumerate(("popular", "semi", "unpopular")):
            mine = ranks.third == t
            if not mine.any():
                continue
            part = RunRanks(ranks.twice_rank[mine], ranks.user[mine], ranks.target[mine],
                            ranks.third[mine])
            plain = _plain_metrics(part, 20)
            assert rec.metrics_by_popularity[third]["recall@20"] == pytest.approx(
                plain["recall@20"], abs=1e-12)
            assert rec.metrics_by_popularity[third]["mrr@20"] == pytest.approx(
                plain["mrr@20"], abs=1e-12)
        # per-window values agree with the record's means
        assert ranks.per_window("recall@20").mean() == pytest.approx(rec.metrics["recall@20"])
        assert ranks.per_window("mrr@20").mean() == pytest.approx(rec.metrics["mrr@20"])


def test_runs_of_one_cell_rank_the_same_windows(finished):
    out, records = finished
    ranks = [read_ranks(runner.run_dir(out, r.spec)) for r in records]
    assert all(ranks[0].same_windows(r) for r in ranks[1:])
    assert len(np.unique(ranks[0].user)) > 1  # the users are the windows' own, not one label


def _example() -> RunRanks:
    return RunRanks(twice_rank=[2, 4, 0, 80, 41], user=[0, 0, 1, 2, 2], target=[5, 6, 7, 8, 9],
                    third=[0, 1, 2, 2, 0])


def test_per_window_metrics_by_hand():
    r = _example()
    # ranks 1, 2, NaN (a miss), 40, 20.5 (an expected-rank half-integer)
    assert r.per_window("recall@20").tolist() == [1, 1, 0, 0, 0]
    assert r.per_window("recall@40").tolist() == [1, 1, 0, 1, 1]
    assert r.per_window("mrr@20").tolist() == [1, 0.5, 0, 0, 0]
    assert r.per_window("mrr@40") == pytest.approx([1, 0.5, 0, 1 / 40, 1 / 20.5])
    with pytest.raises(ValueError, match="ndcg@20"):
        r.per_window("ndcg@20")
    m = metrics_from_ranks(r.twice_rank, r.third, (1, 20))
    assert m["metrics"]["recall@20"] == pytest.approx(2 / 5)
    assert m["metrics"]["mrr@20"] == pytest.approx(1.5 / 5)
    assert m["metrics_by_popularity"]["semi"]["recall@1"] == 0.0
    assert m["n_windows_by_popularity"] == {"popular": 2, "semi": 1, "unpopular": 2}


def test_the_file_round_trips_without_pickle_and_a_damaged_one_is_absent_with_a_warning(
        tmp_path):
    r = _example()
    path = write_ranks(tmp_path / RANKS_FILE, r)
    with np.load(path, allow_pickle=False) as z:
        assert z["twice_rank"].dtype.kind == "i" and z["user"].dtype.kind == "i"
    back = read_ranks(tmp_path)
    assert back is not None and back.same_windows(r) and back.ties == "conservative"
    assert np.array_equal(back.twice_rank, r.twice_rank)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_ranks(tmp_path / "elsewhere") is None  # no file: absent, no warning

    # A rank changed inside an intact archive: the checksum catches it.
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["twice_rank"] = arrays["twice_rank"].copy()
    arrays["twice_rank"][0] = 4
    np.savez(path, **arrays)
    with pytest.warns(RuntimeWarning, match="checksum") as caught:
        assert read_ranks(tmp_path) is None
    assert len(caught) == 1 and str(path) in str(caught[0].message)
    # A truncated file
    path.write_bytes(encode(r)[:50])
    with pytest.warns(RuntimeWarning, match="cannot be read") as caught:
        assert read_ranks(tmp_path) is None
    assert len(caught) == 1
    # An npz of something else
    np.savez(path, a=np.arange(3))
    with pytest.raises(ValueError, match="lacks"):
        decode(path.read_bytes())

import pytest

from seqrec.experiments import grid, shard
from seqrec.runner import select


def test_thesis_grids_have_the_thesis_sizes():
    e1 = grid("exp1", "thesis", baselines=())
    assert len(e1) == 2 * 10 * 2  # thresholds x chunks x (gru, user_gru)
    assert {(s.group, s.config.data.threshold) for s in e1} == {("exp1.1", 20), ("exp1.2", 2)}
    assert all(s.config.model.embedding_size == 1000 and s.config.model.hidden_size == 1000
               for s in e1)
    e2 = grid("exp2", "thesis", baselines=())
    assert sorted({s.value for s in e2}) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    d = e2[0].config.data
    assert (d.start_frac, d.end_frac, d.filter_parts, d.train_frac) == (0.3, 0.5, 2, 0.95)
    e3 = grid("exp3", "thesis")
    onehot = [s for s in e3 if s.value == -1]
    assert {s.model for s in onehot} == {"gru"}  # one-hot: vanilla GRU only
    assert all(not s.config.train.retrain for s in e3)  # exp 3 reports best validation loss
    assert len(e3) == 3 * (9 * 2 + 1)
    e4 = grid("exp4", "thesis", baselines=())
    assert {s.model for s in e4} == {"gru", "user_gru", "dnc", "user_dnc"}
    assert sorted({s.config.data.seq_len for s in e4}) == [5, 10, 20, 50]
    assert all(s.config.data.start_frac == 0.7 and s.config.data.chunks == 3 for s in e4)
    assert all(s.config.model.embedding_size == 128 for s in e4)


def test_run_ids_are_unique_and_stable():
    specs = grid("all", "thesis")
    ids = [s.run_id for s in specs]
    assert len(ids) == len(set(ids))
    assert ids == [s.run_id for s in grid("all", "thesis")]


def test_overrides_apply_last_and_seeds_expand():
    specs = grid("exp4", "smoke", ["seq_len=7", "seeds=2"], baselines=())
    assert {s.config.data.seq_len for s in specs} == {7}
    assert {s.seed for s in specs} == {0, 1}
    assert {s.config.train.seed for s in specs} == {0, 1}


def test_shards_partition_a_grid_without_overlap_or_gap():
    specs = grid("all", "smoke")
    parts = [shard(specs, i, 3) for i in range(3)]
    ids = [s.run_id for p in parts for s in p]
    assert sorted(ids) == sorted(s.run_id for s in specs)
    assert len(ids) == len(set(ids))
    assert [s.run_id for s in select(specs, shard_spec="1/3")] == [s.run_id for s in parts[1]]
    with pytest.raises(ValueError, match="shard"):
        select(specs, shard_spec="3/3")
    with pytest.raises(ValueError, match="I/N"):
        select(specs, shard_spec="half")


def test_only_selects_by_glob_or_substring():
    specs = grid("exp1", "smoke")
    chosen = select(specs, only=["user_gru"])
    assert chosen and all(s.model == "user_gru" for s in chosen)
    assert select(specs, only=["exp1.2-c1-gru-*"]) == [
        s for s in specs if s.group == "exp1.2" and s.chunk == 1 and s.model == "gru"]


def test_unknown_experiment_and_model_are_clear_errors():
    with pytest.raises(ValueError, match="unknown experiment"):
        grid("exp9")
    with pytest.raises(ValueError, match="unknown model"):
        grid("exp1", models=("lstm",))

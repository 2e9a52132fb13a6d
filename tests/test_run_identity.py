"""A run's identity (docs/design.md, "A run's identity"): pinned, and changed only by what can
change a result.

`GOLDEN` holds the ids of a fixed set of specs: every model, every experiment, both profiles,
each split, the built-in data and a file. Any change of identity fails `test_golden_run_ids`;
if the change is meant, regenerate the table (the command is in its docstring), raise the
version and say so in docs/design.md and the README's notes on versions: every finished run of
every user is trained again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from seqrec.config import RunConfig, run_identity, setting
from seqrec.data import identity
from seqrec.data.identity import content_fingerprint
from seqrec.data.source import DataRef
from seqrec.experiment import GridRequest, build_grid
from seqrec.experiments import EXPERIMENTS
from seqrec.models.registry import DNC, MODEL_NAMES, SASREC, USER, entry
from seqrec.runner import RunOptions, run_specs, status

LOG_LINES = "".join(f"u{u}\ti{(u * 7 + t) % 13}\t{1_000 + t}\n" for u in range(3)
                    for t in range(40))


def golden_specs(log_path: str | Path):
    """(key, spec) pairs: the first spec of each model of every experiment and profile, exp 4
    (smoke) under each split and with SASRec, and exp 4 on a small file."""
    Path(log_path).write_text(LOG_LINES)
    out = []
    for name, exp in EXPERIMENTS.items():
        for prof in sorted(exp.points):
            for split in ("thesis", "leave_one_out", "global_time"):
                if split != "thesis" and not (name == "exp4" and prof == "smoke"):
                    continue
                over = () if split == "thesis" else (f"split={split}",)
                models = exp.models + (("sasrec",) if name == "exp4" else ())
                req = GridRequest(name, prof, overrides=over, models=models)
                seen = set()
                for spec in build_grid(exp, req):
                    key = (spec.group, spec.model)
                    if key not in seen:
                        seen.add(key)
                        out.append((f"{name}/{prof}/{split}/{spec.group}/{spec.model}", spec))
    req = GridRequest("exp4", "smoke", models=("gru",), baselines=("pop",),
                      data=DataRef.file(log_path))
    for spec in build_grid(EXPERIMENTS["exp4"], req)[:2]:
        out.append((f"exp4/smoke/file/{spec.model}", spec))
    return out


# Regenerate (only when a change of identity is meant): `python tests/test_run_identity.py`
# prints this table, one line per spec: profile, split and run id.
GOLDEN = """
smoke thesis exp1-c0-gru-threshold5-s0-8c3f434a
smoke thesis exp1-c0-user_gru-threshold5-s0-f875854d
smoke thesis exp1-c0-pop-threshold5-s0-ef917cc0
smoke thesis exp1-c0-recent-threshold5-s0-72d24016
smoke thesis exp1-c0-markov-threshold5-s0-bdd5c1ab
smoke thesis exp1-c0-item_knn-threshold5-s0-07593c57
thesis thesis exp1-c0-gru-threshold20-s0-26aca92e
thesis thesis exp1-c0-user_gru-threshold20-s0-1b523781
thesis thesis exp1-c0-pop-threshold20-s0-c6629672
thesis thesis exp1-c0-recent-threshold20-s0-3fba7d94
thesis thesis exp1-c0-markov-threshold20-s0-7237910b
thesis thesis exp1-c0-item_knn-threshold20-s0-36aa4357
smoke thesis exp2-c0-gru-train_start_frac0.0-s0-cf111fcf
smoke thesis exp2-c0-user_gru-train_start_frac0.0-s0-84c1a4ca
smoke thesis exp2-c0-pop-train_start_frac0.0-s0-ce113e24
smoke thesis exp2-c0-recent-train_start_frac0.0-s0-cb58796d
smoke thesis exp2-c0-markov-train_start_frac0.0-s0-48704e43
smoke thesis exp2-c0-item_knn-train_start_frac0.0-s0-23553540
thesis thesis exp2-c0-gru-train_start_frac0.0-s0-b4a1f5e8
thesis thesis exp2-c0-user_gru-train_start_frac0.0-s0-aa1de7e6
thesis thesis exp2-c0-pop-train_start_frac0.0-s0-beeb19d8
thesis thesis exp2-c0-recent-train_start_frac0.0-s0-017805fb
thesis thesis exp2-c0-markov-train_start_frac0.0-s0-1e55e47d
thesis thesis exp2-c0-item_knn-train_start_frac0.0-s0-b4a3f54b
smoke thesis exp3-c0-gru-embedding_size8-s0-79c1d379
smoke thesis exp3-c0-user_gru-embedding_size8-s0-7b4b834d
thesis thesis exp3-c0-gru-embedding_size32-s0-96cbed67
thesis thesis exp3-c0-user_gru-embedding_size32-s0-f9f50d1a
smoke thesis exp4-c0-gru-seq_len5-s0-13408200
smoke thesis exp4-c0-user_gru-seq_len5-s0-9aa1ad0c
smoke thesis exp4-c0-dnc-seq_len5-s0-4bea09ec
smoke thesis exp4-c0-user_dnc-seq_len5-s0-781ddf12
smoke thesis exp4-c0-sasrec-seq_len5-s0-a095abf1
smoke thesis exp4-c0-pop-seq_len5-s0-fa9a1346
smoke thesis exp4-c0-recent-seq_len5-s0-cf489a1f
smoke thesis exp4-c0-markov-seq_len5-s0-bd74a901
smoke thesis exp4-c0-item_knn-seq_len5-s0-4fe50d91
smoke leave_one_out exp4-c0-gru-seq_len5-s0-5e79591e
smoke leave_one_out exp4-c0-user_gru-seq_len5-s0-c620bc74
smoke leave_one_out exp4-c0-dnc-seq_len5-s0-bc41c54b
smoke leave_one_out exp4-c0-user_dnc-seq_len5-s0-65a6eafd
smoke leave_one_out exp4-c0-sasrec-seq_len5-s0-e7da3236
smoke leave_one_out exp4-c0-pop-seq_len5-s0-ff38b0c5
smoke leave_one_out exp4-c0-recent-seq_len5-s0-1f29ca40
smoke leave_one_out exp4-c0-markov-seq_len5-s0-9f81f9f9
smoke leave_one_out exp4-c0-item_knn-seq_len5-s0-3ab044fe
smoke global_time exp4-c0-gru-seq_len5-s0-e90f0865
smoke global_time exp4-c0-user_gru-seq_len5-s0-1815b6bd
smoke global_time exp4-c0-dnc-seq_len5-s0-26ab471f
smoke global_time exp4-c0-user_dnc-seq_len5-s0-f97cb8a9
smoke global_time exp4-c0-sasrec-seq_len5-s0-001fa880
smoke global_time exp4-c0-pop-seq_len5-s0-582a8925
smoke global_time exp4-c0-recent-seq_len5-s0-7a2b5b55
smoke global_time exp4-c0-markov-seq_len5-s0-d0cd1938
smoke global_time exp4-c0-item_knn-seq_len5-s0-ca7cea4e
thesis thesis exp4-c0-gru-seq_len5-s0-232e4e5f
thesis thesis exp4-c0-user_gru-seq_len5-s0-c435fae0
thesis thesis exp4-c0-dnc-seq_len5-s0-3fa15476
thesis thesis exp4-c0-user_dnc-seq_len5-s0-f0de4261
thesis thesis exp4-c0-sasrec-seq_len5-s0-925c25ea
thesis thesis exp4-c0-pop-seq_len5-s0-c6854f88
thesis thesis exp4-c0-recent-seq_len5-s0-dc1d1b96
thesis thesis exp4-c0-markov-seq_len5-s0-a20492ee
thesis thesis exp4-c0-item_knn-seq_len5-s0-21a5bcca
smoke thesis validate-taste-c0-gru-seq_len4-s0-ca7d4912
smoke thesis validate-taste-c0-user_gru-seq_len4-s0-5f5d5ed5
smoke thesis validate-taste-c0-dnc-seq_len4-s0-640f16f7
smoke thesis validate-taste-c0-pop-seq_len4-s0-4dff0df7
smoke thesis validate-taste-c0-recent-seq_len4-s0-445dc550
smoke thesis validate-taste-c0-markov-seq_len4-s0-b1445de2
smoke thesis validate-long_range-c0-gru-seq_len4-s0-e832c399
smoke thesis validate-long_range-c0-user_gru-seq_len4-s0-a6579700
smoke thesis validate-long_range-c0-dnc-seq_len4-s0-3ec670db
smoke thesis validate-long_range-c0-pop-seq_len4-s0-cdc2ff82
smoke thesis validate-long_range-c0-recent-seq_len4-s0-7a2866f6
smoke thesis validate-long_range-c0-markov-seq_len4-s0-1e82caf4
smoke thesis validate-neither-c0-gru-seq_len4-s0-e57f887b
smoke thesis validate-neither-c0-user_gru-seq_len4-s0-58d2f506
smoke thesis validate-neither-c0-dnc-seq_len4-s0-0b71aa60
smoke thesis validate-neither-c0-pop-seq_len4-s0-fc88cfeb
smoke thesis validate-neither-c0-recent-seq_len4-s0-eb8417fc
smoke thesis validate-neither-c0-markov-seq_len4-s0-ae31b60d
thesis thesis validate-taste-c0-gru-seq_len20-s0-5956b4df
thesis thesis validate-taste-c0-user_gru-seq_len20-s0-00e095c4
thesis thesis validate-taste-c0-dnc-seq_len20-s0-e0c66cfe
thesis thesis validate-taste-c0-pop-seq_len20-s0-2e76c24a
thesis thesis validate-taste-c0-recent-seq_len20-s0-7efa3090
thesis thesis validate-taste-c0-markov-seq_len20-s0-7469c235
thesis thesis validate-long_range-c0-gru-seq_len20-s0-a0073d9a
thesis thesis validate-long_range-c0-user_gru-seq_len20-s0-d0e66a0e
thesis thesis validate-long_range-c0-dnc-seq_len20-s0-b05ed54d
thesis thesis validate-long_range-c0-pop-seq_len20-s0-be36fa5c
thesis thesis validate-long_range-c0-recent-seq_len20-s0-6f367754
thesis thesis validate-long_range-c0-markov-seq_len20-s0-e0bfbc1d
thesis thesis validate-neither-c0-gru-seq_len20-s0-ce4cd41b
thesis thesis validate-neither-c0-user_gru-seq_len20-s0-7298ce0e
thesis thesis validate-neither-c0-dnc-seq_len20-s0-a97e63a6
thesis thesis validate-neither-c0-pop-seq_len20-s0-09b51478
thesis thesis validate-neither-c0-recent-seq_len20-s0-f898781c
thesis thesis validate-neither-c0-markov-seq_len20-s0-5a843453
smoke file exp4-c0-gru-seq_len5-s0-6adb21e3
smoke file exp4-c0-pop-seq_len5-s0-56b41b36
"""


def _table(log_path: Path) -> str:
    return "".join(f"{key.split('/')[1]} {key.split('/')[2]} {spec.run_id}\n"
                   for key, spec in golden_specs(log_path))


def test_golden_run_ids(tmp_path):
    got, want = _table(tmp_path / "log.tsv").splitlines(), GOLDEN.strip().splitlines()
    changed = sorted(set(got) ^ set(want))
    assert got == want, (
        f"run ids changed ({len(changed)} lines differ, e.g. {changed[:4]}). A change of "
        "identity renames every user's finished runs: see this file's docstring")


def test_every_model_setting_belongs_to_a_section_a_model_reads():
    """A model setting no model reads would never enter an id, and one read by every model
    belongs to no section: every section named by a field is read by some registry row."""
    read = {s for name in MODEL_NAMES for s in entry(name).sections}
    for section in ("data", "model", "train", "eval"):
        for f in dataclasses.fields(getattr(RunConfig(), section)):
            sec = f.metadata.get("section", "")
            assert sec in read or sec in ("", "no-effect"), (section, f.name, sec)


def test_a_setting_of_another_model_is_not_in_the_id():
    spec = _first("exp4", "gru")
    other = replace(spec, config=replace(spec.config, model=replace(
        spec.config.model, sasrec_norm="post", memory_cells=3, user_dropout=0.1)))
    assert other.run_id == spec.run_id
    used = replace(spec, config=replace(spec.config, model=replace(spec.config.model,
                                                                    hidden_size=7)))
    assert used.run_id != spec.run_id


@pytest.mark.parametrize("model, key, value", [
    ("dnc", "memory_cells", 3), ("user_dnc", "user_dropout", 0.1),
    ("sasrec", "sasrec_norm", "post"), ("user_gru", "user_integration", "attentional")])
def test_a_setting_the_model_reads_is_in_its_id(model, key, value):
    spec = _first("exp4", model, models=("gru", "user_gru", "dnc", "user_dnc", "sasrec"))
    changed = replace(spec, config=replace(spec.config, model=replace(spec.config.model,
                                                                       **{key: value})))
    same = getattr(spec.config.model, key) == value
    assert (changed.run_id == spec.run_id) == same


def test_count_baselines_ignore_training_and_model_sizes():
    spec = _first("exp4", "pop")
    other = replace(spec, config=replace(
        spec.config, train=replace(spec.config.train, lr=0.5, epochs=3, eval_batch_size=7),
        model=replace(spec.config.model, hidden_size=3)))
    assert other.run_id == spec.run_id
    assert run_identity(spec.config)["train"] == {"retrain": True, "seed": spec.seed}


def test_the_evaluation_batch_and_the_seed_count_are_in_no_id():
    spec = _first("exp4", "dnc")
    other = replace(spec, config=replace(spec.config, train=replace(
        spec.config.train, eval_batch_size=3, seeds=5)))
    assert other.run_id == spec.run_id


# A setting added in a later version, at its as-before value, leaves every id alone.
@dataclass(frozen=True)
class _LaterModelConfig(type(RunConfig().model)):
    dnc_new_switch: bool = setting(False, DNC, as_before=False)
    sasrec_new_width: int = setting(0, SASREC, as_before=0)
    user_new_gate: str = setting("plain", USER, as_before="plain")


def _later(spec, **values):
    model = _LaterModelConfig(**{**dataclasses.asdict(spec.config.model), **values})
    return replace(spec, config=replace(spec.config, model=model))


@pytest.mark.parametrize("model", ["gru", "user_gru", "dnc", "user_dnc", "sasrec", "pop"])
def test_an_added_setting_at_its_as_before_value_renames_no_run(model):
    spec = _first("exp4", model, models=("gru", "user_gru", "dnc", "user_dnc", "sasrec"))
    assert _later(spec).run_id == spec.run_id
    # At another value it enters the ids of the models that read it, and only those.
    reads = entry(model).sections
    assert (_later(spec, dnc_new_switch=True).run_id != spec.run_id) == (DNC in reads)
    assert (_later(spec, sasrec_new_width=8).run_id != spec.run_id) == (SASREC in reads)
    assert (_later(spec, user_new_gate="x").run_id != spec.run_id) == (USER in reads)


def test_a_grid_continued_after_an_added_setting_skips_its_finished_runs(tmp_path):
    """Runs finished before an upgrade that adds a setting stay done after it."""
    specs = [s for s in build_grid(EXPERIMENTS["exp4"], GridRequest(
        "exp4", "smoke", models=(), baselines=("pop",), chunks=(0,)))]
    logs = []
    records = run_specs(specs, tmp_path, RunOptions(progress=False, tensorboard=False),
                        log=logs.append)
    assert all(r.ok for r in records)
    upgraded = [_later(s) for s in specs]
    assert [status(tmp_path, s) for s in upgraded] == ["ok"] * len(specs)
    logs.clear()
    again = run_specs(upgraded, tmp_path, RunOptions(progress=False, tensorboard=False),
                      log=logs.append)
    assert [r.metrics for r in again] == [r.metrics for r in records]
    assert logs[-1].startswith(f"{len(specs)} of {len(specs)} runs done ({len(specs)} before")


def test_a_files_identity_is_its_contents_not_its_path_or_time(tmp_path):
    a = tmp_path / "a.tsv"
    a.write_text(LOG_LINES)
    b = tmp_path / "sub" / "b.tsv"
    b.parent.mkdir()
    b.write_text(LOG_LINES)
    assert content_fingerprint(a) == content_fingerprint(b) == DataRef.file(b).fingerprint
    b.write_text(LOG_LINES[:-2] + "x\n")  # one byte changed, same size
    assert content_fingerprint(b) != content_fingerprint(a)
    b.write_text(LOG_LINES[:-1])  # truncated
    assert content_fingerprint(b) != content_fingerprint(a)


def test_a_large_files_fingerprint_reads_a_bounded_sample(tmp_path, monkeypatch):


    monkeypatch.setattr(identity, "BLOCK", 4)
    monkeypatch.setattr(identity, "SAMPLES", 3)
    path = tmp_path / "big.bin"
    data = bytearray(b"0123456789" * 10)
    path.write_bytes(bytes(data))
    assert identity._offsets(100) == [0, 48, 96]
    first = identity.content_fingerprint(path)
    data[20] = ord("x")  # outside every sampled block: the documented blind spot
    path.write_bytes(bytes(data))
    assert identity.content_fingerprint(path) == first
    data[49] = ord("x")  # inside the middle block
    path.write_bytes(bytes(data))
    assert identity.content_fingerprint(path) != first


def _first(experiment, model, models=None):
    req = GridRequest(experiment, "smoke", models=models)
    return next(s for s in build_grid(EXPERIMENTS[experiment], req) if s.model == model)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        print(_table(Path(folder) / "log.tsv"), end="")

"""Run records carry a checksum and range-checked values; damage is refused, set aside, redone.

Before (main at 76c5e97): a one-bit change (0.3478 -> 0.3578) was accepted and reported, a third
of random bit flips parsed with changed values, a hand-set Recall@20 of 7.5 was printed, and one
record with a wrong-typed field crashed the whole report.
"""

from __future__ import annotations

import json
import random

import pytest

from seqrec import runner
from seqrec.app import build_report
from seqrec.io import json_digest
from seqrec.record import (
    CHECKSUM_KEY,
    RecordError,
    RunLabel,
    RunRecord,
    read_record,
    record_path,
    write_record,
)
from seqrec.report.records import scan_records

RUN_ID = "exp4-c0-gru-seq_len5-s0-0123abcd"


def a_record(run_id: str = RUN_ID, recall: float = 0.3478, experiment: str = "exp4",
             **extra) -> RunRecord:
    """A finished run's record with every kind of field the runner writes."""
    return RunRecord(
        spec=RunLabel(run_id=run_id, experiment=experiment, group="exp4", model="gru",
                      chunk=0, seed=0, axis="seq_len", value=5, profile="smoke"),
        status="ok", config={"data": {"seq_len": 5, "threshold": 2}, "model": {"name": "gru"}},
        request={"experiment": experiment, "profile": "smoke", "overrides": ["epochs=1"],
                 "models": ["gru"], "baselines": [], "chunks": None, "data": None},
        data={"kind": "synth", "fingerprint": "f00d", "rows_read": 80000, "lines_skipped": 0,
              "synth": {"n_rows": 80000, "n_users": 40, "seed": 0}},
        split={"n_items": 600, "n_users": 40, "windows": {"train": 900, "val": 50, "test": 60},
               "dropped_unseen": {"val": 1, "test": 2}},
        metrics={"recall@20": recall, "recall@1": 0.1234, "mrr@20": 0.2011, "ndcg@20": 0.2456},
        metrics_by_popularity={"popular": {"recall@20": 0.5012}, "semi": {"recall@20": 0.2503},
                               "unpopular": None},
        n_windows_by_popularity={"popular": 20, "semi": 20, "unpopular": 0},
        n_test_windows=60, test_loss=5.4321, n_items=600, n_users=40, epochs_kept=2,
        best_val_loss=5.5, history=[{"stage": "a", "epoch": 0, "train_loss": 6.1,
                                     "val_loss": 5.5, "improved": True, "seconds": 0.5,
                                     "seq_per_s": 1800.0}],
        seq_per_s=1800.0, peak_memory_bytes=123456789, device="cpu",
        versions={"python": "3.12", "seqrec": "0.1"}, seconds=1.5, **extra)


def folder_of(tmp_path, run_id: str = RUN_ID):
    return tmp_path / "runs" / run_id


def test_the_writer_stores_a_checksum_the_reader_checks(tmp_path):
    rec = a_record()
    write_record(folder_of(tmp_path), rec)
    stored = json.loads(record_path(folder_of(tmp_path)).read_text())
    content = {k: v for k, v in stored.items() if k != CHECKSUM_KEY}
    assert stored[CHECKSUM_KEY] == json_digest(content) and stored["format"] == 3
    back = read_record(folder_of(tmp_path))
    assert back == rec and back.verified and back.to_json() == rec.to_json()


def test_a_one_digit_change_is_refused(tmp_path):
    write_record(folder_of(tmp_path), a_record())
    path = record_path(folder_of(tmp_path))
    text = path.read_text()
    assert text.count("0.3478") == 1
    path.write_text(text.replace("0.3478", "0.3578"))  # one bit: '4' 0x34 -> '5' 0x35
    with pytest.raises(RecordError, match="does not match its checksum"):
        read_record(folder_of(tmp_path))


def test_bit_flips_never_give_a_changed_record(tmp_path):
    """400 seeded single-bit flips anywhere in the file: each is refused, or reads as exactly
    the record written (a flip the JSON reading undoes, e.g. the case of a \\u escape)."""
    rec = a_record(reason=None)
    write_record(folder_of(tmp_path), rec)
    path = record_path(folder_of(tmp_path))
    good = path.read_bytes()
    expected = rec.to_json()
    rng = random.Random(19)
    refused = 0
    for _ in range(400):
        data = bytearray(good)
        bit = rng.randrange(len(data) * 8)
        data[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(data))
        try:
            back = read_record(folder_of(tmp_path))
        except RecordError:
            refused += 1
            continue
        assert back.to_json() == expected
    assert refused >= 390  # before: about a third parsed, with changed values


def test_metrics_out_of_range_are_refused(tmp_path):
    write_record(folder_of(tmp_path), a_record(recall=7.5))  # a hand-set Recall@20
    with pytest.raises(RecordError, match=r"metrics\['recall@20'\] = 7.5 is outside \[0, 1\]"):
        read_record(folder_of(tmp_path))
    for bad in ({"n_test_windows": -3}, {"n_items": "600"}, {"seconds": -1.0},
                {"best_val_loss": float("inf")}, {"history": "none"}):
        with pytest.raises(RecordError):
            RunRecord.from_json({**a_record().to_json(), **bad})
    assert RunRecord.from_json({**a_record().to_json(), "best_val_loss": None}).ok


def test_a_record_in_another_runs_folder_is_refused(tmp_path):
    write_record(folder_of(tmp_path, "other-run"), a_record())
    with pytest.raises(RecordError, match="not of the folder it lies in"):
        read_record(folder_of(tmp_path, "other-run"))


def test_records_of_the_format_before_the_checksum_read_unverified(tmp_path):
    rec = a_record()
    old = {**rec.to_json(), "format": 2}
    folder_of(tmp_path).mkdir(parents=True)
    record_path(folder_of(tmp_path)).write_text(json.dumps(old))
    back = read_record(folder_of(tmp_path))
    assert back == rec and not back.verified
    # ... but an old record's values are checked all the same
    record_path(folder_of(tmp_path)).write_text(json.dumps({**old, "metrics": {"recall@20": 2}}))
    with pytest.raises(RecordError, match="outside"):
        read_record(folder_of(tmp_path))
    # and a record that says it has a checksum must have one
    record_path(folder_of(tmp_path)).write_text(json.dumps({**old, "format": 3}))
    with pytest.raises(RecordError, match="has no checksum"):
        read_record(folder_of(tmp_path))


def test_the_report_lists_damaged_and_unverified_records_and_reports_the_rest(tmp_path):
    good = [a_record(f"exp4-c{c}-gru-seq_len5-s0-0123abcd", recall=0.3 + 0.01 * c)
            for c in range(3)]
    for r in good:
        write_record(folder_of(tmp_path, r.run_id), r)
    # a wrong-typed field (before: the whole report crashed on it)
    typed = a_record("exp4-c3-gru-seq_len5-s0-0123abcd")
    write_record(folder_of(tmp_path, typed.run_id), typed)
    path = record_path(folder_of(tmp_path, typed.run_id))
    value = json.loads(path.read_text())
    value["data"]["rows_read"] = "eighty thousand"
    value[CHECKSUM_KEY] = json_digest({k: v for k, v in value.items() if k != CHECKSUM_KEY})
    path.write_text(json.dumps(value))
    # an old record without a checksum
    old = a_record("exp4-c4-gru-seq_len5-s0-0123abcd", recall=0.31)
    folder_of(tmp_path, old.run_id).mkdir(parents=True)
    record_path(folder_of(tmp_path, old.run_id)).write_text(
        json.dumps({**old.to_json(), "format": 2}))
    scan = scan_records(tmp_path)
    assert [r.run_id for r in scan.records] == sorted([*(r.run_id for r in good), old.run_id])
    assert [p.parent.name for p, _ in scan.damaged] == [typed.run_id]
    with pytest.warns(UserWarning, match="rows_read"):
        md = build_report(tmp_path).read_text()
    assert "Damaged run records left out: 1" in md and typed.run_id in md
    assert "data.rows_read = eighty thousand is not a count" in md
    assert "Run records without a checksum" in md and "content unverified): 1" in md
    assert "4 run records: 4 finished" in md


def test_the_runner_sets_a_damaged_record_aside_and_redoes_the_run(tmp_path, monkeypatch):
    from seqrec.experiments import grid

    spec = grid("exp4", "smoke", ["epochs=1"], models=("gru",), baselines=())[0]
    folder = runner.run_dir(tmp_path, spec)
    rec = a_record(spec.run_id)
    write_record(folder, rec)
    path = record_path(folder)
    path.write_text(path.read_text().replace("0.3478", "0.3578"))
    calls = []

    def fake_run_one(spec, out, source, options, log):
        calls.append(spec.run_id)
        write_record(runner.run_dir(out, spec), rec)
        return rec

    monkeypatch.setattr(runner, "run_one", fake_run_one)
    monkeypatch.setattr(runner, "prepare", lambda specs, sources: None)
    with pytest.warns(RuntimeWarning, match="set aside as record.damaged-.*; the run will be "
                                            "done again"):
        (done,) = runner.run_specs([spec], tmp_path, runner.RunOptions(progress=False,
                                                                       tensorboard=False),
                                   log=lambda *a: None)
    assert calls == [spec.run_id] and done == rec
    (aside,) = folder.glob("record.damaged-*.json")
    assert "0.3578" in aside.read_text()  # kept as it was, for a look
    assert read_record(folder) == rec
    md = build_report(tmp_path).read_text()
    assert "Damaged run records set aside and their runs redone: 1" in md and aside.name in md


WRONG = (None, -1, "x", [1], {"a": "b"})
PATHS = (("status",), ("reason",), ("config",), ("config", "data"), ("config", "model"),
         ("request",), ("request", "experiment"), ("request", "overrides"),
         ("request", "models"), ("request", "data"), ("request", "profile"), ("data",),
         ("data", "rows_read"), ("data", "synth"), ("split",), ("split", "windows"),
         ("metrics",), ("metrics", "recall@20"), ("metrics_by_popularity",),
         ("metrics_by_popularity", "popular"), ("n_windows_by_popularity",),
         ("n_test_windows",), ("test_loss",), ("n_items",), ("epochs_kept",),
         ("best_val_loss",), ("history",), ("seq_per_s",), ("device",), ("versions",),
         ("seconds",), ("spec", "experiment"), ("spec", "model"), ("spec", "chunk"),
         ("spec", "seed"), ("spec", "value"), ("spec", "axis"), ("spec", "group"))


def test_no_wrong_typed_field_breaks_the_report(tmp_path):
    """Every field of a record set to values of every JSON type, each variant in its own run
    folder with a valid checksum: one report build lists or uses each, and never raises."""
    from seqrec.experiments import grid

    specs = grid("exp4", "smoke", ["epochs=1"], models=("gru",), baselines=())
    good = [a_record(s.run_id) for s in specs[:2]]
    good = [RunRecord(**{**{f: getattr(r, f) for f in r.__dataclass_fields__},
                         "spec": s.label(), "request": s.request.to_json()})
            for r, s in zip(good, specs, strict=False)]
    for r in good:
        write_record(folder_of(tmp_path, r.run_id), r)
    n = 0
    for path in PATHS:
        for wrong in WRONG:
            value = good[0].to_json()
            run_id = f"variant-{n}"
            value["run_id"] = run_id
            target = value
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = wrong
            value[CHECKSUM_KEY] = json_digest(value)
            folder_of(tmp_path, run_id).mkdir(parents=True)
            record_path(folder_of(tmp_path, run_id)).write_text(json.dumps(value))
            n += 1
    scan = scan_records(tmp_path)
    assert len(scan.records) + len(scan.damaged) == n + len(good)
    with pytest.warns((UserWarning, RuntimeWarning)):
        md = build_report(tmp_path).read_text()
    assert f"Damaged run records left out: {len(scan.damaged)}" in md
    assert {r.run_id for r in good} <= {r.run_id for r in scan.records}

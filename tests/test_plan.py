"""The plan's estimate: one timing per model size, bounded in time, scaled where not timed."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from seqrec import plan as plan_mod
from seqrec.experiment import GridRequest, build_grid
from seqrec.experiments import EXPERIMENTS
from seqrec.plan import PROBE_BATCH, make_plan, plan_lines, run_seconds, step_work
from seqrec.runner import RunOptions, Sources

OPTIONS = RunOptions(device="cpu", progress=False, tensorboard=False)


@pytest.fixture
def fake_steps(monkeypatch):
    """`step_seconds` replaced by a known function of its sizes; its calls recorded."""
    calls = []

    def fake(spec, n_items, n_users, device, steps=3, batch=None):
        calls.append((spec.model, spec.config.data.seq_len, n_items, batch))
        return 1e-6 * batch * n_items * spec.config.data.seq_len

    monkeypatch.setattr(plan_mod, "step_seconds", fake)
    return calls


def _specs(models=("gru", "dnc"), seq_lens="5,10"):
    req = GridRequest("exp4", "smoke", overrides=(f"seq_len={seq_lens}",), models=models,
                      baselines=())
    return build_grid(EXPERIMENTS["exp4"], req)


def test_each_size_is_timed_once_at_its_largest_split_and_scaled_by_batch(tmp_path, fake_steps):
    specs = _specs()
    plans = make_plan(specs, tmp_path, OPTIONS, log=lambda _: None)
    # One timing per (model, window length), however many chunks (item counts) share it
    # (before: one per item-count bucket, so 300 and 324 items were timed twice).
    assert sorted((m, L) for m, L, _, _ in fake_steps) == [
        ("dnc", 5), ("dnc", 10), ("gru", 5), ("gru", 10)]
    batch = specs[0].config.train.batch_size
    assert batch > PROBE_BATCH and {b for *_, b in fake_steps} == {PROBE_BATCH}
    sources = Sources(tmp_path)
    items = {L: max(sources(s.data).split(s.config.data, s.chunk).n_items
                    for s in specs if s.config.data.seq_len == L) for L in (5, 10)}
    assert {(L, n) for _, L, n, _ in fake_steps} == {(5, items[5]), (10, items[10])}
    want = 0.0
    for s in specs:
        split = sources(s.data).split(s.config.data, s.chunk)
        per_step = 1e-6 * PROBE_BATCH * items[s.config.data.seq_len] * s.config.data.seq_len
        want += run_seconds(s, per_step * batch / PROBE_BATCH, len(split.train), len(split.val))
    (p,) = plans
    assert p.seconds == pytest.approx(want) and not p.rough and p.todo == len(specs)


def test_past_the_budget_the_rest_is_scaled_from_a_timed_size(tmp_path, fake_steps):
    specs = _specs()
    (p,) = make_plan(specs, tmp_path, OPTIONS, log=lambda _: None, budget_s=0.0)
    assert len(fake_steps) == 1 and p.rough
    lines = plan_lines([p], "smoke", torch.device("cpu"))
    assert "rough: some sizes were scaled" in lines[-1]


def test_every_model_is_timed_before_any_model_twice(tmp_path, fake_steps, monkeypatch):
    # A budget that allows two timings: one per model, not two of one model.
    clock = iter(range(100))
    monkeypatch.setattr(plan_mod.time, "perf_counter", lambda: float(next(clock)))
    make_plan(_specs(), tmp_path, OPTIONS, log=lambda _: None, budget_s=2.5)
    assert sorted(m for m, *_ in fake_steps) == ["dnc", "gru"]


def test_step_work_grows_with_every_size():
    (spec,) = _specs(models=("gru",), seq_lens="5")[:1]
    base = step_work(spec, 100)
    assert step_work(spec, 200) > base


    wider = replace(spec, config=replace(spec.config, model=replace(spec.config.model,
                                                                     hidden_size=128)))
    assert step_work(wider, 100) > base


def test_a_real_timing_at_the_probe_batch(tmp_path):
    """Not a speed assertion: the real `step_seconds` runs at the probe batch and returns a
    positive time."""
    (spec,) = _specs(models=("gru",), seq_lens="5")[:1]
    assert plan_mod.step_seconds(spec, 50, 5, torch.device("cpu"), steps=1, batch=4) > 0

"""The DNC memory step against values computed by running Csordas and Schmidhuber's own
implementation (xdever/dnc, `Models/DNC.py`; tests/fixtures/README.md): every output and every
gradient, fast (`memory_step`) and plain (`memory_step_reference`), for all eight switch
settings: one step from a random mid-sequence state, and four steps from the empty memory.

The fixture gives the interface as raw components with the reference's activations; they are
placed in seqrec's interface layout and squashed by `split_interface`, so its activations are
checked too. Float64, B 2, N 6, W 4, R 2.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
import torch

from seqrec.models.dnc_memory import (
    MemoryOptions,
    MemoryState,
    memory_step,
    memory_step_reference,
    split_interface,
)

D = torch.float64
FIXTURE = Path(__file__).parent / "fixtures" / "dnc_step_reference.json"
TOL = 1e-10
STEPS = {"fast": memory_step, "plain": memory_step_reference}
# The raw components in seqrec's interface order (`Interface`, `split_interface`), each with the
# switch it needs; [B, R, W] and [B, R, 3] parts are flattened head-major, as both layouts are.
LAYOUT = [("read_keys", None), ("read_strengths_raw", None), ("write_key", None),
          ("write_strength_raw", None), ("erase_raw", None), ("write_vector", None),
          ("free_gates_raw", None), ("allocation_gate_raw", None), ("write_gate_raw", None),
          ("read_modes_raw", None), ("read_masks_raw", "mask"), ("write_mask_raw", "mask"),
          ("sharpness_forward_raw", "link_sharpness_control"),
          ("sharpness_backward_raw", "link_sharpness_control")]
OUTPUTS = ("read_vectors", *MemoryState._fields)


@cache
def fixture() -> dict:
    return json.loads(FIXTURE.read_text())


def sizes() -> dict:
    return fixture()["meta"]["sizes"]


def options(switches: dict) -> MemoryOptions:
    return MemoryOptions(masked_lookup=switches["mask"],
                         dealloc_content=switches["dealloc_content"],
                         link_sharpness=switches["link_sharpness_control"])


def tensors(values: dict) -> dict:
    return {k: torch.tensor(v, dtype=D) for k, v in values.items()}


def raw_components(values: dict, switches: dict) -> dict:
    """The raw components this setting has, as leaf tensors that take gradients."""
    present = [name for name, switch in LAYOUT if switch is None or switches[switch]]
    assert sorted(present) == sorted(values)
    return {name: torch.tensor(values[name], dtype=D, requires_grad=True) for name in present}


def run_step(step, state: MemoryState, raw: dict, opts: MemoryOptions) -> dict:
    """One memory step on the raw components -> every output by the fixture's names."""
    b, w, r = sizes()["B"], sizes()["W"], sizes()["R"]
    flat = torch.cat([x.reshape(b, -1) for x in raw.values()], dim=1)
    reads, new = step(state, split_interface(flat, w, r, opts), opts)
    return {"read_vectors": reads, **new._asdict()}


def state_from(values: dict, requires_grad: bool = False) -> MemoryState:
    return MemoryState(**{k: v.requires_grad_(requires_grad) for k, v in tensors(values).items()})


def assert_close(got: torch.Tensor, expected, name: str, rtol: float = 0.0) -> None:
    torch.testing.assert_close(got, torch.as_tensor(expected, dtype=D), rtol=rtol, atol=TOL,
                               msg=lambda m: f"{name}: {m}")


SETTINGS = [pytest.param(i, id=f"setting{i}") for i in range(8)]


def setting(i: int) -> dict:
    entry = fixture()["settings"][i]
    assert [entry["switches"][k] for k in ("mask", "dealloc_content", "link_sharpness_control")
            ] == [bool(i & 4), bool(i & 2), bool(i & 1)]  # the README's order
    return entry


@pytest.mark.parametrize("which", list(STEPS))
@pytest.mark.parametrize("index", SETTINGS)
def test_single_step_outputs_and_gradients_equal_the_reference(index, which):
    entry = setting(index)
    opts = options(entry["switches"])
    single, grads = entry["single_step"], entry["gradients"]
    state = state_from(single["state_in"], requires_grad=True)
    raw = raw_components(single["interface_raw"], entry["switches"])
    out = run_step(STEPS[which], state, raw, opts)
    assert set(out) == set(single["outputs"]) == set(OUTPUTS)
    for name in OUTPUTS:
        assert_close(out[name], single["outputs"][name], name)

    weights = tensors(grads["loss_weights"])
    loss = sum((out[name] * weights[name]).sum() for name in OUTPUTS)
    assert_close(loss, grads["loss"], "loss")
    leaves = {**{f"raw {k}": v for k, v in raw.items()},
              **{f"state {k}": v for k, v in state._asdict().items()}}
    got = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()), allow_unused=True),
                   strict=True))
    for name, value in grads["d_interface_raw"].items():
        assert_close(got[f"raw {name}"], value, f"d {name}")
    for name, value in grads["d_state_in"].items():
        grad = got[f"state {name}"]
        if grad is None:  # not used differentiably: the previous write weights
            grad = torch.zeros_like(leaves[f"state {name}"])
        if name == "memory":
            assert_memory_gradient(grad, value)
        else:
            assert_close(grad, value, f"d {name}")


def assert_memory_gradient(grad: torch.Tensor, expected: list) -> None:
    """d loss / d memory: absolute tolerance, but relative at the all-zero cell, whose gradient
    scales with 1/EPS (about 1e5; the fixture README)."""
    meta = fixture()["meta"]["zero_memory_cell"]
    b, n = meta["batch"], meta["cell"]
    expected = torch.tensor(expected, dtype=D)
    zero_cell = torch.zeros_like(expected, dtype=torch.bool)
    zero_cell[b, n] = True
    assert expected[zero_cell].abs().max() > 1e4  # the 1/EPS scale is there to be checked
    torch.testing.assert_close(grad[zero_cell], expected[zero_cell], rtol=TOL, atol=0.0)
    torch.testing.assert_close(grad[~zero_cell], expected[~zero_cell], rtol=0.0, atol=TOL)


@pytest.mark.parametrize("which", list(STEPS))
@pytest.mark.parametrize("index", SETTINGS)
def test_sequence_from_the_empty_memory_equals_the_reference(index, which):
    entry = setting(index)
    opts = options(entry["switches"])
    seq = entry["sequence"]
    state = state_from(seq["state_in"])
    assert all((x == 0).all() for x in state)
    with torch.no_grad():
        for t, step in enumerate(seq["steps"]):
            raw = raw_components(step["interface_raw"], entry["switches"])
            out = run_step(STEPS[which], state, raw, opts)
            for name in OUTPUTS:
                assert_close(out[name], step["outputs"][name], f"step {t} {name}")
            state = MemoryState(*(out[name] for name in MemoryState._fields))


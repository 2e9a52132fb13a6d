"""The integer-threshold dropout mask: right keep rate, right scale, reproducible, a true
dropout in autograd."""

from __future__ import annotations

import math

import pytest
import torch

from seqrec.models.dropout import dropout, dropout_mask, keep_threshold

CPU = torch.device("cpu")


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_keep_rate_and_scale(p):
    mask = dropout_mask((1000, 997), p, device=CPU, dtype=torch.float32)
    values = torch.unique(mask).tolist()
    assert values[0] == 0.0 and values[1] == pytest.approx(1 / (1 - p)) and len(values) == 2
    n = mask.numel()
    kept = float((mask > 0).double().mean())
    # Within 5 binomial standard errors of 1 - p (a wrong threshold is off by far more).
    assert abs(kept - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    assert float(mask.double().mean()) == pytest.approx(1.0, abs=5 * math.sqrt(p / (1 - p) / n))


def test_threshold_edges():
    # p = 0 keeps every int32 (the smallest value clears the threshold), p = 1/2 keeps v >= 0.
    assert keep_threshold(0.0) == -(2 ** 31)
    assert keep_threshold(0.5) == 0
    assert keep_threshold(0.25) == -(2 ** 30)


def test_elements_independent_of_neighbours():
    # The two 32-bit halves of one int64 must be independent: P(both kept) = (1 - p)^2.
    mask = dropout_mask((2_000_000,), 0.5, device=CPU, dtype=torch.float32) > 0
    pairs = mask.view(-1, 2)
    both = float((pairs[:, 0] & pairs[:, 1]).double().mean())
    assert abs(both - 0.25) < 5 * math.sqrt(0.25 * 0.75 / pairs.shape[0])


def test_seeded_and_generator_reproducible():
    torch.manual_seed(3)
    a = dropout_mask((7, 5), 0.3, device=CPU, dtype=torch.float64)
    torch.manual_seed(3)
    b = dropout_mask((7, 5), 0.3, device=CPU, dtype=torch.float64)
    c = dropout_mask((7, 5), 0.3, device=CPU, dtype=torch.float64,
                     generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    assert c.shape == (7, 5) and c.dtype == torch.float64


def test_dropout_is_mask_times_input_with_matching_gradient():
    x = torch.randn(50, 40, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(9)
    y = dropout(x, 0.4, True)
    torch.manual_seed(9)
    mask = dropout_mask((50, 40), 0.4, device=CPU, dtype=torch.float64)
    torch.testing.assert_close(y, x * mask, rtol=0, atol=0)
    y.sum().backward()
    torch.testing.assert_close(x.grad, mask, rtol=0, atol=0)
    assert dropout(x, 0.4, False) is x and dropout(x, 0.0, True) is x


def test_bad_probability():
    with pytest.raises(ValueError, match="dropout probability"):
        dropout_mask((3,), 1.0, device=CPU, dtype=torch.float32)

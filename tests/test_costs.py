"""CostModel: hand-checked arithmetic, invariants, impact, batching and bad rates."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factorgym.costs import CostModel
from factorgym.errors import DataValidationError

BPS = 1e-4


def test_defaults_are_the_papers_rates() -> None:
    c = CostModel()
    assert c.buy == pytest.approx(7.5 * BPS) and c.sell == pytest.approx(12.5 * BPS) and c.is_linear


def test_asymmetric_trade_by_hand() -> None:
    c = CostModel()
    w_drift = np.array([0.2, 0.3, 0.5])
    w_target = np.array([0.4, 0.1, 0.5])  # buy 0.2 of the first, sell 0.2 of the second
    assert c.cost(w_target, w_drift) == pytest.approx(0.2 * 7.5 * BPS + 0.2 * 12.5 * BPS, rel=1e-12)
    # the same size bought or sold costs 7.5 or 12.5 bps
    assert c.cost(np.array([0.6]), np.array([0.5])) == pytest.approx(0.1 * 7.5 * BPS, rel=1e-12)
    assert c.cost(np.array([0.4]), np.array([0.5])) == pytest.approx(0.1 * 12.5 * BPS, rel=1e-12)
    # going to cash (all sells) and buying from cash (all buys)
    assert c.cost(np.zeros(3), w_drift) == pytest.approx(12.5 * BPS, rel=1e-12)
    assert c.cost(w_drift, np.zeros(3)) == pytest.approx(7.5 * BPS, rel=1e-12)


def test_per_asset_rates() -> None:
    c = CostModel(buy=np.array([1.0, 2.0, 3.0]) * BPS, sell=np.array([4.0, 5.0, 6.0]) * BPS)
    dw = np.array([0.1, -0.2, 0.3])
    expected = (0.1 * 1.0 + 0.2 * 5.0 + 0.3 * 3.0) * BPS
    assert c.cost(dw, np.zeros(3)) == pytest.approx(expected, rel=1e-12)
    b, s, k = c.rates(3)
    np.testing.assert_allclose(b, [1e-4, 2e-4, 3e-4], rtol=1e-15)
    assert k.shape == (3,) and not k.any()


def test_square_root_impact_term() -> None:
    c = CostModel(buy=0.0, sell=0.0, impact=0.01)
    assert not c.is_linear
    assert c.cost(np.array([0.54, 0.46]), np.array([0.5, 0.5])) == pytest.approx(2 * 0.01 * 0.04**1.5, rel=1e-12)
    both = CostModel(impact=0.01)
    lin = CostModel()
    w, wd = np.array([0.3, 0.7]), np.array([0.5, 0.5])
    assert both.cost(w, wd) == pytest.approx(lin.cost(w, wd) + c.cost(w, wd), rel=1e-12)
    # superlinear: doubling the trade more than doubles the impact
    assert c.cost(2 * w - wd, wd) == pytest.approx(2**1.5 * c.cost(w, wd), rel=1e-12)


def test_broadcasting_over_a_batch() -> None:
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(4), size=(3, 5))  # (P, B, N)
    wd = rng.dirichlet(np.ones(4), size=(3, 5))
    c = CostModel(buy=np.array([1, 2, 3, 4]) * BPS, impact=0.002)
    out = c.cost(w, wd)
    assert out.shape == (3, 5)
    for i in range(3):
        for j in range(5):
            assert out[i, j] == pytest.approx(c.cost(w[i, j], wd[i, j]), rel=1e-12)


weights = hnp.arrays(np.float64, st.integers(1, 6).map(lambda n: (2, n)), elements=st.floats(-2, 2, allow_nan=False))
rates = st.floats(0, 0.05, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(weights, rates, rates, rates)
def test_cost_is_non_negative_and_zero_without_trade(w: np.ndarray, buy: float, sell: float, impact: float) -> None:
    c = CostModel(buy=buy, sell=sell, impact=impact)
    cost = c.cost(w[0], w[1])
    assert cost >= 0.0
    assert c.cost(w[0], w[0]) == 0.0
    # never more than the dearer linear rate on the whole turnover, plus the impact term
    turnover = np.abs(w[0] - w[1])
    assert cost <= max(buy, sell) * turnover.sum() + impact * (turnover**1.5).sum() + 1e-15


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"buy": -1e-4}, "buy must be finite and non-negative"),
        ({"sell": np.nan}, "sell must be finite and non-negative"),
        ({"impact": np.inf}, "impact must be finite and non-negative"),
        ({"sell": np.array([1e-4, -1e-4])}, "sell must be finite and non-negative"),
        ({"buy": np.ones((2, 2)) * 1e-4}, r"scalar or of shape \(N,\), got shape \(2, 2\)"),
        ({"buy": "cheap"}, "must be a number or 1-D array"),
    ],
)
def test_bad_rates_rejected(kwargs: dict, pattern: str) -> None:
    with pytest.raises(DataValidationError, match=pattern):
        CostModel(**kwargs)


def test_shape_errors_at_trade_time() -> None:
    c = CostModel(buy=np.array([1.0, 2.0, 3.0]) * BPS)
    with pytest.raises(DataValidationError, match="buy has 3 entries for 4 assets"):
        c.cost(np.zeros(4), np.ones(4) / 4)
    with pytest.raises(DataValidationError, match=r"weight shapes differ: \(3,\) vs \(2, 3\)"):
        c.cost(np.zeros(3), np.zeros((2, 3)))

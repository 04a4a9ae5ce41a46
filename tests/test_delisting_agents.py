"""Agents on a point-in-time universe (issue 15 item 1, agent side): an absent cell is
missing data, never a zero return; an asset absent on the decision day gets zero weight;
1/N is 1/N of the assets alive that day."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.covariance import LedoitWolf

from factorgym.agents.baselines import BuyAndHold, EqualWeight
from factorgym.agents.estimators import HistoricalSource
from factorgym.agents.optimizers import MeanCVaR, MeanVariance
from factorgym.agents.protocol import parse_observation
from factorgym.constraints import Constraints
from factorgym.data import ReturnPanel

T, N, WINDOW = 160, 5, 30
DEAD, DEAD_FROM = 1, 90  # asset 1 delists: absent from row 90 on
LATE, LATE_FROM = 3, 50  # asset 3 lists late: absent before row 50


def pit_panel() -> ReturnPanel:
    rng = np.random.default_rng(11)
    mkt = rng.standard_t(5, T) * 0.01
    r = 4e-4 + mkt[:, None] * rng.normal(1.0, 0.3, N) + rng.standard_t(5, (T, N)) * 0.012
    mask = np.ones((T, N), dtype=bool)
    mask[DEAD_FROM:, DEAD] = False
    mask[:LATE_FROM, LATE] = False
    r = np.where(mask, r, np.nan)
    return ReturnPanel(pd.bdate_range("2015-01-01", periods=T), tuple(f"A{i}" for i in range(N)), r, mask, name="pit")


def observation(panel: ReturnPanel, t: int, weights: np.ndarray) -> dict[str, np.ndarray]:
    """What a historical environment observes at day ``t``'s close: absent cells are 0.0
    with a ``"mask"`` key (``envs.markets``)."""
    m = np.asarray(panel.mask[t - WINDOW + 1 : t + 1], dtype=np.float64)
    r = np.nan_to_num(np.asarray(panel.returns[t - WINDOW + 1 : t + 1]), nan=0.0)
    return {"returns": r, "weights": weights, "mask": m}


def walk(agent, panel: ReturnPanel) -> dict[int, np.ndarray]:
    """Targets of ``agent`` on every day, drifting the book with the realised returns
    (an absent asset's position is settled into cash, as the environment does)."""
    w = np.zeros(N + 1)
    w[-1] = 1.0
    out = {}
    for t in range(WINDOW - 1, T - 1):
        target, _ = agent.predict(observation(panel, t, w))
        out[t] = target
        r = np.nan_to_num(np.asarray(panel.returns[t + 1]), nan=0.0)
        held = np.where(panel.mask[t + 1], target, 0.0)
        cash = 1.0 - held.sum()
        grown = np.append(held * (1.0 + r), cash)
        w = grown / grown.sum()
    return out


def test_parse_observation_reads_masked_cells_as_missing() -> None:
    panel = pit_panel()
    obs = observation(panel, 100, np.append(np.zeros(N), 1.0))
    r, _, _ = parse_observation(obs)
    gone = DEAD_FROM - (100 - WINDOW + 1)  # first window row after the delisting
    assert np.isnan(r[0, gone:, DEAD]).all() and np.isfinite(r[0, :gone, DEAD]).all()  # never a zero return
    np.testing.assert_array_equal(np.isnan(r[0]), obs["mask"] == 0)


AGENTS = {
    "cvar": lambda: MeanCVaR(HistoricalSource(window=WINDOW, mean="zero"), constraints=Constraints(budget=(1.0, 1.0)), seed=0),
    "mv": lambda: MeanVariance(HistoricalSource(window=WINDOW), gamma=5.0, constraints=Constraints(budget=(1.0, 1.0))),
    "min_var_cash": lambda: MeanVariance(HistoricalSource(window=WINDOW, mean="zero"), gamma=50.0),
    "equal": lambda: EqualWeight(),
    "buy_and_hold": lambda: BuyAndHold(),
}


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_no_weight_in_an_absent_asset_on_any_day(name: str) -> None:
    panel = pit_panel()
    targets = walk(AGENTS[name](), panel)
    for t, w in targets.items():
        absent = ~panel.mask[t]
        assert np.all(w[absent] == 0.0), (name, t, w)
        if name in ("cvar", "mv", "min_var_cash"):
            # the optimizers also wait for a complete estimation window before buying a listing
            complete = panel.mask[t - WINDOW + 1 : t + 1].all(axis=0)
            assert np.all(w[~complete] == 0.0), (name, t, w)


def test_equal_weight_is_one_over_the_live_assets() -> None:
    panel = pit_panel()
    targets = walk(EqualWeight(), panel)
    for t, w in targets.items():
        alive = panel.mask[t]
        np.testing.assert_allclose(w[alive], 1.0 / alive.sum(), rtol=0, atol=0)
    assert np.count_nonzero(targets[40]) == N - 1 and np.count_nonzero(targets[120]) == N - 1
    assert np.count_nonzero(targets[70]) == N


@pytest.mark.parametrize("t", [70, 100, 140])
def test_estimates_use_available_data_only(t: int) -> None:
    """By hand: the estimators on the columns complete over the window; the others unavailable."""
    panel = pit_panel()
    r, _, _ = parse_observation(observation(panel, t, np.append(np.zeros(N), 1.0)))
    x = np.asarray(panel.returns[t - WINDOW + 1 : t + 1])
    cols = np.isfinite(x).all(axis=0)
    est = HistoricalSource(window=WINDOW).estimate(r[0], scenarios=True)
    np.testing.assert_array_equal(est.available, cols)
    np.testing.assert_allclose(est.mean[cols], x[:, cols].mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(est.cov[np.ix_(cols, cols)], LedoitWolf().fit(x[:, cols]).covariance_, rtol=1e-12)
    np.testing.assert_array_equal(est.scenarios[:, cols], x[:, cols])
    assert np.isnan(est.mean[~cols]).all() and np.isnan(est.scenarios[:, ~cols]).all()
    if t >= DEAD_FROM:
        assert not cols[DEAD]
    # the agent's view: the same numbers, and the unavailable assets pinned at zero weight
    d = MeanVariance(HistoricalSource(window=WINDOW), gamma=5.0, constraints=Constraints(budget=(1.0, 1.0))).optimize(
        r[0], np.zeros(N)
    )
    assert np.all(d.weights[~cols] == 0.0) and d.weights.sum() == pytest.approx(1.0)

"""Baseline agents (equal weight, buy-and-hold) and the market benchmark series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factorgym import metrics as M
from factorgym.agents.baselines import (
    BuyAndHold,
    EqualWeight,
    market_metrics,
    market_returns,
    self_financing_scale,
)
from factorgym.agents.protocol import Policy
from factorgym.costs import CostModel
from factorgym.data import ReturnPanel
from factorgym.envs.actions import Constraints, check_feasible
from factorgym.errors import DataValidationError


def settle(w: np.ndarray, wd: np.ndarray, r: np.ndarray, cm: CostModel, rf: float = 0.0) -> tuple[float, float, np.ndarray]:
    """The environment contract for one day: net return, cost, new drifted weights."""
    c = float(cm.cost(w, wd))
    big_r = float(w @ r + (1.0 - w.sum()) * rf - c)
    return big_r, c, w * (1.0 + r) / (1.0 + big_r)


def run(agent: Policy, returns: np.ndarray, cm: CostModel, rf: float = 0.0, window: int = 5) -> dict[str, np.ndarray]:
    """Roll an agent through ``returns`` with the contract's accounting (all-cash start)."""
    n = returns.shape[1]
    wd = np.zeros(n)
    out: dict[str, list] = {"R": [], "cost": [], "w": [], "wd": []}
    for t in range(window, returns.shape[0] - 1):
        obs = {"returns": returns[t - window + 1 : t + 1], "weights": np.append(wd, 1.0 - wd.sum())}
        w, _ = agent.predict(obs)
        big_r, c, wd_next = settle(w, wd, returns[t + 1], cm, rf)
        for k, v in (("R", big_r), ("cost", c), ("w", w), ("wd", wd)):
            out[k].append(v)
        wd = wd_next
    return {k: np.asarray(v) for k, v in out.items()}


def panel_returns(t: int = 60, n: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(4e-4, 0.012, size=(t, n))


def test_equal_weight_rebalances_daily() -> None:
    r = panel_returns()
    cm = CostModel()
    res = run(EqualWeight(), r, cm)
    np.testing.assert_array_equal(res["w"], np.full_like(res["w"], 0.2))
    assert (res["cost"][1:] > 0).all()  # trades back from the drift every day
    actions, _ = EqualWeight(0.5).predict({"returns": np.zeros((2, 3, 4)), "weights": np.zeros((2, 5))})
    np.testing.assert_array_equal(actions, np.full((2, 4), 0.125))


@pytest.mark.parametrize("rf", [0.0, 1e-4])
def test_buy_and_hold_pays_once_and_stays_within_the_budget(rf: float) -> None:
    r = panel_returns(seed=1)
    cm = CostModel()
    res = run(BuyAndHold(cost_model=cm), r, cm, rf)
    assert res["cost"][0] > 0
    np.testing.assert_array_equal(res["cost"][1:], 0.0)
    np.testing.assert_array_equal(res["w"][1:], res["wd"][1:])  # the action is the drifted book
    # self-financing: the initial cost came out of the cash it kept, so cash never goes
    # negative and every target satisfies the environment's default budget sum(w) <= 1
    first = res["w"][0]
    assert first.sum() + res["cost"][0] == pytest.approx(1.0, abs=1e-14)
    for w, wd in zip(res["w"], res["wd"], strict=True):
        check_feasible(w, wd, Constraints())


def test_buy_and_hold_without_self_financing_breaks_the_budget() -> None:
    r = panel_returns(seed=2)
    cm = CostModel()
    res = run(BuyAndHold(self_financing=False), r, cm)
    assert res["w"][0].sum() == pytest.approx(1.0)
    assert res["w"][1].sum() > 1.0 + 1e-5  # the cost was paid from cash: cash < 0


def test_buy_and_hold_holds_a_non_cash_start() -> None:
    wd = np.array([0.5, 0.2, 0.1])
    w, _ = BuyAndHold().predict({"returns": np.zeros((3, 3)), "weights": np.append(wd, 0.2)})
    np.testing.assert_array_equal(w, wd)
    w, _ = BuyAndHold(initial=np.array([0.5, 0.5, 0.0]), cost_model=CostModel(0, 0)).predict(
        {"returns": np.zeros((3, 3)), "weights": np.array([0, 0, 0, 1.0])}
    )
    np.testing.assert_array_equal(w, [0.5, 0.5, 0.0])
    with pytest.raises(DataValidationError, match="shape"):
        BuyAndHold(initial=np.ones(2)).predict({"returns": np.zeros((3, 3)), "weights": np.array([0, 0, 0, 1.0])})


def test_self_financing_scale_with_impact() -> None:
    cm = CostModel(1e-3, 2e-3, impact=5e-3)
    t = np.full(4, 0.25)
    x = self_financing_scale(t, np.zeros(4), 1.0, cm)
    assert x * t.sum() + cm.cost(x * t, np.zeros(4)) == pytest.approx(1.0, abs=1e-14)
    assert 0.99 < x < 1.0


def _panel() -> ReturnPanel:
    dates = pd.bdate_range("2020-01-01", periods=30)
    rng = np.random.default_rng(0)
    r = rng.normal(0, 0.01, size=(30, 3))
    exog = pd.DataFrame({"SP500": rng.normal(3e-4, 0.01, 30)}, index=dates)
    return ReturnPanel(dates, ("A", "B", "C"), r, np.ones_like(r, dtype=bool), exog=exog, name="toy")


def test_market_returns_and_metrics() -> None:
    p = _panel()
    s = market_returns(p, "2020-01-10", "2020-01-20")
    assert s.index[0] == pd.Timestamp("2020-01-10") and s.index[-1] == pd.Timestamp("2020-01-20")
    np.testing.assert_array_equal(s.to_numpy(), p.exog["SP500"].loc["2020-01-10":"2020-01-20"].to_numpy())
    same = market_returns(p, dates=s.index)
    pd.testing.assert_series_equal(same, s)
    m = market_metrics(p, "2020-01-10", "2020-01-20", risk_free=1e-4)
    ref = M.portfolio_metrics(s.to_numpy(), turnover=np.zeros(len(s)), costs=np.zeros(len(s)), risk_free=1e-4)
    assert m == ref
    assert m["total_costs"] == 0.0 and m["mean_turnover"] == 0.0
    with pytest.raises(DataValidationError, match="not in toy"):
        market_returns(p, dates=pd.DatetimeIndex(["1999-01-04"]))
    with pytest.raises(DataValidationError, match="no exogenous column"):
        market_returns(p, column="NDX")
    with pytest.raises(DataValidationError, match="no SP500 returns"):
        market_returns(p, "2021-01-01", "2021-02-01")


def test_baselines_follow_the_policy_protocol() -> None:
    assert isinstance(EqualWeight(), Policy) and isinstance(BuyAndHold(), Policy)
    assert EqualWeight().action_mode == "weights"

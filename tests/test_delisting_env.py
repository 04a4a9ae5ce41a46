"""A point-in-time universe in the environments: listings, delistings and gaps.

Four assets over 30 days: A trades every day, B delists (its last traded day is row 12),
C lists on row 8, D has a two-day gap (rows 15 and 16). The environments' accounting is
checked against an independent scalar computation of the rules:

* an asset trades at the close of a day it is present; on a day it is absent it can only be
  reduced towards zero (never bought or shorted further) and is otherwise carried at its last
  price, earning 0;
* a position in an asset that delists is settled into cash at its last close, at no cost.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factorgym.costs import CostModel
from factorgym.data import ReturnPanel
from factorgym.envs import Constraints, GenerativeMarket, HistoricalMarket, PortfolioEnv
from factorgym.errors import ActionError

pytest.importorskip("stable_baselines3")
from factorgym.envs.vec_env import VecPortfolioEnv  # noqa: E402

T, N, T0 = 30, 4, 5
B_LAST, C_FIRST, D_GAP = 12, 8, (15, 16)
BUY, SELL, RF = 1e-3, 2e-3, 2e-4


def _universe() -> ReturnPanel:
    rng = np.random.default_rng(0)
    r = rng.normal(5e-4, 0.02, (T, N))
    mask = np.ones((T, N), dtype=bool)
    mask[B_LAST + 1 :, 1] = False
    mask[:C_FIRST, 2] = False
    mask[list(D_GAP), 3] = False
    return ReturnPanel(pd.bdate_range("2020-01-01", periods=T), ("A", "B", "C", "D"), np.where(mask, r, np.nan), mask, name="pit")


@pytest.fixture(scope="module")
def panel():
    return _universe()


def _env_kw(mode):
    kw = {"window": 3, "action_mode": mode, "cost_model": CostModel(buy=BUY, sell=SELL), "risk_free": RF}
    if mode == "long_short":
        kw["constraints"] = Constraints.long_short(2.0)
    return kw


def _reference(panel, actions, mode):
    """Scalar re-computation of the environment's accounting under the rules above."""
    R = panel.returns
    M = panel.mask
    W, wd = 1.0, [0.0] * N
    wealth, costs, held_all = [], [], []
    for k, a in enumerate(actions):
        t = T0 + k
        if mode == "long_short":
            gross = sum(abs(x) for x in a)
            w = [2.0 * float(x) / max(1.0, gross) for x in a]
        else:
            w = [float(x) for x in a]
        for i in range(N):
            if not M[t, i]:  # absent today: only towards zero
                w[i] = min(max(w[i], min(0.0, wd[i])), max(0.0, wd[i]))
        c = sum(BUY * max(w[i] - wd[i], 0.0) + SELL * max(wd[i] - w[i], 0.0) for i in range(N))
        held = [0.0 if (i == 1 and t >= B_LAST) else w[i] for i in range(N)]  # B settled at its last close
        r = [0.0 if np.isnan(R[t + 1, i]) else float(R[t + 1, i]) for i in range(N)]
        G = 1.0 + sum(held[i] * r[i] for i in range(N)) + (1.0 - sum(held)) * RF
        W = W * (1.0 - c) * G
        wd = [held[i] * (1.0 + r[i]) / G for i in range(N)]
        wealth.append(W)
        costs.append(c)
        held_all.append(held)
    return np.array(wealth), np.array(costs), np.array(held_all)


def _weights_policy(obs):
    """0.22 in each asset present today, hold the rest: a book the rules never alter."""
    present = obs["mask"][..., -1, :] > 0.5
    return np.where(present, 0.22, obs["weights"][..., :-1])


def _run_scalar(panel, mode, actions=None):
    env = PortfolioEnv(HistoricalMarket(panel, start=T0, horizon=None), **_env_kw(mode))
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(1)
    acts, infos, obs_seq = [], [], [obs]
    for k in range(T - 1 - T0):
        a = _weights_policy(obs) if mode == "weights" else (actions[k] if actions is not None else rng.uniform(-1, 1, N).astype(np.float32))
        obs, _, te, tr, info = env.step(a)
        acts.append(np.asarray(a, dtype=np.float64))
        infos.append(info)
        obs_seq.append(obs)
    assert tr and not te
    return acts, infos, obs_seq


@pytest.mark.parametrize("mode", ["weights", "long_short"])
def test_point_in_time_accounting_to_the_cent(panel, mode):
    acts, infos, obs_seq = _run_scalar(panel, mode)
    wealth, costs, held = _reference(panel, acts, mode)
    np.testing.assert_allclose([i["wealth"] for i in infos], wealth, rtol=1e-9, atol=0)
    np.testing.assert_allclose([i["cost"] for i in infos], costs, rtol=1e-9, atol=1e-15)
    # B is settled at the close of its last day: no position in it afterwards, nothing charged
    k_last = B_LAST - T0
    assert held[k_last][1] == 0.0 and any(abs(h[1]) > 0 for h in held[:k_last])
    for obs in obs_seq[k_last + 1 :]:
        assert obs["weights"][1] == 0.0
    # D keeps its position through its gap, carried at its last price (earning 0)
    k15 = D_GAP[0] - T0
    assert obs_seq[k15]["weights"][3] != 0.0
    for k in (k15, k15 + 1):  # obs_seq[k] is the book at the close of row T0 + k, before the trade
        before, after = obs_seq[k]["weights"][3], held[k][3]
        assert after * before >= 0 and abs(after) <= abs(before) + 1e-15
        if mode == "weights":
            assert after == pytest.approx(before, rel=1e-12)


@pytest.mark.parametrize("mode", ["weights", "long_short"])
def test_vec_env_keeps_the_same_point_in_time_books(panel, mode):
    acts, infos, _ = _run_scalar(panel, mode)
    P = 3
    vec = VecPortfolioEnv(HistoricalMarket(panel, start=T0, horizon=None), P, seed=0, **_env_kw(mode))
    obs = vec.reset()
    wealth = []
    for k in range(len(acts)):
        a = _weights_policy(obs) if mode == "weights" else np.tile(acts[k].astype(np.float32), (P, 1))
        obs, _, _, step_infos = vec.step(a)
        wealth.append([i["wealth"] for i in step_infos])
    ref, _, _ = _reference(panel, acts, mode)
    np.testing.assert_allclose(np.array(wealth), np.tile(ref[:, None], (1, P)), rtol=1e-9, atol=0)


@pytest.mark.parametrize("mode", ["softmax", "simplex"])
def test_mapped_modes_never_buy_an_absent_asset(panel, mode):
    env = PortfolioEnv(HistoricalMarket(panel, start=T0, horizon=None), **_env_kw(mode))
    obs, _ = env.reset(seed=0)
    env.action_space.seed(2)
    for k in range(T - 1 - T0):
        t = T0 + k
        wd = obs["weights"][:-1]
        obs, _, _, _, info = env.step(env.action_space.sample())
        held = env.engine.held[0]
        for i in range(N):
            if not panel.mask[t, i]:
                assert 0.0 <= held[i] <= wd[i] + 1e-15, (t, i)
        assert held.sum() <= 1 + 1e-12 and (held >= -1e-15).all()
        if t >= B_LAST:
            assert held[1] == 0.0 and obs["weights"][1] == 0.0
    # C could not be bought before it listed
    assert info["wealth"] > 0


def test_weights_mode_refuses_to_buy_an_absent_asset_naming_it(panel):
    env = PortfolioEnv(HistoricalMarket(panel, start=T0, horizon=None), **_env_kw("weights"))
    env.reset(seed=0)
    w = np.array([0.2, 0.2, 0.2, 0.2])
    with pytest.raises(ActionError, match=r"in C on 2020-01-08.*does not trade"):
        env.step(w)  # C lists on row 8 (2020-01-12); row 5 is 2020-01-08
    state = env.engine.wealth.copy(), env.engine.steps.copy()
    np.testing.assert_array_equal(state[1], [0])  # refused before any state changed
    env.step(np.array([0.2, 0.2, 0.0, 0.2]))  # selling or holding is fine
    env2 = PortfolioEnv(HistoricalMarket(panel, start=B_LAST + 2, horizon=None), **_env_kw("weights"))
    env2.reset(seed=0)
    with pytest.raises(ActionError, match=r"in B on .*can only be reduced towards zero"):
        env2.step(np.array([0.1, 0.1, 0.1, 0.1]))


def test_delisted_asset_is_settled_without_cost_and_cash_earns_the_rate(panel):
    """A book all in B on its last day: the next day it is all cash earning the cash rate."""
    env = PortfolioEnv(HistoricalMarket(panel, start=B_LAST - 1, horizon=4), **_env_kw("weights"))
    env.reset(seed=0)
    _, _, _, _, i1 = env.step(np.array([0.0, 1.0, 0.0, 0.0]))  # bought at row 11's close, earns r_12
    obs, _, _, _, i2 = env.step(env.drifted_weights)  # held at row 12's close: settled into cash
    assert i2["cost"] == 0.0 and i2["turnover"] == 0.0
    assert i2["net_return"] == pytest.approx(RF, rel=1e-12)  # cash, not a stale price earning 0
    np.testing.assert_array_equal(obs["weights"], [0.0, 0.0, 0.0, 0.0, 1.0])


def test_generative_market_trades_by_the_start_days_mask(panel):
    """A generative path's only real day is its start: an asset absent then cannot be bought
    at that close; simulated days are complete."""
    from helpers_env import fitted_generator

    filled = panel.with_returns(np.where(panel.mask, panel.returns, np.nan))
    gen = fitted_generator(filled, history=3)
    env = PortfolioEnv(GenerativeMarket(gen, panel, start=C_FIRST - 2, horizon=3), window=3, action_mode="weights")
    env.reset(seed=0)
    with pytest.raises(ActionError, match="in C on"):
        env.step(np.array([0.2, 0.2, 0.2, 0.2]))
    env.step(np.array([0.2, 0.2, 0.0, 0.2]))
    env.step(np.array([0.2, 0.2, 0.2, 0.2]))  # a simulated day: everything trades

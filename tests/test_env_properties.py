"""Property tests: accounting identities, costs, constraint maps, projections, long runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers_env import fitted_generator, make_panel
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from factorgym.costs import CostModel
from factorgym.envs.accounting import CostFunction, settle_day
from factorgym.envs.actions import (
    ActionMapper,
    Constraints,
    WeightsSpace,
    check_feasible,
    feasibility_violations,
    project_box_sum,
)
from factorgym.errors import InfeasibleError

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


@st.composite
def book(draw, long_short: bool = True):
    """(P, N, wealth, w_target, w_drifted, returns)."""
    P = draw(st.integers(1, 4))
    N = draw(st.integers(1, 8))
    lim = 2.0 if long_short else 1.0
    lo = -lim if long_short else 0.0
    w = draw(arrays(np.float64, (P, N), elements=st.floats(lo, lim / N, allow_subnormal=False)))
    wd = draw(arrays(np.float64, (P, N), elements=st.floats(lo, lim / N, allow_subnormal=False)))
    r = draw(arrays(np.float64, (P, N), elements=st.floats(-0.5, 0.5, allow_subnormal=False)))
    wealth = draw(arrays(np.float64, (P,), elements=st.floats(0.05, 10.0)))
    return wealth, w, wd, r


rates = st.floats(0.0, 0.01, allow_subnormal=False)


@st.composite
def cost_models(draw, n: int):
    def rate():
        if draw(st.booleans()):
            return draw(rates)
        return np.array(draw(st.lists(rates, min_size=n, max_size=n)))

    impact = draw(st.sampled_from([0.0, 1e-3, 5e-2]))
    return CostModel(buy=rate(), sell=rate(), impact=impact)


@SETTINGS
@given(book(), st.data(), st.floats(-1e-4, 5e-4))
def test_wealth_change_is_drifted_weights_return_minus_costs(b, data, rf):
    wealth, w, wd, r = b
    cm = data.draw(cost_models(w.shape[1]))
    acc = settle_day(wealth, w, wd, r, cm, rf)
    c = cm.cost(w, wd)
    assert (acc.cost >= 0).all() and (acc.turnover >= 0).all()
    np.testing.assert_array_equal(acc.cost, c)
    # the cost is settled pro rata, then the book earns its drifted-weights return:
    # W_{t+1} = W_t (1 - c)(1 + w . r + cash * rf)
    gross = 1 + (w * r).sum(axis=1) + (1 - w.sum(axis=1)) * rf
    # ... floored at 0: a day that would take wealth to 0 or below ruins the book (R = -1)
    expect = wealth * np.maximum((1 - c) * gross - 1, -1.0)
    np.testing.assert_allclose(acc.wealth - wealth, expect, rtol=1e-9, atol=1e-12)
    assert (acc.wealth >= 0).all() and (acc.net_return >= -1).all()
    np.testing.assert_allclose(acc.wealth, wealth * (1 + acc.net_return), rtol=1e-12, atol=0)
    alive = (1 + acc.net_return > 0) & (gross > 0)
    np.testing.assert_allclose(np.log1p(acc.net_return[alive]), np.log1p(-c[alive]) + np.log(gross[alive]), rtol=1e-9, atol=1e-12)
    # every risky position grows with its own return: W' w_d' = W (1 - c) w (1 + r)
    np.testing.assert_allclose(
        (acc.wealth[:, None] * acc.drifted)[alive], (wealth * (1 - c))[:, None][alive] * (w * (1 + r))[alive], rtol=1e-9, atol=1e-12
    )
    # cash grows at rf after paying its pro-rata share of the costs
    cash = acc.wealth * (1 - acc.drifted.sum(axis=1))
    np.testing.assert_allclose(cash[alive], (wealth * (1 - c) * (1 - w.sum(axis=1)) * (1 + rf))[alive], rtol=1e-9, atol=1e-11)
    # a fully invested book stays fully invested (no cash drawn to pay the costs)
    if rf == 0:
        full = alive & np.isclose(w.sum(axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(acc.drifted[full].sum(axis=1), 1.0, atol=1e-9)
    assert (acc.drifted[~alive] == 0).all()


@SETTINGS
@given(book(long_short=False), st.data())
def test_costs_are_non_negative_zero_without_trade_and_exact(b, data):
    _, w, wd, _ = b
    cm = data.draw(cost_models(w.shape[1]))
    c = cm.cost(w, wd)
    assert (c >= 0).all()
    assert (cm.cost(w, w) == 0).all()
    np.testing.assert_array_equal(CostFunction(cm, w.shape[1])(w, wd), c)  # fast path is exact


@st.composite
def long_only_constraints(draw, n: int):
    cap = draw(st.sampled_from([None, 1.0, 0.5, 0.3]))
    if cap is not None and cap * n < 1.0:
        cap = 1.0
    budget = draw(st.sampled_from([(0.0, 1.0), (1.0, 1.0), (0.5, 0.9), (0.0, 0.6)]))
    if cap is not None and cap * n < budget[0]:
        budget = (0.0, 1.0)
    turnover = draw(st.sampled_from([None, 0.05, 0.5]))
    return Constraints(box=None if cap is None else (0.0, cap), budget=budget, max_turnover=turnover)


@st.composite
def long_short_constraints(draw, n: int):
    lev = draw(st.sampled_from([0.5, 1.0, 2.0, 4.0]))
    cap = draw(st.sampled_from([None, 0.3, 1.0]))
    turnover = draw(st.sampled_from([None, 0.1, 1.0]))
    return Constraints.long_short(lev, box=None if cap is None else (-cap, cap), max_turnover=turnover)


@SETTINGS
@given(st.integers(1, 12), st.sampled_from(["softmax", "simplex", "long_short"]), st.data())
def test_mapped_weights_satisfy_every_constraint(n, mode, data):
    c = data.draw(long_short_constraints(n) if mode == "long_short" else long_only_constraints(n))
    mapper = ActionMapper(mode, n, c, temperature=data.draw(st.sampled_from([0.05, 0.25, 1.0])))
    P = 8
    a = data.draw(arrays(np.float64, (P, mapper.action_dim), elements=st.floats(-1, 1)))
    static = Constraints(c.long_only, c.max_gross_leverage, c.budget, c.box, None)
    space = WeightsSpace(static, n)
    space.seed(data.draw(st.integers(0, 2**31)))
    wd = np.stack([space.sample() for _ in range(P)])  # a feasible drifted book
    w = mapper(mapper.validate(a, P), wd)
    check_feasible(w, wd, c)
    if c.max_turnover is not None:
        assert (np.abs(w - wd).sum(axis=1) <= c.max_turnover + 1e-12).all()


@SETTINGS
@given(st.integers(1, 10), st.data())
def test_weights_space_samples_are_feasible(n, data):
    c = data.draw(st.one_of(long_only_constraints(n), long_short_constraints(n)))
    c = Constraints(c.long_only, c.max_gross_leverage, c.budget, c.box, None)
    space = WeightsSpace(c, n)
    space.seed(data.draw(st.integers(0, 2**31)))
    for _ in range(5):
        x = space.sample()
        assert not feasibility_violations(x, None, c)
        assert space.contains(x)


def _projection_by_bisection(v, lo, hi, total):
    a, b = float((v - hi).min()) - 1.0, float((v - lo).max()) + 1.0
    for _ in range(200):
        m = 0.5 * (a + b)
        if np.clip(v - m, lo, hi).sum() > total:
            a = m
        else:
            b = m
    return np.clip(v - 0.5 * (a + b), lo, hi)


@SETTINGS
@given(st.integers(1, 15), st.data())
def test_project_box_sum_is_the_euclidean_projection(m, data):
    lo = np.array(data.draw(st.lists(st.floats(-1, 0.5), min_size=m, max_size=m)))
    width = np.array(data.draw(st.lists(st.floats(0, 1), min_size=m, max_size=m)))
    hi = lo + width
    total = data.draw(st.floats(float(lo.sum()), float(hi.sum())))
    v = np.array(data.draw(st.lists(st.floats(-3, 3), min_size=m, max_size=m)))
    x = project_box_sum(v, lo, hi, total)
    assert (x >= lo - 1e-12).all() and (x <= hi + 1e-12).all()
    assert math.isclose(x.sum(), total, abs_tol=1e-9)
    np.testing.assert_allclose(x, _projection_by_bisection(v, lo, hi, total), atol=1e-9)
    np.testing.assert_allclose(project_box_sum(x, lo, hi, total), x, atol=1e-12)  # idempotent


def test_infeasible_constraint_sets_are_reported():
    with pytest.raises(InfeasibleError):
        Constraints(budget=(1.0, 1.0), box=(0.0, 0.1)).feasible_point(5)
    with pytest.raises(InfeasibleError):
        Constraints(budget=(0.5, 0.2))
    with pytest.raises(InfeasibleError):
        Constraints(long_only=True, budget=(-1.0, -0.5))


# --------------------------------------------------------------------------- long runs
@pytest.mark.parametrize(
    "kind, kw",
    [
        ("generative", {"action_mode": "long_short", "constraints": Constraints.long_short(3.0), "reward": "differential_sharpe"}),
        ("historical", {"action_mode": "softmax", "reward": "cvar", "temperature": 0.05}),
    ],
)
def test_100k_random_action_steps_produce_no_nan(kind, kw):
    from factorgym.envs import GenerativeMarket, HistoricalMarket
    from factorgym.envs.vec_env import VecPortfolioEnv

    panel = make_panel(1500, 10, seed=5, missing=True, vol=0.03)
    market = (
        GenerativeMarket(fitted_generator(panel, vol_scale=1.5), panel, horizon=300)
        if kind == "generative"
        else HistoricalMarket(panel, horizon=300)
    )
    P, steps = 64, 1563  # 100,032 env-steps
    vec = VecPortfolioEnv(market, P, seed=0, window=10, **kw)
    obs = vec.reset()
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps, P, vec.action_space.shape[0])).astype(np.float32)
    n_done = 0
    for a in actions:
        obs, reward, done, infos = vec.step(a)
        assert np.isfinite(reward).all()
        for v in obs.values():
            assert np.isfinite(v).all()
        n_done += int(done.sum())
    assert all(np.isfinite(i["wealth"]) for i in infos)
    assert n_done >= P * (steps // 300)


# --------------------------------------------------------------------------- ruin
@SETTINGS
@given(
    st.sampled_from([5.0, 50.0, 1e4]),
    st.sampled_from([0.0, 0.01, 0.5]),
    arrays(np.float64, (30, 3), elements=st.floats(-0.95, 1.0, allow_subnormal=False)),
    arrays(np.float32, (30, 3), elements=st.floats(-1, 1, width=32)),
)
def test_ruin_is_absorbing_with_wealth_floored_at_zero(leverage, threshold, returns, actions):
    """Extreme leverage on wild returns: wealth never goes below 0, the day that ruins the
    book is accounted consistently and flagged, and the episode ends there."""
    import pandas as pd

    from factorgym.data import ReturnPanel
    from factorgym.envs import HistoricalMarket, PortfolioEnv
    from factorgym.errors import FactorGymError

    R = np.vstack([np.zeros((2, 3)), returns])
    panel = ReturnPanel(pd.bdate_range("2020-01-01", periods=len(R)), ("A", "B", "C"), R, np.ones(R.shape, dtype=bool))
    env = PortfolioEnv(HistoricalMarket(panel, start=1, horizon=30), window=1, action_mode="long_short",
                       constraints=Constraints.long_short(leverage), ruin_threshold=threshold)
    _, info = env.reset(seed=0)
    assert info["ruined"] is False
    for a in actions:
        prev = info["wealth"]
        _, reward, terminated, truncated, info = env.step(a)
        assert info["wealth"] >= 0 and info["net_return"] >= -1 and math.isfinite(reward)
        assert info["wealth"] == pytest.approx(prev * (1 + info["net_return"]), rel=1e-12, abs=1e-300)
        assert info["ruined"] is terminated and terminated == (info["wealth"] <= threshold)
        if info["net_return"] == -1:
            assert info["wealth"] == 0 and (env.drifted_weights == 0).all()
        if terminated or truncated:
            break
    if terminated:
        with pytest.raises(FactorGymError, match="reset"):
            env.step(actions[0])  # absorbing: no later step changes the ruined book
        assert env.engine.wealth[0] == info["wealth"]


def test_extreme_leverage_never_reports_negative_wealth():
    """The case of the issue: long_short(50) on a real-looking panel; before the floor the
    minimum wealth was negative (-3.9 in a backtest; -249.7 here)."""
    from factorgym.envs import HistoricalMarket
    from factorgym.envs.rollout import rollout
    from factorgym.envs.vec_env import VecPortfolioEnv

    class Bet:
        def predict(self, obs, state=None, episode_start=None, deterministic=True):
            return np.clip(obs["returns"].sum(axis=1) * 20, -1, 1).astype(np.float32), None

    panel = make_panel(300, 5, seed=0)
    env = VecPortfolioEnv(HistoricalMarket(panel, horizon=60), 8, window=5, action_mode="long_short",
                          constraints=Constraints.long_short(50.0), ruin_threshold=0.0)
    run = rollout(Bet(), env, seed=3)
    assert run.terminated.any()
    w = run.wealth[run.alive]
    assert (w >= 0).all() and (run.net_return[run.alive] >= -1).all()
    for p in np.flatnonzero(run.terminated):
        last = np.flatnonzero(run.alive[:, p])[-1]
        assert run.wealth[last, p] == 0.0 and run.net_return[last, p] == -1.0

"""PortfolioEnv: API conformance, timing, accounting, constraints, leaks, rewards."""

from __future__ import annotations

import datetime as _dt
import functools

import numpy as np
import pandas as pd
import pytest
from helpers_env import fitted_generator, make_panel, with_future_changed
from hypothesis import given, settings
from hypothesis import strategies as st

import factorgym.envs as fe
from factorgym.costs import CostModel
from factorgym.envs import (
    Constraints,
    GenerativeMarket,
    HistoricalMarket,
    InfeasibleActionError,
    PortfolioEnv,
)
from factorgym.envs.actions import softmax
from factorgym.envs.wrappers import EpisodeStatistics, LookaheadWrapper
from factorgym.errors import ActionError, DataValidationError, FactorGymError, InfeasibleError
from factorgym.features import FeatureConfig, FeatureScaler, compute_features

MODES = ("softmax", "simplex", "long_short", "weights")
SMALL_FEATURES = FeatureConfig(vol_windows=(5,), mom_windows=(10,))


@pytest.fixture(scope="module")
def panel():
    return make_panel(400, 5, seed=0)


@pytest.fixture(scope="module")
def panel_missing():
    return make_panel(400, 5, seed=1, missing=True)


@pytest.fixture(scope="module")
def gen(panel):
    return fitted_generator(panel)


def _market(kind: str, panel, gen=None, **kw):
    if kind == "historical":
        return HistoricalMarket(panel, **{"horizon": 30, **kw})
    return GenerativeMarket(gen if gen is not None else fitted_generator(panel), panel, **{"horizon": 30, **kw})


def _roll(env, actions, seed=0, options=None):
    """Run ``actions`` from a reset; returns (observations, rewards, infos, flags)."""
    obs, info = env.reset(seed=seed, options=options)
    out_obs, out_r, out_i, flags = [obs], [], [info], []
    for a in actions:
        obs, r, te, tr, info = env.step(a)
        out_obs.append(obs)
        out_r.append(r)
        out_i.append(info)
        flags.append((te, tr))
        if te or tr:
            break
    return out_obs, out_r, out_i, flags


# --------------------------------------------------------------------------- API
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind", ["historical", "generative"])
@pytest.mark.parametrize("mode", MODES)
def test_check_env_every_source_and_mode(kind, mode, panel_missing):
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    # random "weights" actions buy every asset, which an absent asset refuses (tested below):
    # that mode starts after the panel's gaps (its observations still carry the mask)
    kw = {"first_day": panel_missing.dates[215]} if mode == "weights" else {}
    env = PortfolioEnv(_market(kind, panel_missing, **kw), window=8, action_mode=mode)
    assert "mask" in env.observation_space.spaces
    gym_check(env, skip_render_check=True)
    sb3_check(env)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_check_env_with_features_moments_and_render(panel, gen):
    from gymnasium.utils.env_checker import check_env as gym_check

    for market in (HistoricalMarket(panel, horizon=20, predictor=gen), GenerativeMarket(gen, panel, horizon=20)):
        env = PortfolioEnv(market, window=12, features=SMALL_FEATURES, moments="diag", render_mode="ansi")
        gym_check(env)
        env.reset(seed=0)
        env.step(env.action_space.sample())
        assert "wealth" in env.render()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_registered_with_gymnasium(panel):
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env as gym_check

    assert fe.ENV_ID in gym.registry
    env = gym.make(fe.ENV_ID, market=HistoricalMarket(panel, horizon=5), window=4)
    obs, info = env.reset(seed=1)
    assert obs["returns"].shape == (4, 5)
    gym_check(env.unwrapped)  # with a spec: also the render-mode and close checks
    env.close()


def test_default_market_is_sp500_training_split():
    env = PortfolioEnv()
    obs, info = env.reset(seed=0)
    assert env.assets[0] == "AAPL" and obs["returns"].shape == (20, 20)
    assert info["start_date"].year <= 2013
    for _ in range(3):
        obs, r, *_ = env.step(env.action_space.sample())
    assert np.isfinite(r)


def test_same_api_for_historical_and_generative_markets(panel_missing):
    envs = [PortfolioEnv(_market(k, panel_missing), window=10, features=SMALL_FEATURES) for k in ("historical", "generative")]
    assert envs[0].observation_space == envs[1].observation_space
    assert envs[0].action_space == envs[1].action_space
    keys = []
    for env in envs:
        obs, info = env.reset(seed=3)
        obs2, _, _, _, info2 = env.step(env.action_space.sample())
        assert set(info) == set(info2)
        keys.append((set(obs), set(info)))
        for k, v in obs2.items():
            assert v.dtype == np.float64 and v.shape == env.observation_space[k].shape
    assert keys[0] == keys[1]


def test_missing_data_adds_mask_and_zero_fills(panel, panel_missing):
    assert "mask" not in PortfolioEnv(HistoricalMarket(panel), window=5).observation_space.spaces
    env = PortfolioEnv(HistoricalMarket(panel_missing, start=20, horizon=5), window=10)
    obs, info = env.reset(seed=0)
    t0 = 20
    np.testing.assert_array_equal(obs["mask"], panel_missing.mask[t0 - 9 : t0 + 1].astype(float))
    np.testing.assert_array_equal(obs["returns"], panel_missing.filled(0.0)[t0 - 9 : t0 + 1])
    assert (obs["returns"][obs["mask"] == 0] == 0).all()


# --------------------------------------------------------------------------- timing & accounting
@pytest.mark.parametrize("mode", MODES)
def test_timing_and_accounting_contract_historical(panel, mode):
    """Obs at t holds rows <= t; weights chosen at t earn r_{t+1}; costs on |w - w_drifted|."""
    t0, W = 50, 10
    cm = CostModel(buy=7.5e-4, sell=12.5e-4, impact=1e-3)
    env = PortfolioEnv(HistoricalMarket(panel, start=panel.dates[t0], horizon=25), window=W, action_mode=mode, cost_model=cm, risk_free=1e-4)
    obs, info = env.reset(seed=0)
    R = panel.filled(0.0)
    np.testing.assert_array_equal(obs["returns"], R[t0 - W + 1 : t0 + 1])
    assert info["date"] == panel.dates[t0].date() and info["step"] == 0 and info["wealth"] == 1.0
    env.action_space.seed(1)
    wealth = 1.0
    wd = np.zeros(panel.N)
    for k in range(1, 26):
        a = env.action_space.sample()
        obs, reward, te, tr, info = env.step(a)
        t = t0 + k
        r = R[t]
        w = env.engine.mapper(np.asarray(a, dtype=np.float64)[None], wd[None])[0]
        c = float(cm.cost(w, wd))
        G = float(1 + w @ r + (1 - w.sum()) * 1e-4)
        R_net = (1 - c) * G - 1
        assert info["cost"] == pytest.approx(c, rel=1e-12, abs=1e-15)
        assert info["turnover"] == pytest.approx(np.abs(w - wd).sum(), rel=1e-12)
        assert info["net_return"] == pytest.approx(R_net, rel=1e-10, abs=1e-15)
        wealth *= 1 + R_net
        assert info["wealth"] == pytest.approx(wealth, rel=1e-12)
        assert reward == pytest.approx(np.log1p(R_net), rel=1e-10, abs=1e-15)
        wd = w * (1 + r) / G
        np.testing.assert_allclose(obs["weights"], np.append(wd, 1 - wd.sum()), rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(obs["returns"], R[t - W + 1 : t + 1])  # newest row is r_t
        assert info["date"] == panel.dates[t].date() and info["step"] == k
        assert tr == (k == 25) and not te


def test_generative_obs_newest_row_is_the_return_that_was_earned(panel, gen):
    env = PortfolioEnv(GenerativeMarket(gen, panel, horizon=20), window=6, action_mode="weights")
    obs, info = env.reset(seed=5)
    t0 = panel.index_of(info["start_date"])
    np.testing.assert_array_equal(obs["returns"], panel.filled(0.0)[t0 - 5 : t0 + 1])
    assert info["date"] == info["start_date"]
    w = np.full(5, 0.19)
    wd = np.zeros(5)
    for k in range(1, 8):
        prev = obs["returns"]
        obs, _, _, _, info = env.step(w)
        r = obs["returns"][-1]
        np.testing.assert_array_equal(obs["returns"][:-1], prev[1:])
        c = CostModel().cost(w, wd)
        assert info["net_return"] == pytest.approx((1 - c) * (1 + w @ r) - 1, rel=1e-12, abs=1e-16)
        assert info["date"] is None and info["step"] == k
        wd = obs["weights"][:-1]


def test_holding_the_drifted_portfolio_costs_nothing(panel):
    env = PortfolioEnv(HistoricalMarket(panel, horizon=10), window=5, action_mode="weights")
    obs, _ = env.reset(seed=0)
    obs, _, _, _, info = env.step(np.full(5, 0.19))  # 95% invested: costs are paid from cash
    assert info["cost"] > 0
    for _ in range(5):
        obs, _, _, _, info = env.step(obs["weights"][:-1])
        assert info["cost"] == 0.0 and info["turnover"] == 0.0


def test_initial_weights_are_the_starting_book(panel):
    w0 = np.array([0.1, 0.2, 0.0, 0.3, 0.1])
    env = PortfolioEnv(HistoricalMarket(panel, horizon=5), window=5, action_mode="weights", initial_weights=w0)
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs["weights"], np.append(w0, 0.3), rtol=1e-15)
    _, _, _, _, info = env.step(w0)
    assert info["cost"] == 0.0


# --------------------------------------------------------------------------- actions
def test_weights_mode_rejects_infeasible_actions_and_keeps_state(panel):
    c = Constraints(box=(0.0, 0.4), max_turnover=0.5)
    env = PortfolioEnv(HistoricalMarket(panel, start=60, horizon=10), window=5, action_mode="weights", constraints=c)
    env.reset(seed=0)
    ok = np.array([0.1, 0.1, 0.1, 0.1, 0.0])
    bad = {
        "budget": np.array([0.3, 0.3, 0.3, 0.3, 0.0]),
        "long-only": np.array([0.2, -0.01, 0.1, 0.1, 0.0]),
        "box": np.array([0.45, 0.0, 0.0, 0.0, 0.0]),
        "turnover": np.array([0.2, 0.2, 0.2, 0.0, 0.0]),
    }
    for what, w in bad.items():
        with pytest.raises(InfeasibleActionError, match=what.split("-")[0]):
            env.step(w)
    with pytest.raises(ActionError):
        env.step(bad["budget"])
    with pytest.raises(InfeasibleError):
        env.step(bad["budget"])
    env.step(np.append(ok[:-1], 1e-9 + 0.0))  # within tolerance: accepted as given
    # the failed steps changed nothing: same trajectory as an env that never saw them
    env2 = PortfolioEnv(HistoricalMarket(panel, start=60, horizon=10), window=5, action_mode="weights", constraints=c)
    env2.reset(seed=0)
    env2.step(np.append(ok[:-1], 1e-9))
    a = env.step(ok)
    b = env2.step(ok)
    np.testing.assert_array_equal(a[0]["weights"], b[0]["weights"])
    assert a[4]["wealth"] == b[4]["wealth"]


@pytest.mark.parametrize("mode", MODES)
def test_malformed_actions_raise(panel, mode):
    env = PortfolioEnv(HistoricalMarket(panel, horizon=10), window=5, action_mode=mode)
    env.reset(seed=0)
    good = env.action_space.sample()
    for a in (np.append(good, 0.0), good[:-1], good[None], np.where(np.arange(good.size) == 1, np.nan, good), np.full(good.shape, np.inf), good + 5.0):
        with pytest.raises(ActionError):
            env.step(a)
    env.step(good)


def test_step_outside_an_episode_raises(panel):
    env = PortfolioEnv(HistoricalMarket(panel, horizon=2), window=5)
    with pytest.raises(FactorGymError, match="reset"):
        env.step(env.action_space.sample())
    env.reset(seed=0)
    env.step(env.action_space.sample())
    _, _, _, truncated, _ = env.step(env.action_space.sample())
    assert truncated
    with pytest.raises(FactorGymError, match="reset"):
        env.step(env.action_space.sample())


def test_softmax_mode_maps_logits_to_weights_with_temperature(panel):
    env = PortfolioEnv(HistoricalMarket(panel, horizon=5), window=5, action_mode="softmax", temperature=0.5)
    env.reset(seed=0)
    a = np.array([1.0, -1.0, 0.0, 0.5, 0.2, -0.3], dtype=np.float32)
    w = env.engine.mapper(a[None].astype(np.float64), np.zeros((1, 5)))[0]
    np.testing.assert_allclose(w, softmax(a.astype(np.float64) / 0.5)[:5], rtol=1e-14)


def test_constraint_validation_at_construction(panel):
    with pytest.raises(InfeasibleError):
        PortfolioEnv(HistoricalMarket(panel), action_mode="long_short", constraints=Constraints())
    with pytest.raises(InfeasibleError):
        PortfolioEnv(HistoricalMarket(panel), action_mode="softmax", constraints=Constraints.long_short())
    with pytest.raises(InfeasibleError):  # five assets capped at 10% cannot be fully invested
        PortfolioEnv(HistoricalMarket(panel), action_mode="weights", constraints=Constraints(budget=(1.0, 1.0), box=(0, 0.1)))
    with pytest.raises(ActionError):
        PortfolioEnv(HistoricalMarket(panel), action_mode="bogus")


# --------------------------------------------------------------------------- episodes
def test_horizon_none_runs_to_last_day_and_never_beyond(panel):
    last = panel.dates[120]
    env = PortfolioEnv(HistoricalMarket(panel, start=100, horizon=None, last_day=last), window=5)
    _, _, infos, flags = _roll(env, [env.action_space.sample() for _ in range(100)])
    assert len(flags) == 20 and flags[-1] == (False, True)
    assert infos[-1]["date"] == last.date()
    # the same run on a panel whose rows after last_day are different is identical
    env2 = PortfolioEnv(HistoricalMarket(with_future_changed(panel, 120), start=100, horizon=None, last_day=last), window=5)
    env.action_space.seed(0)
    acts = [env.action_space.sample() for _ in range(20)]
    a = _roll(env, acts)
    b = _roll(env2, acts)
    assert a[1] == b[1]


def test_random_starts_cover_the_allowed_range(panel):
    m = HistoricalMarket(panel, horizon=50, first_day=panel.dates[100], last_day=panel.dates[300])
    env = PortfolioEnv(m, window=20)
    starts = {env.reset(seed=s)[1]["start_date"] for s in range(200)}
    rows = sorted(panel.index_of(d) for d in starts)
    assert rows[0] >= 100 and rows[-1] <= 250 and len(rows) > 80


def test_ruin_terminates_with_finite_values():
    crash = make_panel(200, 3, seed=2)
    r = np.array(crash.returns)
    r[100:110] = -0.45
    crash = crash.with_returns(r)
    env = PortfolioEnv(HistoricalMarket(crash, start=95, horizon=50), window=5, action_mode="long_short",
                       constraints=Constraints.long_short(5.0))
    obs, rews, infos, flags = _roll(env, [np.ones(3, dtype=np.float32)] * 50)
    assert flags[-1] == (True, False) and len(flags) < 50
    assert infos[-1]["wealth"] <= 0.01
    assert np.isfinite(rews).all() and all(np.isfinite(o["weights"]).all() for o in obs)


def test_episode_replays_exactly_from_info_seed(panel, gen):
    for kind in ("historical", "generative"):
        env = PortfolioEnv(_market(kind, panel, gen), window=5, action_mode="simplex")
        env.action_space.seed(3)
        acts = [env.action_space.sample() for _ in range(30)]
        env.reset(seed=11)
        o1, r1, i1, _ = _roll(env, acts, seed=None)  # second episode of seed 11
        o2, r2, i2, _ = _roll(PortfolioEnv(_market(kind, panel, gen), window=5, action_mode="simplex"), acts,
                              seed=None, options={"episode_seed": i1[0]["episode_seed"]})
        assert r1 == r2 and i1 == i2
        for a, b in zip(o1, o2, strict=True):
            for k in a:
                np.testing.assert_array_equal(a[k], b[k])


def test_seeding_is_deterministic_and_step_does_not_consume_np_random(panel, gen):
    env = PortfolioEnv(_market("generative", panel, gen), window=5)
    acts = [env.action_space.sample() for _ in range(10)]
    a = _roll(env, acts, seed=7)
    state = env.np_random.bit_generator.state
    b = _roll(env, acts, seed=7)
    assert a[1] == b[1] and env.np_random.bit_generator.state == state
    c = _roll(env, acts, seed=8)
    assert c[1] != a[1]


def test_unknown_reset_option_is_an_error(panel):
    env = PortfolioEnv(HistoricalMarket(panel), window=5)
    with pytest.raises(FactorGymError, match="unknown reset options"):
        env.reset(options={"strat": 3})
    with pytest.raises(DataValidationError, match="outside the allowed start range"):
        env.reset(options={"start": 2})


# --------------------------------------------------------------------------- features & moments
def test_features_are_point_in_time_and_agree_across_markets(panel, gen):
    scaler = FeatureScaler().fit(*compute_features(panel.iloc(0, 100), SMALL_FEATURES))
    h = PortfolioEnv(HistoricalMarket(panel, start=150, horizon=5), window=5, features=SMALL_FEATURES, feature_scaler=scaler)
    g = PortfolioEnv(GenerativeMarket(gen, panel, start=150, horizon=5), window=5, features=SMALL_FEATURES, feature_scaler=scaler)
    oh, _ = h.reset(seed=0)
    og, _ = g.reset(seed=0)
    X, _ = compute_features(panel, SMALL_FEATURES)
    np.testing.assert_allclose(oh["features"], scaler.transform(X[150]), rtol=1e-12)
    np.testing.assert_allclose(og["features"], oh["features"], rtol=1e-9, atol=1e-12)
    o, *_ = g.step(g.action_space.sample())
    assert np.isfinite(o["features"]).all() and o["features"].shape == (5, SMALL_FEATURES.n_features)


def test_generative_market_rejects_exogenous_features(panel, gen):
    with pytest.raises(DataValidationError, match="exogenous"):
        PortfolioEnv(GenerativeMarket(gen, panel), features=FeatureConfig(exog=("X",)))


def test_moments_observation(panel, gen):
    h = PortfolioEnv(HistoricalMarket(panel, start=150, horizon=5, predictor=gen), window=5, moments="cov")
    g = PortfolioEnv(GenerativeMarket(gen, panel, start=150, horizon=5), window=5, moments="cov")
    oh, _ = h.reset(seed=0)
    og, _ = g.reset(seed=0)
    pred = gen.predict(panel, 150)
    np.testing.assert_allclose(oh["moments"][0], pred.mean(), rtol=1e-12)
    np.testing.assert_allclose(oh["moments"][1:], pred.cov(), rtol=1e-12)
    np.testing.assert_allclose(og["moments"], oh["moments"], rtol=1e-12)
    d = PortfolioEnv(HistoricalMarket(panel, start=150, horizon=5, predictor=gen), window=5, moments="diag")
    od, _ = d.reset(seed=0)
    np.testing.assert_allclose(od["moments"][1], np.sqrt(np.diag(pred.cov())), rtol=1e-12)
    with pytest.raises(DataValidationError, match="predictor"):
        PortfolioEnv(HistoricalMarket(panel), moments="diag")


# --------------------------------------------------------------------------- leaks
def _momentum_policy(obs):
    """A deterministic agent that reads the whole observation."""
    return np.clip(obs["returns"].sum(axis=0) * 20 + obs["weights"][:-1], -1, 1).astype(np.float32).tolist() + [0.0]


@pytest.mark.parametrize("cut", [60, 75, 89])
def test_no_lookahead_historical(panel, gen, cut):
    """Changing real data after day t leaves every observation up to t unchanged."""
    t0 = 50
    scaler = FeatureScaler().fit(*compute_features(panel.iloc(0, 40), SMALL_FEATURES))
    envs = [PortfolioEnv(HistoricalMarket(p, start=t0, horizon=40, predictor=gen), window=10, features=SMALL_FEATURES,
                         feature_scaler=scaler, moments="cov")
            for p in (panel, with_future_changed(panel, cut))]
    runs = []
    for env in envs:
        obs, _ = env.reset(seed=0)
        seq = [obs]
        for _ in range(40):
            obs, *_ = env.step(np.asarray(_momentum_policy(obs), dtype=np.float32))
            seq.append(obs)
        runs.append(seq)
    n_same = cut - t0 + 1  # observations at days t0..cut
    for k in range(n_same):
        for key in runs[0][k]:
            np.testing.assert_array_equal(runs[0][k][key], runs[1][k][key], err_msg=f"obs {k} {key}")
    assert not np.array_equal(runs[0][n_same]["returns"], runs[1][n_same]["returns"])


def test_no_lookahead_generative(panel, gen):
    """A generative episode reads no real row after its start day."""
    t0 = 120
    outs = []
    for p in (panel, with_future_changed(panel, t0)):
        env = PortfolioEnv(GenerativeMarket(gen, p, start=t0, horizon=30), window=10, moments="diag")
        obs, _ = env.reset(seed=4)
        seq = [obs]
        for _ in range(30):
            obs, *_ = env.step(np.asarray(_momentum_policy(obs), dtype=np.float32))
            seq.append(obs)
        outs.append(seq)
    for a, b in zip(*outs, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_privileged_lookahead_wrapper_makes_a_trivial_agent_implausibly_rich(panel):
    """The leak test can fail: an agent that sees r_{t+1} earns impossible returns."""

    def greedy(next_r):
        w = np.zeros(5)
        if next_r.max() > 0:
            w[np.argmax(next_r)] = 1.0
        return w

    cheat = LookaheadWrapper(PortfolioEnv(HistoricalMarket(panel, start=50, horizon=250), window=5, action_mode="weights"))
    honest = PortfolioEnv(HistoricalMarket(panel, start=50, horizon=250), window=5, action_mode="weights")
    obs, _ = cheat.reset(seed=0)
    cheat_logs = []
    for _ in range(250):
        obs, r, *_ = cheat.step(greedy(obs["next_returns"]))
        cheat_logs.append(r)
    obs, _ = honest.reset(seed=0)
    honest_logs = []
    for _ in range(250):
        obs, r, *_ = honest.step(greedy(obs["returns"][-1]))  # best it can do: yesterday's winner
        honest_logs.append(r)
    cheat_mean, honest_mean = np.mean(cheat_logs), np.mean(honest_logs)
    assert cheat_mean * 252 > 2.0  # more than 200% log return a year, after costs
    assert abs(honest_mean) * 252 < 1.0
    with pytest.raises(FactorGymError):
        LookaheadWrapper(PortfolioEnv(GenerativeMarket(fitted_generator(panel), panel), window=5))


# --------------------------------------------------------------------------- rewards & wrappers
def test_log_rewards_sum_to_log_wealth(panel):
    env = PortfolioEnv(HistoricalMarket(panel, horizon=60), window=5)
    _, rews, infos, _ = _roll(env, [env.action_space.sample() for _ in range(60)])
    assert sum(rews) == pytest.approx(np.log(infos[-1]["wealth"]), rel=1e-10)


@pytest.mark.parametrize("name", ["differential_sharpe", "mean_variance", "drawdown", "cvar"])
def test_alternative_rewards_match_their_formulas(panel, name):
    env = PortfolioEnv(HistoricalMarket(panel, horizon=60), window=5, reward=name)
    _, rews, infos, _ = _roll(env, [env.action_space.sample() for _ in range(60)], seed=2)
    R = np.array([i["net_return"] for i in infos[1:]])
    W = np.array([i["wealth"] for i in infos[1:]])
    expect = []
    if name == "differential_sharpe":
        A, B = 0.0, 1e-4
        for x in R:
            dA, dB = x - A, x * x - B
            expect.append((B * dA - 0.5 * A * dB) / (B - A * A) ** 1.5)
            A, B = A + 0.01 * dA, B + 0.01 * dB
    elif name == "mean_variance":
        m = 0.0
        for n, x in enumerate(R, 1):
            expect.append(x - 5.0 * (x - m) ** 2)
            m += (x - m) / n
    elif name == "drawdown":
        peak = np.maximum.accumulate(np.concatenate([[1.0], W]))[1:]
        expect = np.log1p(R) - (1 - W / peak)
    else:
        v = 0.02
        for x in R:
            expect.append(np.log1p(x) - (v + max(-x - v, 0) / 0.05))
            v += 0.001 * (0.95 - (-x <= v))
    np.testing.assert_allclose(rews, expect, rtol=1e-9, atol=1e-12)


def test_reward_state_resets_between_episodes(panel):
    env = PortfolioEnv(HistoricalMarket(panel, horizon=20), window=5, reward="differential_sharpe")
    acts = [env.action_space.sample() for _ in range(20)]
    a = _roll(env, acts, seed=None, options={"episode_seed": 5})
    _roll(env, acts, seed=None, options={"episode_seed": 6})
    b = _roll(env, acts, seed=None, options={"episode_seed": 5})
    assert a[1] == b[1]


def test_episode_statistics_wrapper(panel):
    env = EpisodeStatistics(PortfolioEnv(HistoricalMarket(panel, horizon=30), window=5))
    _, _, infos, _ = _roll(env, [env.action_space.sample() for _ in range(30)])
    stats = infos[-1]["episode_statistics"]
    assert stats["n_periods"] == 30
    assert stats["accumulated_return"] == pytest.approx(infos[-1]["wealth"] - 1, rel=1e-9)
    assert 0 <= stats["max_drawdown"] < 1 and stats["total_costs"] > 0


def test_options_come_from_one_env_config(panel):
    from factorgym.envs.config import EnvConfig
    from factorgym.envs.rewards import make_reward

    market = HistoricalMarket(panel, horizon=5)
    cfg = EnvConfig(window=7, action_mode="weights")
    env = PortfolioEnv(market, cfg, risk_free=1e-4)  # options override the config's fields
    assert env.config == EnvConfig(window=7, action_mode="weights", risk_free=1e-4)
    assert env.observation_space["returns"].shape == (7, 5)
    assert PortfolioEnv(market, cfg, action_mode="long_short").constraints == Constraints.long_short()
    with pytest.raises(FactorGymError, match=r"unknown environment options \['windw'\]; accepted: window"):
        PortfolioEnv(market, windw=5)
    with pytest.raises(FactorGymError, match="risk_free"):
        PortfolioEnv(market, risk_free=float("nan"))
    # a Reward object runs in an environment but cannot be saved
    custom = PortfolioEnv(market, window=5, reward=make_reward("log", 1))
    custom.reset(seed=0)
    custom.step(custom.action_space.sample())
    with pytest.raises(FactorGymError, match="cannot be saved"):
        custom.config.to_dict()


# --------------------------------------------------------------------------- reset options
OPTION_SETTINGS = settings(max_examples=80, deadline=None, derandomize=True)


@functools.lru_cache(maxsize=1)
def _options_env():
    p = make_panel(120, 3, seed=3)
    return p, PortfolioEnv(HistoricalMarket(p, horizon=10, first_day=p.dates[30]), window=5)


@OPTION_SETTINGS
@given(st.one_of(st.integers(-(10**30), 10**30), st.floats(allow_nan=True), st.text(max_size=6), st.booleans(),
                 st.lists(st.integers(0, 3), max_size=2)))
def test_episode_seed_is_a_whole_number_or_a_named_error(seed):
    _, env = _options_env()
    if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0:
        _, info = env.reset(options={"episode_seed": seed})
        assert info["episode_seed"] == seed
        return
    with pytest.raises(DataValidationError) as exc:
        env.reset(options={"episode_seed": seed})
    assert "episode_seed must be a whole number >= 0" in str(exc.value) and repr(seed) in str(exc.value)


def _shown(value):
    if isinstance(value, _dt.datetime):
        return str(value.date()) if value == _dt.datetime.combine(value.date(), _dt.time()) else str(value)
    if isinstance(value, _dt.date):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"row {value}"
    return repr(value)


@OPTION_SETTINGS
@given(st.one_of(
    st.dates(_dt.date(1995, 1, 1), _dt.date(2060, 1, 1)),
    st.datetimes(_dt.datetime(2000, 6, 1), _dt.datetime(2001, 12, 31)),
    st.dates(_dt.date(2000, 12, 1), _dt.date(2001, 7, 1)).map(str),
    st.text(max_size=10),
    st.integers(-300, 300),
    st.floats(allow_nan=True),
    st.booleans(),
))
def test_start_is_a_day_in_range_or_an_error_naming_it(start):
    """A start is used as given (the last trading day on or before a date) or refused with
    a message that names the value the user gave and the allowed range, never moved."""
    p, env = _options_env()
    lo, hi = env.engine.paths.start_range()
    allowed = f"{p.dates[lo].date()}..{p.dates[hi].date()}"
    try:
        _, info = env.reset(options={"start": start})
    except DataValidationError as exc:
        msg = str(exc)
        assert allowed in msg, msg
        if isinstance(start, int) and not isinstance(start, bool):
            assert f"row {start}" in msg, msg
        else:
            assert _shown(start) in msg, msg
        return
    assert not isinstance(start, bool | float)
    row = start if isinstance(start, int) else int(p.dates.searchsorted(pd.Timestamp(start), side="right")) - 1
    assert lo <= row <= hi and info["start_date"] == p.dates[row].date()
    if not isinstance(start, int):
        assert p.dates[row] <= pd.Timestamp(start) < p.dates[row] + pd.Timedelta(days=5)


def test_start_errors_report_the_given_date_and_the_valid_range():
    p, env = _options_env()
    with pytest.raises(DataValidationError, match=r"start '2050-01-01' is outside test\(seed=3\), which runs "
                                                  r"2001-01-01\.\.2001-06-15; the allowed start range 2001-02-12\.\."):
        env.reset(options={"start": "2050-01-01"})
    with pytest.raises(DataValidationError, match=r"start 'garbage' is not a date"):
        env.reset(options={"start": "garbage"})
    with pytest.raises(DataValidationError, match=r"start 'garbage' is not a date"):
        HistoricalMarket(p, start="garbage")
    with pytest.raises(DataValidationError, match=r"first_day 'soon' is not a date"):
        HistoricalMarket(p, first_day="soon")
    with pytest.raises(DataValidationError, match=r"start '2001-01-03' is outside the allowed start range 2001-02-12..2001-06-01"):
        env.reset(options={"start": "2001-01-03"})
    with pytest.raises(DataValidationError, match=r"episode_seed must be a whole number >= 0, got -5"):
        env.reset(options={"episode_seed": -5})

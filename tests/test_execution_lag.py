"""EnvConfig.execution_lag: a decision made at day t's close trades at the close of t + lag."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers_env import fitted_generator, make_panel

from factorgym.costs import CostModel
from factorgym.data import ReturnPanel
from factorgym.envs import Constraints, EnvConfig, GenerativeMarket, HistoricalMarket, PortfolioEnv
from factorgym.envs.wrappers import LookaheadWrapper
from factorgym.errors import FactorGymError

MODES = ("softmax", "simplex", "long_short", "weights")

pytest.importorskip("stable_baselines3")
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from factorgym.envs.rollout import rollout  # noqa: E402
from factorgym.envs.vec_env import VecPortfolioEnv  # noqa: E402


@pytest.fixture(scope="module")
def panel():
    return make_panel(400, 5, seed=0)


@pytest.fixture(scope="module")
def gen(panel):
    return fitted_generator(panel)


def _market(kind, panel, gen, **kw):
    if kind == "historical":
        return HistoricalMarket(panel, **{"horizon": 30, **kw})
    return GenerativeMarket(gen, panel, **{"horizon": 30, **kw})


# --------------------------------------------------------------------------- the option
def test_execution_lag_is_a_validated_saved_option():
    assert EnvConfig().execution_lag == 0
    cfg = EnvConfig(execution_lag=2)
    assert cfg.to_dict()["execution_lag"] == 2
    assert EnvConfig.from_dict(cfg.to_dict()) == cfg
    old = EnvConfig().to_dict()
    del old["execution_lag"]  # an agent saved before the option existed
    assert EnvConfig.from_dict(old).execution_lag == 0
    assert EnvConfig(execution_lag=np.int64(1)).execution_lag == 1
    for bad in (-1, 1.5, 1.0, "1", True, None):
        with pytest.raises(FactorGymError, match="execution_lag must be a whole number of days >= 0, got"):
            EnvConfig(execution_lag=bad)


# --------------------------------------------------------------------------- accounting by hand
def test_lag_one_accounting_by_hand_over_three_days():
    """Lag 1: day 1 holds the starting book, day 2 the day-0 decision, day 3 the day-1 decision;
    costs are charged on the trade from the drifted book of the execution close."""
    dates = pd.bdate_range("2020-01-01", periods=6)
    R = np.array([[0.0, 0.0], [0.0, 0.0], [0.01, -0.02], [0.03, 0.01], [-0.02, 0.04], [0.05, 0.05]])
    panel = ReturnPanel(dates, ("A", "B"), R, np.ones_like(R, dtype=bool), name="hand")
    buy, sell, rf = 1e-3, 2e-3, 1e-4
    env = PortfolioEnv(HistoricalMarket(panel, start=1, horizon=3), window=1, action_mode="weights",
                       cost_model=CostModel(buy=buy, sell=sell), risk_free=rf, initial_weights=(0.5, 0.2),
                       execution_lag=1)
    obs, info = env.reset(seed=0)
    a0, a1, a2 = np.array([0.3, 0.6]), np.array([0.7, 0.1]), np.array([0.0, 0.0])

    def cost(w, wd):
        return sum(buy * max(x - y, 0.0) + sell * max(y - x, 0.0) for x, y in zip(w, wd, strict=True))

    # day 1 (row 2): the starting book (0.5, 0.2) is held, nothing trades
    r = R[2]
    G1 = 1 + 0.5 * r[0] + 0.2 * r[1] + (1 - 0.7) * rf
    W1 = G1
    wd1 = np.array([0.5 * (1 + r[0]) / G1, 0.2 * (1 + r[1]) / G1])
    obs, rew, te, tr, info = env.step(a0)
    assert info["cost"] == 0.0 and info["turnover"] == 0.0
    assert info["wealth"] == pytest.approx(W1, rel=1e-12)
    np.testing.assert_allclose(obs["weights"], [wd1[0], wd1[1], 1 - wd1.sum()], rtol=1e-12)  # the held book
    # day 2 (row 3): a0 traded at row 2's close from wd1, earns r_3
    r = R[3]
    c2 = cost(a0, wd1)
    G2 = 1 + a0[0] * r[0] + a0[1] * r[1] + (1 - a0.sum()) * rf
    W2 = W1 * (1 - c2) * G2
    wd2 = a0 * (1 + r) / G2
    obs, rew, te, tr, info = env.step(a1)
    assert info["cost"] == pytest.approx(c2, rel=1e-12)
    assert info["turnover"] == pytest.approx(abs(a0[0] - wd1[0]) + abs(a0[1] - wd1[1]), rel=1e-12)
    assert info["net_return"] == pytest.approx((1 - c2) * G2 - 1, rel=1e-12)
    assert info["wealth"] == pytest.approx(W2, rel=1e-12)
    assert rew == pytest.approx(np.log((1 - c2) * G2), rel=1e-12)
    # day 3 (row 4): a1 traded at row 3's close from wd2, earns r_4; a2 never executes
    r = R[4]
    c3 = cost(a1, wd2)
    G3 = 1 + a1[0] * r[0] + a1[1] * r[1] + (1 - a1.sum()) * rf
    W3 = W2 * (1 - c3) * G3
    obs, rew, te, tr, info = env.step(a2)
    assert info["cost"] == pytest.approx(c3, rel=1e-12)
    assert info["wealth"] == pytest.approx(W3, rel=1e-12)
    assert tr and not te and info["step"] == 3
    np.testing.assert_allclose(obs["weights"][:2], a1 * (1 + r) / G3, rtol=1e-12)


def test_observation_keys_and_spaces_do_not_depend_on_the_lag(panel):
    envs = [PortfolioEnv(HistoricalMarket(panel, horizon=10), window=5, execution_lag=lag) for lag in (0, 1, 3)]
    for e in envs[1:]:
        assert e.observation_space == envs[0].observation_space and e.action_space == envs[0].action_space
    obs = [e.reset(seed=0)[0] for e in envs]
    assert all(set(o) == set(obs[0]) for o in obs)


# --------------------------------------------------------------------------- no look-ahead
@pytest.mark.parametrize("lag", [0, 1, 2])
@pytest.mark.parametrize("kind", ["historical", "generative"])
@pytest.mark.parametrize("mode", MODES)
def test_a_decision_first_moves_the_pnl_lag_plus_one_days_later(panel, gen, kind, mode, lag):
    """Two runs that differ only in the decision made at day t = t0 + k earn identical net
    returns on days t + 1 .. t + lag and differ on day t + lag + 1: a decision made at t's
    close (with whatever it peeked at) cannot trade on r_{t+1}, ..., r_{t+lag}."""
    env = PortfolioEnv(_market(kind, panel, gen, start=200), window=5, action_mode=mode, execution_lag=lag,
                       cost_model=CostModel(buy=0.0, sell=0.0))
    env.action_space.seed(4)
    acts = [env.action_space.sample() for _ in range(12)]
    k = 5  # the 6th decision differs
    other = list(acts)
    env.action_space.seed(99)
    other[k] = env.action_space.sample()
    nets = []
    for seq in (acts, other):
        env.reset(seed=0, options={"episode_seed": 7})
        nets.append([env.step(a)[4]["net_return"] for a in seq])
    a, b = np.array(nets[0]), np.array(nets[1])  # a[i]: the net return of day t0 + i + 1
    np.testing.assert_array_equal(a[: k + lag], b[: k + lag])
    assert a[k + lag] != b[k + lag]


def _greedy(next_r):
    w = np.zeros(next_r.shape[0])
    if next_r.max() > 0:
        w[np.argmax(next_r)] = 1.0
    return w


def _mean_log_return(env, peek: bool):
    obs, _ = env.reset(seed=0)
    logs = []
    for _ in range(250):
        obs, r, *_ = env.step(_greedy(obs["next_returns"] if peek else obs["returns"][-1]))
        logs.append(r)
    return float(np.mean(logs)) * 252


@pytest.mark.parametrize("lag", [0, 1])
def test_peeking_at_the_next_day_pays_only_without_a_lag(panel, lag):
    """The leak test can fail, and the lag closes the leak: with lag 0 an agent that sees
    r_{t+1} is implausibly rich; with lag 1 the same peek earns no more than an honest
    agent, while peeking at r_{t+2} (what it would trade on) is again implausibly rich."""

    def env(days):
        base = PortfolioEnv(HistoricalMarket(panel, start=50, horizon=250), window=5, action_mode="weights", execution_lag=lag)
        return LookaheadWrapper(base, days=days)

    peek_next = _mean_log_return(env(1), peek=True)
    honest = _mean_log_return(env(1), peek=False)
    assert abs(honest) < 1.0
    if lag == 0:
        assert peek_next > 2.0  # more than 200% log return a year, after costs
    else:
        assert abs(peek_next) < 1.0
        assert _mean_log_return(env(2), peek=True) > 2.0


# --------------------------------------------------------------------------- vec env and rollout
@pytest.mark.parametrize("kind", ["historical", "generative"])
@pytest.mark.parametrize("mode", MODES)
def test_vec_env_matches_scalar_envs_with_a_lag(panel, gen, kind, mode):
    kw = {"window": 6, "action_mode": mode, "execution_lag": 2}
    if mode == "long_short":
        kw["constraints"] = Constraints.long_short(8.0)  # ruins some paths
    if mode == "softmax":
        kw["constraints"] = Constraints(box=(0.0, 0.5), max_turnover=0.8)
    market = _market(kind, panel, gen, horizon=7)
    P = 4
    vec = VecPortfolioEnv(market, P, seed=5, **kw)
    ref = DummyVecEnv([lambda: PortfolioEnv(market, **kw) for _ in range(P)])
    ref.seed(5)
    o1, o2 = vec.reset(), ref.reset()
    vec.action_space.seed(0)
    n_done = 0
    for _ in range(20):
        a = np.stack([vec.action_space.sample() for _ in range(P)])
        o1, r1, d1, i1 = vec.step(a)
        o2, r2, d2, i2 = ref.step(a)
        for key in o1:
            np.testing.assert_array_equal(o1[key], o2[key])
        np.testing.assert_array_equal(d1, d2)
        np.testing.assert_array_equal(r1.astype(np.float32), r2)
        for x, y in zip(i1, i2, strict=True):
            assert {k: v for k, v in x.items() if k not in ("path_id", "terminal_observation")} == {
                k: v for k, v in y.items() if k not in ("path_id", "terminal_observation")
            }
        n_done += int(d1.sum())
    assert n_done > P  # auto-resets (which must clear the pending decisions) were exercised


class _Constant:
    """A policy that always asks for the same weights."""

    def __init__(self, w):
        self.w = np.asarray(w, dtype=np.float64)

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        return np.tile(self.w, (obs["weights"].shape[0], 1)), None


def test_rollout_records_the_executed_weights(panel):
    w = np.array([0.1, 0.2, 0.3, 0.2, 0.1])
    for lag in (0, 1, 3):
        env = VecPortfolioEnv(HistoricalMarket(panel, horizon=10), 2, window=5, action_mode="weights", execution_lag=lag)
        run = rollout(_Constant(w), env, record_weights=True)
        assert (run.weights[:lag] == 0).all()  # the starting book (all cash) until the first execution
        np.testing.assert_array_equal(run.weights[lag:], np.broadcast_to(w, run.weights[lag:].shape))
        assert (run.cost[:lag] == 0).all() and (run.cost[lag] > 0).all() and run.weights.shape[0] == 10


def test_weights_mode_with_a_lag_caps_turnover_at_execution(panel):
    """With a lag the book traded from is unknown at decision time, so the turnover cap is
    enforced when the trade executes (lag 0 refuses such an action instead)."""
    c = Constraints(max_turnover=0.3)
    w = np.full(5, 0.19)
    lag0 = PortfolioEnv(HistoricalMarket(panel, horizon=10), window=5, action_mode="weights", constraints=c)
    lag0.reset(seed=0)
    with pytest.raises(FactorGymError, match="turnover"):
        lag0.step(w)
    env = PortfolioEnv(HistoricalMarket(panel, horizon=10), window=5, action_mode="weights", constraints=c, execution_lag=1)
    env.reset(seed=0)
    env.step(w)
    _, _, _, _, info = env.step(w)
    assert info["turnover"] == pytest.approx(0.3, rel=1e-12)

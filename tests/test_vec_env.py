"""VecPortfolioEnv: parity with the scalar env, SB3 VecEnv semantics, PPO smoke test."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_env import fitted_generator, make_panel

from factorgym.envs import Constraints, GenerativeMarket, HistoricalMarket, PortfolioEnv
from factorgym.envs.vec_env import VecPortfolioEnv
from factorgym.errors import ActionError, FactorGymError

pytest.importorskip("stable_baselines3")
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor  # noqa: E402


@pytest.fixture(scope="module")
def panel():
    return make_panel(400, 5, seed=0, missing=True)


@pytest.fixture(scope="module")
def gen(panel):
    return fitted_generator(panel)


def _markets(panel, gen, horizon=7):
    return {
        "historical": HistoricalMarket(panel, horizon=horizon),
        "generative": GenerativeMarket(gen, panel, horizon=horizon),
    }


def _assert_parity(vec, ref, actions):
    """``vec`` and ``ref`` (a DummyVecEnv of PortfolioEnv) agree exactly step by step."""
    o1, o2 = vec.reset(), ref.reset()
    for k in o1:
        np.testing.assert_array_equal(o1[k], o2[k])
    n_done = n_terminated = 0
    for a in actions:
        o1, r1, d1, i1 = vec.step(a)
        o2, r2, d2, i2 = ref.step(a)
        for k in o1:
            np.testing.assert_array_equal(o1[k], o2[k], err_msg=k)
        np.testing.assert_array_equal(d1, d2)
        np.testing.assert_array_equal(r1.astype(np.float32), r2)  # DummyVecEnv stores float32
        for p, (a_, b_) in enumerate(zip(i1, i2, strict=True)):
            assert a_.keys() == b_.keys()
            assert a_["path_id"] == p
            for key in a_:
                if key == "terminal_observation":
                    for k in a_[key]:
                        np.testing.assert_array_equal(a_[key][k], b_[key][k])
                elif key != "path_id":  # a scalar env is always path 0
                    assert a_[key] == b_[key], (key, a_[key], b_[key])
        n_done += int(d1.sum())
        n_terminated += sum(1 for p in np.flatnonzero(d1) if not i1[p]["TimeLimit.truncated"])
    assert n_done > 0  # auto-resets were exercised
    return n_terminated


@pytest.mark.parametrize("kind", ["historical", "generative"])
@pytest.mark.parametrize("mode", ["softmax", "weights", "long_short", "simplex"])
def test_parity_with_dummy_vec_env_of_scalar_envs(panel, gen, kind, mode):
    if mode == "weights":  # random weights buy every asset: start after the panel's gaps
        market = {"historical": HistoricalMarket(panel, horizon=7, first_day=panel.dates[215]),
                  "generative": GenerativeMarket(gen, panel, horizon=7, first_day=panel.dates[215])}[kind]
    else:
        market = _markets(panel, gen)[kind]
    kw = {"window": 6, "action_mode": mode, "reward": "differential_sharpe"}
    if mode == "softmax":
        kw["constraints"] = Constraints(box=(0.0, 0.5), max_turnover=0.8)
    P = 5
    vec = VecPortfolioEnv(market, P, **kw)
    ref = DummyVecEnv([lambda: PortfolioEnv(market, **kw) for _ in range(P)])
    vec.seed(123)
    ref.seed(123)
    space = vec.action_space
    space.seed(0)
    actions = [np.stack([space.sample() for _ in range(P)]) for _ in range(20)]
    _assert_parity(vec, ref, actions)


def test_parity_with_features_moments_and_ruin(panel, gen):
    crash = np.array(panel.returns)
    crash[200:260] = np.where(panel.mask[200:260], -0.2, np.nan)
    crashed = panel.with_returns(crash)
    market = HistoricalMarket(crashed, horizon=40, first_day=crashed.dates[190], last_day=crashed.dates[260],
                              predictor=fitted_generator(crashed))
    from factorgym.features import FeatureConfig

    kw = {"window": 6, "action_mode": "long_short", "constraints": Constraints.long_short(3.0),
          "features": FeatureConfig(vol_windows=(5,), mom_windows=(10,)), "moments": "diag"}
    vec = VecPortfolioEnv(market, 4, seed=9, **kw)
    ref = DummyVecEnv([lambda: PortfolioEnv(market, **kw) for _ in range(4)])
    ref.seed(9)
    actions = [np.ones((4, 5), dtype=np.float32)] * 40
    assert _assert_parity(vec, ref, actions) >= 4  # every path was ruined at least once


def test_vec_path_replays_in_scalar_env_from_its_info(panel, gen):
    market = _markets(panel, gen, horizon=10)["generative"]
    vec = VecPortfolioEnv(market, 6, seed=1, window=5)
    vec.reset()
    space = vec.action_space
    space.seed(2)
    acts = [np.stack([space.sample() for _ in range(6)]) for _ in range(10)]
    infos = []
    for a in acts:
        _, _, _, info = vec.step(a)
        infos.append(info[4])
    env = PortfolioEnv(market, window=5)
    env.reset(options={"episode_seed": infos[0]["episode_seed"]})
    for a, info in zip(acts, infos, strict=True):
        *_, i = env.step(a[4])
        assert i["wealth"] == info["wealth"] and i["net_return"] == info["net_return"]


def test_auto_reset_semantics(panel, gen):
    vec = VecPortfolioEnv(_markets(panel, gen, horizon=3)["historical"], 3, seed=0, window=4)
    obs = vec.reset()
    assert all(i["step"] == 0 for i in vec.reset_infos)
    a = np.zeros((3, 6), dtype=np.float32)
    for _ in range(2):
        obs, _, done, infos = vec.step(a)
        assert not done.any() and all(not i["TimeLimit.truncated"] for i in infos)
    obs, _, done, infos = vec.step(a)
    assert done.all()
    for p, info in enumerate(infos):
        assert info["TimeLimit.truncated"] is True and info["step"] == 3
        term = info["terminal_observation"]
        assert set(term) == set(obs) and term["returns"].shape == (4, 5)
        assert vec.reset_infos[p]["step"] == 0
        assert vec.reset_infos[p]["episode_seed"] != info["episode_seed"]
        np.testing.assert_array_equal(obs["weights"][p], np.append(np.zeros(5), 1.0))  # fresh episode


def test_seeding_and_options(panel, gen):
    market = _markets(panel, gen)["historical"]
    a = VecPortfolioEnv(market, 4, seed=5, window=4)
    b = VecPortfolioEnv(market, 4, window=4)
    b.seed(5)
    oa, ob = a.reset(), b.reset()
    np.testing.assert_array_equal(oa["returns"], ob["returns"])
    assert [i["episode_seed"] for i in a.reset_infos] == [i["episode_seed"] for i in b.reset_infos]
    a.reset()  # no seed: the per-path generators continue
    assert [i["episode_seed"] for i in a.reset_infos] != [i["episode_seed"] for i in b.reset_infos]
    a.set_options({"start": panel.dates[100]})
    a.reset()
    assert {i["start_date"] for i in a.reset_infos} == {panel.dates[100].date()}
    a.set_options({"bogus": 1})
    with pytest.raises(FactorGymError, match="unknown reset options"):
        a.reset()


def test_bad_batch_actions_raise_and_leave_state(panel, gen):
    vec = VecPortfolioEnv(_markets(panel, gen)["historical"], 3, seed=0, window=4, action_mode="weights")
    vec.reset()
    good = np.full((3, 5), 0.1)
    bad = good.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ActionError):
        vec.step(bad)
    bad = good.copy()
    bad[1] = 0.5
    with pytest.raises(ActionError, match="path 1"):
        vec.step(bad)
    with pytest.raises(ActionError, match="shape"):
        vec.step(good[:2])
    _, _, _, infos = vec.step(good)
    assert all(i["step"] == 1 for i in infos)


def test_vec_env_api_helpers(panel, gen):
    vec = VecPortfolioEnv(_markets(panel, gen)["historical"], 2, seed=0, window=4)
    assert vec.get_attr("render_mode") == [None, None]
    assert vec.env_is_wrapped(object) == [False, False]
    assert vec.env_method("__repr__", indices=[0])[0].startswith("<VecPortfolioEnv")
    monitored = VecMonitor(vec)
    monitored.reset()
    for _ in range(8):
        _, _, done, infos = monitored.step(np.zeros((2, 6), dtype=np.float32))
        if done.any():
            assert "episode" in infos[int(np.argmax(done))]


def test_real_baseline_generator_in_the_vec_env(panel):
    baselines = pytest.importorskip("factorgym.generators.baselines")
    from factorgym.data import Split

    full = make_panel(600, 5, seed=3)
    split = Split.by_fraction(full.dates)
    generator = baselines.LedoitWolfGenerator(window=42).fit(full, split, progress=False)
    market = GenerativeMarket(generator, full, horizon=6)
    kw = {"window": 5, "action_mode": "softmax", "moments": "cov"}
    vec = VecPortfolioEnv(market, 3, **kw)
    ref = DummyVecEnv([lambda: PortfolioEnv(market, **kw) for _ in range(3)])
    vec.seed(4)
    ref.seed(4)
    space = vec.action_space
    space.seed(0)
    _assert_parity(vec, ref, [np.stack([space.sample() for _ in range(3)]) for _ in range(14)])


def test_ppo_learns_on_the_vec_env_without_error(panel, gen):
    from stable_baselines3 import PPO

    vec = VecMonitor(VecPortfolioEnv(_markets(panel, gen, horizon=20)["generative"], 4, seed=0, window=5))
    # no seed= here: PPO's seeding would reset global numpy/torch RNG state for the whole session
    model = PPO("MultiInputPolicy", vec, n_steps=32, batch_size=64, n_epochs=1, device="cpu",
                policy_kwargs={"net_arch": [16]})
    model.learn(total_timesteps=256)
    obs = vec.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (4, 6)
    vec.step(action)

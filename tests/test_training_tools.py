"""Training-market tools of issue 14: turnover penalty, residual actions, mixture and anchored
markets, domain randomisation, observation normalisation saved with the agent, PPO defaults,
rolling-window validation, the return decomposition and the seed ensemble."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers_env import fitted_generator, make_panel, with_future_changed

from factorgym.agents.baselines import EqualWeight
from factorgym.agents.ensemble import SeedEnsemble
from factorgym.agents.rl import EnvConfig, Markets, evaluate_policy_on, load_agent, train_agent
from factorgym.agents.rl.algos import DEFAULT_LOG_STD_INIT, algo_kwargs
from factorgym.agents.rl.diagnose import (
    decompose,
    diagnose_checkpoints,
    diagnosis_frame,
    reference_run,
)
from factorgym.agents.rl.normalize import NormalizedPolicy
from factorgym.costs import CostModel
from factorgym.data import Split
from factorgym.envs import GenerativeMarket, HistoricalMarket, PortfolioEnv
from factorgym.envs.markets.mixture import AnchoredMarket, MixtureMarket
from factorgym.envs.randomization import DomainRandomization
from factorgym.envs.rollout import rollout
from factorgym.envs.vec_env import VecPortfolioEnv
from factorgym.errors import FactorGymError

COSTS = CostModel(buy=1e-3, sell=2e-3)


@pytest.fixture(scope="module")
def panel():
    return make_panel(T=400, N=5, seed=11)


@pytest.fixture(scope="module")
def gen(panel):
    return fitted_generator(panel.iloc(0, 200))


def _run(env, policy, steps, seed=0, options=None):
    obs, info = env.reset(seed=seed, options=options)
    out = {"obs": [obs], "info": [info], "reward": []}
    for _ in range(steps):
        obs, r, term, trunc, info = env.step(policy(obs, info))
        out["obs"].append(obs)
        out["info"].append(info)
        out["reward"].append(r)
        if term or trunc:
            break
    return out


def _noisy(seed=0, dim=6):
    rng = np.random.default_rng(seed)
    return lambda obs, info: rng.uniform(-1, 1, dim).astype(np.float32)


# ------------------------------------------------------------------ turnover penalty
def test_turnover_penalty_is_subtracted_from_the_reward_only(panel):
    m = HistoricalMarket(panel, start=50, horizon=30)
    a = _run(PortfolioEnv(m, window=5, cost_model=COSTS), _noisy(), 30)
    b = _run(PortfolioEnv(m, window=5, cost_model=COSTS, turnover_penalty=0.01), _noisy(), 30)
    to = np.array([i["turnover"] for i in b["info"][1:]])
    assert to.min() > 0
    np.testing.assert_allclose(np.array(a["reward"]) - np.array(b["reward"]), 0.01 * to, rtol=0, atol=1e-15)
    assert [i["wealth"] for i in a["info"]] == [i["wealth"] for i in b["info"]]
    with pytest.raises(FactorGymError, match="turnover_penalty.*-1"):
        EnvConfig(turnover_penalty=-1)
    assert EnvConfig.from_dict(EnvConfig(turnover_penalty=0.01).to_dict()).turnover_penalty == 0.01


def test_reward_benchmark_subtracts_equal_weight_log_growth_only(panel):
    m = HistoricalMarket(panel, start=50, horizon=30)
    a = _run(PortfolioEnv(m, window=5, cost_model=COSTS), _noisy(), 30)
    b = _run(PortfolioEnv(m, window=5, cost_model=COSTS, reward_benchmark="equal_weight"), _noisy(), 30)
    R = np.asarray(panel.returns)[51:81]  # the days the 30 steps earn: r(t + 1) for decisions at t = 50..79
    np.testing.assert_allclose(np.array(a["reward"]) - np.array(b["reward"]), np.log1p(R.mean(axis=1)), rtol=0, atol=1e-15)
    assert [i["wealth"] for i in a["info"]] == [i["wealth"] for i in b["info"]]
    # 1/N itself earns a reward of minus its costs only: the market's move is gone
    ew = EqualWeight()
    c = _run(PortfolioEnv(m, window=5, action_mode="weights", cost_model=COSTS, reward_benchmark="equal_weight"),
             lambda o, i: ew.predict(o)[0], 30)  # fmt: skip
    assert np.abs(c["reward"][5:]).max() < 1e-3 < np.abs(a["reward"][5:]).max()
    with pytest.raises(FactorGymError, match="reward_benchmark.*'index'"):
        EnvConfig(reward_benchmark="index")
    assert EnvConfig.from_dict(EnvConfig(reward_benchmark="equal_weight").to_dict()).reward_benchmark == "equal_weight"


# ------------------------------------------------------------------ residual actions
def test_residual_zero_action_is_equal_weight_to_the_cent(panel):
    m = HistoricalMarket(panel, start=30, horizon=120)
    res = _run(PortfolioEnv(m, window=5, action_mode="residual", cost_model=COSTS),
               lambda o, i: np.zeros(6, dtype=np.float32), 120)  # fmt: skip
    ew = EqualWeight()
    ref = _run(PortfolioEnv(m, window=5, action_mode="weights", cost_model=COSTS), lambda o, i: ew.predict(o)[0], 120)
    w_res = np.array([i["wealth"] for i in res["info"]])
    w_ref = np.array([i["wealth"] for i in ref["info"]])
    assert np.abs(w_res - w_ref).max() < 1e-12  # a cent on 10^10
    np.testing.assert_array_equal([i["net_return"] for i in res["info"]], [i["net_return"] for i in ref["info"]])


def test_residual_tilt_is_bounded_and_base_weights_are_honoured(panel):
    env = PortfolioEnv(HistoricalMarket(panel, start=30, horizon=5), window=5, action_mode="residual", residual_scale=0.05)
    mapper = env.engine.mapper
    a = np.random.default_rng(0).uniform(-1, 1, (200, 6))
    w = mapper.target(a)
    assert np.abs(np.append(w, 1 - w.sum(1, keepdims=True), axis=1) - mapper.base).max() <= 0.05 + 1e-12
    assert (w >= -1e-12).all() and (w.sum(1) <= 1 + 1e-12).all()
    base = (0.1, 0.2, 0.3, 0.1, 0.1)
    env = PortfolioEnv(HistoricalMarket(panel, start=30, horizon=5), window=5, action_mode="residual", base_weights=base)
    env.reset(seed=0)
    env.step(np.full(6, 0.3, dtype=np.float32))  # any constant action is the base
    np.testing.assert_array_equal(env.engine.held[0], base)
    for bad, match in (({"base_weights": (0.5, 0.6, 0, 0, 0)}, "base_weights"), ({"residual_scale": 0}, "residual_scale.*0"),
                       ({"base_weights": (0.2,) * 5, "action_mode": "softmax"}, "residual")):  # fmt: skip
        with pytest.raises(FactorGymError, match=match):
            EnvConfig(**{"action_mode": "residual", **bad})


# ------------------------------------------------------------------ partial adjustment and no-trade band
def test_trade_rate_moves_part_of_the_way_from_the_drifted_book(panel):
    m = HistoricalMarket(panel, start=30, horizon=40)
    full = PortfolioEnv(m, window=5, cost_model=COSTS)
    part = PortfolioEnv(m, window=5, cost_model=COSTS, trade_rate=0.25)
    for env in (full, part):
        env.reset(seed=0)
    pol = _noisy(3)
    for _ in range(40):
        a = pol(None, None)
        wd = part.engine.w_drifted[0].copy()
        target = part.engine.mapper.target(a[None].astype(np.float64))[0]
        _, _, term, trunc, info = part.step(a)
        np.testing.assert_allclose(part.engine.held[0], wd + 0.25 * (target - wd), rtol=0, atol=1e-15)
        assert info["turnover"] == pytest.approx(0.25 * np.abs(target - wd).sum(), abs=1e-12)
        full.step(a)
        if term or trunc:
            break
    assert part.engine.turnover[0] < full.engine.turnover[0]
    assert EnvConfig.from_dict(EnvConfig(trade_rate=0.5, no_trade_band=0.1).to_dict()).trade_rate == 0.5


def test_no_trade_band_keeps_the_drifted_book_below_the_band(panel):
    m = HistoricalMarket(panel, start=30, horizon=30)
    band = 0.3
    env = PortfolioEnv(m, window=5, cost_model=COSTS, no_trade_band=band)
    env.reset(seed=0)
    pol, traded, kept = _noisy(4), 0, 0
    for _ in range(30):
        a = pol(None, None) * 0.2  # small moves: some days inside the band, some outside
        wd = env.engine.w_drifted[0].copy()
        target = env.engine.mapper.target(a[None].astype(np.float64))[0]
        _, _, term, trunc, info = env.step(a)
        if np.abs(target - wd).sum() < band:
            np.testing.assert_array_equal(env.engine.held[0], wd)
            assert info["turnover"] == 0.0 and info["cost"] == 0.0
            kept += 1
        else:
            np.testing.assert_allclose(env.engine.held[0], target, rtol=0, atol=1e-15)
            traded += 1
        if term or trunc:
            break
    assert kept and traded


def test_trading_rules_refuse_bad_values_and_the_weights_mode(panel):
    for kw, match in (({"trade_rate": 0}, "trade_rate.*0"), ({"trade_rate": 1.5}, "trade_rate"),
                      ({"no_trade_band": -0.1}, "no_trade_band"), ({"no_trade_band": float("inf")}, "no_trade_band"),
                      ({"trade_rate": 0.5, "action_mode": "weights"}, "weights")):  # fmt: skip
        with pytest.raises(FactorGymError, match=match):
            EnvConfig(**kw)
    members = [(_Fixed(np.zeros(6)), EnvConfig(trade_rate=0.5)), (_Fixed(np.zeros(6)), EnvConfig())]
    with pytest.raises(FactorGymError, match="trading rule"):
        SeedEnsemble(members)


# ------------------------------------------------------------------ mixture and anchored markets
def test_mixture_draws_sources_by_weight_records_them_and_is_seeded(panel, gen):
    hist = HistoricalMarket(panel, horizon=10, last_day=199)
    genm = GenerativeMarket(gen, panel, horizon=10, last_day=199)
    mix = MixtureMarket([hist, genm], [0.3, 0.7], names=["replay", "gauss"])
    env = VecPortfolioEnv(mix, 64, seed=3, window=5)
    env.reset()
    src = [i["market_source"] for i in env.reset_infos]
    assert set(src) == {"replay", "gauss"} and 0.5 < src.count("gauss") / 64 < 0.9
    again = VecPortfolioEnv(mix, 64, seed=3, window=5)
    obs2 = again.reset()
    assert [i["market_source"] for i in again.reset_infos] == src
    a = np.zeros((64, 6), dtype=np.float32)
    o1, *_ = env.step(a)
    o2, *_ = again.step(a)
    np.testing.assert_array_equal(o1["returns"], o2["returns"])
    # replayed paths earn the panel's returns of their dates; simulated ones have no date
    infos = env.step(a)[3]
    for i in infos:
        assert (i["date"] is None) == (i["market_source"] == "gauss")
    with pytest.raises(FactorGymError, match="weights"):
        MixtureMarket([hist, genm], [1, -1])
    with pytest.raises(FactorGymError, match="horizon"):
        MixtureMarket([hist, GenerativeMarket(gen, panel, horizon=11)])
    del obs2


def test_anchored_market_restarts_from_real_history_every_k_days(panel, gen):
    t0, K = 100, 4
    env = PortfolioEnv(AnchoredMarket(gen, panel, anchor_every=K, start=t0, horizon=12), window=5)
    run = _run(env, lambda o, i: np.zeros(6, dtype=np.float32), 12)
    R = panel.filled(0.0)
    for k in range(1, 13):
        last = run["obs"][k]["returns"][-1]
        if k % K == 0:  # the window is real history up to t0 + k, and that day earned its real return
            np.testing.assert_array_equal(run["obs"][k]["returns"], R[t0 + k - 4 : t0 + k + 1])
        else:
            assert not np.array_equal(last, R[t0 + k])
    with pytest.raises(FactorGymError, match="anchor_every"):
        AnchoredMarket(gen, panel, anchor_every=0)


@pytest.mark.parametrize("kind", ["anchored", "mixture", "randomized", "trading_rules"])
def test_no_lookahead_in_the_new_markets_and_options(panel, gen, kind):
    """Changing real data after day ``cut`` leaves every observation up to ``cut`` unchanged."""
    t0, cut, H = 100, 109, 20

    def env_for(p):
        if kind == "anchored":
            return PortfolioEnv(AnchoredMarket(gen, p, anchor_every=3, start=t0, horizon=H), window=5)
        if kind == "mixture":
            return PortfolioEnv(MixtureMarket([HistoricalMarket(p, start=t0, horizon=H), GenerativeMarket(gen, p, start=t0, horizon=H)]), window=5)
        if kind == "trading_rules":
            return PortfolioEnv(HistoricalMarket(p, start=t0, horizon=H), window=5, trade_rate=0.3, no_trade_band=0.05, execution_lag=1)
        rnd = DomainRandomization(vol_scale=(0.5, 2.0), cost_scale=(0.5, 2.0), permute_assets=True)
        return PortfolioEnv(HistoricalMarket(p, start=t0, horizon=H), window=5, action_mode="residual", randomization=rnd)

    runs = []
    for p in (panel, with_future_changed(panel, cut)):
        runs.append(_run(env_for(p), lambda o, i: np.clip(o["returns"].sum(0) * 20, -1, 1).tolist() + [0.0], H, seed=2))
    for k in range(cut - t0 + 1):
        for key in runs[0]["obs"][k]:
            np.testing.assert_array_equal(runs[0]["obs"][k][key], runs[1]["obs"][k][key], err_msg=f"{kind} obs {k} {key}")


# ------------------------------------------------------------------ domain randomisation
def test_randomization_is_off_by_default_recorded_and_seeded(panel):
    m = HistoricalMarket(panel, horizon=10, last_day=199)
    plain = PortfolioEnv(m, window=5)
    assert "randomization" not in plain.reset(seed=0)[1]
    rnd = DomainRandomization(vol_scale=(0.5, 2.0), cost_scale=(0.5, 3.0), permute_assets=True)
    env = PortfolioEnv(m, window=5, randomization=rnd)
    draws = [env.reset(seed=s)[1]["randomization"] for s in range(20)]
    assert draws == [PortfolioEnv(m, window=5, randomization=rnd).reset(seed=s)[1]["randomization"] for s in range(20)]
    assert len({d["vol_scale"] for d in draws}) == 20 and all(0.5 <= d["vol_scale"] <= 2.0 for d in draws)
    assert all(0.5 <= d["cost_scale"] <= 3.0 for d in draws) and len({tuple(d["permutation"]) for d in draws}) > 5
    cfg = EnvConfig(randomization=rnd)
    assert EnvConfig.from_dict(cfg.to_dict()) == cfg and cfg.for_evaluation().randomization is None
    for bad in ({"vol_scale": (0, 1)}, {"cost_scale": (2, 1)}, {"permute_assets": "yes"}, {"vol_scale": 3}):
        with pytest.raises(FactorGymError, match=next(iter(bad))):
            DomainRandomization(**bad)


def test_vol_and_cost_scales_rescale_returns_and_costs(panel):
    m = HistoricalMarket(panel, start=60, horizon=15)
    pol = _noisy(1)
    base = _run(PortfolioEnv(m, window=5, cost_model=COSTS), pol, 15)
    rnd = DomainRandomization(vol_scale=(0.5, 2.0), cost_scale=(0.5, 3.0))
    pol = _noisy(1)
    env = PortfolioEnv(m, window=5, cost_model=COSTS, randomization=rnd)
    got = _run(env, pol, 15, options={"episode_seed": 5})
    d = got["info"][0]["randomization"]
    s, c = d["vol_scale"], d["cost_scale"]
    assert s != 1 and c != 1
    np.testing.assert_allclose(got["obs"][0]["returns"], np.maximum(base["obs"][0]["returns"] * s, -0.99), rtol=1e-15)
    # same first trade (from cash), its cost scaled by c
    assert got["info"][1]["cost"] == pytest.approx(base["info"][1]["cost"] * c, rel=1e-12)


def test_permutation_is_undone_for_accounting_to_the_cent(panel):
    """A policy that reads the permutation from ``info`` and holds a fixed real-order target
    earns exactly what the same target earns without permutation."""
    m = HistoricalMarket(panel, start=40, horizon=60)
    target = np.array([0.4, 0.05, 0.25, 0.1, 0.15, 0.05])  # simplex point, cash last

    def fixed(obs, info):
        perm = info.get("randomization", {}).get("permutation")
        if perm is None:
            return target
        return np.append(target[:-1][np.asarray(perm)], target[-1])  # column j shows asset perm[j]

    plain = _run(PortfolioEnv(m, window=5, action_mode="simplex", cost_model=COSTS), fixed, 60)
    env = PortfolioEnv(m, window=5, action_mode="simplex", cost_model=COSTS, randomization=DomainRandomization(permute_assets=True))
    perm_run = _run(env, fixed, 60, options={"episode_seed": 8})
    perm = np.asarray(perm_run["info"][0]["randomization"]["permutation"])
    assert not np.array_equal(perm, np.arange(5))
    np.testing.assert_allclose([i["wealth"] for i in perm_run["info"]], [i["wealth"] for i in plain["info"]], rtol=0, atol=1e-12)
    # the observation shows the same returns with the columns permuted, and the weights alike
    np.testing.assert_array_equal(perm_run["obs"][10]["returns"], plain["obs"][10]["returns"][:, perm])
    np.testing.assert_array_equal(perm_run["obs"][10]["weights"][:-1], plain["obs"][10]["weights"][:-1][perm])


# ------------------------------------------------------------------ RL: defaults, normalisation, selection, diagnosis
def test_ppo_defaults_give_at_least_20_updates_and_quiet_exploration():
    kw = algo_kwargs("ppo", None, 100_000, 6)
    assert kw["n_steps"] == 256 and kw["batch_size"] == 256 and 100_000 // (kw["n_steps"] * 8) >= 20
    assert kw["policy_kwargs"]["log_std_init"] == DEFAULT_LOG_STD_INIT < 0
    mine = algo_kwargs("ppo", {"n_steps": 64, "policy_kwargs": {"log_std_init": 0.0, "net_arch": [8]}}, 1000, 6)
    assert mine["n_steps"] == 64 and "batch_size" not in mine and mine["policy_kwargs"]["log_std_init"] == 0.0
    assert algo_kwargs("a2c", None, 1000, 6)["policy_kwargs"]["log_std_init"] == DEFAULT_LOG_STD_INIT
    assert "log_std_init" not in (algo_kwargs("sac", None, 1000, 6).get("policy_kwargs") or {})
    with pytest.raises(FactorGymError, match="tpu"):
        algo_kwargs("ppo", {"device": "tpu"}, 1000, 6)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, panel):
    split = Split.by_fraction(panel.dates)
    markets = Markets.from_objects(panel, split, None, horizon=16)
    root = tmp_path_factory.mktemp("tools")
    agent = train_agent(
        "ppo", markets, out_dir=root / "ppo", total_timesteps=512, n_envs=4, seed=0,
        env_kwargs={"window": 5, "action_mode": "residual", "turnover_penalty": 1e-3,
                    "randomization": DomainRandomization(permute_assets=True, vol_scale=(0.8, 1.25))},
        algo_kwargs={"n_steps": 32, "batch_size": 64, "n_epochs": 2, "policy_kwargs": {"net_arch": [16]}},
        eval_freq=256, eval_stride=10, normalize_obs=True, normalize_reward=True, device="cpu",
    )  # fmt: skip
    return agent


def test_normalisation_statistics_are_saved_reloaded_and_applied(trained):
    d = trained.path
    rec = json.loads((d / "agent.json").read_text())
    assert rec["normalize"] == {"obs": True, "reward": True, "clip_obs": 10.0} and rec["device"] == "cpu"
    assert rec["env"]["randomization"]["permute_assets"] is True and rec["env"]["turnover_penalty"] == 1e-3
    assert {"normalizer", "best_normalizer"} <= set(rec["files"])
    stats = json.loads((d / "normalizer.json").read_text())
    assert np.abs(np.asarray(stats["mean"]["returns"])).max() > 0  # learnt, not the identity
    model, meta = load_agent(d)
    assert isinstance(model, NormalizedPolicy) and meta.normalizes_observations
    env = meta.make_env(trained.markets.heldout("val", horizon=10), 3, seed=1)
    assert env.config.randomization is None  # evaluation runs without randomisation
    obs = env.reset()
    a_loaded, _ = model.predict(obs, deterministic=True)
    a_trained, _ = trained.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a_loaded, a_trained)
    raw, _ = model.model.predict(obs, deterministic=True)
    assert not np.array_equal(raw, a_loaded)  # the statistics are really used
    # the statistics of a checkpoint are SB3's pickle beside it
    ck, _ = load_agent(d / "checkpoints" / "model_256_steps.zip")
    assert isinstance(ck, NormalizedPolicy)
    market = trained.markets.heldout("val", horizon=10)
    starts = rec["evaluation"]["start_rows"][:3]
    e1 = evaluate_policy_on(trained, market, env=meta, starts=starts)
    e2 = evaluate_policy_on(model, market, env=meta, starts=starts)
    assert e1.episodes.equals(e2.episodes)
    (d / "normalizer.json").write_text("{}")
    with pytest.raises(Exception, match="SHA-256"):
        load_agent(d)
    (d / "normalizer.json").write_text(json.dumps(stats))


def test_rolling_validation_and_the_recorded_decomposition(trained):
    rec = json.loads((trained.path / "agent.json").read_text())
    ev = rec["evaluation"]
    lo, hi = trained.markets.rows("val")
    assert ev["n_episodes"] == len(ev["start_rows"]) > 5 and ev["start_rows"][:2] == [ev["start_rows"][0], ev["start_rows"][0] + 10]
    frame = diagnosis_frame(trained.path)
    assert list(frame["timesteps"]) == [256, 512]
    np.testing.assert_allclose(frame["excess_log_wealth"], frame["allocation"] + frame["costs"], atol=1e-12)
    np.testing.assert_allclose(frame["excess_log_wealth"], frame["log_wealth"] - frame["log_wealth_1n"], atol=1e-12)
    assert (frame["effective_n"] > 1).all() and (frame["effective_n"] <= 5 + 1e-9).all()
    again = diagnose_checkpoints(trained.path, markets=trained.markets)
    assert list(again["timesteps"]) == [256, 512, 512]
    last = again[again["model"] == "model.zip"].iloc[0]
    assert last["excess_log_wealth"] == pytest.approx(frame["excess_log_wealth"].iloc[-1], abs=1e-12)


def test_decomposition_of_equal_weight_against_itself_is_zero(panel):
    env = VecPortfolioEnv(HistoricalMarket(panel, horizon=20, random_start=False, first_day=200), 3, window=5, cost_model=COSTS)
    ref = reference_run(env, [200, 230, 260])
    d = decompose(ref, ref)
    assert d["excess_log_wealth"] == d["allocation"] == d["costs"] == 0 and d["effective_n"] == pytest.approx(5)


def test_train_agent_rejects_bad_new_options(tmp_path, panel):
    markets = Markets.from_objects(panel, Split.by_fraction(panel.dates), None, horizon=16)
    base = {"out_dir": tmp_path / "x", "total_timesteps": 64, "n_envs": 2, "eval_freq": 0}
    for kw, match in (({"device": "gpu"}, "gpu"), ({"normalize_obs": "yes"}, "normalize_obs"),
                      ({"eval_stride": 0}, "eval_stride"), ({"clip_obs": -1}, "clip_obs")):  # fmt: skip
        with pytest.raises(FactorGymError, match=match):
            train_agent("ppo", markets, **base, **kw)
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------ ensemble
class _Fixed:
    """A softmax-mode policy whose logits are fixed."""

    def __init__(self, logits):
        self.logits = np.asarray(logits, dtype=np.float32)

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        n = np.asarray(obs["weights"]).shape[0] if np.asarray(obs["weights"]).ndim == 2 else None
        return (self.logits if n is None else np.tile(self.logits, (n, 1))), state


def test_seed_ensemble_averages_member_weights_and_acts_anywhere(panel):
    cfg = EnvConfig(window=5, cost_model=COSTS)
    a, b = _Fixed([1, 0, 0, 0, 0, -1]), _Fixed([0, 0, 1, 0, 0, 0])
    ens = SeedEnsemble([(a, cfg), (b, cfg), EqualWeight()])
    m = HistoricalMarket(panel, start=50, horizon=10)
    env = VecPortfolioEnv(m, 2, config=ens.env_config)
    obs = env.reset()
    mapper = env.engine.mapper
    soft = PortfolioEnv(m, config=cfg).engine.mapper
    expect = (soft.target(a.logits[None].astype(np.float64)) + soft.target(b.logits[None].astype(np.float64)) + 0.2) / 3
    np.testing.assert_allclose(ens.weights(obs), np.tile(expect, (2, 1)), atol=1e-15)
    action, _ = ens.predict(obs)
    np.testing.assert_allclose(mapper.target(np.asarray(action, dtype=np.float64)), np.tile(expect, (2, 1)), atol=1e-12)
    assert ens.action_mode == "simplex" and ens.window == 5
    run = rollout(ens, env, seed=0, record_weights=True)
    np.testing.assert_allclose(run.weights[0], np.tile(expect, (2, 1)), atol=1e-12)
    res = evaluate_policy_on(ens, m, env=ens.env_config)
    assert np.isfinite(res.log_wealth).all()
    one = SeedEnsemble([(a, cfg)])
    np.testing.assert_allclose(one.weights(obs), soft.target(np.tile(a.logits, (2, 1)).astype(np.float64)), atol=1e-15)
    with pytest.raises(FactorGymError, match="no environment configuration"):
        SeedEnsemble([a])
    with pytest.raises(FactorGymError, match="weights"):
        SeedEnsemble([(a, cfg), (b, cfg)], weights=[1, -1])


def test_mixture_market_spec_round_trips_and_trains(tmp_path, panel, gen):
    from factorgym.agents.rl import MarketSpec

    spec = MarketSpec(mixture=[("historical", 1), {"source": "runs/x", "weight": 3}], anchor_every=5)
    assert spec.source == "mixture" and spec.mixture == (("historical", 1.0), ("runs/x", 3.0))
    assert MarketSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    for bad, match in (([("historical", -1)], "weight"), ([], "positive weight"), ("historical", "pairs")):
        with pytest.raises(FactorGymError, match=match):
            MarketSpec(mixture=bad)
    with pytest.raises(FactorGymError, match="anchor_every"):
        MarketSpec(anchor_every=0)
    split = Split.by_fraction(panel.dates)
    hist = Markets.from_objects(panel, split, None, horizon=16)
    genm = Markets.from_objects(panel, split, gen, horizon=16)
    mix = Markets.mixture_of([hist, genm], [1.0, 1.0])
    assert isinstance(mix.train, MixtureMarket) and mix.train.names == ["historical", "test_gaussian_ar"]
    agent = train_agent("ppo", mix, out_dir=tmp_path / "mix", total_timesteps=64, n_envs=4, seed=0, env_kwargs={"window": 5},
                        algo_kwargs={"n_steps": 16, "batch_size": 64, "n_epochs": 1, "policy_kwargs": {"net_arch": [8]}},
                        eval_freq=0)  # fmt: skip
    rec = json.loads((agent.path / "agent.json").read_text())
    assert rec["market"]["kind"] == "mixture" and rec["market"]["mixture"][1][1] == 1.0
    assert len(rec["market"]["components"]) == 2


def test_seed_ensemble_of_saved_agents_uses_their_normalisers_and_action_modes(trained):
    ens = SeedEnsemble.load([trained.path, trained.path], which="final")
    model, meta = load_agent(trained.path)
    env = meta.make_env(trained.markets.heldout("val", horizon=10), 2, seed=0)
    obs = env.reset()
    a, _ = model.predict(obs, deterministic=True)
    expect = env.engine.mapper.target(np.asarray(a, dtype=np.float64))  # residual mode, frozen statistics
    np.testing.assert_allclose(ens.weights(obs), expect, atol=1e-15)
    assert ens.env_config.randomization is None and ens.env_config.action_mode == "simplex"

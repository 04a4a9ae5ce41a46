"""Backtest protocol: identical accounting, shared synthetic paths, real test window without
look-ahead, bootstrap intervals, baselines, the agent spec grammar and the CLI outputs."""

from __future__ import annotations

import html
import json
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers_env import GaussianARGenerator, fitted_generator, make_panel

from factorgym import metrics as M
from factorgym.agents.baselines import BuyAndHold, EqualWeight, market_metrics
from factorgym.agents.estimators import GeneratorSource, HistoricalSource
from factorgym.agents.optimizers import MeanCVaR, MeanVariance, MinVariance
from factorgym.agents.protocol import Agent
from factorgym.app.agent_factory import agent_from_spec
from factorgym.app.backtest import (
    BacktestAgent,
    BacktestConfig,
    PathRun,
    backtest,
    bootstrap_intervals,
    held_out_rows,
    sb3_agent,
    synthetic_episode_seeds,
)
from factorgym.app.cli.backtest import backtest_cli
from factorgym.app.specs import AgentSpec, parse_agent_spec
from factorgym.costs import CostModel
from factorgym.data import ReturnPanel, Split
from factorgym.envs.actions import Constraints
from factorgym.envs.markets import HistoricalMarket
from factorgym.envs.portfolio_env import PortfolioEnv
from factorgym.errors import DataValidationError, FactorGymError
from factorgym.generators.runs import RunSpec, fit_run

T, N = 260, 4
VAL_END_ROW = 219  # the real path starts here (the last pre-test day); test = rows 220..259
N_TEST = T - VAL_END_ROW - 1


def _panel(seed: int = 3) -> ReturnPanel:
    p = make_panel(T=T, N=N, seed=seed)
    exog = pd.DataFrame({"SP500": 0.9 * np.nanmean(p.returns, axis=1) + 1e-4}, index=p.dates)
    return ReturnPanel(p.dates, p.assets, p.returns, p.mask, exog=exog, name="toy")


def _changed_after(panel: ReturnPanel, t: int, seed: int = 42) -> ReturnPanel:
    """``panel`` with every return (and the index) after row ``t`` replaced."""
    rng = np.random.default_rng(seed)
    r = np.array(panel.returns)
    r[t + 1 :] = rng.normal(0.0, 0.04, r[t + 1 :].shape)
    exog = panel.exog.copy()
    exog.iloc[t + 1 :, 0] = rng.normal(0.0, 0.03, T - t - 1)
    return ReturnPanel(panel.dates, panel.assets, r, panel.mask, exog=exog, name=panel.name)


PANEL = _panel()
SPLIT = Split(str(PANEL.dates[150].date()), str(PANEL.dates[VAL_END_ROW].date()))
COSTS = CostModel(buy=1e-3, sell=2e-3)
CONS = Constraints()


def _config(**kw: Any) -> BacktestConfig:
    base: dict[str, Any] = {"split": SPLIT, "n_paths": 4, "seed": 7, "cost_model": COSTS, "constraints": CONS, "bootstrap_reps": 200}
    base.update(kw)
    return BacktestConfig(**base)


class Recorder(Agent):
    """Records the newest observed return row of every path; invests 1/N or holds cash."""

    def __init__(self, invest: bool = True) -> None:
        self.invest = invest

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.runs_: list[dict[int, list[np.ndarray]]] = [*getattr(self, "runs_", []), {}]

    def act(self, returns: np.ndarray, weights: np.ndarray, env_index: int = 0) -> np.ndarray:
        self.runs_[-1].setdefault(env_index, []).append(np.array(returns[-1]))
        n = weights.shape[0] - 1
        return np.full(n, 1.0 / n) if self.invest else np.zeros(n)


@pytest.fixture(scope="module")
def generator() -> Any:
    return fitted_generator(SPLIT.part(PANEL, "train"), phi=0.1, history=5)


@pytest.fixture(scope="module")
def result(generator: Any) -> Any:
    agents = [
        BacktestAgent("bh", BuyAndHold(cost_model=COSTS)),
        agent_from_spec("mv:ledoit_wolf,window=30,gamma=20", cost_model=COSTS, constraints=CONS)[0],
        BacktestAgent("rec_invest", Recorder(True), window=3),
        BacktestAgent("rec_cash", Recorder(False), window=7),
    ]
    return backtest(agents, PANEL, {"ar": generator}, _config())


# =========================================================================== real path
def test_real_path_starts_on_the_last_pre_test_day_and_covers_the_test_period(result: Any) -> None:
    assert result.start_date == PANEL.dates[VAL_END_ROW]
    for name in result.agent_names:
        d = result.daily(name)
        assert list(d.index) == list(PANEL.dates[VAL_END_ROW + 1 :])
        assert len(d) == N_TEST
    assert result.first_test_date == PANEL.dates[VAL_END_ROW + 1]
    assert result.end_date == PANEL.dates[-1]
    assert held_out_rows(PANEL, SPLIT) == (VAL_END_ROW, T - 1)
    assert held_out_rows(PANEL, SPLIT, str(PANEL.dates[240].date())) == (VAL_END_ROW, 240)


def test_same_agent_via_backtest_and_manual_env_loop_gives_the_same_wealth(result: Any) -> None:
    fresh = {
        "bh": (BuyAndHold(cost_model=COSTS), 1),
        "mv:ledoit_wolf": (agent_from_spec("mv:ledoit_wolf,window=30,gamma=20", cost_model=COSTS, constraints=CONS)[0].policy, 30),
        "equal_weight": (EqualWeight(), 1),
    }
    for name, (agent, window) in fresh.items():
        market = HistoricalMarket(PANEL, start=PANEL.dates[VAL_END_ROW], horizon=None, random_start=False)
        env = PortfolioEnv(market, window=window, action_mode="weights", cost_model=COSTS, constraints=CONS)
        obs, _ = env.reset(seed=123)
        agent.reset(seed=7)
        wealth, weights, done = [], [], False
        while not done:
            a, _ = agent.predict(obs)
            weights.append(np.asarray(a))
            obs, _, term, trunc, info = env.step(a)
            wealth.append(info["wealth"])
            done = term or trunc
        d = result.daily(name)
        np.testing.assert_allclose(d["wealth"].to_numpy(), wealth, rtol=0, atol=1e-12)
        np.testing.assert_allclose(result.weights(name)[list(PANEL.assets)].to_numpy(), np.array(weights), rtol=0, atol=1e-12)
        # the reported metrics are portfolio_metrics of those daily net returns
        r = d["net_return"].to_numpy()
        assert result.summary.loc[name, "sharpe"] == pytest.approx(M.sharpe_ratio(r), rel=1e-12)
        assert result.summary.loc[name, "total_costs"] == pytest.approx(d["cost"].sum(), rel=1e-12)


def test_real_path_never_reads_data_after_the_test_end(generator: Any) -> None:
    end = 245
    agents = [BacktestAgent("bh", BuyAndHold(cost_model=COSTS)), EqualWeight()]
    cfg = _config(test_end=str(PANEL.dates[end].date()), bootstrap_reps=50)
    a = backtest(agents, PANEL, {"ar": generator}, cfg)
    b = backtest(agents, _changed_after(PANEL, end), {"ar": generator}, cfg)
    assert a.end_date == PANEL.dates[end]
    pd.testing.assert_frame_equal(a.summary, b.summary)
    pd.testing.assert_frame_equal(a.bootstrap, b.bootstrap)
    pd.testing.assert_frame_equal(a.synthetic_paths, b.synthetic_paths)
    for name in a.agent_names:
        pd.testing.assert_frame_equal(a.daily(name), b.daily(name))


def test_synthetic_paths_never_read_data_after_the_start(generator: Any) -> None:
    agents = [BacktestAgent("bh", BuyAndHold(cost_model=COSTS)), EqualWeight()]
    cfg = _config(bootstrap_reps=0)
    a = backtest(agents, PANEL, {"ar": generator}, cfg)
    b = backtest(agents, _changed_after(PANEL, VAL_END_ROW), {"ar": generator}, cfg)
    pd.testing.assert_frame_equal(a.synthetic_paths, b.synthetic_paths)
    # ... while the real path did change (the test is not vacuous)
    assert not np.allclose(a.daily("bh")["wealth"], b.daily("bh")["wealth"])


# =========================================================================== synthetic paths
def test_every_agent_sees_the_same_synthetic_paths(result: Any) -> None:
    rec_i = result.agents[result.agent_names.index("rec_invest")].policy
    rec_c = result.agents[result.agent_names.index("rec_cash")].policy
    assert len(rec_i.runs_) == len(rec_c.runs_) == 2  # the real path, then generator "ar"
    seen_i, seen_c = rec_i.runs_[1], rec_c.runs_[1]
    assert sorted(seen_i) == sorted(seen_c) == list(range(4))
    for p in range(4):
        np.testing.assert_array_equal(np.array(seen_i[p]), np.array(seen_c[p]))
    # the paths differ from each other and from the real days
    assert not np.allclose(np.array(seen_i[0]), np.array(seen_i[1]))
    # every agent (different windows, policies, costs) has the same fingerprint on each path
    sp = result.synthetic_paths
    assert (sp.groupby("path")["path_hash"].nunique() == 1).all()
    assert sp.groupby("path")["episode_seed"].nunique().eq(1).all()
    assert sp["path_hash"].nunique() == 4


def test_synthetic_paths_are_fixed_by_the_seed_not_by_their_number(generator: Any) -> None:
    assert synthetic_episode_seeds(5, 6)[:3] == synthetic_episode_seeds(5, 3)
    assert synthetic_episode_seeds(5, 3) != synthetic_episode_seeds(6, 3)
    agents = [EqualWeight()]
    small = backtest(agents, PANEL, {"ar": generator}, _config(n_paths=2, bootstrap_reps=0))
    big = backtest(agents, PANEL, {"ar": generator}, _config(n_paths=3, bootstrap_reps=0))
    again = backtest(agents, PANEL, {"ar": generator}, _config(n_paths=3, bootstrap_reps=0))
    pd.testing.assert_frame_equal(big.synthetic_paths, again.synthetic_paths)
    pd.testing.assert_frame_equal(small.synthetic_paths, big.synthetic_paths.iloc[:2])


def test_synthetic_summary_and_gap_follow_from_the_per_path_table(result: Any) -> None:
    sp = result.synthetic_paths
    for agent in ("bh", "mv:ledoit_wolf"):
        s = sp[sp["agent"] == agent]
        row = result.synthetic_summary.loc[("ar", agent)]
        assert row["sharpe_median"] == pytest.approx(np.median(s["sharpe"]))
        assert row["terminal_wealth_p05"] == pytest.approx(np.quantile(s["terminal_wealth"], 0.05))
        ew = sp[sp["agent"] == "equal_weight"].set_index("path")["terminal_wealth"]
        under = (s.set_index("path")["terminal_wealth"] < ew).mean()
        assert row["p_underperform_ew"] == pytest.approx(under)
        w = s["terminal_wealth"].to_numpy()
        assert row["terminal_wealth_cvar_95"] == pytest.approx(M.historical_cvar(w - 1.0, 0.95))
        g = result.gap.loc[("ar", agent)]
        assert g["sharpe_gap"] == pytest.approx(result.summary.loc[agent, "sharpe"] - np.median(s["sharpe"]))
        assert 0.0 <= g["sharpe_percentile"] <= 1.0
    assert np.isnan(result.synthetic_summary.loc[("ar", "equal_weight"), "p_underperform_ew"])
    # optimizer counters: one solve per path-day
    assert result.synthetic_summary.loc[("ar", "mv:ledoit_wolf"), "n_solves"] == 4 * N_TEST
    assert result.summary.loc["mv:ledoit_wolf", "n_solves"] == N_TEST


class SharedStreamGenerator(GaussianARGenerator):
    """Breaks the PathSimulator contract: every path draws from one stream kept across runs."""

    def simulator_window(self, window: Any, rngs: Any) -> Any:
        shared = self.__dict__.setdefault("shared_", np.random.default_rng(0))
        return super().simulator_window(window, [shared] * len(rngs))


def test_a_generator_that_gives_agents_different_paths_is_caught() -> None:
    gen = SharedStreamGenerator(history=5).fit(SPLIT.part(PANEL, "train"))
    with pytest.raises(DataValidationError, match="different returns on path"):
        backtest([EqualWeight(), BuyAndHold()], PANEL, {"bad": gen}, _config(n_paths=2, bootstrap_reps=0))


def test_a_ruined_path_is_scored_flat_after_ruin() -> None:
    H = 5
    net = np.array([[0.01, -0.5], [0.02, -0.98], [0.0, 0.3], [0.01, 0.1], [-0.01, 0.2]])
    alive = np.ones((H, 2), dtype=bool)
    alive[2:, 1] = False  # path 1 ruined on day 2, then auto-reset (its later rows are ignored)
    wealth = np.cumprod(1.0 + net, axis=0)
    run = PathRun(net, np.zeros((H, 2)), np.zeros((H, 2)), wealth, alive, np.array([False, True]), [None] * H, None, [1, 2], ["a", "b"])
    np.testing.assert_allclose(run.final_wealth(), [wealth[-1, 0], 0.5 * 0.02])
    m = run.path_metrics(1)
    assert m["n_periods"] == H and m["terminal_wealth"] == pytest.approx(0.01)
    assert m["accumulated_return"] == pytest.approx(0.01 - 1.0)
    np.testing.assert_array_equal(run.returns(1), [-0.5, -0.98])


# =========================================================================== baselines
def test_equal_weight_is_added_and_rebalances_to_one_over_n(result: Any) -> None:
    assert result.added_reference and result.reference == "equal_weight"
    assert result.agent_names.count("equal_weight") == 1
    w = result.weights("equal_weight")
    np.testing.assert_allclose(w[list(PANEL.assets)].to_numpy(), 1.0 / N)
    d = result.daily("equal_weight")
    assert d["turnover"].iloc[0] == pytest.approx(1.0)
    assert (d["turnover"].iloc[1:] > 0).all()  # drift is traded back every day
    given = backtest([EqualWeight(), BuyAndHold(cost_model=COSTS)], PANEL, None, _config(n_paths=0, bootstrap_reps=0))
    assert not given.added_reference and given.agent_names == ["equal_weight", "buy_and_hold"]


def test_buy_and_hold_trades_only_on_day_one(result: Any) -> None:
    d = result.daily("bh")
    assert 0.99 < d["turnover"].iloc[0] <= 1.0
    assert (d["turnover"].iloc[1:] == 0.0).all()
    assert (d["cost"].iloc[1:] == 0.0).all()
    sp = result.synthetic_paths[result.synthetic_paths["agent"] == "bh"]
    np.testing.assert_allclose(sp["total_turnover"], d["turnover"].iloc[0], rtol=1e-12)


def test_benchmark_row_is_the_index_over_the_test_days(result: Any) -> None:
    row = result.summary.loc["SP500 (index)"]
    ref = market_metrics(PANEL, dates=PANEL.dates[VAL_END_ROW + 1 :])
    for k in ("sharpe", "annualised_return", "max_drawdown"):
        assert row[k] == pytest.approx(ref[k], rel=1e-12)
    assert row["total_turnover"] == 0.0
    np.testing.assert_allclose(result.benchmark.to_numpy(), PANEL.exog["SP500"].to_numpy()[VAL_END_ROW + 1 :])


# =========================================================================== bootstrap
def test_bootstrap_intervals_contain_the_estimate_and_are_reproducible(result: Any) -> None:
    b = result.bootstrap
    rows = b[b["statistic"].isin(["sharpe", "annualised_return", "annualised_volatility"]) & (b["agent"] != "rec_cash")]
    assert len(rows) == 3 * 5  # bh, mv, rec_invest, equal_weight, the index
    for _, r in rows.iterrows():
        assert r["lower"] <= r["estimate"] <= r["upper"], r.to_dict()
        assert r["block_length"] >= 1.0
    # an all-cash agent has no Sharpe ratio and no interval, but no crash either
    cash = b[(b["agent"] == "rec_cash") & (b["statistic"] == "sharpe")].iloc[0]
    assert np.isnan(cash["estimate"]) and np.isnan(cash["lower"])
    x = result.daily("bh")["net_return"].to_numpy()
    ref = result.daily("equal_weight")["net_return"].to_numpy()
    one = bootstrap_intervals(x, ref, reps=300, seed=11)
    two = bootstrap_intervals(x, ref, reps=300, seed=11)
    other = bootstrap_intervals(x, ref, reps=300, seed=12)
    pd.testing.assert_frame_equal(one, two)
    assert not np.allclose(one["lower"], other["lower"])
    assert one.loc["sharpe", "estimate"] == pytest.approx(M.sharpe_ratio(x))
    assert one.loc["sharpe_minus_ew", "estimate"] == pytest.approx(M.sharpe_ratio(x) - M.sharpe_ratio(ref))
    # wider at a higher level
    hi = bootstrap_intervals(x, reps=300, seed=11, confidence=0.99)
    assert hi.loc["sharpe", "upper"] - hi.loc["sharpe", "lower"] >= one.loc["sharpe", "upper"] - one.loc["sharpe", "lower"]


def test_an_agents_interval_does_not_depend_on_the_other_agents(result: Any) -> None:
    alone = backtest([BacktestAgent("bh", BuyAndHold(cost_model=COSTS))], PANEL, None, _config(n_paths=0))
    a = alone.bootstrap[alone.bootstrap["agent"] == "bh"].reset_index(drop=True)
    b = result.bootstrap[result.bootstrap["agent"] == "bh"].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


# =========================================================================== spec grammar
def test_parse_agent_spec_grammar() -> None:
    s = parse_agent_spec("mv:ledoit_wolf,gamma=50,window=126,label=my mv")
    assert s == AgentSpec("mv", "ledoit_wolf", {"gamma": 50, "window": 126, "label": "my mv"}, "mv:ledoit_wolf,gamma=50,window=126,label=my mv")
    assert s.label == "my mv" and not s.uses_run
    assert parse_agent_spec("equal_weight").label == "equal_weight"
    assert parse_agent_spec("Buy-And-Hold").kind == "buy_and_hold"
    r = parse_agent_spec("cvar:runs/neuralfactors,n_scenarios=200,cost_aware=false")
    assert r.uses_run and r.label == "cvar:gen:neuralfactors" and r.options == {"n_scenarios": 200, "cost_aware": False}
    assert parse_agent_spec("sb3:runs/ppo/agent.zip").label == "sb3:agent"
    assert parse_agent_spec("mv:./ledoit_wolf").uses_run
    for bad in ("", "momentum", "mv", "sb3", "equal_weight:x", "mv:sample,gamma", "mv:sample,alpha=0.9", "buy_and_hold,window=3"):
        with pytest.raises(DataValidationError):
            parse_agent_spec(bad)


def test_agent_from_spec_solves_the_runs_problem() -> None:
    a, _ = agent_from_spec("mv:ledoit_wolf,gamma=50,window=60", cost_model=COSTS, constraints=CONS, risk_free=1e-4)
    p = a.policy
    assert isinstance(p, MeanVariance) and p.gamma == 50.0 and a.window == 60
    assert p.cost_model_ == COSTS and p.risk_free == 1e-4
    assert p.constraints_ == replace(CONS, budget=(1.0, 1.0))  # fully invested unless invested=false
    cash_ok, _ = agent_from_spec("mv:ledoit_wolf,invested=false", cost_model=COSTS, constraints=CONS)
    assert cash_ok.policy.constraints_ == CONS
    assert isinstance(p.source, HistoricalSource) and (p.source.mean, p.source.covariance) == ("sample", "ledoit_wolf")
    m, _ = agent_from_spec("minvar:sample", cost_model=COSTS, constraints=CONS)
    assert isinstance(m.policy, MinVariance) and m.policy.constraints_.budget == (1.0, 1.0)
    assert m.window == 252 and m.policy.source.covariance == "sample"
    c, _ = agent_from_spec("cvar:historical,alpha=0.9,risk_aversion=0.01")
    assert isinstance(c.policy, MeanCVaR) and c.policy.alpha == 0.9 and c.policy.constraints_.budget == (1.0, 1.0)
    b, _ = agent_from_spec("buy_and_hold", cost_model=COSTS)
    assert isinstance(b.policy, BuyAndHold) and b.policy.cost_model == COSTS
    with pytest.raises(DataValidationError):
        agent_from_spec("mv:sample,gamma=-1")
    with pytest.raises(DataValidationError):
        agent_from_spec("mv:sample,window=oops")
    with pytest.raises(FactorGymError):
        agent_from_spec("cvar:/nonexistent/run")


@pytest.fixture(scope="module")
def lw_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("runs") / "lw"
    spec = RunSpec(kind="ledoit_wolf", dataset="toy", train_end=SPLIT.train_end, val_end=SPLIT.val_end, params={"window": 21})
    fit_run(spec, out, panel=PANEL, progress=False)
    return out


def test_agent_from_spec_with_a_generator_run(lw_run: Any) -> None:
    a, _ = agent_from_spec(f"cvar:{lw_run},n_scenarios=50,risk_aversion=0.05")
    assert isinstance(a.policy.source, GeneratorSource) and a.policy.source.n_scenarios == 50
    assert a.window == a.policy.source.generator.min_history
    assert a.trained_on == "generator:lw" and a.training_end == SPLIT.val_end
    assert a.name == "cvar:gen:lw"


def test_training_data_after_the_test_start_is_rejected(lw_run: Any) -> None:
    early = Split(SPLIT.train_end, str(PANEL.dates[200].date()))
    with pytest.raises(DataValidationError, match="out of sample"):
        backtest_cli(["equal_weight"], [lw_run], dataset=PANEL, val_end=early.val_end, train_end=early.train_end, n_paths=1, report=False, progress=False, out=lw_run.parent / "x")
    late = BacktestAgent("late", EqualWeight(), training_end=str(PANEL.dates[VAL_END_ROW + 5].date()))
    with pytest.raises(DataValidationError, match="out of sample"):
        backtest([late], PANEL, None, _config(n_paths=0))


# =========================================================================== adapters and errors
class LogitPolicy:
    """An SB3-like policy: fixed logits favouring asset 0 (batched predict)."""

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True) -> tuple[np.ndarray, Any]:
        r = np.asarray(observation["returns"])
        logits = np.zeros(r.shape[:-2] + (r.shape[-1] + 1,), dtype=np.float32)
        logits[..., 0] = 1.0
        return logits, state


def test_sb3_adapter_keeps_observation_settings_and_replaces_accounting() -> None:
    agent, notes = sb3_agent(
        LogitPolicy(), {"window": 5, "action_mode": "softmax", "temperature": 0.5, "cost_model": CostModel(0, 0), "reward": "log"},
        name="ppo", trained_on="generator:ar",
    )
    assert agent.window == 5 and agent.action_mode == "softmax" and agent.obs_kwargs == {"temperature": 0.5}
    assert any("replaced" in n for n in notes)
    res = backtest([agent], PANEL, None, _config(n_paths=0, bootstrap_reps=0))
    w = res.weights("ppo")
    expect = np.exp(np.array([1.0] + [0.0] * N) / 0.5)
    expect /= expect.sum()
    np.testing.assert_allclose(w.iloc[0].to_numpy(), np.r_[expect[:N], expect[N]], atol=1e-7)
    assert res.summary.loc["ppo", "total_costs"] > 0  # charged the run's costs, not its zero training costs


def test_sb3_adapter_keeps_the_trading_rules_the_policy_was_trained_with() -> None:
    """trade_rate is part of how the agent trades: a backtest that dropped it would trade a
    partial-adjustment policy all the way to its target every day."""
    kw = {"window": 5, "action_mode": "softmax", "temperature": 0.5}
    smooth, _ = sb3_agent(LogitPolicy(), {**kw, "trade_rate": 0.5, "no_trade_band": 0.01}, name="smooth")
    plain, _ = sb3_agent(LogitPolicy(), kw, name="plain")
    assert smooth.obs_kwargs == {"temperature": 0.5, "trade_rate": 0.5, "no_trade_band": 0.01}
    res = backtest([smooth, plain], PANEL, None, _config(n_paths=0, bootstrap_reps=0))
    first_smooth, first_plain = res.weights("smooth").iloc[0].to_numpy(), res.weights("plain").iloc[0].to_numpy()
    np.testing.assert_allclose(first_smooth[:N], 0.5 * first_plain[:N], atol=1e-12)  # half way from an all-cash book


def test_errors_are_clear() -> None:
    with pytest.raises(DataValidationError, match="unique"):
        backtest([EqualWeight(), EqualWeight()], PANEL, None, _config(n_paths=0))
    with pytest.raises(DataValidationError, match="empty"):
        held_out_rows(PANEL, Split(SPLIT.train_end, str(PANEL.dates[-1].date())))
    with pytest.raises(DataValidationError):
        BacktestConfig(confidence=1.5)
    with pytest.raises(DataValidationError, match="predict"):
        BacktestAgent("x", object())  # type: ignore[arg-type]


# =========================================================================== CLI outputs
def test_backtest_cli_writes_tables_series_json_and_report(lw_run: Any, tmp_path: Any) -> None:
    out = tmp_path / "bt"
    res = backtest_cli(
        ["buy_and_hold", "mv:sample,window=20,gamma=10,label=mv <20d>"], [lw_run], dataset=PANEL,
        train_end=SPLIT.train_end, val_end=SPLIT.val_end, n_paths=2, horizon=15, seed=3, bootstrap_reps=50,
        buy_bps=10, sell_bps=20, out=out, progress=False,
    )
    assert res.config.cost_model == CostModel(buy=1e-3, sell=2e-3)
    for f in ("summary_real.csv", "summary_real.md", "bootstrap_real.csv", "synthetic_summary.csv", "synthetic_paths.csv",
              "sim_to_real_gap.csv", "backtest.json", "report.html", "daily/buy_and_hold.csv", "daily/benchmark.csv"):
        assert (out / f).is_file(), f
    summary = pd.read_csv(out / "summary_real.csv", index_col=0)
    assert list(summary.index) == ["buy_and_hold", "mv <20d>", "equal_weight", "SP500 (index)"]
    daily = pd.read_csv(out / "daily" / "mv_20d.csv", index_col=0, parse_dates=True)
    assert {"wealth", "net_return", "cost", "turnover", "w_cash", *(f"w_{a}" for a in PANEL.assets)} <= set(daily.columns)
    assert len(daily) == N_TEST
    meta = json.loads((out / "backtest.json").read_text())
    assert meta["start_date"] == str(PANEL.dates[VAL_END_ROW].date()) and meta["generators"] == ["lw"]
    assert meta["added_reference"] is True
    paths = pd.read_csv(out / "synthetic_paths.csv")
    assert set(paths["days"]) == {15} and len(paths) == 2 * 3
    html = (out / "report.html").read_text()
    assert "mv &lt;20d&gt;" in html and "mv <20d>" not in html  # escaped
    assert "Synthetic-to-real gap" in html and "<table" in html
    assert html.count('class="plot"') >= 4 and "Plotly.newPlot" in html  # interactive figures, plotly.js embedded
    assert "terminal wealth is not comparable" in " ".join(res.notes)


def test_shared_prediction_cache_answers_the_real_path_and_changes_nothing(lw_run: Any) -> None:
    specs = [f"mv:{lw_run},gamma=20", f"cvar:{lw_run},n_scenarios=50,risk_aversion=0.05"]
    loaded: dict[str, Any] = {}
    shared = [agent_from_spec(s, cost_model=COSTS, constraints=CONS, loaded=loaded)[0] for s in specs]
    assert len(loaded) == 1
    cache = shared[0].policy.source.cache
    assert cache is shared[1].policy.source.cache and cache.generator is shared[1].policy.source.generator
    res = backtest(shared, PANEL, None, _config(n_paths=0))
    # every real-path window was predicted in the batched prefetch: no lookup missed
    assert cache.misses == 0 and cache.hits == 2 * N_TEST and len(cache) == N_TEST
    alone = [agent_from_spec(s, cost_model=COSTS, constraints=CONS)[0] for s in specs]
    for a in alone:
        a.policy.source.cache = None
    ref = backtest(alone, PANEL, None, _config(n_paths=0))
    for a in specs:
        name = shared[specs.index(a)].name
        np.testing.assert_array_equal(res.real[name].net_return, ref.real[name].net_return)


# =========================================================================== units
def test_sharpe_uses_the_daily_cash_rate(lw_run: Any, tmp_path: Any) -> None:
    """One unit for the cash rate: daily in BacktestConfig, the environment and the metrics;
    annual only on the command line (converted once). The reported Sharpe ratio is the one
    of the daily net returns in excess of the daily rate (wrong if any side used the annual
    figure, or converted the daily rate again)."""
    rf = 2e-4  # per day, about 5.2% a year
    agents = [BacktestAgent("bh", BuyAndHold(cost_model=COSTS)), EqualWeight()]
    res = backtest(agents, PANEL, None, _config(n_paths=0, bootstrap_reps=50, risk_free=rf))
    zero = backtest(agents, PANEL, None, _config(n_paths=0, bootstrap_reps=50))
    for name in ("bh", "equal_weight"):
        r = res.daily(name)["net_return"].to_numpy()
        by_hand = (r - rf).mean() / r.std(ddof=1) * np.sqrt(252)
        assert res.summary.loc[name, "sharpe"] == pytest.approx(by_hand, rel=1e-12)
        boot = res.bootstrap[(res.bootstrap["agent"] == name) & (res.bootstrap["statistic"] == "sharpe")]
        assert boot["estimate"].iloc[0] == pytest.approx(by_hand, rel=1e-12)
        assert abs(res.summary.loc[name, "sharpe"] - zero.summary.loc[name, "sharpe"]) > 0.01
    b = res.benchmark.to_numpy()  # the index row is scored alike
    assert res.summary.loc["SP500 (index)", "sharpe"] == pytest.approx((b - rf).mean() / b.std(ddof=1) * np.sqrt(252), rel=1e-12)
    # the command line takes the annual rate and books its daily equivalent
    annual = 0.05
    cli = backtest_cli(
        ["buy_and_hold"], dataset=PANEL, train_end=SPLIT.train_end, val_end=SPLIT.val_end, n_paths=0, bootstrap_reps=0,
        risk_free=annual, out=tmp_path / "rf", progress=False, report=False,
    )
    daily = (1.0 + annual) ** (1.0 / 252) - 1.0
    assert cli.config.risk_free == pytest.approx(daily, rel=1e-12)
    r = cli.daily("buy_and_hold")["net_return"].to_numpy()
    assert cli.summary.loc["buy_and_hold", "sharpe"] == pytest.approx((r - daily).mean() / r.std(ddof=1) * np.sqrt(252), rel=1e-12)


# =========================================================================== inference columns
def test_hac_deflated_sharpe_and_mcs_columns_follow_from_the_agents_run(result: Any) -> None:
    """The real-path summary carries the HAC Sharpe difference to 1/N, the probabilistic and
    deflated Sharpe ratios with the trials counted from the run's agents, and MCS membership."""
    s = result.summary
    names = result.agent_names
    ref_r = result.real[result.reference].returns(0)
    for name in names:
        r = result.real[name].returns(0)
        if name != result.reference:
            t = M.sharpe_difference_test(r, ref_r, risk_free=0.0)
            assert s.loc[name, "sharpe_minus_ew_hac_se"] == pytest.approx(t.std_error, rel=1e-12, nan_ok=True)
            assert s.loc[name, "sharpe_minus_ew_hac_pvalue"] == pytest.approx(t.pvalue, rel=1e-12, nan_ok=True)
            boot = result.bootstrap[(result.bootstrap["agent"] == name) & (result.bootstrap["statistic"] == "sharpe_minus_ew")]
            assert s.loc[name, "sharpe_minus_ew_boot_se"] == pytest.approx(boot["std_error"].iloc[0], nan_ok=True)
    assert np.isfinite(s.loc["bh", "sharpe_minus_ew_hac_pvalue"]) and np.isnan(s.loc["rec_cash", "sharpe_minus_ew_hac_se"])
    assert np.isnan(s.loc[result.reference, "sharpe_minus_ew_hac_se"])
    # trials = the run's agents (1/N included), never the index row
    tab = M.sharpe_inference(np.column_stack([result.real[n].returns(0) for n in names]), names=names)
    finite = int(np.isfinite(tab["sharpe"]).sum())
    assert (s.loc[names, "n_trials"] == finite).all() and finite == len(names) - 1  # rec_cash has no Sharpe ratio
    np.testing.assert_allclose(s.loc[names, "deflated_sharpe"], tab["deflated_sharpe"], rtol=1e-12)
    np.testing.assert_allclose(s.loc[names, "psr"], tab["psr"], rtol=1e-12)
    bench = result.benchmark_label
    assert np.isfinite(s.loc[bench, "psr"]) and np.isnan(s.loc[bench, "deflated_sharpe"]) and np.isnan(s.loc[bench, "in_mcs_90"])
    assert set(s.loc[names, "in_mcs_90"]) <= {0.0, 1.0} and s.loc[names, "in_mcs_90"].sum() >= 1
    assert ((s.loc[names, "mcs_pvalue"] >= 0.10) == (s.loc[names, "in_mcs_90"] == 1.0)).all()
    # the identical twins 1/N and rec_invest share one MCS verdict
    assert s.loc["rec_invest", "mcs_pvalue"] == s.loc[result.reference, "mcs_pvalue"]


def test_more_agents_tried_raise_the_deflated_sharpe_bar() -> None:
    few = [BacktestAgent("bh", BuyAndHold(cost_model=COSTS)), EqualWeight()]
    more = [*few, agent_from_spec("mv:sample,window=30,gamma=5", cost_model=COSTS, constraints=CONS)[0],
            agent_from_spec("mv:ledoit_wolf,window=60,gamma=50", cost_model=COSTS, constraints=CONS)[0]]  # fmt: skip
    a = backtest(few, PANEL, None, _config(n_paths=0, bootstrap_reps=50)).summary
    b = backtest(more, PANEL, None, _config(n_paths=0, bootstrap_reps=50)).summary
    assert a.loc["bh", "n_trials"] == 2 and b.loc["bh", "n_trials"] == 4
    assert a.loc["bh", "psr"] == b.loc["bh", "psr"]  # the probabilistic ratio ignores the other trials
    assert a.loc["bh", "deflated_sharpe"] != b.loc["bh", "deflated_sharpe"]


# =========================================================================== cost sensitivity
def test_cost_sensitivity_reruns_agents_that_plan_with_the_scaled_costs() -> None:
    mv = agent_from_spec("mv:ledoit_wolf,window=30,gamma=5", cost_model=COSTS, constraints=CONS)[0]
    agents = [BacktestAgent("bh", BuyAndHold(cost_model=COSTS)), mv, EqualWeight()]
    res = backtest(agents, PANEL, None, _config(n_paths=0, bootstrap_reps=0, cost_multipliers=(5, 0, 1, 2)))
    cs = res.cost_sensitivity
    assert res.config.cost_multipliers == (0.0, 1.0, 2.0, 5.0)
    assert list(cs.columns) == [*(f"sharpe_cost_{m}x" for m in (0, 1, 2, 5)), *(f"annualised_return_cost_{m}x" for m in (0, 1, 2, 5)),
                                "break_even_multiplier", "break_even_cost_bps"]  # fmt: skip
    for name in res.agent_names:
        assert cs.loc[name, "sharpe_cost_1x"] == res.summary.loc[name, "sharpe"]
        assert cs.loc[name, "annualised_return_cost_1x"] == res.summary.loc[name, "annualised_return"]
    ew = cs.loc["equal_weight", [f"sharpe_cost_{m}x" for m in (0, 1, 2, 5)]].to_numpy()
    assert (np.diff(ew) < 0).all()  # 1/N trades every day: each multiple of the costs costs it
    assert mv.policy.cost_model == COSTS  # the planning costs are restored after the re-runs
    # 0x is a real re-run: the optimizer plans without costs (re-pricing its 1x trades would not)
    free = CostModel(0.0, 0.0, 0.0)
    mv0 = agent_from_spec("mv:ledoit_wolf,window=30,gamma=5", cost_model=free, constraints=CONS)[0]
    zero = backtest([BacktestAgent("bh", BuyAndHold(cost_model=free)), mv0, EqualWeight()], PANEL, None,
                    _config(n_paths=0, bootstrap_reps=0, cost_model=free))  # fmt: skip
    for name in res.agent_names:
        assert cs.loc[name, "sharpe_cost_0x"] == pytest.approx(zero.summary.loc[name, "sharpe"], rel=1e-12)
    gross = res.daily(mv.name)["net_return"] + res.daily(mv.name)["cost"]  # the 1x trades, re-priced at 0x
    assert abs(float(M.sharpe_ratio(gross.to_numpy())) - cs.loc[mv.name, "sharpe_cost_0x"]) > 1e-6
    # break-even: at the reported multiplier the agent and 1/N have the same Sharpe ratio
    be = cs.loc[mv.name, "break_even_multiplier"]
    if 0.0 < be < 5.0:
        at = backtest([agent_from_spec("mv:ledoit_wolf,window=30,gamma=5", cost_model=scaled(COSTS, be), constraints=CONS)[0],
                       EqualWeight()], PANEL, None, _config(n_paths=0, bootstrap_reps=0, cost_model=scaled(COSTS, be))).summary  # fmt: skip
        assert abs(at.loc[mv.name, "sharpe"] - at.loc["equal_weight", "sharpe"]) < 0.05
    assert np.isnan(cs.loc["equal_weight", "break_even_multiplier"])


def scaled(cm: CostModel, m: float) -> CostModel:
    return CostModel(buy=cm.buy * m, sell=cm.sell * m, impact=cm.impact * m)


def test_break_even_is_solved_on_the_multiplier() -> None:
    from factorgym.app.backtest.sensitivity import cost_sensitivity_table

    lines = {"ew": (0.5, -0.1), "cross": (1.0, -0.3), "always": (2.0, 0.0), "never": (0.2, -0.1)}
    calls: list[tuple[str, float]] = []

    def metrics_at(name: str, m: float) -> tuple[float, float]:
        calls.append((name, m))
        a, b = lines[name]
        return a + b * m, 0.1 * (a + b * m)

    tab = cost_sensitivity_table(list(lines), "ew", metrics_at, (0, 1, 2, 5), CostModel(buy=1e-3, sell=3e-3))
    assert tab.loc["cross", "break_even_multiplier"] == pytest.approx(2.5, abs=0.01)  # 1 - 0.3 m = 0.5 - 0.1 m
    assert tab.loc["cross", "break_even_cost_bps"] == pytest.approx(2.5 * 20.0, abs=0.2)  # mean of 10 and 30 bps
    assert any(m not in (0, 1, 2, 5) for _, m in calls)  # refined between 2 and 5 by re-running
    assert tab.loc["always", "break_even_multiplier"] == math.inf
    assert tab.loc["never", "break_even_multiplier"] == 0.0  # does not beat 1/N even without costs
    assert tab.loc["cross", "sharpe_cost_5x"] == pytest.approx(-0.5)


def test_cost_multipliers_are_checked() -> None:
    with pytest.raises(DataValidationError, match="cost multipliers"):
        _config(cost_multipliers=(0, -1))
    with pytest.raises(DataValidationError, match="distinct"):
        _config(cost_multipliers=(1, 1.0))
    from factorgym.app.cli.backtest import parse_multipliers

    assert parse_multipliers("0, 1,2,5") == (0.0, 1.0, 2.0, 5.0) and parse_multipliers("") == ()
    with pytest.raises(DataValidationError, match="'x'"):
        parse_multipliers("0,x")


# =========================================================================== output folder
def _snapshot(folder: Any) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_smaller_rerun_replaces_the_whole_output_folder(tmp_path: Any) -> None:
    out = tmp_path / "bt"
    kw: dict[str, Any] = {"dataset": PANEL, "train_end": SPLIT.train_end, "val_end": SPLIT.val_end, "n_paths": 0,
                          "bootstrap_reps": 0, "out": out, "progress": False}  # fmt: skip
    backtest_cli(["buy_and_hold", "mv:sample,window=20,gamma=10"], report=True, **kw)
    before = set(_snapshot(out))
    assert {"daily/mv_sample.csv", "report.html"} <= before
    backtest_cli(["buy_and_hold"], report=False, **kw)
    after = set(_snapshot(out))
    assert after == {"summary_real.csv", "summary_real.md", "bootstrap_real.csv", "backtest.json",
                     "daily/buy_and_hold.csv", "daily/equal_weight.csv", "daily/benchmark.csv"}  # fmt: skip
    assert before - after >= {"report.html"} and len(before) > len(after)
    assert list(pd.read_csv(out / "summary_real.csv", index_col=0).index) == ["buy_and_hold", "equal_weight", "SP500 (index)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bt"]  # no temporary folders left


def test_a_run_that_fails_while_writing_leaves_the_old_result_intact(tmp_path: Any, monkeypatch: Any) -> None:
    from factorgym.app.backtest import BacktestResult

    out = tmp_path / "bt"
    kw: dict[str, Any] = {"dataset": PANEL, "train_end": SPLIT.train_end, "val_end": SPLIT.val_end, "n_paths": 0,
                          "bootstrap_reps": 0, "out": out, "progress": False}  # fmt: skip
    backtest_cli(["buy_and_hold", "mv:sample,window=20,gamma=10"], report=False, **kw)
    old = _snapshot(out)

    def broken(self: Any, *a: Any, **k: Any) -> Any:
        raise RuntimeError("disk full while writing the report")

    monkeypatch.setattr(BacktestResult, "to_report", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        backtest_cli(["equal_weight"], report=True, **kw)  # tables and daily files were written before it failed
    assert _snapshot(out) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bt"]


def test_a_foreign_output_folder_is_refused_before_anything_runs(tmp_path: Any, capsys: Any) -> None:
    from factorgym.app import cli

    (tmp_path / "notes.txt").write_text("mine")
    code = cli.main(["backtest", "equal_weight", "--dataset", "nonexistent.csv", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "not a backtest's output" in err and "Traceback" not in err  # refused before reading the data
    assert _snapshot(tmp_path) == {"notes.txt": b"mine"}
    code = cli.main(["backtest", "equal_weight", "--cost-multipliers", "0,two", "--out", str(tmp_path / "new")])
    assert code == 2 and "'two'" in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_backtest_help_explains_every_new_column(capsys: Any, monkeypatch: Any) -> None:
    from factorgym.app import cli
    from factorgym.app.backtest.sensitivity import COST_COLUMNS
    from factorgym.app.backtest.statistics import INFERENCE_COLUMNS

    monkeypatch.setenv("COLUMNS", "400")
    cli.main(["backtest", "--help"])
    text = capsys.readouterr().out
    for key in [*INFERENCE_COLUMNS, *COST_COLUMNS]:
        line = next((ln for ln in text.splitlines() if f" {key}: " in ln), None)
        assert line is not None, key
        assert len(line.split(f"{key}: ", 1)[1].strip()) > 20
    assert "--cost-multipliers" in text


def test_report_shows_the_inference_and_cost_tables_with_human_labels(tmp_path: Any) -> None:
    from factorgym.app.backtest.report import report_from_folder

    mv = agent_from_spec("mv:ledoit_wolf,window=30,gamma=5", cost_model=COSTS, constraints=CONS)[0]
    res = backtest([mv, EqualWeight()], PANEL, None, _config(n_paths=0, bootstrap_reps=50, cost_multipliers=(0, 1, 2)))
    out = tmp_path / "bt"
    res.save(out)
    page = (out / "report.html").read_text()
    for text in ("Multiple testing and dependence", "p-value: same Sharpe as 1/N (HAC)", "Deflated Sharpe (prob.)",
                 "In 90% MCS", "Cost sensitivity", "Sharpe (ann.) at 2× costs", "Break-even cost (bps)"):  # fmt: skip
        assert html.escape(text) in page, text
    for code in ("sharpe_minus_ew_hac_pvalue", "deflated_sharpe", "break_even_cost_bps"):
        assert f">{code}<" not in page  # no code names as headers
    rebuilt = report_from_folder(out).to_html()
    assert "Cost sensitivity" in rebuilt and html.escape("In 90% MCS") in rebuilt


def test_execution_lag_delays_every_agents_trades_and_is_recorded(tmp_path: Any) -> None:
    lag0 = backtest([EqualWeight()], PANEL, None, _config(n_paths=0, bootstrap_reps=0))
    lag1 = backtest([EqualWeight()], PANEL, None, _config(n_paths=0, bootstrap_reps=0, execution_lag=1))
    d0, d1 = lag0.daily("equal_weight"), lag1.daily("equal_weight")
    assert d0["net_return"].iloc[0] != 0.0
    assert d1["net_return"].iloc[0] == 0.0 and d1["cost"].iloc[0] == 0.0  # day 1 still holds the all-cash start
    assert d1["cost"].iloc[1] > 0.0  # the first decision trades one close later
    assert not np.allclose(d0["net_return"].to_numpy()[1:], d1["net_return"].to_numpy()[1:])
    lag1.save(tmp_path / "bt")
    assert json.loads((tmp_path / "bt" / "backtest.json").read_text())["config"]["execution_lag"] == 1
    assert "trade 1 day(s) later" in html.unescape((tmp_path / "bt" / "report.html").read_text())
    for bad in (-1, 1.5, True):
        with pytest.raises(DataValidationError, match="execution_lag"):
            _config(execution_lag=bad)

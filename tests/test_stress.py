"""Stress scenarios: factor shocks, volatility regimes, crisis contexts, replay, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from factorgym.data import Split, synthetic_factor_panel
from factorgym.errors import CheckpointError, DataValidationError
from factorgym.generators.neuralfactors.generator import NeuralFactorsPredictive
from factorgym.generators.stress import (
    StressSpec,
    generate,
    loss_summary,
    market_factor,
    portfolio_path_returns,
    read_scenarios,
    realised_comparison,
    regenerate,
)


class _FactorGenerator:
    """A fixed NeuralFactors-style predictive behind the two methods stress needs."""

    min_history = 5

    def __init__(self, n: int = 6, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        beta = np.column_stack([rng.normal(0.3, 0.3, n), -rng.uniform(0.8, 1.2, n)])  # market is factor 1, inverted
        self.pred = NeuralFactorsPredictive(
            alpha=np.full(n, 1e-4), beta=beta, sigma=np.full(n, 0.01), nu=np.full(n, 6.0),
            prior_scale=np.array([0.01, 0.01]), prior_dof=np.array([5.0, 5.0]),
        )

    def predict_window(self, window: np.ndarray) -> NeuralFactorsPredictive:
        return self.pred


@pytest.fixture(scope="module")
def panel():
    return synthetic_factor_panel(T=400, N=6, F=2, seed=3, n_is_samples=64).panel


def test_market_factor_picks_largest_equal_weight_exposure() -> None:
    beta = np.array([[0.1, -1.0], [0.2, -0.9], [-0.1, -1.1]])
    f, sign = market_factor(beta)
    assert f == 1 and sign == -1.0


def test_factor_shock_quantile_conditions_the_market_factor(panel) -> None:
    gen = _FactorGenerator()
    spec = StressSpec("factor_shock", run="unused", date=str(panel.dates[100].date()), n_scenarios=500, quantile=0.05, seed=1)
    s = generate(spec, generator=gen, panel=panel)
    assert s.paths.shape == (500, 1, 6) and s.info["factor"] == 1
    ew = s.paths[:, 0].mean(axis=1)
    base = gen.pred.sample(20000, np.random.default_rng(9)).mean(axis=1)
    # the conditioned equal-weight returns sit in the lower tail of the unconditional ones
    assert np.median(ew) < np.quantile(base, 0.10)
    assert np.mean(ew < np.quantile(base, 0.5)) > 0.95


def test_factor_shock_shift_moves_the_mean_by_the_stated_amount(panel) -> None:
    gen = _FactorGenerator()
    spec = StressSpec("factor_shock", run="unused", date=str(panel.dates[100].date()), n_scenarios=4000, quantile=None, shift_sd=-3.0, seed=2)
    s = generate(spec, generator=gen, panel=panel)
    f, sign = market_factor(gen.pred.beta)
    sd = np.sqrt(np.diag(gen.pred.factor_cov())[f])
    expected_shift = gen.pred.beta[:, f] * sign * -3.0 * sd  # (N,)
    got = s.paths[:, 0].mean(axis=0) - gen.pred.mean()
    se = np.sqrt(np.diag(gen.pred.cov()) / 4000)
    assert np.all(np.abs(got - expected_shift) < 5 * se)
    assert (expected_shift.mean()) < 0  # a market fall


def test_factor_shock_filter_for_generators_without_latent_factors(panel) -> None:
    from helpers_generators import GaussianTestGenerator

    gen = GaussianTestGenerator().fit(panel, Split.by_fraction(panel.dates))
    spec = StressSpec("factor_shock", run="unused", date=str(panel.dates[300].date()), n_scenarios=200, quantile=0.02, seed=0)
    s = generate(spec, generator=gen, panel=panel)
    assert s.info["method"].startswith("filter")
    assert np.all(s.paths[:, 0].mean(axis=1) <= s.info["threshold"] + 1e-15)
    with pytest.raises(DataValidationError, match="latent factors"):
        generate(StressSpec("factor_shock", run="x", date=spec.date, quantile=None, shift_sd=-2), generator=gen, panel=panel)


def test_vol_regime_scales_dispersion(panel) -> None:
    gen = _FactorGenerator()
    date = str(panel.dates[100].date())
    base = generate(StressSpec("vol_regime", run="u", date=date, n_scenarios=5000, vol_scale=1.0, seed=4), generator=gen, panel=panel)
    hot = generate(StressSpec("vol_regime", run="u", date=date, n_scenarios=5000, vol_scale=2.0, seed=4), generator=gen, panel=panel)
    ratio = hot.paths[:, 0].std(axis=0) / base.paths[:, 0].std(axis=0)
    np.testing.assert_allclose(ratio, 2.0, rtol=1e-9)  # same seed -> same base draws, exactly scaled


def test_crisis_paths_and_realised_comparison(panel) -> None:
    from helpers_generators import GaussianTestGenerator

    gen = GaussianTestGenerator().fit(panel, Split.by_fraction(panel.dates))
    spec = StressSpec("crisis", run="u", date=str(panel.dates[200].date()), horizon=10, n_scenarios=300, seed=5)
    s = generate(spec, generator=gen, panel=panel)
    assert s.paths.shape == (300, 10, 6) and s.context_date == str(panel.dates[200].date())
    cmp = realised_comparison(s, panel)
    assert 0.0 <= cmp["prob_return_at_most_realised"] <= 1.0
    real = np.prod(1 + panel.returns[201:211].mean(axis=1)) - 1
    assert cmp["realised_return"] == pytest.approx(real, rel=1e-12)


def test_portfolio_returns_and_loss_summary() -> None:
    paths = np.array([[[0.1, -0.1], [0.0, 0.0]], [[-0.2, 0.0], [0.1, 0.1]]])  # (S=2, H=2, N=2)
    w = np.array([0.5, 0.5])
    np.testing.assert_allclose(portfolio_path_returns(paths, w), [0.0, 0.9 * 1.1 - 1])
    np.testing.assert_allclose(portfolio_path_returns(paths, w, rebalance=False), [0.0, 0.5 * 0.8 * 1.1 + 0.5 * 1.1 - 1])
    r = np.random.default_rng(0).normal(0, 0.01, 1000)
    out = loss_summary(r)
    assert out["ES95"] >= out["VaR95"] > 0 and out["ES99"] >= out["VaR99"] >= out["VaR95"]


def test_saved_set_round_trips_and_regenerates_exactly(tmp_path, panel, monkeypatch) -> None:
    gen = _FactorGenerator()
    spec = StressSpec("factor_shock", run="fake-run", dataset="synthetic", date=str(panel.dates[100].date()), n_scenarios=100, seed=7)
    s = generate(spec, generator=gen, panel=panel)
    p = s.save(tmp_path / "shock.parquet")
    assert (tmp_path / "shock.parquet.spec.json").is_file()
    back = read_scenarios(p)
    assert back.spec == spec and back.assets == s.assets
    np.testing.assert_array_equal(back.paths, s.paths)
    # regenerate from the stored specification alone (run and dataset resolved by name)
    import factorgym.generators.runs as runs
    import factorgym.io as fio

    monkeypatch.setattr(runs, "load_run", lambda path: (gen, None, "fake"))
    monkeypatch.setattr(fio, "load_source", lambda source: panel)
    again = regenerate(p)
    np.testing.assert_array_equal(again.paths, s.paths)


def test_bad_specs_and_files(tmp_path) -> None:
    with pytest.raises(DataValidationError, match="unknown stress kind"):
        StressSpec("meteor", run="r", date="2020-01-01")
    with pytest.raises(DataValidationError, match="exactly one"):
        StressSpec("factor_shock", run="r", date="2020-01-01", quantile=0.1, shift_sd=-2)
    with pytest.raises(DataValidationError, match="named window"):
        StressSpec("replay", window="dotcom")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(CheckpointError):
        read_scenarios(bad)


def test_replay_of_named_window() -> None:
    from factorgym.data import load_dataset

    sp = load_dataset("sp500")
    s = generate(StressSpec("replay", window="covid-2020"), panel=sp)
    assert s.paths.shape[0] == 1 and s.context_date == "2020-02-20"
    ew = portfolio_path_returns(s.paths, np.full(sp.N, 1 / sp.N))
    assert ew[0] < -0.25  # the equal-weight book fell by more than a quarter


def test_agents_run_through_scenario_paths_with_costs_and_no_look_ahead(panel) -> None:
    from factorgym.agents.baselines import EqualWeight
    from factorgym.app.backtest import BacktestAgent
    from factorgym.app.stress import stress_agents
    from factorgym.costs import CostModel
    from factorgym.generators.stress import ScenarioSet

    rng = np.random.default_rng(0)
    S, H, N = 40, 5, panel.N  # noqa: N806
    paths = rng.normal(-0.002, 0.02, size=(S, H, N))
    spec = StressSpec("crisis", run="unused", date=str(panel.dates[300].date()), horizon=H, n_scenarios=S)
    s = ScenarioSet(spec, tuple(panel.assets), paths, str(panel.dates[300].date()), {})
    cm = CostModel(buy=1e-3, sell=2e-3)
    res = stress_agents(s, ["equal_weight"], panel, cost_model=cm)["equal_weight"]
    frictionless = loss_summary(portfolio_path_returns(paths, np.full(N, 1.0 / N)))
    # the same paths, the same 1/N mix: losses differ only by the costs (buying in on day one, then rebalancing)
    assert res["n"] == S
    assert 0 < frictionless["mean_return"] - res["mean_return"] < 3e-3
    assert res["VaR95"] == pytest.approx(frictionless["VaR95"], abs=3e-3)
    assert res["ES99"] >= frictionless["ES99"] - 1e-12

    class Peek(EqualWeight):
        """Records the newest observed return row at each decision."""

        def act(self, returns, weights, env_index=0):
            self.seen_.append(np.array(returns[-1]))
            return super().act(returns, weights, env_index)

    peek = Peek()
    peek.seen_ = []
    stress_agents(s, [BacktestAgent("peek", peek, window=3)], panel, cost_model=cm)
    seen = np.array(peek.seen_).reshape(H, S, N)
    np.testing.assert_array_equal(seen[0, 0], panel.filled(0.0)[300])  # decides on the context day first
    np.testing.assert_array_equal(seen[1:], paths[:, : H - 1].transpose(1, 0, 2))  # then day k sees scenario day k only

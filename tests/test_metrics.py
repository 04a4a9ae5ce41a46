"""Tests of factorgym.metrics against independent implementations and closed forms.

Portfolio metrics are checked against ``skfolio.measures`` to 1e-8 on real sp500 series and
random series. Where conventions differ, the test converts explicitly:

* skfolio's drawdowns are negative and, by default, *uncompounded*; ours are positive
  fractions of compounded wealth -> compare with ``-get_drawdowns(r, compounded=True)``.
* skfolio's ``semi_deviation`` targets the sample mean with ``ddof=1`` by default; our
  Sortino downside deviation targets the risk-free rate over all T days -> compare with
  ``semi_deviation(r, min_acceptable_return=rf_d, biased=True)``.
* skfolio has no geometric annualised return / Calmar on compounded wealth -> built from its
  compounded cumulative returns and its max drawdown of compounded drawdowns.
* VaR / CVaR: same empirical (Rockafellar-Uryasev) convention, positive losses in both.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import skfolio.measures as skm
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from factorgym import metrics as M
from factorgym.data import load_dataset
from factorgym.errors import DataValidationError

TOL = 1e-8


@pytest.fixture(scope="module")
def sp500_series() -> dict[str, np.ndarray]:
    panel = load_dataset("sp500")
    r = panel.returns[-1500:]
    return {
        "equal_weight": r.mean(axis=1),
        "AAPL": r[:, panel.assets.index("AAPL")],
        "RRC": r[:, panel.assets.index("RRC")],  # large drawdowns
        "KO": r[:, panel.assets.index("KO")],
        "random": np.random.default_rng(3).normal(3e-4, 0.012, 777),
        "random_short": np.random.default_rng(4).standard_t(3, 100) * 0.01,
    }


SERIES = ["equal_weight", "AAPL", "RRC", "KO", "random", "random_short"]


# ====================================================================== portfolio vs skfolio


@pytest.mark.parametrize("key", SERIES)
def test_returns_and_volatility_match_skfolio(sp500_series: dict[str, np.ndarray], key: str) -> None:
    r = sp500_series[key]
    n = len(r)
    wealth = skm.get_cumulative_returns(r, compounded=True)[-1]
    assert M.accumulated_return(r) == pytest.approx(wealth - 1, abs=TOL, rel=TOL)
    assert M.annualised_return(r) == pytest.approx(wealth ** (252 / n) - 1, abs=TOL, rel=TOL)
    assert M.annualised_volatility(r) == pytest.approx(skm.standard_deviation(r) * math.sqrt(252), abs=TOL)
    assert M.annualised_volatility(r, periods_per_year=12) == pytest.approx(skm.standard_deviation(r) * math.sqrt(12), abs=TOL)


@pytest.mark.parametrize("key", SERIES)
@pytest.mark.parametrize("rf", [0.0, 0.03])
def test_sharpe_sortino_match_skfolio(sp500_series: dict[str, np.ndarray], key: str, rf: float) -> None:
    r = sp500_series[key]
    rf_d = (1 + rf) ** (1 / 252) - 1  # risk_free is per period: the annual rate as a daily one
    sharpe = (skm.mean(r) - rf_d) / skm.standard_deviation(r) * math.sqrt(252)
    dd = skm.semi_deviation(r, min_acceptable_return=rf_d, biased=True)
    sortino = (skm.mean(r) - rf_d) / dd * math.sqrt(252)
    assert M.sharpe_ratio(r, risk_free=rf_d) == pytest.approx(sharpe, abs=TOL, rel=TOL)
    assert M.sortino_ratio(r, risk_free=rf_d) == pytest.approx(sortino, abs=TOL, rel=TOL)


@pytest.mark.parametrize("key", SERIES)
def test_drawdowns_and_calmar_match_skfolio(sp500_series: dict[str, np.ndarray], key: str) -> None:
    r = sp500_series[key]
    sk_dd = skm.get_drawdowns(r, compounded=True)
    np.testing.assert_allclose(M.drawdown_series(r), -sk_dd, atol=TOL, rtol=0)
    mdd = skm.max_drawdown(sk_dd)
    assert M.max_drawdown(r) == pytest.approx(mdd, abs=TOL)
    wealth = skm.get_cumulative_returns(r, compounded=True)[-1]
    assert M.calmar_ratio(r) == pytest.approx((wealth ** (252 / len(r)) - 1) / mdd, rel=TOL, abs=TOL)


@pytest.mark.parametrize("key", SERIES)
@pytest.mark.parametrize("level", [0.9, 0.95, 0.975, 0.99])
def test_var_cvar_match_skfolio(sp500_series: dict[str, np.ndarray], key: str, level: float) -> None:
    r = sp500_series[key]
    assert M.historical_var(r, level) == pytest.approx(skm.value_at_risk(r, beta=level), abs=TOL)
    assert M.historical_cvar(r, level) == pytest.approx(skm.cvar(r, beta=level), abs=TOL)


@settings(max_examples=60, deadline=None)
@given(
    r=arrays(np.float64, st.integers(1, 250), elements=st.floats(-0.5, 0.5, allow_nan=False)),
    level=st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99]),
)
def test_var_cvar_match_skfolio_random(r: np.ndarray, level: float) -> None:
    assert M.historical_var(r, level) == pytest.approx(skm.value_at_risk(r, beta=level), abs=TOL)
    assert M.historical_cvar(r, level) == pytest.approx(skm.cvar(r, beta=level), abs=TOL)
    assert M.historical_cvar(r, level) >= M.historical_var(r, level) - 1e-12


def test_var_rank_convention_by_hand() -> None:
    # 100 returns -1%, -2%, ..., -100%... scaled: losses 0.001..0.100; at 95%, k = 5:
    # VaR is the 6th largest loss, CVaR the mean of the 5 largest.
    losses = np.arange(1, 101) / 1000.0
    r = -np.random.default_rng(0).permutation(losses)
    assert M.historical_var(r, 0.95) == pytest.approx(0.095)
    assert M.historical_cvar(r, 0.95) == pytest.approx(np.mean([0.100, 0.099, 0.098, 0.097, 0.096]))
    # k = 0.5 * 101 / 100... non-integer tail: 101 obs at 95% -> k = 5.05
    r2 = -np.arange(1, 102) / 1000.0
    assert M.historical_cvar(r2, 0.95) == pytest.approx((0.101 + 0.100 + 0.099 + 0.098 + 0.097 + 0.05 * 0.096) / 5.05)


def test_metrics_on_columns_match_one_column_at_a_time(sp500_series: dict[str, np.ndarray]) -> None:
    r = np.column_stack([sp500_series["random"][:500], sp500_series["AAPL"][:500], sp500_series["KO"][:500]])
    for f in (M.accumulated_return, M.annualised_return, M.annualised_volatility, M.sharpe_ratio, M.sortino_ratio,
              M.max_drawdown, M.calmar_ratio, M.hit_rate):
        np.testing.assert_allclose(f(r), [f(r[:, k]) for k in range(3)], rtol=1e-12)
    for f in (M.historical_var, M.historical_cvar):
        np.testing.assert_allclose(f(r, 0.95), [f(r[:, k], 0.95) for k in range(3)], rtol=1e-12)


def test_portfolio_metrics_dict(sp500_series: dict[str, np.ndarray]) -> None:
    r = sp500_series["equal_weight"]
    turnover = np.abs(np.random.default_rng(0).normal(0.1, 0.05, len(r)))
    costs = turnover * 5e-4
    out = M.portfolio_metrics(r, turnover=turnover, costs=costs)
    assert out["sharpe"] == M.sharpe_ratio(r)
    assert out["max_drawdown"] == M.max_drawdown(r)
    assert out["var_95"] == M.historical_var(r, 0.95)
    assert out["cvar_95"] == M.historical_cvar(r, 0.95)
    assert out["hit_rate"] == pytest.approx(np.mean(r > 0))
    assert out["n_periods"] == len(r)
    assert out["mean_turnover"] == pytest.approx(turnover.mean())
    assert out["annualised_turnover"] == pytest.approx(turnover.mean() * 252)
    assert out["total_turnover"] == pytest.approx(turnover.sum())
    assert out["total_costs"] == pytest.approx(costs.sum())
    assert out["annualised_costs"] == pytest.approx(costs.mean() * 252)
    assert "total_costs" not in M.portfolio_metrics(r)


def test_portfolio_metric_edge_cases() -> None:
    up = np.full(10, 0.01)
    assert M.max_drawdown(up) == 0.0
    assert M.calmar_ratio(up) == math.inf
    assert M.sortino_ratio(up) == math.inf
    assert M.sharpe_ratio(np.full(8, 0.25)) == math.inf  # exactly zero volatility, positive mean
    assert math.isnan(M.sharpe_ratio(np.zeros(5)))
    assert math.isnan(M.annualised_volatility([0.01]))
    # a first-day loss is a drawdown from the initial wealth
    assert M.drawdown_series([-0.1, 0.05])[0] == pytest.approx(0.1)
    assert M.max_drawdown([0.1, -0.5, 0.2]) == pytest.approx(0.5)
    assert M.annualised_return([-1.0, 0.1]) == -1.0


@pytest.mark.parametrize(
    "bad",
    [np.array([0.01, np.nan]), np.array([0.01, np.inf]), np.array([]), np.array([0.1, -1.5]), np.zeros((2, 2, 2))],
)
def test_portfolio_metrics_reject_bad_input(bad: np.ndarray) -> None:
    with pytest.raises(DataValidationError):
        M.accumulated_return(bad)


def test_portfolio_metrics_reject_mismatched_costs() -> None:
    with pytest.raises(DataValidationError, match="turnover"):
        M.portfolio_metrics(np.zeros(5), turnover=np.zeros(4))
    with pytest.raises(DataValidationError, match="costs"):
        M.portfolio_metrics(np.zeros(5), costs=-np.ones(5))
    with pytest.raises(DataValidationError):
        M.historical_var(np.zeros(5), level=1.5)


# ====================================================================== calibration


def test_calibration_error_by_hand() -> None:
    pit = np.array([0.1, 0.5, 0.9])
    levels = np.array([0.25, 0.5, 0.75])
    # strict "<": 0.5 is not below 0.5
    expected = (0.25 - 1 / 3) ** 2 + (0.5 - 1 / 3) ** 2 + (0.75 - 2 / 3) ** 2
    assert M.calibration_error(pit, levels) == pytest.approx(expected, abs=1e-15)
    np.testing.assert_allclose(M.calibration_curve(pit, levels), [1 / 3, 1 / 3, 2 / 3])
    np.testing.assert_allclose(M.calibration_levels(3), [0.25, 0.5, 0.75])
    assert len(M.calibration_levels()) == 100


def test_calibration_error_expectation_for_uniform_pit() -> None:
    n, reps = 60, 4000
    u = np.random.default_rng(1).random((n, reps))
    cal = M.calibration_error(u)
    p = M.calibration_levels()
    expected = np.sum(p * (1 - p)) / n
    assert cal.shape == (reps,)
    assert abs(cal.mean() - expected) < 4 * cal.std() / math.sqrt(reps)
    # a mis-scaled Gaussian forecast (variance x4) is far off: PIT = Phi(Z / 2)
    z = np.random.default_rng(2).standard_normal(5000)
    bad = M.calibration_error(stats.norm.cdf(z / 2))
    theory = np.sum((p - stats.norm.cdf(2 * stats.norm.ppf(p))) ** 2)
    assert bad == pytest.approx(theory, rel=0.05)


def test_calibration_ignores_nan_per_column() -> None:
    u = np.array([[0.1, np.nan], [0.6, 0.3], [0.8, np.nan]])
    out = M.calibration_error(u)
    assert out[0] == pytest.approx(M.calibration_error(u[:, 0]))
    assert out[1] == pytest.approx(M.calibration_error([0.3]))
    assert np.isnan(M.calibration_error(np.array([[np.nan, 0.2]]))[0])
    with pytest.raises(DataValidationError):
        M.calibration_error([0.2, 1.5])


def test_pit_from_samples() -> None:
    assert M.pit_from_samples([1.0, 2.0, 3.0], 2.5) == pytest.approx(2.5 / 4)
    assert M.pit_from_samples([1.0, 2.0, 2.0, 3.0], 2.0) == pytest.approx((1 + 0.5 * 3) / 5)
    assert M.pit_from_samples([1.0, 2.0], 0.0) == pytest.approx(0.5 / 3)
    # exactly uniform for any ensemble size when forecast = truth
    rng = np.random.default_rng(5)
    reps, s = 4000, 4
    x = rng.standard_normal((s, reps))
    y = rng.standard_normal(reps)
    u = M.pit_from_samples(x, y, rng)
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    with pytest.raises(DataValidationError):
        M.pit_from_samples(np.zeros((3, 2)), np.zeros(3))


def test_portfolio_pit_uses_available_assets_and_renormalised_weights() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(50, 3))
    y = np.array([0.1, np.nan, -0.3])
    w = np.array([1.0, 5.0, 3.0])
    expected = M.pit_from_samples(x[:, [0, 2]] @ [0.25, 0.75], 0.25 * 0.1 + 0.75 * -0.3)
    assert M.portfolio_pit(x, y, w) == pytest.approx(expected)
    assert M.portfolio_pit(x, y) == pytest.approx(M.pit_from_samples(x[:, [0, 2]].mean(axis=1), -0.1))
    assert math.isnan(M.portfolio_pit(x, np.full(3, np.nan)))
    with pytest.raises(DataValidationError):
        M.portfolio_pit(x, y, [1.0, 1.0, -1.0])


# ====================================================================== covariance


def _random_spd(rng: np.random.Generator, n: int) -> np.ndarray:
    a = rng.normal(size=(n, n))
    return a @ a.T + n * np.eye(n)


@pytest.mark.parametrize("method", ["symmetric", "cholesky"])
def test_whiten_inverts_the_covariance(method: str) -> None:
    rng = np.random.default_rng(0)
    d, n = 6, 4
    cov = np.stack([_random_spd(rng, n) for _ in range(d)])
    mu = rng.normal(size=(d, n))
    r = rng.normal(size=(d, n))
    z = M.whiten(r, mu, cov, method=method)
    e = r - mu
    # Mahalanobis norm is preserved by any whitening
    maha = np.einsum("di,dij,dj->d", e, np.linalg.inv(cov), e)
    np.testing.assert_allclose(np.sum(z * z, axis=1), maha, rtol=1e-10)
    if method == "symmetric":
        lam, v = np.linalg.eigh(cov[0])
        root = v @ np.diag(np.sqrt(lam)) @ v.T
        np.testing.assert_allclose(root @ z[0], e[0], atol=1e-12)
        perm = np.array([2, 0, 3, 1])
        zp = M.whiten(r[:, perm], mu[:, perm], cov[:, perm][:, :, perm])
        np.testing.assert_allclose(zp, z[:, perm], atol=1e-12)
    else:
        np.testing.assert_allclose(np.linalg.cholesky(cov[0]) @ z[0], e[0], atol=1e-12)


def test_whiten_rejects_non_pd() -> None:
    cov = np.array([[[1.0, 2.0], [2.0, 1.0]]])
    for method in ("symmetric", "cholesky"):
        with pytest.raises(DataValidationError, match="positive definite"):
            M.whiten(np.zeros((1, 2)), np.zeros((1, 2)), cov, method=method)  # type: ignore[arg-type]


def test_covariance_mse() -> None:
    a = np.array([[1.0, 0.5], [0.5, 2.0]])
    assert M.covariance_mse(a, np.eye(2)) == pytest.approx((0.25 + 0.25 + 1.0) / 4)
    assert M.covariance_mse(np.stack([a, np.eye(2)]), np.stack([np.eye(2)] * 2)).shape == (2,)


def test_box_m_closed_form_by_hand() -> None:
    z = np.random.default_rng(0).normal(size=(12, 3)) * [1.0, 1.5, 0.7]
    n, p = 11, 3
    s = np.cov(z.T)
    raw = n * (np.trace(s) - math.log(np.linalg.det(s)) - p)
    rho = 1 - (2 * p**2 + 3 * p - 1) / (6 * n * (p + 1))
    res = M.box_m_identity(z)
    assert res.statistic == pytest.approx(rho * raw, rel=1e-12)
    assert res.divergence == pytest.approx(raw / n, rel=1e-12)
    assert res.dof == 6
    assert res.pvalue == pytest.approx(stats.chi2.sf(rho * raw, 6), rel=1e-10)
    with pytest.raises(DataValidationError, match="observations"):
        M.box_m_identity(z[:3])


def test_box_m_is_chi2_under_h0_and_rejects_wrong_scale() -> None:
    rng = np.random.default_rng(7)
    d, p, reps = 25, 3, 1500
    stat = np.array([M.box_m_identity(rng.standard_normal((d, p))).statistic for _ in range(reps)])
    dof = p * (p + 1) / 2
    assert abs(stat.mean() - dof) < 4 * math.sqrt(2 * dof / reps)
    pv = stats.chi2.sf(stat, dof)
    assert abs(np.mean(pv < 0.05) - 0.05) < 0.02
    assert M.box_m_identity(2.0 * rng.standard_normal((200, p))).pvalue < 1e-6


# ====================================================================== VaR backtests


def _chi2_1_sf(x: float) -> float:
    return math.erfc(math.sqrt(x / 2))


def test_kupiec_and_christoffersen_by_hand() -> None:
    hits = np.array([0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0], dtype=bool)
    p = 0.1  # level 0.9
    t, x = 12, 4
    lr_pof = -2 * ((t - x) * math.log(1 - p) + x * math.log(p) - (t - x) * math.log(1 - x / t) - x * math.log(x / t))
    # transitions: 00:5 01:2 10:2 11:2
    n00, n01, n10, n11 = 5, 2, 2, 2
    pi01, pi11, pi = n01 / (n00 + n01), n11 / (n10 + n11), (n01 + n11) / 11
    l_restricted = (n00 + n10) * math.log(1 - pi) + (n01 + n11) * math.log(pi)
    l_markov = n00 * math.log(1 - pi01) + n01 * math.log(pi01) + n10 * math.log(1 - pi11) + n11 * math.log(pi11)
    lr_ind = -2 * (l_restricted - l_markov)
    lr_cc = -2 * ((n00 + n10) * math.log(1 - p) + (n01 + n11) * math.log(p) - l_markov)
    pof = M.kupiec_pof(hits, 0.9)
    ind = M.christoffersen_independence(hits)
    bt = M.var_backtest(hits, 0.9)
    assert pof.statistic == pytest.approx(lr_pof, rel=1e-12)
    assert pof.pvalue == pytest.approx(_chi2_1_sf(lr_pof), rel=1e-10)
    assert ind.statistic == pytest.approx(lr_ind, rel=1e-12)
    assert ind.pvalue == pytest.approx(_chi2_1_sf(lr_ind), rel=1e-10)
    assert bt.conditional_coverage.statistic == pytest.approx(lr_cc, rel=1e-12)
    assert bt.conditional_coverage.pvalue == pytest.approx(math.exp(-lr_cc / 2), rel=1e-10)
    assert (bt.n, bt.exceedances, bt.expected_rate, bt.observed_rate) == (12, 4, pytest.approx(0.1), pytest.approx(4 / 12))
    # LR_cc = LR_pof on the last T - 1 days + LR_ind
    assert lr_cc == pytest.approx(M.kupiec_pof(hits[1:], 0.9).statistic + lr_ind, rel=1e-12)


@pytest.mark.parametrize("t", [2, 50, 250])
def test_backtests_with_no_and_all_exceedances(t: int) -> None:
    p = 0.05
    none = M.var_backtest(np.zeros(t, dtype=bool), 0.95)
    assert none.pof.statistic == pytest.approx(-2 * t * math.log(1 - p))
    assert none.independence.statistic == 0.0 and none.independence.pvalue == 1.0
    assert none.conditional_coverage.statistic == pytest.approx(-2 * (t - 1) * math.log(1 - p))
    every = M.var_backtest(np.ones(t, dtype=int), 0.95)
    assert every.pof.statistic == pytest.approx(-2 * t * math.log(p))
    assert every.independence.statistic == 0.0
    assert every.conditional_coverage.statistic == pytest.approx(-2 * (t - 1) * math.log(p))
    assert every.pof.pvalue < 1e-3


def test_backtests_detect_wrong_rate_and_clustering() -> None:
    rng = np.random.default_rng(0)
    assert M.kupiec_pof(rng.random(1000) < 0.05, 0.95).pvalue > 1e-3
    assert M.kupiec_pof(rng.random(1000) < 0.12, 0.95).pvalue < 1e-6
    clustered = np.zeros(1000, dtype=bool)
    clustered[np.arange(0, 1000, 40)[:, None] + np.arange(2)] = True  # pairs of hits, 5% rate
    assert M.kupiec_pof(clustered, 0.95).pvalue > 0.5
    assert M.christoffersen_independence(clustered).pvalue < 1e-6


def test_backtests_reject_bad_hits() -> None:
    with pytest.raises(DataValidationError):
        M.kupiec_pof([0, 2, 1], 0.95)
    with pytest.raises(DataValidationError):
        M.christoffersen_independence([True])
    with pytest.raises(DataValidationError):
        M.kupiec_pof([], 0.95)


# ====================================================================== CRPS and energy score


def _crps_fair_brute(y: float, x: np.ndarray) -> float:
    s = len(x)
    e1 = np.mean(np.abs(x - y))
    e2 = sum(abs(a - b) for a in x for b in x) / (s * (s - 1))
    return float(e1 - 0.5 * e2)


def _es_fair_brute(y: np.ndarray, x: np.ndarray) -> float:
    s = len(x)
    e1 = np.mean([np.linalg.norm(xi - y) for xi in x])
    e2 = sum(np.linalg.norm(a - b) for a in x for b in x) / (s * (s - 1))
    return float(e1 - 0.5 * e2)


def test_crps_axis_convention_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3, 2))  # (S, ...) with distinct ensembles per cell
    y = rng.normal(size=(3, 2))
    out = M.crps_ensemble(y, x)
    assert out.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            assert out[i, j] == pytest.approx(_crps_fair_brute(y[i, j], x[:, i, j]), rel=1e-12)


def test_crps_of_gaussian_ensemble_matches_closed_form() -> None:
    rng = np.random.default_rng(1)
    mu, sigma = 0.3, 1.7
    x = rng.normal(mu, sigma, size=(40000, 1))
    for y in (-2.0, 0.3, 1.0, 5.0):
        z = (y - mu) / sigma
        closed = sigma * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / math.sqrt(math.pi))
        est = M.crps_ensemble(np.array([y]), x)[0]
        assert est == pytest.approx(closed, rel=0.02)


def test_energy_score_degenerate_and_brute_force() -> None:
    rng = np.random.default_rng(2)
    x0 = rng.normal(size=4)
    y = rng.normal(size=4)
    assert M.energy_score(y, np.tile(x0, (5, 1))) == pytest.approx(np.linalg.norm(x0 - y), rel=1e-12)
    ens = rng.normal(size=(6, 3, 4))  # (S, D, N)
    obs = rng.normal(size=(3, 4))
    out = M.energy_score(obs, ens)
    assert out.shape == (3,)
    for d in range(3):
        assert out[d] == pytest.approx(_es_fair_brute(obs[d], ens[:, d]), rel=1e-12)
    # univariate energy score = CRPS
    assert M.energy_score(obs[:1, :1], ens[:, :1, :1])[0] == pytest.approx(M.crps_ensemble(obs[:1, 0], ens[:, :1, 0])[0])


def test_scores_reject_bad_shapes() -> None:
    with pytest.raises(DataValidationError):
        M.crps_ensemble(np.zeros(3), np.zeros((5, 4)))
    with pytest.raises(DataValidationError):
        M.energy_score(np.zeros(3), np.zeros((1, 3)))


# ====================================================================== stylized facts


def test_kurtosis_acf_leverage_against_references() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_t(4, size=(300, 3)) * 0.01
    np.testing.assert_allclose(M.excess_kurtosis(x), stats.kurtosis(x, axis=0, fisher=True, bias=True), rtol=1e-12)
    ac = M.acf(x, 5)
    assert ac.shape == (5, 3)
    sm = pytest.importorskip("statsmodels.tsa.stattools")
    for j in range(3):
        np.testing.assert_allclose(ac[:, j], sm.acf(x[:, j], nlags=5, adjusted=False, fft=False)[1:], rtol=1e-10)
    lev = M.leverage_effect(x, 4)
    for k in range(1, 5):
        for j in range(3):
            assert lev[k - 1, j] == pytest.approx(np.corrcoef(x[:-k, j], x[k:, j] ** 2)[0, 1], rel=1e-10)
    np.testing.assert_allclose(M.correlation_matrix(x), np.corrcoef(x.T), rtol=1e-12)
    assert M.correlation_distance(np.eye(2), [[1.0, 0.5], [0.5, 1.0]]) == pytest.approx(math.sqrt(0.5))


def test_stylized_facts_detect_volatility_clustering_and_leverage() -> None:
    rng = np.random.default_rng(1)
    t, n = 3000, 2
    eps = rng.standard_normal((t, n))
    r = np.empty((t, n))
    v = np.ones(n)
    for i in range(t):  # GJR-style: negative returns raise next variance
        r[i] = np.sqrt(v) * eps[i]
        v = 0.05 + 0.85 * v + 0.2 * (r[i] < 0) * r[i] ** 2
    f = M.stylized_facts(r * 0.01, max_lag=5)
    iid = M.stylized_facts(rng.standard_normal((t, n)) * 0.01, max_lag=5)
    assert f.abs_acf[0] > 0.1 > abs(iid.abs_acf[0])
    assert f.leverage[0] < -0.05 < iid.leverage[0]
    assert f.kurtosis > 1.0 > abs(iid.kurtosis)


def test_stylized_facts_shapes_and_comparison() -> None:
    rng = np.random.default_rng(2)
    real = rng.standard_t(3, size=(252, 4)) * 0.01
    sims = np.stack([real] * 3)
    f3 = M.stylized_facts(sims, max_lag=6)
    f2 = M.stylized_facts(real, max_lag=6)
    assert f3.acf.shape == (3, 6) and f3.corr.shape == (3, 4, 4) and f3.kurtosis.shape == (3,)
    np.testing.assert_allclose(f3.abs_acf[1], f2.abs_acf)
    same = M.compare_stylized_facts(sims, real, max_lag=6)
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in same.distances.values())
    gauss = M.compare_stylized_facts(rng.standard_normal((20, 252, 4)) * 0.01, real, max_lag=6)
    heavy = M.compare_stylized_facts(rng.standard_t(3, size=(20, 252, 4)) * 0.01, real, max_lag=6)
    assert gauss.distances["kurtosis"] > heavy.distances["kurtosis"]
    assert set(same.distances) == {"kurtosis", "acf", "abs_acf", "leverage", "corr"}
    with pytest.raises(DataValidationError):
        M.compare_stylized_facts(sims[..., :3], real)

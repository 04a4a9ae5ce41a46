"""Inference in factorgym.metrics (hac, sharpe_tests, mcs, iqm): HAC errors, Diebold-Mariano, the Ledoit-Wolf Sharpe
difference, probabilistic / deflated Sharpe ratios, the Model Confidence Set and the IQM,
each against a hand computation or a published value."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from factorgym import metrics as M
from factorgym.errors import DataValidationError


def _bartlett_by_hand(x: np.ndarray, lags: int) -> np.ndarray:
    """Newey-West (1987) long-run covariance with weights 1 - j / (L + 1), divisor T."""
    x = x.reshape(len(x), -1)
    e = x - x.mean(axis=0)
    t = len(e)
    omega = e.T @ e / t
    for j in range(1, lags + 1):
        g = e[j:].T @ e[:-j] / t
        omega += (1.0 - j / (lags + 1)) * (g + g.T)
    return omega


def _ar1(t: int, phi: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.normal(size=t)
    x = np.empty(t)
    x[0] = e[0]
    for i in range(1, t):
        x[i] = phi * x[i - 1] + e[i]
    return x


def test_hac_long_run_covariance_is_the_newey_west_sum() -> None:
    x = np.random.default_rng(0).normal(size=(120, 3)).cumsum(axis=0) * 0.01
    for lags in (0, 1, 4):
        lr = M.hac_long_run_covariance(x, bandwidth=lags)
        np.testing.assert_allclose(lr.cov, _bartlett_by_hand(x, lags), rtol=1e-10)
        assert lr.bandwidth == lags and lr.n_obs == 120
    assert M.hac_long_run_covariance(x).bandwidth > 0  # automatic Newey-West (1994) bandwidth
    assert np.isnan(M.hac_long_run_covariance(np.ones(50)).cov).all()  # a constant series
    with pytest.raises(DataValidationError, match="bandwidth"):
        M.hac_long_run_covariance(x, bandwidth=-1)


def test_newey_west_error_of_an_autocorrelated_mean_exceeds_the_iid_error() -> None:
    """For AR(1) with phi the long-run variance is var / (1 - phi)^2 against var (1 - phi^2)^-1,
    so the HAC error is sqrt((1 + phi) / (1 - phi)) times the iid one (1.73 for phi = 0.5)."""
    x = _ar1(20_000, 0.5, seed=1)
    m = M.newey_west_mean(x)
    assert m.mean == pytest.approx(x.mean())
    assert m.iid_std_error == pytest.approx(x.std(ddof=1) / math.sqrt(len(x)))
    assert 1.5 < m.std_error / m.iid_std_error < 1.9
    fixed = M.newey_west_mean(np.r_[x[:200], np.nan], bandwidth=5)  # NaN days dropped
    assert fixed.n_obs == 200
    assert fixed.std_error == pytest.approx(math.sqrt(_bartlett_by_hand(x[:200], 5)[0, 0] / 200), rel=1e-10)


def test_diebold_mariano_by_hand() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(1.0, 1.0, 300)
    b = 0.8 * a + rng.normal(1.25, 0.5, 300)
    b[7] = np.nan
    res = M.diebold_mariano(a, b, bandwidth=3)
    d = (a - b)[np.isfinite(b)]
    se = math.sqrt(_bartlett_by_hand(d, 3)[0, 0] / len(d))
    assert res.n_obs == 299
    assert res.estimate == pytest.approx(d.mean(), rel=1e-12)
    assert res.std_error == pytest.approx(se, rel=1e-10)
    assert res.statistic == pytest.approx(d.mean() / se, rel=1e-10)
    assert res.pvalue == pytest.approx(2 * stats.norm.sf(abs(d.mean() / se)), rel=1e-10)
    assert M.diebold_mariano(a, a).pvalue != M.diebold_mariano(a, a).pvalue  # no difference: NaN, not p = 1
    with pytest.raises(DataValidationError, match="length"):
        M.diebold_mariano(a, b[:10])


def test_sharpe_difference_delta_method_by_hand_and_lo_formula() -> None:
    rng = np.random.default_rng(3)
    t = 500
    a = rng.normal(6e-4, 0.01, t)
    b = 0.6 * a + rng.normal(2e-4, 0.008, t)
    rf = 1e-4
    res = M.sharpe_difference_test(a, b, risk_free=rf, bandwidth=2)
    xa, xb = a - rf, b - rf
    mu_a, mu_b, g_a, g_b = xa.mean(), xb.mean(), (xa**2).mean(), (xb**2).mean()
    grad = np.array([
        g_a / (g_a - mu_a**2) ** 1.5, -g_b / (g_b - mu_b**2) ** 1.5,
        -mu_a / (2 * (g_a - mu_a**2) ** 1.5), mu_b / (2 * (g_b - mu_b**2) ** 1.5),
    ])  # fmt: skip
    psi = _bartlett_by_hand(np.column_stack([xa, xb, xa**2, xb**2]), 2)
    assert res.std_error == pytest.approx(math.sqrt(grad @ psi @ grad / t) * math.sqrt(252), rel=1e-10)
    by_table = M.sharpe_ratio(a, rf) - M.sharpe_ratio(b, rf)  # ddof=1 ratios
    assert res.estimate == pytest.approx(by_table * math.sqrt(t / (t - 1)), rel=1e-10)
    assert res.pvalue == pytest.approx(2 * stats.norm.sf(abs(res.estimate / res.std_error)), rel=1e-10)
    # Lo (2002): for iid normal returns Var(SR) = (1 + SR^2 / 2) / T per period; independent
    # strategies add their variances
    t = 200_000
    sa, sb = 0.05, 0.02
    a = rng.normal(sa * 0.01, 0.01, t)
    b = rng.normal(sb * 0.02, 0.02, t)
    iid = M.sharpe_difference_test(a, b, bandwidth=0, periods_per_year=1)
    assert iid.std_error == pytest.approx(math.sqrt((2 + sa**2 / 2 + sb**2 / 2) / t), rel=0.02)
    assert math.isnan(M.sharpe_difference_test(np.ones(10), b[:10]).pvalue)


def test_probabilistic_and_deflated_sharpe_reproduce_bailey_lopez_de_prado() -> None:
    """The numerical example of Bailey & Lopez de Prado (2014), section 'A numerical example':
    annualised SR 2.5 over T = 1250 days (250 a year), skew -3, kurtosis 10, N = 100 trials
    whose annualised Sharpe ratios vary with variance 1/2: SR0 = 0.1132, DSR = 0.9004."""
    sr = 2.5 / math.sqrt(250)
    d = M.deflated_sharpe_ratio(sr, 1250, n_trials=100, trial_variance=0.5 / 250, skew=-3.0, kurtosis=10.0)
    assert d.threshold == pytest.approx(0.1132, abs=5e-5)
    assert d.dsr == pytest.approx(0.9004, abs=5e-5)
    # normal returns: se = sqrt((1 + SR^2 / 2) / (T - 1))
    assert M.sharpe_ratio_std_error(0.1, 101) == pytest.approx(math.sqrt((1 + 0.005) / 100))
    assert M.probabilistic_sharpe_ratio(0.1, 101) == pytest.approx(stats.norm.cdf(0.1 / math.sqrt(1.005 / 100)))
    assert M.probabilistic_sharpe_ratio(0.1, 101, benchmark=0.1) == pytest.approx(0.5)
    # one trial: nothing was selected, the deflated ratio is the probabilistic one
    assert M.expected_max_sharpe(1, 0.3) == 0.0
    # the expected maximum of N standard normals (Monte Carlo 2.5076 for N = 100)
    mc = np.random.default_rng(4).normal(size=(20_000, 100)).max(axis=1).mean()
    assert M.expected_max_sharpe(100, 1.0) == pytest.approx(mc, rel=0.02)
    with pytest.raises(DataValidationError, match="n_trials"):
        M.expected_max_sharpe(0, 1.0)


def test_sharpe_inference_counts_the_columns_as_trials() -> None:
    rng = np.random.default_rng(5)
    r = rng.normal(4e-4, 0.01, (750, 4)) + np.array([0.0, 2e-4, 4e-4, 6e-4])
    tab = M.sharpe_inference(r, risk_free=1e-5, names=list("abcd"))
    np.testing.assert_allclose(tab["sharpe"], M.sharpe_ratio(r, 1e-5), rtol=1e-12)
    assert (tab["n_trials"] == 4).all()
    sr = (r - 1e-5).mean(axis=0) / (r - 1e-5).std(axis=0, ddof=1)
    threshold = M.expected_max_sharpe(4, float(np.var(sr, ddof=1)))
    np.testing.assert_allclose(tab["deflated_sharpe_threshold"], threshold * math.sqrt(252), rtol=1e-12)
    x = r[:, 3] - 1e-5
    psr = M.probabilistic_sharpe_ratio(sr[3], 750, skew=stats.skew(x), kurtosis=stats.kurtosis(x, fisher=False))
    assert tab.loc["d", "psr"] == pytest.approx(psr, rel=1e-12)
    assert (tab["deflated_sharpe"] < tab["psr"]).all()  # selection among 4 raises the bar
    one = M.sharpe_inference(r[:, :1])
    assert one["deflated_sharpe"].iloc[0] == pytest.approx(one["psr"].iloc[0])


def test_model_confidence_set_keeps_the_best_and_drops_the_clearly_worse() -> None:
    rng = np.random.default_rng(6)
    losses = rng.normal(size=(400, 4)) + np.array([0.0, 0.02, 0.5, 1.0])
    a = M.model_confidence_set(losses, reps=300, seed=1, names=["best", "close", "bad", "worst"])
    b = M.model_confidence_set(losses, reps=300, seed=1, names=["best", "close", "bad", "worst"])
    assert list(a.index) == ["best", "close", "bad", "worst"]
    assert a.equals(b)  # seeded
    assert a["pvalue"].max() == 1.0 and a.loc["best", "included"] and a.loc["close", "included"]
    assert not a.loc["worst", "included"] and not a.loc["bad", "included"]
    assert ((a["pvalue"] >= 0.10) == a["included"]).all()
    assert M.model_confidence_set(losses[:, :1], names=["only"]).loc["only", "included"]
    # identical models (two agents in cash) share one result instead of breaking the statistics
    twin = M.model_confidence_set(np.column_stack([losses, losses[:, 0], losses[:, 3]]), reps=300, seed=1)
    assert twin["pvalue"].iloc[4] == twin["pvalue"].iloc[0] and twin["pvalue"].iloc[5] == twin["pvalue"].iloc[3]
    assert twin["included"].iloc[4] and not twin["included"].iloc[5]


def test_interquartile_mean_and_stratified_interval() -> None:
    assert M.interquartile_mean(np.arange(1, 9)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    scores = np.random.default_rng(7).normal(size=(10, 3))
    est, lo, hi = M.iqm_interval(scores, reps=500, seed=2)
    assert est == M.interquartile_mean(scores) and lo < est < hi
    assert M.iqm_interval(scores, reps=500, seed=2) == (est, lo, hi)
    # a resample keeps every task: with one constant task per column and one run, no spread
    assert M.iqm_interval(np.array([[1.0, 2.0, 3.0, 4.0]]), reps=50)[1:] == (2.5, 2.5)

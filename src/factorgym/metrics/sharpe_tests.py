"""Tests of Sharpe ratios under serial dependence and multiple testing.

* The Sharpe-ratio difference of two strategies on the same days with the delta method and
  a HAC covariance of the moment vector (Ledoit & Wolf 2008, section 3.1):
  :func:`sharpe_difference_test`.
* The probabilistic and deflated Sharpe ratios (Bailey & Lopez de Prado 2012, 2014):
  :func:`sharpe_ratio_std_error`, :func:`probabilistic_sharpe_ratio`,
  :func:`expected_max_sharpe`, :func:`deflated_sharpe_ratio` and, from return columns,
  :func:`sharpe_inference`.

Units: Sharpe ratios of :func:`sharpe_ratio_std_error`, :func:`probabilistic_sharpe_ratio`,
:func:`expected_max_sharpe` and :func:`deflated_sharpe_ratio` are **per period** (not
annualised: divide an annualised ratio by ``sqrt(periods_per_year)``), as in Bailey & Lopez
de Prado; the functions that take return series (:func:`sharpe_difference_test`,
:func:`sharpe_inference`) report annualised ratios like :func:`factorgym.metrics.sharpe_ratio`.
``kurtosis`` is the plain (not excess) fourth standardised moment: 3 for a normal law.
P-values are two-sided and use the normal limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from factorgym.errors import DataValidationError
from factorgym.metrics.hac import Kernel, PairedTest, _paired, hac_long_run_covariance

__all__ = [
    "DeflatedSharpe",
    "EULER_GAMMA",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "probabilistic_sharpe_ratio",
    "sharpe_difference_test",
    "sharpe_inference",
    "sharpe_ratio_std_error",
]

#: The Euler-Mascheroni constant (expected maximum of Gaussian trials).
EULER_GAMMA = 0.5772156649015329


class DeflatedSharpe(NamedTuple):
    """The deflated Sharpe ratio and what it was computed from (per-period units)."""

    #: probability that the true Sharpe ratio exceeds ``threshold``
    dsr: float
    #: expected maximum Sharpe ratio of ``n_trials`` unskilled trials
    threshold: float
    n_trials: int
    trial_variance: float


def sharpe_difference_test(
    returns_a: ArrayLike,
    returns_b: ArrayLike,
    *,
    risk_free: float = 0.0,
    periods_per_year: int = 252,
    bandwidth: float | None = None,
    kernel: Kernel = "bartlett",
) -> PairedTest:
    """HAC test that two strategies have the same Sharpe ratio (Ledoit & Wolf 2008, sec. 3.1).

    With excess returns ``x = r - rf`` and the moments ``v = (mu_a, mu_b, g_a, g_b)``
    (``g = E[x^2]``), ``Delta = f(v) = mu_a / sqrt(g_a - mu_a^2) - mu_b / sqrt(g_b - mu_b^2)``;
    by the delta method ``se(Delta) = sqrt(grad f' Psi grad f / T)`` with ``Psi`` the HAC
    long-run covariance of ``y_t = (x_a - mu_a, x_b - mu_b, x_a^2 - g_a, x_b^2 - g_b)``
    (Bartlett kernel and Newey-West 1994 bandwidth by default; Ledoit & Wolf use a
    prewhitened quadratic-spectral kernel, ``kernel="quadratic-spectral"`` without the
    prewhitening). Both ``Delta`` and its standard error are annualised by
    ``sqrt(periods_per_year)``. The moments are population moments (divisor ``T``), so the
    estimate is ``sqrt(T / (T - 1))`` times the difference of
    :func:`factorgym.metrics.sharpe_ratio` values (which use ``ddof=1``).

    Parameters
    ----------
    returns_a, returns_b : array_like of shape (T,)
        Simple per-period returns on the same days.
    risk_free : float
        Per-period (daily) cash rate.
    periods_per_year : int
    bandwidth, kernel
        As for :func:`hac_long_run_covariance`.

    Returns
    -------
    PairedTest
        ``estimate`` = annualised Sharpe(a) - Sharpe(b); NaN where a series is constant or
        shorter than 3 days.
    """
    a = np.asarray(returns_a, dtype=np.float64).reshape(-1)
    b = np.asarray(returns_b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise DataValidationError(f"return series differ in length: {a.shape[0]} vs {b.shape[0]}")
    ok = np.isfinite(a) & np.isfinite(b)
    xa, xb = a[ok] - risk_free, b[ok] - risk_free
    t = xa.shape[0]
    if t < 3 or not (np.std(xa) > 0 and np.std(xb) > 0):
        return PairedTest(math.nan, math.nan, math.nan, math.nan, math.nan, t)
    mu_a, mu_b, g_a, g_b = xa.mean(), xb.mean(), (xa**2).mean(), (xb**2).mean()
    va, vb = g_a - mu_a**2, g_b - mu_b**2
    delta = mu_a / math.sqrt(va) - mu_b / math.sqrt(vb)
    grad = np.array([g_a / va**1.5, -g_b / vb**1.5, -0.5 * mu_a / va**1.5, 0.5 * mu_b / vb**1.5])
    y = np.column_stack([xa, xb, xa**2, xb**2])
    lr = hac_long_run_covariance(y, bandwidth=bandwidth, kernel=kernel)
    s = math.sqrt(periods_per_year)
    return _paired(delta * s, float(grad @ lr.cov @ grad) / t * s * s, lr.bandwidth, t)


def sharpe_ratio_std_error(sharpe: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """Standard error of an estimated per-period Sharpe ratio under non-normal iid returns
    (Mertens 2002; Bailey & Lopez de Prado 2012, eq. 6):
    ``sqrt((1 - skew SR + (kurtosis - 1) / 4 SR^2) / (T - 1))``.

    Parameters
    ----------
    sharpe : float
        Per-period Sharpe ratio.
    n_obs : int
        ``T`` returns (at least 2).
    skew, kurtosis : float
        Of the returns (``kurtosis`` 3 for a normal law).

    Returns
    -------
    float
    """
    if n_obs < 2:
        raise DataValidationError(f"the Sharpe ratio's standard error needs at least 2 returns, got {n_obs}")
    v = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    return math.sqrt(v / (n_obs - 1)) if v > 0 else math.nan


def probabilistic_sharpe_ratio(
    sharpe: float, n_obs: int, *, benchmark: float = 0.0, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """Probability that the true Sharpe ratio exceeds ``benchmark`` (Bailey & Lopez de Prado
    2012): ``Phi((SR - SR*) / se(SR))`` with :func:`sharpe_ratio_std_error`.

    Parameters
    ----------
    sharpe, benchmark : float
        Per-period Sharpe ratios (estimated, and the threshold ``SR*``).
    n_obs : int
    skew, kurtosis : float

    Returns
    -------
    float in [0, 1] (NaN when undefined)
    """
    if not (math.isfinite(sharpe) and math.isfinite(benchmark)):
        return math.nan
    se = sharpe_ratio_std_error(sharpe, n_obs, skew, kurtosis)
    return float(stats.norm.cdf((sharpe - benchmark) / se)) if se > 0 else math.nan


def expected_max_sharpe(n_trials: int, trial_variance: float) -> float:
    """Expected maximum of ``n_trials`` per-period Sharpe ratios of unskilled strategies
    (true Sharpe 0) whose estimates vary with variance ``trial_variance`` (Bailey & Lopez de
    Prado 2014, eq. 2 via the false strategy theorem):
    ``sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e)))``.

    Parameters
    ----------
    n_trials : int
        ``N``; 1 gives 0 (nothing was selected).
    trial_variance : float
        ``V``, the variance of the trials' per-period Sharpe ratios.

    Returns
    -------
    float
    """
    n = int(n_trials)
    if n < 1:
        raise DataValidationError(f"n_trials must be at least 1, got {n_trials}")
    if n == 1:
        return 0.0
    if not (math.isfinite(trial_variance) and trial_variance >= 0):
        return math.nan
    z = (1.0 - EULER_GAMMA) * stats.norm.ppf(1.0 - 1.0 / n) + EULER_GAMMA * stats.norm.ppf(1.0 - 1.0 / (n * math.e))
    return float(math.sqrt(trial_variance) * z)


def deflated_sharpe_ratio(
    sharpe: float, n_obs: int, *, n_trials: int, trial_variance: float, skew: float = 0.0, kurtosis: float = 3.0
) -> DeflatedSharpe:
    """Deflated Sharpe ratio (Bailey & Lopez de Prado 2014): the probabilistic Sharpe ratio
    against the expected maximum Sharpe ratio of ``n_trials`` unskilled trials,
    ``PSR(SR0)`` with ``SR0 = expected_max_sharpe(n_trials, trial_variance)``.

    Parameters
    ----------
    sharpe : float
        Per-period Sharpe ratio of the selected strategy.
    n_obs : int
        Returns ``T`` it was estimated from.
    n_trials : int
        Strategies tried (the selected one among them).
    trial_variance : float
        Variance of the trials' per-period Sharpe ratios.
    skew, kurtosis : float
        Of the selected strategy's returns.

    Returns
    -------
    DeflatedSharpe
    """
    sr0 = expected_max_sharpe(n_trials, trial_variance)
    dsr = probabilistic_sharpe_ratio(sharpe, n_obs, benchmark=sr0, skew=skew, kurtosis=kurtosis)
    return DeflatedSharpe(dsr, sr0, int(n_trials), float(trial_variance))


def sharpe_inference(
    returns: ArrayLike | pd.DataFrame,
    *,
    risk_free: float = 0.0,
    periods_per_year: int = 252,
    names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Probabilistic and deflated Sharpe ratios of ``K`` strategies run on the same days,
    counting the ``K`` columns as the trials.

    Each column's per-period Sharpe ratio is ``mean(r - rf) / std(r, ddof=1)``, its skew and
    kurtosis the (biased) sample moments of :func:`scipy.stats.skew` /
    :func:`scipy.stats.kurtosis`. The trials are the columns with a finite Sharpe ratio:
    ``n_trials`` of them, with the sample variance (``ddof=1``) of their Sharpe ratios as
    ``V`` (0 for one trial, whose deflated ratio is then its probabilistic one).

    Parameters
    ----------
    returns : array_like of shape (T, K) or DataFrame
        Simple per-period returns (columns: strategies).
    risk_free : float
        Per-period cash rate.
    periods_per_year : int
    names : sequence of str, optional
        Row labels (default: the DataFrame's columns or ``0..K-1``).

    Returns
    -------
    DataFrame
        One row per strategy: ``sharpe`` (annualised), ``psr`` (probability that the true
        Sharpe ratio is above 0), ``deflated_sharpe`` (above ``deflated_sharpe_threshold``),
        ``deflated_sharpe_threshold`` (the expected maximum Sharpe ratio of ``n_trials``
        unskilled trials, annualised), ``n_trials``.
    """
    labels = list(names) if names is not None else (list(returns.columns) if isinstance(returns, pd.DataFrame) else None)
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 2 or not np.isfinite(r).all():
        raise DataValidationError(f"returns must be a finite (T, K) array with T >= 2, got shape {r.shape}")
    t, k = r.shape
    labels = labels if labels is not None else list(range(k))
    if len(labels) != k:
        raise DataValidationError(f"{len(labels)} names for {k} return columns")
    x = r - risk_free
    sd = np.std(x, axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sr = np.where(sd > 0, x.mean(axis=0) / np.where(sd > 0, sd, 1.0), np.nan)
        skew = stats.skew(x, axis=0, bias=True)
        kurt = stats.kurtosis(x, axis=0, fisher=False, bias=True)
    ok = np.isfinite(sr)
    n_trials = int(ok.sum())
    var = float(np.var(sr[ok], ddof=1)) if n_trials >= 2 else 0.0
    ann = math.sqrt(periods_per_year)
    rows = []
    for j in range(k):
        if not ok[j]:
            rows.append([math.nan, math.nan, math.nan, math.nan, n_trials])
            continue
        d = deflated_sharpe_ratio(float(sr[j]), t, n_trials=max(n_trials, 1), trial_variance=var, skew=float(skew[j]), kurtosis=float(kurt[j]))
        psr = probabilistic_sharpe_ratio(float(sr[j]), t, skew=float(skew[j]), kurtosis=float(kurt[j]))
        rows.append([float(sr[j]) * ann, psr, d.dsr, d.threshold * ann, n_trials])
    cols = ["sharpe", "psr", "deflated_sharpe", "deflated_sharpe_threshold", "n_trials"]
    return pd.DataFrame(rows, index=pd.Index(labels), columns=cols)

"""Statistical inference for return series and forecast losses under serial dependence and
multiple testing.

* HAC (heteroskedasticity and autocorrelation consistent) long-run covariance
  (:func:`hac_long_run_covariance`), the Newey-West standard error of a mean
  (:func:`newey_west_mean`) and the Diebold-Mariano test of equal mean loss
  (:func:`diebold_mariano`). The kernels and the automatic bandwidth (Newey & West 1994)
  are :mod:`arch.covariance.kernel`'s.
* The Sharpe-ratio difference of two strategies on the same days with the delta method and
  a HAC covariance of the moment vector (Ledoit & Wolf 2008, section 3.1):
  :func:`sharpe_difference_test`.
* The probabilistic and deflated Sharpe ratios (Bailey & Lopez de Prado 2012, 2014):
  :func:`sharpe_ratio_std_error`, :func:`probabilistic_sharpe_ratio`,
  :func:`expected_max_sharpe`, :func:`deflated_sharpe_ratio` and, from return columns,
  :func:`sharpe_inference`.
* The Model Confidence Set (Hansen, Lunde & Nason 2011) of :class:`arch.bootstrap.MCS`:
  :func:`model_confidence_set`.
* The interquartile mean and its stratified-bootstrap interval over runs (seeds) and tasks
  (Agarwal et al. 2021): :func:`interquartile_mean`, :func:`iqm_interval`. ``rliable``, the
  reference implementation, pins an ``arch`` older than ours and cannot be installed beside
  it, so both are computed here with :func:`scipy.stats.trim_mean` (``rliable``'s own IQM) and
  a numpy resampling that follows ``rliable``'s ``StratifiedBootstrap``.

Units: Sharpe ratios of :func:`sharpe_ratio_std_error`, :func:`probabilistic_sharpe_ratio`,
:func:`expected_max_sharpe` and :func:`deflated_sharpe_ratio` are **per period** (not
annualised: divide an annualised ratio by ``sqrt(periods_per_year)``), as in Bailey & Lopez
de Prado; the functions that take return series (:func:`sharpe_difference_test`,
:func:`sharpe_inference`) report annualised ratios like :func:`factorgym.metrics.sharpe_ratio`.
``kurtosis`` is the plain (not excess) fourth standardised moment: 3 for a normal law.
P-values are two-sided and use the normal limit.

(Over 500 lines on purpose: sixteen short functions whose numpydoc, formulas and references
are most of the text; they share the HAC core and the per-period Sharpe conventions.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from factorgym.errors import DataValidationError
from factorgym.metrics._common import check_level

__all__ = [
    "DeflatedSharpe",
    "HACMean",
    "LongRunCovariance",
    "PairedTest",
    "deflated_sharpe_ratio",
    "diebold_mariano",
    "expected_max_sharpe",
    "hac_long_run_covariance",
    "interquartile_mean",
    "iqm_interval",
    "model_confidence_set",
    "newey_west_mean",
    "probabilistic_sharpe_ratio",
    "sharpe_difference_test",
    "sharpe_inference",
    "sharpe_ratio_std_error",
]

#: The Euler-Mascheroni constant (expected maximum of Gaussian trials).
EULER_GAMMA = 0.5772156649015329

Kernel = Literal["bartlett", "parzen", "quadratic-spectral"]


class LongRunCovariance(NamedTuple):
    """A HAC long-run covariance."""

    #: ``(K, K)``: ``sum_j w_j Gamma_j`` over lags ``-L..L`` (``Gamma_j`` divided by ``T``)
    cov: np.ndarray
    #: the bandwidth ``L`` used (given, or Newey-West 1994's automatic choice)
    bandwidth: float
    #: observations ``T``
    n_obs: int


class HACMean(NamedTuple):
    """A mean with its HAC (Newey-West) and iid standard errors."""

    mean: float
    std_error: float
    iid_std_error: float
    bandwidth: float
    n_obs: int


class PairedTest(NamedTuple):
    """A test that a difference between two series on the same days is zero."""

    #: the difference (first minus second)
    estimate: float
    std_error: float
    #: ``estimate / std_error``, asymptotically standard normal under the null
    statistic: float
    #: two-sided p-value
    pvalue: float
    bandwidth: float
    n_obs: int


class DeflatedSharpe(NamedTuple):
    """The deflated Sharpe ratio and what it was computed from (per-period units)."""

    #: probability that the true Sharpe ratio exceeds ``threshold``
    dsr: float
    #: expected maximum Sharpe ratio of ``n_trials`` unskilled trials
    threshold: float
    n_trials: int
    trial_variance: float


def _finite_rows(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x).all(axis=1)]


def hac_long_run_covariance(
    x: ArrayLike, *, bandwidth: float | None = None, kernel: Kernel = "bartlett"
) -> LongRunCovariance:
    """HAC long-run covariance of the (demeaned) rows of ``x``.

    ``Omega = sum_{|j| <= L} k(j / (L + 1)) Gamma_j`` with ``Gamma_j = (1/T) sum_t e_t e_{t-j}'``
    of the demeaned series ``e``; the Bartlett kernel ``k(u) = 1 - |u|`` is Newey & West
    (1987). Computed by :mod:`arch.covariance.kernel`.

    Parameters
    ----------
    x : array_like of shape (T,) or (T, K)
        Rows with a NaN are dropped (the remaining rows are treated as consecutive).
    bandwidth : float, optional
        ``L``; 0 gives the iid covariance (divisor ``T``). Default: the automatic bandwidth
        of Newey & West (1994) (Andrews 1991 for the other kernels).
    kernel : {"bartlett", "parzen", "quadratic-spectral"}

    Returns
    -------
    LongRunCovariance
        ``cov`` of shape ``(K, K)`` (``(1, 1)`` for a 1-D input); NaN with fewer than 3 rows.
    """
    from arch.covariance import kernel as K

    a = np.asarray(x, dtype=np.float64)
    a = a[:, None] if a.ndim == 1 else a
    if a.ndim != 2:
        raise DataValidationError(f"x must have shape (T,) or (T, K), got {np.asarray(x).shape}")
    a = _finite_rows(a)
    t, k = a.shape
    if bandwidth is not None and not (math.isfinite(float(bandwidth)) and bandwidth >= 0):
        raise DataValidationError(f"bandwidth must be a finite number >= 0, got {bandwidth}")
    kernels = {"bartlett": K.Bartlett, "parzen": K.Parzen, "quadratic-spectral": K.QuadraticSpectral}
    if kernel not in kernels:
        raise DataValidationError(f"kernel must be one of {sorted(kernels)}, got {kernel!r}")
    if t < 3 or not (np.std(a, axis=0) > 0).all():
        return LongRunCovariance(np.full((k, k), np.nan), math.nan, t)
    if bandwidth == 0:
        e = a - a.mean(axis=0)
        return LongRunCovariance(e.T @ e / t, 0.0, t)
    est = kernels[kernel](a, bandwidth=None if bandwidth is None else float(bandwidth))
    return LongRunCovariance(np.asarray(est.cov.long_run, dtype=np.float64).reshape(k, k), float(est.bandwidth), t)


def newey_west_mean(x: ArrayLike, *, bandwidth: float | None = None, kernel: Kernel = "bartlett") -> HACMean:
    """Mean of ``x`` with its HAC standard error ``sqrt(Omega / T)`` and the iid one
    ``std(x, ddof=1) / sqrt(T)``.

    Parameters
    ----------
    x : array_like of shape (T,)
        NaN values are dropped (e.g. days not scored).
    bandwidth, kernel
        As for :func:`hac_long_run_covariance`.

    Returns
    -------
    HACMean
    """
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    a = a[np.isfinite(a)]
    t = a.shape[0]
    if t == 0:
        return HACMean(math.nan, math.nan, math.nan, math.nan, 0)
    lr = hac_long_run_covariance(a, bandwidth=bandwidth, kernel=kernel)
    iid = float(np.std(a, ddof=1) / math.sqrt(t)) if t >= 2 else math.nan
    return HACMean(float(a.mean()), float(math.sqrt(lr.cov[0, 0] / t)) if lr.cov[0, 0] >= 0 else math.nan, iid, lr.bandwidth, t)


def _paired(estimate: float, variance: float, bandwidth: float, t: int) -> PairedTest:
    se = math.sqrt(variance) if variance >= 0 else math.nan  # NaN stays NaN
    stat = float(estimate) / se if se > 0 else math.nan
    p = float(2.0 * stats.norm.sf(abs(stat))) if math.isfinite(stat) else math.nan
    return PairedTest(float(estimate), se, stat, p, float(bandwidth), int(t))


def diebold_mariano(
    loss_a: ArrayLike, loss_b: ArrayLike, *, bandwidth: float | None = None, kernel: Kernel = "bartlett"
) -> PairedTest:
    """Diebold-Mariano test of equal expected loss of two forecasts scored on the same days.

    ``d_t = loss_a_t - loss_b_t``; ``statistic = mean(d) / sqrt(Omega_d / T)`` with the HAC
    long-run variance ``Omega_d`` (:func:`hac_long_run_covariance`), asymptotically standard
    normal when both forecasts are equally good (Diebold & Mariano 1995). A positive
    ``estimate`` means ``a`` has the higher mean loss (``b`` is better).

    Parameters
    ----------
    loss_a, loss_b : array_like of shape (T,)
        Daily losses (e.g. negative log-likelihoods); days where either is NaN are dropped.
    bandwidth, kernel
        As for :func:`hac_long_run_covariance`.

    Returns
    -------
    PairedTest
    """
    a = np.asarray(loss_a, dtype=np.float64).reshape(-1)
    b = np.asarray(loss_b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise DataValidationError(f"loss series differ in length: {a.shape[0]} vs {b.shape[0]}")
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    m = newey_west_mean(d, bandwidth=bandwidth, kernel=kernel)
    return _paired(m.mean, m.std_error**2, m.bandwidth, m.n_obs)


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


def model_confidence_set(
    losses: ArrayLike | pd.DataFrame,
    *,
    size: float = 0.10,
    reps: int = 1000,
    block_size: int | None = None,
    method: Literal["R", "max"] = "R",
    seed: int | np.random.SeedSequence | np.random.Generator = 0,
    names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Model Confidence Set (Hansen, Lunde & Nason 2011) of models scored on the same days,
    by :class:`arch.bootstrap.MCS` (stationary bootstrap).

    The set contains the best model (lowest expected loss) with probability ``1 - size``;
    a model's MCS p-value is the largest ``size`` at which it is still in the set. Models
    with identical losses are scored once and share the result.

    Parameters
    ----------
    losses : array_like of shape (T, K) or DataFrame
        Per-period losses (lower is better), e.g. negative returns.
    size : float
        ``0.10`` for the 90% set.
    reps : int
        Bootstrap resamples.
    block_size : int, optional
        Mean block length (default :class:`arch.bootstrap.MCS`'s ``sqrt(T)``).
    method : {"R", "max"}
        The elimination statistic (``"R"``: range of pairwise t-statistics).
    seed : int, SeedSequence or Generator
    names : sequence of str, optional
        Model labels (default: the DataFrame's columns or ``0..K-1``).

    Returns
    -------
    DataFrame
        Index: model (input order); columns ``pvalue`` and ``included`` (bool, at ``size``).
    """
    from arch.bootstrap import MCS

    labels = list(names) if names is not None else (list(losses.columns) if isinstance(losses, pd.DataFrame) else None)
    x = np.asarray(losses, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or not np.isfinite(x).all():
        raise DataValidationError(f"losses must be a finite (T, K) array with T >= 2, got shape {x.shape}")
    labels = labels if labels is not None else list(range(x.shape[1]))
    if len(labels) != x.shape[1] or len(set(labels)) != len(labels):
        raise DataValidationError(f"need {x.shape[1]} distinct model names, got {labels}")
    check_level(size, "size")
    if int(reps) < 1:
        raise DataValidationError(f"reps must be at least 1, got {reps}")
    # identical models (e.g. two agents that both stay in cash) have loss differences without
    # variance, which the MCS statistics divide by: score one of each group, copy to the rest
    first = [next(i for i in range(j + 1) if np.array_equal(x[:, i], x[:, j])) for j in range(x.shape[1])]
    unique = sorted(set(first))
    if len(unique) == 1:
        p_u, in_u = np.ones(1), np.ones(1, dtype=bool)
    else:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        cols = [str(j) for j in unique]
        mcs = MCS(pd.DataFrame(x[:, unique], columns=cols), size=size, reps=int(reps), block_size=block_size, method=method, seed=rng)
        mcs.compute()
        p_u = mcs.pvalues["Pvalue"].reindex(cols).to_numpy(dtype=np.float64)
        in_u = np.isin(cols, list(mcs.included))
    pos = {j: k for k, j in enumerate(unique)}
    return pd.DataFrame(
        {"pvalue": [p_u[pos[f]] for f in first], "included": [bool(in_u[pos[f]]) for f in first]},
        index=pd.Index(labels, name="model"),
    )


def interquartile_mean(scores: ArrayLike) -> float:
    """Interquartile mean: the mean of the middle 50% of all scores
    (:func:`scipy.stats.trim_mean` with 25% cut at each end, as ``rliable`` computes it).

    Parameters
    ----------
    scores : array_like of shape (R,) or (R, M)
        Runs (e.g. training seeds) by tasks; flattened.

    Returns
    -------
    float
    """
    a = np.asarray(scores, dtype=np.float64).reshape(-1)
    if a.size == 0 or not np.isfinite(a).all():
        raise DataValidationError(f"scores must be finite and non-empty, got {a.size} values")
    return float(stats.trim_mean(a, 0.25))


def iqm_interval(
    scores: ArrayLike, *, reps: int = 2000, confidence: float = 0.95, seed: int | np.random.SeedSequence = 0
) -> tuple[float, float, float]:
    """Interquartile mean and its stratified-bootstrap percentile interval (Agarwal et al.
    2021): each resample draws ``R`` runs with replacement *within each task*.

    Parameters
    ----------
    scores : array_like of shape (R,) or (R, M)
        ``R`` runs (seeds) of ``M`` tasks.
    reps : int
    confidence : float
    seed : int or SeedSequence

    Returns
    -------
    (iqm, lower, upper) : tuple of float
    """
    a = np.asarray(scores, dtype=np.float64)
    a = a[:, None] if a.ndim == 1 else a
    est = interquartile_mean(a)
    check_level(confidence, "confidence")
    r, m = a.shape
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, r, size=(int(reps), r, m))
    boot = stats.trim_mean(np.take_along_axis(np.broadcast_to(a, (int(reps), r, m)), idx, axis=1).reshape(int(reps), -1), 0.25, axis=1)
    lo, hi = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    return est, float(lo), float(hi)

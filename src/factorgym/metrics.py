"""Portfolio and distributional metrics as pure functions of numpy arrays.

Everything here is numpy/scipy (plus ``scoringrules`` for CRPS and the energy score); no
function keeps state, reads global RNG state or changes warning filters.

Conventions
-----------
Portfolio metrics take **simple** daily net returns (after costs) ``r_t``; the first axis is
time, so a ``(T,)`` series or ``(T, K)`` columns (e.g. ``K`` strategies or simulated paths).

* Wealth ``W_t = prod_{s<=t} (1 + r_s)`` with ``W_0 = 1``.
* Annualisation uses ``P = periods_per_year`` (252): returns geometrically
  (``W_T^(P/T) - 1``), volatilities and ratios with ``sqrt(P)``.
* Standard deviations use ``ddof=1``; the downside deviation of the Sortino ratio uses all
  ``T`` observations (``ddof=0``, Sortino & Price 1994).
* The risk-free rate ``risk_free`` is an **annual** rate, converted to a per-period rate
  geometrically: ``rf_d = (1 + risk_free)^(1/P) - 1``.
* Risk measures are **positive losses**: VaR, CVaR and drawdowns are >= 0 when money is lost.
* Historical VaR/CVaR use the empirical distribution (Rockafellar & Uryasev 2002), the same
  convention as :mod:`skfolio.measures`: with ``k = (1 - level) T``, VaR is the
  ``(floor(k) + 1)``-th largest loss and CVaR is the mean of the worst ``k`` losses (the
  ``(floor(k)+1)``-th one weighted by ``k - floor(k)``).

Distributional metrics score predictive distributions against realised values:
calibration error from PIT values, whitened-covariance tests, VaR backtests, CRPS / energy
score from samples, and stylized facts of return paths.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from factorgym.errors import DataValidationError

__all__ = [
    # portfolio
    "accumulated_return",
    "annualised_return",
    "annualised_volatility",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "drawdown_series",
    "max_drawdown",
    "historical_var",
    "historical_cvar",
    "hit_rate",
    "portfolio_metrics",
    # calibration
    "DEFAULT_CALIBRATION_LEVELS",
    "calibration_levels",
    "calibration_curve",
    "calibration_error",
    "pit_from_samples",
    "portfolio_pit",
    # covariance
    "BoxMResult",
    "covariance_mse",
    "whiten",
    "box_m_identity",
    # VaR backtests
    "LRTest",
    "VaRBacktest",
    "kupiec_pof",
    "christoffersen_independence",
    "var_backtest",
    # scoring rules
    "crps_ensemble",
    "energy_score",
    # stylized facts
    "excess_kurtosis",
    "acf",
    "leverage_effect",
    "correlation_matrix",
    "correlation_distance",
    "StylizedFacts",
    "StylizedFactsComparison",
    "stylized_facts",
    "compare_stylized_facts",
]

# ====================================================================== helpers


def _series(x: ArrayLike, name: str = "returns", *, allow_2d: bool = True) -> np.ndarray:
    """A finite float64 array of shape ``(T,)`` or ``(T, K)`` with ``T >= 1``."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim not in ((1, 2) if allow_2d else (1,)):
        want = "(T,) or (T, K)" if allow_2d else "(T,)"
        raise DataValidationError(f"{name} must have shape {want}, got {a.shape}")
    if a.shape[0] == 0:
        raise DataValidationError(f"{name} is empty")
    bad = ~np.isfinite(a)
    if bad.any():
        first = np.argwhere(bad)[0]
        raise DataValidationError(f"{name} contains NaN/inf (first at index {tuple(int(i) for i in first)})")
    return a


def _simple_returns(x: ArrayLike, name: str = "returns", *, allow_2d: bool = True) -> np.ndarray:
    a = _series(x, name, allow_2d=allow_2d)
    if (a < -1.0).any():
        raise DataValidationError(f"{name} has simple returns below -100% (are these log returns or percentages?)")
    return a


def _scalar(x: np.ndarray | float) -> float | np.ndarray:
    """Unwrap 0-d arrays to Python floats; keep arrays."""
    arr = np.asarray(x, dtype=np.float64)
    return float(arr) if arr.ndim == 0 else arr


def _ratio(num: np.ndarray | float, den: np.ndarray | float) -> float | np.ndarray:
    """``num / den`` with ``+-inf`` for a zero denominator and NaN for ``0/0`` (no warnings)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.sign(num) * np.inf)
        out = np.where((den == 0) & (num == 0), np.nan, out)
        out = np.where(np.isnan(den) | np.isnan(num), np.nan, out)
    return _scalar(out)


def _check_level(level: float, name: str = "level") -> float:
    level = float(level)
    if not 0.0 < level < 1.0:
        raise DataValidationError(f"{name} must lie strictly between 0 and 1, got {level}")
    return level


def _per_period_rf(risk_free: float, periods_per_year: int) -> float:
    if periods_per_year <= 0:
        raise DataValidationError(f"periods_per_year must be positive, got {periods_per_year}")
    if risk_free <= -1:
        raise DataValidationError(f"risk_free must exceed -100%, got {risk_free}")
    return float((1.0 + risk_free) ** (1.0 / periods_per_year) - 1.0)


# ====================================================================== portfolio metrics


def accumulated_return(returns: ArrayLike) -> float | np.ndarray:
    """Total compounded return ``W_T - 1 = prod_t (1 + r_t) - 1``.

    Parameters
    ----------
    returns : array_like of shape (T,) or (T, K)
        Simple per-period returns.

    Returns
    -------
    float or ndarray of shape (K,)
    """
    r = _simple_returns(returns)
    return _scalar(np.prod(1.0 + r, axis=0) - 1.0)


def annualised_return(returns: ArrayLike, periods_per_year: int = 252) -> float | np.ndarray:
    """Geometric annualised return (CAGR) ``W_T^(P/T) - 1``.

    Parameters
    ----------
    returns : array_like of shape (T,) or (T, K)
    periods_per_year : int
        ``P``; 252 for daily data.

    Returns
    -------
    float or ndarray of shape (K,)
    """
    r = _simple_returns(returns)
    if periods_per_year <= 0:
        raise DataValidationError(f"periods_per_year must be positive, got {periods_per_year}")
    with np.errstate(divide="ignore"):  # a -100% day gives log wealth -inf, i.e. -100% a year
        log_w = np.sum(np.log1p(r), axis=0)
    return _scalar(np.expm1(log_w * periods_per_year / r.shape[0]))


def annualised_volatility(returns: ArrayLike, periods_per_year: int = 252) -> float | np.ndarray:
    """``std(r, ddof=1) * sqrt(P)`` (NaN for a single observation).

    Parameters
    ----------
    returns : array_like of shape (T,) or (T, K)
    periods_per_year : int

    Returns
    -------
    float or ndarray of shape (K,)
    """
    r = _series(returns)
    if r.shape[0] < 2:
        return _scalar(np.full(r.shape[1:], np.nan))
    return _scalar(np.std(r, axis=0, ddof=1) * np.sqrt(periods_per_year))


def sharpe_ratio(
    returns: ArrayLike, risk_free: float = 0.0, periods_per_year: int = 252
) -> float | np.ndarray:
    """Annualised Sharpe ratio ``mean(r - rf_d) / std(r, ddof=1) * sqrt(P)``.

    ``rf_d = (1 + risk_free)^(1/P) - 1`` is the per-period rate of the annual ``risk_free``.
    A zero volatility gives ``+-inf`` (or NaN for a zero mean excess return).

    Parameters
    ----------
    returns : array_like of shape (T,) or (T, K)
    risk_free : float
        Annual risk-free rate (0 by default).
    periods_per_year : int

    Returns
    -------
    float or ndarray of shape (K,)
    """
    r = _series(returns)
    rf = _per_period_rf(risk_free, periods_per_year)
    if r.shape[0] < 2:
        return _scalar(np.full(r.shape[1:], np.nan))
    excess = np.mean(r, axis=0) - rf
    return _ratio(excess * np.sqrt(periods_per_year), np.std(r, axis=0, ddof=1))


def sortino_ratio(
    returns: ArrayLike, risk_free: float = 0.0, periods_per_year: int = 252
) -> float | np.ndarray:
    """Annualised Sortino ratio ``mean(r - rf_d) / DD * sqrt(P)``.

    The downside deviation uses the risk-free rate as target and all ``T`` observations:
    ``DD = sqrt(mean(min(r - rf_d, 0)^2))`` (Sortino & Price 1994). This equals
    ``skfolio.measures.semi_deviation(r, min_acceptable_return=rf_d, biased=True)``; note that
    skfolio's *default* semi-deviation targets the sample mean with ``ddof=1`` instead.

    Parameters
    ----------
    returns : array_like of shape (T,) or (T, K)
    risk_free : float
        Annual risk-free rate; also the target return.
    periods_per_year : int

    Returns
    -------
    float or ndarray of shape (K,)
        ``+inf`` when there is no downside and the mean excess return is positive.
    """
    r = _series(returns)
    rf = _per_period_rf(risk_free, periods_per_year)
    dd = np.sqrt(np.mean(np.minimum(r - rf, 0.0) ** 2, axis=0))
    return _ratio((np.mean(r, axis=0) - rf) * np.sqrt(periods_per_year), dd)


def drawdown_series(returns: ArrayLike) -> np.ndarray:
    """Drawdowns of compounded wealth as positive fractions, ``1 - W_t / max(1, max_{s<=t} W_s)``.

    The running peak starts at the initial wealth 1, so a loss on the first period is a
    drawdown. Equals ``-skfolio.measures.get_drawdowns(r, compounded=True)``.

    Parameters
    ----------
    returns : array_like of shape (T,) or (T, K)

    Returns
    -------
    ndarray of shape (T,) or (T, K)
        Values in ``[0, 1]``.
    """
    r = _simple_returns(returns)
    wealth = np.cumprod(1.0 + r, axis=0)
    peak = np.maximum(np.maximum.accumulate(wealth, axis=0), 1.0)
    return 1.0 - wealth / peak


def max_drawdown(returns: ArrayLike) -> float | np.ndarray:
    """Maximum drawdown ``max_t drawdown_t`` (positive fraction of peak wealth; 0 if none).

    Parameters
    ----------
    returns : array_like of shape (T,) or (T, K)

    Returns
    -------
    float or ndarray of shape (K,)
    """
    return _scalar(np.max(drawdown_series(returns), axis=0))


def calmar_ratio(returns: ArrayLike, periods_per_year: int = 252) -> float | np.ndarray:
    """Calmar ratio ``annualised_return / max_drawdown`` over the whole series (Young 1991).

    The survey's table (seed paper 001, section 11.4) divides the *mean per-period* return by
    the MDD instead; ours uses the geometric annualised return so values are comparable
    across horizons. ``+inf`` when there is no drawdown and the return is positive.

    Parameters
    ----------
    returns : array_like of shape (T,) or (T, K)
    periods_per_year : int

    Returns
    -------
    float or ndarray of shape (K,)
    """
    return _ratio(annualised_return(returns, periods_per_year), max_drawdown(returns))


def _sorted_losses(returns: ArrayLike) -> np.ndarray:
    """Losses ``-r`` sorted in decreasing order along axis 0 (largest loss first)."""
    r = _series(returns)
    return -np.sort(r, axis=0)


def historical_var(returns: ArrayLike, level: float = 0.95) -> float | np.ndarray:
    """Historical Value-at-Risk at confidence ``level`` as a positive loss.

    ``VaR = inf{l : F_L(l) >= level}`` for the empirical loss distribution: with
    ``k = (1 - level) T`` it is the ``(floor(k) + 1)``-th largest loss (e.g. the 6th largest of
    100 at 95%). Same convention as ``skfolio.measures.value_at_risk``.

    Parameters
    ----------
    returns : array_like of shape (T,) or (T, K)
    level : float
        Confidence level in (0, 1), e.g. 0.95.

    Returns
    -------
    float or ndarray of shape (K,)
        Negative when even the tail outcome is a gain.
    """
    level = _check_level(level)
    losses = _sorted_losses(returns)
    n = losses.shape[0]
    k = (1.0 - level) * n
    # tolerance: (1 - 0.95) * 100 is 4.999...; it means the integer 5
    i = min(n - 1, int(np.floor(k + 1e-9)))
    return _scalar(losses[i])


def historical_cvar(returns: ArrayLike, level: float = 0.95) -> float | np.ndarray:
    """Historical Conditional VaR (expected shortfall) at ``level`` as a positive loss.

    Rockafellar & Uryasev (2002) on the empirical distribution: with ``k = (1 - level) T``
    and ``m = floor(k)``, ``CVaR = (sum of the m largest losses + (k - m) * (m+1)-th largest) / k``;
    the mean of the worst ``k`` losses when ``k`` is an integer. ``CVaR >= VaR``. Same
    convention as ``skfolio.measures.cvar``.

    Parameters
    ----------
    returns : array_like of shape (T,) or (T, K)
    level : float
        Confidence level in (0, 1).

    Returns
    -------
    float or ndarray of shape (K,)
    """
    level = _check_level(level)
    losses = _sorted_losses(returns)
    n = losses.shape[0]
    k = (1.0 - level) * n
    m = int(np.floor(k))
    total = np.sum(losses[:m], axis=0)
    if m < n:
        total = total + (k - m) * losses[m]
    return _scalar(total / k)


def hit_rate(returns: ArrayLike) -> float | np.ndarray:
    """Fraction of periods with a strictly positive return.

    Parameters
    ----------
    returns : array_like of shape (T,) or (T, K)

    Returns
    -------
    float or ndarray of shape (K,)
    """
    r = _series(returns)
    return _scalar(np.mean(r > 0, axis=0))


def portfolio_metrics(
    returns: ArrayLike,
    turnover: ArrayLike | None = None,
    costs: ArrayLike | None = None,
    periods_per_year: int = 252,
    risk_free: float = 0.0,
) -> dict[str, float]:
    """All portfolio metrics of one series of daily net returns.

    Parameters
    ----------
    returns : array_like of shape (T,)
        Simple net returns (after costs).
    turnover : array_like of shape (T,), optional
        Per-period turnover in the caller's convention (e.g. ``sum_i |w_i,t - w_i,t-|``).
    costs : array_like of shape (T,), optional
        Per-period costs as a fraction of portfolio value (already deducted from ``returns``).
    periods_per_year : int
    risk_free : float
        Annual risk-free rate for Sharpe and Sortino.

    Returns
    -------
    dict of str to float
        ``n_periods``, ``accumulated_return``, ``annualised_return``,
        ``annualised_volatility``, ``sharpe``, ``sortino``, ``calmar``, ``max_drawdown``,
        ``var_95``, ``cvar_95``, ``hit_rate``; with ``turnover``: ``mean_turnover``
        (per period), ``annualised_turnover`` (mean * P), ``total_turnover``; with ``costs``:
        ``total_costs`` (sum), ``annualised_costs`` (mean * P).
    """
    r = _simple_returns(returns, allow_2d=False)
    out: dict[str, float] = {
        "n_periods": float(r.shape[0]),
        "accumulated_return": float(accumulated_return(r)),
        "annualised_return": float(annualised_return(r, periods_per_year)),
        "annualised_volatility": float(annualised_volatility(r, periods_per_year)),
        "sharpe": float(sharpe_ratio(r, risk_free, periods_per_year)),
        "sortino": float(sortino_ratio(r, risk_free, periods_per_year)),
        "calmar": float(calmar_ratio(r, periods_per_year)),
        "max_drawdown": float(max_drawdown(r)),
        "var_95": float(historical_var(r, 0.95)),
        "cvar_95": float(historical_cvar(r, 0.95)),
        "hit_rate": float(hit_rate(r)),
    }
    for name, values in (("turnover", turnover), ("costs", costs)):
        if values is None:
            continue
        v = _series(values, name, allow_2d=False)
        if v.shape != r.shape:
            raise DataValidationError(f"{name} has shape {v.shape}; returns have {r.shape}")
        if (v < 0).any():
            raise DataValidationError(f"{name} must be non-negative")
        if name == "turnover":
            out["mean_turnover"] = float(v.mean())
            out["annualised_turnover"] = float(v.mean() * periods_per_year)
            out["total_turnover"] = float(v.sum())
        else:
            out["total_costs"] = float(v.sum())
            out["annualised_costs"] = float(v.mean() * periods_per_year)
    return out


# ====================================================================== calibration

#: Number of probability levels of the calibration error (NeuralFactors section 5.2.3).
DEFAULT_CALIBRATION_LEVELS = 100


def calibration_levels(n_levels: int = DEFAULT_CALIBRATION_LEVELS) -> np.ndarray:
    """Evenly spaced interior probability levels ``p_j = j / (M + 1)``, ``j = 1..M``.

    Parameters
    ----------
    n_levels : int
        ``M`` (100 as in NeuralFactors).

    Returns
    -------
    ndarray of shape (M,)
    """
    if n_levels < 1:
        raise DataValidationError(f"n_levels must be positive, got {n_levels}")
    return np.arange(1, n_levels + 1, dtype=np.float64) / (n_levels + 1)


def _pit_values(pit: ArrayLike) -> np.ndarray:
    u = np.asarray(pit, dtype=np.float64)
    if np.isinf(u).any() or ((u < 0) | (u > 1)).any():
        raise DataValidationError("PIT values must lie in [0, 1] (NaN marks a missing value)")
    return u


def calibration_curve(pit: ArrayLike, levels: ArrayLike | None = None) -> np.ndarray:
    """Observed frequencies ``p_hat_j = #{n : u_n < p_j} / n`` for a reliability diagram.

    Parameters
    ----------
    pit : array_like of shape (n,) or (n, K)
        PIT values ``u_n = F_n(y_n)`` of realised outcomes under their predictive CDFs.
        NaN entries are ignored (per column).
    levels : array_like of shape (M,), optional
        Probability levels; :func:`calibration_levels` by default.

    Returns
    -------
    ndarray of shape (M,) or (M, K)
        NaN for a column without values.
    """
    u = _pit_values(pit)
    p = calibration_levels() if levels is None else np.asarray(levels, dtype=np.float64)
    if u.ndim not in (1, 2) or p.ndim != 1:
        raise DataValidationError(f"pit must be (n,) or (n, K) and levels (M,); got {u.shape} and {p.shape}")
    cols = u.reshape(u.shape[0], -1)
    srt = np.sort(cols, axis=0)  # NaN sorts last, above every level
    count = np.sum(~np.isnan(cols), axis=0)
    below = np.stack([np.searchsorted(srt[:, k], p, side="left") for k in range(cols.shape[1])], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = below / count
    return out[:, 0] if u.ndim == 1 else out


def calibration_error(pit: ArrayLike, levels: ArrayLike | None = None) -> float | np.ndarray:
    """Calibration error of Kuleshov et al. (2018), NeuralFactors eq. 12.

    ``cal = sum_{j=1}^{M} (p_j - p_hat_j)^2`` with ``p_hat_j`` the fraction of PIT values below
    ``p_j`` and ``M = 100`` levels ``p_j = j / (M + 1)`` by default. Zero for perfectly
    calibrated forecasts; for ``n`` i.i.d. uniform PIT values its expectation is
    ``sum_j p_j (1 - p_j) / n`` (sampling noise, about ``16.8 / n`` for ``M = 100``).

    Parameters
    ----------
    pit : array_like of shape (n,) or (n, K)
        PIT values in [0, 1]; NaN entries are ignored (per column).
    levels : array_like of shape (M,), optional

    Returns
    -------
    float or ndarray of shape (K,)
        NaN for a column without values.
    """
    p = calibration_levels() if levels is None else np.asarray(levels, dtype=np.float64)
    p_hat = calibration_curve(pit, p)
    diff2 = (p.reshape((-1,) + (1,) * (p_hat.ndim - 1)) - p_hat) ** 2
    return _scalar(diff2.sum(axis=0))


def pit_from_samples(
    samples: ArrayLike, observed: ArrayLike, rng: np.random.Generator | None = None
) -> float | np.ndarray:
    """Probability integral transform of ``observed`` under the empirical law of ``samples``.

    With ``k = #{x_s < y}`` and ``e = #{x_s == y}`` among ``S`` samples, the randomised PIT is
    ``(k + U (e + 1)) / (S + 1)`` with ``U ~ Uniform(0, 1)``: if ``y`` and the samples are
    i.i.d. draws of one continuous law, the rank ``k`` is uniform on ``{0..S}`` and the PIT is
    *exactly* Uniform(0, 1) for any ``S``. Without ``rng``, ``U = 1/2`` (deterministic).

    Parameters
    ----------
    samples : array_like of shape (S, ...)
    observed : array_like of shape (...)
    rng : numpy.random.Generator, optional

    Returns
    -------
    float or ndarray of shape (...)
        Values in (0, 1); NaN where ``observed`` is NaN.
    """
    x = np.asarray(samples, dtype=np.float64)
    y = np.asarray(observed, dtype=np.float64)
    if x.ndim < 1 or x.shape[1:] != y.shape:
        raise DataValidationError(f"samples {x.shape} must have shape (S, *observed.shape) with observed {y.shape}")
    s = x.shape[0]
    if s < 1:
        raise DataValidationError("need at least one sample")
    k = np.sum(x < y, axis=0)
    e = np.sum(x == y, axis=0)
    u = 0.5 if rng is None else rng.random(y.shape)
    out = (k + u * (e + 1)) / (s + 1)
    return _scalar(np.where(np.isnan(y), np.nan, out))


def portfolio_pit(
    samples: ArrayLike,
    observed: ArrayLike,
    weights: ArrayLike | None = None,
    rng: np.random.Generator | None = None,
) -> float:
    """PIT of a portfolio's realised return under joint samples of the asset returns.

    The portfolio return is ``w' r`` over the assets whose ``observed`` value is not NaN,
    with ``w`` renormalised to sum to one over them (equal weights by default); its PIT is
    :func:`pit_from_samples` of ``w' x_s`` for the joint samples ``x_s``.

    Parameters
    ----------
    samples : array_like of shape (S, N)
        Joint draws of the next-day returns.
    observed : array_like of shape (N,)
        Realised returns; NaN for assets not in the portfolio that day.
    weights : array_like of shape (N,), optional
        Portfolio weights (renormalised over the available assets).
    rng : numpy.random.Generator, optional
        For the randomised PIT (see :func:`pit_from_samples`).

    Returns
    -------
    float
        NaN when no asset is available.
    """
    x = np.asarray(samples, dtype=np.float64)
    y = np.asarray(observed, dtype=np.float64)
    if x.ndim != 2 or y.shape != (x.shape[1],):
        raise DataValidationError(f"expected samples (S, N) and observed (N,); got {x.shape} and {y.shape}")
    m = ~np.isnan(y)
    if not m.any():
        return math.nan
    w = np.ones(y.shape) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != y.shape or not np.isfinite(w).all():
        raise DataValidationError(f"weights must be finite with shape {y.shape}")
    total = w[m].sum()
    if total == 0:
        raise DataValidationError("portfolio weights of the available assets sum to zero")
    wm = w[m] / total
    return float(pit_from_samples(x[:, m] @ wm, y[m] @ wm, rng))


# ====================================================================== covariance


def covariance_mse(predicted: ArrayLike, target: ArrayLike) -> float | np.ndarray:
    """Mean squared elementwise error between covariance matrices.

    ``mean_{i,j} (predicted_ij - target_ij)^2`` over the last two axes.

    Parameters
    ----------
    predicted, target : array_like of shape (..., N, N)

    Returns
    -------
    float or ndarray of shape (...)
    """
    a = np.asarray(predicted, dtype=np.float64)
    b = np.asarray(target, dtype=np.float64)
    if a.shape != b.shape or a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise DataValidationError(f"covariance shapes {a.shape} and {b.shape} must be equal (..., N, N)")
    return _scalar(np.mean((a - b) ** 2, axis=(-2, -1)))


def whiten(
    returns: ArrayLike,
    mean: ArrayLike,
    cov: ArrayLike,
    method: Literal["symmetric", "cholesky"] = "symmetric",
) -> np.ndarray:
    """Whiten realised returns by their predicted moments.

    ``symmetric`` (default): ``z = cov^{-1/2} (r - mean)`` with the symmetric inverse square
    root ``V diag(lambda^{-1/2}) V'`` (NeuralFactors section 5.2.2); invariant to the order
    of assets. ``cholesky``: ``z = L^{-1} (r - mean)`` with ``cov = L L'``; invariant to a
    per-asset rescaling of the data but depends on asset order. If the predictions are
    right, ``z`` has mean 0 and identity covariance either way.

    Parameters
    ----------
    returns, mean : array_like of shape (D, N)
    cov : array_like of shape (D, N, N)
        Symmetric positive-definite predicted covariances.
    method : {"symmetric", "cholesky"}

    Returns
    -------
    ndarray of shape (D, N)
    """
    r = np.asarray(returns, dtype=np.float64)
    mu = np.asarray(mean, dtype=np.float64)
    c = np.asarray(cov, dtype=np.float64)
    if r.ndim != 2 or mu.shape != r.shape or c.shape != (*r.shape, r.shape[1]):
        raise DataValidationError(f"expected returns/mean (D, N) and cov (D, N, N); got {r.shape}, {mu.shape}, {c.shape}")
    e = (r - mu)[..., None]
    if method == "symmetric":
        lam, vec = np.linalg.eigh(c)
        if (lam <= 0).any():
            bad = int(np.nonzero((lam <= 0).any(axis=1))[0][0])
            raise DataValidationError(f"predicted covariance of row {bad} is not positive definite")
        inv_root = (vec / np.sqrt(lam)[:, None, :]) @ np.swapaxes(vec, -1, -2)
        return (inv_root @ e)[..., 0]
    if method == "cholesky":
        try:
            chol = np.linalg.cholesky(c)
        except np.linalg.LinAlgError as exc:
            raise DataValidationError(f"a predicted covariance is not positive definite: {exc}") from exc
        return np.linalg.solve(chol, e)[..., 0]
    raise DataValidationError(f"unknown whitening method {method!r}; use 'symmetric' or 'cholesky'")


@dataclass(frozen=True)
class BoxMResult:
    """Box's M test of ``H0: Cov(z) = I`` for whitened vectors (see :func:`box_m_identity`).

    Attributes
    ----------
    statistic : float
        Box-corrected likelihood-ratio statistic ``rho * n * divergence``.
    dof : int
        ``p (p + 1) / 2``.
    pvalue : float
        ``P(chi2(dof) > statistic)``.
    divergence : float
        ``tr(S) - log det S - p`` = ``2 KL(N(0, S) || N(0, I))``; per-observation, comparable
        across sample sizes (0 iff ``S = I``).
    n_obs : int
        Number of vectors.
    dim : int
        Dimension ``p``.
    """

    statistic: float
    dof: int
    pvalue: float
    divergence: float
    n_obs: int
    dim: int


def box_m_identity(z: ArrayLike) -> BoxMResult:
    """Test whether vectors ``z`` have identity covariance (Box 1949; Anderson 2003, 10.8).

    With ``n = D - 1`` and ``S`` the sample covariance (``ddof=1``, mean estimated), the
    modified likelihood-ratio statistic for ``H0: Sigma = I`` is
    ``n (tr S - log det S - p)``; Box's factor ``rho = 1 - (2p^2 + 3p - 1) / (6 n (p + 1))``
    makes ``rho n (tr S - log det S - p)`` close to ``chi2(p (p + 1) / 2)`` under H0 even for
    small ``n``. ``log det S`` comes from a Cholesky factorisation (no overflow).

    Parameters
    ----------
    z : array_like of shape (D, p)
        Whitened returns (see :func:`whiten`); needs ``D - 1 >= p``.

    Returns
    -------
    BoxMResult
    """
    x = _series(z, "whitened returns")
    if x.ndim != 2:
        raise DataValidationError(f"whitened returns must be (D, p), got {x.shape}")
    d, p = x.shape
    n = d - 1
    if n < p:
        raise DataValidationError(f"Box's M needs more observations than dimensions plus one; got D={d}, p={p}")
    s = np.cov(x, rowvar=False, ddof=1).reshape(p, p)
    try:
        chol = np.linalg.cholesky(s)
    except np.linalg.LinAlgError as exc:
        raise DataValidationError("sample covariance of the whitened returns is singular") from exc
    logdet = 2.0 * np.sum(np.log(np.diag(chol)))
    divergence = float(np.trace(s) - logdet - p)
    rho = 1.0 - (2 * p * p + 3 * p - 1) / (6.0 * n * (p + 1))
    statistic = float(rho * n * divergence)
    dof = p * (p + 1) // 2
    return BoxMResult(statistic, dof, float(stats.chi2.sf(statistic, dof)), divergence, d, p)


# ====================================================================== VaR backtests


@dataclass(frozen=True)
class LRTest:
    """A likelihood-ratio test: ``statistic`` ~ ``chi2(dof)`` under H0, ``pvalue`` its tail."""

    statistic: float
    dof: int
    pvalue: float


@dataclass(frozen=True)
class VaRBacktest:
    """Backtest of a VaR forecast series (see :func:`var_backtest`).

    Attributes
    ----------
    n : int
        Number of days.
    exceedances : int
        Days whose loss exceeded the VaR.
    expected_rate : float
        ``1 - level``.
    observed_rate : float
        ``exceedances / n``.
    pof : LRTest
        Kupiec's proportion-of-failures test (unconditional coverage).
    independence : LRTest
        Christoffersen's Markov independence test.
    conditional_coverage : LRTest
        Christoffersen's joint test (chi2(2)).
    """

    n: int
    exceedances: int
    expected_rate: float
    observed_rate: float
    pof: LRTest
    independence: LRTest
    conditional_coverage: LRTest

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-serialisable dict."""
        return asdict(self)


def _hits(hits: ArrayLike) -> np.ndarray:
    h = np.asarray(hits)
    if h.ndim != 1 or h.size == 0:
        raise DataValidationError(f"hits must be a non-empty 1-D sequence, got shape {h.shape}")
    if h.dtype != bool:
        hf = np.asarray(h, dtype=np.float64)
        if not np.isin(hf, (0.0, 1.0)).all():
            raise DataValidationError("hits must be booleans or 0/1")
        h = hf.astype(bool)
    return h


def _xlogy(x: float, y: float) -> float:
    """``x log y`` with ``0 log 0 = 0``."""
    return 0.0 if x == 0 else float(x * np.log(y))


def _bernoulli_loglik(n0: float, n1: float, prob: float) -> float:
    """``n0 log(1 - prob) + n1 log(prob)`` with ``0 log 0 = 0``."""
    return _xlogy(n0, 1.0 - prob) + _xlogy(n1, prob)


def _lr(statistic: float, dof: int) -> LRTest:
    statistic = float(statistic) if statistic > 0 else 0.0  # rounding can make a zero LR slightly negative
    return LRTest(statistic, dof, float(stats.chi2.sf(statistic, dof)))


def kupiec_pof(hits: ArrayLike, level: float = 0.95) -> LRTest:
    """Kupiec (1995) proportion-of-failures test of the exceedance rate.

    With ``x`` exceedances in ``T`` days, ``p = 1 - level`` and ``p_hat = x / T``::

        LR_pof = -2 [ (T - x) log(1 - p) + x log p - (T - x) log(1 - p_hat) - x log p_hat ]

    (``0 log 0 = 0``), asymptotically ``chi2(1)``.

    Parameters
    ----------
    hits : array_like of shape (T,)
        True (or 1) on days whose loss exceeded the VaR.
    level : float
        VaR confidence level, e.g. 0.95.

    Returns
    -------
    LRTest
    """
    h = _hits(hits)
    p = 1.0 - _check_level(level)
    n = h.size
    x = int(h.sum())
    p_hat = x / n
    stat = -2.0 * (_bernoulli_loglik(n - x, x, p) - _bernoulli_loglik(n - x, x, p_hat))
    return _lr(stat, 1)


def _transitions(h: np.ndarray) -> tuple[int, int, int, int]:
    prev, nxt = h[:-1], h[1:]
    n00 = int(np.sum(~prev & ~nxt))
    n01 = int(np.sum(~prev & nxt))
    n10 = int(np.sum(prev & ~nxt))
    n11 = int(np.sum(prev & nxt))
    return n00, n01, n10, n11


def christoffersen_independence(hits: ArrayLike) -> LRTest:
    """Christoffersen (1998) test that exceedances are not clustered (first-order Markov).

    With transition counts ``n_ij`` (state ``i`` followed by ``j``),
    ``pi_01 = n01 / (n00 + n01)``, ``pi_11 = n11 / (n10 + n11)`` and
    ``pi = (n01 + n11) / (T - 1)``::

        LR_ind = -2 [ (n00 + n10) log(1 - pi) + (n01 + n11) log pi
                      - n00 log(1 - pi_01) - n01 log pi_01 - n10 log(1 - pi_11) - n11 log pi_11 ]

    (``0 log 0 = 0``; an empty row's probability is irrelevant), asymptotically ``chi2(1)``.
    Zero when there are no exceedances, or only exceedances.

    Parameters
    ----------
    hits : array_like of shape (T,), T >= 2

    Returns
    -------
    LRTest
    """
    h = _hits(hits)
    if h.size < 2:
        raise DataValidationError("the independence test needs at least two days")
    n00, n01, n10, n11 = _transitions(h)
    pi = (n01 + n11) / (h.size - 1)
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    restricted = _bernoulli_loglik(n00 + n10, n01 + n11, pi)
    unrestricted = _bernoulli_loglik(n00, n01, pi01) + _bernoulli_loglik(n10, n11, pi11)
    return _lr(-2.0 * (restricted - unrestricted), 1)


def var_backtest(hits: ArrayLike, level: float = 0.95) -> VaRBacktest:
    """Kupiec POF, Christoffersen independence and conditional-coverage tests of VaR hits.

    The conditional-coverage statistic is Christoffersen's joint likelihood ratio on the
    ``T - 1`` transitions, ``LR_cc = -2 [log L(p) - log L(pi_01, pi_11)]``, which equals
    ``LR_pof(hits[1:]) + LR_ind`` exactly (so it differs from ``pof + independence`` by the
    first day's contribution to ``pof``), asymptotically ``chi2(2)``.

    Parameters
    ----------
    hits : array_like of shape (T,), T >= 2
        True on days whose loss exceeded the VaR forecast.
    level : float
        VaR confidence level (expected exceedance rate ``1 - level``).

    Returns
    -------
    VaRBacktest
    """
    h = _hits(hits)
    level = _check_level(level)
    pof = kupiec_pof(h, level)
    ind = christoffersen_independence(h)
    n00, n01, n10, n11 = _transitions(h)
    p = 1.0 - level
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    restricted = _bernoulli_loglik(n00 + n10, n01 + n11, p)
    unrestricted = _bernoulli_loglik(n00, n01, pi01) + _bernoulli_loglik(n10, n11, pi11)
    cc = _lr(-2.0 * (restricted - unrestricted), 2)
    x = int(h.sum())
    return VaRBacktest(int(h.size), x, p, x / h.size, pof, ind, cc)


# ====================================================================== scoring rules


def crps_ensemble(observed: ArrayLike, samples: ArrayLike) -> float | np.ndarray:
    """CRPS of a sample ensemble, the *fair* (unbiased) estimator, via ``scoringrules``.

    ``CRPS(F, y) = E|X - y| - E|X - X'| / 2``; the fair estimator divides the ensemble
    spread by ``S (S - 1)``, so it is unbiased for the CRPS of the distribution the samples
    come from (computed with scoringrules' ``"pwm"`` estimator, algebraically the fair one,
    in ``O(S log S)``). Lower is better; units of ``observed``.

    Parameters
    ----------
    observed : array_like of shape (...)
    samples : array_like of shape (S, ...), S >= 2
        Ensemble members along the **first** axis.

    Returns
    -------
    float or ndarray of shape (...)
    """
    import scoringrules as sr

    y = np.asarray(observed, dtype=np.float64)
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim < 1 or x.shape[1:] != y.shape:
        raise DataValidationError(f"samples {x.shape} must have shape (S, *observed.shape) with observed {y.shape}")
    if x.shape[0] < 2:
        raise DataValidationError("the fair CRPS needs at least two samples")
    out = sr.crps_ensemble(y, x, m_axis=0, estimator="pwm", backend="numpy")
    return _scalar(out)


def energy_score(observed: ArrayLike, samples: ArrayLike) -> float | np.ndarray:
    """Energy score of a multivariate sample ensemble (fair estimator) via ``scoringrules``.

    ``ES(F, y) = E||X - y|| - E||X - X'|| / 2`` (Euclidean norm; Gneiting & Raftery 2007),
    with the spread term averaged over the ``S (S - 1)`` distinct pairs. A degenerate
    ensemble at ``x`` scores ``||x - y||``. Memory is ``O(S^2 N)`` per forecast: keep ``S``
    in the hundreds.

    Parameters
    ----------
    observed : array_like of shape (..., N)
    samples : array_like of shape (S, ..., N), S >= 2
        Ensemble members along the **first** axis, variables along the last.

    Returns
    -------
    float or ndarray of shape (...)
    """
    import scoringrules as sr

    y = np.asarray(observed, dtype=np.float64)
    x = np.asarray(samples, dtype=np.float64)
    if y.ndim < 1 or x.shape[1:] != y.shape:
        raise DataValidationError(f"samples {x.shape} must have shape (S, *observed.shape) with observed {y.shape}")
    if x.shape[0] < 2:
        raise DataValidationError("the fair energy score needs at least two samples")
    out = sr.es_ensemble(y, x, m_axis=0, v_axis=-1, estimator="fair", backend="numpy")
    return _scalar(out)


# ====================================================================== stylized facts


def excess_kurtosis(x: ArrayLike) -> float | np.ndarray:
    """Excess kurtosis ``m4 / m2^2 - 3`` with biased central moments (Fisher, ``bias=True``).

    Parameters
    ----------
    x : array_like of shape (T, ...)
        Time along the first axis.

    Returns
    -------
    float or ndarray of shape (...)
        NaN for a constant series.
    """
    a = np.asarray(x, dtype=np.float64)
    d = a - a.mean(axis=0)
    m2 = np.mean(d**2, axis=0)
    m4 = np.mean(d**4, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _scalar(np.where(m2 > 0, m4 / np.where(m2 > 0, m2, 1.0) ** 2 - 3.0, np.nan))


def acf(x: ArrayLike, max_lag: int) -> np.ndarray:
    """Sample autocorrelation at lags ``1..max_lag`` (the standard biased estimator).

    ``rho(k) = sum_{t=1}^{T-k} (x_t - xbar)(x_{t+k} - xbar) / sum_{t=1}^{T} (x_t - xbar)^2``
    (as ``statsmodels.tsa.stattools.acf(adjusted=False)``).

    Parameters
    ----------
    x : array_like of shape (T, ...)
        Time along the first axis; ``T > max_lag``.
    max_lag : int

    Returns
    -------
    ndarray of shape (max_lag, ...)
    """
    a = np.asarray(x, dtype=np.float64)
    if max_lag < 1 or a.shape[0] <= max_lag:
        raise DataValidationError(f"need 1 <= max_lag < T; got max_lag={max_lag}, T={a.shape[0]}")
    d = a - a.mean(axis=0)
    c0 = np.sum(d * d, axis=0)
    out = np.stack([np.sum(d[:-k] * d[k:], axis=0) for k in range(1, max_lag + 1)])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c0 > 0, out / np.where(c0 > 0, c0, 1.0), np.nan)


def leverage_effect(x: ArrayLike, max_lag: int) -> np.ndarray:
    """Leverage correlation ``L(k) = corr(r_t, r_{t+k}^2)`` at lags ``1..max_lag``.

    Pearson correlation over the ``T - k`` pairs; negative for equities (falls predict
    higher volatility).

    Parameters
    ----------
    x : array_like of shape (T, ...)
    max_lag : int

    Returns
    -------
    ndarray of shape (max_lag, ...)
    """
    a = np.asarray(x, dtype=np.float64)
    if max_lag < 1 or a.shape[0] <= max_lag + 1:
        raise DataValidationError(f"need 1 <= max_lag < T - 1; got max_lag={max_lag}, T={a.shape[0]}")
    out = []
    for k in range(1, max_lag + 1):
        u = a[:-k] - a[:-k].mean(axis=0)
        v = a[k:] ** 2
        v = v - v.mean(axis=0)
        den = np.sqrt(np.sum(u * u, axis=0) * np.sum(v * v, axis=0))
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(den > 0, np.sum(u * v, axis=0) / np.where(den > 0, den, 1.0), np.nan))
    return np.stack(out)


def correlation_matrix(x: ArrayLike) -> np.ndarray:
    """Pearson correlation matrix of the columns of ``x``.

    Parameters
    ----------
    x : array_like of shape (T, N) or (P, T, N)

    Returns
    -------
    ndarray of shape (N, N) or (P, N, N)
    """
    a = np.asarray(x, dtype=np.float64)
    if a.ndim not in (2, 3):
        raise DataValidationError(f"expected (T, N) or (P, T, N), got {a.shape}")
    d = a - a.mean(axis=-2, keepdims=True)
    c = np.swapaxes(d, -1, -2) @ d
    sd = np.sqrt(np.diagonal(c, axis1=-2, axis2=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return c / (sd[..., :, None] * sd[..., None, :])


def correlation_distance(a: ArrayLike, b: ArrayLike) -> float | np.ndarray:
    """Frobenius distance ``||C_a - C_b||_F`` between correlation matrices.

    Parameters
    ----------
    a, b : array_like of shape (..., N, N)
        Correlation matrices (see :func:`correlation_matrix`); broadcast against each other.

    Returns
    -------
    float or ndarray of shape (...)
    """
    ca = np.asarray(a, dtype=np.float64)
    cb = np.asarray(b, dtype=np.float64)
    return _scalar(np.sqrt(np.sum((ca - cb) ** 2, axis=(-2, -1))))


@dataclass(frozen=True)
class StylizedFacts:
    """Stylized facts of one or more return paths, averaged over assets.

    Attributes
    ----------
    kurtosis : ndarray of shape () or (P,)
        Excess kurtosis, mean over assets.
    acf : ndarray of shape (L,) or (P, L)
        ACF of returns at lags ``1..L``, mean over assets.
    abs_acf : ndarray of shape (L,) or (P, L)
        ACF of absolute returns (volatility clustering).
    leverage : ndarray of shape (L,) or (P, L)
        ``corr(r_t, r_{t+k}^2)``, mean over assets.
    corr : ndarray of shape (N, N) or (P, N, N)
        Cross-sectional correlation matrix.
    """

    kurtosis: np.ndarray
    acf: np.ndarray
    abs_acf: np.ndarray
    leverage: np.ndarray
    corr: np.ndarray


def stylized_facts(paths: ArrayLike, max_lag: int = 10) -> StylizedFacts:
    """Stylized facts of a ``(H, N)`` path or of ``(P, H, N)`` paths (each path separately).

    Parameters
    ----------
    paths : array_like of shape (H, N) or (P, H, N)
        Simple returns, finite.
    max_lag : int
        Largest lag ``L`` of the ACFs and the leverage correlation.

    Returns
    -------
    StylizedFacts
        Per path (leading ``P`` axis) when ``paths`` is 3-D.
    """
    a = np.asarray(paths, dtype=np.float64)
    if a.ndim not in (2, 3):
        raise DataValidationError(f"paths must be (H, N) or (P, H, N), got {a.shape}")
    if not np.isfinite(a).all():
        raise DataValidationError("paths contain NaN/inf")
    x = a if a.ndim == 3 else a[None]
    xt = np.moveaxis(x, 1, 0)  # (H, P, N): time first for the helpers
    facts = StylizedFacts(
        kurtosis=np.nanmean(np.asarray(excess_kurtosis(xt)), axis=-1),
        acf=np.moveaxis(np.nanmean(acf(xt, max_lag), axis=-1), 0, -1),
        abs_acf=np.moveaxis(np.nanmean(acf(np.abs(xt), max_lag), axis=-1), 0, -1),
        leverage=np.moveaxis(np.nanmean(leverage_effect(xt, max_lag), axis=-1), 0, -1),
        corr=correlation_matrix(x),
    )
    if a.ndim == 2:
        facts = StylizedFacts(*(np.asarray(getattr(facts, f)[0]) for f in ("kurtosis", "acf", "abs_acf", "leverage", "corr")))
    return facts


@dataclass(frozen=True)
class StylizedFactsComparison:
    """Stylized facts of simulated paths against one real period (:func:`compare_stylized_facts`).

    Attributes
    ----------
    real : StylizedFacts
        Of the real ``(H, N)`` period.
    simulated : StylizedFacts
        Per simulated path (leading axis ``P``).
    distances : dict of str to float
        ``kurtosis``: ``|mean_p kurt_p - kurt_real|``;
        ``acf``, ``abs_acf``, ``leverage``: RMS over lags of ``mean_p curve_p - curve_real``;
        ``corr``: mean over paths of ``||C_p - C_real||_F`` (one simulated path against the
        one real path of the same length, so both carry the same sampling noise).
    """

    real: StylizedFacts
    simulated: StylizedFacts
    distances: dict[str, float]


def compare_stylized_facts(simulated: ArrayLike, real: ArrayLike, max_lag: int = 10) -> StylizedFactsComparison:
    """Distances between the stylized facts of simulated paths and of a real period.

    Parameters
    ----------
    simulated : array_like of shape (P, H, N)
        Simulated simple returns.
    real : array_like of shape (H', N)
        Realised simple returns of the same ``N`` assets (``H'`` need not equal ``H``, but
        equal lengths make the noise of both sides comparable).
    max_lag : int

    Returns
    -------
    StylizedFactsComparison
    """
    s = np.asarray(simulated, dtype=np.float64)
    r = np.asarray(real, dtype=np.float64)
    if s.ndim != 3 or r.ndim != 2 or s.shape[2] != r.shape[1]:
        raise DataValidationError(f"expected simulated (P, H, N) and real (H', N); got {s.shape} and {r.shape}")
    fs = stylized_facts(s, max_lag)
    fr = stylized_facts(r, max_lag)

    def rms(curves: np.ndarray, ref: np.ndarray) -> float:
        return float(np.sqrt(np.mean((np.nanmean(curves, axis=0) - ref) ** 2)))

    distances = {
        "kurtosis": float(abs(np.nanmean(fs.kurtosis) - fr.kurtosis)),
        "acf": rms(fs.acf, fr.acf),
        "abs_acf": rms(fs.abs_acf, fr.abs_acf),
        "leverage": rms(fs.leverage, fr.leverage),
        "corr": float(np.nanmean(np.asarray(correlation_distance(fs.corr, fr.corr)))),
    }
    return StylizedFactsComparison(fr, fs, distances)

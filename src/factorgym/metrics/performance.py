"""Portfolio performance metrics of simple per-period net returns.

Returns are **simple** per-period net returns, time along the first axis; ``risk_free`` is a
**per-period** rate used as given; risk measures are positive losses. The full conventions
(annualisation, ``ddof``, the empirical VaR/CVaR) are in the :mod:`factorgym.metrics` docstring.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from factorgym.errors import DataValidationError
from factorgym.metrics._common import (
    as_series,
    as_simple_returns,
    check_level,
    safe_ratio,
    to_scalar,
)

__all__ = [
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
]


def _checked_rate(risk_free: float, periods_per_year: int) -> float:
    """The per-period ``risk_free`` as a float, checked (> -100%), with a positive ``periods_per_year``."""
    if periods_per_year <= 0:
        raise DataValidationError(f"periods_per_year must be positive, got {periods_per_year}")
    if risk_free <= -1:
        raise DataValidationError(f"risk_free must exceed -100% per period, got {risk_free}")
    return float(risk_free)


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
    r = as_simple_returns(returns)
    return to_scalar(np.prod(1.0 + r, axis=0) - 1.0)


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
    r = as_simple_returns(returns)
    if periods_per_year <= 0:
        raise DataValidationError(f"periods_per_year must be positive, got {periods_per_year}")
    with np.errstate(divide="ignore"):  # a -100% day gives log wealth -inf, i.e. -100% a year
        log_w = np.sum(np.log1p(r), axis=0)
    return to_scalar(np.expm1(log_w * periods_per_year / r.shape[0]))


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
    r = as_series(returns)
    if r.shape[0] < 2:
        return to_scalar(np.full(r.shape[1:], np.nan))
    return to_scalar(np.std(r, axis=0, ddof=1) * np.sqrt(periods_per_year))


def sharpe_ratio(
    returns: ArrayLike, risk_free: float = 0.0, periods_per_year: int = 252
) -> float | np.ndarray:
    """Annualised Sharpe ratio ``mean(r - rf) / std(r, ddof=1) * sqrt(P)``.

    ``rf = risk_free`` is the per-period (daily) risk-free rate, used as given.
    A zero volatility gives ``+-inf`` (or NaN for a zero mean excess return).

    Parameters
    ----------
    returns : array_like of shape (T,) or (T, K)
    risk_free : float
        Per-period (daily) risk-free rate (0 by default).
    periods_per_year : int

    Returns
    -------
    float or ndarray of shape (K,)
    """
    r = as_series(returns)
    rf = _checked_rate(risk_free, periods_per_year)
    if r.shape[0] < 2:
        return to_scalar(np.full(r.shape[1:], np.nan))
    excess = np.mean(r, axis=0) - rf
    return safe_ratio(excess * np.sqrt(periods_per_year), np.std(r, axis=0, ddof=1))


def sortino_ratio(
    returns: ArrayLike, risk_free: float = 0.0, periods_per_year: int = 252
) -> float | np.ndarray:
    """Annualised Sortino ratio ``mean(r - rf) / DD * sqrt(P)``.

    The downside deviation uses the risk-free rate as target and all ``T`` observations:
    ``DD = sqrt(mean(min(r - rf, 0)^2))`` (Sortino & Price 1994). This equals
    ``skfolio.measures.semi_deviation(r, min_acceptable_return=rf, biased=True)``; note that
    skfolio's *default* semi-deviation targets the sample mean with ``ddof=1`` instead.

    Parameters
    ----------
    returns : array_like of shape (T,) or (T, K)
    risk_free : float
        Per-period (daily) risk-free rate ``rf``; also the target return.
    periods_per_year : int

    Returns
    -------
    float or ndarray of shape (K,)
        ``+inf`` when there is no downside and the mean excess return is positive.
    """
    r = as_series(returns)
    rf = _checked_rate(risk_free, periods_per_year)
    dd = np.sqrt(np.mean(np.minimum(r - rf, 0.0) ** 2, axis=0))
    return safe_ratio((np.mean(r, axis=0) - rf) * np.sqrt(periods_per_year), dd)


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
    r = as_simple_returns(returns)
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
    return to_scalar(np.max(drawdown_series(returns), axis=0))


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
    return safe_ratio(annualised_return(returns, periods_per_year), max_drawdown(returns))


def _sorted_losses(returns: ArrayLike) -> np.ndarray:
    """Losses ``-r`` sorted in decreasing order along axis 0 (largest loss first)."""
    r = as_series(returns)
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
    level = check_level(level)
    losses = _sorted_losses(returns)
    n = losses.shape[0]
    k = (1.0 - level) * n
    # tolerance: (1 - 0.95) * 100 is 4.999...; it means the integer 5
    i = min(n - 1, int(np.floor(k + 1e-9)))
    return to_scalar(losses[i])


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
    level = check_level(level)
    losses = _sorted_losses(returns)
    n = losses.shape[0]
    k = (1.0 - level) * n
    m = int(np.floor(k))
    total = np.sum(losses[:m], axis=0)
    if m < n:
        total = total + (k - m) * losses[m]
    return to_scalar(total / k)


def hit_rate(returns: ArrayLike) -> float | np.ndarray:
    """Fraction of periods with a strictly positive return.

    Parameters
    ----------
    returns : array_like of shape (T,) or (T, K)

    Returns
    -------
    float or ndarray of shape (K,)
    """
    r = as_series(returns)
    return to_scalar(np.mean(r > 0, axis=0))


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
        Per-period (daily) risk-free rate for Sharpe and Sortino.

    Returns
    -------
    dict of str to float
        ``n_periods``, ``accumulated_return``, ``annualised_return``,
        ``annualised_volatility``, ``sharpe``, ``sortino``, ``calmar``, ``max_drawdown``,
        ``var_95``, ``cvar_95``, ``hit_rate``; with ``turnover``: ``mean_turnover``
        (per period), ``annualised_turnover`` (mean * P), ``total_turnover``; with ``costs``:
        ``total_costs`` (sum), ``annualised_costs`` (mean * P).
    """
    r = as_simple_returns(returns, allow_2d=False)
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
        v = as_series(values, name, allow_2d=False)
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

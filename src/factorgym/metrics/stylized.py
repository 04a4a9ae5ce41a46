"""Stylized facts of return paths: fat tails, autocorrelations, leverage, correlations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from factorgym.errors import DataValidationError
from factorgym.metrics._common import to_scalar

__all__ = [
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
        return to_scalar(np.where(m2 > 0, m4 / np.where(m2 > 0, m2, 1.0) ** 2 - 3.0, np.nan))


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
    return to_scalar(np.sqrt(np.sum((ca - cb) ** 2, axis=(-2, -1))))


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

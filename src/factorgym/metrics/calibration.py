"""Calibration of predictive distributions: PIT values, reliability curves, calibration error.

A forecast is calibrated when the probability integral transform (PIT) ``u = F(y)`` of the
realised value ``y`` under its predictive CDF ``F`` is Uniform(0, 1).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from factorgym.errors import DataValidationError
from factorgym.metrics._common import check_ensemble, to_scalar

__all__ = [
    "DEFAULT_CALIBRATION_LEVELS",
    "calibration_levels",
    "calibration_curve",
    "calibration_error",
    "pit_from_samples",
    "portfolio_pit",
]


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
    return to_scalar(diff2.sum(axis=0))


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
    check_ensemble(x, y, 1, "need at least one sample")
    s = x.shape[0]
    k = np.sum(x < y, axis=0)
    e = np.sum(x == y, axis=0)
    u = 0.5 if rng is None else rng.random(y.shape)
    out = (k + u * (e + 1)) / (s + 1)
    return to_scalar(np.where(np.isnan(y), np.nan, out))


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

"""Inference for means of serially dependent series: HAC (heteroskedasticity and
autocorrelation consistent) long-run covariance (:func:`hac_long_run_covariance`), the
Newey-West standard error of a mean (:func:`newey_west_mean`) and the Diebold-Mariano test of
equal mean loss (:func:`diebold_mariano`). The kernels and the automatic bandwidth (Newey &
West 1994) are :mod:`arch.covariance.kernel`'s. P-values are two-sided and use the normal
limit.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from factorgym.errors import DataValidationError

__all__ = [
    "HACMean",
    "Kernel",
    "LongRunCovariance",
    "PairedTest",
    "diebold_mariano",
    "hac_long_run_covariance",
    "newey_west_mean",
]

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

"""Predicted covariances against realised returns: elementwise error, whitening, Box's M test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from factorgym.errors import DataValidationError
from factorgym.metrics._common import as_series, to_scalar

__all__ = [
    "BoxMResult",
    "covariance_mse",
    "whiten",
    "box_m_identity",
]


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
    return to_scalar(np.mean((a - b) ** 2, axis=(-2, -1)))


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
    x = as_series(z, "whitened returns")
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

"""Pooled parameters for assets without enough history of their own (late listings).

The classical baselines accept an asset that lists after (or late in) the training period:
where an asset has no estimate of its own, it gets pooled, cross-sectional ones, never
numbers computed from zeros standing in for its absent returns. The rule of each generator
is in its module docstring; the pieces they share are here:

* :func:`pooled_train_var`: an asset's own train variance, or the mean of the others';
* :func:`average_asset_corr` / :func:`average_asset_cov`: the correlations of an "average
  asset" (positive semi-definite by construction, the present assets' block unchanged);
* :func:`pool_factor_fit`: the factor loadings and noise of an average asset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from factorgym.errors import DataValidationError

__all__ = [
    "MIN_OWN_TRAIN_DAYS",
    "average_asset_corr",
    "average_asset_cov",
    "own_history",
    "pool_factor_fit",
    "pooled_train_var",
]

#: Train days an asset needs before a baseline uses its own train variance (or, for PPCA's
#: train mode, fits its own loadings); an asset with fewer (one that lists late, e.g. in the
#: validation period) gets pooled parameters instead (:func:`pooled_train_var`).
MIN_OWN_TRAIN_DAYS = 20


def own_history(R_train: np.ndarray, min_days: int = MIN_OWN_TRAIN_DAYS) -> np.ndarray:
    """``(N,)`` bools: assets with at least ``min_days`` available rows in ``R_train`` ``(T, N)``."""
    return np.isfinite(R_train).sum(axis=0) >= min_days


def pooled_train_var(
    R_train: np.ndarray, assets: Sequence[str], min_days: int = MIN_OWN_TRAIN_DAYS
) -> tuple[np.ndarray, np.ndarray]:
    """Each asset's train variance, pooled for an asset with too little train history.

    An asset with at least ``min_days`` available train returns keeps its own variance
    (``numpy.nanvar``: the days on which it traded, never zeros for the others); an asset
    with fewer (it lists late, or not at all before the train period ends) gets the mean
    variance of the assets that have their own.

    Returns
    -------
    var : ndarray (N,)
    pooled : ndarray (N,) of bool
        True where ``var`` is the pooled value.

    Raises
    ------
    DataValidationError
        When no asset has ``min_days`` train returns, or an asset that has them has zero
        variance (a constant price series is a data error, named in the message).
    """
    R_train = np.asarray(R_train, dtype=np.float64)
    own = own_history(R_train, min_days)
    if not own.any():
        raise DataValidationError(
            f"no asset has {min_days} train returns (the train part has {R_train.shape[0]} days); "
            "move train_end later"
        )
    var = np.full(R_train.shape[1], np.nan)
    var[own] = np.nanvar(R_train[:, own], axis=0)
    flat = own & ~(var > 0)
    if flat.any():
        names = [str(assets[i]) for i in np.flatnonzero(flat)]
        raise DataValidationError(f"asset(s) {', '.join(names)} have constant train returns (zero variance)")
    pooled = ~own
    var[pooled] = var[own].mean()
    return var, pooled


def average_asset_corr(R: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Correlations ``R`` ``(N, N)`` with each absent asset made an "average asset".

    An asset not in ``present`` ``(N,)`` has no own estimate; it is given the correlations of
    ``a m + sqrt(1 - a^2) e``, where ``m`` is the (standardised) equal-weight average of the
    present assets, ``e`` independent noise and ``a`` is chosen so that its mean correlation
    with the present assets equals their mean pairwise correlation ``rho`` (``a = rho / sd(m)``,
    clipped to ``[0, 1]``). Two absent assets correlate ``a^2``. The present block is returned
    unchanged, and the result is positive semi-definite whenever that block is, because it is
    the correlation matrix of an actual joint distribution.
    """
    R = np.array(R, dtype=np.float64, copy=True)
    present = np.asarray(present, dtype=bool)
    absent = ~present
    if not absent.any():
        return R
    K = int(present.sum())
    R[absent, :] = 0.0
    R[:, absent] = 0.0
    R[absent, absent] = 1.0
    if K < 2:
        return R
    P = R[np.ix_(present, present)]
    row = P.sum(axis=1)  # (R 1)_j
    tot = row.sum()  # 1' R 1
    s = np.sqrt(max(tot, 1e-300)) / K  # sd of the equal-weight average of standardised assets
    rho = (tot - np.trace(P)) / (K * (K - 1))
    a = float(np.clip(rho / s, 0.0, 1.0))
    c = a * row / (K * s)  # corr(a m + ..., asset j)
    ia, ip = np.flatnonzero(absent), np.flatnonzero(present)
    R[np.ix_(ia, ip)] = c
    R[np.ix_(ip, ia)] = c[:, None]
    R[np.ix_(ia, ia)] = a * a
    R[ia, ia] = 1.0
    return R


def average_asset_cov(C: np.ndarray, present: np.ndarray) -> np.ndarray:
    """:func:`average_asset_corr` applied to covariances ``(B, N, N)`` with ``present`` ``(B, N)``.

    Variances (the diagonal) are kept; only the absent assets' covariances change, so a
    window in which every asset is present is returned as it came (the same array).
    """
    present = np.asarray(present, dtype=bool)
    if present.all():
        return C
    C = np.array(C, copy=True)
    for b in np.flatnonzero(~present.all(axis=1)):
        sd = np.sqrt(np.diagonal(C[b]).copy())
        corr = C[b] / np.outer(sd, sd)
        C[b] = average_asset_corr(corr, present[b]) * np.outer(sd, sd)
    return C


def pool_factor_fit(fit: dict[str, Any], own: np.ndarray) -> dict[str, Any]:
    """Student-T factor-model parameters of the assets fitted (``own``) expanded to all ``N``.

    ``fit`` holds ``mu``, ``W``, ``sigma``, ``nu`` of the fitted assets (PPCA's train mode).

    An asset without its own fit gets mean 0, the mean loading row of the fitted assets (an
    "average asset": the same factor exposure, so its correlations with them are typical),
    their median ``nu`` and, through ``sigma``, their mean idiosyncratic variance.
    """
    N = own.shape[0]
    nu_o, sig_o = np.asarray(fit["nu"]), np.asarray(fit["sigma"])
    nu_p = float(np.median(nu_o))
    idio = float(np.mean(sig_o**2 * nu_o / (nu_o - 2.0)))
    mu = np.zeros(N)
    mu[own] = fit["mu"]
    W = np.empty((N, fit["W"].shape[1]))
    W[own] = fit["W"]
    W[~own] = fit["W"].mean(axis=0)
    sigma = np.full(N, np.sqrt(idio * (nu_p - 2.0) / nu_p))
    sigma[own] = sig_o
    nu = np.full(N, nu_p)
    nu[own] = nu_o
    return {**fit, "mu": mu, "W": W, "sigma": sigma, "nu": nu}

"""Proper scoring rules of sample ensembles (CRPS, energy score) via ``scoringrules``."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from factorgym.metrics._common import check_ensemble, to_scalar

__all__ = [
    "crps_ensemble",
    "energy_score",
]


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
    check_ensemble(x, y, 2, "the fair CRPS needs at least two samples")
    out = sr.crps_ensemble(y, x, m_axis=0, estimator="pwm", backend="numpy")
    return to_scalar(out)


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
    check_ensemble(x, y, 2, "the fair energy score needs at least two samples", vector=True)
    out = sr.es_ensemble(y, x, m_axis=0, v_axis=-1, estimator="fair", backend="numpy")
    return to_scalar(out)

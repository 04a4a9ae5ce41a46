"""The interquartile mean and its stratified-bootstrap interval over runs (seeds) and tasks
(Agarwal et al. 2021): :func:`interquartile_mean`, :func:`iqm_interval`.

``rliable``, the reference implementation, pins an ``arch`` older than ours and cannot be
installed beside it, so both are computed here with :func:`scipy.stats.trim_mean`
(``rliable``'s own IQM) and a numpy resampling that follows ``rliable``'s
``StratifiedBootstrap``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from factorgym.errors import DataValidationError
from factorgym.metrics._common import check_level

__all__ = ["interquartile_mean", "iqm_interval"]


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

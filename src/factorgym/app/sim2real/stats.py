"""Statistics of a sim-to-real experiment over seeds (Agarwal et al. 2021, "Deep RL at the
edge of the statistical precipice") and over days (Ledoit & Wolf 2008; Bailey & Lopez de
Prado 2014).

* :func:`probability_of_improvement`: ``P(X > Y) + 0.5 P(X = Y)`` for a run ``X`` of one arm
  and a run ``Y`` of another, over all seed pairs (``rliable``'s definition: the
  Mann-Whitney U statistic over ``n * m``); :func:`improvement_interval` adds its stratified
  bootstrap interval (each arm's seeds resampled independently, as ``rliable``'s
  ``StratifiedIndependentBootstrap``). ``rliable`` itself pins an ``arch`` older than ours,
  hence these few lines.
* :func:`iqm_summary`: the interquartile mean over seeds and its stratified bootstrap
  interval (:func:`factorgym.metrics.iqm_interval`).
* :func:`seed_mix_returns`, :func:`hac_difference`, :func:`deflated_sharpe`: the day-level
  tests of an arm (its seeds' books held in equal parts) against 1/N and against the luck
  of ``n_trials`` tries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from factorgym import metrics as M
from factorgym.errors import DataValidationError

__all__ = [
    "deflated_sharpe",
    "hac_difference",
    "improvement_interval",
    "iqm_summary",
    "probability_of_improvement",
    "seed_mix_returns",
]


def _scores(x: ArrayLike, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size == 0 or not np.isfinite(a).all():
        raise DataValidationError(f"{what} must be finite and non-empty, got {a.tolist()}")
    return a


def probability_of_improvement(x: ArrayLike, y: ArrayLike) -> float:
    """``P(X > Y) + 0.5 P(X = Y)`` over every pair of a run of ``x`` and a run of ``y``.

    Parameters
    ----------
    x, y : array_like
        Scores (e.g. test Sharpe ratios) of the runs (seeds) of two arms; ``y`` may be one
        value (a deterministic baseline such as 1/N).

    Returns
    -------
    float
        1 when every run of ``x`` beats every run of ``y``, 0.5 for identical samples.
    """
    a, b = _scores(x, "x"), _scores(y, "y")
    diff = a[:, None] - b[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def improvement_interval(
    x: ArrayLike, y: ArrayLike, *, reps: int = 2000, confidence: float = 0.95, seed: int | np.random.SeedSequence = 0
) -> tuple[float, float, float]:
    """:func:`probability_of_improvement` and its stratified bootstrap percentile interval:
    each resample draws ``len(x)`` runs of ``x`` and ``len(y)`` runs of ``y`` with
    replacement, independently (``reps=0``: the interval is NaN).

    Returns
    -------
    (estimate, lower, upper) : tuple of float
    """
    a, b = _scores(x, "x"), _scores(y, "y")
    est = probability_of_improvement(a, b)
    if int(reps) <= 0:
        return est, math.nan, math.nan
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, size=(int(reps), a.size))
    ib = rng.integers(0, b.size, size=(int(reps), b.size))
    d = a[ia][:, :, None] - b[ib][:, None, :]
    boot = (d > 0).mean(axis=(1, 2)) + 0.5 * (d == 0).mean(axis=(1, 2))
    lo, hi = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    return est, float(lo), float(hi)


def iqm_summary(
    x: ArrayLike, *, reps: int = 2000, confidence: float = 0.95, seed: int | np.random.SeedSequence = 0
) -> tuple[float, float, float]:
    """Interquartile mean of the runs ``x`` and its stratified bootstrap interval
    (:func:`factorgym.metrics.iqm_interval`; ``reps=0``: the interval is NaN)."""
    a = _scores(x, "scores")
    if int(reps) <= 0:
        return M.interquartile_mean(a), math.nan, math.nan
    return M.iqm_interval(a, reps=int(reps), confidence=confidence, seed=seed)


def seed_mix_returns(returns: Sequence[ArrayLike]) -> np.ndarray:
    """Daily returns of an arm's seeds held in equal parts, rebalanced daily: the mean of
    the seeds' daily net returns (one series per arm for the day-level tests)."""
    arrs = [np.asarray(r, dtype=np.float64).reshape(-1) for r in returns]
    if not arrs or len({a.shape for a in arrs}) != 1:
        raise DataValidationError(f"seed return series must be non-empty and equally long, got {[a.shape[0] for a in arrs]}")
    return np.mean(np.stack(arrs), axis=0)


def hac_difference(returns: ArrayLike, reference: ArrayLike, *, risk_free: float = 0.0, periods_per_year: int = 252) -> dict[str, float]:
    """Annualised Sharpe difference to ``reference`` on the same days with its HAC standard
    error and two-sided p-value (:func:`factorgym.metrics.sharpe_difference_test`)."""
    t = M.sharpe_difference_test(returns, reference, risk_free=risk_free, periods_per_year=periods_per_year)
    return {"estimate": float(t.estimate), "se": float(t.std_error), "pvalue": float(t.pvalue)}


def per_period_sharpe(returns: ArrayLike, risk_free: float = 0.0) -> float:
    """``mean(r - rf) / std(r, ddof=1)`` (NaN for a constant series)."""
    x = np.asarray(returns, dtype=np.float64).reshape(-1) - risk_free
    sd = float(np.std(x, ddof=1)) if x.size >= 2 else 0.0
    return float(x.mean() / sd) if sd > 0 else math.nan


def deflated_sharpe(returns: ArrayLike, *, n_trials: int, trial_sharpes: ArrayLike, risk_free: float = 0.0) -> dict[str, float]:
    """The deflated Sharpe ratio of ``returns`` when ``n_trials`` strategies were tried
    (:func:`factorgym.metrics.deflated_sharpe_ratio`).

    Parameters
    ----------
    returns : array_like
        Daily net returns of the reported strategy.
    n_trials : int
        Every training run tried (counted from the experiment folder).
    trial_sharpes : array_like
        Per-period Sharpe ratios of the trials whose returns are known (their variance is the
        trial variance ``V``; 0 with fewer than two).
    risk_free : float
        Daily cash rate.

    Returns
    -------
    dict
        ``dsr`` (probability that the true Sharpe ratio exceeds the luck bar), ``threshold``
        (the expected best annualised Sharpe ratio of ``n_trials`` unskilled trials),
        ``n_trials``.
    """
    x = np.asarray(returns, dtype=np.float64).reshape(-1) - risk_free
    sr = per_period_sharpe(x)
    ts = np.asarray(trial_sharpes, dtype=np.float64).reshape(-1)
    ts = ts[np.isfinite(ts)]
    var = float(np.var(ts, ddof=1)) if ts.size >= 2 else 0.0
    if not math.isfinite(sr):
        return {"dsr": math.nan, "threshold": math.nan, "n_trials": float(n_trials)}
    d = M.deflated_sharpe_ratio(
        sr, int(x.size), n_trials=max(int(n_trials), 1), trial_variance=var,
        skew=float(stats.skew(x, bias=True)), kurtosis=float(stats.kurtosis(x, fisher=False, bias=True)),
    )  # fmt: skip
    return {"dsr": float(d.dsr), "threshold": float(d.threshold) * math.sqrt(252), "n_trials": float(d.n_trials)}

"""Statistics of a backtest's return series: stationary-bootstrap intervals of the real
path (with their block length and per-agent seeds) and the mid-rank percentile of a real
value among synthetic ones."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd

from factorgym import metrics as M
from factorgym.errors import DataValidationError

__all__ = ["BOOTSTRAP_STATS", "agent_seed", "bootstrap_intervals", "percentile_of", "stationary_block_length"]

#: Bootstrapped statistics of the real path.
BOOTSTRAP_STATS: tuple[str, ...] = ("sharpe", "annualised_return", "annualised_volatility", "sharpe_minus_ew")


def agent_seed(seed: int, name: str) -> np.random.SeedSequence:
    """The bootstrap seed of agent ``name`` in a run seeded ``seed`` (independent of the
    other agents, so an interval does not change when agents are added)."""
    return np.random.SeedSequence([int(seed), zlib.crc32(name.encode("utf-8"))])


def stationary_block_length(x: np.ndarray) -> float:
    """Politis-White optimal mean block length of the stationary bootstrap of ``x`` (T,),
    at least 1 (1 for short or constant series)."""
    from arch.bootstrap import optimal_block_length

    if x.shape[0] < 10 or not np.std(x) > 0:
        return 1.0
    b = float(optimal_block_length(x)["stationary"].iloc[0])
    return b if math.isfinite(b) and b >= 1.0 else 1.0


def bootstrap_intervals(
    returns: np.ndarray,
    reference: np.ndarray | None = None,
    *,
    reps: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.SeedSequence = 0,
    block_length: float | None = None,
    periods_per_year: int = 252,
    risk_free: float = 0.0,
) -> pd.DataFrame:
    """Stationary-bootstrap percentile intervals of a daily return series.

    Statistics: ``sharpe``, ``annualised_return``, ``annualised_volatility`` (as in
    :mod:`factorgym.metrics`) and, with ``reference`` (e.g. 1/N's returns on the same days),
    ``sharpe_minus_ew`` = Sharpe(returns) - Sharpe(reference) on the *same* resampled days.

    Parameters
    ----------
    returns : ndarray of shape (T,)
    reference : ndarray of shape (T,), optional
    reps : int
        Resamples.
    confidence : float
        Interval level.
    seed : int or SeedSequence
        Seeds the resampling (same seed -> same interval).
    block_length : float, optional
        Mean block length (default: :func:`arch.bootstrap.optimal_block_length` of
        ``returns``, at least 1).
    periods_per_year : int
    risk_free : float
        Per-period (daily) cash rate, as in :mod:`factorgym.metrics`.

    Returns
    -------
    DataFrame
        Index: statistic; columns ``estimate`` (on the original series), ``lower``,
        ``upper``, ``std_error`` (of the resampled values), ``block_length``, ``reps``.
    """
    from arch.bootstrap import StationaryBootstrap

    x = np.asarray(returns, dtype=np.float64)
    if x.ndim != 1 or x.shape[0] < 2:
        raise DataValidationError(f"bootstrap needs a 1-D series of at least 2 returns, got shape {x.shape}")
    ref = None if reference is None else np.asarray(reference, dtype=np.float64)
    if ref is not None and ref.shape != x.shape:
        raise DataValidationError(f"reference has shape {ref.shape}, returns have {x.shape}")
    ppy, rf = periods_per_year, risk_free

    def stats(r: np.ndarray, q: np.ndarray | None = None) -> np.ndarray:
        s = float(M.sharpe_ratio(r, rf, ppy))
        out = [s, float(M.annualised_return(r, ppy)), float(M.annualised_volatility(r, ppy))]
        if q is not None:
            out.append(s - float(M.sharpe_ratio(q, rf, ppy)))
        return np.array(out)

    names = list(BOOTSTRAP_STATS[:3]) + (["sharpe_minus_ew"] if ref is not None else [])
    est = stats(x, ref)
    b = float(block_length) if block_length is not None else stationary_block_length(x)
    rng = np.random.default_rng(seed)
    args = (x,) if ref is None else (x, ref)
    lower, upper, se = (np.full(len(names), np.nan) for _ in range(3))
    if reps > 0:
        bs = StationaryBootstrap(b, *args, seed=rng)
        draws = bs.apply(stats, reps=int(reps))
        a = (1.0 - confidence) / 2.0
        for j in range(len(names)):
            d = draws[:, j]
            d = d[np.isfinite(d)]  # e.g. the Sharpe ratio of a resample without variance
            if d.size >= 2:
                lower[j], upper[j] = np.quantile(d, [a, 1.0 - a])
                se[j] = np.std(d, ddof=1)
    df = pd.DataFrame(
        {"estimate": est, "lower": lower, "upper": upper, "std_error": se, "block_length": b, "reps": int(reps)},
        index=pd.Index(names, name="statistic"),
    )
    return df


def percentile_of(value: float, sample: np.ndarray) -> float:
    """Mid-rank percentile of ``value`` in ``sample`` (in [0, 1]; NaN if either is missing)."""
    s = sample[np.isfinite(sample)]
    if not s.size or not math.isfinite(value):
        return math.nan
    return float((np.sum(s < value) + 0.5 * np.sum(s == value)) / s.size)


"""Backtests of Value-at-Risk forecasts: Kupiec POF, Christoffersen independence and
conditional coverage, from the series of exceedance days ("hits")."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from factorgym.errors import DataValidationError
from factorgym.metrics._common import check_level

__all__ = ["LRTest", "VaRBacktest", "kupiec_pof", "christoffersen_independence", "var_backtest"]


@dataclass(frozen=True)
class LRTest:
    """A likelihood-ratio test: ``statistic`` ~ ``chi2(dof)`` under H0, ``pvalue`` its tail."""

    statistic: float
    dof: int
    pvalue: float


@dataclass(frozen=True)
class VaRBacktest:
    """Backtest of a VaR forecast series (see :func:`var_backtest`).

    Attributes
    ----------
    n : int
        Number of days.
    exceedances : int
        Days whose loss exceeded the VaR.
    expected_rate : float
        ``1 - level``.
    observed_rate : float
        ``exceedances / n``.
    pof : LRTest
        Kupiec's proportion-of-failures test (unconditional coverage).
    independence : LRTest
        Christoffersen's Markov independence test.
    conditional_coverage : LRTest
        Christoffersen's joint test (chi2(2)).
    """

    n: int
    exceedances: int
    expected_rate: float
    observed_rate: float
    pof: LRTest
    independence: LRTest
    conditional_coverage: LRTest

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-serialisable dict."""
        return asdict(self)


def _hits(hits: ArrayLike) -> np.ndarray:
    h = np.asarray(hits)
    if h.ndim != 1 or h.size == 0:
        raise DataValidationError(f"hits must be a non-empty 1-D sequence, got shape {h.shape}")
    if h.dtype != bool:
        hf = np.asarray(h, dtype=np.float64)
        if not np.isin(hf, (0.0, 1.0)).all():
            raise DataValidationError("hits must be booleans or 0/1")
        h = hf.astype(bool)
    return h


def _xlogy(x: float, y: float) -> float:
    """``x log y`` with ``0 log 0 = 0``."""
    return 0.0 if x == 0 else float(x * np.log(y))


def _bernoulli_loglik(n0: float, n1: float, prob: float) -> float:
    """``n0 log(1 - prob) + n1 log(prob)`` with ``0 log 0 = 0``."""
    return _xlogy(n0, 1.0 - prob) + _xlogy(n1, prob)


def _lr(statistic: float, dof: int) -> LRTest:
    statistic = float(statistic) if statistic > 0 else 0.0  # rounding can make a zero LR slightly negative
    return LRTest(statistic, dof, float(stats.chi2.sf(statistic, dof)))


def kupiec_pof(hits: ArrayLike, level: float = 0.95) -> LRTest:
    """Kupiec (1995) proportion-of-failures test of the exceedance rate.

    With ``x`` exceedances in ``T`` days, ``p = 1 - level`` and ``p_hat = x / T``::

        LR_pof = -2 [ (T - x) log(1 - p) + x log p - (T - x) log(1 - p_hat) - x log p_hat ]

    (``0 log 0 = 0``), asymptotically ``chi2(1)``.

    Parameters
    ----------
    hits : array_like of shape (T,)
        True (or 1) on days whose loss exceeded the VaR.
    level : float
        VaR confidence level, e.g. 0.95.

    Returns
    -------
    LRTest
    """
    h = _hits(hits)
    p = 1.0 - check_level(level)
    n = h.size
    x = int(h.sum())
    p_hat = x / n
    stat = -2.0 * (_bernoulli_loglik(n - x, x, p) - _bernoulli_loglik(n - x, x, p_hat))
    return _lr(stat, 1)


class _Transitions(NamedTuple):
    """Counts ``n_ij`` of day-to-day transitions from state ``i`` to ``j`` (1 = exceedance)."""

    n00: int
    n01: int
    n10: int
    n11: int


def _transitions(h: np.ndarray) -> _Transitions:
    prev, nxt = h[:-1], h[1:]
    return _Transitions(
        n00=int(np.sum(~prev & ~nxt)),
        n01=int(np.sum(~prev & nxt)),
        n10=int(np.sum(prev & ~nxt)),
        n11=int(np.sum(prev & nxt)),
    )


def _markov_lr(t: _Transitions, prob: float, dof: int) -> LRTest:
    """LR test of one exceedance probability ``prob`` against the first-order Markov chain
    with ``pi_01 = n01 / (n00 + n01)`` and ``pi_11 = n11 / (n10 + n11)`` (0 for an empty row)."""
    pi01 = t.n01 / (t.n00 + t.n01) if t.n00 + t.n01 else 0.0
    pi11 = t.n11 / (t.n10 + t.n11) if t.n10 + t.n11 else 0.0
    restricted = _bernoulli_loglik(t.n00 + t.n10, t.n01 + t.n11, prob)
    unrestricted = _bernoulli_loglik(t.n00, t.n01, pi01) + _bernoulli_loglik(t.n10, t.n11, pi11)
    return _lr(-2.0 * (restricted - unrestricted), dof)


def christoffersen_independence(hits: ArrayLike) -> LRTest:
    """Christoffersen (1998) test that exceedances are not clustered (first-order Markov).

    With transition counts ``n_ij`` (state ``i`` followed by ``j``),
    ``pi_01 = n01 / (n00 + n01)``, ``pi_11 = n11 / (n10 + n11)`` and
    ``pi = (n01 + n11) / (T - 1)``::

        LR_ind = -2 [ (n00 + n10) log(1 - pi) + (n01 + n11) log pi
                      - n00 log(1 - pi_01) - n01 log pi_01 - n10 log(1 - pi_11) - n11 log pi_11 ]

    (``0 log 0 = 0``; an empty row's probability is irrelevant), asymptotically ``chi2(1)``.
    Zero when there are no exceedances, or only exceedances.

    Parameters
    ----------
    hits : array_like of shape (T,), T >= 2

    Returns
    -------
    LRTest
    """
    h = _hits(hits)
    if h.size < 2:
        raise DataValidationError("the independence test needs at least two days")
    t = _transitions(h)
    return _markov_lr(t, (t.n01 + t.n11) / (h.size - 1), 1)


def var_backtest(hits: ArrayLike, level: float = 0.95) -> VaRBacktest:
    """Kupiec POF, Christoffersen independence and conditional-coverage tests of VaR hits.

    The conditional-coverage statistic is Christoffersen's joint likelihood ratio on the
    ``T - 1`` transitions, ``LR_cc = -2 [log L(p) - log L(pi_01, pi_11)]``, which equals
    ``LR_pof(hits[1:]) + LR_ind`` exactly (so it differs from ``pof + independence`` by the
    first day's contribution to ``pof``), asymptotically ``chi2(2)``.

    Parameters
    ----------
    hits : array_like of shape (T,), T >= 2
        True on days whose loss exceeded the VaR forecast.
    level : float
        VaR confidence level (expected exceedance rate ``1 - level``).

    Returns
    -------
    VaRBacktest
    """
    h = _hits(hits)
    level = check_level(level)
    pof = kupiec_pof(h, level)
    ind = christoffersen_independence(h)
    p = 1.0 - level
    cc = _markov_lr(_transitions(h), p, 2)
    x = int(h.sum())
    return VaRBacktest(int(h.size), x, p, x / h.size, pof, ind, cc)

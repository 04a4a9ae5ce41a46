"""Baselines: equal weight, buy-and-hold, and the S&P 500 index as a market benchmark.

:class:`EqualWeight` and :class:`BuyAndHold` are agents (same ``predict`` as every other
agent, ``"weights"`` action mode). The index is a *series-level* benchmark, not a tradable
agent: :func:`market_returns` cuts the panel's exogenous index returns over the evaluation
days and :func:`market_metrics` scores them with the same
:func:`factorgym.metrics.portfolio_metrics` as the agents (no turnover, no costs).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from factorgym import metrics as M
from factorgym.agents.protocol import Agent
from factorgym.costs import CostModel
from factorgym.data import ReturnPanel
from factorgym.errors import DataValidationError

__all__ = ["EqualWeight", "BuyAndHold", "market_returns", "market_metrics", "self_financing_scale"]

#: Risky weights with total absolute value below this count as "all cash".
_ALL_CASH = 1e-12


def _alive(returns: np.ndarray, n: int) -> np.ndarray:
    """Assets that trade on the decision day: a finite return on the last row of the window
    (the observation's ``"mask"`` turns absent cells into NaN)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim == 2 and r.shape == (r.shape[0], n) and r.shape[0] > 0:
        return np.isfinite(r[-1])
    return np.ones(n, dtype=bool)


class EqualWeight(Agent):
    """``1/N`` in every asset, rebalanced daily (the trade back from the drift pays costs).

    ``N`` counts the assets alive on the decision day: an asset absent that day (not yet
    listed, delisted, halted; mask 0 on the last row) gets 0.

    Parameters
    ----------
    budget : float
        Total risky weight (1.0: fully invested; cash ``1 - budget``).
    """

    def __init__(self, budget: float = 1.0) -> None:
        self.budget = budget

    def act(self, returns: np.ndarray, weights: np.ndarray, env_index: int = 0) -> np.ndarray:
        n = np.asarray(weights).shape[-1] - 1
        if not (np.isfinite(self.budget) and self.budget >= 0):
            raise DataValidationError(f"budget must be finite and >= 0, got {self.budget}")
        alive = _alive(returns, n)
        k = int(alive.sum())
        return np.where(alive, float(self.budget) / max(k, 1), 0.0)


def self_financing_scale(target: np.ndarray, w_drifted: np.ndarray, wealth: float, cost_model: CostModel) -> float:
    """Largest ``x`` in ``[0, 1]`` whose trade to ``x * target`` its cost can pay from cash.

    Cash after the trade is ``wealth - sum(x * target) - cost(x * target, w_drifted)``
    (``wealth`` = the sum of all current weights, cash included, i.e. 1); the function
    ``x -> sum(x t) + cost(x t, w_d)`` is convex, so bisection on the sign change is exact
    to 1e-15.

    Parameters
    ----------
    target : ndarray of shape (N,)
    w_drifted : ndarray of shape (N,)
    wealth : float
    cost_model : CostModel

    Returns
    -------
    float
    """
    t = np.asarray(target, dtype=np.float64)
    wd = np.asarray(w_drifted, dtype=np.float64)

    def spend(x: float) -> float:
        return float(x * t.sum() + cost_model.cost(x * t, wd))

    if spend(1.0) <= wealth:
        return 1.0
    lo, hi = 0.0, 1.0
    if spend(lo) > wealth:
        raise DataValidationError("the current portfolio cannot finance any trade towards the target")
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if spend(mid) <= wealth else (lo, mid)
        if hi - lo < 1e-15:
            break
    return lo


class BuyAndHold(Agent):
    """Buy once, then hold: the action is the current drifted risky weights (zero cost).

    The initial purchase happens when the portfolio holds no risky asset (the environment's
    all-cash start), in the assets alive that day only; otherwise the agent holds whatever
    it has.

    Parameters
    ----------
    initial : "equal" or array of shape (N,)
        Target of the initial purchase (``"equal"``: ``1/N`` each).
    cost_model : CostModel, optional
        The environment's cost model (default ``CostModel()``), for ``self_financing``.
    self_financing : bool
        Scale the initial purchase so that its cost is paid from the remaining cash
        (:func:`self_financing_scale`). Under the environment's accounting the cost comes
        out of cash, so buying a full ``1/N`` leaves cash at minus the cost; the drifted
        risky weights then sum to more than 1 forever and holding them breaks a budget of
        ``sum(w) <= 1``. With the scaling (the default) the drifted weights stay within it.
    """

    def __init__(
        self,
        initial: Literal["equal"] | np.ndarray = "equal",
        cost_model: CostModel | None = None,
        self_financing: bool = True,
    ) -> None:
        self.initial = initial
        self.cost_model = cost_model
        self.self_financing = self_financing

    def _target(self, n: int) -> np.ndarray:
        if isinstance(self.initial, str):
            if self.initial != "equal":
                raise DataValidationError(f"initial must be 'equal' or a weight vector, got {self.initial!r}")
            return np.full(n, 1.0 / n)
        t = np.asarray(self.initial, dtype=np.float64)
        if t.shape != (n,) or not np.isfinite(t).all():
            raise DataValidationError(f"initial weights must be a finite vector of shape ({n},), got {t.shape}")
        return t

    def act(self, returns: np.ndarray, weights: np.ndarray, env_index: int = 0) -> np.ndarray:
        w = np.asarray(weights, dtype=np.float64)
        wd = w[:-1]
        if np.abs(wd).sum() > _ALL_CASH:
            return wd.copy()
        t = self._target(wd.shape[0])
        alive = _alive(returns, wd.shape[0])
        if not alive.all():  # absent assets cannot be bought: 1/N of the live ones, or zero
            t = np.where(alive, (1.0 / max(int(alive.sum()), 1)) if isinstance(self.initial, str) else t, 0.0)
        if self.self_financing:
            cm = self.cost_model if self.cost_model is not None else CostModel()
            t = t * self_financing_scale(t, wd, float(w.sum()), cm)
        return t


# ------------------------------------------------------------------------ market benchmark
def market_returns(
    panel: ReturnPanel,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    *,
    dates: pd.DatetimeIndex | None = None,
    column: str = "SP500",
) -> pd.Series:
    """Daily simple returns of the panel's market index over an evaluation period.

    Parameters
    ----------
    panel : ReturnPanel
        With the index in ``panel.exog[column]`` (the embedded ``sp500`` dataset has it).
    start, end : date-like, optional
        Inclusive bounds on the days whose returns are wanted (the days ``t+1`` an agent
        earns); default the whole panel.
    dates : DatetimeIndex, optional
        Exactly these days instead (e.g. the index of an agent's return series); each must
        be in the panel.
    column : str
        Exogenous column.

    Returns
    -------
    pandas.Series
        Indexed by date, named ``column``.
    """
    if panel.exog is None or column not in panel.exog.columns:
        have = [] if panel.exog is None else list(panel.exog.columns)
        raise DataValidationError(f"{panel.name} has no exogenous column {column!r} (has {have})")
    s = panel.exog[column].astype(np.float64)
    if dates is not None:
        if start is not None or end is not None:
            raise DataValidationError("give either dates or start/end, not both")
        idx = pd.DatetimeIndex(dates)
        missing = idx.difference(s.index)
        if len(missing):
            raise DataValidationError(
                f"{len(missing)} dates are not in {panel.name}: {', '.join(str(d.date()) for d in missing[:3])}"
            )
        out = s.loc[idx]
    else:
        lo = s.index[0] if start is None else pd.Timestamp(start)
        hi = s.index[-1] if end is None else pd.Timestamp(end)
        out = s.loc[(s.index >= lo) & (s.index <= hi)]
    if out.empty:
        raise DataValidationError(f"no {column} returns in {panel.name} between {start} and {end}")
    return out.rename(column)


def market_metrics(
    panel: ReturnPanel,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    *,
    dates: pd.DatetimeIndex | None = None,
    column: str = "SP500",
    risk_free: float = 0.0,
    periods_per_year: int = 252,
) -> dict[str, Any]:
    """:func:`factorgym.metrics.portfolio_metrics` of :func:`market_returns`.

    Scored like an agent's net returns, with zero turnover and zero costs (the index is not
    traded). ``risk_free`` is the per-period (daily) cash rate, as in :mod:`factorgym.metrics`.
    """
    r = market_returns(panel, start, end, dates=dates, column=column).to_numpy()
    return M.portfolio_metrics(
        r, turnover=np.zeros_like(r), costs=np.zeros_like(r), periods_per_year=periods_per_year, risk_free=risk_free
    )

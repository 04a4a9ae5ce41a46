"""Cost sensitivity of the real path: every agent's Sharpe ratio and annualised return at
multiples of the run's cost model, and its break-even cost against 1/N
(:func:`cost_sensitivity_table`, ``cost_sensitivity.csv`` / ``.md``).

Method: **re-running**, not re-pricing. At multiplier ``m`` every agent is run again on the
real path with the cost model scaled by ``m`` (buy, sell and impact rates alike), and an
agent that plans with costs (an optimizer, buy-and-hold's self-financing first purchase)
plans with its own cost model scaled by ``m`` too. Re-pricing the trades of the 1x run at
``m`` times the cost would be cheaper, but it answers another question: a cost-aware
optimizer facing higher costs trades less, so re-pricing its 1x trades understates its
break-even cost; wealth and drifted weights also depend on the costs paid. A policy that
cannot change what it plans with (a trained RL policy) trades as it would anyway and pays
``m`` times the costs. At ``m = 1`` the backtest's own run is used.

Break-even: the multiplier ``m*`` at which the agent's Sharpe ratio falls to 1/N's (both
re-run at ``m*``). Between the first two multipliers of the list where the difference turns
from positive to non-positive, ``m*`` is solved by Brent's method
(:func:`scipy.optimize.brentq`, to 0.01 in ``m``), each evaluation a re-run of the agent and
1/N. When the agent does not beat 1/N at the smallest multiplier, the table gives that
multiplier (the break-even is at most it); when it still beats 1/N at the largest, ``inf``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from factorgym.costs import CostModel

__all__ = ["COST_COLUMNS", "cost_sensitivity_table", "multiplier_label", "scaled_cost_model"]

#: Columns of ``cost_sensitivity.csv``, with one line each (``{m}`` is a multiplier label
#: such as ``0x`` or ``2.5x``).
COST_COLUMNS: dict[str, str] = {
    "sharpe_cost_{m}": "Sharpe ratio on the real path with every cost rate multiplied by m (agents re-run, planning with those costs)",
    "annualised_return_cost_{m}": "annualised net return on the real path at m times the costs (same re-runs)",
    "break_even_multiplier": "cost multiplier at which the agent's Sharpe falls to 1/N's (inf: still beats 1/N at the largest m tried)",
    "break_even_cost_bps": "that break-even as a proportional cost: multiplier x the mean of the buy and sell rates, in bps",
}

#: Metrics of an agent at one multiplier: ``(sharpe, annualised_return)``.
MetricsAt = Callable[[str, float], tuple[float, float]]


def multiplier_label(m: float) -> str:
    """``0 -> "0x"``, ``2.5 -> "2.5x"`` (column suffixes)."""
    return f"{float(m):g}x"


def scaled_cost_model(cm: CostModel, m: float) -> CostModel:
    """``cm`` with its buy, sell and impact rates multiplied by ``m`` (>= 0)."""
    def s(v: float | np.ndarray) -> float | np.ndarray:
        a = np.asarray(v, dtype=np.float64) * float(m)
        return float(a) if a.ndim == 0 else a

    return CostModel(buy=s(cm.buy), sell=s(cm.sell), impact=s(cm.impact))


def _break_even(diff: Callable[[float], float], mults: list[float], values: list[float], xtol: float) -> float:
    """First sign change of ``diff`` from > 0 to <= 0 over ``mults`` (sorted), refined by Brent."""
    from scipy.optimize import brentq

    if not all(math.isfinite(v) for v in values):
        return math.nan
    if values[0] <= 0:
        return mults[0]
    for i in range(len(mults) - 1):
        lo, hi, d_lo, d_hi = mults[i], mults[i + 1], values[i], values[i + 1]
        if d_lo > 0 >= d_hi:
            if d_hi == 0:
                return hi
            return float(brentq(diff, lo, hi, xtol=xtol, maxiter=50))
    return math.inf


def cost_sensitivity_table(
    agents: Sequence[str],
    ref: str,
    metrics_at: MetricsAt,
    multipliers: Sequence[float],
    cost_model: CostModel,
    *,
    xtol: float = 0.01,
) -> pd.DataFrame:
    """Sharpe ratio and annualised return of every agent at each cost multiplier, and its
    break-even multiplier and cost against ``ref`` (1/N); the method is in the module
    docstring.

    Parameters
    ----------
    agents : sequence of str
        Agent names (rows), ``ref`` among them.
    ref : str
        The 1/N agent (its break-even columns are NaN).
    metrics_at : callable
        ``metrics_at(agent, m) -> (sharpe, annualised_return)`` of the agent re-run at ``m``
        times the costs (memoised by the caller: the break-even search asks again).
    multipliers : sequence of float
        Distinct multipliers >= 0 (sorted here).
    cost_model : CostModel
        The run's cost model (for the break-even in bps).
    xtol : float
        Tolerance of the break-even multiplier.

    Returns
    -------
    DataFrame
        Index ``agent``; columns ``sharpe_cost_{m}`` for each multiplier, then
        ``annualised_return_cost_{m}``, ``break_even_multiplier``, ``break_even_cost_bps``.
    """
    mults = sorted(float(m) for m in multipliers)
    mean_rate = float(np.mean((np.asarray(cost_model.buy, dtype=np.float64) + np.asarray(cost_model.sell, dtype=np.float64)) / 2.0))
    rows: dict[str, dict[str, float]] = {}
    for name in agents:
        at = [metrics_at(name, m) for m in mults]
        row = {f"sharpe_cost_{multiplier_label(m)}": v[0] for m, v in zip(mults, at, strict=True)}
        row.update({f"annualised_return_cost_{multiplier_label(m)}": v[1] for m, v in zip(mults, at, strict=True)})
        rows[name] = row
    for name in agents:
        if name == ref:
            be = math.nan
        else:
            def diff(m: float, name: str = name) -> float:
                return metrics_at(name, m)[0] - metrics_at(ref, m)[0]

            values = [rows[name][f"sharpe_cost_{multiplier_label(m)}"] - rows[ref][f"sharpe_cost_{multiplier_label(m)}"] for m in mults]
            be = _break_even(diff, mults, values, xtol)
        rows[name]["break_even_multiplier"] = be
        rows[name]["break_even_cost_bps"] = be * mean_rate * 1e4 if math.isfinite(be) or be == math.inf else math.nan
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "agent"
    return df

"""Portfolio losses over scenario paths and the comparison of a crisis set with what followed."""

from __future__ import annotations

import numpy as np

from factorgym.data import ReturnPanel
from factorgym.errors import DataValidationError
from factorgym.generators.stress.io import ScenarioSet

__all__ = ["loss_summary", "portfolio_path_returns", "realised_comparison"]


def portfolio_path_returns(paths: np.ndarray, weights: np.ndarray, rebalance: bool = True) -> np.ndarray:
    """Cumulative simple return of a portfolio over each scenario path.

    Parameters
    ----------
    paths : ndarray of shape (S, H, N)
    weights : ndarray of shape (N,)
        Risky weights (cash ``1 - sum``, earning nothing).
    rebalance : bool
        True: back to ``weights`` every day (costless constant mix); False: buy and hold.

    Returns
    -------
    ndarray of shape (S,)
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (paths.shape[-1],):
        raise DataValidationError(f"weights have shape {w.shape}, expected ({paths.shape[-1]},)")
    if rebalance:
        return np.prod(1.0 + paths @ w, axis=1) - 1.0
    growth = np.prod(1.0 + paths, axis=1)  # (S, N)
    return growth @ w + (1.0 - w.sum()) - 1.0


def loss_summary(returns: np.ndarray, levels: tuple[float, ...] = (0.95, 0.99)) -> dict[str, float]:
    """VaR and expected shortfall (positive losses) of scenario returns ``(S,)``.

    ``VaR_a`` is the empirical ``a``-quantile of the loss ``-R``; ``ES_a`` the mean loss at
    or beyond it.
    """
    from factorgym.metrics import historical_cvar, historical_var

    r = np.asarray(returns, dtype=np.float64)
    out: dict[str, float] = {"mean_return": float(r.mean()), "worst": float(-r.min()), "n": float(r.size)}
    for a in levels:
        out[f"VaR{int(round(a * 100))}"] = float(historical_var(r, a))
        out[f"ES{int(round(a * 100))}"] = float(historical_cvar(r, a))
    return out


def realised_comparison(scenarios: ScenarioSet, panel: ReturnPanel, weights: np.ndarray | None = None) -> dict[str, float]:
    """How much probability a crisis scenario set gave to what actually followed.

    Compares the portfolio (default: equal weight, daily rebalanced) over the real days after
    the context date with the scenario distribution: the realised cumulative return, the
    realised maximum drawdown, and the fraction of scenarios at least as bad on each.
    """
    from factorgym.metrics import max_drawdown

    S, H, N = scenarios.paths.shape  # noqa: N806
    w = np.full(N, 1.0 / N) if weights is None else np.asarray(weights, dtype=np.float64)
    t = panel.index_of(str(scenarios.context_date))
    real = panel.filled(0.0)[t + 1 : t + 1 + H]
    if real.shape[0] < H:
        raise DataValidationError(f"only {real.shape[0]} real days follow {scenarios.context_date}; horizon is {H}")
    real_daily = real @ w
    real_cum = float(np.prod(1 + real_daily) - 1)
    real_dd = float(max_drawdown(real_daily))
    sim_daily = scenarios.paths @ w  # (S, H)
    sim_cum = np.prod(1 + sim_daily, axis=1) - 1
    sim_dd = np.asarray(max_drawdown(sim_daily.T))  # (S,)
    return {
        "realised_return": real_cum,
        "realised_max_drawdown": real_dd,
        "prob_return_at_most_realised": float(np.mean(sim_cum <= real_cum)),
        "prob_drawdown_at_least_realised": float(np.mean(sim_dd >= real_dd)),
        "sim_median_return": float(np.median(sim_cum)),
        "sim_5pct_return": float(np.quantile(sim_cum, 0.05)),
        "sim_median_max_drawdown": float(np.median(sim_dd)),
        "sim_95pct_max_drawdown": float(np.quantile(sim_dd, 0.95)),
    }

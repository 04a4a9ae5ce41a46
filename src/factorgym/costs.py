"""Transaction costs: one model shared by the environments and the optimizer agents.

Weights are fractions of the portfolio's wealth at the moment of trading. Only the risky
assets are charged: the cash leg is the other side of every trade and is not charged
again. For a trade from drifted weights ``w_d`` to target weights ``w`` (shape ``(..., N)``)
the cost, as a fraction of pre-trade wealth, is::

    c = sum_i buy_i * max(w_i - w_d_i, 0) + sell_i * max(w_d_i - w_i, 0)
        + impact_i * |w_i - w_d_i| ** 1.5

The last term is the square-root market-impact law (price impact proportional to the square
root of the traded size, so cost grows as size ** 1.5), with ``impact_i`` expressing the
portfolio's size relative to the asset's liquidity. It is zero by default.

Defaults follow the diffusion paper (Gao, He & He): 7.5 bps on buys, 12.5 bps on sells.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from factorgym.errors import DataValidationError

__all__ = ["CostModel"]


@dataclass(frozen=True)
class CostModel:
    """Proportional (asymmetric) costs plus optional square-root impact.

    Parameters
    ----------
    buy, sell : float or array of shape (N,)
        Proportional cost rates (fractions; 7.5e-4 is 7.5 bps).
    impact : float or array of shape (N,)
        Square-root impact coefficient; cost term ``impact * |dw| ** 1.5``.
    """

    buy: float | np.ndarray = 7.5e-4
    sell: float | np.ndarray = 12.5e-4
    impact: float | np.ndarray = field(default=0.0)

    def __post_init__(self) -> None:
        for name in ("buy", "sell", "impact"):
            try:
                v = np.asarray(getattr(self, name), dtype=np.float64)
            except (TypeError, ValueError):
                raise DataValidationError(f"cost rate {name} must be a number or 1-D array, got {getattr(self, name)!r}") from None
            if v.ndim > 1:
                raise DataValidationError(f"cost rate {name} must be a scalar or of shape (N,), got shape {v.shape}")
            if not np.isfinite(v).all() or (v < 0).any():
                raise DataValidationError(f"cost rate {name} must be finite and non-negative, got {v}")

    @property
    def is_linear(self) -> bool:
        """True when there is no impact term (costs are piecewise linear in the trade)."""
        return not np.any(np.asarray(self.impact) > 0)

    def rates(self, n_assets: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(buy, sell, impact)`` broadcast to arrays of shape ``(n_assets,)``."""
        out = []
        for name in ("buy", "sell", "impact"):
            v = np.asarray(getattr(self, name), dtype=np.float64)
            if v.ndim == 1 and v.shape[0] not in (1, n_assets):
                raise DataValidationError(f"cost rate {name} has {v.shape[0]} entries for {n_assets} assets")
            out.append(np.broadcast_to(v, (n_assets,)))
        return out[0], out[1], out[2]

    def cost(self, w_target: np.ndarray, w_drifted: np.ndarray) -> np.ndarray:
        """Cost of trading ``w_drifted -> w_target`` (risky assets, shape ``(..., N)``) -> ``(...)``."""
        w_target = np.asarray(w_target, dtype=np.float64)
        w_drifted = np.asarray(w_drifted, dtype=np.float64)
        if w_target.shape != w_drifted.shape:
            raise DataValidationError(f"weight shapes differ: {w_target.shape} vs {w_drifted.shape}")
        b, s, k = self.rates(w_target.shape[-1])
        dw = w_target - w_drifted
        c = (b * np.maximum(dw, 0.0) + s * np.maximum(-dw, 0.0)).sum(axis=-1)
        if not self.is_linear:
            c = c + (k * np.abs(dw) ** 1.5).sum(axis=-1)
        return c

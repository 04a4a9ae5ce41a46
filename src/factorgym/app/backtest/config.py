"""Settings of a backtest and the rows and seeds they fix: the real held-out path
(:func:`held_out_rows`) and the synthetic paths' episode seeds
(:func:`synthetic_episode_seeds`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from factorgym.costs import CostModel
from factorgym.data import ReturnPanel, Split
from factorgym.envs.actions import Constraints
from factorgym.errors import DataValidationError

__all__ = ["BacktestConfig", "held_out_rows", "synthetic_episode_seeds"]


@dataclass(frozen=True)
class BacktestConfig:
    """Settings of a backtest.

    Parameters
    ----------
    split : Split
        The test period starts the day after ``split.val_end``.
    test_end : str, optional
        Last test day (inclusive; default the panel's last day).
    n_paths : int
        Synthetic paths per generator (``M``; 0 skips the synthetic markets).
    horizon : int, optional
        Days per synthetic path (default: the real test path's length).
    seed : int
        Seeds the synthetic paths' episode seeds, the agents' random streams (unless an
        agent has its own) and the bootstrap.
    cost_model : CostModel
        Charged to every agent (default 7.5 / 12.5 bps).
    constraints : Constraints
        Enforced for every agent (default long-only, invested up to 100%).
    risk_free : float
        **Daily** simple cash rate, booked by the environment and subtracted from the daily
        returns by the metrics (Sharpe, Sortino); :attr:`annual_risk_free` is its annual
        equivalent ``(1 + rf)^252 - 1``, for display.
    bootstrap_reps : int
        Bootstrap resamples (0 skips the intervals).
    confidence : float
        Level of the bootstrap intervals.
    block_length : float, optional
        Mean block length of the stationary bootstrap (default: Politis-White optimal
        length of each series, at least 1).
    band : (float, float)
        Quantiles of the synthetic bands (default 5% and 95%).
    benchmark : str or None
        Exogenous column scored as the market benchmark row (``None`` to skip).
    periods_per_year : int
    cost_multipliers : tuple of float
        Multiples of ``cost_model`` at which every agent is re-run on the real path for the
        cost-sensitivity table and the break-even cost against 1/N (e.g. ``(0, 1, 2, 5)``;
        empty, the default, skips it: each multiplier other than 1 is one more real-path run
        per agent, plus a few per agent for the break-even; see
        :mod:`factorgym.app.backtest.sensitivity`).
    execution_lag : int
        Days between a decision and its trade (:attr:`factorgym.envs.EnvConfig.execution_lag`):
        0 (default) trades at the close the agent observed and earns ``r(t+1)``; 1 trades at
        the next close and earns ``r(t+2)``. The same for every agent.
    """

    split: Split = field(default_factory=Split)
    test_end: str | None = None
    n_paths: int = 32
    horizon: int | None = None
    seed: int = 0
    cost_model: CostModel = field(default_factory=CostModel)
    constraints: Constraints = field(default_factory=Constraints)
    risk_free: float = 0.0
    bootstrap_reps: int = 1000
    confidence: float = 0.95
    block_length: float | None = None
    band: tuple[float, float] = (0.05, 0.95)
    benchmark: str | None = "SP500"
    periods_per_year: int = 252
    cost_multipliers: tuple[float, ...] = ()
    execution_lag: int = 0

    def __post_init__(self) -> None:
        lag = self.execution_lag
        if isinstance(lag, bool) or not isinstance(lag, int | np.integer) or lag < 0:
            raise DataValidationError(f"execution_lag must be a whole number of days >= 0, got {lag!r}")
        object.__setattr__(self, "execution_lag", int(lag))
        if int(self.n_paths) < 0:
            raise DataValidationError(f"n_paths must be >= 0, got {self.n_paths}")
        if self.horizon is not None and int(self.horizon) < 1:
            raise DataValidationError(f"horizon must be at least 1 day, got {self.horizon}")
        if int(self.bootstrap_reps) < 0:
            raise DataValidationError(f"bootstrap_reps must be >= 0, got {self.bootstrap_reps}")
        if not 0.0 < float(self.confidence) < 1.0:
            raise DataValidationError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.block_length is not None and not float(self.block_length) >= 1.0:
            raise DataValidationError(f"block_length must be >= 1, got {self.block_length}")
        lo, hi = self.band
        if not 0.0 <= lo < hi <= 1.0:
            raise DataValidationError(f"band must be two quantiles 0 <= lo < hi <= 1, got {self.band}")
        if not math.isfinite(float(self.risk_free)) or self.risk_free <= -1:
            raise DataValidationError(f"risk_free must be a finite daily rate > -1, got {self.risk_free}")
        if not isinstance(self.cost_model, CostModel):
            raise DataValidationError("cost_model must be a factorgym.costs.CostModel")
        if not isinstance(self.constraints, Constraints):
            raise DataValidationError("constraints must be a factorgym.envs.actions.Constraints")
        try:
            mults = tuple(float(m) for m in self.cost_multipliers)
        except (TypeError, ValueError):
            raise DataValidationError(f"cost_multipliers must be numbers, got {self.cost_multipliers!r}") from None
        bad = [m for m in mults if not (math.isfinite(m) and m >= 0)]
        if bad:
            raise DataValidationError(f"cost multipliers must be finite and >= 0, got {bad[0]:g}")
        if len(set(mults)) != len(mults):
            raise DataValidationError(f"cost multipliers must be distinct, got {list(mults)}")
        object.__setattr__(self, "cost_multipliers", tuple(sorted(mults)))

    @property
    def annual_risk_free(self) -> float:
        """The annual rate equivalent to the daily ``risk_free`` (for display)."""
        return float((1.0 + self.risk_free) ** self.periods_per_year - 1.0)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description."""
        cm, c = self.cost_model, self.constraints
        return {
            "train_end": self.split.train_end,
            "val_end": self.split.val_end,
            "test_end": self.test_end,
            "n_paths": int(self.n_paths),
            "horizon": self.horizon,
            "seed": int(self.seed),
            "cost_model": {k: np.asarray(v).tolist() for k, v in asdict(cm).items()},
            "constraints": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(c).items()},
            "risk_free_daily": self.risk_free,
            "bootstrap_reps": int(self.bootstrap_reps),
            "confidence": self.confidence,
            "block_length": self.block_length,
            "band": list(self.band),
            "benchmark": self.benchmark,
            "periods_per_year": self.periods_per_year,
            "cost_multipliers": list(self.cost_multipliers),
            "execution_lag": self.execution_lag,
        }


def held_out_rows(panel: ReturnPanel, split: Split, test_end: str | None = None) -> tuple[int, int]:
    """Rows ``(start, end)`` of the real test path: ``start`` is the last day before the
    test period (the first observation), ``end`` the last test day (inclusive).

    Raises
    ------
    DataValidationError
        When the test period is empty or has no day before it.
    """
    b = split.bounds(panel.dates)["test"][0]
    end = panel.T - 1 if test_end is None else int(panel.dates.searchsorted(pd.Timestamp(test_end), side="right")) - 1
    if b >= panel.T or end < b:
        raise DataValidationError(
            f"the test period after {split.val_end}{'' if test_end is None else ' through ' + str(test_end)} "
            f"is empty in {panel.name} ({panel.dates[0].date()}..{panel.dates[-1].date()})"
        )
    if b == 0:
        raise DataValidationError(f"{panel.name} has no day before the test period to start from")
    return b - 1, end


def synthetic_episode_seeds(seed: int, n_paths: int) -> list[int]:
    """Episode seeds of synthetic paths ``0..n_paths-1``; path ``i``'s seed does not depend
    on ``n_paths`` (``SeedSequence(seed).spawn`` children), so a larger run extends a
    smaller one."""
    children = np.random.SeedSequence(int(seed)).spawn(int(n_paths))
    return [int(c.generate_state(1, np.uint64)[0] >> np.uint64(1)) for c in children]


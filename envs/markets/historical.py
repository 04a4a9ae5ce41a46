"""Replay of real history: :class:`HistoricalMarket` and its batched paths."""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING

import numpy as np

from factorgym.data import ReturnPanel
from factorgym.envs.markets.base import (
    Market,
    MarketPaths,
    ObservationConfig,
    StartSpec,
    check_assets,
    format_moments,
    last_traded_rows,
    standardise,
)
from factorgym.errors import DataValidationError
from factorgym.features import compute_features

if TYPE_CHECKING:
    from factorgym.generators.base import ReturnGenerator

__all__ = ["HistoricalMarket", "HistoricalPaths"]


class HistoricalMarket(Market):
    """Replay of a real return panel.

    Parameters
    ----------
    panel : ReturnPanel
        Real returns (typically one split).
    start : date, str or int, optional
        Fixed start day (the date of the first observation; the first trade earns the next
        day's return). Overrides ``random_start``.
    horizon : int or None
        Steps per episode; ``None`` runs from the start to ``last_day``.
    random_start : bool
        Draw each episode's start uniformly from the allowed range (else take its first day).
    first_day, last_day : date, str or int, optional
        The earliest allowed start day and the last day whose return may be earned (an
        episode never reads a row after ``last_day``). Observation windows may reach back
        before ``first_day`` (that is past information).
    predictor : ReturnGenerator, optional
        Model whose next-day predictions fill the ``"moments"`` observation.
    """

    def __init__(
        self,
        panel: ReturnPanel,
        *,
        start: StartSpec = None,
        horizon: int | None = 252,
        random_start: bool = True,
        first_day: StartSpec = None,
        last_day: StartSpec = None,
        predictor: ReturnGenerator | None = None,
    ) -> None:
        if not isinstance(panel, ReturnPanel):
            raise DataValidationError(f"panel must be a ReturnPanel, got {type(panel).__name__}")
        if horizon is not None and int(horizon) < 1:
            raise DataValidationError(f"horizon must be at least 1 step, got {horizon}")
        self.panel = panel
        self.horizon = None if horizon is None else int(horizon)
        self.start = start
        self.random_start = bool(random_start)
        self.first_row, self.last_row = self._bounds(first_day, last_day)
        if predictor is not None:
            check_assets(predictor, panel)
        self.predictor = predictor
        if start is not None:
            self._row(start)

    def open(self, n_paths: int, obs: ObservationConfig) -> HistoricalPaths:
        return HistoricalPaths(self, n_paths, obs)

    def __repr__(self) -> str:
        d = self.panel.dates
        return (
            f"HistoricalMarket({self.panel.name!r}, N={self.n_assets}, days "
            f"{d[self.first_row].date()}..{d[self.last_row].date()}, horizon={self.horizon})"
        )


class HistoricalPaths(MarketPaths):
    """Vectorised replay: every per-day quantity is precomputed and gathered by row index."""

    def __init__(self, market: HistoricalMarket, n_paths: int, obs: ObservationConfig) -> None:
        super().__init__(market, n_paths, obs, market.start, market.random_start)
        self.hmarket = market
        p = self.panel
        need = obs.history_needed
        if obs.moments is not None:
            if market.predictor is None:
                raise DataValidationError("moments observations on a HistoricalMarket need its predictor=")
            need = max(need, int(market.predictor.min_history))
        self._lo = max(market.first_row, need - 1)
        self._hi = market.last_row - (market.horizon or 1)
        if self._hi < self._lo:
            raise DataValidationError(
                f"{p.name} has no start day with {need} days of history and "
                f"{market.horizon or 1} days to run before {p.dates[market.last_row].date()}"
            )
        self._R = np.ascontiguousarray(p.filled(0.0))
        self._M = p.mask.astype(np.float64) if self.has_mask else None
        self._trades = np.asarray(p.mask, dtype=bool) if self.has_mask else None
        self._gone: np.ndarray | None = None
        if self.has_mask:
            last = last_traded_rows(p.mask)
            if (last < p.T).any():
                self._gone = np.arange(p.T)[:, None] >= last[None, :]
        # (T - window + 1, N, window) views: row j is the window ending at day j + window - 1
        self._Rw = np.lib.stride_tricks.sliding_window_view(self._R, self.window, axis=0)
        self._Mw = None if self._M is None else np.lib.stride_tricks.sliding_window_view(self._M, self.window, axis=0)
        self.t = np.full(self.n_paths, self._lo, dtype=np.int64)
        self._X: np.ndarray | None = None
        if obs.features is not None:
            X, valid = compute_features(p, obs.features)
            self._X = standardise(X, self._fit_scaler(X, valid, self._lo))
        self._moment_cache: dict[int, np.ndarray] = {}

    def start_range(self) -> tuple[int, int]:
        return self._lo, self._hi

    def reset(self, idx, start_rngs, path_rngs, starts) -> None:  # type: ignore[override]
        idx = np.asarray(idx, dtype=np.int64)
        rows = np.array([self.choose_start(start_rngs[j], starts[j]) for j in range(len(idx))], dtype=np.int64)
        self.t[idx] = rows
        self.start_rows[idx] = rows
        h = self.hmarket.horizon
        self.horizons[idx] = h if h is not None else self.hmarket.last_row - rows

    def step(self) -> np.ndarray:
        self.t += 1
        return self._R[self.t]

    def tradable(self) -> np.ndarray | None:
        return None if self._trades is None else self._trades[self.t]

    def delisted(self) -> np.ndarray | None:
        return None if self._gone is None else self._gone[self.t]

    def lookahead(self, days: int = 1) -> np.ndarray:
        """The returns ``(P, N)`` of ``days`` days ahead without advancing (privileged; for leak tests)."""
        return self._R[np.minimum(self.t + int(days), self.hmarket.last_row)]

    def returns_window(self, idx=None) -> np.ndarray:  # type: ignore[override]
        t = self.t if idx is None else self.t[idx]
        return np.ascontiguousarray(self._Rw[t - (self.window - 1)].transpose(0, 2, 1))

    def mask_window(self, idx=None) -> np.ndarray:  # type: ignore[override]
        t = self.t if idx is None else self.t[idx]
        if self._Mw is None:
            return np.ones((len(t), self.window, self.n_assets))
        return np.ascontiguousarray(self._Mw[t - (self.window - 1)].transpose(0, 2, 1))

    def features(self, idx=None) -> np.ndarray:  # type: ignore[override]
        assert self._X is not None
        t = self.t if idx is None else self.t[idx]
        return self._X[t]

    def moments(self, idx=None) -> np.ndarray:  # type: ignore[override]
        t = (self.t if idx is None else self.t[idx]).tolist()
        todo = sorted({r for r in t if r not in self._moment_cache})
        if todo:
            gen = self.hmarket.predictor
            assert gen is not None
            mh = int(gen.min_history)
            wins = np.stack([self.panel.returns[r - mh + 1 : r + 1] for r in todo])
            preds = gen.predict_windows(wins)
            for r, pr in zip(todo, preds, strict=True):
                self._moment_cache[r] = format_moments(
                    np.asarray(pr.mean(), dtype=np.float64), np.asarray(pr.cov(), dtype=np.float64), self.obs.moments  # type: ignore[arg-type]
                )
        return np.stack([self._moment_cache[r] for r in t])

    def dates(self) -> list[_dt.date | None]:
        d = self._dates_list
        return [d[i] for i in self.t.tolist()]

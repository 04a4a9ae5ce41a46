"""A trained generator rolled forward on its own samples: :class:`GenerativeMarket` and its
batched paths."""

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
    format_moments_diag,
    standardise,
)
from factorgym.errors import DataValidationError
from factorgym.features import FeatureScaler, compute_features, window_features

if TYPE_CHECKING:
    from factorgym.generators.base import PathSimulator, ReturnGenerator

__all__ = ["GenerativeMarket", "GenerativePaths", "RingWindows"]


class GenerativeMarket(Market):
    """A trained generator rolled forward on its own samples from real starting history.

    Parameters
    ----------
    generator : ReturnGenerator
        Fitted on the same assets as ``panel``.
    panel : ReturnPanel
        Real history the paths are conditioned on.
    start : date, str or int, optional
        Fixed start day (the last real day of the conditioning history).
    horizon : int
        Simulated steps per episode.
    random_start : bool
        Draw each episode's start uniformly from the allowed range (else take its first day).
    first_day, last_day : date, str or int, optional
        Allowed range of start days (no real row after the start day is ever read).

    Notes
    -----
    For an honest protocol, train agents on a market conditioned on the training split
    (pass that split, or ``last_day`` at its end) and evaluate them on a
    :class:`HistoricalMarket` over the held-out split.
    """

    def __init__(
        self,
        generator: ReturnGenerator,
        panel: ReturnPanel,
        *,
        start: StartSpec = None,
        horizon: int = 252,
        random_start: bool = True,
        first_day: StartSpec = None,
        last_day: StartSpec = None,
    ) -> None:
        if not isinstance(panel, ReturnPanel):
            raise DataValidationError(f"panel must be a ReturnPanel, got {type(panel).__name__}")
        if horizon is None or int(horizon) < 1:
            raise DataValidationError(f"a generative market needs a horizon of at least 1 step, got {horizon}")
        check_assets(generator, panel)
        self.generator = generator
        self.panel = panel
        self.horizon = int(horizon)
        self.start = start
        self.random_start = bool(random_start)
        self.first_row, self.last_row = self._bounds(first_day, last_day)
        if start is not None:
            self._row(start)

    def open(self, n_paths: int, obs: ObservationConfig) -> GenerativePaths:
        return GenerativePaths(self, n_paths, obs)

    def __repr__(self) -> str:
        d = self.panel.dates
        return (
            f"GenerativeMarket({type(self.generator).__name__}, {self.panel.name!r}, N={self.n_assets}, "
            f"starts {d[self.first_row].date()}..{d[self.last_row].date()}, horizon={self.horizon})"
        )


class RingWindows:
    """Trailing windows of ``L`` days for ``P`` paths, pushed one day at a time without copies.

    Rows are stored twice (``buf[:, j] == buf[:, j + L]``) so that the window, oldest first, is
    always the contiguous slice ``buf[:, s : s + L]`` with ``s`` the head.
    """

    def __init__(self, n_paths: int, length: int, n_assets: int, with_mask: bool) -> None:
        self.L = int(length)
        self.s = 0
        self.buf = np.zeros((n_paths, 2 * self.L, n_assets))
        self.mask = np.ones((n_paths, 2 * self.L, n_assets)) if with_mask else None

    def last(self, k: int, idx: np.ndarray | None = None, mask: bool = False) -> np.ndarray:
        src = self.mask if mask else self.buf
        assert src is not None
        lo = self.s + self.L - k
        return src[:, lo : self.s + self.L] if idx is None else src[idx, lo : self.s + self.L]

    def push(self, r: np.ndarray) -> None:
        s, L = self.s, self.L
        self.buf[:, s] = r
        self.buf[:, s + L] = r
        if self.mask is not None:
            self.mask[:, s] = 1.0
            self.mask[:, s + L] = 1.0
        self.s = (s + 1) % L

    def write(self, idx: np.ndarray, hist: np.ndarray, hist_mask: np.ndarray | None) -> None:
        rolled = np.roll(hist, self.s, axis=1)
        self.buf[idx, : self.L] = rolled
        self.buf[idx, self.L :] = rolled
        if self.mask is not None and hist_mask is not None:
            m = np.roll(hist_mask, self.s, axis=1)
            self.mask[idx, : self.L] = m
            self.mask[idx, self.L :] = m


class RingPaths(MarketPaths):
    """Paths whose history after the real start day lives in a :class:`RingWindows`
    (``self._ring``), with ``self._day`` days simulated so far: the generative market and the
    bank market that replays it share these observations exactly."""

    def tradable(self) -> np.ndarray | None:
        if not self.has_mask:
            return None
        out = np.ones((self.n_paths, self.n_assets), dtype=bool)
        real = np.flatnonzero(self._day == 0)  # the real start day; simulated days are complete
        if real.size:
            out[real] = self.panel.mask[self.start_rows[real]]
        return out

    def returns_window(self, idx=None) -> np.ndarray:  # type: ignore[override]
        return np.array(self._ring.last(self.window, idx))

    def mask_window(self, idx=None) -> np.ndarray:  # type: ignore[override]
        if not self.has_mask:
            k = self.n_paths if idx is None else len(idx)
            return np.ones((k, self.window, self.n_assets))
        return np.array(self._ring.last(self.window, idx, mask=True))

    def features(self, idx=None) -> np.ndarray:  # type: ignore[override]
        cfg = self.obs.features
        assert cfg is not None and self._scaler is not None
        w = self._ring.last(cfg.warmup, idx)
        m = self._ring.last(cfg.warmup, idx, mask=True) > 0.5 if self.has_mask else None
        return standardise(window_features(w, cfg, m), self._scaler)



class GenerativePaths(RingPaths):
    def __init__(self, market: GenerativeMarket, n_paths: int, obs: ObservationConfig) -> None:
        super().__init__(market, n_paths, obs, market.start, market.random_start)
        self.gmarket = market
        self.generator = market.generator
        p = self.panel
        if obs.features is not None and obs.features.exog:
            raise DataValidationError(
                "a generative market cannot observe exogenous features (they are not simulated); "
                "drop exog from the FeatureConfig"
            )
        self._mh = int(self.generator.min_history)
        need = max(obs.history_needed, self._mh)
        self._L = max(obs.history_needed, self._mh if obs.moments is not None else 0)
        self._lo = max(market.first_row, need - 1)
        self._hi = market.last_row
        if self._hi < self._lo:
            raise DataValidationError(f"{p.name} has no start day with the {need} days of history this market needs")
        self._ring = RingWindows(self.n_paths, self._L, self.n_assets, self.has_mask)
        self._sim: PathSimulator | None = None
        self._scaler: FeatureScaler | None = None
        if obs.features is not None:
            X, valid = compute_features(p, obs.features)
            self._scaler = self._fit_scaler(X, valid, self._lo)
        self._sim_moments = True
        self._day = np.zeros(self.n_paths, dtype=np.int64)
        self.horizons[:] = market.horizon

    def start_range(self) -> tuple[int, int]:
        return self._lo, self._hi

    def reset(self, idx, start_rngs, path_rngs, starts) -> None:  # type: ignore[override]
        idx = np.asarray(idx, dtype=np.int64)
        rows = [self.choose_start(start_rngs[j], starts[j]) for j in range(len(idx))]
        R = self.panel.returns
        hist = np.stack([R[t - self._L + 1 : t + 1] for t in rows])  # NaN where absent
        avail = ~np.isnan(hist)
        self._ring.write(idx, np.where(avail, hist, 0.0), avail.astype(np.float64) if self.has_mask else None)
        windows = np.stack([R[t - self._mh + 1 : t + 1] for t in rows])
        self.start_rows[idx] = rows
        self.horizons[idx] = self.gmarket.horizon
        self._day[idx] = 0
        if self._sim is None:
            if len(idx) != self.n_paths or not (idx == np.arange(self.n_paths)).all():
                raise RuntimeError("the first reset of a generative market must start every path")
            self._sim = self.generator.simulator_window(windows, list(path_rngs))
            if self._sim.n_paths != self.n_paths:
                raise DataValidationError(
                    f"{type(self.generator).__name__}.simulator_window made {self._sim.n_paths} paths, expected {self.n_paths}"
                )
        else:
            self._sim.reset_paths(idx, windows, list(path_rngs))

    def step(self) -> np.ndarray:
        assert self._sim is not None
        r = np.asarray(self._sim.step(), dtype=np.float64)
        if r.shape != (self.n_paths, self.n_assets):
            raise DataValidationError(
                f"{type(self.generator).__name__} simulated returns of shape {r.shape}, expected {(self.n_paths, self.n_assets)}"
            )
        if not np.isfinite(r).all() or (r <= -1.0).any():
            bad = np.argwhere(~np.isfinite(r) | (r <= -1.0))[0].tolist()
            raise DataValidationError(
                f"{type(self.generator).__name__} simulated an impossible return at (path, asset) {bad}: "
                f"{r[tuple(bad)]!r} (simple returns must be finite and > -1)"
            )
        self._ring.push(r)
        self._day += 1
        return r

    def moments(self, idx=None) -> np.ndarray:  # type: ignore[override]
        assert self._sim is not None
        kind = self.obs.moments
        if self._sim_moments:
            sel = slice(None) if idx is None else idx
            try:
                if kind == "diag":  # O(P N F) for a factor model, not the (P, N, N) covariance
                    mean, var = self._sim.moments_diag()
                    return format_moments_diag(np.asarray(mean)[sel], np.asarray(var)[sel])
                mean, cov = self._sim.moments()
            except NotImplementedError:
                self._sim_moments = False
            else:
                return format_moments(np.asarray(mean)[sel], np.asarray(cov)[sel], kind)  # type: ignore[arg-type]
        w = np.array(self._ring.last(self._mh, idx))
        if self.has_mask:
            w[self._ring.last(self._mh, idx, mask=True) < 0.5] = np.nan
        preds = self.generator.predict_windows(w)
        mean = np.stack([np.asarray(p.mean(), dtype=np.float64) for p in preds])
        cov = np.stack([np.asarray(p.cov(), dtype=np.float64) for p in preds])
        return format_moments(mean, cov, kind)  # type: ignore[arg-type]

    def dates(self) -> list[_dt.date | None]:
        starts = self.start_dates()
        return [d if k == 0 else None for d, k in zip(starts, self._day.tolist(), strict=True)]

"""Market sources: where a portfolio environment's daily returns come from.

Two sources sit behind one interface and produce observations and infos of identical
shapes and keys, so an agent can tell them apart only by the numbers:

* :class:`HistoricalMarket` replays a real :class:`~factorgym.data.ReturnPanel` (a split),
  from a random or fixed start date, for a fixed horizon or to the end of the panel.
* :class:`GenerativeMarket` conditions a trained :class:`~factorgym.generators.base.ReturnGenerator`
  on real history up to a (random or fixed) start date, then rolls forward on the generator's
  own samples through its :class:`~factorgym.generators.base.PathSimulator`.

A ``Market`` is configuration and may back several environments; :meth:`Market.open` creates
the batched per-environment state (:class:`MarketPaths`) for ``P`` paths. Everything at step
time is numpy (torch generators run inside their own ``PathSimulator``).

Timing
------
A path that starts at row ``t0`` of the panel has observed rows ``<= t0`` (the close of day
``t0``); its ``k``-th step reveals the returns of day ``t0 + k``. A historical path never reads a
row after ``last_day``; a generative path never reads a real row after its start row ``t0``.

Missing data
------------
Where the panel marks an asset absent, the observed return is ``0.0`` and the observation
gains a ``"mask"`` key (1.0 available, 0.0 absent) - only for panels with missing cells. In
the accounting an absent asset earns ``0.0`` that day (its price is carried forward).
Simulated days are complete (mask all ones).
"""

from __future__ import annotations

import datetime as _dt
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from factorgym.data import ReturnPanel
from factorgym.errors import DataValidationError
from factorgym.features import FeatureConfig, FeatureScaler, compute_features, window_features

if TYPE_CHECKING:
    from factorgym.generators.base import PathSimulator, ReturnGenerator

__all__ = [
    "GenerativeMarket",
    "GenerativePaths",
    "HistoricalMarket",
    "HistoricalPaths",
    "Market",
    "MarketPaths",
    "ObservationConfig",
]

StartSpec = str | pd.Timestamp | _dt.date | int | np.integer | None


@dataclass(frozen=True)
class ObservationConfig:
    """What an environment observes besides the returns window and the weights.

    Parameters
    ----------
    window : int
        Days of returns observed (rows ``t - window + 1 .. t``).
    features : FeatureConfig or None
        Point-in-time features (``"features"`` key, shape ``(N, K)``), standardised.
    feature_scaler : FeatureScaler or None
        Fitted standardisation. ``None`` fits one on the market panel's rows up to the earliest
        allowed start date (so no episode's scaling uses data after its own start).
    moments : {None, "diag", "cov"}
        Next-day moments predicted by a generator (``"moments"`` key): ``"diag"`` -> shape
        ``(2, N)`` (row 0 mean, row 1 volatility), ``"cov"`` -> ``(N + 1, N)`` (row 0 mean,
        rows 1.. covariance).
    """

    window: int = 20
    features: FeatureConfig | None = None
    feature_scaler: FeatureScaler | None = None
    moments: Literal["diag", "cov"] | None = None

    def __post_init__(self) -> None:
        if int(self.window) < 1:
            raise DataValidationError(f"window must be at least 1 day, got {self.window}")
        if self.moments not in (None, "diag", "cov"):
            raise DataValidationError(f"moments must be None, 'diag' or 'cov', got {self.moments!r}")

    @property
    def history_needed(self) -> int:
        """Rows up to and including the start day needed by the window and the features."""
        need = int(self.window)
        if self.features is not None:
            need = max(need, self.features.warmup)
        return need


def _check_assets(generator: ReturnGenerator, panel: ReturnPanel) -> None:
    fitted = getattr(generator, "assets_", None)
    if fitted is not None and tuple(fitted) != tuple(panel.assets):
        raise DataValidationError(
            f"the generator was fitted on assets {list(fitted)[:5]}..., the panel has {list(panel.assets)[:5]}..."
        )


def _format_moments(mean: np.ndarray, cov: np.ndarray, kind: str) -> np.ndarray:
    """``(k, 2, N)`` mean/volatility or ``(k, N + 1, N)`` mean/covariance."""
    if kind == "diag":
        vol = np.sqrt(np.maximum(np.diagonal(cov, axis1=-2, axis2=-1), 0.0))
        out = np.stack([mean, vol], axis=-2)
    else:
        out = np.concatenate([mean[..., None, :], cov], axis=-2)
    if not np.isfinite(out).all():
        raise DataValidationError("the generator predicted non-finite moments")
    return out


class Market(ABC):
    """A source of daily simple returns for ``N`` assets (configuration, shareable)."""

    panel: ReturnPanel
    horizon: int | None

    @property
    def assets(self) -> tuple[str, ...]:
        """Asset names, in column order."""
        return tuple(self.panel.assets)

    @property
    def n_assets(self) -> int:
        """Number of assets ``N``."""
        return self.panel.N

    @property
    def has_missing(self) -> bool:
        """True when the panel has absent cells (the observation then has a ``"mask"`` key)."""
        return not bool(self.panel.mask.all())

    @abstractmethod
    def open(self, n_paths: int, obs: ObservationConfig) -> MarketPaths:
        """Batched state for ``n_paths`` paths observing ``obs``."""

    def _row(self, start: StartSpec) -> int:
        if isinstance(start, int | np.integer):
            row = int(start)
            if not 0 <= row < self.panel.T:
                raise DataValidationError(f"start row {row} is outside {self.panel.name} (T={self.panel.T})")
            return row
        return self.panel.index_of(pd.Timestamp(start))  # type: ignore[arg-type]

    def _bounds(self, first_day: StartSpec, last_day: StartSpec) -> tuple[int, int]:
        p = self.panel
        first = 0 if first_day is None else (
            int(first_day) if isinstance(first_day, int | np.integer)
            else int(p.dates.searchsorted(pd.Timestamp(first_day), side="left"))  # type: ignore[arg-type]
        )
        last = p.T - 1 if last_day is None else self._row(last_day)
        if first > last:
            raise DataValidationError(f"first_day {first_day} is after last_day {last_day} in {p.name}")
        return first, last


class MarketPaths(ABC):
    """Batched state of ``P`` market paths (one environment's, created by :meth:`Market.open`).

    Attributes
    ----------
    horizons : ndarray of shape (P,), int
        Steps in each path's current episode.
    start_rows : ndarray of shape (P,), int
        Panel row of each path's start day ``t0``.
    """

    has_mask: bool
    horizons: np.ndarray
    start_rows: np.ndarray

    def __init__(self, market: Market, n_paths: int, obs: ObservationConfig, start: StartSpec, random_start: bool) -> None:
        self.market = market
        self.panel = market.panel
        self.n_paths = int(n_paths)
        self.n_assets = market.n_assets
        self.obs = obs
        self.window = int(obs.window)
        self.has_mask = market.has_missing
        self._fixed_start = start
        self._random_start = bool(random_start)
        self.horizons = np.zeros(self.n_paths, dtype=np.int64)
        self.start_rows = np.zeros(self.n_paths, dtype=np.int64)
        self._dates_d = self.panel.dates.values.astype("datetime64[D]")
        self._dates_list: list[_dt.date] = self._dates_d.tolist()

    # ------------------------------------------------------------------ starts
    @abstractmethod
    def start_range(self) -> tuple[int, int]:
        """Inclusive range ``(lo, hi)`` of allowed start rows."""

    def choose_start(self, rng: np.random.Generator, start: StartSpec = None) -> int:
        """Start row: ``start`` if given, else the market's fixed start, else drawn from ``rng``."""
        lo, hi = self.start_range()
        spec = start if start is not None else self._fixed_start
        if spec is not None:
            row = self.market._row(spec)
            if not lo <= row <= hi:
                raise DataValidationError(
                    f"start {self.panel.dates[row].date()} is outside the allowed start range "
                    f"{self.panel.dates[lo].date()}..{self.panel.dates[hi].date()} of {self.panel.name}"
                )
            return row
        if self._random_start:
            return int(rng.integers(lo, hi + 1))
        return lo

    def start_dates(self, idx: np.ndarray | None = None) -> list[_dt.date]:
        """Real start dates ``t0`` of the paths ``idx``."""
        rows = self.start_rows if idx is None else self.start_rows[idx]
        return self._dates_d[rows].tolist()

    # ------------------------------------------------------------------ stepping
    @abstractmethod
    def reset(
        self,
        idx: np.ndarray,
        start_rngs: Sequence[np.random.Generator],
        path_rngs: Sequence[np.random.Generator],
        starts: Sequence[StartSpec],
    ) -> None:
        """Start new episodes for paths ``idx`` ``(k,)`` (one stream of each kind per path)."""

    @abstractmethod
    def step(self) -> np.ndarray:
        """Advance every path one day; the day's realised returns ``(P, N)`` (0.0 where absent)."""

    @abstractmethod
    def returns_window(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Observed returns ``(k, window, N)`` up to the current day, oldest first (fresh array)."""

    @abstractmethod
    def mask_window(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Availability ``(k, window, N)`` as 1.0/0.0 (only meaningful when ``has_mask``)."""

    @abstractmethod
    def features(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Standardised features ``(k, N, K)`` of the current day (0.0 where undefined)."""

    @abstractmethod
    def moments(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Predicted next-day moments (see :class:`ObservationConfig`)."""

    @abstractmethod
    def dates(self) -> list[_dt.date | None]:
        """Date of each path's current day (``None`` on simulated days; the real start day of a
        generative path has its date)."""

    # ------------------------------------------------------------------ helpers
    def _fit_scaler(self, X: np.ndarray, valid: np.ndarray, upto: int) -> FeatureScaler:
        if self.obs.feature_scaler is not None:
            return self.obs.feature_scaler
        try:
            return FeatureScaler().fit(X[: upto + 1], valid[: upto + 1])
        except DataValidationError:
            raise DataValidationError(
                f"no complete feature rows in {self.panel.name} before the first start date "
                f"{self.panel.dates[upto].date()} to fit the feature scaler on; pass a fitted feature_scaler"
            ) from None


def _standardise(X: np.ndarray, scaler: FeatureScaler) -> np.ndarray:
    Z = scaler.transform(X)
    return np.where(np.isfinite(Z), Z, 0.0)


# =========================================================================== historical
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
            _check_assets(predictor, panel)
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
        # (T - window + 1, N, window) views: row j is the window ending at day j + window - 1
        self._Rw = np.lib.stride_tricks.sliding_window_view(self._R, self.window, axis=0)
        self._Mw = None if self._M is None else np.lib.stride_tricks.sliding_window_view(self._M, self.window, axis=0)
        self.t = np.full(self.n_paths, self._lo, dtype=np.int64)
        self._X: np.ndarray | None = None
        if obs.features is not None:
            X, valid = compute_features(p, obs.features)
            self._X = _standardise(X, self._fit_scaler(X, valid, self._lo))
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

    def lookahead(self) -> np.ndarray:
        """The next day's returns ``(P, N)`` without advancing (privileged; for leak tests)."""
        return self._R[np.minimum(self.t + 1, self.hmarket.last_row)]

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
                self._moment_cache[r] = _format_moments(
                    np.asarray(pr.mean(), dtype=np.float64), np.asarray(pr.cov(), dtype=np.float64), self.obs.moments  # type: ignore[arg-type]
                )
        return np.stack([self._moment_cache[r] for r in t])

    def dates(self) -> list[_dt.date | None]:
        d = self._dates_list
        return [d[i] for i in self.t.tolist()]


# =========================================================================== generative
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
        _check_assets(generator, panel)
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


class _Ring:
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


class GenerativePaths(MarketPaths):
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
        self._ring = _Ring(self.n_paths, self._L, self.n_assets, self.has_mask)
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
        return _standardise(window_features(w, cfg, m), self._scaler)

    def moments(self, idx=None) -> np.ndarray:  # type: ignore[override]
        assert self._sim is not None
        kind = self.obs.moments
        if self._sim_moments:
            try:
                mean, cov = self._sim.moments()
            except NotImplementedError:
                self._sim_moments = False
            else:
                sel = slice(None) if idx is None else idx
                return _format_moments(np.asarray(mean)[sel], np.asarray(cov)[sel], kind)  # type: ignore[arg-type]
        w = np.array(self._ring.last(self._mh, idx))
        if self.has_mask:
            w[self._ring.last(self._mh, idx, mask=True) < 0.5] = np.nan
        preds = self.generator.predict_windows(w)
        mean = np.stack([np.asarray(p.mean(), dtype=np.float64) for p in preds])
        cov = np.stack([np.asarray(p.cov(), dtype=np.float64) for p in preds])
        return _format_moments(mean, cov, kind)  # type: ignore[arg-type]

    def dates(self) -> list[_dt.date | None]:
        starts = self.start_dates()
        return [d if k == 0 else None for d, k in zip(starts, self._day.tolist(), strict=True)]

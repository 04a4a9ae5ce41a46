"""The market interface (:class:`Market`, :class:`MarketPaths`), the observation settings
(:class:`ObservationConfig`) and helpers shared by the historical and generative markets.

See :mod:`factorgym.envs.markets` for the timing and missing-data rules."""

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
from factorgym.features import FeatureConfig, FeatureScaler

if TYPE_CHECKING:
    from factorgym.generators.base import ReturnGenerator

__all__ = ["Market", "MarketPaths", "ObservationConfig", "StartSpec", "check_assets", "format_moments", "standardise"]

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


def check_assets(generator: ReturnGenerator, panel: ReturnPanel) -> None:
    fitted = getattr(generator, "assets_", None)
    if fitted is not None and tuple(fitted) != tuple(panel.assets):
        raise DataValidationError(
            f"the generator was fitted on assets {list(fitted)[:5]}..., the panel has {list(panel.assets)[:5]}..."
        )


def format_moments(mean: np.ndarray, cov: np.ndarray, kind: str) -> np.ndarray:
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


def standardise(X: np.ndarray, scaler: FeatureScaler) -> np.ndarray:
    Z = scaler.transform(X)
    return np.where(np.isfinite(Z), Z, 0.0)

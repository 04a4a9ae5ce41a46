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

__all__ = [
    "Market",
    "MarketPaths",
    "ObservationConfig",
    "StartSpec",
    "check_assets",
    "format_moments",
    "format_moments_diag",
    "last_traded_rows",
    "parse_day",
    "standardise",
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


def check_assets(generator: ReturnGenerator, panel: ReturnPanel) -> None:
    fitted = getattr(generator, "assets_", None)
    if fitted is not None and tuple(fitted) != tuple(panel.assets):
        raise DataValidationError(
            f"the generator was fitted on assets {list(fitted)[:5]}..., the panel has {list(panel.assets)[:5]}..."
        )


def format_moments(mean: np.ndarray, cov: np.ndarray, kind: str) -> np.ndarray:
    """``(k, 2, N)`` mean/volatility or ``(k, N + 1, N)`` mean/covariance."""
    if kind == "diag":
        return format_moments_diag(mean, np.diagonal(cov, axis1=-2, axis2=-1))
    else:
        out = np.concatenate([mean[..., None, :], cov], axis=-2)
    if not np.isfinite(out).all():
        raise DataValidationError("the generator predicted non-finite moments")
    return out


def format_moments_diag(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """``(k, 2, N)`` mean/volatility from means and variances ``(k, N)``."""
    out = np.stack([mean, np.sqrt(np.maximum(var, 0.0))], axis=-2)
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

    def _row(self, start: StartSpec, what: str = "start") -> int:
        """Panel row of a day given as a row number or a date (the last trading day on or
        before it); a date outside the panel, or anything else, raises naming the value."""
        p = self.panel
        if isinstance(start, int | np.integer) and not isinstance(start, bool | np.bool_):
            row = int(start)
            if not 0 <= row < p.T:
                raise DataValidationError(f"{what} row {row} is outside {p.name} (rows 0..{p.T - 1})")
            return row
        ts = parse_day(start, what)
        first, last = p.dates[0], p.dates[-1]
        if ts.normalize() < first.normalize() or ts.normalize() > last.normalize():
            raise DataValidationError(
                f"{what} {_show(start)} is outside {p.name}, which runs {first.date()}..{last.date()}"
            )
        return p.index_of(ts)

    def _bounds(self, first_day: StartSpec, last_day: StartSpec) -> tuple[int, int]:
        p = self.panel
        if first_day is None:
            first = 0
        elif isinstance(first_day, int | np.integer) and not isinstance(first_day, bool | np.bool_):
            first = self._row(first_day, "first_day")
        else:
            first = int(p.dates.searchsorted(parse_day(first_day, "first_day"), side="left"))
        last = p.T - 1 if last_day is None else self._row(last_day, "last_day")
        if first > last:
            raise DataValidationError(f"first_day {first_day} is after last_day {last_day} in {p.name}")
        return first, last


def _show(value: object) -> str:
    """A user's day as they gave it (a date's ISO form, else its repr)."""
    if isinstance(value, pd.Timestamp | _dt.date):
        ts = pd.Timestamp(value)
        return str(ts.date()) if ts == ts.normalize() else str(ts)
    return repr(value)


def parse_day(value: object, what: str = "start") -> pd.Timestamp:
    """``value`` (a date, a ``Timestamp`` or an ISO date string) as a naive ``Timestamp``.

    Raises
    ------
    DataValidationError
        Naming ``value`` when it is not a date (a number other than a row index, an
        unparseable string, a timezone-aware time, ...).
    """
    if isinstance(value, str | _dt.date | pd.Timestamp | np.datetime64) and not isinstance(value, bool):
        try:
            ts = pd.Timestamp(value)  # type: ignore[arg-type]
        except (ValueError, TypeError, OverflowError):
            ts = None
        if ts is not None and ts is not pd.NaT and not pd.isna(ts):
            if ts.tzinfo is not None:
                raise DataValidationError(f"{what} {value!r} has a time zone; give a plain date such as '2010-01-04'")
            return ts
    raise DataValidationError(
        f"{what} {value!r} is not a date (e.g. '2010-01-04') or a row number of the panel"
    )


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
            d = self.panel.dates
            allowed = f"the allowed start range {d[lo].date()}..{d[hi].date()} of {self.panel.name}"
            try:
                row = self.market._row(spec)
            except DataValidationError as exc:
                raise DataValidationError(f"{exc}; {allowed}") from None
            if not lo <= row <= hi:
                day = d[row].date()
                if isinstance(spec, int | np.integer):
                    shown = f"row {row} ({day})"
                elif parse_day(spec).normalize() == d[row].normalize():
                    shown = _show(spec)
                else:
                    shown = f"{_show(spec)} (trading day {day})"
                raise DataValidationError(f"start {shown} is outside {allowed}")
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

    def tradable(self) -> np.ndarray | None:
        """Assets that trade at the close of each path's current day ``(P, N)`` bool, or
        ``None`` when every asset trades on every day (a panel without missing cells)."""
        return None

    def delisted(self) -> np.ndarray | None:
        """``(P, N)`` bool: the current day is the asset's last traded day or later (it never
        trades again), so a position in it is settled into cash at this close; ``None`` when
        no asset delists."""
        return None

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


def last_traded_rows(mask: np.ndarray) -> np.ndarray:
    """Per asset, the row of its last traded day when it delists (absent on every later row
    of ``mask`` ``(T, N)``), else ``T`` (trades on the last row); ``-1`` if it never trades."""
    mask = np.asarray(mask, dtype=bool)
    T = mask.shape[0]
    last = T - 1 - np.argmax(mask[::-1], axis=0)
    last = np.where(mask.any(axis=0), last, -1)
    return np.where(last == T - 1, T, last)

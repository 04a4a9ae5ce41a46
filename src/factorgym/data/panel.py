"""The return panel: an immutable ``(T, N)`` matrix of simple daily returns with its mask.

The conventions (simple returns, row ``t`` known at the close of day ``t``, absence marked
in ``mask`` and stored as NaN, never as a zero return) are in the :mod:`factorgym.data` docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from factorgym.data.validation import (
    check_assets,
    check_dates,
    describe_cells,
    numeric_frame,
    validate_return_matrix,
)
from factorgym.errors import DataValidationError

__all__ = ["ReturnPanel"]


@dataclass(frozen=True, eq=False)
class ReturnPanel:
    """An immutable panel of daily **simple** returns.

    Parameters
    ----------
    dates : pandas.DatetimeIndex of shape (T,)
        Strictly increasing trading dates.
    assets : tuple of str, length N
        Unique asset names.
    returns : ndarray of shape (T, N), float64
        Simple returns; ``NaN`` exactly where ``mask`` is False.
    mask : ndarray of shape (T, N), bool
        Availability: ``True`` when the asset traded on that day. The mask is authoritative:
        cells where it is False are stored as NaN whatever ``returns`` held there.
    static : DataFrame or None
        Static per-asset attributes indexed by asset (e.g. a ``sector`` column).
    exog : DataFrame or None
        Exogenous daily series (simple returns) indexed by ``dates``, e.g. a market index.
    name : str
        A label for messages and reports.

    Arrays are made read-only; derive new panels with the methods below.
    """

    dates: pd.DatetimeIndex
    assets: tuple[str, ...]
    returns: np.ndarray
    mask: np.ndarray
    static: pd.DataFrame | None = None
    exog: pd.DataFrame | None = None
    name: str = "panel"
    _validated: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        dates = check_dates(pd.Index(self.dates))
        assets = check_assets(self.assets)
        returns = np.array(self.returns, dtype=np.float64, copy=True)
        mask = np.array(self.mask, dtype=bool, copy=True)
        if returns.shape == mask.shape:
            returns[~mask] = np.nan  # the mask is authoritative: absent cells hold NaN
        validate_return_matrix(returns, mask, dates, assets)
        returns.setflags(write=False)
        mask.setflags(write=False)
        static = self.static
        if static is not None:
            static = static.copy()
            static.index = static.index.astype(str)
            missing = [a for a in assets if a not in static.index]
            if missing:
                raise DataValidationError(f"static attributes missing for assets: {', '.join(missing)}")
            static = static.loc[list(assets)]
        exog = self.exog
        if exog is not None:
            exog = exog.copy()
            exog.index = check_dates(exog.index, "exogenous dates")
            exog = exog.reindex(dates)
            vals = exog.to_numpy(dtype=np.float64)
            if not np.isfinite(vals).all():
                bad_rows = np.nonzero(~np.isfinite(vals).all(axis=1))[0][:5]
                raise DataValidationError(
                    "exogenous series missing or non-finite on "
                    + ", ".join(str(dates[i].date()) for i in bad_rows)
                )
        object.__setattr__(self, "dates", dates)
        object.__setattr__(self, "assets", assets)
        object.__setattr__(self, "returns", returns)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "static", static)
        object.__setattr__(self, "exog", exog)
        object.__setattr__(self, "_validated", True)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_prices(
        cls,
        prices: pd.DataFrame,
        *,
        static: pd.DataFrame | None = None,
        exog_prices: pd.DataFrame | None = None,
        name: str = "panel",
    ) -> ReturnPanel:
        """Build a panel from a wide ``(date x asset)`` price table.

        Missing prices mark the asset unavailable; a return exists on day t only when the
        prices of t-1 and t are both present. The first date is consumed as the base price.
        Non-positive prices are rejected, never dropped.
        """
        if prices.shape[0] < 2:
            raise DataValidationError("need at least two dates of prices to form returns")
        dates = check_dates(prices.index)
        assets = check_assets(prices.columns)
        p = numeric_frame(prices, "price")
        if np.isinf(p).any():
            raise DataValidationError(f"infinite prices at {describe_cells(dates, assets, np.isinf(p))}")
        nonpos = np.nan_to_num(p, nan=1.0) <= 0
        if nonpos.any():
            raise DataValidationError(f"non-positive prices at {describe_cells(dates, assets, nonpos)}")
        with np.errstate(invalid="ignore"):
            r = p[1:] / p[:-1] - 1.0
        mask = np.isfinite(r)
        exog = None
        if exog_prices is not None:
            ep = exog_prices.copy()
            ep.index = check_dates(ep.index, "exogenous dates")
            ep = ep.reindex(dates)
            vals = numeric_frame(ep, "exogenous price")
            if (np.nan_to_num(vals, nan=1.0) <= 0).any():
                raise DataValidationError("non-positive exogenous prices")
            exog = pd.DataFrame(vals[1:] / vals[:-1] - 1.0, index=dates[1:], columns=ep.columns)
        return cls(dates[1:], assets, r, mask, static=static, exog=exog, name=name)

    @classmethod
    def from_returns(
        cls,
        returns: pd.DataFrame,
        *,
        mask: pd.DataFrame | np.ndarray | None = None,
        static: pd.DataFrame | None = None,
        exog: pd.DataFrame | None = None,
        name: str = "panel",
    ) -> ReturnPanel:
        """Build a panel from a wide ``(date x asset)`` table of simple returns.

        Without ``mask``, empty cells mean "asset absent that day". With ``mask``, an empty
        cell at an available position is an error (nothing is ever silently filled).
        """
        dates = check_dates(returns.index)
        assets = check_assets(returns.columns)
        r = numeric_frame(returns, "return")
        m = ~np.isnan(r) if mask is None else np.asarray(mask, dtype=bool)
        return cls(dates, assets, r, m, static=static, exog=exog, name=name)

    # ------------------------------------------------------------------ views
    @property
    def T(self) -> int:  # noqa: N802 - conventional name
        """Number of dates."""
        return int(self.returns.shape[0])

    @property
    def N(self) -> int:  # noqa: N802 - conventional name
        """Number of assets."""
        return int(self.returns.shape[1])

    def filled(self, value: float = 0.0) -> np.ndarray:
        """A writable ``(T, N)`` copy with unavailable cells set to ``value`` (use with ``mask``)."""
        out = np.array(self.returns, copy=True)
        out[~self.mask] = value
        return out

    def log_returns(self) -> np.ndarray:
        """``log(1 + r)`` as a ``(T, N)`` array (NaN where unavailable). The only conversion."""
        return np.log1p(self.returns)

    def to_frame(self) -> pd.DataFrame:
        """Wide ``(date x asset)`` DataFrame of simple returns (NaN where unavailable)."""
        return pd.DataFrame(np.array(self.returns), index=self.dates, columns=list(self.assets))

    def index_of(self, date: str | pd.Timestamp) -> int:
        """Row index of the last date ``<= date`` (raises if ``date`` precedes the panel)."""
        ts = pd.Timestamp(date)
        pos = int(self.dates.searchsorted(ts, side="right")) - 1
        if pos < 0:
            raise DataValidationError(f"{ts.date()} is before the first date {self.dates[0].date()}")
        return pos

    def iloc(self, start: int, stop: int) -> ReturnPanel:
        """Rows ``[start, stop)`` as a new panel."""
        sl = slice(start, stop)
        if len(range(self.T)[sl]) == 0:
            raise DataValidationError(f"empty row range [{start}, {stop}) of {self.name}")
        return ReturnPanel(
            self.dates[sl],
            self.assets,
            self.returns[sl],
            self.mask[sl],
            static=self.static,
            exog=None if self.exog is None else self.exog.iloc[sl],
            name=self.name,
        )

    def loc(self, start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None) -> ReturnPanel:
        """Dates in ``[start, end]`` (inclusive; ``None`` for open ends) as a new panel."""
        i0 = 0 if start is None else int(self.dates.searchsorted(pd.Timestamp(start), side="left"))
        i1 = self.T if end is None else int(self.dates.searchsorted(pd.Timestamp(end), side="right"))
        return self.iloc(i0, i1)

    def select_assets(self, assets: Sequence[str]) -> ReturnPanel:
        """A panel restricted to (and ordered as) ``assets``."""
        missing = [a for a in assets if a not in self.assets]
        if missing:
            raise DataValidationError(f"unknown assets: {', '.join(missing)}")
        idx = [self.assets.index(a) for a in assets]
        return ReturnPanel(
            self.dates,
            tuple(assets),
            self.returns[:, idx],
            self.mask[:, idx],
            static=None if self.static is None else self.static.loc[list(assets)],
            exog=self.exog,
            name=self.name,
        )

    def with_returns(self, returns: np.ndarray, mask: np.ndarray | None = None) -> ReturnPanel:
        """Same dates/assets/attributes with replaced returns (validated again)."""
        return ReturnPanel(
            self.dates,
            self.assets,
            returns,
            self.mask if mask is None else mask,
            static=self.static,
            exog=self.exog,
            name=self.name,
        )

    def require_history(self, lookback: int, what: str = "the requested lookback") -> None:
        """Raise unless the panel has more than ``lookback`` days."""
        if self.T <= lookback:
            raise DataValidationError(
                f"{self.name} has {self.T} days, too few for {what} of {lookback} days"
            )

    def __repr__(self) -> str:
        span = f"{self.dates[0].date()}..{self.dates[-1].date()}" if self.T else "empty"
        return f"ReturnPanel({self.name!r}, T={self.T}, N={self.N}, {span})"

"""Validation of dates, asset names and return matrices for :class:`~factorgym.data.ReturnPanel`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from factorgym.errors import DataValidationError

__all__ = ["MAX_ABS_DAILY_RETURN", "check_assets", "check_dates", "describe_cells", "numeric_frame", "validate_return_matrix", "parse_iso_date"]


#: Daily simple returns above this (or at/below -100%) are rejected as implausible.
MAX_ABS_DAILY_RETURN = 1.0


def describe_cells(dates: pd.DatetimeIndex, assets: Sequence[str], bad: np.ndarray, limit: int = 5) -> str:
    """Describe the first few offending (date, asset) cells of a boolean ``(T, N)`` array."""
    rows, cols = np.nonzero(bad)
    shown = [f"{dates[r].date()}/{assets[c]}" for r, c in zip(rows[:limit], cols[:limit], strict=True)]
    more = f" (+{len(rows) - limit} more)" if len(rows) > limit else ""
    return ", ".join(shown) + more


def check_dates(dates: pd.Index, what: str = "dates") -> pd.DatetimeIndex:
    """Dates as a sorted, unique, timezone-naive :class:`pandas.DatetimeIndex`.

    Parameters
    ----------
    dates : pandas.Index of shape (T,)
        Anything :func:`pandas.to_datetime` parses.
    what : str
        What to call the dates in error messages.

    Returns
    -------
    pandas.DatetimeIndex of shape (T,)
        Normalised to midnight when every date is a whole day.

    Raises
    ------
    DataValidationError
        Unparseable, missing (NaT), duplicate or unsorted dates, naming the first offenders.
    """
    try:
        idx = pd.DatetimeIndex(pd.to_datetime(dates))
    except (TypeError, ValueError) as exc:
        raise DataValidationError(f"{what} could not be parsed as dates: {exc}") from exc
    if idx.hasnans:
        raise DataValidationError(f"{what} contain missing values (NaT)")
    if idx.tz is not None:
        idx = idx.tz_convert(None)
    dup = idx[idx.duplicated()]
    if len(dup):
        raise DataValidationError(
            f"duplicate {what}: {', '.join(str(d.date()) for d in dup[:5])}"
            + (f" (+{len(dup) - 5} more)" if len(dup) > 5 else "")
        )
    if not idx.is_monotonic_increasing:
        pos = int(np.argmax(np.diff(idx.asi8) < 0))
        raise DataValidationError(
            f"{what} are not sorted: {idx[pos].date()} is followed by {idx[pos + 1].date()}"
        )
    return idx.normalize() if (idx == idx.normalize()).all() else idx


def check_assets(assets: Sequence[Any]) -> tuple[str, ...]:
    """Asset names as a tuple of unique, non-empty strings (raises :class:`DataValidationError`)."""
    names = tuple(str(a) for a in assets)
    seen: set[str] = set()
    dups = [a for a in names if a in seen or seen.add(a)]  # type: ignore[func-returns-value]
    if dups:
        raise DataValidationError(f"duplicate asset names: {', '.join(sorted(set(dups)))}")
    if any(a.strip() == "" for a in names):
        raise DataValidationError("empty asset name")
    return names


def numeric_frame(df: pd.DataFrame, what: str) -> np.ndarray:
    """Convert to float64, naming the cells that are not numbers (instead of coercing them)."""
    out = np.empty(df.shape, dtype=np.float64)
    for j, col in enumerate(df.columns):
        s = df[col]
        if pd.api.types.is_bool_dtype(s) or not (
            pd.api.types.is_numeric_dtype(s) or s.dtype == object or pd.api.types.is_string_dtype(s)
        ):
            raise DataValidationError(f"{what} column {col!r} has non-numeric dtype {s.dtype}")
        conv = pd.to_numeric(s, errors="coerce")
        bad = conv.isna() & s.notna()
        if bad.any():
            first = s[bad].index[:3]
            vals = [repr(s.loc[i]) for i in first]
            raise DataValidationError(
                f"{what} column {col!r} has non-numeric cells: "
                + ", ".join(f"{pd.Timestamp(i).date() if isinstance(i, pd.Timestamp) else i}={v}" for i, v in zip(first, vals, strict=True))
            )
        out[:, j] = conv.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def validate_return_matrix(
    returns: np.ndarray, mask: np.ndarray, dates: pd.DatetimeIndex, assets: Sequence[str]
) -> None:
    """Raise :class:`DataValidationError` unless ``returns`` is a valid panel.

    Checks: shapes agree, no cell is infinite, every available cell is finite, and every
    available return lies in ``(-1, MAX_ABS_DAILY_RETURN]``. Unavailable cells are not
    checked otherwise; :class:`ReturnPanel` sets them to NaN.
    """
    if returns.ndim != 2 or returns.shape != mask.shape:
        raise DataValidationError(f"returns {returns.shape} and mask {mask.shape} must be equal 2-D shapes")
    if returns.shape != (len(dates), len(assets)):
        raise DataValidationError(
            f"returns shape {returns.shape} does not match {len(dates)} dates x {len(assets)} assets"
        )
    inf = np.isinf(returns)
    if inf.any():
        raise DataValidationError(f"infinite returns at {describe_cells(dates, assets, inf)}")
    nan_avail = np.isnan(returns) & mask
    if nan_avail.any():
        raise DataValidationError(f"NaN returns at available cells {describe_cells(dates, assets, nan_avail)}")
    with np.errstate(invalid="ignore"):
        low = mask & (returns <= -1.0)
        high = mask & (returns > MAX_ABS_DAILY_RETURN)
    if low.any():
        raise DataValidationError(
            f"implausible daily returns <= -100% at {describe_cells(dates, assets, low)} "
            "(prices must stay positive; are these percentages rather than fractions?)"
        )
    if high.any():
        raise DataValidationError(
            f"implausible daily returns > +{MAX_ABS_DAILY_RETURN:.0%} at {describe_cells(dates, assets, high)} "
            "(are these percentages rather than fractions, or is there a bad price?)"
        )


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_iso_date(value: Any, name: str) -> str:
    """``value`` as an ISO date ``YYYY-MM-DD`` (a string, a date or a timestamp at midnight).

    Raises
    ------
    DataValidationError
        Naming ``name`` and the value, for anything else (``"garbage"``, ``"2013-13-45"``,
        ``"12/31/2013"``: formats whose meaning is ambiguous are not guessed).
    """
    if isinstance(value, datetime) and value.time() == datetime.min.time():  # also pandas.Timestamp
        return value.date().isoformat()
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    s = value.strip() if isinstance(value, str) else None
    if s is not None and _ISO_DATE.fullmatch(s):
        try:
            return date.fromisoformat(s).isoformat()
        except ValueError:
            pass
    raise DataValidationError(f"{name} {value!r} is not a date; write it as YYYY-MM-DD, e.g. 2013-12-31")

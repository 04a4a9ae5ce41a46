"""Auto-detection of a data file's columns, layout and kind of values.

Every choice is appended to a ``decisions`` list (one line each) that ends up in
:attr:`~factorgym.io.FileFormat.decisions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from factorgym.errors import DataValidationError
from factorgym.io.formats import Kind, Layout
from factorgym.io.tables import Table

__all__ = [
    "ASSET_NAMES",
    "DATE_NAMES",
    "PRICE_NAMES",
    "RETURN_NAMES",
    "VALUE_NAMES",
    "KindGuess",
    "LayoutChoice",
    "choose_layout",
    "decide_kind",
    "find_asset_col",
    "find_date_col",
    "find_value_col",
    "guess_kind",
    "kind_from_name",
    "norm",
    "require_cols",
]

DATE_NAMES = frozenset({"date", "datetime", "timestamp", "time", "day", "dt", "trade_date", "__index_level_0__"})
ASSET_NAMES = frozenset(
    {"asset", "assets", "ticker", "symbol", "permno", "stock", "security", "asset_id", "secid", "isin", "cusip", "sedol"}
)
PRICE_NAMES = frozenset(
    {"price", "prices", "close", "adj_close", "adjclose", "adjusted_close", "close_price", "px_last", "prc"}
)
RETURN_NAMES = frozenset({"return", "returns", "ret", "rets", "simple_return", "daily_return"})
VALUE_NAMES = PRICE_NAMES | RETURN_NAMES | {"value"}


class KindGuess(NamedTuple):
    """What :func:`guess_kind` concluded about a value matrix, and why."""

    kind: Literal["prices", "returns"] | None
    reason: str


class LayoutChoice(NamedTuple):
    """The layout of a file and, for the long layout, its asset column (None until found)."""

    layout: Literal["wide", "long"]
    asset_col: str | None


def norm(name: str) -> str:
    """A column name lower-cased, with spaces and dashes as underscores, for matching."""
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def require_cols(table: Table, cols: Sequence[str], role: str) -> None:
    """Raise :class:`DataValidationError` naming the ``cols`` that ``table`` lacks."""
    missing = [c for c in cols if c not in table.data]
    if missing:
        raise DataValidationError(
            f"{table.path}: {role} column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))} not found; the file has columns {', '.join(map(repr, table.columns))}"
        )


def find_date_col(table: Table, date_col: str | None, decisions: list[str]) -> str:
    """The given date column (checked), or the one column named like a date (recorded in ``decisions``)."""
    if date_col is not None:
        require_cols(table, [date_col], "date")
        return date_col
    found = [c for c in table.columns if norm(c) in DATE_NAMES]
    if not found and table.columns and table.columns[0] == "":
        found = [""]
    if len(found) == 1:
        decisions.append(f"date column {found[0]!r} (by name)")
        return found[0]
    if not found:
        raise DataValidationError(
            f"{table.path}: no date column (looked for a column named {', '.join(sorted(DATE_NAMES - {'__index_level_0__'}))}); "
            f"pass date_col (--date-col); columns are {', '.join(map(repr, table.columns))}"
        )
    raise DataValidationError(
        f"{table.path}: several date-like columns {', '.join(map(repr, found))}; pass date_col (--date-col)"
    )


def guess_kind(values: np.ndarray) -> KindGuess:
    """Classify a ``(T, N)`` value matrix (NaN = absent) as prices or returns, or None."""
    v = values[np.isfinite(values)]
    if v.size < 2:
        return KindGuess(None, "fewer than two values")
    neg = float((v < 0).mean())
    if neg > 0:
        q99 = float(np.quantile(np.abs(v), 0.99))
        if q99 <= 0.5:
            return KindGuess("returns", f"{neg:.0%} of values negative and 99% within +-{q99:.3g}")
        return KindGuess(None, (
            f"negative values rule out prices, but 99% of |values| reach {q99:.3g}, too large for daily "
            "returns as fractions (percentages?)"
        ))
    if (v == 0).any():
        return KindGuess(None, "values include zeros (impossible for prices) but none is negative")
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.abs(np.log(values[1:] / values[:-1]))
    step = step[np.isfinite(step)]
    med = float(np.median(v))
    if step.size == 0:
        return KindGuess(None, "all values positive but no asset has two consecutive values")
    med_step = float(np.median(step))
    if med > 0.1 and med_step < 0.1:
        return KindGuess("prices", f"all values positive, median {med:.3g}, median day-to-day change {med_step:.2%}")
    return KindGuess(None, (
        f"all values positive (unlike returns) but median {med:.3g} and median day-to-day change "
        f"{med_step:.2%} do not look like prices either"
    ))


def kind_from_name(value_col: str) -> Literal["prices", "returns"] | None:
    """``"prices"`` or ``"returns"`` when the value column's name says so, else None."""
    n = norm(value_col)
    if n in PRICE_NAMES:
        return "prices"
    if n in RETURN_NAMES:
        return "returns"
    return None


def decide_kind(
    path: Path, kind: Kind, value_col: str | None, values: np.ndarray, decisions: list[str]
) -> Literal["prices", "returns"]:
    """``kind`` unless ``"auto"``; else from the value column's name, else from the values."""
    if kind != "auto":
        return kind
    if value_col is not None:
        if "log" in norm(value_col):
            raise DataValidationError(
                f"{path}: value column {value_col!r} looks like log returns, which are not accepted; "
                "convert to simple returns (exp(x) - 1), or pass kind if they are not log returns"
            )
        by_name = kind_from_name(value_col)
        if by_name is not None:
            decisions.append(f"kind {by_name} (value column named {value_col!r})")
            return by_name
    guess, why = guess_kind(values)
    if guess is None:
        raise DataValidationError(
            f"{path}: cannot tell whether the values are prices or returns ({why}); "
            "pass kind='prices' or kind='returns' (--kind)"
        )
    decisions.append(f"kind {guess} ({why})")
    return guess


def choose_layout(
    table: Table,
    others: Sequence[str],
    layout: Layout,
    asset_col: str | None,
    value_col: str | None,
    decisions: list[str],
) -> LayoutChoice:
    """Resolve ``layout="auto"``: long when an asset or value column is given or a column is
    named like an asset identifier, wide otherwise (recorded in ``decisions``)."""
    if layout != "auto":
        return LayoutChoice(layout, asset_col)
    if asset_col is not None or value_col is not None:
        decisions.append("layout long (asset_col/value_col given)")
        return LayoutChoice("long", asset_col)
    cands = [c for c in others if norm(c) in ASSET_NAMES]
    if len(cands) > 1:
        raise DataValidationError(
            f"{table.path}: several asset-identifier columns {', '.join(map(repr, cands))}; pass asset_col (--asset-col)"
        )
    if cands:
        decisions.append(f"layout long (asset column {cands[0]!r})")
        return LayoutChoice("long", cands[0])
    decisions.append("layout wide (no column named asset, ticker, symbol...)")
    return LayoutChoice("wide", asset_col)


def find_asset_col(table: Table, dcol: str, asset_col: str | None, decisions: list[str]) -> str:
    """The given asset column (checked), or the one column named like an asset identifier."""
    path = table.path
    others = [c for c in table.columns if c != dcol]
    if asset_col is None:
        cands = [c for c in others if norm(c) in ASSET_NAMES]
        if len(cands) != 1:
            what = "no" if not cands else "several"
            raise DataValidationError(
                f"{path}: {what} asset-identifier column{'s' if cands else ''} found "
                f"({', '.join(map(repr, cands)) or 'looked for asset, ticker, symbol, permno...'}); pass asset_col (--asset-col)"
            )
        asset_col = cands[0]
        decisions.append(f"asset column {asset_col!r} (by name)")
    require_cols(table, [asset_col], "asset")
    return asset_col


def find_value_col(
    table: Table,
    keyed: set[str],
    value_col: str | None,
    feature_cols: Sequence[str] | None,
    need_value: bool,
    decisions: list[str],
) -> str | None:
    """The given value column (checked), or the one named like a price or return, or the only
    column left; None when ``need_value`` is False and none is found."""
    path = table.path
    if value_col is None:
        rest = [c for c in table.columns if c not in keyed and c not in (feature_cols or ())]
        cands = [c for c in rest if norm(c) in VALUE_NAMES]
        if len(cands) == 1:
            value_col = cands[0]
            decisions.append(f"value column {value_col!r} (by name)")
        elif len(cands) > 1:
            raise DataValidationError(
                f"{path}: several possible value columns {', '.join(map(repr, cands))}; pass value_col (--value-col)"
            )
        elif need_value and len(rest) == 1 and feature_cols is None:
            value_col = rest[0]
            decisions.append(f"value column {value_col!r} (the only other column)")
        elif need_value:
            raise DataValidationError(
                f"{path}: no value column found among {', '.join(map(repr, rest)) or '(none)'} "
                "(looked for price, close, return, ret, value...); pass value_col (--value-col)"
            )
    else:
        require_cols(table, [value_col], "value")
    if value_col is not None and value_col in (*keyed, *(feature_cols or ())):
        raise DataValidationError(f"{path}: column {value_col!r} cannot be both the value column and another role")
    return value_col

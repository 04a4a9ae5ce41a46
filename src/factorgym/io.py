"""Read and write user return / price data as CSV or Parquet.

Two layouts are understood:

``wide``
    One row per date, a date column and one column per asset::

        date,AAPL,MSFT
        2020-01-02,75.09,160.62
        2020-01-03,74.36,

``long``
    One row per (date, asset), a value column and optionally more numeric columns, which are
    returned as per-(date, asset) *features* (see :func:`read_long_features`)::

        date,ticker,close,book_to_market
        2020-01-02,AAPL,75.09,0.12
        2020-01-02,MSFT,160.62,0.09

Values are either **prices** (converted with :meth:`ReturnPanel.from_prices`: a return
exists on day t only when the prices of t-1 and t are both present) or **simple returns**
(:meth:`ReturnPanel.from_returns`). Log returns are not accepted.

Missing values versus bad values
--------------------------------
An **empty** CSV cell (or a Parquet ``null``, or in the long layout a (date, asset) pair
that has no row) means "asset absent that day": the cell is masked, never filled. Text that
*spells* a missing or bad number (``nan``, ``NaN``, ``NA``, ``null``...) is rejected, and so
is a floating-point ``NaN`` stored in a Parquet column: a missing value must be written as
an empty cell / ``null``, so that a computation gone wrong (0/0) cannot pass as absence.
CSV files are read with every cell as text (the :mod:`csv` module, no NA conversion) to
keep these apart; a row with more or fewer fields than the header is an error. Infinite values, non-positive prices, implausible daily returns
(> +100% or <= -100%), duplicate or unsorted dates and non-numeric cells are rejected by
the :class:`~factorgym.data.ReturnPanel` constructors; the long layout additionally rejects
duplicate (date, asset) rows and, per asset, dates out of order.

Auto-detection
--------------
With ``layout="auto"`` a file is *long* when it has a column named like an asset
identifier (``asset``, ``ticker``, ``symbol``, ``permno``...), and *wide* otherwise. With
``kind="auto"`` a long file's value column name decides (``close``/``price``... or
``return``/``ret``...); otherwise the values must clearly look like one or the other:

* returns: some values negative and 99% of them within +-0.5;
* prices: all values positive, median above 0.1 (a median *daily return* above 10% is not
  plausible) and a median day-to-day change of the same asset below 10%.

Anything else is an error asking for ``kind=``. Dates must be ISO 8601 (``YYYY-MM-DD``)
unless ``date_format`` is given, so that day-first and month-first dates are never
confused. Every decision is recorded in :attr:`FileFormat.decisions` and logged at INFO
level on the ``factorgym.io`` logger.
"""

from __future__ import annotations

import csv
import gzip
import io as _io
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from factorgym.artifacts import atomic_write_bytes
from factorgym.data import ReturnPanel, _check_dates
from factorgym.errors import DataValidationError

__all__ = [
    "FileFormat",
    "PanelFile",
    "SUPPORTED_SUFFIXES",
    "read_long_features",
    "read_panel",
    "read_panel_file",
    "write_panel",
]

logger = logging.getLogger(__name__)

Layout = Literal["auto", "wide", "long"]
Kind = Literal["auto", "prices", "returns"]

#: File name endings understood by the readers and :func:`write_panel`.
SUPPORTED_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".parquet", ".pq")

_DATE_NAMES = frozenset({"date", "datetime", "timestamp", "time", "day", "dt", "trade_date", "__index_level_0__"})
_ASSET_NAMES = frozenset(
    {"asset", "assets", "ticker", "symbol", "permno", "stock", "security", "asset_id", "secid", "isin", "cusip", "sedol"}
)
_PRICE_NAMES = frozenset(
    {"price", "prices", "close", "adj_close", "adjclose", "adjusted_close", "close_price", "px_last", "prc"}
)
_RETURN_NAMES = frozenset({"return", "returns", "ret", "rets", "simple_return", "daily_return"})
_VALUE_NAMES = _PRICE_NAMES | _RETURN_NAMES | {"value"}
#: Text that spells a missing or non-finite number; rejected so that absence is explicit.
_NAN_WORDS = frozenset({"nan", "-nan", "+nan", "na", "n/a", "#n/a", "null", "none", "nat", "missing"})

_MAX_SHOWN = 5


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class FileFormat:
    """How a data file was interpreted.

    Attributes
    ----------
    path : Path
    file_type : {"csv", "parquet"}
    layout : {"wide", "long"}
    kind : {"prices", "returns"} or None
        None only for :func:`read_long_features` on a file without a value column.
    date_col : str
    asset_col, value_col : str or None
        Long layout only.
    feature_cols, static_cols, exog_cols : tuple of str
        Columns read as per-(date, asset) features, per-asset static attributes, and the
        columns (wide) or assets (long) read as exogenous series.
    decisions : tuple of str
        One line per choice made by auto-detection, saying what was decided and why.
    """

    path: Path
    file_type: Literal["csv", "parquet"]
    layout: Literal["wide", "long"]
    kind: Literal["prices", "returns"] | None
    date_col: str
    asset_col: str | None = None
    value_col: str | None = None
    feature_cols: tuple[str, ...] = ()
    static_cols: tuple[str, ...] = ()
    exog_cols: tuple[str, ...] = ()
    decisions: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line: what the file was read as, its columns, and what was auto-detected."""
        cols = [f"date={self.date_col!r}"]
        if self.layout == "long":
            cols.append(f"asset={self.asset_col!r}")
            if self.value_col is not None:
                cols.append(f"value={self.value_col!r}")
        for what, names in (("features", self.feature_cols), ("static", self.static_cols), ("exog", self.exog_cols)):
            if names:
                cols.append(f"{what}={','.join(names)}")
        out = f"{self.path.name}: {self.layout} {self.file_type.upper()} of {self.kind or 'features'} [{', '.join(cols)}]"
        if self.decisions:
            out += "; auto-detected: " + ", ".join(self.decisions)
        return out


@dataclass(frozen=True)
class PanelFile:
    """Everything read from one data file by :func:`read_panel_file`.

    Attributes
    ----------
    panel : ReturnPanel
        Simple returns. From prices, the first date of the file is the base price and the
        panel starts on the second date.
    format : FileFormat
        How the file was interpreted.
    features : dict of str to DataFrame
        Long layout only: each extra numeric column as a ``(date x asset)`` float frame
        indexed by **all dates of the file** (so for prices one date more than the panel;
        align with ``frame.reindex(panel.dates)``) with the panel's assets as columns. NaN
        where the (date, asset) row is absent or the cell is empty. Row ``t`` holds the
        value as written for date ``t``: whether it was known at the close of ``t`` is the
        user's responsibility.
    """

    panel: ReturnPanel
    format: FileFormat
    features: dict[str, pd.DataFrame]


# ---------------------------------------------------------------------------- raw tables
@dataclass
class _Column:
    """One column of a file: text, numbers or dates, with a mask of empty cells."""

    null: np.ndarray  # bool, True for empty cells / nulls
    text: np.ndarray | None = None  # object array of stripped str
    numbers: np.ndarray | None = None  # float64 (NaN where null or a real NaN)
    integer: bool = False  # numbers came from an integer column
    dates: pd.DatetimeIndex | None = None  # a date/timestamp typed column
    type_name: str = "string"


@dataclass
class _Table:
    path: Path
    file_type: Literal["csv", "parquet"]
    columns: list[str]
    data: dict[str, _Column]
    n_rows: int


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for s in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if name.endswith(s):
            return s
    return "".join(path.suffixes[-2:]).lower() or "(none)"


def _stem(path: Path) -> str:
    s = _suffix(path)
    return path.name[: -len(s)] if path.name.lower().endswith(s) else path.stem


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_path(path: str | os.PathLike[str]) -> tuple[Path, str]:
    p = Path(path)
    if p.is_dir():
        raise DataValidationError(f"{p} is a directory, not a data file")
    suffix = _suffix(p)
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataValidationError(
            f"unknown file extension {suffix!r} of {p}; expected one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if not p.exists():
        raise FileNotFoundError(2, "no such data file", str(p))
    return p, suffix


def _read_csv(path: Path, compressed: bool) -> _Table:
    """Every cell as stripped text; rows with a different number of fields are errors.

    The stdlib :mod:`csv` reader is used rather than pandas because pandas pads a short
    row (e.g. a truncated last line) with empty strings, which would read as absent data.
    """
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        with (gzip.open(path, "rt", encoding="utf-8-sig", newline="") if compressed
              else open(path, encoding="utf-8-sig", newline="")) as f:
            reader = csv.reader(f, strict=True)
            for row in reader:
                if row:  # skip blank lines
                    rows.append(row)
                    lines.append(reader.line_num)
    except (UnicodeDecodeError, csv.Error, EOFError, OSError) as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise DataValidationError(f"{path} is not a readable CSV file: {_first_line(exc)}") from exc
    if not rows:
        raise DataValidationError(f"{path} is empty")
    header = [c.strip() for c in rows[0]]
    bad = [(ln, len(r)) for ln, r in zip(lines[1:], rows[1:], strict=True) if len(r) != len(header)]
    if bad:
        shown = ", ".join(f"line {ln} has {n}" for ln, n in bad[:_MAX_SHOWN])
        more = f" (+{len(bad) - _MAX_SHOWN} more)" if len(bad) > _MAX_SHOWN else ""
        raise DataValidationError(
            f"{path}: rows with a wrong number of fields: {shown}{more}; the header has {len(header)}"
        )
    n_rows = len(rows) - 1
    data: dict[str, _Column] = {}
    for j, name in enumerate(header):
        text = np.empty(n_rows, dtype=object)
        text[:] = [r[j].strip() for r in rows[1:]]
        data[name] = _Column(null=text == "", text=text)
    return _Table(path, "csv", header, data, n_rows)


def _read_parquet(path: Path) -> _Table:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError)):
            raise
        raise DataValidationError(f"{path} is not a readable Parquet file: {_first_line(exc)}") from exc
    columns = [str(c) for c in table.column_names]
    data: dict[str, _Column] = {}
    for name, col in zip(columns, table.columns, strict=True):
        t = col.type
        if pa.types.is_dictionary(t):
            col = col.cast(t.value_type)
            t = col.type
        null = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            nums = pc.fill_null(col.cast(pa.float64()), float("nan")).to_numpy(zero_copy_only=False)
            data[name] = _Column(null=null, numbers=np.asarray(nums, dtype=np.float64), integer=pa.types.is_integer(t), type_name=str(t))
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            vals = col.to_numpy(zero_copy_only=False)
            text = np.array(["" if v is None else str(v).strip() for v in vals], dtype=object)
            data[name] = _Column(null=null | (text == ""), text=text, type_name=str(t))
        elif pa.types.is_timestamp(t) or pa.types.is_date(t):
            dates = pd.DatetimeIndex(pd.to_datetime(col.to_pandas()))
            data[name] = _Column(null=null, dates=dates, type_name=str(t))
        else:
            data[name] = _Column(null=null, type_name=str(t))
    return _Table(path, "parquet", columns, data, table.num_rows)


def _read_table(path: str | os.PathLike[str]) -> _Table:
    p, suffix = _check_path(path)
    table = _read_parquet(p) if suffix in (".parquet", ".pq") else _read_csv(p, suffix == ".csv.gz")
    seen: set[str] = set()
    dups = sorted({c for c in table.columns if c in seen or seen.add(c)})  # type: ignore[func-returns-value]
    if dups:
        raise DataValidationError(f"{p}: duplicate column names: {', '.join(map(repr, dups))}")
    if table.n_rows == 0:
        raise DataValidationError(f"{p} has a header but no data rows")
    return table


# ---------------------------------------------------------------------------- cell parsing
def _listed(labels: Sequence[str], extra: int = 0) -> str:
    shown = ", ".join(labels[:_MAX_SHOWN])
    more = len(labels) - _MAX_SHOWN + extra
    return shown + (f" (+{more} more)" if more > 0 else "")


def _bad_cells(path: Path, what: str, bad: np.ndarray, label: Callable[[int], str], col: _Column, hint: str) -> DataValidationError:
    rows = np.nonzero(bad)[0]
    shown = []
    for i in rows[:_MAX_SHOWN]:
        raw = col.text[i] if col.text is not None else (col.numbers[i] if col.numbers is not None else "?")
        shown.append(f"{label(int(i))}={raw!r}")
    return DataValidationError(f"{path}: {what} at {_listed(shown, len(rows) - len(shown))}; {hint}")


def _floats(table: _Table, name: str, label: Callable[[int], str], hint: str = "cells must be numbers or empty") -> np.ndarray:
    """Column ``name`` as float64 with NaN **only** at empty cells / nulls.

    Rejects non-numeric text and text or floats that spell NaN. Infinite values pass
    through (the panel constructors reject them with the offending dates and assets).
    """
    col = table.data[name]
    path = table.path
    out = np.full(table.n_rows, np.nan)
    if col.numbers is not None:
        real_nan = np.isnan(col.numbers) & ~col.null
        if real_nan.any():
            raise _bad_cells(path, f"NaN values in column {name!r}", real_nan, label, col,
                             "write a missing value as null, not NaN")
        out[~col.null] = col.numbers[~col.null]
        return out
    if col.text is None:
        raise DataValidationError(f"{path}: column {name!r} has non-numeric type {col.type_name}; {hint}")
    present = ~col.null
    conv = pd.to_numeric(pd.Series(col.text[present], dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    failed = np.zeros(table.n_rows, dtype=bool)
    failed[present] = np.isnan(conv)
    if failed.any():
        lowered = np.array([t.lower() for t in col.text[failed]], dtype=object)
        nan_words = np.zeros(table.n_rows, dtype=bool)
        nan_words[np.nonzero(failed)[0][np.isin(lowered, list(_NAN_WORDS))]] = True
        if nan_words.any():
            raise _bad_cells(path, f"missing-value text in column {name!r}", nan_words, label, col,
                             "leave the cell empty for an absent value (NaN text is rejected)")
        raise _bad_cells(path, f"non-numeric cells in column {name!r}", failed, label, col, hint)
    out[present] = conv
    return out


def _parse_dates(table: _Table, name: str, date_format: str | None) -> pd.DatetimeIndex:
    col = table.data[name]
    path = table.path
    if col.null.any():
        rows = np.nonzero(col.null)[0]
        raise DataValidationError(
            f"{path}: empty dates in column {name!r} on data rows {_listed([str(r + 1) for r in rows])}"
        )
    if col.dates is not None:
        return col.dates
    if col.text is None:
        raise DataValidationError(
            f"{path}: date column {name!r} has type {col.type_name}; store dates as ISO strings "
            "(YYYY-MM-DD) or as a date/timestamp type"
        )
    fmt = date_format or "ISO8601"
    try:
        return pd.DatetimeIndex(pd.to_datetime(pd.Series(col.text, dtype=object), format=fmt))
    except (ValueError, TypeError, OverflowError) as exc:
        # find the first cell that fails on its own, to name it
        for i, v in enumerate(col.text):
            try:
                pd.to_datetime(v, format=fmt)
            except (ValueError, TypeError, OverflowError):
                hint = "" if date_format else "; dates must be ISO 8601 (YYYY-MM-DD) unless you pass date_format"
                raise DataValidationError(
                    f"{path}: cannot parse date {v!r} (data row {i + 1}) in column {name!r} with format {fmt!r}{hint}"
                ) from exc
        raise DataValidationError(f"{path}: cannot parse dates in column {name!r}: {_first_line(exc)}") from exc


def _date_label(ts: pd.Timestamp) -> str:
    return str(ts.date()) if ts == ts.normalize() else str(ts)


# ---------------------------------------------------------------------------- detection
def _norm(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _require_cols(table: _Table, cols: Sequence[str], role: str) -> None:
    missing = [c for c in cols if c not in table.data]
    if missing:
        raise DataValidationError(
            f"{table.path}: {role} column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))} not found; the file has columns {', '.join(map(repr, table.columns))}"
        )


def _find_date_col(table: _Table, date_col: str | None, decisions: list[str]) -> str:
    if date_col is not None:
        _require_cols(table, [date_col], "date")
        return date_col
    found = [c for c in table.columns if _norm(c) in _DATE_NAMES]
    if not found and table.columns and table.columns[0] == "":
        found = [""]
    if len(found) == 1:
        decisions.append(f"date column {found[0]!r} (by name)")
        return found[0]
    if not found:
        raise DataValidationError(
            f"{table.path}: no date column (looked for a column named {', '.join(sorted(_DATE_NAMES - {'__index_level_0__'}))}); "
            f"pass date_col (--date-col); columns are {', '.join(map(repr, table.columns))}"
        )
    raise DataValidationError(
        f"{table.path}: several date-like columns {', '.join(map(repr, found))}; pass date_col (--date-col)"
    )


def _guess_kind(values: np.ndarray) -> tuple[Literal["prices", "returns"] | None, str]:
    """Classify a ``(T, N)`` value matrix (NaN = absent) as prices or returns, or None."""
    v = values[np.isfinite(values)]
    if v.size < 2:
        return None, "fewer than two values"
    neg = float((v < 0).mean())
    if neg > 0:
        q99 = float(np.quantile(np.abs(v), 0.99))
        if q99 <= 0.5:
            return "returns", f"{neg:.0%} of values negative and 99% within +-{q99:.3g}"
        return None, (
            f"negative values rule out prices, but 99% of |values| reach {q99:.3g}, too large for daily "
            "returns as fractions (percentages?)"
        )
    if (v == 0).any():
        return None, "values include zeros (impossible for prices) but none is negative"
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.abs(np.log(values[1:] / values[:-1]))
    step = step[np.isfinite(step)]
    med = float(np.median(v))
    if step.size == 0:
        return None, "all values positive but no asset has two consecutive values"
    med_step = float(np.median(step))
    if med > 0.1 and med_step < 0.1:
        return "prices", f"all values positive, median {med:.3g}, median day-to-day change {med_step:.2%}"
    return None, (
        f"all values positive (unlike returns) but median {med:.3g} and median day-to-day change "
        f"{med_step:.2%} do not look like prices either"
    )


def _kind_from_name(value_col: str) -> Literal["prices", "returns"] | None:
    n = _norm(value_col)
    if n in _PRICE_NAMES:
        return "prices"
    if n in _RETURN_NAMES:
        return "returns"
    return None


# ---------------------------------------------------------------------------- long layout
@dataclass
class _Long:
    dates: pd.DatetimeIndex  # sorted unique dates of the file
    assets: list[str]  # first-appearance order
    rows: np.ndarray  # row -> date position
    cols: np.ndarray  # row -> asset position
    row_label: Callable[[int], str]


def _long_keys(table: _Table, date_col: str, asset_col: str, date_format: str | None) -> _Long:
    path = table.path
    row_dates = _parse_dates(table, date_col, date_format)
    if row_dates.tz is not None:
        row_dates = row_dates.tz_convert(None)
    row_dates = row_dates.as_unit("ns")
    acol = table.data[asset_col]
    if acol.text is not None:
        names = acol.text
    elif acol.numbers is not None and acol.integer:
        names = np.array(["" if n else str(int(x)) for x, n in zip(acol.numbers, acol.null, strict=True)], dtype=object)
    else:
        raise DataValidationError(f"{path}: asset column {asset_col!r} has type {acol.type_name}; expected text or integers")
    empty = np.array([s == "" for s in names], dtype=bool)
    if empty.any():
        rows = np.nonzero(empty)[0]
        raise DataValidationError(
            f"{path}: empty asset names in column {asset_col!r} on data rows {_listed([str(r + 1) for r in rows])}"
        )
    codes, uniques = pd.factorize(pd.Series(names, dtype=object), sort=False)
    assets = [str(a) for a in uniques]

    def label(i: int) -> str:
        return f"{_date_label(row_dates[i])}/{names[i]}"

    key = pd.DataFrame({"d": row_dates.asi8, "a": codes})
    dup = key.duplicated(keep="first").to_numpy()
    if dup.any():
        rows = np.nonzero(dup)[0]
        raise DataValidationError(
            f"{path}: duplicate (date, asset) rows: {_listed([label(int(i)) for i in rows])}"
        )
    order = np.argsort(codes, kind="stable")
    d = row_dates.asi8[order]
    same = codes[order][1:] == codes[order][:-1]
    back = same & (d[1:] < d[:-1])
    if back.any():
        k = int(np.nonzero(back)[0][0])
        raise DataValidationError(
            f"{path}: dates of asset {names[order[k]]} are not sorted: {label(int(order[k]))} is followed by "
            f"{_date_label(row_dates[order[k + 1]])}"
        )
    udates = row_dates.unique().sort_values()
    return _Long(udates, assets, udates.get_indexer(row_dates), codes, label)


def _long_static(table: _Table, keys: _Long, static_cols: Sequence[str]) -> pd.DataFrame | None:
    if not static_cols:
        return None
    out = pd.DataFrame(index=pd.Index(keys.assets))
    for c in static_cols:
        col = table.data[c]
        if col.text is not None:
            vals = col.text
        elif col.numbers is not None:
            vals = np.array([None if n else x for x, n in zip(col.numbers, col.null, strict=True)], dtype=object)
        else:
            raise DataValidationError(f"{table.path}: static column {c!r} has unsupported type {col.type_name}")
        per: list[object] = [None] * len(keys.assets)
        for i in range(table.n_rows):
            if col.null[i]:
                continue
            a = keys.cols[i]
            if per[a] is None:
                per[a] = vals[i]
            elif per[a] != vals[i]:
                raise DataValidationError(
                    f"{table.path}: static column {c!r} is not constant for asset {keys.assets[a]}: "
                    f"{per[a]!r} and {vals[i]!r} (at {keys.row_label(i)})"
                )
        out[c] = per
    return out


# ---------------------------------------------------------------------------- public readers
def _check_choice(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise DataValidationError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")


def read_panel_file(
    path: str | os.PathLike[str],
    *,
    layout: Layout = "auto",
    kind: Kind = "auto",
    date_col: str | None = None,
    asset_col: str | None = None,
    value_col: str | None = None,
    feature_cols: Sequence[str] | None = None,
    static_cols: Sequence[str] = (),
    exog_cols: Sequence[str] = (),
    date_format: str | None = None,
    min_days: int = 2,
    name: str | None = None,
) -> PanelFile:
    """Read a CSV or Parquet file of prices or returns: the panel, its format and features.

    Parameters
    ----------
    path : path-like
        ``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq``.
    layout : {"auto", "wide", "long"}
        See the module docstring; ``asset_col`` or ``value_col`` imply ``"long"``.
    kind : {"auto", "prices", "returns"}
        Whether the values are prices or simple returns.
    date_col : str, optional
        The date column; found by name (``date``, ``datetime``, ``timestamp``...) or as an
        unnamed first column when omitted.
    asset_col, value_col : str, optional
        Long layout: the asset identifier and the price/return column.
    feature_cols : sequence of str, optional
        Long layout: the extra columns to read as features. ``None`` reads every column that
        is not the date, asset, value or a static column (they must be numeric); a list
        reads those and ignores the others (the ignored ones are listed in
        :attr:`FileFormat.decisions`).
    static_cols : sequence of str
        Long layout: per-asset attributes (e.g. ``sector``) that must be constant for each
        asset; they become :attr:`ReturnPanel.static`.
    exog_cols : sequence of str
        Series to read as exogenous (e.g. an index) rather than as assets: column names in
        the wide layout, asset names in the long layout. Converted like the assets (prices
        to returns) and required on every date of the panel.
    date_format : str, optional
        A :func:`datetime.strptime` format such as ``"%d/%m/%Y"``; ISO 8601 otherwise.
    min_days : int
        Fewest days of returns accepted.
    name : str, optional
        Panel name; the file name without extension by default.

    Returns
    -------
    PanelFile

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    DataValidationError
        Anything wrong with the file or its values, naming the offending dates, assets,
        columns or rows; or input that auto-detection cannot classify safely.
    """
    _check_choice(layout, ("auto", "wide", "long"), "layout")
    _check_choice(kind, ("auto", "prices", "returns"), "kind")
    table = _read_table(path)
    path_ = table.path
    decisions: list[str] = []
    dcol = _find_date_col(table, date_col, decisions)
    others = [c for c in table.columns if c != dcol]

    # ---- layout
    if layout == "auto":
        if asset_col is not None or value_col is not None:
            layout = "long"
            decisions.append("layout long (asset_col/value_col given)")
        else:
            cands = [c for c in others if _norm(c) in _ASSET_NAMES]
            if len(cands) > 1:
                raise DataValidationError(
                    f"{path_}: several asset-identifier columns {', '.join(map(repr, cands))}; pass asset_col (--asset-col)"
                )
            if cands:
                layout = "long"
                asset_col = cands[0]
                decisions.append(f"layout long (asset column {cands[0]!r})")
            else:
                layout = "wide"
                decisions.append("layout wide (no column named asset, ticker, symbol...)")
    if layout == "wide":
        for arg, val in (("asset_col", asset_col), ("value_col", value_col), ("feature_cols", feature_cols), ("static_cols", static_cols)):
            if val:
                raise DataValidationError(f"{arg} applies to the long layout only, but {path_} is read as wide")
        return _finish_wide(table, dcol, others, kind, exog_cols, date_format, min_days, name, decisions)
    return _finish_long(
        table, dcol, kind, asset_col, value_col, feature_cols, static_cols, exog_cols, date_format, min_days, name,
        decisions, need_value=True,
    )


def _finish_wide(
    table: _Table,
    dcol: str,
    assets: list[str],
    kind: Kind,
    exog_cols: Sequence[str],
    date_format: str | None,
    min_days: int,
    name: str | None,
    decisions: list[str],
) -> PanelFile:
    path = table.path
    _require_cols(table, list(exog_cols), "exogenous")
    if not [a for a in assets if a not in exog_cols]:
        raise DataValidationError(f"{path}: no asset columns besides the date column {dcol!r}")
    empty_names = [j + 2 for j, a in enumerate(assets) if a == ""]
    if empty_names:
        raise DataValidationError(f"{path}: column {empty_names[0]} has no name (every asset column needs one)")
    dates = _check_dates(_parse_dates(table, dcol, date_format), f"dates in {path}")

    def labeller(col: str) -> Callable[[int], str]:
        return lambda i: f"{_date_label(dates[i])}/{col}"

    values = np.column_stack([_floats(table, a, labeller(a)) for a in assets])
    frame = pd.DataFrame(values, index=dates, columns=assets)
    asset_frame = frame.drop(columns=list(exog_cols))
    exog = frame[list(exog_cols)] if exog_cols else None
    kind_ = _decide_kind(path, kind, None, asset_frame.to_numpy(), decisions)
    panel = _make_panel(path, asset_frame, exog, None, kind_, name, min_days)
    fmt = FileFormat(
        path, table.file_type, "wide", kind_, dcol, exog_cols=tuple(exog_cols), decisions=tuple(decisions)
    )
    logger.info("read %s", fmt.describe())
    return PanelFile(panel, fmt, {})


def _decide_kind(
    path: Path, kind: Kind, value_col: str | None, values: np.ndarray, decisions: list[str]
) -> Literal["prices", "returns"]:
    if kind != "auto":
        return kind
    if value_col is not None:
        if "log" in _norm(value_col):
            raise DataValidationError(
                f"{path}: value column {value_col!r} looks like log returns, which are not accepted; "
                "convert to simple returns (exp(x) - 1), or pass kind if they are not log returns"
            )
        by_name = _kind_from_name(value_col)
        if by_name is not None:
            decisions.append(f"kind {by_name} (value column named {value_col!r})")
            return by_name
    guess, why = _guess_kind(values)
    if guess is None:
        raise DataValidationError(
            f"{path}: cannot tell whether the values are prices or returns ({why}); "
            "pass kind='prices' or kind='returns' (--kind)"
        )
    decisions.append(f"kind {guess} ({why})")
    return guess


def _make_panel(
    path: Path,
    frame: pd.DataFrame,
    exog: pd.DataFrame | None,
    static: pd.DataFrame | None,
    kind: Literal["prices", "returns"],
    name: str | None,
    min_days: int,
) -> ReturnPanel:
    label = name if name is not None else _stem(path)
    try:
        if kind == "prices":
            panel = ReturnPanel.from_prices(frame, static=static, exog_prices=exog, name=label)
        else:
            panel = ReturnPanel.from_returns(frame, static=static, exog=exog, name=label)
    except DataValidationError as exc:
        raise DataValidationError(f"{path}: {exc}") from None
    if panel.T < min_days:
        src = f" (from {frame.shape[0]} dates of prices)" if kind == "prices" else ""
        raise DataValidationError(f"{path}: only {panel.T} day(s) of returns{src}; at least {min_days} needed")
    return panel


def _finish_long(
    table: _Table,
    dcol: str,
    kind: Kind,
    asset_col: str | None,
    value_col: str | None,
    feature_cols: Sequence[str] | None,
    static_cols: Sequence[str],
    exog_cols: Sequence[str],
    date_format: str | None,
    min_days: int,
    name: str | None,
    decisions: list[str],
    *,
    need_value: bool,
) -> PanelFile:
    path = table.path
    others = [c for c in table.columns if c != dcol]
    if asset_col is None:
        cands = [c for c in others if _norm(c) in _ASSET_NAMES]
        if len(cands) != 1:
            what = "no" if not cands else "several"
            raise DataValidationError(
                f"{path}: {what} asset-identifier column{'s' if cands else ''} found "
                f"({', '.join(map(repr, cands)) or 'looked for asset, ticker, symbol, permno...'}); pass asset_col (--asset-col)"
            )
        asset_col = cands[0]
        decisions.append(f"asset column {asset_col!r} (by name)")
    _require_cols(table, [asset_col], "asset")
    _require_cols(table, list(static_cols), "static")
    if feature_cols is not None:
        _require_cols(table, list(feature_cols), "feature")
    keyed = {dcol, asset_col, *static_cols}
    if value_col is None:
        rest = [c for c in table.columns if c not in keyed and c not in (feature_cols or ())]
        cands = [c for c in rest if _norm(c) in _VALUE_NAMES]
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
        _require_cols(table, [value_col], "value")
    if value_col is not None and value_col in (*keyed, *(feature_cols or ())):
        raise DataValidationError(f"{path}: column {value_col!r} cannot be both the value column and another role")
    candidates = [c for c in table.columns if c not in keyed and c != value_col]
    if feature_cols is None:
        feats = candidates
    else:
        feats = list(feature_cols)
        ignored = [c for c in candidates if c not in feats]
        if ignored:
            decisions.append(f"ignored columns {', '.join(map(repr, ignored))} (not in feature_cols)")

    keys = _long_keys(table, dcol, asset_col, date_format)
    T, N = len(keys.dates), len(keys.assets)
    features: dict[str, pd.DataFrame] = {}
    auto_hint = (
        "extra columns are read as numeric features: pass static_cols=[...] (--static) for a per-asset "
        "attribute, or feature_cols=[...] to choose the features (() for none)"
    )
    for c in feats:
        v = _floats(table, c, keys.row_label, auto_hint if feature_cols is None else "features must be numbers or empty")
        if np.isinf(v).any():
            raise _bad_cells(path, f"infinite values in feature column {c!r}", np.isinf(v), keys.row_label, table.data[c],
                             "features must be finite or empty")
        m = np.full((T, N), np.nan)
        m[keys.rows, keys.cols] = v
        features[c] = pd.DataFrame(m, index=keys.dates, columns=keys.assets)

    kind_: Literal["prices", "returns"] | None = None
    panel: ReturnPanel | None = None
    if value_col is not None and need_value:
        vals = np.full((T, N), np.nan)
        vals[keys.rows, keys.cols] = _floats(table, value_col, keys.row_label)
        frame = pd.DataFrame(vals, index=keys.dates, columns=keys.assets)
        missing_exog = [e for e in exog_cols if e not in frame.columns]
        if missing_exog:
            raise DataValidationError(
                f"{path}: exogenous series {', '.join(map(repr, missing_exog))} not found in asset column {asset_col!r}"
            )
        asset_frame = frame.drop(columns=list(exog_cols))
        if asset_frame.shape[1] == 0:
            raise DataValidationError(f"{path}: no assets besides the exogenous series")
        exog = frame[list(exog_cols)] if exog_cols else None
        static = _long_static(table, keys, static_cols)
        if static is not None:
            static = static.drop(index=list(exog_cols))
        kind_ = _decide_kind(path, kind, value_col, asset_frame.to_numpy(), decisions)
        panel = _make_panel(path, asset_frame, exog, static, kind_, name, min_days)
        features = {c: f.drop(columns=list(exog_cols)) for c, f in features.items()}
    fmt = FileFormat(
        path, table.file_type, "long", kind_, dcol, asset_col, value_col,
        feature_cols=tuple(feats), static_cols=tuple(static_cols), exog_cols=tuple(exog_cols),
        decisions=tuple(decisions),
    )
    logger.info("read %s", fmt.describe())
    return PanelFile(panel, fmt, features)  # type: ignore[arg-type]  # panel is None only for features


def read_panel(
    path: str | os.PathLike[str],
    *,
    layout: Layout = "auto",
    kind: Kind = "auto",
    date_col: str | None = None,
    asset_col: str | None = None,
    value_col: str | None = None,
    name: str | None = None,
    feature_cols: Sequence[str] | None = None,
    static_cols: Sequence[str] = (),
    exog_cols: Sequence[str] = (),
    date_format: str | None = None,
    min_days: int = 2,
) -> ReturnPanel:
    """Read a CSV or Parquet file of prices or simple returns as a :class:`ReturnPanel`.

    ``read_panel_file(...).panel``: see :func:`read_panel_file` for the parameters and the
    module docstring for the rules. What auto-detection decided is logged at INFO level on
    the ``factorgym.io`` logger; :func:`read_panel_file` returns it as
    :attr:`PanelFile.format`, together with a long file's feature columns.

    Examples
    --------
    >>> panel = read_panel("prices.csv")                           # doctest: +SKIP
    >>> panel = read_panel("crsp.parquet", asset_col="permno", value_col="ret",
    ...                    kind="returns")                          # doctest: +SKIP
    """
    return read_panel_file(
        path, layout=layout, kind=kind, date_col=date_col, asset_col=asset_col, value_col=value_col, name=name,
        feature_cols=feature_cols, static_cols=static_cols, exog_cols=exog_cols, date_format=date_format,
        min_days=min_days,
    ).panel


def read_long_features(
    path: str | os.PathLike[str],
    *,
    feature_cols: Sequence[str] | None = None,
    date_col: str | None = None,
    asset_col: str | None = None,
    value_col: str | None = None,
    static_cols: Sequence[str] = (),
    date_format: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Per-(date, asset) feature columns of a long file as ``(date x asset)`` frames.

    The file needs a date and an asset column; it may be the same file as the returns
    (its value column, found as in :func:`read_panel_file` or given as ``value_col``, is
    then left out) or a separate features file without any value column.

    Parameters
    ----------
    path : path-like
    feature_cols : sequence of str, optional
        Columns to read; by default every column other than the date, asset, value and
        ``static_cols`` columns.
    date_col, asset_col, value_col, static_cols, date_format
        As in :func:`read_panel_file`.

    Returns
    -------
    dict of str to DataFrame
        One float64 frame per feature, indexed by every date of the file (sorted) with one
        column per asset (in order of first appearance). NaN where the (date, asset) row
        is absent or the cell is empty; text that spells NaN, infinite and non-numeric
        cells are errors.
    """
    table = _read_table(path)
    decisions: list[str] = []
    dcol = _find_date_col(table, date_col, decisions)
    return _finish_long(
        table, dcol, "auto", asset_col, value_col, feature_cols, static_cols, (), date_format, 0, None, decisions,
        need_value=False,
    ).features


# ---------------------------------------------------------------------------- writer
def _prices_from(panel: ReturnPanel, base_price: float) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Price levels whose :meth:`ReturnPanel.from_prices` gives back ``panel``'s returns."""
    m = panel.mask
    gap = np.zeros_like(m)
    gap[1:-1] = ~m[1:-1] & m[:-2] & m[2:]
    if gap.any():
        t, j = (int(x[0]) for x in np.nonzero(gap))
        raise DataValidationError(
            f"{panel.name} cannot be written as prices: {panel.assets[j]} is absent on "
            f"{panel.dates[t].date()} only, between two available days (a one-day gap has no price "
            "representation); write kind='returns'"
        )
    growth = np.where(m, 1.0 + panel.filled(0.0), 1.0)
    levels = base_price * np.vstack([np.ones((1, panel.N)), np.cumprod(growth, axis=0)])
    avail = np.zeros((panel.T + 1, panel.N), dtype=bool)  # price row k serves returns k-1 and k
    avail[1:] |= m
    avail[:-1] |= m
    levels[~avail] = np.nan
    base_date = panel.dates[0] - pd.offsets.BDay(1)
    return pd.DatetimeIndex([base_date, *panel.dates]), levels


def write_panel(
    panel: ReturnPanel,
    path: str | os.PathLike[str],
    *,
    layout: Literal["wide", "long"] = "wide",
    kind: Literal["returns", "prices"] = "returns",
    base_price: float = 100.0,
) -> None:
    """Write a panel's asset values to CSV or Parquet, atomically, readable by :func:`read_panel`.

    Parameters
    ----------
    panel : ReturnPanel
    path : path-like
        ``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq``; written via a temporary file and
        :func:`factorgym.artifacts.atomic_write_bytes`.
    layout : {"wide", "long"}
        Wide: a ``date`` column and one column per asset, absent cells empty (CSV) or null
        (Parquet). Long: ``date, asset, return|price`` rows for the available cells only,
        sorted by asset (in panel order) then date.
    kind : {"returns", "prices"}
        Returns are written exactly (shortest round-trip float text in CSV). Prices are a
        level starting at ``base_price`` on a base date one business day before the first
        date, so reading them back reproduces the returns up to rounding (~1e-15); a panel
        where an asset is absent for a single day between two available days cannot be
        written as prices.
    base_price : float
        Starting price level of every asset.

    Notes
    -----
    Static attributes and exogenous series are not written.
    """
    _check_choice(layout, ("wide", "long"), "layout")
    _check_choice(kind, ("returns", "prices"), "kind")
    p = Path(path)
    suffix = _suffix(p)
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataValidationError(
            f"unknown file extension {suffix!r} of {p}; expected one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if not (np.isfinite(base_price) and base_price > 0):
        raise DataValidationError(f"base_price must be positive and finite, got {base_price}")
    if kind == "prices":
        dates, values = _prices_from(panel, base_price)
    else:
        dates, values = panel.dates, panel.filled(np.nan)
    avail = ~np.isnan(values)
    value_name = "price" if kind == "prices" else "return"
    if layout == "wide":
        cols = {"date": dates, **{a: values[:, j] for j, a in enumerate(panel.assets)}}
        masks = {a: avail[:, j] for j, a in enumerate(panel.assets)}
        frame = pd.DataFrame(cols)
    else:
        jj, tt = np.nonzero(avail.T)  # asset-major order
        frame = pd.DataFrame(
            {"date": dates[tt], "asset": np.asarray(panel.assets, dtype=object)[jj], value_name: values[tt, jj]}
        )
        masks = {value_name: np.ones(len(frame), dtype=bool)}
    if suffix in (".parquet", ".pq"):
        data = _parquet_bytes(frame, masks)
    else:
        buf = _io.StringIO()
        frame.to_csv(buf, index=False, na_rep="", lineterminator="\n")
        data = buf.getvalue().encode("utf-8")
        if suffix == ".csv.gz":
            data = gzip.compress(data, mtime=0)
    atomic_write_bytes(p, data)


def _parquet_bytes(frame: pd.DataFrame, masks: dict[str, np.ndarray]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {}
    for c in frame.columns:
        if c in masks:
            arrays[c] = pa.array(frame[c].to_numpy(dtype=np.float64), type=pa.float64(), mask=~masks[c])
        elif c == "date":
            arrays[c] = pa.array(pd.DatetimeIndex(frame[c]).as_unit("ns").to_numpy(), type=pa.timestamp("ns"))
        else:
            arrays[c] = pa.array(frame[c].astype(str).tolist(), type=pa.string())
    buf = pa.BufferOutputStream()
    pq.write_table(pa.table(arrays), buf)
    return bytes(buf.getvalue().to_pybytes())


# ---------------------------------------------------------------------------- dataset or path
def is_dataset_name(source: str) -> bool:
    """True for a bare word (no ``.``, no path separator): the name of an embedded dataset;
    anything else is the path of a data file."""
    s = str(source)
    return "." not in s and "/" not in s and os.sep not in s


def same_source(a: str, b: str) -> bool:
    """Whether two dataset sources name the same data (paths compared after resolving)."""
    if not is_dataset_name(a) and not is_dataset_name(b):
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    return a == b


def read_source(
    source: str | os.PathLike[str],
    *,
    kind: Literal["auto", "prices", "returns"] = "auto",
    layout: Literal["auto", "wide", "long"] = "auto",
    date_col: str | None = None,
    asset_col: str | None = None,
    value_col: str | None = None,
    exog_cols: Sequence[str] = (),
    static_cols: Sequence[str] = (),
    date_format: str | None = None,
) -> tuple[ReturnPanel, FileFormat | None]:
    """An embedded dataset (by name, e.g. ``sp500``) or a data file (by path), with the
    file's format (``None`` for an embedded dataset).

    Every command and function that takes "a dataset" resolves it here, so that ``sp500``
    and ``prices.csv`` work everywhere alike. The file options are those of
    :func:`read_panel_file` and are refused for an embedded dataset.
    """
    text = os.fspath(source)
    if is_dataset_name(text):
        options = {"kind": kind != "auto", "layout": layout != "auto", "date_col": date_col, "asset_col": asset_col,
                   "value_col": value_col, "exog_cols": exog_cols, "static_cols": static_cols, "date_format": date_format}  # fmt: skip
        used = [k for k, v in options.items() if v]
        if used:
            raise DataValidationError(f"{', '.join(used)} appl{'y' if len(used) > 1 else 'ies'} to data files, not to the embedded dataset {text!r}")
        from factorgym.data import load_dataset

        return load_dataset(text), None
    pf = read_panel_file(
        Path(text), kind=kind, layout=layout, date_col=date_col, asset_col=asset_col, value_col=value_col,
        exog_cols=tuple(exog_cols), static_cols=tuple(static_cols), date_format=date_format,
    )  # fmt: skip
    return pf.panel, pf.format


def load_source(source: str | os.PathLike[str]) -> ReturnPanel:
    """The panel of an embedded dataset name or a CSV/Parquet path (see :func:`read_source`)."""
    return read_source(source)[0]

"""Raw CSV / Parquet tables and cell parsing.

CSV files are read with every cell as text (the :mod:`csv` module, no NA conversion), so
that an empty cell (absent) and text that spells NaN (rejected) stay apart; Parquet columns
keep their types. :func:`column_floats` and :func:`parse_dates` turn columns into numbers
and dates, naming the offending cells.
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from factorgym.errors import DataValidationError
from factorgym.io.formats import SUPPORTED_SUFFIXES, file_suffix

__all__ = [
    "MAX_SHOWN",
    "NAN_WORDS",
    "Column",
    "Table",
    "bad_cells",
    "check_path",
    "column_floats",
    "date_label",
    "listed",
    "parse_dates",
    "read_csv",
    "read_parquet",
    "read_table",
]

#: Text that spells a missing or non-finite number; rejected so that absence is explicit.
NAN_WORDS = frozenset({"nan", "-nan", "+nan", "na", "n/a", "#n/a", "null", "none", "nat", "missing"})

MAX_SHOWN = 5


@dataclass
class Column:
    """One column of a file: text, numbers or dates, with a mask of empty cells."""

    null: np.ndarray  # bool, True for empty cells / nulls
    text: np.ndarray | None = None  # object array of stripped str
    numbers: np.ndarray | None = None  # float64 (NaN where null or a real NaN)
    integer: bool = False  # numbers came from an integer column
    dates: pd.DatetimeIndex | None = None  # a date/timestamp typed column
    type_name: str = "string"


@dataclass
class Table:
    """A file read into :class:`Column` s by name, in file order."""

    path: Path
    file_type: Literal["csv", "parquet"]
    columns: list[str]
    data: dict[str, Column]
    n_rows: int


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a :class:`~pathlib.Path` of an existing file with a supported ending."""
    p = Path(path)
    if p.is_dir():
        raise DataValidationError(f"{p} is a directory, not a data file")
    suffix = file_suffix(p)
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataValidationError(
            f"unknown file extension {suffix!r} of {p}; expected one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if not p.exists():
        raise FileNotFoundError(2, "no such data file", str(p))
    return p


def read_csv(path: Path, compressed: bool) -> Table:
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
        shown = ", ".join(f"line {ln} has {n}" for ln, n in bad[:MAX_SHOWN])
        more = f" (+{len(bad) - MAX_SHOWN} more)" if len(bad) > MAX_SHOWN else ""
        raise DataValidationError(
            f"{path}: rows with a wrong number of fields: {shown}{more}; the header has {len(header)}"
        )
    n_rows = len(rows) - 1
    data: dict[str, Column] = {}
    for j, name in enumerate(header):
        text = np.empty(n_rows, dtype=object)
        text[:] = [r[j].strip() for r in rows[1:]]
        data[name] = Column(null=text == "", text=text)
    return Table(path, "csv", header, data, n_rows)


def read_parquet(path: Path) -> Table:
    """Every column of a Parquet file as numbers, text or dates, with its nulls."""
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
    data: dict[str, Column] = {}
    for name, col in zip(columns, table.columns, strict=True):
        t = col.type
        if pa.types.is_dictionary(t):
            col = col.cast(t.value_type)
            t = col.type
        null = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            nums = pc.fill_null(col.cast(pa.float64()), float("nan")).to_numpy(zero_copy_only=False)
            data[name] = Column(null=null, numbers=np.asarray(nums, dtype=np.float64), integer=pa.types.is_integer(t), type_name=str(t))
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            vals = col.to_numpy(zero_copy_only=False)
            text = np.array(["" if v is None else str(v).strip() for v in vals], dtype=object)
            data[name] = Column(null=null | (text == ""), text=text, type_name=str(t))
        elif pa.types.is_timestamp(t) or pa.types.is_date(t):
            dates = pd.DatetimeIndex(pd.to_datetime(col.to_pandas()))
            data[name] = Column(null=null, dates=dates, type_name=str(t))
        else:
            data[name] = Column(null=null, type_name=str(t))
    return Table(path, "parquet", columns, data, table.num_rows)


def read_table(path: str | os.PathLike[str]) -> Table:
    """Read a CSV or Parquet file as a :class:`Table`; duplicate column names and empty files are errors."""
    p = check_path(path)
    suffix = file_suffix(p)
    table = read_parquet(p) if suffix in (".parquet", ".pq") else read_csv(p, suffix == ".csv.gz")
    seen: set[str] = set()
    dups = sorted({c for c in table.columns if c in seen or seen.add(c)})  # type: ignore[func-returns-value]
    if dups:
        raise DataValidationError(f"{p}: duplicate column names: {', '.join(map(repr, dups))}")
    if table.n_rows == 0:
        raise DataValidationError(f"{p} has a header but no data rows")
    return table


def listed(labels: Sequence[str], extra: int = 0) -> str:
    """The first few ``labels`` joined by commas, with ``(+k more)`` for the rest."""
    shown = ", ".join(labels[:MAX_SHOWN])
    more = len(labels) - MAX_SHOWN + extra
    return shown + (f" (+{more} more)" if more > 0 else "")


def bad_cells(path: Path, what: str, bad: np.ndarray, label: Callable[[int], str], col: Column, hint: str) -> DataValidationError:
    """An error naming the first few rows where ``bad`` is True, with their raw cells."""
    rows = np.nonzero(bad)[0]
    shown = []
    for i in rows[:MAX_SHOWN]:
        raw = col.text[i] if col.text is not None else (col.numbers[i] if col.numbers is not None else "?")
        shown.append(f"{label(int(i))}={raw!r}")
    return DataValidationError(f"{path}: {what} at {listed(shown, len(rows) - len(shown))}; {hint}")


def column_floats(table: Table, name: str, label: Callable[[int], str], hint: str = "cells must be numbers or empty") -> np.ndarray:
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
            raise bad_cells(path, f"NaN values in column {name!r}", real_nan, label, col,
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
        nan_words[np.nonzero(failed)[0][np.isin(lowered, list(NAN_WORDS))]] = True
        if nan_words.any():
            raise bad_cells(path, f"missing-value text in column {name!r}", nan_words, label, col,
                             "leave the cell empty for an absent value (NaN text is rejected)")
        raise bad_cells(path, f"non-numeric cells in column {name!r}", failed, label, col, hint)
    out[present] = conv
    return out


def parse_dates(table: Table, name: str, date_format: str | None) -> pd.DatetimeIndex:
    """Column ``name`` as dates (ISO 8601 unless ``date_format``), naming the first bad cell."""
    col = table.data[name]
    path = table.path
    if col.null.any():
        rows = np.nonzero(col.null)[0]
        raise DataValidationError(
            f"{path}: empty dates in column {name!r} on data rows {listed([str(r + 1) for r in rows])}"
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


def date_label(ts: pd.Timestamp) -> str:
    """``YYYY-MM-DD`` for a whole day, the full timestamp otherwise."""
    return str(ts.date()) if ts == ts.normalize() else str(ts)

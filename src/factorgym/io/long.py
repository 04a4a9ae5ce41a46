"""The long layout: one row per (date, asset), keyed into ``(date x asset)`` matrices."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from factorgym.errors import DataValidationError
from factorgym.io.tables import Table, date_label, listed, parse_dates

__all__ = [
    "LongKeys",
    "long_keys",
    "long_static",
]

@dataclass
class LongKeys:
    """Where each row of a long file goes in the ``(date x asset)`` matrix."""

    dates: pd.DatetimeIndex  # sorted unique dates of the file
    assets: list[str]  # first-appearance order
    rows: np.ndarray  # row -> date position
    cols: np.ndarray  # row -> asset position
    row_label: Callable[[int], str]


def long_keys(table: Table, date_col: str, asset_col: str, date_format: str | None) -> LongKeys:
    """The dates and assets of a long file and each row's cell; duplicate (date, asset) rows and
    per-asset dates out of order are errors."""
    path = table.path
    row_dates = parse_dates(table, date_col, date_format)
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
            f"{path}: empty asset names in column {asset_col!r} on data rows {listed([str(r + 1) for r in rows])}"
        )
    codes, uniques = pd.factorize(pd.Series(names, dtype=object), sort=False)
    assets = [str(a) for a in uniques]

    def label(i: int) -> str:
        return f"{date_label(row_dates[i])}/{names[i]}"

    key = pd.DataFrame({"d": row_dates.asi8, "a": codes})
    dup = key.duplicated(keep="first").to_numpy()
    if dup.any():
        rows = np.nonzero(dup)[0]
        raise DataValidationError(
            f"{path}: duplicate (date, asset) rows: {listed([label(int(i)) for i in rows])}"
        )
    order = np.argsort(codes, kind="stable")
    d = row_dates.asi8[order]
    same = codes[order][1:] == codes[order][:-1]
    back = same & (d[1:] < d[:-1])
    if back.any():
        k = int(np.nonzero(back)[0][0])
        raise DataValidationError(
            f"{path}: dates of asset {names[order[k]]} are not sorted: {label(int(order[k]))} is followed by "
            f"{date_label(row_dates[order[k + 1]])}"
        )
    udates = row_dates.unique().sort_values()
    return LongKeys(udates, assets, udates.get_indexer(row_dates), codes, label)


def long_static(table: Table, keys: LongKeys, static_cols: Sequence[str]) -> pd.DataFrame | None:
    """Per-asset attributes (one row per asset), each constant over the asset's rows; None without ``static_cols``."""
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

"""Writing a panel's returns or prices as CSV or Parquet (:func:`write_panel`)."""

from __future__ import annotations

import gzip
import io as _io
import os
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from factorgym.artifacts import atomic_write_bytes
from factorgym.data import ReturnPanel
from factorgym.errors import DataValidationError
from factorgym.io.formats import SUPPORTED_SUFFIXES, check_choice, file_suffix

__all__ = [
    "write_panel",
]

class _PriceLevels(NamedTuple):
    dates: pd.DatetimeIndex  # (T + 1,): a base date, then the panel's dates
    levels: np.ndarray  # (T + 1, N), NaN where no return uses the price


def _prices_from(panel: ReturnPanel, base_price: float) -> _PriceLevels:
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
    return _PriceLevels(pd.DatetimeIndex([base_date, *panel.dates]), levels)


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
    check_choice(layout, ("wide", "long"), "layout")
    check_choice(kind, ("returns", "prices"), "kind")
    p = Path(path)
    suffix = file_suffix(p)
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

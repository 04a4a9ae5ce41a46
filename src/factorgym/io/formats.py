"""Records of how a data file was read (:class:`FileFormat`, :class:`PanelFile`) and file-name rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from factorgym.data import ReturnPanel
from factorgym.errors import DataValidationError

__all__ = [
    "Kind",
    "Layout",
    "SUPPORTED_SUFFIXES",
    "FileFormat",
    "PanelFile",
    "check_choice",
    "file_stem",
    "file_suffix",
]


Layout = Literal["auto", "wide", "long"]
Kind = Literal["auto", "prices", "returns"]

#: File name endings understood by the readers and :func:`write_panel`.
SUPPORTED_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".parquet", ".pq")


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


def file_suffix(path: Path) -> str:
    """The supported ending of ``path`` (``.csv.gz`` before ``.gz``), or its last suffixes."""
    name = path.name.lower()
    for s in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if name.endswith(s):
            return s
    return "".join(path.suffixes[-2:]).lower() or "(none)"


def file_stem(path: Path) -> str:
    """The file name of ``path`` without its (supported) ending."""
    s = file_suffix(path)
    return path.name[: -len(s)] if path.name.lower().endswith(s) else path.stem


def check_choice(value: str, allowed: Sequence[str], what: str) -> None:
    """Raise :class:`DataValidationError` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise DataValidationError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")

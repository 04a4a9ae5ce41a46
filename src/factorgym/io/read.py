"""Readers of CSV / Parquet return or price files: :func:`read_panel_file`, :func:`read_panel`
and :func:`read_long_features` (the rules are in the :mod:`factorgym.io` docstring)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

import numpy as np
import pandas as pd

from factorgym.data import ReturnPanel, check_dates
from factorgym.errors import DataValidationError
from factorgym.io.detect import (
    choose_layout,
    decide_kind,
    find_asset_col,
    find_date_col,
    find_value_col,
    require_cols,
)
from factorgym.io.formats import FileFormat, Kind, Layout, PanelFile, check_choice, file_stem
from factorgym.io.long import long_keys, long_static
from factorgym.io.tables import Table, bad_cells, column_floats, date_label, parse_dates, read_table

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "PanelReadOptions",
    "read_long_features",
    "read_panel",
    "read_panel_file",
]

logger = logging.getLogger("factorgym.io")


class PanelReadOptions(TypedDict, total=False):
    """The keyword options of :func:`read_panel_file` (and :func:`read_panel`), documented there."""

    layout: Layout
    kind: Kind
    date_col: str | None
    asset_col: str | None
    value_col: str | None
    feature_cols: Sequence[str] | None
    static_cols: Sequence[str]
    exog_cols: Sequence[str]
    date_format: str | None
    min_days: int
    name: str | None


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
    check_choice(layout, ("auto", "wide", "long"), "layout")
    check_choice(kind, ("auto", "prices", "returns"), "kind")
    table = read_table(path)
    path_ = table.path
    decisions: list[str] = []
    dcol = find_date_col(table, date_col, decisions)
    others = [c for c in table.columns if c != dcol]
    layout, asset_col = choose_layout(table, others, layout, asset_col, value_col, decisions)
    if layout == "wide":
        for arg, val in (("asset_col", asset_col), ("value_col", value_col), ("feature_cols", feature_cols), ("static_cols", static_cols)):
            if val:
                raise DataValidationError(f"{arg} applies to the long layout only, but {path_} is read as wide")
        return _finish_wide(table, dcol, others, kind, exog_cols, date_format, min_days, name, decisions)
    return _finish_long(
        table, dcol, kind, asset_col, value_col, feature_cols, static_cols, exog_cols, date_format, min_days, name,
        decisions, need_value=True,
    )


def read_panel(path: str | os.PathLike[str], **options: Unpack[PanelReadOptions]) -> ReturnPanel:
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
    return read_panel_file(path, **options).panel


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
    table = read_table(path)
    decisions: list[str] = []
    dcol = find_date_col(table, date_col, decisions)
    return _finish_long(
        table, dcol, "auto", asset_col, value_col, feature_cols, static_cols, (), date_format, 0, None, decisions,
        need_value=False,
    ).features


def _finish_wide(
    table: Table,
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
    require_cols(table, list(exog_cols), "exogenous")
    if not [a for a in assets if a not in exog_cols]:
        raise DataValidationError(f"{path}: no asset columns besides the date column {dcol!r}")
    empty_names = [j + 2 for j, a in enumerate(assets) if a == ""]
    if empty_names:
        raise DataValidationError(f"{path}: column {empty_names[0]} has no name (every asset column needs one)")
    dates = check_dates(parse_dates(table, dcol, date_format), f"dates in {path}")

    def labeller(col: str) -> Callable[[int], str]:
        return lambda i: f"{date_label(dates[i])}/{col}"

    values = np.column_stack([column_floats(table, a, labeller(a)) for a in assets])
    frame = pd.DataFrame(values, index=dates, columns=assets)
    asset_frame = frame.drop(columns=list(exog_cols))
    exog = frame[list(exog_cols)] if exog_cols else None
    kind_ = decide_kind(path, kind, None, asset_frame.to_numpy(), decisions)
    panel = _make_panel(path, asset_frame, exog, None, kind_, name, min_days)
    fmt = FileFormat(
        path, table.file_type, "wide", kind_, dcol, exog_cols=tuple(exog_cols), decisions=tuple(decisions)
    )
    logger.info("read %s", fmt.describe())
    return PanelFile(panel, fmt, {})


def _make_panel(
    path: Path,
    frame: pd.DataFrame,
    exog: pd.DataFrame | None,
    static: pd.DataFrame | None,
    kind: Literal["prices", "returns"],
    name: str | None,
    min_days: int,
) -> ReturnPanel:
    label = name if name is not None else file_stem(path)
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
    table: Table,
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
    asset_col = find_asset_col(table, dcol, asset_col, decisions)
    require_cols(table, list(static_cols), "static")
    if feature_cols is not None:
        require_cols(table, list(feature_cols), "feature")
    keyed = {dcol, asset_col, *static_cols}
    value_col = find_value_col(table, keyed, value_col, feature_cols, need_value, decisions)
    candidates = [c for c in table.columns if c not in keyed and c != value_col]
    if feature_cols is None:
        feats = candidates
    else:
        feats = list(feature_cols)
        ignored = [c for c in candidates if c not in feats]
        if ignored:
            decisions.append(f"ignored columns {', '.join(map(repr, ignored))} (not in feature_cols)")

    keys = long_keys(table, dcol, asset_col, date_format)
    T, N = len(keys.dates), len(keys.assets)
    features: dict[str, pd.DataFrame] = {}
    auto_hint = (
        "extra columns are read as numeric features: pass static_cols=[...] (--static) for a per-asset "
        "attribute, or feature_cols=[...] to choose the features (() for none)"
    )
    for c in feats:
        v = column_floats(table, c, keys.row_label, auto_hint if feature_cols is None else "features must be numbers or empty")
        if np.isinf(v).any():
            raise bad_cells(path, f"infinite values in feature column {c!r}", np.isinf(v), keys.row_label, table.data[c],
                             "features must be finite or empty")
        m = np.full((T, N), np.nan)
        m[keys.rows, keys.cols] = v
        features[c] = pd.DataFrame(m, index=keys.dates, columns=keys.assets)

    kind_: Literal["prices", "returns"] | None = None
    panel: ReturnPanel | None = None
    if value_col is not None and need_value:
        vals = np.full((T, N), np.nan)
        vals[keys.rows, keys.cols] = column_floats(table, value_col, keys.row_label)
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
        static = long_static(table, keys, static_cols)
        if static is not None:
            static = static.drop(index=list(exog_cols))
        kind_ = decide_kind(path, kind, value_col, asset_frame.to_numpy(), decisions)
        panel = _make_panel(path, asset_frame, exog, static, kind_, name, min_days)
        features = {c: f.drop(columns=list(exog_cols)) for c, f in features.items()}
    fmt = FileFormat(
        path, table.file_type, "long", kind_, dcol, asset_col, value_col,
        feature_cols=tuple(feats), static_cols=tuple(static_cols), exog_cols=tuple(exog_cols),
        decisions=tuple(decisions),
    )
    logger.info("read %s", fmt.describe())
    return PanelFile(panel, fmt, features)  # type: ignore[arg-type]  # panel is None only for features

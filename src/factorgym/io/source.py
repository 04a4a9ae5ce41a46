"""One reader for "a dataset": an embedded dataset name (e.g. ``sp500``) or a data file path."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from factorgym.data import ReturnPanel
from factorgym.errors import DataValidationError
from factorgym.io.formats import FileFormat
from factorgym.io.read import read_panel_file

__all__ = [
    "is_dataset_name",
    "load_source",
    "read_source",
    "same_source",
]

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

"""Tables for reports: cells as display text (:func:`format_table`) and as HTML (:func:`table_html`)."""

from __future__ import annotations

import datetime as _dt
import html
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from factorgym.errors import DataValidationError

__all__ = [
    "format_cell",
    "format_table",
    "markdown_cell",
    "table_html",
    "to_markdown",
]

def format_cell(v: Any, spec: str) -> str:
    """One value as display text: ``spec`` for floats, ``N/A`` for None/NaN/NaT, ``inf``/``-inf``,
    dates as ``YYYY-MM-DD`` when whole days."""
    if v is None:
        return "N/A"
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        f = float(v)
        if math.isnan(f):
            return "N/A"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return format(f, spec)
    if isinstance(v, pd.Timestamp | _dt.date):
        return str(v.date()) if isinstance(v, pd.Timestamp) and v == v.normalize() else str(v)
    if v is pd.NaT:
        return "N/A"
    return str(v)


def format_table(df: pd.DataFrame, floatfmt: str = ".4g", formats: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``df`` with every cell as display text (NaN -> ``N/A``; per-column format specs).

    Parameters
    ----------
    df : DataFrame
    floatfmt : str
        Default ``format`` spec of floats.
    formats : mapping of column to format spec, optional
        E.g. ``{"Ann. return": ".2%", "Sharpe": ".2f"}``.

    Returns
    -------
    DataFrame of str
    """
    formats = dict(formats or {})
    unknown = [c for c in formats if c not in df.columns]
    if unknown:
        raise DataValidationError(f"formats given for unknown columns {unknown}")
    out = pd.DataFrame(index=[format_cell(i, floatfmt) for i in df.index], columns=[str(c) for c in df.columns], dtype=object)
    for c, sc in zip(df.columns, out.columns, strict=True):
        spec = formats.get(c, floatfmt)
        out[sc] = [format_cell(v, spec) for v in df[c].tolist()]
    out.index.name = df.index.name
    return out


def table_html(
    frame: pd.DataFrame,
    caption: str | None = None,
    *,
    floatfmt: str = ".4g",
    formats: Mapping[str, str] | None = None,
    index: bool = True,
) -> str:
    """An HTML ``<table>`` (in a scrolling ``div.tablewrap``) of ``frame``, every cell escaped.

    Parameters
    ----------
    frame : DataFrame
    caption : str, optional
    floatfmt, formats
        As in :func:`format_table`.
    index : bool
        Show the index as the first column (header cells of class ``idx``).

    Returns
    -------
    str
        Numeric, non-boolean columns are right-aligned (cells of class ``num``).
    """
    text = format_table(frame, floatfmt, formats)
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) for c in frame.columns]
    head = ""
    if index:
        head += f'<th class="idx">{html.escape(str(frame.index.name or ""))}</th>'
    head += "".join(f"<th>{html.escape(str(c))}</th>" for c in text.columns)
    rows = []
    for i, row in zip(text.index, text.itertuples(index=False), strict=True):
        cells = f'<th class="idx">{html.escape(str(i))}</th>' if index else ""
        cells += "".join(
            f'<td class="num">{html.escape(v)}</td>' if num else f"<td>{html.escape(v)}</td>"
            for v, num in zip(row, numeric, strict=True)
        )
        rows.append(f"<tr>{cells}</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    body = "\n".join(rows)
    return f'<div class="tablewrap"><table>{cap}<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>'


def markdown_cell(v: Any, floatfmt: str = ".4g") -> str:
    """:func:`format_cell` for a markdown table: ``|`` escaped and line breaks removed."""
    return format_cell(v, floatfmt).replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub-flavoured markdown table of ``df`` (index as first column; NaN as ``N/A``).

    Parameters
    ----------
    df : pandas.DataFrame
    floatfmt : str
        Format spec for floats (``format(x, floatfmt)``).

    Returns
    -------
    str
        Ends with a newline.
    """
    header = [str(df.index.name or "")] + [str(c) for c in df.columns]
    rows = [[markdown_cell(idx, floatfmt)] + [markdown_cell(v, floatfmt) for v in row] for idx, row in zip(df.index, df.itertuples(index=False), strict=True)]
    numeric = [False] + [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    widths = [max(len(h), 3, *(len(r[j]) for r in rows)) for j, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=True)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if num else (":" + "-" * (w + 1)) for w, num in zip(widths, numeric, strict=True)) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)]) + "\n"

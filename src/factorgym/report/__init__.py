"""Self-contained HTML reports: a summary, sections, tables, notes and interactive figures in one file.

:class:`Report` collects blocks in order and writes one HTML file with inline CSS, the
figures as plotly JSON and plotly.js embedded once, so it opens offline and can be mailed or
archived as one file. Everything user-supplied is HTML-escaped.

Tables take code column names (``sharpe_synthetic_median``, ``annualised_return_real``) to
labels with units and formats (percent, basis points, sensible rounding) through
:func:`~factorgym.report.tables.humanize` (``add_table(..., human=True)``); every table and
figure can carry a one-line "how to read" (``how=``); settings are shown as a readable
table (:meth:`Report.add_settings`).

The figure helpers (:mod:`factorgym.report.figures`) cover the backtest
(:func:`equity_figure`, :func:`weights_figure`, :func:`distribution_figure`) and generic
needs (:func:`dot_figure` for scores compared by their differences, :func:`bar_figure`,
:func:`calibration_figure`); any plotly figure can be added with :meth:`Report.add_figure`.

Example
-------
>>> import pandas as pd
>>> from factorgym.report import Report, dot_figure
>>> rep = Report("Generators")
>>> _ = rep.add_section("Scores").add_table(pd.DataFrame({"NLL joint": [1.2, 1.1]}, index=["a", "b"]), "NLL per model", human=True)
>>> _ = rep.add_figure(dot_figure(pd.Series({"a": 1.2, "b": 1.1}), title="NLL"), how="lower is better")
>>> "<table" in rep.to_html()
True
"""

from __future__ import annotations

from factorgym.report.figures import (
    PALETTE,
    PALETTE_LIGHT,
    bar_figure,
    calibration_figure,
    distribution_figure,
    dot_figure,
    equity_figure,
    new_figure,
    weights_figure,
)
from factorgym.report.html import Report
from factorgym.report.tables import column_spec, format_table, humanize, settings_table, to_markdown

__all__ = [
    "PALETTE",
    "PALETTE_LIGHT",
    "Report",
    "bar_figure",
    "calibration_figure",
    "column_spec",
    "distribution_figure",
    "dot_figure",
    "equity_figure",
    "format_table",
    "humanize",
    "new_figure",
    "settings_table",
    "to_markdown",
    "weights_figure",
]

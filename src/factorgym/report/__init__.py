"""Self-contained HTML reports: sections, tables, notes and figures in one file.

:class:`Report` collects blocks in order and writes one HTML file with inline CSS and
figures embedded as base64 PNG, so it can be mailed, archived or opened from any browser
without the terminal or the run folder. Everything user-supplied is HTML-escaped.

Figures are plain :class:`matplotlib.figure.Figure` objects rendered with
:class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`: this module never imports
``matplotlib.pyplot``, never selects a backend and never changes ``rcParams``, so it is safe
inside notebooks, servers and test suites that use matplotlib themselves.

The plot helpers cover the backtest (:func:`equity_figure`, :func:`weights_figure`,
:func:`distribution_figure`) and generic needs of other reports (:func:`bar_figure`,
:func:`calibration_figure`); any other figure made with :func:`new_figure` (or any
``Figure``) can be added with :meth:`Report.add_figure`.

Example
-------
>>> import pandas as pd
>>> from factorgym.report import Report, bar_figure
>>> rep = Report("Generators")
>>> _ = rep.add_section("Scores").add_table(pd.DataFrame({"NLL": [1.2, 1.1]}, index=["a", "b"]), "NLL per model")
>>> _ = rep.add_figure(bar_figure(pd.Series({"a": 1.2, "b": 1.1}), title="NLL"), "lower is better")
>>> "<table" in rep.to_html()
True
"""

from __future__ import annotations

from factorgym.report.figures import (
    PALETTE,
    PALETTE_LIGHT,
    PNG_SIGNATURE,
    bar_figure,
    calibration_figure,
    distribution_figure,
    equity_figure,
    figure_to_png,
    new_figure,
    weights_figure,
)
from factorgym.report.html import Report
from factorgym.report.tables import format_table, to_markdown

__all__ = [
    "to_markdown",
    "PALETTE",
    "PALETTE_LIGHT",
    "PNG_SIGNATURE",
    "Report",
    "bar_figure",
    "calibration_figure",
    "distribution_figure",
    "equity_figure",
    "figure_to_png",
    "format_table",
    "new_figure",
    "weights_figure",
]

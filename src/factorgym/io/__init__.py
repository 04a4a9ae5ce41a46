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

from factorgym.io.formats import SUPPORTED_SUFFIXES, FileFormat, PanelFile
from factorgym.io.read import read_long_features, read_panel, read_panel_file
from factorgym.io.source import is_dataset_name, load_source, read_source, same_source
from factorgym.io.write import write_panel

__all__ = [
    "FileFormat",
    "PanelFile",
    "SUPPORTED_SUFFIXES",
    "is_dataset_name",
    "load_source",
    "read_long_features",
    "read_panel",
    "read_panel_file",
    "read_source",
    "same_source",
    "write_panel",
]

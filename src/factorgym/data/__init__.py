"""Return panels, validation, date splits, the embedded sp500 data and synthetic panels.

Modules
-------
:mod:`~factorgym.data.panel`
    :class:`ReturnPanel`, the immutable panel of simple daily returns and its mask.
:mod:`~factorgym.data.validation`
    Checks of dates, asset names and return matrices (``validate_return_matrix``).
:mod:`~factorgym.data.split`
    :class:`Split`, chronological train / validation / test splits.
:mod:`~factorgym.data.datasets`
    :func:`load_dataset` and the embedded sp500 data.
:mod:`~factorgym.data.synthetic`
    :func:`synthetic_factor_panel`, panels with a known true density.

Conventions
-----------
* A :class:`ReturnPanel` holds **simple** daily returns ``r_t = P_t / P_{t-1} - 1`` in a
  ``(T, N)`` float64 matrix. Log returns are derived in exactly one place,
  :meth:`ReturnPanel.log_returns`.
* Row ``t`` is the return realised over day ``t`` (close ``t-1`` to close ``t``): it is
  information available *at the close of day t*.
* An asset that is not trading on a day is marked ``False`` in ``mask`` and its cell holds
  ``NaN``. Absence is never encoded as a zero return; use :meth:`ReturnPanel.filled` when a
  dense matrix is needed together with the mask.

Nothing in this package touches the network: the sp500 data is read from the CSV files that
ship inside the ``skfolio`` wheel.
"""

from __future__ import annotations

from factorgym.data.datasets import SP500_SECTORS, dataset_caveats, load_dataset
from factorgym.data.panel import ReturnPanel
from factorgym.data.split import Split
from factorgym.data.synthetic import SyntheticFactorPanel, synthetic_factor_panel
from factorgym.data.validation import (
    MAX_ABS_DAILY_RETURN,
    check_dates,
    parse_iso_date,
    validate_return_matrix,
)

__all__ = [
    "ReturnPanel",
    "Split",
    "SyntheticFactorPanel",
    "load_dataset",
    "dataset_caveats",
    "synthetic_factor_panel",
    "validate_return_matrix",
    "check_dates",
    "parse_iso_date",
    "SP500_SECTORS",
    "MAX_ABS_DAILY_RETURN",
]

"""Chronological train / validation / test splits of a panel by date."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from factorgym.data.validation import parse_iso_date
from factorgym.errors import DataValidationError

if TYPE_CHECKING:
    from factorgym.data.panel import ReturnPanel

__all__ = ["Split"]


@dataclass(frozen=True)
class Split:
    """Chronological train / validation / test split by date (inclusive ends).

    The defaults adapt the NeuralFactors paper's protocol to the 1990-2022 sp500 data:
    train through 2013, validate on 2014-2018, test from 2019 onward.
    """

    train_end: str = "2013-12-31"
    val_end: str = "2018-12-31"

    def __post_init__(self) -> None:
        for name in ("train_end", "val_end"):
            parse_iso_date(getattr(self, name), name)  # a clear error for "garbage", never pandas' own
        if pd.Timestamp(self.train_end) >= pd.Timestamp(self.val_end):
            raise DataValidationError(f"train_end {self.train_end} must precede val_end {self.val_end}")

    def bounds(self, dates: pd.DatetimeIndex) -> dict[str, tuple[int, int]]:
        """Row ranges ``[start, stop)`` of ``train``, ``val`` and ``test`` in ``dates``."""
        a = int(dates.searchsorted(pd.Timestamp(self.train_end), side="right"))
        b = int(dates.searchsorted(pd.Timestamp(self.val_end), side="right"))
        return {"train": (0, a), "val": (a, b), "test": (b, len(dates))}

    def part(self, panel: ReturnPanel, which: str) -> ReturnPanel:
        """The ``"train"``, ``"val"`` or ``"test"`` rows of ``panel``."""
        bounds = self.bounds(panel.dates)
        if which not in bounds:
            raise DataValidationError(f"unknown split part {which!r}; expected train, val or test")
        i0, i1 = bounds[which]
        if i1 <= i0:
            raise DataValidationError(
                f"split part {which!r} is empty for {panel.name} "
                f"({panel.dates[0].date()}..{panel.dates[-1].date()}, train_end={self.train_end}, val_end={self.val_end})"
            )
        return panel.iloc(i0, i1)

    @classmethod
    def by_fraction(cls, dates: pd.DatetimeIndex, train: float = 0.6, val: float = 0.2) -> Split:
        """A split at fractions of ``dates`` (for panels that do not span 1990-2022)."""
        n = len(dates)
        return cls(str(dates[int(n * train) - 1].date()), str(dates[int(n * (train + val)) - 1].date()))

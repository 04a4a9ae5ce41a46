"""Embedded datasets, read without network access.

The sp500 data is read from the CSV files that ship inside the ``skfolio`` wheel.
"""

from __future__ import annotations

import pandas as pd

from factorgym.data.panel import ReturnPanel
from factorgym.data.split import Split
from factorgym.errors import DataValidationError

__all__ = ["SP500_SECTORS", "dataset_caveats", "load_dataset"]


#: GICS sectors of the 20 stocks in skfolio's sp500 dataset.
SP500_SECTORS: dict[str, str] = {
    "AAPL": "Information Technology",
    "AMD": "Information Technology",
    "BAC": "Financials",
    "BBY": "Consumer Discretionary",
    "CVX": "Energy",
    "GE": "Industrials",
    "HD": "Consumer Discretionary",
    "JNJ": "Health Care",
    "JPM": "Financials",
    "KO": "Consumer Staples",
    "LLY": "Health Care",
    "MRK": "Health Care",
    "MSFT": "Information Technology",
    "PEP": "Consumer Staples",
    "PFE": "Health Care",
    "PG": "Consumer Staples",
    "RRC": "Energy",
    "UNH": "Health Care",
    "WMT": "Consumer Staples",
    "XOM": "Energy",
}


def _load_sp500() -> ReturnPanel:
    from skfolio.datasets import load_sp500_dataset, load_sp500_index

    prices = load_sp500_dataset()
    index = load_sp500_index()
    static = pd.DataFrame({"sector": [SP500_SECTORS[a] for a in prices.columns]}, index=prices.columns)
    return ReturnPanel.from_prices(prices, static=static, exog_prices=index, name="sp500")


_DATASETS = {"sp500": _load_sp500}


def load_dataset(name: str = "sp500") -> ReturnPanel:
    """Load an embedded dataset (no network access).

    ``"sp500"``: daily simple returns of 20 S&P 500 stocks, 1990-01-03..2022-12-28, from the
    prices shipped in the ``skfolio`` wheel, with the S&P 500 index return as exogenous
    column ``SP500`` and each stock's GICS ``sector`` as a static attribute. Prices there are
    rounded to 3 decimals, so early low-priced stocks show quantised returns.
    """
    try:
        loader = _DATASETS[name]
    except KeyError:
        raise DataValidationError(f"unknown dataset {name!r}; embedded datasets: {', '.join(_DATASETS)}") from None
    return loader()


def dataset_caveats(panel: ReturnPanel, split: Split | None = None) -> list[str]:
    """What a user must know before trusting figures on an embedded dataset, with the figures
    that show it (empty for other panels).

    For ``sp500``: the universe is 20 of today's large caps chosen after the fact
    (survivorship), shown by 1/N's annualised return against the index's in the train and
    test periods of ``split`` (default :class:`Split`'s); the index is a price index
    without dividends.
    """
    if panel.name != "sp500":
        return []
    import numpy as np

    split = split if split is not None else Split()
    train_end, val_end = pd.Timestamp(split.train_end), pd.Timestamp(split.val_end)
    ew = np.nanmean(panel.returns, axis=1)
    idx = panel.exog["SP500"].to_numpy() if panel.exog is not None and "SP500" in panel.exog else None

    def ann(r: np.ndarray) -> float:
        return float(np.prod(1.0 + r) ** (252.0 / len(r)) - 1.0)

    parts = {"train": panel.dates <= train_end, "test": panel.dates > val_end}
    figures = []
    for label, sel in parts.items():
        text = f"1/N (daily rebalanced, before costs) earns {ann(ew[sel]):.1%}/yr in {label}"
        if idx is not None:
            text += f" against the index's {ann(idx[sel]):.1%}"
        figures.append(text)
    return [
        "Survivorship: these are 20 of today's large caps, chosen after the fact; none went bankrupt or was "
        f"delisted, which flatters buy-and-hold and 1/N ({'; '.join(figures)}).",
        "The SP500 series is a price index without dividends; the stocks' returns are also price returns.",
    ]

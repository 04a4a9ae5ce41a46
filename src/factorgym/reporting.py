"""Plain-text summaries for the terminal (rich tables)."""

from __future__ import annotations

import numpy as np
from rich.table import Table

from factorgym.data import ReturnPanel

__all__ = ["panel_summary"]


def panel_summary(panel: ReturnPanel) -> Table:
    """A rich table: one row per asset with availability and annualised statistics."""
    n_missing = int((~panel.mask).sum())
    title = (
        f"{panel.name}: {panel.T} days x {panel.N} assets, "
        f"{panel.dates[0].date()} .. {panel.dates[-1].date()}, "
        f"{n_missing} missing cells (simple daily returns)"
    )
    t = Table(title=title)
    cols = ["asset", "sector", "first", "last", "days", "missing", "ann. mean", "ann. vol", "min", "max"]
    for c in cols:
        t.add_column(c, justify="left" if c in ("asset", "sector") else "right")
    for j, a in enumerate(panel.assets):
        m = panel.mask[:, j]
        r = panel.returns[m, j]
        idx = np.nonzero(m)[0]
        sector = "" if panel.static is None or "sector" not in panel.static else str(panel.static.loc[a, "sector"])
        t.add_row(
            a,
            sector,
            str(panel.dates[idx[0]].date()) if len(idx) else "-",
            str(panel.dates[idx[-1]].date()) if len(idx) else "-",
            str(len(r)),
            str(int((~m).sum())),
            f"{r.mean() * 252:.1%}" if len(r) else "-",
            f"{r.std(ddof=1) * np.sqrt(252):.1%}" if len(r) > 1 else "-",
            f"{r.min():.1%}" if len(r) else "-",
            f"{r.max():.1%}" if len(r) else "-",
        )
    return t

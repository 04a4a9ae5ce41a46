"""Plain-text summaries of panels for the terminal (rich renderables).


Tables are built with ``no_wrap`` columns so that names are never folded; print them on a
console at least as wide as :func:`required_width` (the CLI does) so that nothing is cut.
"""

from __future__ import annotations

import numpy as np
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from factorgym.data import ReturnPanel

__all__ = ["exog_summary", "panel_overview", "panel_report", "panel_summary", "required_width"]

#: Trading days per year used to annualise daily statistics.
DAYS_PER_YEAR = 252

_STAT_COLS = ("days", "missing", "ann. mean", "ann. vol", "min", "max")


def _stats(r: np.ndarray, n_missing: int) -> list[str]:
    """Formatted statistics of the available simple daily returns ``r`` of one series."""
    n = len(r)
    return [
        str(n),
        str(n_missing),
        f"{r.mean() * DAYS_PER_YEAR:.1%}" if n else "-",
        f"{r.std(ddof=1) * np.sqrt(DAYS_PER_YEAR):.1%}" if n > 1 else "-",
        f"{r.min():.1%}" if n else "-",
        f"{r.max():.1%}" if n else "-",
    ]


def _table(title: str, first_cols: list[str]) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold")
    for c in first_cols:
        t.add_column(c, justify="left", no_wrap=True)
    for c in _STAT_COLS:
        t.add_column(c, justify="right", no_wrap=True)
    return t


def panel_summary(panel: ReturnPanel) -> Table:
    """One row per asset: sector, first/last available date, days, missing days and
    annualised mean / volatility, min and max of the simple daily returns."""
    t = _table(
        f"per-asset statistics (simple daily returns; annualised with {DAYS_PER_YEAR} days)",
        ["asset", "sector", "first", "last"],
    )
    has_sector = panel.static is not None and "sector" in panel.static.columns
    for j, a in enumerate(panel.assets):
        m = panel.mask[:, j]
        idx = np.nonzero(m)[0]
        sector = str(panel.static.loc[a, "sector"]) if has_sector else ""  # type: ignore[union-attr]
        t.add_row(
            a,
            sector,
            str(panel.dates[idx[0]].date()) if len(idx) else "-",
            str(panel.dates[idx[-1]].date()) if len(idx) else "-",
            *_stats(panel.returns[m, j], int((~m).sum())),
        )
    return t


def exog_summary(panel: ReturnPanel) -> Table | None:
    """One row per exogenous series (same statistics as the assets), or None if there are none."""
    if panel.exog is None or panel.exog.shape[1] == 0:
        return None
    t = _table("exogenous series (simple daily returns)", ["series", "first", "last"])
    for c in panel.exog.columns:
        r = panel.exog[c].to_numpy(dtype=np.float64)
        t.add_row(str(c), str(panel.dates[0].date()), str(panel.dates[-1].date()), *_stats(r, 0))
    return t


def panel_overview(panel: ReturnPanel) -> Text:
    """A few lines: size, date span, missing cells, static attributes, exogenous series."""
    cells = panel.T * panel.N
    n_missing = int((~panel.mask).sum())
    years = (panel.dates[-1] - panel.dates[0]).days / 365.25
    gaps = [(a, int((~panel.mask[:, j]).sum())) for j, a in enumerate(panel.assets)]
    gaps = [(a, n) for a, n in gaps if n]
    lines = [
        f"{panel.name}: {panel.T} days x {panel.N} assets of simple daily returns",
        f"dates: {panel.dates[0].date()} .. {panel.dates[-1].date()} ({years:.1f} years)",
        f"missing: {n_missing} of {cells} cells ({n_missing / cells:.2%})"
        + (f" in {len(gaps)} asset(s): " + ", ".join(f"{a} ({n})" for a, n in gaps[:10]) if gaps else "")
        + (f" (+{len(gaps) - 10} more)" if len(gaps) > 10 else ""),
        "static attributes: "
        + (", ".join(map(str, panel.static.columns)) if panel.static is not None and len(panel.static.columns) else "none"),
        "exogenous series: "
        + (", ".join(map(str, panel.exog.columns)) if panel.exog is not None and len(panel.exog.columns) else "none"),
    ]
    return Text("\n".join(lines))


def panel_report(panel: ReturnPanel) -> Group:
    """Overview, per-asset table and (if any) exogenous-series table, in that order."""
    parts: list[RenderableType] = [panel_overview(panel), Text(""), panel_summary(panel)]
    ex = exog_summary(panel)
    if ex is not None:
        parts += [Text(""), ex]
    return Group(*parts)


def required_width(renderable: RenderableType, console: Console | None = None) -> int:
    """Columns needed to print ``renderable`` without wrapping or cutting any cell."""
    console = console or Console()
    options = console.options.update_width(100_000)
    return int(console.measure(renderable, options=options).maximum)

"""Matplotlib figures for reports: the backtest plots, bar and calibration charts.

Every figure is a plain :class:`~matplotlib.figure.Figure` on an Agg canvas made by
:func:`new_figure`; nothing here imports ``matplotlib.pyplot``, selects a backend or reads
``rcParams`` (why: see the :mod:`factorgym.report` docstring).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from factorgym.errors import DataValidationError

__all__ = [
    "PALETTE",
    "PALETTE_LIGHT",
    "PNG_SIGNATURE",
    "bar_figure",
    "calibration_figure",
    "distribution_figure",
    "equity_figure",
    "figure_to_png",
    "new_figure",
    "weights_figure",
]

#: The 8 bytes every PNG file starts with.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: Colours cycled through series (matplotlib's tab10, spelled out so no rcParams are read).
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)


def new_figure(width: float = 8.0, height: float = 4.5, *, nrows: int = 1, ncols: int = 1, **subplot_kw: Any) -> tuple[Figure, Any]:
    """A figure with an Agg canvas attached and its axes (no pyplot, no global state).

    Parameters
    ----------
    width, height : float
        Size in inches.
    nrows, ncols : int
        Subplot grid.
    **subplot_kw
        Passed to :meth:`Figure.subplots` (e.g. ``sharex=True``, ``gridspec_kw=...``).

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : Axes or ndarray of Axes
        As returned by :meth:`Figure.subplots`.
    """
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, **subplot_kw)
    return fig, axes


def figure_to_png(fig: Figure, dpi: int = 110) -> bytes:
    """Render ``fig`` to PNG bytes with the Agg canvas (the figure is left unchanged)."""
    if not isinstance(fig, Figure):
        raise DataValidationError(f"expected a matplotlib.figure.Figure, got {type(fig).__name__}")
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


#: Lighter companions of :data:`PALETTE` (tab20's), used after the first ten series.
PALETTE_LIGHT: tuple[str, ...] = (
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)


def _color(i: int) -> str:
    pal = PALETTE + PALETTE_LIGHT
    return pal[i % len(pal)]


def _frame(data: pd.DataFrame | pd.Series, what: str) -> pd.DataFrame:
    df = data.to_frame() if isinstance(data, pd.Series) else data
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise DataValidationError(f"{what} needs a non-empty DataFrame")
    return df


def equity_figure(
    wealth: pd.DataFrame,
    *,
    benchmark: str | Sequence[str] | None = None,
    title: str | None = "Wealth and drawdown",
    log_scale: bool = True,
    width: float = 9.0,
    height: float = 6.0,
) -> Figure:
    """Equity curves (top) and drawdowns (bottom) of several strategies on one path.

    Parameters
    ----------
    wealth : DataFrame of shape (T, K)
        Wealth of each strategy (columns), indexed by date, starting at 1 (include the
        start date with value 1 so the curves start together).
    benchmark : str or sequence of str, optional
        Column(s) drawn as dashed black/grey lines (e.g. the market index).
    title : str, optional
    log_scale : bool
        Log scale for wealth (equal vertical distances = equal returns).
    width, height : float
        Inches.

    Returns
    -------
    matplotlib.figure.Figure
    """
    df = _frame(wealth, "equity_figure").astype(np.float64)
    bench = [benchmark] if isinstance(benchmark, str) else list(benchmark or [])
    unknown = [b for b in bench if b not in df.columns]
    if unknown:
        raise DataValidationError(f"benchmark columns {unknown} are not in the wealth table")
    fig, (ax_w, ax_d) = new_figure(width, height, nrows=2, sharex=True, gridspec_kw={"height_ratios": [2.2, 1.0]})
    x = df.index
    k = 0
    for col in df.columns:
        w = df[col].to_numpy()
        peak = np.maximum.accumulate(np.where(np.isfinite(w), w, -np.inf))
        dd = np.where(peak > 0, w / np.where(peak > 0, peak, 1.0) - 1.0, np.nan)
        if col in bench:
            style: dict[str, Any] = {"color": "black" if bench.index(col) == 0 else "#555555", "linestyle": "--", "linewidth": 1.4}
        else:
            style = {"color": _color(k), "linewidth": 1.3}
            k += 1
        ax_w.plot(x, w, label=str(col), **style)
        ax_d.plot(x, 100.0 * dd, **style)
    values = df.to_numpy()
    finite = values[np.isfinite(values)]
    if log_scale and finite.size and bool((finite > 0).all()):
        ax_w.set_yscale("log")
        if finite.max() / finite.min() < 20.0:
            # a narrow log range: plain tick labels (1.1, not 1.1 x 10^0)
            ax_w.yaxis.set_major_locator(ticker.MaxNLocator(7))
            ax_w.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax_w.yaxis.set_minor_locator(ticker.NullLocator())
    ax_w.axhline(1.0, color="#999999", linewidth=0.8, zorder=0)
    ax_w.set_ylabel("wealth (start = 1)")
    ax_d.set_ylabel("drawdown (%)")
    ax_d.axhline(0.0, color="#999999", linewidth=0.8, zorder=0)
    ax_w.grid(True, alpha=0.3)
    ax_d.grid(True, alpha=0.3)
    ax_w.legend(loc="upper left", fontsize=8, ncols=2 if df.shape[1] > 6 else 1, frameon=False)
    if title:
        ax_w.set_title(title)
    return fig


def weights_figure(
    weights: pd.DataFrame,
    *,
    title: str | None = None,
    max_series: int = 12,
    cash_column: str = "cash",
    width: float = 9.0,
    height: float = 4.0,
) -> Figure:
    """Portfolio weights over time: a stacked area for long-only books, lines otherwise.

    Parameters
    ----------
    weights : DataFrame of shape (T, N + 1)
        Weights per date (rows sum to 1 with the cash column). Assets beyond the
        ``max_series - 1`` largest by mean absolute weight are summed into ``"other"``.
    title : str, optional
    max_series : int
        Most series drawn (cash included).
    cash_column : str
        Name of the cash column (drawn last, in grey), if present.
    width, height : float

    Returns
    -------
    matplotlib.figure.Figure
    """
    df = _frame(weights, "weights_figure").astype(np.float64)
    cash = df[cash_column] if cash_column in df.columns else None
    assets = df.drop(columns=[cash_column]) if cash is not None else df
    keep = max(1, int(max_series) - (1 if cash is not None else 0) - 1)
    if assets.shape[1] > keep + 1:
        order = assets.abs().mean().sort_values(ascending=False).index
        assets = pd.concat([assets[order[:keep]], assets[order[keep:]].sum(axis=1).rename("other")], axis=1)
    fig, ax = new_figure(width, height)
    cols = list(assets.columns)
    colors = ["#8c8c8c" if c == "other" else _color(i) for i, c in enumerate(cols)]
    x = df.index
    long_only = bool((assets.to_numpy() >= -1e-9).all()) and (cash is None or bool((cash.to_numpy() >= -1e-6).all()))
    if long_only:
        ys = [assets[c].clip(lower=0.0).to_numpy() for c in cols]
        labels = [str(c) for c in cols]
        if cash is not None:
            ys.append(cash.clip(lower=0.0).to_numpy())
            labels.append(cash_column)
            colors.append("#d9d9d9")
        ax.stackplot(x, *ys, labels=labels, colors=colors, linewidth=0.0)
        ax.set_ylim(0.0, max(1.0, float(np.sum(ys, axis=0).max())))
    else:
        for c, col in zip(cols, colors, strict=True):
            ax.plot(x, assets[c].to_numpy(), label=str(c), color=col, linewidth=1.0)
        if cash is not None:
            ax.plot(x, cash.to_numpy(), label=cash_column, color="#777777", linestyle=":", linewidth=1.0)
        ax.axhline(0.0, color="#999999", linewidth=0.8)
    ax.set_ylabel("weight")
    ax.margins(x=0)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    return fig


def distribution_figure(
    samples: Mapping[str, Sequence[float] | np.ndarray],
    *,
    real: Mapping[str, float] | None = None,
    title: str | None = None,
    xlabel: str = "",
    reference: float | None = None,
    whis: tuple[float, float] = (5.0, 95.0),
    width: float = 8.0,
) -> Figure:
    """Horizontal box plots of a metric over simulated paths, one row per strategy.

    Boxes span the quartiles, whiskers the ``whis`` percentiles (5-95 by default, the
    bands of the backtest tables); the realised value of each strategy on the real path is
    marked with a red diamond.

    Parameters
    ----------
    samples : mapping of str to array of shape (M,)
        Values per strategy (non-finite values are dropped).
    real : mapping of str to float, optional
        Value of each strategy on the real path.
    title : str, optional
    xlabel : str
    reference : float, optional
        A vertical reference line (e.g. 1.0 for terminal wealth, 0.0 for Sharpe).
    whis : (float, float)
        Whisker percentiles.
    width : float

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not samples:
        raise DataValidationError("distribution_figure needs at least one series")
    names = list(samples)
    data = []
    for n in names:
        a = np.asarray(samples[n], dtype=np.float64).ravel()
        a = a[np.isfinite(a)]
        data.append(a if a.size else np.array([np.nan]))
    fig, ax = new_figure(width, 1.0 + 0.45 * len(names))
    pos = np.arange(len(names), 0, -1, dtype=np.float64)
    lo_p, hi_p = float(whis[0]), float(whis[1])
    for p, a in zip(pos, data, strict=True):
        if not np.isfinite(a).any():
            continue
        # drawn by hand: Axes.boxplot reads every rcParam, which makes matplotlib import
        # pyplot to resolve the backend (global state this module never touches)
        w_lo, q1, med, q3, w_hi = np.percentile(a, [lo_p, 25.0, 50.0, 75.0, hi_p])
        ax.barh(p, q3 - q1, left=q1, height=0.6, color="#dbe9f6", edgecolor="#1f77b4", linewidth=1.0, zorder=2)
        ax.vlines(med, p - 0.3, p + 0.3, color="#1f77b4", linewidth=2.0, zorder=3)
        ax.hlines([p, p], [w_lo, q3], [q1, w_hi], color="#1f77b4", linewidth=1.0, zorder=1)
        ax.vlines([w_lo, w_hi], p - 0.15, p + 0.15, color="#1f77b4", linewidth=1.0, zorder=1)
        out = a[(a < w_lo) | (a > w_hi)]
        if out.size:
            ax.scatter(out, np.full(out.size, p), marker=".", s=10, color="#888888", zorder=2)
    ax.set_ylim(0.4, len(names) + 0.6)
    ax.set_yticks(pos, [str(n) for n in names])
    if real:
        xs = [(p, float(real[n])) for p, n in zip(pos, names, strict=True) if n in real and np.isfinite(real[n])]
        if xs:
            ax.scatter([v for _, v in xs], [p for p, _ in xs], marker="D", color="#d62728", s=36, zorder=5, label="real path")
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    if reference is not None:
        ax.axvline(float(reference), color="#999999", linewidth=0.8, zorder=0)
    ax.set_xlabel(xlabel)
    ax.grid(True, axis="x", alpha=0.3)
    if title:
        ax.set_title(title)
    return fig


def bar_figure(
    values: pd.Series | pd.DataFrame,
    *,
    title: str | None = None,
    ylabel: str = "",
    horizontal: bool = False,
    width: float = 8.0,
    height: float = 4.0,
) -> Figure:
    """Grouped bars: one group per index entry, one bar per column (e.g. NLL per model).

    Parameters
    ----------
    values : Series or DataFrame
        Bar heights; NaN bars are left out.
    title, ylabel : str
    horizontal : bool
        Horizontal bars (long labels).
    width, height : float

    Returns
    -------
    matplotlib.figure.Figure
    """
    df = _frame(values, "bar_figure").astype(np.float64)
    fig, ax = new_figure(width, height)
    n_groups, n_cols = df.shape
    step = 0.8 / n_cols
    pos = np.arange(n_groups, dtype=np.float64)
    for j, col in enumerate(df.columns):
        off = pos - 0.4 + step * (j + 0.5)
        v = df[col].to_numpy()
        lab = str(col) if n_cols > 1 else None
        if horizontal:
            ax.barh(off, v, height=step, color=_color(j), label=lab)
        else:
            ax.bar(off, v, width=step, color=_color(j), label=lab)
    labels = [str(i) for i in df.index]
    if horizontal:
        ax.set_yticks(pos, labels)
        ax.invert_yaxis()
        ax.set_xlabel(ylabel)
        ax.grid(True, axis="x", alpha=0.3)
    else:
        ax.set_xticks(pos, labels, rotation=30 if max(map(len, labels), default=0) > 8 else 0, ha="right" if max(map(len, labels), default=0) > 8 else "center")
        ax.set_ylabel(ylabel)
        ax.grid(True, axis="y", alpha=0.3)
    if n_cols > 1:
        ax.legend(fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    return fig


def calibration_figure(
    levels: Sequence[float] | np.ndarray,
    curves: Mapping[str, Sequence[float] | np.ndarray],
    *,
    title: str | None = "Calibration",
    width: float = 5.5,
    height: float = 5.0,
) -> Figure:
    """Observed frequency against nominal probability level, with the diagonal.

    Parameters
    ----------
    levels : array of shape (L,)
        Nominal levels in (0, 1) (e.g. :func:`factorgym.metrics.calibration_levels`).
    curves : mapping of str to array of shape (L,)
        Observed frequencies per model (e.g. :func:`factorgym.metrics.calibration_curve`).
    title : str, optional
    width, height : float

    Returns
    -------
    matplotlib.figure.Figure
    """
    lv = np.asarray(levels, dtype=np.float64)
    fig, ax = new_figure(width, height)
    ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1.0, label="perfect")
    for i, (name, c) in enumerate(curves.items()):
        y = np.asarray(c, dtype=np.float64)
        if y.shape != lv.shape:
            raise DataValidationError(f"calibration curve {name!r} has shape {y.shape}, levels have {lv.shape}")
        ax.plot(lv, y, color=_color(i), linewidth=1.4, label=str(name))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal level")
    ax.set_ylabel("observed frequency")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    return fig

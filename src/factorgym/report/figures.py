"""Interactive plotly figures for reports: the backtest plots, dot, bar and calibration charts.

Every helper returns a :class:`plotly.graph_objects.Figure` (zoom, hover values, series
toggled from the legend); :class:`factorgym.report.Report` embeds it in the page, with
plotly.js written once into the file, so the report opens offline.

Axes are chosen so that the differences that matter are visible: wealth on a log scale,
drawdowns in percent, and :func:`dot_figure` (used for scores such as the NLL) zooms its
axis onto the values instead of starting at zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from factorgym.errors import DataValidationError

__all__ = [
    "PALETTE",
    "PALETTE_LIGHT",
    "bar_figure",
    "calibration_figure",
    "distribution_figure",
    "dot_figure",
    "equity_figure",
    "new_figure",
    "weights_figure",
]

#: Colours cycled through series (tab10, spelled out).
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)

#: Lighter companions of :data:`PALETTE` (tab20's), used after the first ten series.
PALETTE_LIGHT: tuple[str, ...] = (
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)


def _color(i: int) -> str:
    pal = PALETTE + PALETTE_LIGHT
    return pal[i % len(pal)]


def new_figure(title: str | None = None, *, height: int = 420, rows: int = 1, row_heights: Sequence[float] | None = None) -> go.Figure:
    """An empty figure in the reports' style (white template, compact margins, legend on the right).

    Parameters
    ----------
    title : str, optional
    height : int
        Pixels; the width follows the page.
    rows : int
        Vertically stacked subplots sharing the x axis.
    row_heights : sequence of float, optional
        Relative heights of the rows.
    """
    if rows > 1:
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.06, row_heights=list(row_heights) if row_heights else None)
    else:
        fig = go.Figure()
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 15}} if title else None,
        height=int(height),
        margin={"l": 60, "r": 20, "t": 50 if title else 20, "b": 45},
        hovermode="closest",
        legend={"font": {"size": 11}},
        font={"family": "-apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif", "size": 12},
    )
    return fig


def _frame(data: pd.DataFrame | pd.Series, what: str) -> pd.DataFrame:
    df = data.to_frame() if isinstance(data, pd.Series) else data
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise DataValidationError(f"{what} needs a non-empty DataFrame")
    return df


def _finite(a: np.ndarray) -> list[float | None]:
    """Values for plotly (non-finite as gaps)."""
    return [float(v) if np.isfinite(v) else None for v in np.asarray(a, dtype=np.float64)]


def equity_figure(
    wealth: pd.DataFrame,
    *,
    benchmark: str | Sequence[str] | None = None,
    title: str | None = "Wealth and drawdown",
    log_scale: bool = True,
    height: int = 560,
) -> go.Figure:
    """Equity curves (top) and drawdowns in percent (bottom) of several strategies on one path.

    Parameters
    ----------
    wealth : DataFrame of shape (T, K)
        Wealth of each strategy (columns), indexed by date, starting at 1.
    benchmark : str or sequence of str, optional
        Column(s) drawn as dashed black/grey lines (e.g. the market index).
    title : str, optional
    log_scale : bool
        Log scale for wealth (equal vertical distances = equal returns) when all values are positive.
    height : int
        Pixels.
    """
    df = _frame(wealth, "equity_figure").astype(np.float64)
    bench = [benchmark] if isinstance(benchmark, str) else list(benchmark or [])
    unknown = [b for b in bench if b not in df.columns]
    if unknown:
        raise DataValidationError(f"benchmark columns {unknown} are not in the wealth table")
    fig = new_figure(title, height=height, rows=2, row_heights=(0.68, 0.32))
    x = [str(pd.Timestamp(d).date()) if isinstance(d, pd.Timestamp | np.datetime64) else d for d in df.index]
    k = 0
    for col in df.columns:
        w = df[col].to_numpy()
        peak = np.maximum.accumulate(np.where(np.isfinite(w), w, -np.inf))
        dd = np.where(peak > 0, w / np.where(peak > 0, peak, 1.0) - 1.0, np.nan)
        if col in bench:
            line: dict[str, Any] = {"color": "black" if bench.index(col) == 0 else "#555555", "dash": "dash", "width": 1.6}
        else:
            line = {"color": _color(k), "width": 1.4}
            k += 1
        name = str(col)
        fig.add_trace(
            go.Scatter(x=x, y=_finite(w), name=name, legendgroup=name, line=line, mode="lines",
                       hovertemplate="%{x}<br>" + name + ": %{y:.3f}<extra></extra>"),
            row=1, col=1,
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(x=x, y=_finite(dd), name=name, legendgroup=name, showlegend=False, line=line, mode="lines",
                       hovertemplate="%{x}<br>" + name + ": %{y:.1%}<extra></extra>"),
            row=2, col=1,
        )  # fmt: skip
    finite = df.to_numpy()[np.isfinite(df.to_numpy())]
    if log_scale and finite.size and bool((finite > 0).all()):
        fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(title_text="wealth (start = 1)", row=1, col=1)
    fig.update_yaxes(title_text="drawdown", tickformat=".0%", row=2, col=1)
    fig.update_layout(hovermode="x unified")
    return fig


def weights_figure(
    weights: pd.DataFrame,
    *,
    title: str | None = None,
    max_series: int = 12,
    cash_column: str = "cash",
    height: int = 380,
) -> go.Figure:
    """Portfolio weights over time: stacked areas for long-only books, lines otherwise.

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
    height : int
    """
    df = _frame(weights, "weights_figure").astype(np.float64)
    cash = df[cash_column] if cash_column in df.columns else None
    assets = df.drop(columns=[cash_column]) if cash is not None else df
    keep = max(1, int(max_series) - (1 if cash is not None else 0) - 1)
    if assets.shape[1] > keep + 1:
        order = assets.abs().mean().sort_values(ascending=False).index
        assets = pd.concat([assets[order[:keep]], assets[order[keep:]].sum(axis=1).rename("other")], axis=1)
    fig = new_figure(title, height=height)
    x = [str(pd.Timestamp(d).date()) for d in df.index] if isinstance(df.index, pd.DatetimeIndex) else list(df.index)
    cols = list(assets.columns)
    colors = ["#8c8c8c" if c == "other" else _color(i) for i, c in enumerate(cols)]
    long_only = bool((assets.to_numpy() >= -1e-9).all()) and (cash is None or bool((cash.to_numpy() >= -1e-6).all()))
    series = [(str(c), assets[c].to_numpy(), col) for c, col in zip(cols, colors, strict=True)]
    if cash is not None:
        series.append((cash_column, cash.to_numpy(), "#d9d9d9"))
    for name, y, color in series:
        if long_only:
            fig.add_trace(go.Scatter(x=x, y=_finite(np.clip(y, 0.0, None)), name=name, stackgroup="w", mode="lines",
                                     line={"width": 0.5, "color": color}, fillcolor=color,
                                     hovertemplate=name + ": %{y:.1%}<extra></extra>"))  # fmt: skip
        else:
            fig.add_trace(go.Scatter(x=x, y=_finite(y), name=name, mode="lines", line={"width": 1.2, "color": color},
                                     hovertemplate=name + ": %{y:.1%}<extra></extra>"))  # fmt: skip
    fig.update_yaxes(title_text="weight", tickformat=".0%", range=[0.0, 1.0] if long_only else None)
    fig.update_layout(hovermode="x unified")
    return fig


def distribution_figure(
    samples: Mapping[str, Sequence[float] | np.ndarray],
    *,
    real: Mapping[str, float] | None = None,
    title: str | None = None,
    xlabel: str = "",
    reference: float | None = None,
    whis: tuple[float, float] = (5.0, 95.0),
    tickformat: str | None = None,
) -> go.Figure:
    """Horizontal box plots of a metric over simulated paths, one row per strategy.

    Boxes span the quartiles, whiskers the ``whis`` percentiles (5-95 by default, the bands
    of the backtest tables); the realised value on the real path is a red diamond.

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
    tickformat : str, optional
        d3 format of the value axis (e.g. ``".0%"``).
    """
    if not samples:
        raise DataValidationError("distribution_figure needs at least one series")
    names = [str(n) for n in samples]
    fig = new_figure(title, height=int(110 + 42 * len(names)))
    lo_p, hi_p = float(whis[0]), float(whis[1])
    for i, (n, vals) in enumerate(samples.items()):
        a = np.asarray(vals, dtype=np.float64).ravel()
        a = a[np.isfinite(a)]
        if not a.size:
            continue
        w_lo, q1, med, q3, w_hi = np.percentile(a, [lo_p, 25.0, 50.0, 75.0, hi_p])
        fig.add_trace(go.Box(
            y=[str(n)], q1=[q1], median=[med], q3=[q3], lowerfence=[w_lo], upperfence=[w_hi], orientation="h",
            name=str(n), marker_color=_color(i), showlegend=False, boxpoints=False,
            hoverinfo="x+name",
        ))  # fmt: skip
    if real:
        pts = [(str(n), float(real[n])) for n in samples if n in real and np.isfinite(real[n])]
        if pts:
            fig.add_trace(go.Scatter(
                x=[v for _, v in pts], y=[n for n, _ in pts], mode="markers", name="real path",
                marker={"symbol": "diamond", "size": 10, "color": "#d62728"},
                hovertemplate="%{y}: real path %{x:.3g}<extra></extra>",
            ))  # fmt: skip
    if reference is not None:
        fig.add_vline(x=float(reference), line={"color": "#999999", "width": 1})
    fig.update_xaxes(title_text=xlabel, tickformat=tickformat)
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(names)), type="category")
    return fig


def bar_figure(
    values: pd.Series | pd.DataFrame,
    *,
    title: str | None = None,
    ylabel: str = "",
    horizontal: bool = False,
    tickformat: str | None = None,
    height: int = 380,
) -> go.Figure:
    """Grouped bars starting at zero: one group per index entry, one bar per column.

    Use it for quantities whose size from zero matters (losses, costs); for scores compared
    by their differences use :func:`dot_figure`.

    Parameters
    ----------
    values : Series or DataFrame
        Bar heights; NaN bars are left out.
    title, ylabel : str
    horizontal : bool
        Horizontal bars (long labels).
    tickformat : str, optional
        d3 format of the value axis (e.g. ``".0%"``).
    height : int
    """
    df = _frame(values, "bar_figure").astype(np.float64)
    fig = new_figure(title, height=height)
    labels = [str(i) for i in df.index]
    for j, col in enumerate(df.columns):
        v = _finite(df[col].to_numpy())
        kw: dict[str, Any] = {"x": v, "y": labels, "orientation": "h"} if horizontal else {"x": labels, "y": v}
        fig.add_trace(go.Bar(name=str(col), marker_color=_color(j), showlegend=df.shape[1] > 1, **kw))
    fig.update_layout(barmode="group")
    if horizontal:
        fig.update_xaxes(title_text=ylabel, tickformat=tickformat)
        fig.update_yaxes(autorange="reversed")
    else:
        fig.update_yaxes(title_text=ylabel, tickformat=tickformat)
    return fig


def value_range(values: np.ndarray, *, pad: float = 0.12, zero: bool | None = None) -> tuple[float, float] | None:
    """An axis range showing the spread of ``values``: from zero when the spread is large
    relative to the values (or ``zero`` is True), else zoomed onto ``[min, max]`` with ``pad``
    of the spread on each side. None when no value is finite."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    lo, hi = float(v.min()), float(v.max())
    spread = hi - lo
    scale = max(abs(lo), abs(hi))
    if zero is None:
        zero = spread >= 0.5 * scale
    if zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        return lo - pad * (hi - lo) * (lo < 0), hi + pad * (hi - lo) * (hi > 0)
    margin = pad * spread if spread > 0 else 0.05 * (scale or 1.0)
    return lo - margin, hi + margin


def dot_figure(
    values: pd.Series | pd.DataFrame,
    *,
    title: str | None = None,
    xlabel: str = "",
    errors: pd.Series | pd.DataFrame | None = None,
    tickformat: str | None = None,
    height: int | None = None,
) -> go.Figure:
    """A dot plot (one row per index entry, one marker per column) whose value axis zooms onto
    the values, so that small differences between large numbers (an NLL of 0.85 against
    0.95) are visible; the axis starts at zero only when the spread is large.

    Parameters
    ----------
    values : Series or DataFrame
    title, xlabel : str
    errors : Series or DataFrame, optional
        Half-widths of error bars, same shape as ``values``.
    tickformat : str, optional
    height : int, optional
    """
    df = _frame(values, "dot_figure").astype(np.float64)
    err = None if errors is None else _frame(errors, "dot_figure errors").astype(np.float64).reindex_like(df)
    labels = [str(i) for i in df.index]
    fig = new_figure(title, height=height or int(120 + 40 * len(labels)))
    for j, col in enumerate(df.columns):
        e = None if err is None else {"type": "data", "array": _finite(err[col].to_numpy()), "visible": True}
        fig.add_trace(go.Scatter(
            x=_finite(df[col].to_numpy()), y=labels, mode="markers", name=str(col), error_x=e,
            marker={"size": 12, "color": _color(j), "symbol": ("circle", "diamond", "square", "triangle-up")[j % 4]},
            hovertemplate="%{y}: %{x:.4g}<extra>" + str(col) + "</extra>", showlegend=df.shape[1] > 1,
        ))  # fmt: skip
    # zero or zoom is decided on the values; the range then covers the error bars too
    rng = value_range(df.to_numpy())
    if rng is not None and err is not None:
        v, e = df.to_numpy(), np.nan_to_num(err.to_numpy())
        ok = np.isfinite(v)
        pad = 0.05 * (rng[1] - rng[0])
        rng = (min(rng[0], float(np.min((v - e)[ok])) - pad), max(rng[1], float(np.max((v + e)[ok])) + pad))
    fig.update_xaxes(title_text=xlabel, tickformat=tickformat, range=list(rng) if rng else None, zeroline=False)
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(labels)), type="category")
    return fig


def calibration_figure(
    levels: Sequence[float] | np.ndarray,
    curves: Mapping[str, Sequence[float] | np.ndarray],
    *,
    title: str | None = "Calibration",
    height: int = 420,
) -> go.Figure:
    """Observed frequency against nominal probability level, with the diagonal.

    Parameters
    ----------
    levels : array of shape (L,)
        Nominal levels in (0, 1) (e.g. :func:`factorgym.metrics.calibration_levels`).
    curves : mapping of str to array of shape (L,)
        Observed frequencies per model (e.g. :func:`factorgym.metrics.calibration_curve`).
    title : str, optional
    height : int
    """
    lv = np.asarray(levels, dtype=np.float64)
    fig = new_figure(title, height=height)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"color": "#999999", "dash": "dash", "width": 1}))
    for i, (name, c) in enumerate(curves.items()):
        y = np.asarray(c, dtype=np.float64)
        if y.shape != lv.shape:
            raise DataValidationError(f"calibration curve {name!r} has shape {y.shape}, levels have {lv.shape}")
        fig.add_trace(go.Scatter(x=lv.tolist(), y=_finite(y), mode="lines", name=str(name), line={"color": _color(i), "width": 1.6},
                                 hovertemplate="level %{x:.2f}: observed %{y:.3f}<extra>" + str(name) + "</extra>"))  # fmt: skip
    fig.update_xaxes(title_text="nominal level", range=[0, 1])
    fig.update_yaxes(title_text="observed frequency", range=[0, 1])
    return fig

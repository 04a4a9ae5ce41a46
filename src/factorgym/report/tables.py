"""Tables for reports: cells as display text (:func:`format_table`), as HTML (:func:`table_html`)
and as markdown (:func:`to_markdown`), and the human names and formats of the library's code
column names (:func:`column_spec`, :func:`humanize`).

Format specs are Python ``format`` specs (``".1%"``, ``".2f"``, ``",.0f"``) plus ``"bps"``
(the value times 10,000 with one decimal and `` bps``) and ``"yesno"``.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from factorgym.errors import DataValidationError

__all__ = [
    "COLUMNS",
    "Column",
    "column_spec",
    "format_cell",
    "humanize",
    "format_table",
    "markdown_cell",
    "settings_table",
    "table_html",
    "to_markdown",
]

def format_cell(v: Any, spec: str) -> str:
    """One value as display text: ``spec`` for numbers (``"bps"``: times 10,000 with `` bps``;
    ``"yesno"``: non-zero as ``yes``), ``N/A`` for None/NaN/NaT, ``inf``/``-inf``, dates as
    ``YYYY-MM-DD`` when whole days. Integers keep their digits unless ``spec`` scales them
    (percent, bps)."""
    if v is None:
        return "N/A"
    if isinstance(v, bool | np.bool_):
        return "yes" if (spec == "yesno" and bool(v)) else ("no" if spec == "yesno" else str(bool(v)))
    if isinstance(v, int | np.integer) and not (spec.endswith("%") or spec == "bps"):
        return f"{int(v):,}" if spec.startswith(",") else str(int(v))
    if isinstance(v, float | np.floating | int | np.integer):
        f = float(v)
        if math.isnan(f):
            return "N/A"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        if spec == "bps":
            return f"{f * 1e4:,.1f} bps"
        if spec == "yesno":
            return "yes" if f else "no"
        out = format(f, spec)
        return "0" + out[2:] if out.startswith("-0") and not any(c in out[2:] for c in "123456789") else out
    if isinstance(v, pd.Timestamp | _dt.date):
        return str(v.date()) if isinstance(v, pd.Timestamp) and v == v.normalize() else str(v)
    if v is pd.NaT:
        return "N/A"
    return str(v)


def format_table(df: pd.DataFrame, floatfmt: str = ".4g", formats: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``df`` with every cell as display text (NaN -> ``N/A``; per-column format specs).

    Parameters
    ----------
    df : DataFrame
    floatfmt : str
        Default ``format`` spec of floats.
    formats : mapping of column to format spec, optional
        E.g. ``{"Ann. return": ".2%", "Sharpe": ".2f"}``.

    Returns
    -------
    DataFrame of str
    """
    formats = dict(formats or {})
    unknown = [c for c in formats if c not in df.columns]
    if unknown:
        raise DataValidationError(f"formats given for unknown columns {unknown}")
    out = pd.DataFrame(index=[format_cell(i, floatfmt) for i in df.index], columns=[str(c) for c in df.columns], dtype=object)
    for c, sc in zip(df.columns, out.columns, strict=True):
        spec = formats.get(c, floatfmt)
        out[sc] = [format_cell(v, spec) for v in df[c].tolist()]
    out.index.name = df.index.name
    return out


def table_html(
    frame: pd.DataFrame,
    caption: str | None = None,
    *,
    floatfmt: str = ".4g",
    formats: Mapping[str, str] | None = None,
    index: bool = True,
) -> str:
    """An HTML ``<table>`` (in a scrolling ``div.tablewrap``) of ``frame``, every cell escaped.

    Parameters
    ----------
    frame : DataFrame
    caption : str, optional
    floatfmt, formats
        As in :func:`format_table`.
    index : bool
        Show the index as the first column (header cells of class ``idx``).

    Returns
    -------
    str
        Numeric, non-boolean columns are right-aligned (cells of class ``num``).
    """
    text = format_table(frame, floatfmt, formats)
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) for c in frame.columns]
    # one header column per index level (a MultiIndex is not shown as tuples)
    names = [str(n or "") for n in frame.index.names]
    keys = [tuple(i) if isinstance(i, tuple) else (i,) for i in frame.index]
    head = ""
    if index:
        head += "".join(f'<th class="idx">{html.escape(n)}</th>' for n in names)
    head += "".join(f"<th>{html.escape(str(c))}</th>" for c in text.columns)
    rows = []
    for key, row in zip(keys, text.itertuples(index=False), strict=True):
        cells = "".join(f'<th class="idx">{html.escape(format_cell(k, floatfmt))}</th>' for k in key) if index else ""
        cells += "".join(
            f'<td class="num">{html.escape(v)}</td>' if num else f"<td>{html.escape(v)}</td>"
            for v, num in zip(row, numeric, strict=True)
        )
        rows.append(f"<tr>{cells}</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    body = "\n".join(rows)
    return f'<div class="tablewrap"><table>{cap}<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>'


def markdown_cell(v: Any, floatfmt: str = ".4g") -> str:
    """:func:`format_cell` for a markdown table: ``|`` escaped and line breaks removed."""
    return format_cell(v, floatfmt).replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub-flavoured markdown table of ``df`` (index as first column; NaN as ``N/A``).

    Parameters
    ----------
    df : pandas.DataFrame
    floatfmt : str
        Format spec for floats (``format(x, floatfmt)``).

    Returns
    -------
    str
        Ends with a newline.
    """
    header = [str(df.index.name or "")] + [str(c) for c in df.columns]
    rows = [[markdown_cell(idx, floatfmt)] + [markdown_cell(v, floatfmt) for v in row] for idx, row in zip(df.index, df.itertuples(index=False), strict=True)]
    numeric = [False] + [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    widths = [max(len(h), 3, *(len(r[j]) for r in rows)) for j, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=True)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if num else (":" + "-" * (w + 1)) for w, num in zip(widths, numeric, strict=True)) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)]) + "\n"


# ---------------------------------------------------------------------------------------------
# human names of the library's code column names


class Column(NamedTuple):
    """How a column is shown: its label (with the unit) and its format spec."""

    label: str
    fmt: str


#: Column code names (metrics, evaluation scores, stress losses) -> label and format. Names
#: built from a metric and a suffix (``sharpe_median``, ``annualised_return_real``,
#: ``max_drawdown_p05``) are resolved by :func:`column_spec`.
COLUMNS: dict[str, Column] = {
    # performance metrics (factorgym.metrics.portfolio_metrics; rates per year where "ann.")
    "n_periods": Column("Days", ",.0f"),
    "accumulated_return": Column("Total return", ".1%"),
    "annualised_return": Column("Ann. return", ".1%"),
    "annualised_volatility": Column("Ann. volatility", ".1%"),
    "sharpe": Column("Sharpe (ann.)", ".2f"),
    "sortino": Column("Sortino (ann.)", ".2f"),
    "calmar": Column("Calmar", ".2f"),
    "max_drawdown": Column("Max drawdown", ".1%"),
    "var_95": Column("VaR 95%, 1 day (loss)", ".2%"),
    "cvar_95": Column("CVaR 95%, 1 day (loss)", ".2%"),
    "hit_rate": Column("Days up", ".0%"),
    "mean_turnover": Column("Turnover per day (Σ|Δw|)", ".1%"),
    "annualised_turnover": Column("Turnover per year (Σ|Δw|, × book)", ".2f"),
    "total_turnover": Column("Total turnover (Σ|Δw|, × book)", ".1f"),
    "total_costs": Column("Total costs (of wealth)", ".2%"),
    "annualised_costs": Column("Costs per year (of wealth)", "bps"),
    "terminal_wealth": Column("Terminal wealth (start = 1)", ".3f"),
    "terminal_wealth_cvar_95": Column("CVaR 95% of terminal wealth (mean loss, worst 5%)", ".1%"),
    "p_underperform_ew": Column("P(ends below 1/N)", ".0%"),
    "n_paths": Column("Paths", ",.0f"),
    "n_ruined": Column("Ruined paths", ",.0f"),
    "n_solves": Column("Optimizer solves", ",.0f"),
    "n_fallbacks": Column("Solver fallbacks", ",.0f"),
    "n_holds": Column("Held (no solve)", ",.0f"),
    "sharpe_minus_ew": Column("Sharpe − 1/N", ".2f"),
    "sharpe_in_band": Column("Real Sharpe inside synthetic band", "yesno"),
    "trained_on": Column("Trained in", "s"),
    "days": Column("Days", ",.0f"),
    "episode_seed": Column("Episode seed", "d"),
    "ruined": Column("Ruined", "yesno"),
    # stress losses (factorgym.generators.stress.loss_summary; losses are positive)
    "mean_return": Column("Mean return", ".2%"),
    "worst": Column("Worst loss", ".1%"),
    "n": Column("Scenarios", ",.0f"),
    "VaR95": Column("VaR 95% (loss)", ".1%"),
    "ES95": Column("ES 95% (loss)", ".1%"),
    "VaR99": Column("VaR 99% (loss)", ".1%"),
    "ES99": Column("ES 99% (loss)", ".1%"),
    # crisis comparison (factorgym.generators.stress.realised_comparison)
    "realised_return": Column("Realised return (1/N)", ".1%"),
    "realised_max_drawdown": Column("Realised max drawdown (1/N)", ".1%"),
    "prob_return_at_most_realised": Column("P(simulated return ≤ realised)", ".1%"),
    "prob_drawdown_at_least_realised": Column("P(simulated drawdown ≥ realised)", ".1%"),
    "sim_median_return": Column("Simulated return, median", ".1%"),
    "sim_5pct_return": Column("Simulated return, 5th percentile", ".1%"),
    "sim_median_max_drawdown": Column("Simulated max drawdown, median", ".1%"),
    "sim_95pct_max_drawdown": Column("Simulated max drawdown, 95th percentile", ".1%"),
    # generator evaluation (factorgym.generators.evaluation.reports_table)
    "NLL ind": Column("NLL, independent (nats/asset/day)", ".3f"),
    "NLL joint": Column("NLL, joint (nats/asset/day)", ".3f"),
    "Cov MSE": Column("Covariance MSE", ".3g"),
    "Cov MSE (outer)": Column("Covariance MSE vs r rᵀ", ".3g"),
    "Box's M": Column("Box's M", ",.0f"),
    "Box div.": Column("Box's M / days", ".1f"),
    "Cal. Uni.": Column("Calibration error, per stock", ".3f"),
    "Cal. Port.": Column("Calibration error, 1/N portfolio", ".3f"),
    "VaR95 rate": Column("VaR 95% exceedances", ".1%"),
    "VaR99 rate": Column("VaR 99% exceedances", ".1%"),
    "Kupiec95 p": Column("Kupiec p (95%)", ".2f"),
    "Ind95 p": Column("Independence p (95%)", ".2f"),
    "CC95 p": Column("Cond. coverage p (95%)", ".2f"),
    "Kupiec99 p": Column("Kupiec p (99%)", ".2f"),
    "Ind99 p": Column("Independence p (99%)", ".2f"),
    "CC99 p": Column("Cond. coverage p (99%)", ".2f"),
    "CRPS": Column("CRPS (scaled)", ".3f"),
    "Energy": Column("Energy score (scaled)", ".3f"),
    "SF kurt.": Column("Stylized facts: kurtosis gap", ".2f"),
    "SF ACF": Column("SF: return ACF gap", ".3f"),
    "SF |r| ACF": Column("SF: |return| ACF gap", ".3f"),
    "SF lev.": Column("SF: leverage gap", ".3f"),
    "SF corr.": Column("SF: correlation gap", ".2f"),
    "seconds": Column("Seconds", ",.1f"),
    # inference on the real path (factorgym.app.backtest.INFERENCE_COLUMNS)
    "sharpe_minus_ew_hac_se": Column("s.e. of Sharpe − 1/N (HAC)", ".2f"),
    "sharpe_minus_ew_hac_pvalue": Column("p-value: same Sharpe as 1/N (HAC)", ".3f"),
    "sharpe_minus_ew_boot_se": Column("s.e. of Sharpe − 1/N (bootstrap)", ".2f"),
    "psr": Column("P(true Sharpe > 0) (PSR)", ".1%"),
    "deflated_sharpe": Column("Deflated Sharpe (prob.)", ".1%"),
    "deflated_sharpe_threshold": Column("Luck bar: best Sharpe of n_trials", ".2f"),
    "n_trials": Column("Trials counted", ",.0f"),
    "mcs_pvalue": Column("MCS p-value", ".3f"),
    "in_mcs_90": Column("In 90% MCS", "yesno"),
    "spa_pvalue": Column("SPA p-value: any agent beats 1/N", ".3f"),
    "beats_ew_stepm_90": Column("Beats 1/N (StepM 10%)", "yesno"),
    # cost sensitivity (factorgym.app.backtest.COST_COLUMNS)
    "break_even_multiplier": Column("Break-even cost (× cost model)", ".2f"),
    "break_even_cost_bps": Column("Break-even cost (bps)", ".1f"),
    "NLL ind s.e.": Column("NLL, independent: s.e. (HAC)", ".3f"),
    "NLL joint s.e.": Column("NLL, joint: s.e. (HAC)", ".3f"),
}

#: Suffixes of derived column names: (label pattern, format or None for the metric's own).
_SUFFIXES: tuple[tuple[str, str, str | None], ...] = (
    ("_synthetic_median", "{} — synthetic median", None),
    ("_ci_lower", "{} — CI low", None),
    ("_ci_upper", "{} — CI high", None),
    ("_percentile", "{} — percentile of real among synthetic", ".0%"),
    ("_median", "{} — median", None),
    ("_mean", "{} — mean", None),
    ("_real", "{} — real path", None),
    ("_gap", "{} — gap (real − synthetic)", None),
    ("_p05", "{} — 5th pct", None),
    ("_p95", "{} — 95th pct", None),
)


def column_spec(name: str, default: str = ".4g") -> Column:
    """The label and format of a code column name (``sharpe_synthetic_median`` ->
    ``Sharpe (ann.) — synthetic median``, ``.2f``); unknown names keep their text and
    ``default``."""
    key = str(name)
    if key in COLUMNS:
        return COLUMNS[key]
    cost = re.fullmatch(r"(sharpe|annualised_return)_cost_([0-9.]+)x", key)
    if cost:
        base = COLUMNS[cost.group(1)]
        return Column(f"{base.label} at {cost.group(2)}× costs", base.fmt)
    for suffix, pattern, fmt in _SUFFIXES:
        if key.endswith(suffix) and key[: -len(suffix)] in COLUMNS:
            base = COLUMNS[key[: -len(suffix)]]
            return Column(pattern.format(base.label), fmt or base.fmt)
    return Column(key, default)


def humanize(df: pd.DataFrame, *, default: str = ".4g", labels: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """``df`` with human column labels, and the format spec of each column.

    Parameters
    ----------
    df : DataFrame
        Columns named with code names (:data:`COLUMNS` and their suffixed forms).
    default : str
        Format of columns not in the catalogue.
    labels : mapping, optional
        Labels overriding the catalogue's (code name -> label).

    Returns
    -------
    (DataFrame, dict of str to str)
        The renamed frame (same values) and ``{label: format spec}`` for :func:`format_table`.
    """
    labels = dict(labels or {})
    names: dict[Any, str] = {}
    formats: dict[str, str] = {}
    for c in df.columns:
        spec = column_spec(str(c), default)
        label = labels.get(str(c), spec.label)
        names[c] = label
        if spec.fmt != "s":
            formats[label] = spec.fmt
    out = df.rename(columns=names)
    return out, formats


def _setting_text(v: Any) -> str:
    """A setting's value as readable text: mappings as ``key = value`` pairs, sequences joined."""
    if isinstance(v, Mapping):
        if not v:
            return "(none)"
        return "; ".join(f"{k}: {_setting_text(x)}" if isinstance(x, Mapping) else f"{k} = {_setting_text(x)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return ", ".join(_setting_text(x) for x in v) if v else "(none)"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}".replace(",", " ") if abs(v) >= 10_000 else str(v)
    if v is None:
        return "(default)"
    return str(v)


def settings_table(settings: Mapping[str, Any], descriptions: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Settings as a two-column table (``setting``, ``value``; plus ``meaning`` when
    ``descriptions`` are given), nested mappings and lists spelled out as text."""
    rows = {str(k): {"value": _setting_text(v)} for k, v in settings.items()}
    df = pd.DataFrame.from_dict(rows, orient="index", columns=["value"]) if rows else pd.DataFrame(columns=["value"])
    if descriptions:
        df["meaning"] = [str(descriptions.get(k, "")) for k in df.index]
    df.index.name = "setting"
    return df

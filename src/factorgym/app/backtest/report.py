"""How a backtest is shown: its HTML report (:func:`backtest_report`) and the console
summary of the real path (:func:`print_summary`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from factorgym.agents.baselines import BuyAndHold
from factorgym.app.backtest.tables import DIST_METRICS

if TYPE_CHECKING:
    from rich.console import Console

    from factorgym.app.backtest.result import BacktestResult
    from factorgym.report import Report

__all__ = ["backtest_report", "print_summary"]


class _Table(NamedTuple):
    """A table as the report shows it."""

    frame: pd.DataFrame
    caption: str
    #: column -> format spec
    formats: dict[str, str]


def backtest_report(res: BacktestResult, title: str | None = None, *, max_weight_plots: int = 4) -> Report:
    """An HTML :class:`~factorgym.report.Report` of a backtest: protocol, real-path table, wealth
    and weight figures, bootstrap intervals, synthetic distributions, the gap and the notes."""
    from factorgym.report import Report, distribution_figure, equity_figure, weights_figure

    cfg = res.config
    rep = Report(
        title or f"Backtest on {res.dataset}",
        subtitle=(
            f"real test path {res.first_test_date.date()} .. {res.end_date.date()} "
            f"({len(res.real[res.reference].dates)} days, first observation {res.start_date.date()}); "
            f"{len(res.synthetic)} generator(s) x {cfg.n_paths} synthetic paths"
        ),
    )
    rep.add_section("Protocol")
    rep.add_list(_protocol_lines(res))
    # ---- real path
    rep.add_section("Real held-out path")
    df, cap, fmts = _display_summary(res)
    rep.add_table(df, cap, formats=fmts)
    rep.add_figure(
        equity_figure(res.wealth_table(), benchmark=res.benchmark_label if res.benchmark is not None else None,
                      title="Real path: wealth (log scale) and drawdown"),
        "Wealth after costs and drawdown from the running peak, all agents and the index.",
    )
    if not res.bootstrap.empty:
        rep.add_section("Bootstrap confidence intervals", level=3)
        rep.add_text(
            f"Stationary bootstrap of the daily net returns ({cfg.bootstrap_reps} resamples, "
            f"{cfg.confidence:.0%} percentile intervals, mean block length shown). "
            "`Sharpe - 1/N` resamples the agent and 1/N on the same days: an interval "
            "that contains 0 means the real path cannot tell the two apart."
        )
        rep.add_table(_display_bootstrap(res), "Real-path bootstrap intervals", floatfmt=".3f")
    shown = [a for a in res.agents if a.name != res.reference and not isinstance(a.policy, BuyAndHold)][:max_weight_plots]
    if shown:
        rep.add_section("Weights over time", level=3)
        for a in shown:
            rep.add_figure(weights_figure(res.weights(a.name), title=f"{a.name}: target weights"), f"{a.name}: weights held each day (cash in grey).")
    # ---- synthetic
    for gen, runs in res.synthetic.items():
        rep.add_section(f"Synthetic paths: {gen}")
        sub = res.synthetic_summary.loc[gen]
        df, cap, fmts = _display_synthetic(res, sub, gen)
        rep.add_table(df, cap, formats=fmts)
        paths = res.synthetic_paths[res.synthetic_paths["generator"] == gen]
        for metric, label, ref in (("sharpe", "Sharpe ratio", 0.0), ("terminal_wealth", "terminal wealth", 1.0)):
            samples = {a: paths.loc[paths["agent"] == a, metric].to_numpy() for a in runs}
            real = {a: float(res.summary.loc[a, metric]) for a in runs if a in res.summary.index}
            rep.add_figure(
                distribution_figure(samples, real=real, reference=ref, xlabel=label, title=f"{gen}: {label} over {cfg.n_paths} paths"),
                f"Boxes: quartiles; whiskers: {cfg.band[0]:.0%}-{cfg.band[1]:.0%} band; red diamond: the real path.",
            )
    if not res.gap.empty:
        rep.add_section("Synthetic-to-real gap")
        rep.add_text(
            "Real value minus the median over synthetic paths, and the real value's percentile "
            "in the synthetic distribution (mid-rank; near 0% or 100% means the simulator "
            "did not cover what happened). Agents trained in a simulator are marked."
        )
        rep.add_table(_display_gap(res), "Sim-to-real gap", floatfmt=".3f")
    if res.notes:
        rep.add_section("Notes")
        rep.add_list(res.notes)
    return rep

def _protocol_lines(res: BacktestResult) -> list[str]:
    cfg, cm, c = res.config, res.config.cost_model, res.config.constraints
    lines = [
        f"Data: {res.dataset}, {len(res.assets)} assets; split train <= {cfg.split.train_end}, "
        f"validation <= {cfg.split.val_end}, test {res.first_test_date.date()} .. {res.end_date.date()}.",
        "Every agent trades through the same environment: cost "
        f"{_bps(cm.buy)} bps buys / {_bps(cm.sell)} bps sells"
        + ("" if cm.is_linear else " plus square-root impact")
        + f", settled pro rata; constraints: {'long-only' if c.long_only else 'long/short'}, "
        f"budget {c.budget}, gross <= {c.max_gross_leverage:g}"
        + (f", box {c.box}" if c.box is not None else "")
        + (f", turnover <= {c.max_turnover:g}" if c.max_turnover is not None else "")
        + f"; cash rate {cfg.risk_free:g}/day.",
        f"Real path: one episode from the close of {res.start_date.date()} to {res.end_date.date()} "
        "(no random start; data after the test end is never read).",
    ]
    if res.synthetic:
        h = res.synthetic_paths["days"].max() if not res.synthetic_paths.empty else cfg.horizon
        lines.append(
            f"Synthetic: {cfg.n_paths} paths per generator of {int(h)} days, conditioned on the real history up to "
            f"{res.start_date.date()}, with fixed episode seeds (seed {cfg.seed}): every agent faces the same paths "
            "(verified by a fingerprint of each path's returns)."
        )
    lines.append(
        f"1/N reference: {res.reference}" + (" (added automatically)." if res.added_reference else ".")
    )
    return lines

def _display_summary(res: BacktestResult) -> _Table:
    s = res.summary
    first = ("annualised_return", "annualised_volatility", "sharpe")
    cols = {
        **{k: DIST_METRICS[k] for k in first},
        "sharpe_ci": "Sharpe CI",
        **{k: t for k, t in DIST_METRICS.items() if k not in first},
        "n_fallbacks": "Fallbacks",
        "n_holds": "Holds",
    }
    df = pd.DataFrame(index=s.index)
    for k, title in cols.items():
        if k == "sharpe_ci":
            if "sharpe_ci_lower" in s.columns:
                df[title] = [
                    "N/A" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{lo:.2f}, {hi:.2f}]"
                    for lo, hi in zip(s["sharpe_ci_lower"], s["sharpe_ci_upper"], strict=True)
                ]
        elif k in s.columns:
            df[title] = s[k]
    if df.get("Fallbacks") is not None and df["Fallbacks"].isna().all():
        df = df.drop(columns=["Fallbacks", "Holds"])
    fmts = {"Ann. return": ".2%", "Ann. vol": ".2%", "Sharpe": ".2f", "Sortino": ".2f", "Calmar": ".2f",
            "Max DD": ".1%", "CVaR95 (daily)": ".2%", "Turnover/yr": ".2f", "Costs/yr": ".2%", "Terminal wealth": ".3f",
            "Fallbacks": ".0f", "Holds": ".0f"}
    df.index.name = "agent"
    cap = "Real path, after costs (turnover: one-way per year; costs: fraction of wealth per year)"
    return _Table(df, cap, {k: v for k, v in fmts.items() if k in df.columns})

def _display_bootstrap(res: BacktestResult) -> pd.DataFrame:
    b = res.bootstrap
    titles = {"sharpe": "Sharpe", "annualised_return": "Ann. return", "annualised_volatility": "Ann. vol", "sharpe_minus_ew": "Sharpe - 1/N"}
    rows = {}
    for agent, g in b.groupby("agent", sort=False):
        row: dict[str, Any] = {}
        for _, r in g.iterrows():
            t = titles.get(r["statistic"], r["statistic"])
            row[t] = _interval(r["estimate"], r["lower"], r["upper"], pct=r["statistic"] in ("annualised_return", "annualised_volatility"))
        row["block"] = float(g["block_length"].iloc[0])
        rows[agent] = row
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "agent"
    return df

def _display_synthetic(res: BacktestResult, sub: pd.DataFrame, gen: str) -> _Table:
    lo, hi = res.config.band
    df = pd.DataFrame(index=sub.index)
    pct = {"annualised_return", "annualised_volatility", "max_drawdown", "cvar_95", "annualised_costs"}
    for k in ("sharpe", "annualised_return", "annualised_volatility", "max_drawdown", "annualised_turnover", "annualised_costs", "terminal_wealth"):
        df[DIST_METRICS[k]] = [
            _interval(m, a, b, pct=k in pct)
            for m, a, b in zip(sub[f"{k}_median"], sub[f"{k}_p{lo * 100:02.0f}"], sub[f"{k}_p{hi * 100:02.0f}"], strict=True)
        ]
    df["CVaR95 of W_T"] = sub["terminal_wealth_cvar_95"]
    df["P(W_T < 1/N)"] = sub["p_underperform_ew"]
    df["Ruined"] = sub["n_ruined"]
    if sub["n_fallbacks"].notna().any():
        df["Fallbacks"] = sub["n_fallbacks"]
    df.index.name = "agent"
    fmts = {"CVaR95 of W_T": ".1%", "P(W_T < 1/N)": ".0%", "Ruined": ".0f", "Fallbacks": ".0f"}
    cap = f"{gen}: median [{lo:.0%}, {hi:.0%}] over {res.config.n_paths} paths; CVaR95 of W_T: mean loss 1 - W_T over the worst 5% of paths"
    return _Table(df, cap, {k: v for k, v in fmts.items() if k in df.columns})

def _display_gap(res: BacktestResult) -> pd.DataFrame:
    g = res.gap.reset_index()
    df = pd.DataFrame(
        {
            "generator": g["generator"],
            "agent": g["agent"],
            "trained in": g["trained_on"].fillna(""),
            "real Sharpe": g["sharpe_real"],
            "synthetic median": g["sharpe_synthetic_median"],
            "gap": g["sharpe_gap"],
            "percentile": g["sharpe_percentile"],
            "ann. return gap": g["annualised_return_gap"],
            "max DD gap": g["max_drawdown_gap"],
            "max DD percentile": g["max_drawdown_percentile"],
        }
    ).set_index("generator")
    return df


def _interval(m: float, lo: float, hi: float, *, pct: bool) -> str:
    if not math.isfinite(m):
        return "N/A"
    f = (lambda v: f"{v:.1%}") if pct else (lambda v: f"{v:.2f}")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f(m)
    return f"{f(m)} [{f(lo)}, {f(hi)}]"


def _bps(v: Any) -> str:
    a = np.asarray(v, dtype=np.float64) * 1e4
    return f"{float(a):g}" if a.ndim == 0 else f"{a.min():g}-{a.max():g}"



def print_summary(result: BacktestResult, out: Path, written: Mapping[str, Path], console: Console | None = None) -> None:
    """Print the real-path table (after costs) and where the files went."""
    from rich.console import Console
    from rich.table import Table

    from factorgym.report.terminal import required_width

    t = Table(title=f"real path {result.first_test_date.date()}..{result.end_date.date()} (after costs)", title_justify="left")
    for c in ("agent", "ann. return", "ann. vol", "Sharpe [CI]", "max DD", "turnover/yr", "terminal W"):
        t.add_column(c, justify="left" if c == "agent" else "right", no_wrap=True)
    s = result.summary
    for name, r in s.iterrows():
        sharpe = _interval(r["sharpe"], r.get("sharpe_ci_lower", math.nan), r.get("sharpe_ci_upper", math.nan), pct=False)
        t.add_row(
            str(name), f"{r['annualised_return']:.1%}", f"{r['annualised_volatility']:.1%}", sharpe,
            f"{r['max_drawdown']:.1%}", f"{r.get('annualised_turnover', 0.0):.2f}", f"{r['terminal_wealth']:.3f}",
        )
    if console is None:
        probe = Console()
        con = Console(width=max(probe.width, required_width(t, probe)))
    else:
        con = console
    con.print(t)
    report = f"; report: {written['report']}" if "report" in written else ""
    con.print(f"wrote {len(written)} files to {out}/{report}")

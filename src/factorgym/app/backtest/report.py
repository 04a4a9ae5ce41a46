"""How a backtest is shown: its HTML report (:func:`backtest_report`, rebuilt from a saved
folder by :func:`report_from_folder`) and the console summary of the real path
(:func:`print_summary`).

The report is always built from a :class:`SavedBacktest`, the tables and series exactly as
:meth:`BacktestResult.save` writes them (CSV text and ``backtest.json``): the report written
by a run and the one rebuilt later from its folder are the same page.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from factorgym.errors import DataValidationError
from factorgym.jsonable import jsonable, slug

if TYPE_CHECKING:
    from rich.console import Console

    from factorgym.app.backtest.result import BacktestResult
    from factorgym.report import Report

__all__ = ["SavedBacktest", "backtest_report", "backtest_summary", "report_from_folder", "print_summary"]

#: Columns of the real-path table, in order (code names; shown through factorgym.report.tables).
_REAL_COLUMNS = ("annualised_return", "annualised_volatility", "sharpe", "Sharpe 95% CI", "Sharpe − 1/N [CI]", "max_drawdown",
                 "cvar_95", "annualised_turnover", "annualised_costs", "terminal_wealth", "n_fallbacks")  # fmt: skip


@dataclass
class SavedBacktest:
    """A backtest as its folder holds it: ``backtest.json`` and the tables and daily series.

    Build it from a result in memory (:meth:`from_result`, through the same CSV text the
    folder holds) or from a folder (:meth:`load`).
    """

    meta: dict[str, Any]
    summary: pd.DataFrame
    bootstrap: pd.DataFrame
    synthetic_summary: pd.DataFrame
    synthetic_paths: pd.DataFrame
    gap: pd.DataFrame
    #: real-path wealth per agent (and the benchmark), 1 on the start day
    wealth: pd.DataFrame
    #: agent -> target weights (assets and ``cash``) held each real day
    weights: dict[str, pd.DataFrame]
    #: Sharpe / return at each cost multiplier and the break-even cost (empty when not run)
    cost_sensitivity: pd.DataFrame = field(default_factory=pd.DataFrame)

    @classmethod
    def from_result(cls, res: BacktestResult) -> SavedBacktest:
        """The tables of ``res`` as :meth:`BacktestResult.save` writes them."""
        texts: dict[str, str] = {
            "summary_real.csv": res.summary.to_csv(),
            "bootstrap_real.csv": res.bootstrap.to_csv(index=False),
            "backtest.json": json.dumps(jsonable(res.to_dict(), inf="null", other="str"), allow_nan=False),
        }
        if res.cost_sensitivity is not None and not res.cost_sensitivity.empty:
            texts["cost_sensitivity.csv"] = res.cost_sensitivity.to_csv()
        if not res.synthetic_summary.empty:
            texts["synthetic_summary.csv"] = res.synthetic_summary.to_csv()
            texts["synthetic_paths.csv"] = res.synthetic_paths.to_csv(index=False)
            texts["sim_to_real_gap.csv"] = res.gap.to_csv()
        used: set[str] = set()
        for a in res.agent_names:
            texts[f"daily/{slug(a, used, default='agent')}.csv"] = res.daily(a).to_csv()
        if res.benchmark is not None:
            b = pd.DataFrame({"net_return": res.benchmark, "wealth": (1.0 + res.benchmark).cumprod()})
            b.index.name = "date"
            texts["daily/benchmark.csv"] = b.to_csv()
        return cls._parse(texts.get)

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> SavedBacktest:
        """Read a backtest folder (written by :meth:`BacktestResult.save`)."""
        root = Path(folder)
        if not (root / "backtest.json").is_file():
            raise DataValidationError(f"{root} is not a backtest folder: it has no backtest.json")

        def read(rel: str) -> str | None:
            p = root / rel
            return p.read_text(encoding="utf-8") if p.is_file() else None

        return cls._parse(read)

    @classmethod
    def _parse(cls, read: Any) -> SavedBacktest:
        meta = json.loads(read("backtest.json"))

        def csv(rel: str, **kw: Any) -> pd.DataFrame:
            text = read(rel)
            return pd.read_csv(io.StringIO(text), **kw) if text else pd.DataFrame()

        summary = csv("summary_real.csv", index_col=0)
        synth = csv("synthetic_summary.csv", index_col=[0, 1])
        gap = csv("sim_to_real_gap.csv", index_col=[0, 1])
        wealth: dict[str, pd.Series] = {}
        weights: dict[str, pd.DataFrame] = {}
        start = pd.Timestamp(meta["start_date"])
        used: set[str] = set()
        for a in meta["agents"]:
            name = a["name"]
            d = csv(f"daily/{slug(name, used, default='agent')}.csv", index_col=0, parse_dates=True)
            if d.empty:
                continue
            wealth[name] = pd.concat([pd.Series([1.0], index=[start]), d["wealth"]])
            wcols = [c for c in d.columns if c.startswith("w_")]
            if wcols:
                weights[name] = d[wcols].rename(columns=lambda c: c[2:])
        bench = csv("daily/benchmark.csv", index_col=0, parse_dates=True)
        if not bench.empty:
            wealth[f"{meta['config']['benchmark']} (index)"] = pd.concat([pd.Series([1.0], index=[start]), bench["wealth"]])
        w = pd.DataFrame(wealth)
        w.index = pd.DatetimeIndex(w.index, name="date")
        return cls(meta, summary, csv("bootstrap_real.csv"), synth, csv("synthetic_paths.csv"), gap, w, weights,
                   csv("cost_sensitivity.csv", index_col=0))  # fmt: skip

    # ------------------------------------------------------------------ views
    @property
    def reference(self) -> str:
        return str(self.meta["reference"])

    @property
    def benchmark_label(self) -> str | None:
        label = f"{self.meta['config']['benchmark']} (index)"
        return label if label in self.wealth.columns else None

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.meta["config"])


def backtest_report(res: BacktestResult, title: str | None = None, *, max_weight_plots: int = 4) -> Report:
    """An HTML :class:`~factorgym.report.Report` of a backtest (see :func:`saved_report`)."""
    return saved_report(SavedBacktest.from_result(res), title, max_weight_plots=max_weight_plots)


def report_from_folder(folder: str | os.PathLike[str], title: str | None = None, *, max_weight_plots: int = 4) -> Report:
    """The report of a saved backtest folder, rebuilt from its files (nothing recomputed)."""
    return saved_report(SavedBacktest.load(folder), title, max_weight_plots=max_weight_plots)


def saved_report(sb: SavedBacktest, title: str | None = None, *, max_weight_plots: int = 4, summary: bool = True) -> Report:
    """The report: summary (findings with intervals, caveats), protocol, real-path table,
    wealth and weight figures, bootstrap intervals, synthetic distributions, the gap, notes."""
    from factorgym.report import Report, distribution_figure, equity_figure, weights_figure

    meta, cfg = sb.meta, sb.config
    n_paths = int(cfg["n_paths"])
    band = cfg["band"]
    real_days = int(sb.summary.loc[sb.reference, "n_periods"]) if "n_periods" in sb.summary.columns else len(sb.wealth) - 1
    rep = Report(
        title or f"Backtest on {meta['dataset']}",
        subtitle=(
            f"real test path {meta['first_test_date']} .. {meta['end_date']} ({real_days} days, first observation "
            f"{meta['start_date']}); {len(meta['generators'])} generator(s) x {n_paths} synthetic paths"
        ),
    )
    if summary:
        findings, caveats = backtest_summary(sb)
        rep.add_summary(findings, caveats)
    rep.add_section("Protocol")
    rep.add_list(_protocol_lines(sb))
    # ---- real path
    rep.add_section("Real held-out path")
    rep.add_table(
        _display_summary(sb), f"Real path {meta['first_test_date']} .. {meta['end_date']}, after costs", human=True,
        how=f"One row per agent, after costs; Sharpe intervals are {cfg['confidence']:.0%} stationary-bootstrap intervals; "
        "'Sharpe − 1/N' resamples the agent and 1/N on the same days (an interval containing 0: no detectable difference).",
    )  # fmt: skip
    rep.add_figure(
        equity_figure(sb.wealth, benchmark=sb.benchmark_label, title="Real path: wealth (log scale) and drawdown"),
        "Wealth after costs and drawdown from the running peak, all agents and the index.",
        how="Hover for values, drag to zoom, click a legend entry to hide it; equal vertical distances on the log scale are equal returns.",
    )
    if not sb.bootstrap.empty:
        rep.add_section("Bootstrap confidence intervals", level=3)
        rep.add_table(
            _display_bootstrap(sb), "Real-path bootstrap intervals: estimate [lower, upper]",
            how=f"Stationary bootstrap of the daily net returns ({cfg['bootstrap_reps']} resamples, {cfg['confidence']:.0%} "
            "percentile intervals; 'block' is the mean block length in days).",
        )  # fmt: skip
    _add_inference(rep, sb)
    _add_cost_sensitivity(rep, sb)
    shown = [a["name"] for a in meta["agents"] if a["name"] != sb.reference and a["policy"] != "BuyAndHold" and a["name"] in sb.weights]
    if shown[:max_weight_plots]:
        rep.add_section("Weights over time", level=3)
        for a in shown[:max_weight_plots]:
            rep.add_figure(weights_figure(sb.weights[a], title=f"{a}: target weights"), f"{a}: weights held each day (cash in grey).",
                           how="Each band is one stock's share of the book; the 11 largest are shown, the rest summed as 'other'.")  # fmt: skip
    # ---- synthetic
    agents_of = {g: [a["name"] for a in meta["agents"]] for g in meta["generators"]}
    for gen in meta["generators"]:
        if sb.synthetic_summary.empty or gen not in sb.synthetic_summary.index.get_level_values(0):
            continue
        rep.add_section(f"Synthetic paths: {gen}")
        sub = sb.synthetic_summary.loc[gen]
        rep.add_table(
            _display_synthetic(sb, sub), f"{gen}: median [{band[0]:.0%}, {band[1]:.0%} band] over {n_paths} paths", human=True,
            how="Each cell is the median over the synthetic paths with the band in brackets; 'P(ends below 1/N)' counts paths "
            "where the agent's terminal wealth is below 1/N's on the same path.",
        )  # fmt: skip
        paths = sb.synthetic_paths[sb.synthetic_paths["generator"] == gen]
        for metric, label, ref, fmt in (("sharpe", "Sharpe ratio (ann.)", 0.0, None), ("terminal_wealth", "terminal wealth (start = 1)", 1.0, None)):
            samples = {a: paths.loc[paths["agent"] == a, metric].to_numpy() for a in agents_of[gen]}
            real = {a: float(sb.summary.loc[a, metric]) for a in agents_of[gen] if a in sb.summary.index}
            rep.add_figure(
                distribution_figure(samples, real=real, reference=ref, xlabel=label, title=f"{gen}: {label} over {n_paths} paths", tickformat=fmt),
                how=f"Boxes: quartiles over the paths; whiskers: the {band[0]:.0%}-{band[1]:.0%} band; red diamond: the real path "
                "(outside the whiskers: the simulator did not cover what happened).",
            )  # fmt: skip
    if not sb.gap.empty:
        rep.add_section("Synthetic-to-real gap")
        rep.add_table(
            _display_gap(sb), "Sim-to-real gap per generator and agent", human=True, index=False,
            how="Gap = real value minus the synthetic median; percentile = the real value's mid-rank among the paths "
            "(near 0% or 100%: the simulator did not cover what happened).",
        )  # fmt: skip
    if meta.get("notes"):
        rep.add_section("Notes")
        rep.add_list(meta["notes"])
    return rep


#: Columns of the multiple-testing table (see factorgym.app.backtest.INFERENCE_COLUMNS).
_INFERENCE_SHOWN = ("sharpe_minus_ew", "sharpe_minus_ew_hac_se", "sharpe_minus_ew_hac_pvalue", "sharpe_minus_ew_boot_se", "psr",
                    "deflated_sharpe", "deflated_sharpe_threshold", "n_trials", "mcs_pvalue", "in_mcs_90",
                    "spa_pvalue", "beats_ew_stepm_90")  # fmt: skip


def _add_inference(rep: Report, sb: SavedBacktest) -> None:
    """The Sharpe difference to 1/N under a HAC test, the (deflated) probabilistic Sharpe
    ratio and Model Confidence Set membership, when the run computed them."""
    cols = [c for c in _INFERENCE_SHOWN if c in sb.summary.columns and sb.summary[c].notna().any()]
    if len(cols) <= 1:
        return
    rep.add_section("Multiple testing and dependence", level=3)
    df = sb.summary[cols].copy()
    df.index.name = "agent"
    rep.add_table(
        df, "Is the edge over 1/N more than luck?", human=True,
        how="HAC p-value: Ledoit-Wolf (2008) test of equal Sharpe ratios with serially dependent returns; PSR: probability "
        "that the true Sharpe ratio is above 0; deflated Sharpe: the same against the best of the run's agents (n_trials) "
        "had none any skill; MCS: the agents whose mean daily net return is not significantly below the best (90%); "
        "SPA: p-value that no agent beats 1/N, counting every agent tried; StepM: the agents that do (10% family-wise).",
    )  # fmt: skip


def _add_cost_sensitivity(rep: Report, sb: SavedBacktest) -> None:
    """Sharpe ratio and return at each cost multiplier and the break-even cost."""
    if sb.cost_sensitivity.empty:
        return
    rep.add_section("Cost sensitivity", level=3)
    df = sb.cost_sensitivity.copy()
    df.index.name = "agent"
    rep.add_table(
        df, "Real path re-run at multiples of the cost model", human=True,
        how="Each agent is re-run at 0x, 1x, ... the costs (optimizers also plan with them; trained RL policies trade the "
        "same and pay more); break-even: the cost multiple (and proportional cost in bps) at which its Sharpe ratio falls "
        "to 1/N's (inf: still ahead at the largest multiple tried).",
    )  # fmt: skip


def backtest_summary(sb: SavedBacktest) -> tuple[list[str], list[str]]:
    """The findings (each agent against 1/N with intervals, the index, the synthetic check)
    and the caveats that apply, as sentences."""
    meta, cfg, s = sb.meta, sb.config, sb.summary
    ref = sb.reference
    conf = f"{cfg['confidence']:.0%}"
    findings = []
    if ref in s.index:
        r = s.loc[ref]
        findings.append(
            f"1/N ({ref}) on the real path {meta['first_test_date']} .. {meta['end_date']}: Sharpe {_ci(r, 'sharpe')}, "
            f"annualised return {_ci(r, 'annualised_return', pct=True)}, max drawdown {_pct(r.get('max_drawdown'))} ({conf} bootstrap intervals)."
        )
    for name, r in s.iterrows():
        if name == ref or name == sb.benchmark_label:
            continue
        d, lo, hi = (float(r.get(k, math.nan)) for k in ("sharpe_minus_ew", "sharpe_minus_ew_ci_lower", "sharpe_minus_ew_ci_upper"))
        verdict = ""
        if math.isfinite(lo) and math.isfinite(hi):
            verdict = ("higher than 1/N" if lo > 0 else "lower than 1/N" if hi < 0 else "not distinguishable from 1/N") + f" at {conf}"
        findings.append(
            f"{name}: Sharpe {_ci(r, 'sharpe')}; difference to 1/N {_f(d)} [{_f(lo)}, {_f(hi)}]"
            + (f": {verdict}" if verdict else "")
            + f"; annualised return {_pct(r.get('annualised_return'))}, turnover {_f(r.get('annualised_turnover'))}x per year."
        )
    if sb.benchmark_label and sb.benchmark_label in s.index:
        findings.append(f"The index ({sb.benchmark_label}): Sharpe {_ci(s.loc[sb.benchmark_label], 'sharpe')}.")
    if not sb.gap.empty and "sharpe_in_band" in sb.gap.columns:
        for gen, g in sb.gap.groupby(level=0, sort=False):
            inside = int((g["sharpe_in_band"] == 1.0).sum())
            findings.append(
                f"{gen}: the real Sharpe ratio lies inside the synthetic {cfg['band'][0]:.0%}-{cfg['band'][1]:.0%} band for "
                f"{inside} of {len(g)} agents ({cfg['n_paths']} paths of {cfg['horizon'] or 'the real path length'} days)."
            )
    return findings, backtest_caveats(meta)


def backtest_caveats(meta: Mapping[str, Any]) -> list[str]:
    """The caveats of a backtest described by ``backtest.json``'s content."""
    cfg = meta["config"]
    cm = cfg["cost_model"]
    caveats = []
    if meta.get("dataset") == "sp500":
        caveats.append(
            "Survivorship: the embedded universe is 20 of today's large caps chosen after the fact; every backtest on it "
            "flatters buy-and-hold and 1/N (no stock in it went bankrupt or was delisted)."
        )
    if cfg.get("benchmark"):
        caveats.append(f"The index row ({cfg['benchmark']}) is a price index without dividends; the agents' stocks are not.")
    caveats.append(
        f"Costs: {_bps(cm['buy'])} bps per unit bought, {_bps(cm['sell'])} bps per unit sold"
        + ("" if not np.any(np.asarray(cm.get("impact", 0.0))) else " plus square-root impact")
        + f"; cash earns {cfg['risk_free_daily'] * cfg['periods_per_year']:.2%} a year ({cfg['risk_free_daily']:g} per day)."
    )
    caveats.append("Turnover is two-way: the sum of |Δw| over assets per rebalance (buying a full book from cash is 1.0), annualised.")
    lag = int(cfg.get("execution_lag", 0))
    if lag == 0:
        caveats.append("Timing: weights chosen at the close of day t use data up to t only, trade at that close and earn "
                       "day t+1's return (no execution delay: this flatters high-turnover, short-horizon signals; "
                       "compare with --execution-lag 1).")  # fmt: skip
    else:
        caveats.append(f"Timing: weights chosen at the close of day t use data up to t only and trade {lag} day(s) later, "
                       f"at the close of t+{lag}; they first earn day t+{lag + 1}'s return.")  # fmt: skip
    caveats.append(
        "Intervals come from one real path of about four years; a stationary bootstrap assumes the dependence dies out "
        "within its blocks, so they understate regime risk."
    )
    return caveats


def _f(v: Any, spec: str = ".2f") -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "N/A"
    return _nz(format(x, spec)) if math.isfinite(x) else "N/A"


def _nz(text: str) -> str:
    """No negative zero in display text ("-0.00" -> "0.00")."""
    return text[1:] if text.startswith("-") and not any(c in "123456789" for c in text) else text


def _pct(v: Any) -> str:
    return _f(v, ".1%")


def _ci(r: pd.Series, k: str, *, pct: bool = False) -> str:
    return _interval(float(r.get(k, math.nan)), float(r.get(f"{k}_ci_lower", math.nan)), float(r.get(f"{k}_ci_upper", math.nan)), pct=pct)


def _protocol_lines(sb: SavedBacktest) -> list[str]:
    meta, cfg = sb.meta, sb.config
    cm, c = cfg["cost_model"], cfg["constraints"]
    lines = [
        f"Data: {meta['dataset']}, {len(meta['assets'])} assets; split train <= {cfg['train_end']}, "
        f"validation <= {cfg['val_end']}, test {meta['first_test_date']} .. {meta['end_date']}.",
        "Every agent trades through the same environment: cost "
        f"{_bps(cm['buy'])} bps buys / {_bps(cm['sell'])} bps sells"
        + ("" if not np.any(np.asarray(cm.get("impact", 0.0))) else " plus square-root impact")
        + f", settled pro rata; constraints: {'long-only' if c['long_only'] else 'long/short'}, "
        f"budget {tuple(c['budget']) if isinstance(c['budget'], list) else c['budget']}, gross <= {c['max_gross_leverage']:g}"
        + (f", box {tuple(c['box'])}" if c.get("box") is not None else "")
        + (f", turnover <= {c['max_turnover']:g}" if c.get("max_turnover") is not None else "")
        + f"; cash rate {cfg['risk_free_daily']:g}/day.",
        f"Real path: one episode from the close of {meta['start_date']} to {meta['end_date']} "
        "(no random start; data after the test end is never read).",
    ]
    if meta["generators"]:
        h = int(sb.synthetic_paths["days"].max()) if not sb.synthetic_paths.empty else cfg["horizon"]
        lines.append(
            f"Synthetic: {cfg['n_paths']} paths per generator of {h} days, conditioned on the real history up to "
            f"{meta['start_date']}, with fixed episode seeds (seed {cfg['seed']}): every agent faces the same paths "
            "(verified by a fingerprint of each path's returns)."
        )
    lines.append(f"1/N reference: {sb.reference}" + (" (added automatically)." if meta.get("added_reference") else "."))
    return lines


def _display_summary(sb: SavedBacktest) -> pd.DataFrame:
    s = sb.summary
    df = pd.DataFrame(index=s.index)
    for k in _REAL_COLUMNS:
        if k == "Sharpe 95% CI":
            if "sharpe_ci_lower" in s.columns:
                df[k] = [_bracket(lo, hi) for lo, hi in zip(s["sharpe_ci_lower"], s["sharpe_ci_upper"], strict=True)]
        elif k == "Sharpe − 1/N [CI]":
            if "sharpe_minus_ew_ci_lower" in s.columns:
                df[k] = [
                    "" if not math.isfinite(d) else f"{_f(d)} {_bracket(lo, hi)}"
                    for d, lo, hi in zip(s["sharpe_minus_ew"], s["sharpe_minus_ew_ci_lower"], s["sharpe_minus_ew_ci_upper"], strict=True)
                ]
        elif k in s.columns:
            df[k] = s[k]
    if "n_fallbacks" in df.columns and df["n_fallbacks"].isna().all():
        df = df.drop(columns=["n_fallbacks"])
    df.index.name = "agent"
    return df


def _bracket(lo: float, hi: float) -> str:
    return "N/A" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{_f(lo)}, {_f(hi)}]"


def _display_bootstrap(sb: SavedBacktest) -> pd.DataFrame:
    titles = {"sharpe": "Sharpe (ann.)", "annualised_return": "Ann. return", "annualised_volatility": "Ann. volatility", "sharpe_minus_ew": "Sharpe − 1/N"}
    rows = {}
    for agent, g in sb.bootstrap.groupby("agent", sort=False):
        row: dict[str, Any] = {}
        for _, r in g.iterrows():
            t = titles.get(r["statistic"], r["statistic"])
            row[t] = _interval(r["estimate"], r["lower"], r["upper"], pct=r["statistic"] in ("annualised_return", "annualised_volatility"))
        row["block (days)"] = f"{float(g['block_length'].iloc[0]):.1f}"
        rows[agent] = row
    df = pd.DataFrame.from_dict(rows, orient="index").fillna("")
    df.index.name = "agent"
    return df


def _display_synthetic(sb: SavedBacktest, sub: pd.DataFrame) -> pd.DataFrame:
    lo, hi = sb.config["band"]
    df = pd.DataFrame(index=sub.index)
    pct = {"annualised_return", "annualised_volatility", "max_drawdown", "cvar_95"}
    labels = {"sharpe": "Sharpe (ann.)", "annualised_return": "Ann. return", "annualised_volatility": "Ann. volatility",
              "max_drawdown": "Max drawdown", "annualised_turnover": "Turnover per year (Σ|Δw|)", "annualised_costs": "Costs per year",
              "terminal_wealth": "Terminal wealth"}  # fmt: skip
    for k, label in labels.items():
        cols = (f"{k}_median", f"{k}_p{lo * 100:02.0f}", f"{k}_p{hi * 100:02.0f}")
        if cols[0] not in sub.columns:
            continue
        if k == "annualised_costs":
            df[label] = [_interval_bps(m, a, b) for m, a, b in zip(*(sub[c] for c in cols), strict=True)]
        else:
            df[label] = [_interval(m, a, b, pct=k in pct) for m, a, b in zip(*(sub[c] for c in cols), strict=True)]
    for k in ("terminal_wealth_cvar_95", "p_underperform_ew", "n_ruined", "n_fallbacks"):
        if k in sub.columns and not (k == "n_fallbacks" and sub[k].isna().all()):
            df[k] = sub[k]
    df.index.name = "agent"
    return df


def _display_gap(sb: SavedBacktest) -> pd.DataFrame:
    g = sb.gap.reset_index()
    keep = ["generator", "agent", "trained_on", "sharpe_real", "sharpe_synthetic_median", "sharpe_gap", "sharpe_percentile",
            "annualised_return_gap", "max_drawdown_gap", "max_drawdown_percentile"]  # fmt: skip
    df = g[[c for c in keep if c in g.columns]].copy()
    if "trained_on" in df.columns:
        df["trained_on"] = ["" if pd.isna(v) else str(v) for v in df["trained_on"]]
    return df.rename(columns={"generator": "Generator", "agent": "Agent"})


def _interval_bps(m: float, lo: float, hi: float) -> str:
    if not math.isfinite(m):
        return "N/A"
    return f"{m * 1e4:.1f} [{lo * 1e4:.1f}, {hi * 1e4:.1f}] bps" if math.isfinite(lo) and math.isfinite(hi) else f"{m * 1e4:.1f} bps"


def _interval(m: float, lo: float, hi: float, *, pct: bool) -> str:
    if not math.isfinite(m):
        return "N/A"
    spec = ".1%" if pct else ".2f"

    def f(v: float) -> str:
        return _nz(format(v, spec))

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

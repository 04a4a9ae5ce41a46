"""The tables of a backtest, computed from its path runs: real-path metrics with bootstrap
intervals (:func:`real_tables`), and per-path metrics, their per-agent distribution and the
synthetic-to-real gap (:func:`synthetic_tables`).

Every metric is :func:`factorgym.metrics.portfolio_metrics` of daily net returns (after
costs) with the run's **daily** cash rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from factorgym import metrics as M
from factorgym.agents.baselines import market_metrics
from factorgym.app.backtest.agent import BacktestAgent
from factorgym.app.backtest.config import BacktestConfig
from factorgym.app.backtest.statistics import (
    agent_seed,
    bootstrap_intervals,
    percentile_of,
    real_path_inference,
)
from factorgym.data import ReturnPanel
from factorgym.envs.rollout import PathRun

__all__ = ["DIST_METRICS", "GAP_METRICS", "RealTables", "SyntheticTables", "real_tables", "synthetic_tables"]

#: Metrics summarised over synthetic paths (median and band) and their table titles.
DIST_METRICS: dict[str, str] = {
    "sharpe": "Sharpe",
    "annualised_return": "Ann. return",
    "annualised_volatility": "Ann. vol",
    "sortino": "Sortino",
    "calmar": "Calmar",
    "max_drawdown": "Max DD",
    "cvar_95": "CVaR95 (daily)",
    "annualised_turnover": "Turnover/yr",
    "annualised_costs": "Costs/yr",
    "terminal_wealth": "Terminal wealth",
}

#: Metrics of the synthetic-to-real gap table.
GAP_METRICS: tuple[str, ...] = ("sharpe", "annualised_return", "max_drawdown")

_BOOT_COLUMNS = ["agent", "statistic", "estimate", "lower", "upper", "std_error", "block_length", "reps"]


class RealTables(NamedTuple):
    """Tables of the real held-out path."""

    #: metrics per agent (+ benchmark row), with bootstrap interval columns
    summary: pd.DataFrame
    #: long table (agent, statistic) -> estimate, lower, upper, std_error, block_length, reps
    bootstrap: pd.DataFrame


class SyntheticTables(NamedTuple):
    """Tables of the synthetic paths."""

    #: one row per (generator, agent, path)
    paths: pd.DataFrame
    #: per (generator, agent): median and band of each metric, CVaR of W_T, P(W_T < 1/N)...
    summary: pd.DataFrame
    #: per (generator, agent): real value, synthetic median, gap and percentile
    gap: pd.DataFrame


def real_tables(
    agents: list[BacktestAgent],
    real: Mapping[str, PathRun],
    ref: str,
    bench: pd.Series | None,
    panel: ReturnPanel,
    cfg: BacktestConfig,
) -> RealTables:
    """Metrics and bootstrap intervals of every agent (and the benchmark) on the real path;
    the Sharpe difference to the 1/N agent ``ref`` resamples the same days. The inference
    columns (HAC Sharpe difference, probabilistic / deflated Sharpe, Model Confidence Set,
    the SPA p-value of "any agent beats 1/N" and StepM's verdicts) are
    :func:`~factorgym.app.backtest.statistics.real_path_inference`'s."""
    ppy, rf = cfg.periods_per_year, cfg.risk_free
    series: dict[str, tuple[np.ndarray, dict[str, float]]] = {}
    for a in agents:
        run = real[a.name]
        m = run.path_metrics(0, periods_per_year=ppy, risk_free=rf)
        m.update(run.counters)
        series[a.name] = (run.returns(0), m)
    if bench is not None:
        m = market_metrics(panel, dates=pd.DatetimeIndex(bench.index), column=bench.name, risk_free=rf, periods_per_year=ppy)  # type: ignore[arg-type]
        m["terminal_wealth"] = float(np.prod(1.0 + bench.to_numpy()))
        series[f"{cfg.benchmark} (index)"] = (bench.to_numpy(), m)
    ref_r = real[ref].returns(0)
    rows: dict[str, dict[str, float]] = {}
    boots = []
    for name, (r, m) in series.items():
        if cfg.bootstrap_reps > 0 and r.shape[0] >= 2:
            b = bootstrap_intervals(
                r, None if name == ref or r.shape != ref_r.shape else ref_r, reps=cfg.bootstrap_reps, confidence=cfg.confidence,
                seed=agent_seed(cfg.seed, name), block_length=cfg.block_length, periods_per_year=ppy, risk_free=rf,
            )  # fmt: skip
            for stat in ("sharpe", "annualised_return"):
                m[f"{stat}_ci_lower"] = float(b.loc[stat, "lower"])
                m[f"{stat}_ci_upper"] = float(b.loc[stat, "upper"])
            if "sharpe_minus_ew" in b.index:
                m["sharpe_minus_ew"] = float(b.loc["sharpe_minus_ew", "estimate"])
                m["sharpe_minus_ew_ci_lower"] = float(b.loc["sharpe_minus_ew", "lower"])
                m["sharpe_minus_ew_ci_upper"] = float(b.loc["sharpe_minus_ew", "upper"])
                m["sharpe_minus_ew_boot_se"] = float(b.loc["sharpe_minus_ew", "std_error"])
            boots.append(b.reset_index().assign(agent=name))
        rows[name] = m
    summary = pd.DataFrame.from_dict(rows, orient="index")
    summary.index.name = "agent"
    inference = real_path_inference(
        {name: r for name, (r, _) in series.items()}, [a.name for a in agents], ref, risk_free=rf, periods_per_year=ppy,
        mcs_reps=cfg.bootstrap_reps, block_length=cfg.block_length, seed=cfg.seed,
    )  # fmt: skip
    summary = summary.join(inference)
    boot = pd.concat(boots, ignore_index=True) if boots else pd.DataFrame(columns=_BOOT_COLUMNS)
    return RealTables(summary, boot[_BOOT_COLUMNS])


def _band_keys(cfg: BacktestConfig, k: str) -> tuple[str, str]:
    lo, hi = cfg.band
    return f"{k}_p{lo * 100:02.0f}", f"{k}_p{hi * 100:02.0f}"


def _distribution(per: pd.DataFrame, run: PathRun, ref_w: np.ndarray, is_ref: bool, cfg: BacktestConfig) -> dict[str, Any]:
    """One agent's row of the synthetic summary from its per-path metrics ``per``."""
    lo, hi = cfg.band
    s: dict[str, Any] = {}
    for k in DIST_METRICS:
        v = per[k].to_numpy(dtype=np.float64)
        v = v[np.isfinite(v)]
        k_lo, k_hi = _band_keys(cfg, k)
        s[f"{k}_median"] = float(np.median(v)) if v.size else math.nan
        s[k_lo] = float(np.quantile(v, lo)) if v.size else math.nan
        s[k_hi] = float(np.quantile(v, hi)) if v.size else math.nan
    w = run.final_wealth()
    s["terminal_wealth_mean"] = float(w.mean())
    s["terminal_wealth_cvar_95"] = float(M.historical_cvar(w - 1.0, 0.95)) if w.size >= 1 else math.nan
    s["p_underperform_ew"] = math.nan if is_ref else float(np.mean(w < ref_w))
    s["n_paths"] = run.n_paths
    s["n_ruined"] = int(run.terminated.sum())
    s["n_solves"] = run.counters.get("n_solves", math.nan)
    s["n_fallbacks"] = run.counters.get("n_fallbacks", math.nan)
    s["n_holds"] = run.counters.get("n_holds", math.nan)
    return s


def _gap(per: pd.DataFrame, dist: Mapping[str, Any], real_row: pd.Series | None, trained_on: str | None, cfg: BacktestConfig) -> dict[str, Any]:
    """One agent's row of the gap table: real value vs its synthetic distribution."""
    gr: dict[str, Any] = {"trained_on": trained_on}
    for k in GAP_METRICS:
        real_v = float(real_row[k]) if real_row is not None else math.nan
        med = dist[f"{k}_median"]
        gr[f"{k}_real"] = real_v
        gr[f"{k}_synthetic_median"] = med
        gr[f"{k}_gap"] = real_v - med
        gr[f"{k}_percentile"] = percentile_of(real_v, per[k].to_numpy(dtype=np.float64))
    k_lo, k_hi = _band_keys(cfg, "sharpe")
    band_lo, band_hi, rs = dist[k_lo], dist[k_hi], gr["sharpe_real"]
    gr["sharpe_in_band"] = float(band_lo <= rs <= band_hi) if np.isfinite([band_lo, band_hi, rs]).all() else math.nan
    return gr


def synthetic_tables(
    agents: list[BacktestAgent],
    synthetic: Mapping[str, Mapping[str, PathRun]],
    ref: str,
    summary: pd.DataFrame,
    cfg: BacktestConfig,
) -> SyntheticTables:
    """Per-path metrics of every (generator, agent), their distribution per agent and the
    gap of the real-path ``summary`` to it; 1/N (``ref``) is the wealth reference."""
    ppy, rf = cfg.periods_per_year, cfg.risk_free
    rows = []
    syn_rows: dict[tuple[str, str], dict[str, Any]] = {}
    gap_rows: dict[tuple[str, str], dict[str, Any]] = {}
    trained = {a.name: a.trained_on for a in agents}
    for g, runs in synthetic.items():
        ref_w = runs[ref].final_wealth()
        for name, run in runs.items():
            per = []
            for p in range(run.n_paths):
                m = run.path_metrics(p, periods_per_year=ppy, risk_free=rf)
                m.update(
                    generator=g, agent=name, path=p, episode_seed=run.episode_seeds[p], days=int(run.alive[:, p].sum()),
                    ruined=bool(run.terminated[p]), path_hash=run.path_hash[p],
                )
                per.append(m)
            rows.extend(per)
            df = pd.DataFrame(per)
            syn_rows[(g, name)] = _distribution(df, run, ref_w, name == ref, cfg)
            real_row = summary.loc[name] if name in summary.index else None
            gap_rows[(g, name)] = _gap(df, syn_rows[(g, name)], real_row, trained.get(name), cfg)
    paths_df = pd.DataFrame(rows)
    if not paths_df.empty:
        front = ["generator", "agent", "path", "episode_seed", "days", "ruined"]
        paths_df = paths_df[front + [c for c in paths_df.columns if c not in front]]
    syn_df = pd.DataFrame.from_dict(syn_rows, orient="index")
    gap_df = pd.DataFrame.from_dict(gap_rows, orient="index")
    for d in (syn_df, gap_df):
        if not d.empty:
            d.index = pd.MultiIndex.from_tuples(list(d.index), names=["generator", "agent"])
    return SyntheticTables(paths_df, syn_df, gap_df)

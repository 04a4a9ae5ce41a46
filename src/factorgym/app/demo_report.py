"""The demo's HTML report, built from the files a demo run saved (nothing is recomputed).

:func:`write_demo_report` writes ``<out>/report.html``: a summary of the findings with their
intervals and the caveats (:func:`_generator_findings`, :func:`_stress_findings` and the
backtest's own summary), then each stage's tables and interactive figures, then the stage
times and the settings. ``factorgym demo`` calls it at its end and ``factorgym report``
rebuilds it from a demo folder.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from factorgym.app.backtest.report import SavedBacktest
    from factorgym.app.demo import DemoConfig
    from factorgym.report import Report

__all__ = ["write_demo_report"]

#: Folder of each stage (under the output folder) -> the stage's name in the report.
_STAGE_FOLDERS = (("evaluation", "evaluate generators"), ("agents/ppo", "train PPO in the NeuralFactors market"),
                  ("backtest", "backtest agents"), ("stress", "stress scenarios"))  # fmt: skip

#: What each demo setting means (the settings table of the report).
_SETTING_MEANINGS = {
    "out": "output folder",
    "seed": "seed of every stage",
    "generators": "generators fitted, with their overrides of the library defaults",
    "eval_samples": "scenarios drawn per test day to score each generator",
    "eval_sim_paths": "simulated paths for the stylized facts",
    "eval_overrides": "per-generator evaluation overrides (e.g. scoring every k-th day)",
    "ppo_timesteps": "PPO training steps",
    "ppo_envs": "parallel environments of PPO",
    "ppo_kwargs": "PPO arguments beyond the library defaults",
    "backtest_paths": "synthetic paths per generator in the backtest",
    "backtest_horizon": "days per synthetic path",
    "bootstrap_reps": "bootstrap resamples of the real-path intervals",
    "stress_scenarios": "scenarios per stress set",
    "stress_date": "context date of the stress scenarios",
    "stress_horizon": "days of the crisis-context scenarios",
    "backtest_generators": "generators driving the optimizers and the synthetic paths",
}


def _stage_times(out: Path, cfg: DemoConfig) -> dict[str, float]:
    """Seconds of every finished stage, as its ``stage.json`` recorded them."""
    folders = [(f"generators/{k}", f"fit {k}") for k in cfg.generators] + list(_STAGE_FOLDERS)
    times = {}
    for rel, name in folders:
        marker = out / rel / "stage.json"
        if marker.is_file():
            try:
                times[name] = float(json.loads(marker.read_text()).get("seconds", math.nan))
            except (json.JSONDecodeError, TypeError, ValueError):
                times[name] = math.nan
    return times


def write_demo_report(out: str | Path, config: DemoConfig | None = None) -> Path:
    """Write ``<out>/report.html`` from the files a demo saved there (nothing is recomputed);
    returns its path."""
    from factorgym.app.demo import load_demo_config

    out = Path(out)
    cfg = config or load_demo_config(out)
    return _report(out, cfg)


def _generator_findings(eval_dir: Path, table: pd.DataFrame) -> tuple[list[str], pd.DataFrame | None]:
    """The best-fitting generator by joint NLL, by how much (Diebold-Mariano on common days),
    and each generator's mean NLL with its HAC standard error."""
    from factorgym.metrics import diebold_mariano, newey_west_mean

    per_day = {}
    for kind in table.index:
        f = eval_dir / "per_day" / f"{kind}_test.csv"
        if f.is_file():
            d = pd.read_csv(f, index_col=0, parse_dates=True)
            if "nll_joint" in d and np.isfinite(d["nll_joint"].to_numpy(dtype=np.float64)).any():
                per_day[str(kind)] = d["nll_joint"].astype(np.float64)
    se = {k: newey_west_mean(v.to_numpy()).std_error for k, v in per_day.items()}
    nll = table["NLL joint"].astype(np.float64).dropna() if "NLL joint" in table else pd.Series(dtype=np.float64)
    errors = pd.DataFrame({"NLL joint": pd.Series({k: 1.96 * s for k, s in se.items()})}) if se else None
    if nll.empty:
        return [], errors
    order = nll.sort_values()
    best = str(order.index[0])
    text = f"Best fit on the test split by joint NLL: {best}, {order.iloc[0]:.3f} nats/asset/day"
    if len(order) > 1:
        second = str(order.index[1])
        text += f"; next {second} at {order.iloc[1]:.3f}"
        if best in per_day and second in per_day:
            common = per_day[best].index.intersection(per_day[second].index)
            if len(common) >= 3:
                dm = diebold_mariano(per_day[second].loc[common].to_numpy(), per_day[best].loc[common].to_numpy())
                lo, hi = dm.estimate - 1.96 * dm.std_error, dm.estimate + 1.96 * dm.std_error
                text += (
                    f", worse by {dm.estimate:.3f} [{lo:.3f}, {hi:.3f}] nats/asset/day on their {len(common)} common days "
                    f"(95% HAC interval, Diebold-Mariano p = {dm.pvalue:.2g})"
                )
    others = [f"{k} {v:.3f}" for k, v in order.iloc[2:].items()]
    text += (f"; then {', '.join(others)}" if others else "") + ". Lower is better; models without a density are not ranked."
    return [text], errors


def _stress_findings(loss: pd.DataFrame, crisis: dict[str, Any]) -> list[str]:
    out = []
    for scen, g in loss.groupby("scenario set", sort=False):
        if "ES95" not in g:
            continue
        parts = [f"{p.replace(' (constant mix, no costs)', '').replace(' (after costs)', '')} {v:.1%}" for p, v in zip(g["portfolio"], g["ES95"], strict=True)]
        n = int(g["n"].iloc[0]) if "n" in g else 0
        what = "loss over the window" if n == 1 else f"expected shortfall at 95% over {n:,} scenarios"
        out.append(f"Stress, {scen}: {what}: " + "; ".join(parts) + ".")
    if crisis:
        out.append(
            f"What followed the context date: 1/N returned {crisis.get('realised_return', math.nan):.1%} with a "
            f"{crisis.get('realised_max_drawdown', math.nan):.1%} drawdown; the generator's crisis-context paths gave that return "
            f"a probability of {crisis.get('prob_return_at_most_realised', math.nan):.1%} (5th percentile of its paths "
            f"{crisis.get('sim_5pct_return', math.nan):.1%})."
        )
    return out


#: Column groups of the generator evaluation table (the rest goes into the last one).
_EVAL_GROUPS = (
    ("Density and calibration", ("days", "NLL joint", "NLL ind", "CRPS", "Energy", "Cal. Uni.", "Cal. Port.")),
    ("Covariance and VaR of the 1/N portfolio", ("Cov MSE", "Cov MSE (outer)", "Box's M", "Box div.", "VaR95 rate", "Kupiec95 p",
                                                  "Ind95 p", "CC95 p", "VaR99 rate", "Kupiec99 p", "Ind99 p", "CC99 p")),
    ("Stylized facts of simulated paths (gap to the real ones; smaller is better)", ()),
)  # fmt: skip

_EVAL_HOW = {
    "Density and calibration": "NLL: nats per asset per day on returns divided by the train-period volatility (lower is better); "
    "CRPS and energy score: lower is better; calibration errors: 0 is perfect.",
    "Covariance and VaR of the 1/N portfolio": "VaR exceedances should be near 5% and 1%; p-values below 0.05 reject "
    "correct coverage (Kupiec), independence of exceedances, or both (conditional coverage).",
    "Stylized facts of simulated paths (gap to the real ones; smaller is better)": "Each column is the distance between a fact "
    "measured on simulated paths and on the real test data (fat tails, autocorrelation of returns and of |returns|, leverage, correlations).",
}


def _report(out: Path, cfg: DemoConfig) -> Path:
    """Build the report from the stage folders under ``out`` and write it."""
    from factorgym.app.backtest.report import SavedBacktest
    from factorgym.report import Report

    timings = _stage_times(out, cfg)
    eval_dir, bt_dir, stress_dir = out / "evaluation", out / "backtest", out / "stress"
    table = pd.read_csv(eval_dir / "generator_reports.csv", index_col=0) if (eval_dir / "generator_reports.csv").is_file() else None
    sb = SavedBacktest.load(bt_dir) if (bt_dir / "backtest.json").is_file() else None
    loss = pd.read_csv(stress_dir / "loss_summary.csv") if (stress_dir / "loss_summary.csv").is_file() else None
    crisis = json.loads((stress_dir / "crisis_comparison.json").read_text() or "{}") if (stress_dir / "crisis_comparison.json").is_file() else {}

    rep = Report(
        "factorgym demo: generative market simulators on S&P 500 (20 stocks)",
        subtitle="train 1990-2013, validation 2014-2018, test 2019-2022; every number below was computed by this run and saved beside this file",
    )
    nll_errors = _add_summary(rep, cfg, eval_dir, table, sb, loss, crisis)
    if table is not None:
        _add_generators(rep, cfg, eval_dir, table, nll_errors)
    if sb is not None:
        _add_agents(rep, out, bt_dir, sb)
    if loss is not None:
        _add_stress(rep, cfg, loss, crisis)
    _add_run(rep, cfg, timings)
    return rep.write(out / "report.html")


def _add_summary(
    rep: Report,
    cfg: DemoConfig,
    eval_dir: Path,
    table: pd.DataFrame | None,
    sb: SavedBacktest | None,
    loss: pd.DataFrame | None,
    crisis: dict[str, Any],
) -> pd.DataFrame | None:
    """The findings and caveats; returns the error bars of the generators' joint NLL."""
    from factorgym.app.backtest.report import backtest_caveats, backtest_summary
    from factorgym.app.demo import DemoConfig

    findings: list[str] = []
    nll_errors = None
    if table is not None:
        gen_findings, nll_errors = _generator_findings(eval_dir, table)
        findings += gen_findings
    caveats: list[str] = []
    if sb is not None:
        bt_findings, _ = backtest_summary(sb)
        findings += bt_findings
        caveats += backtest_caveats(sb.meta)
    if loss is not None:
        findings += _stress_findings(loss, crisis)
    default = DemoConfig(out=cfg.out, seed=cfg.seed)
    if cfg != default:
        caveats.append("This run used settings different from the default demo's (see Settings at the end): smaller budgets "
                       "give noisier models and wider intervals.")  # fmt: skip
    reduced = [f"{k} ({', '.join(f'{a}={b}' for a, b in ov.items())})" for k, ov in cfg.eval_overrides.items() if ov]
    if reduced:
        caveats.append("Some generators are scored on fewer days or scenarios: " + "; ".join(reduced) + ".")
    rep.add_summary(findings or ["No stage has finished yet."], caveats)
    return nll_errors


def _add_generators(rep: Report, cfg: DemoConfig, eval_dir: Path, table: pd.DataFrame, nll_errors: pd.DataFrame | None) -> None:
    """The generator evaluation: tables by column group, the NLL and calibration figures."""
    from factorgym.report import calibration_figure, dot_figure

    rep.add_section("Generators on the test split (2019-2022)")
    rep.add_text(
        "NLL in nats per asset per day on returns divided by the pooled train-period standard deviation "
        "(NeuralFactors eq. 10-11 and footnote 3; lower is better). NeuralFactors' joint NLL is its 100-sample "
        "importance-sampling estimate; models without a density show N/A. Calibration errors use 100 levels "
        "(eq. 12); VaR columns are exceedance rates and backtest p-values for the equal-weight portfolio."
    )
    for kind, ov in cfg.eval_overrides.items():
        if kind in table.index and ov:
            rep.add_note(
                f"{kind} is scored with {', '.join(f'{k}={v}' for k, v in ov.items())} (its sampler runs for every "
                "scenario of every day; the days column says how many test days each row covers)."
            )
    shown: set[str] = {"part"}
    for i, (title, cols) in enumerate(_EVAL_GROUPS):
        keep = [c for c in cols if c in table.columns] if i < len(_EVAL_GROUPS) - 1 else [c for c in table.columns if c not in shown]
        shown.update(keep)
        if keep:
            rep.add_table(table[keep], f"Generator evaluation: {title.lower()}", human=True, how=_EVAL_HOW[title])
    if "days" in table and "Cal. Uni." in table:
        floors = ", ".join(f"{16.8 / d:.3f} at {int(d):,} days" for d in sorted(set(table["days"].dropna().astype(int)), reverse=True))
        rep.add_note(
            "The calibration errors include sampling noise: even a perfectly calibrated forecaster scores about "
            f"16.8 / days on average ({floors}), so compare rows scored on the same number of days."
        )
    nll_cols = [c for c in ("NLL joint", "NLL ind") if c in table and table[c].notna().any()]
    if nll_cols:
        errs = None if nll_errors is None else nll_errors.reindex(index=table.index, columns=nll_cols)
        rep.add_figure(
            dot_figure(table[nll_cols].rename(columns={"NLL joint": "joint", "NLL ind": "independent"}),
                       errors=None if errs is None else errs.rename(columns={"NLL joint": "joint", "NLL ind": "independent"}),
                       title="Negative log-likelihood on the test split", xlabel="nats / asset / day (lower is better)"),
            how="Dots: mean NLL over the scored test days (joint and independent); bars on the joint NLL: ±1.96 HAC standard "
            "errors. The axis is zoomed onto the values (it does not start at zero), so the gaps between models are visible.",
        )  # fmt: skip
    cal_path = eval_dir / "calibration_curves.json"
    if cal_path.is_file():
        cal = json.loads(cal_path.read_text())
        lv = np.asarray(cal["levels"])
        how = "Observed frequency of outcomes below each predicted quantile; on the dashed diagonal a model is calibrated, above it the forecasts are too low."
        rep.add_figure(calibration_figure(lv, {k: v["uni"] for k, v in cal["curves"].items()}, title="Calibration, per stock (average)"), how=how)
        rep.add_figure(calibration_figure(lv, {k: v["port"] for k, v in cal["curves"].items()}, title="Calibration, equal-weight portfolio"), how=how)


def _add_agents(rep: Report, out: Path, bt_dir: Path, sb: SavedBacktest) -> None:
    """The backtest's report, included without its own summary."""
    from factorgym.app.backtest.report import saved_report

    agents = saved_report(sb, summary=False)
    rep.include(agents, "Agents: real test path and synthetic paths")
    if (bt_dir / "report.html").is_file():
        rep.add_note(f"The backtest alone, with the same tables, is in `{(bt_dir / 'report.html').relative_to(out)}` beside this file.")


def _add_stress(rep: Report, cfg: DemoConfig, loss: pd.DataFrame, crisis: dict[str, Any]) -> None:
    """The stress scenarios' loss table and expected-shortfall figure, and the crisis comparison."""
    from factorgym.report import bar_figure

    rep.add_section(f"Stress scenarios (NeuralFactors, context {cfg.stress_date})")
    rep.add_table(
        loss.set_index(["scenario set", "portfolio"]), "Loss distributions over each scenario set", human=True,
        how="Losses are positive fractions of the starting value; VaR is the loss exceeded with 5% (1%) probability, ES the mean loss "
        "beyond it. 1/N is a constant mix without costs; agents trade through every path from cash, after costs.",
    )  # fmt: skip
    es = loss.pivot_table(index="scenario set", columns="portfolio", values="ES95", sort=False)
    rep.add_figure(
        bar_figure(es, title="Expected shortfall at 95% per scenario set", ylabel="ES 95% (loss)", horizontal=True, tickformat=".1%",
                   height=int(160 + 60 * len(es))),
        how="Longer bars are larger losses; bars start at zero because the size of the loss is what matters. Click a legend entry to hide a portfolio.",
    )  # fmt: skip
    if crisis:
        rep.add_table(
            pd.DataFrame({"value": crisis}).T, "What actually followed the context date vs the generator's crisis-context paths",
            human=True, index=False,
            how="The realised 1/N return and drawdown after the context date, and how much probability the generator's paths gave them.",
        )  # fmt: skip
    rep.add_text("Every scenario set is saved as Parquet with its specification beside it and can be regenerated exactly.")


def _add_run(rep: Report, cfg: DemoConfig, timings: dict[str, float]) -> None:
    """The stage times and the settings."""
    rep.add_section("Run")
    if timings:
        total = float(np.nansum(list(timings.values())))
        rep.add_table(pd.DataFrame({"seconds": timings}).rename_axis("stage"), f"Stage times (total {total:,.0f} s; a reused stage shows the time of the run that computed it)", human=True)
    rep.add_settings(asdict(cfg), "Demo settings", descriptions=_SETTING_MEANINGS)

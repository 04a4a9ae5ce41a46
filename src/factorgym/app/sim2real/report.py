"""Writing a sim-to-real experiment's results: tables (CSV and markdown), ``summary.json``,
the learning curves (``curves.csv`` and one plotly figure) and ``report.html``, into
``OUT/results``, replaced as a whole (:func:`write_results`)."""

from __future__ import annotations

import json
import math
import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from factorgym.artifacts import atomic_write_text, check_result_folder, staged_folder
from factorgym.jsonable import jsonable

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from factorgym.app.sim2real.results import Sim2RealResult
    from factorgym.report import Report

__all__ = ["RESULTS_MARKER", "curves_figure", "to_report", "write_results"]

#: The file that marks a folder as a sim2real results folder.
RESULTS_MARKER = "summary.json"

#: Human labels of the columns this experiment adds to the catalogue's.
LABELS = {
    "val_sharpe_iqm": "Validation Sharpe, IQM over seeds",
    "val_sharpe_iqm_ci_lower": "— CI low",
    "val_sharpe_iqm_ci_upper": "— CI high",
    "test_sharpe_iqm": "Test Sharpe, IQM over seeds",
    "test_sharpe_iqm_ci_lower": "— CI low ",
    "test_sharpe_iqm_ci_upper": "— CI high ",
    "poi_vs_reference": "P(improvement) over reference arm",
    "poi_vs_reference_ci_lower": "— CI low  ",
    "poi_vs_reference_ci_upper": "— CI high  ",
    "compare_to": "Paired arm (same tools)",
    "poi_vs_pair": "P(improvement) over paired arm",
    "poi_vs_pair_ci_lower": "— CI low    ",
    "poi_vs_pair_ci_upper": "— CI high    ",
    "poi_vs_ew": "P(improvement) over 1/N",
    "poi_vs_ew_ci_lower": "— CI low   ",
    "poi_vs_ew_ci_upper": "— CI high   ",
    "mix_sharpe_minus_ew": "Seed mix: Sharpe − 1/N",
    "mix_sharpe_minus_ew_hac_se": "— s.e. (HAC)",
    "mix_sharpe_minus_ew_hac_pvalue": "— p-value (HAC)",
    "mix_deflated_sharpe": "Seed mix: deflated Sharpe (prob.)",
    "n_seeds": "Seeds",
    "policy_updates": "Policy updates",
    "best_timestep_median": "Selected step (median)",
}

_ARM_COLUMNS = [
    "arm", "lag", "n_seeds", "val_sharpe_iqm", "val_sharpe_iqm_ci_lower", "val_sharpe_iqm_ci_upper", "test_sharpe_iqm",
    "test_sharpe_iqm_ci_lower", "test_sharpe_iqm_ci_upper", "poi_vs_reference", "poi_vs_reference_ci_lower",
    "poi_vs_reference_ci_upper", "compare_to", "poi_vs_pair", "poi_vs_pair_ci_lower", "poi_vs_pair_ci_upper", "poi_vs_ew", "poi_vs_ew_ci_lower", "poi_vs_ew_ci_upper", "mix_sharpe_minus_ew",
    "mix_sharpe_minus_ew_hac_se", "mix_sharpe_minus_ew_hac_pvalue", "mix_deflated_sharpe", "n_trials",
    "test_annualised_turnover_mean", "test_annualised_costs_mean", "policy_updates", "best_timestep_median",
]  # fmt: skip


def curves_figure(curves: pd.DataFrame, arms: list[str]) -> go.Figure:
    """Every arm's learning curves on one plot: real-validation (solid) and training-market
    (dashed) annualised log growth, averaged over seeds, against training steps."""
    from factorgym.report.figures import PALETTE, PALETTE_LIGHT, new_figure

    fig = new_figure("Learning curves: training market (dashed) and real validation (solid)", height=480)
    colors = PALETTE + PALETTE_LIGHT
    for i, arm in enumerate(arms):
        for curve, dash, label in (("validation", "solid", "real validation"), ("train_market", "dash", "training market")):
            c = curves[(curves["arm"] == arm) & (curves["curve"] == curve)]
            if c.empty:
                continue
            m = c.groupby("timesteps")["ann_log_growth"].agg(["mean", "count"])
            fig.add_scatter(
                x=m.index.tolist(), y=[float(v) if math.isfinite(v) else None for v in m["mean"]], mode="lines+markers",
                name=f"{arm}: {label}", legendgroup=arm, line={"color": colors[i % len(colors)], "dash": dash},
                hovertemplate=f"{arm}, {label}<br>step %{{x:,}}<br>%{{y:.3f}} log growth / yr<extra></extra>",
            )  # fmt: skip
    fig.update_xaxes(title_text="training steps (trained on)")
    fig.update_yaxes(title_text="annualised log growth (mean over seeds)")
    return fig


def _add_diagnosis(rep: Report, diag: pd.DataFrame) -> None:
    """Why the real-validation return moves with training: allocation or costs."""
    rep.add_section("Diagnosis: allocation or costs?")
    ends = diag.sort_values("timesteps").groupby("arm", sort=False).nth([0, -1])
    cols = [c for c in ("arm", "timesteps", "n_seeds", "excess_log_wealth", "allocation", "costs", "mean_turnover",
                        "effective_n", "cash") if c in ends.columns]  # fmt: skip
    rep.add_table(
        ends[cols].set_index(["arm", "timesteps"]), "First and last validation evaluation of each arm (mean over seeds)",
        how="Per real-validation episode: the policy's log-wealth minus 1/N's on the same days (excess) = allocation "
        "(the same difference before costs) + costs (the policy's cost drag minus 1/N's); turnover is two-way per day; "
        "effective N is 1 / HHI of the risky weights. A fall in excess that sits in costs is trading, not allocation.",
    )  # fmt: skip
    from factorgym.report.figures import PALETTE, PALETTE_LIGHT, new_figure

    fig = new_figure("Excess log-wealth over 1/N on real validation: allocation (solid) and costs (dotted)", height=440)
    colors = PALETTE + PALETTE_LIGHT
    for i, (arm, d) in enumerate(diag.groupby("arm", sort=False)):
        for col, dash in (("allocation", "solid"), ("costs", "dot")):
            fig.add_scatter(x=d["timesteps"].tolist(), y=d[col].tolist(), mode="lines+markers", name=f"{arm}: {col}",
                            legendgroup=arm, line={"color": colors[i % len(colors)], "dash": dash})  # fmt: skip
    fig.update_xaxes(title_text="training steps")
    fig.update_yaxes(title_text="log-wealth per episode vs 1/N (mean over seeds)")
    rep.add_figure(fig, how="Solid: allocation before costs; dotted: costs. Both are differences to 1/N on the same episodes.")


def _fmt(v: Any, spec: str = ".2f") -> str:
    return "N/A" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _findings(result: Sim2RealResult) -> tuple[list[str], list[str]]:
    s, cfg = result.summary, result.config
    lag = s["selection_lag"]
    ew = s["equal_weight_test_sharpe"].get(str(lag))
    out = [f"{len(cfg.arms)} arms x {len(cfg.seeds)} seeds, {cfg.total_timesteps:,} steps each; {s['n_trials']} trained runs counted as trials."]
    best = s.get("best")
    if best is not None:
        out.append(
            f"Best arm on validation (lag {lag}): {s['best_arm']} (validation IQM Sharpe {_fmt(best['val_sharpe_iqm'])}). "
            f"Its test IQM Sharpe is {_fmt(best['test_sharpe_iqm'])} [{_fmt(best['test_sharpe_iqm_ci_lower'])}, "
            f"{_fmt(best['test_sharpe_iqm_ci_upper'])}] against 1/N's {_fmt(ew)}."
        )
        if s.get("reference_arm"):
            out.append(
                f"Probability that {s['best_arm']} improves on {s['reference_arm']} (test Sharpe, seed pairs): "
                f"{_fmt(best['poi_vs_reference'])} [{_fmt(best['poi_vs_reference_ci_lower'])}, {_fmt(best['poi_vs_reference_ci_upper'])}]; "
                f"over 1/N: {_fmt(best['poi_vs_ew'])}."
            )
        if best.get("compare_to"):
            out.append(
                f"Against {best['compare_to']}, its pair with the same tools: P(improvement) {_fmt(best['poi_vs_pair'])} "
                f"[{_fmt(best['poi_vs_pair_ci_lower'])}, {_fmt(best['poi_vs_pair_ci_upper'])}]."
            )
        c = s.get("best_curve") or {}
        if c:
            out.append(
                f"Its real-validation curve {'holds' if c['holds'] else 'falls'}: last evaluation {_fmt(c['last_ann_log_growth'], '.3f')} "
                f"at step {c['last_timesteps']:,.0f}, best {_fmt(c['best_ann_log_growth'], '.3f')} at step {c['best_timesteps']:,.0f} "
                f"(interval low {_fmt(c['best_ci_lower'], '.3f')})."
            )
        out.append(f"Goal (P(improvement) over replay >= 0.6 and a validation curve that holds): {'met' if s.get('goal_met') else 'not met'}.")
    caveats = list(s.get("notes", []))
    caveats.append("The best arm is chosen on validation only; test figures are reported as they came out.")
    return out, caveats


def to_report(result: Sim2RealResult) -> Report:
    """The HTML report: summary, arms table per lag, learning curves, runs, baselines, settings."""
    from factorgym.report import Report

    cfg = result.config
    rep = Report(f"Sim-to-real: {cfg.name}", subtitle=f"{cfg.dataset}, train to {cfg.train_end}, validation to {cfg.val_end}, test after")
    findings, caveats = _findings(result)
    rep.add_summary(findings, caveats)
    rep.add_section("Arms")
    for lag in cfg.lags:
        t = result.arms[result.arms["lag"] == lag]
        cols = [c for c in _ARM_COLUMNS if c in t.columns and c != "lag"]
        if "compare_to" in t.columns and not t["compare_to"].notna().any():  # no pairs: no empty columns
            cols = [c for c in cols if c != "compare_to" and not c.startswith("poi_vs_pair")]
        rep.add_table(t[cols].set_index("arm"), f"Arms at execution lag {lag}", human=True, labels=LABELS,
                      how="IQM: interquartile mean over seeds with a stratified bootstrap interval; P(improvement): P(X > Y) + "
                          "P(X = Y)/2 over seed pairs of test Sharpe; seed mix: the seeds' books held in equal parts.")  # fmt: skip
    rep.add_section("Learning curves")
    rep.add_figure(curves_figure(result.curves, [a.name for a in cfg.arms]),
                   how="Training market: each checkpoint, deterministic, on fixed training-market episodes; real validation: "
                       "the evaluations that selected the checkpoint. x: steps the parameters were trained on.")  # fmt: skip
    if not result.diagnosis.empty:
        _add_diagnosis(rep, result.diagnosis)
    rep.add_section("Runs")
    rep.add_table(result.runs.set_index(["arm", "seed", "lag"]), "Every run (val_*: real validation, test_*: real test)")
    rep.add_section("Baselines")
    rep.add_table(result.baselines.set_index(["baseline", "lag"]), "Baselines on the same periods")
    rep.add_section("Settings")
    d = cfg.to_dict()
    rep.add_settings({k: v for k, v in d.items() if k != "arms"})
    rep.add_table(pd.DataFrame([{**a, "market": str(a["market"])} for a in d["arms"]]).set_index("name").astype(str), "Arms")
    return rep


def _write(result: Sim2RealResult, folder: Path, report: bool) -> dict[str, Path]:
    from factorgym.report.tables import to_markdown

    paths: dict[str, Path] = {}

    def put(key: str, name: str, text: str) -> None:
        atomic_write_text(folder / name, text)
        paths[key] = Path(name)

    for key, df in (("arms", result.arms), ("runs", result.runs), ("baselines", result.baselines)):
        put(f"{key}_csv", f"{key}.csv", df.to_csv(index=False))
        put(f"{key}_md", f"{key}.md", to_markdown(df.set_index(df.columns[0])))
    put("curves_csv", "curves.csv", result.curves.to_csv(index=False))
    if not result.diagnosis.empty:
        put("diagnosis_csv", "diagnosis.csv", result.diagnosis.to_csv(index=False))
    put("config", "config.json", json.dumps(jsonable(result.config.to_dict()), indent=2))
    if report:
        put("report", "report.html", to_report(result).to_html())
    put("summary", RESULTS_MARKER, json.dumps(jsonable(result.summary, inf="null"), indent=2))  # last: marks the folder
    return paths


def write_results(result: Sim2RealResult, out: str | os.PathLike[str], *, report: bool = True) -> dict[str, Path]:
    """Write the results into ``out`` (the experiment's ``results/``), replacing it as a
    whole: everything goes to a temporary folder beside it, which then takes its place, so
    ``out`` holds the previous complete results or the new ones, never a mix.

    Returns
    -------
    dict of str to Path
    """
    target = Path(out)
    check = partial(check_result_folder, marker=RESULTS_MARKER, what="a sim2real results folder", label="results folder")
    with staged_folder(target, check) as tmp:
        rel = _write(result, tmp, report)
    return {k: target / r for k, r in rel.items()}

"""The tables and summary of a sim-to-real experiment from its run records
(:func:`summarize` -> :class:`Sim2RealResult`).

Decisions use validation only: the *best arm* is the arm (other than the reference arm) with
the highest interquartile mean of real-validation Sharpe over seeds at the first lag listed;
its test figures are then reported as they are.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from factorgym.app.sim2real.config import Sim2RealConfig
from factorgym.app.sim2real.stats import (
    deflated_sharpe,
    hac_difference,
    improvement_interval,
    iqm_summary,
    per_period_sharpe,
    seed_mix_returns,
)

__all__ = ["GOAL_PROBABILITY", "Sim2RealResult", "summarize"]

#: The issue's goal: probability of improvement of the best simulator arm over replay.
GOAL_PROBABILITY = 0.6


@dataclass
class Sim2RealResult:
    """What a sim-to-real experiment produced.

    Attributes
    ----------
    config : Sim2RealConfig
    arms : DataFrame
        One row per (arm, lag): IQM of validation and test Sharpe over seeds with intervals,
        probabilities of improvement over the reference arm, the arm's ``compare_to`` arm
        (``poi_vs_pair``) and 1/N, the HAC Sharpe
        difference to 1/N and the deflated Sharpe ratio of the arm's seed mix, turnover, costs.
    runs : DataFrame
        One row per (arm, seed, lag).
    baselines : DataFrame
        One row per (baseline, lag).
    curves : DataFrame
        Learning curves: (arm, seed, curve, timesteps) -> annualised log growth, Sharpe.
    summary : dict
        The best arm (chosen on validation) and its test figures, the trial count, notes.
    paths : dict
        Files written (``run_sim2real`` fills it).
    """

    config: Sim2RealConfig
    arms: pd.DataFrame
    runs: pd.DataFrame
    baselines: pd.DataFrame
    curves: pd.DataFrame
    summary: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)
    #: Checkpoint diagnosis (:func:`diagnosis_table`): per arm and evaluation step, the
    #: real-validation log-wealth against 1/N split into allocation and costs, turnover and
    #: concentration, averaged over seeds.
    diagnosis: pd.DataFrame = field(default_factory=pd.DataFrame)


def _seed(cfg: Sim2RealConfig, *parts: Any) -> np.random.SeedSequence:
    """Bootstrap seed of one statistic (independent of the other arms)."""
    return np.random.SeedSequence([cfg.stats_seed, *(zlib.crc32(str(p).encode()) for p in parts)])


def _finite(x: Sequence[float]) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return a[np.isfinite(a)]


def _ew_name(cfg: Sim2RealConfig, names: Sequence[str]) -> str:
    from factorgym.app.specs import parse_agent_spec

    kinds = [parse_agent_spec(b).kind for b in cfg.baselines]
    return str(names[kinds.index("equal_weight")])


def _interval(fn: Any, *args: Any, **kw: Any) -> tuple[float, float, float]:
    return fn(*args, **kw) if all(np.asarray(a).size for a in args) else (math.nan, math.nan, math.nan)


def _arm_rows(cfg: Sim2RealConfig, by_arm: Mapping[str, list[dict[str, Any]]], ew: Mapping[str, Any], lag: str,
              n_trials: int, trial_sharpes: np.ndarray) -> list[dict[str, Any]]:  # fmt: skip
    """The arms table's rows at one lag."""
    reps, conf = cfg.bootstrap_reps, cfg.confidence
    ref = cfg.reference_arm
    ew_test = ew["test"][lag]
    rows = []
    for arm in cfg.arms:
        recs = by_arm.get(arm.name, [])
        ev = {p: [r["evaluation"][p][lag] for r in recs] for p in ("val", "test")}
        val_s = _finite([e["metrics"]["sharpe"] for e in ev["val"]])
        test_s = _finite([e["metrics"]["sharpe"] for e in ev["test"]])
        row: dict[str, Any] = {"arm": arm.name, "lag": int(lag), "market": arm.market_source, "n_seeds": len(recs)}
        for p, s in (("val", val_s), ("test", test_s)):
            est, lo, hi = _interval(iqm_summary, s, reps=reps, confidence=conf, seed=_seed(cfg, arm.name, lag, p, "iqm"))
            row.update({f"{p}_sharpe_iqm": est, f"{p}_sharpe_iqm_ci_lower": lo, f"{p}_sharpe_iqm_ci_upper": hi})
        # P(improvement) of test Sharpe over the reference arm and over the arm's compare_to
        for key, other, tag in (("reference", None if arm.name == ref else ref, "poi_ref"), ("pair", arm.compare_to, "poi_pair")):
            est = lo = hi = math.nan
            if other is not None:
                other_s = _finite([r["evaluation"]["test"][lag]["metrics"]["sharpe"] for r in by_arm.get(other, [])])
                est, lo, hi = _interval(improvement_interval, test_s, other_s, reps=reps, confidence=conf, seed=_seed(cfg, arm.name, lag, tag))
            if key == "pair":
                row["compare_to"] = other
            row.update({f"poi_vs_{key}": est, f"poi_vs_{key}_ci_lower": lo, f"poi_vs_{key}_ci_upper": hi})
        ew_s = _finite([ew_test["metrics"]["sharpe"]])
        est, lo, hi = _interval(improvement_interval, test_s, ew_s, reps=reps, confidence=conf, seed=_seed(cfg, arm.name, lag, "poi_ew"))
        row.update({"poi_vs_ew": est, "poi_vs_ew_ci_lower": lo, "poi_vs_ew_ci_upper": hi})
        if recs:
            mix = seed_mix_returns([e["returns"] for e in ev["test"]])
            h = hac_difference(mix, ew_test["returns"], risk_free=cfg.risk_free)
            d = deflated_sharpe(mix, n_trials=n_trials, trial_sharpes=trial_sharpes, risk_free=cfg.risk_free)
            row.update({"mix_sharpe_minus_ew": h["estimate"], "mix_sharpe_minus_ew_hac_se": h["se"],
                        "mix_sharpe_minus_ew_hac_pvalue": h["pvalue"], "mix_deflated_sharpe": d["dsr"],
                        "deflated_sharpe_threshold": d["threshold"], "n_trials": d["n_trials"]})  # fmt: skip
            for k in ("annualised_return", "annualised_turnover", "annualised_costs", "max_drawdown"):
                vals = _finite([e["metrics"].get(k, math.nan) for e in ev["test"]])
                row[f"test_{k}_mean"] = float(vals.mean()) if vals.size else math.nan
            best = [r.get("best_timestep") for r in recs if r.get("best_timestep") is not None]
            row["best_timestep_median"] = float(np.median(best)) if best else math.nan
        row["policy_updates"] = cfg.policy_updates(arm)
        rows.append(row)
    return rows


def _curve_check(curves: pd.DataFrame, arm: str, cfg: Sim2RealConfig) -> dict[str, float | bool]:
    """Whether the arm's real-validation curve (mean over seeds) ends within the bootstrap
    interval (over seeds) of its best point: ``holds`` is True when it does not fall."""
    c = curves[(curves["arm"] == arm) & (curves["curve"] == "validation")]
    if c.empty:
        return {}
    wide = c.pivot_table(index="seed", columns="timesteps", values="ann_log_growth")
    mean = wide.mean(axis=0)
    best_step = mean.idxmax()
    last_step = mean.index.max()
    v = wide[best_step].dropna().to_numpy()
    rng = np.random.default_rng(_seed(cfg, arm, "curve"))
    boot = v[rng.integers(0, v.size, size=(max(cfg.bootstrap_reps, 1), v.size))].mean(axis=1)
    lo = float(np.quantile(boot, (1 - cfg.confidence) / 2))
    return {"best_timesteps": float(best_step), "best_ann_log_growth": float(mean[best_step]), "best_ci_lower": lo,
            "last_timesteps": float(last_step), "last_ann_log_growth": float(mean[last_step]),
            "holds": bool(mean[last_step] >= lo)}  # fmt: skip


def summarize(cfg: Sim2RealConfig, baseline_rec: Mapping[str, Any], records: Sequence[Mapping[str, Any]], *, n_trials: int) -> Sim2RealResult:
    """The tables and summary of an experiment from its run records.

    Parameters
    ----------
    cfg : Sim2RealConfig
    baseline_rec : mapping
        The baselines task's record.
    records : sequence of mapping
        One record per (arm, seed) (``run_one``'s).
    n_trials : int
        Training runs tried (counted in the experiment folder): the deflated Sharpe ratio's ``N``.
    """
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_arm.setdefault(str(r["arm"]), []).append(dict(r))
    names = list(baseline_rec["names"])
    ew = baseline_rec["evaluation"][_ew_name(cfg, names)]
    arm_rows, run_rows, base_rows, curve_rows = [], [], [], []
    for lag in (str(x) for x in cfg.lags):
        trial_sharpes = np.array([per_period_sharpe(r["evaluation"]["test"][lag]["returns"], cfg.risk_free) for r in records])
        arm_rows += _arm_rows(cfg, by_arm, ew, lag, max(int(n_trials), len(records)), trial_sharpes)
        for r in records:
            row: dict[str, Any] = {"arm": r["arm"], "seed": int(r["seed"]), "lag": int(lag)}
            for p in ("val", "test"):
                for k, v in r["evaluation"][p][lag]["metrics"].items():
                    row[f"{p}_{k}"] = v
            h = hac_difference(r["evaluation"]["test"][lag]["returns"], ew["test"][lag]["returns"], risk_free=cfg.risk_free)
            row.update({"test_sharpe_minus_ew_hac": h["estimate"], "test_sharpe_minus_ew_hac_pvalue": h["pvalue"],
                        "best_timestep": r.get("best_timestep"), "num_timesteps": r.get("num_timesteps")})  # fmt: skip
            run_rows.append(row)
        for name in names:
            e = baseline_rec["evaluation"][name]
            row = {"baseline": name, "lag": int(lag)}
            for p in ("val", "test"):
                row.update({f"{p}_{k}": v for k, v in e[p][lag]["metrics"].items()})
            base_rows.append(row)
    for r in records:
        for curve, pts in (r.get("curves") or {}).items():
            for pt in pts:
                curve_rows.append({"arm": r["arm"], "seed": int(r["seed"]), "curve": curve, **pt})
    arms = pd.DataFrame(arm_rows)
    curves = pd.DataFrame(curve_rows, columns=["arm", "seed", "curve", "timesteps", "ann_log_growth", "mean_sharpe"])
    summary = _summary(cfg, arms, curves, ew, n_trials, len(records))
    return Sim2RealResult(cfg, arms, pd.DataFrame(run_rows), pd.DataFrame(base_rows), curves, summary)


def _summary(cfg: Sim2RealConfig, arms: pd.DataFrame, curves: pd.DataFrame, ew: Mapping[str, Any], n_trials: int, n_runs: int) -> dict[str, Any]:
    lag = int(cfg.lags[0])
    at = arms[arms["lag"] == lag].set_index("arm")
    candidates = at.drop(index=[cfg.reference_arm], errors="ignore")["val_sharpe_iqm"].dropna()
    best = str(candidates.idxmax()) if not candidates.empty else None
    notes = []
    few = [a.name for a in cfg.arms if (cfg.policy_updates(a) or 20) < 20]
    if few:
        notes.append(f"Arms with fewer than 20 policy updates in the budget: {', '.join(few)}.")
    if n_trials > n_runs:
        notes.append(f"The folder holds {n_trials} trained runs, {n_runs} of this config: the deflated Sharpe counts all {n_trials}.")
    out: dict[str, Any] = {
        "selection_lag": lag, "reference_arm": cfg.reference_arm, "best_arm": best, "n_runs": n_runs, "n_trials": n_trials,
        "equal_weight_test_sharpe": {str(k): v["metrics"]["sharpe"] for k, v in ew["test"].items()},
        "equal_weight_val_sharpe": {str(k): v["metrics"]["sharpe"] for k, v in ew["val"].items()},
        "notes": notes,
    }  # fmt: skip
    if best is not None:
        row = at.loc[best]
        out["best"] = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        out["best_curve"] = _curve_check(curves, best, cfg)
        poi = row.get("poi_vs_reference", math.nan)
        out["goal_met"] = bool(math.isfinite(poi) and poi >= GOAL_PROBABILITY and out["best_curve"].get("holds", False))
        pair_poi = row.get("poi_vs_pair", math.nan)
        if isinstance(pair_poi, float) and math.isfinite(pair_poi):  # the same tools on replay: the market's own effect
            out["goal_met_vs_pair"] = bool(pair_poi >= GOAL_PROBABILITY and out["best_curve"].get("holds", False))
    return out


def diagnosis_table(agents_dir: str | Path, arms: Sequence[str]) -> pd.DataFrame:
    """Every arm's checkpoint diagnosis, averaged over its seeds: at each validation
    evaluation, the excess log-wealth over 1/N on the same real days, split into allocation
    (before costs) and costs, with turnover and concentration
    (:func:`~factorgym.agents.rl.diagnose.diagnosis_frame` of each agent folder).

    Returns
    -------
    DataFrame
        Columns ``arm``, ``timesteps``, ``n_seeds`` and the diagnosis columns; empty when no
        agent recorded a diagnosis.
    """
    from factorgym.agents.rl.diagnose import diagnosis_frame

    rows = []
    for arm in arms:
        frames = []
        for folder in sorted((Path(agents_dir) / arm).glob("seed_*")):
            if not (folder / "evaluations.json").is_file():  # not trained (yet): nothing to split
                continue
            df = diagnosis_frame(folder)
            if not df.empty:
                frames.append(df)
        if not frames:
            continue
        mean = pd.concat(frames).groupby("timesteps").mean(numeric_only=True).reset_index()
        mean.insert(0, "arm", arm)
        mean.insert(2, "n_seeds", len(frames))
        rows.append(mean)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()

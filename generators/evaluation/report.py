"""Reports of :func:`~factorgym.generators.evaluation.evaluate_generator`: the record, the
comparison table, markdown, the files written side by side and the HTML page of a folder of
them (:func:`evaluation_page`, with the "Rollouts" section when rollout diagnostics were saved
beside them).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from factorgym import metrics as M
from factorgym.artifacts import atomic_write_text
from factorgym.errors import DataValidationError
from factorgym.jsonable import jsonable, slug
from factorgym.report.tables import to_markdown

__all__ = [
    "DM_COLUMNS",
    "DM_METRICS",
    "GeneratorReport",
    "TABLE_COLUMNS",
    "diebold_mariano_table",
    "evaluation_page",
    "reports_table",
    "save_reports",
]

#: Per-day losses compared by :func:`diebold_mariano_table` (columns of ``per_day``).
DM_METRICS: tuple[str, ...] = ("nll_joint", "nll_ind", "crps", "energy_score")

#: Columns of :func:`diebold_mariano_table`, with one line each.
DM_COLUMNS: dict[str, str] = {
    "part": "split part both reports scored",
    "metric": "the daily loss compared (nll_joint, nll_ind, crps, energy_score: lower is better)",
    "model_a": "first model of the pair",
    "model_b": "second model of the pair",
    "days": "days both models were scored on (the test uses only these)",
    "mean_diff": "mean daily loss of model_a minus model_b (negative: model_a is better)",
    "std_error": "Newey-West (HAC) standard error of mean_diff",
    "statistic": "Diebold-Mariano statistic mean_diff / std_error (standard normal when both are equally good)",
    "pvalue": "two-sided p-value of equal expected loss",
    "bandwidth": "Newey-West bandwidth (days) of the HAC variance (automatic, Newey-West 1994)",
}

#: Scalar keys of :attr:`GeneratorReport.scalars` and their column titles in :func:`reports_table`.
TABLE_COLUMNS: dict[str, str] = {
    "nll_ind": "NLL ind",
    "nll_ind_se": "NLL ind s.e.",
    "nll_joint": "NLL joint",
    "nll_joint_se": "NLL joint s.e.",
    "cov_mse": "Cov MSE",
    "box_m": "Box's M",
    "box_m_divergence": "Box div.",
    "cov_mse_outer": "Cov MSE (outer)",
    "cal_uni": "Cal. Uni.",
    "cal_port": "Cal. Port.",
    "var95_rate": "VaR95 rate",
    "var95_pof_p": "Kupiec95 p",
    "var95_ind_p": "Ind95 p",
    "var95_cc_p": "CC95 p",
    "var99_rate": "VaR99 rate",
    "var99_pof_p": "Kupiec99 p",
    "var99_ind_p": "Ind99 p",
    "var99_cc_p": "CC99 p",
    "crps": "CRPS",
    "energy_score": "Energy",
    "sf_kurtosis": "SF kurt.",
    "sf_acf": "SF ACF",
    "sf_abs_acf": "SF |r| ACF",
    "sf_leverage": "SF lev.",
    "sf_corr": "SF corr.",
}


@dataclass
class GeneratorReport:
    """Evaluation of one generator on one split part.

    Attributes
    ----------
    name : str
        Label of the generator (rows of :func:`reports_table`).
    part : str
        ``"train"``, ``"val"`` or ``"test"``.
    dates : pandas.DatetimeIndex of shape (D,)
        The predicted days.
    assets : tuple of str, length N
    scalars : dict of str to float
        Aggregated metrics (keys of :data:`TABLE_COLUMNS` plus ``n_days``,
        ``n_days_joint``, ``box_m_dof`` ...); NaN where not computable.
    notes : dict of str to str
        How each metric group was obtained (exact / estimate / unavailable and why).
    calibration_per_asset : pandas.Series of shape (N,)
        Calibration error of each asset (NaN for an asset never available).
    days_per_asset : pandas.Series of shape (N,)
        Evaluated days on which each asset traded (the weights of ``cal_uni``).
    per_day : pandas.DataFrame of shape (D, *)
        Per-day values indexed by ``dates``: ``n_assets``, ``nll_joint``, ``nll_ind``,
        ``crps``, ``energy_score``, ``cov_mse_outer``, ``port_return``, ``port_pit``,
        ``var_95``, ``hit_95``, ``var_99``, ``hit_99`` (VaR as positive loss fractions).
    pit : ndarray of shape (D, N)
        Per-asset PIT values (NaN where unavailable).
    whitened : ndarray of shape (D, K)
        Whitened realised returns of the ``K`` assets in ``cov_assets``.
    cov_assets : tuple of str, length K
        Assets available on every evaluated day (the covariance universe).
    var_backtests : dict of str to VaRBacktest
        Keyed by ``"95"``, ``"99"``.
    stylized : StylizedFactsComparison or None
        Simulated vs real stylized facts (None when ``sim_paths == 0``).
    config : dict
        Evaluation settings.
    """

    name: str
    part: str
    dates: pd.DatetimeIndex
    assets: tuple[str, ...]
    scalars: dict[str, float]
    notes: dict[str, str]
    calibration_per_asset: pd.Series
    days_per_asset: pd.Series
    per_day: pd.DataFrame
    pit: np.ndarray
    whitened: np.ndarray
    cov_assets: tuple[str, ...]
    var_backtests: dict[str, M.VaRBacktest] = field(default_factory=dict)
    stylized: M.StylizedFactsComparison | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> pd.Series:
        """The scalars as a Series (in :data:`TABLE_COLUMNS` order first)."""
        keys = [k for k in TABLE_COLUMNS if k in self.scalars] + [k for k in self.scalars if k not in TABLE_COLUMNS]
        return pd.Series({k: self.scalars[k] for k in keys}, name=self.name, dtype=float)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (non-finite numbers become ``None``)."""
        out: dict[str, Any] = {
            "name": self.name,
            "part": self.part,
            "start": str(self.dates[0].date()),
            "end": str(self.dates[-1].date()),
            "assets": list(self.assets),
            "scalars": dict(self.scalars),
            "notes": dict(self.notes),
            "calibration_per_asset": {str(k): float(v) for k, v in self.calibration_per_asset.items()},
            "days_per_asset": {str(k): int(v) for k, v in self.days_per_asset.items()},
            "cov_assets": list(self.cov_assets),
            "var_backtests": {k: v.to_dict() for k, v in self.var_backtests.items()},
            "config": dict(self.config),
        }
        if self.stylized is not None:
            out["stylized_facts"] = {
                "distances": dict(self.stylized.distances),
                "real": _facts_dict(self.stylized.real, mean_over_paths=False),
                "simulated_mean": _facts_dict(self.stylized.simulated, mean_over_paths=True),
            }
        return jsonable(out, inf="null", other="str")


def _facts_dict(f: M.StylizedFacts, *, mean_over_paths: bool) -> dict[str, Any]:
    def agg(a: np.ndarray) -> Any:
        a = np.asarray(a)
        return (np.nanmean(a, axis=0) if mean_over_paths else a).tolist()

    return {"kurtosis": agg(f.kurtosis), "acf": agg(f.acf), "abs_acf": agg(f.abs_acf), "leverage": agg(f.leverage)}


def reports_table(reports: GeneratorReport | list[GeneratorReport]) -> pd.DataFrame:
    """One row per report (index: name) with ``part``, ``days`` and the metric columns.

    Columns follow :data:`TABLE_COLUMNS` (titles as in NeuralFactors tables 4-6 where they
    exist); NaN marks a metric the generator cannot provide.
    """
    reps = [reports] if isinstance(reports, GeneratorReport) else list(reports)
    if not reps:
        raise DataValidationError("no reports to tabulate")
    rows = []
    for r in reps:
        row: dict[str, Any] = {"part": r.part, "days": int(r.scalars.get("n_days", len(r.dates)))}
        row.update({title: r.scalars.get(key, math.nan) for key, title in TABLE_COLUMNS.items()})
        rows.append(row)
    df = pd.DataFrame(rows, index=pd.Index([r.name for r in reps], name="model"))
    keep = ["part", "days"] + [c for c in TABLE_COLUMNS.values() if df[c].notna().any()]
    return df[keep]


def diebold_mariano_table(reports: list[GeneratorReport], metrics: tuple[str, ...] = DM_METRICS) -> pd.DataFrame:
    """Paired Diebold-Mariano tests of equal mean daily loss between every two reports of the
    same split part (and NLL scale), per metric (:func:`factorgym.metrics.diebold_mariano`,
    HAC variance): the daily NLL, CRPS or energy score of the two models on the days both
    scored.

    Parameters
    ----------
    reports : list of GeneratorReport
    metrics : tuple of str
        Per-day columns to compare (default :data:`DM_METRICS`).

    Returns
    -------
    DataFrame
        One row per (part, metric, pair) with a finite loss for both models on at least 3
        common days; columns :data:`DM_COLUMNS`. Empty when no pair qualifies.
    """
    rows = []
    for i, a in enumerate(reports):
        for b in reports[i + 1 :]:
            if a.part != b.part or a.config.get("nll_scale") != b.config.get("nll_scale"):
                continue
            for metric in metrics:
                if metric not in a.per_day or metric not in b.per_day:
                    continue
                both = pd.concat([a.per_day[metric].rename("a"), b.per_day[metric].rename("b")], axis=1, join="inner").dropna()
                if len(both) < 3:
                    continue
                t = M.diebold_mariano(both["a"].to_numpy(), both["b"].to_numpy())
                rows.append({
                    "part": a.part, "metric": metric, "model_a": a.name, "model_b": b.name, "days": t.n_obs,
                    "mean_diff": t.estimate, "std_error": t.std_error, "statistic": t.statistic, "pvalue": t.pvalue,
                    "bandwidth": t.bandwidth,
                })  # fmt: skip
    return pd.DataFrame(rows, columns=list(DM_COLUMNS))


def save_reports(reports: GeneratorReport | list[GeneratorReport], out_dir: str | Path) -> dict[str, Path]:
    """Write the comparison table and every report's details atomically into ``out_dir``.

    Files: ``generator_reports.csv`` and ``.md`` (:func:`reports_table`),
    ``generator_reports.json`` (every report's :meth:`GeneratorReport.to_dict`),
    ``diebold_mariano.csv`` and ``.md`` (:func:`diebold_mariano_table`, when two reports
    can be compared) and ``per_day/<name>_<part>.csv`` (the per-day values, for plots).

    Returns
    -------
    dict of str to Path
        The written files by role (``csv``, ``markdown``, ``json``, ``dm_csv``, ``dm_markdown``,
        ``per_day:<name>_<part>``).
    """
    reps = [reports] if isinstance(reports, GeneratorReport) else list(reports)
    keys = [f"{slug(r.name, default='report', strip='_')}_{r.part}" for r in reps]
    if len(set(keys)) != len(keys):
        raise DataValidationError(f"reports need distinct (name, part) to be saved side by side: {keys}")
    out = Path(out_dir)
    table = reports_table(reps)
    paths = {
        "csv": out / "generator_reports.csv",
        "markdown": out / "generator_reports.md",
        "json": out / "generator_reports.json",
    }
    atomic_write_text(paths["csv"], table.to_csv())
    atomic_write_text(paths["markdown"], to_markdown(table))
    atomic_write_text(
        paths["json"], json.dumps([r.to_dict() for r in reps], indent=2, allow_nan=False, default=str) + "\n"
    )
    dm = diebold_mariano_table(reps)
    if not dm.empty:
        paths["dm_csv"], paths["dm_markdown"] = out / "diebold_mariano.csv", out / "diebold_mariano.md"
        atomic_write_text(paths["dm_csv"], dm.to_csv(index=False))
        atomic_write_text(paths["dm_markdown"], to_markdown(dm))
    for key, r in zip(keys, reps, strict=True):
        p = out / "per_day" / f"{key}.csv"
        df = r.per_day.copy()
        df.index.name = "date"
        atomic_write_text(p, df.to_csv())
        paths[f"per_day:{key}"] = p
    return paths


def evaluation_page(folder: str | Path, *, title: str = "Generator evaluation") -> Any:
    """The HTML report of a folder of saved evaluations, rebuilt from its files alone.

    Sections: the one-day scores (``generator_reports.csv`` from :func:`save_reports`), the
    Diebold-Mariano tests when saved, and "Rollouts" when
    :func:`~factorgym.generators.evaluation.save_rollouts` wrote ``rollouts.csv`` there
    (:func:`~factorgym.generators.evaluation.add_rollouts_section`).

    Parameters
    ----------
    folder : path-like
    title : str

    Returns
    -------
    factorgym.report.Report
        Write it with ``.write(path)``.

    Raises
    ------
    DataValidationError
        When ``folder`` holds neither ``generator_reports.csv`` nor ``rollouts.csv``.
    """
    from factorgym.generators.evaluation.rollout_report import ROLLOUT_FILES, add_rollouts_section
    from factorgym.report import Report

    root = Path(folder)
    one_day, rollouts = root / "generator_reports.csv", root / ROLLOUT_FILES["csv"]
    if not one_day.is_file() and not rollouts.is_file():
        raise DataValidationError(f"{root} holds no saved evaluation (generator_reports.csv or {ROLLOUT_FILES['csv']})")
    rep = Report(title, subtitle=f"from the tables saved in {root}")
    if one_day.is_file():
        table = pd.read_csv(one_day, index_col=0)
        rep.add_section("One day ahead")
        rep.add_table(table, "Scores of the predictive distribution of the next day", human=True,
                      how="NLL, CRPS, energy score: lower is better; calibration errors: 0 is perfect; VaR exceedances near 5% and 1%.")  # fmt: skip
        dm = root / "diebold_mariano.csv"
        if dm.is_file():
            rep.add_table(pd.read_csv(dm), "Diebold-Mariano tests of equal mean daily loss", index=False,
                          how="Negative mean_diff: model_a has the lower loss; pvalue below 0.05: the difference is unlikely to be luck.")  # fmt: skip
    add_rollouts_section(rep, root)
    return rep

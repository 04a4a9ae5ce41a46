"""Tables, files and the report section of :func:`~factorgym.generators.evaluation.rollout_diagnostics`.

:func:`save_rollouts` writes the comparison beside the one-day evaluation's files;
:func:`add_rollouts_section` rebuilds the "Rollouts" section of an HTML report from those
files alone (nothing is recomputed), so a page can be rebuilt from a saved folder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from factorgym.artifacts import atomic_write_text
from factorgym.errors import DataValidationError
from factorgym.generators.evaluation.rollouts import RolloutReport
from factorgym.jsonable import slug
from factorgym.report.tables import to_markdown

__all__ = ["ROLLOUT_COLUMNS", "ROLLOUT_FILES", "ROLLOUT_GROUPS", "add_rollouts_section", "rollouts_markdown", "rollouts_table", "save_rollouts"]

#: Scalar keys of a horizon (:data:`~factorgym.generators.evaluation.rollouts.ROLLOUT_METRICS`)
#: -> (column title, format spec) in :func:`rollouts_table` and the report.
ROLLOUT_COLUMNS: dict[str, tuple[str, str]] = {
    "n_contexts": ("Contexts", ",.0f"),
    "vol_spearman": ("Vol. rank corr. 1/N", ".2f"),
    "vol_spearman_stock": ("Vol. rank corr. stocks", ".2f"),
    "vol_sim": ("Daily vol. sim", ".2%"),
    "vol_real": ("Daily vol. real", ".2%"),
    "cal_error": ("Cal. error", ".3f"),
    "cal_floor": ("Cal. floor", ".3f"),
    "cal_floor_p95": ("Cal. 95% under calibration", ".3f"),
    "cal_pvalue": ("Cal. p-value", ".3f"),
    "cal_floor_iid": ("Cal. floor iid", ".3f"),
    "coverage90": ("90% band coverage", ".1%"),
    "exceed01": ("Below sim. q1%", ".1%"),
    "exceed05": ("Below sim. q5%", ".1%"),
    "kurt_sim": ("Kurtosis sim", ".2f"),
    "kurt_real": ("Kurtosis real", ".2f"),
    "abs_acf_sim": ("|r| ACF sim", ".3f"),
    "abs_acf_real": ("|r| ACF real", ".3f"),
    "leverage_sim": ("Leverage sim", ".3f"),
    "leverage_real": ("Leverage real", ".3f"),
    "corr_sim": ("Avg. corr. sim", ".2f"),
    "corr_real": ("Avg. corr. real", ".2f"),
    "drift_train_corr": ("Drift corr. train", ".2f"),
    "drift_fwd_corr": ("Drift corr. forward", ".2f"),
}

#: The two tables shown per horizon (markdown and report): metric keys of each; ``cal_floor_iid``
#: is in the CSV and JSON only.
ROLLOUT_GROUPS: dict[str, tuple[str, ...]] = {
    "volatility, calibration and tails": (
        "n_contexts", "vol_spearman", "vol_spearman_stock", "vol_sim", "vol_real", "cal_error", "cal_floor",
        "cal_floor_p95", "cal_pvalue", "coverage90", "exceed01", "exceed05",
    ),
    "stylized facts and drift": (
        "kurt_sim", "kurt_real", "abs_acf_sim", "abs_acf_real", "leverage_sim", "leverage_real", "corr_sim", "corr_real",
        "drift_train_corr", "drift_fwd_corr",
    ),
}  # fmt: skip

#: File names :func:`save_rollouts` writes (folder ``rollouts/`` holds the per-context tables).
ROLLOUT_FILES = {"csv": "rollouts.csv", "markdown": "rollouts.md", "json": "rollouts.json", "contexts": "rollouts"}

_HOW = (
    "Each context is a real day of the part; the paths start from its history and are compared with the days that "
    "followed. Vol. rank corr.: Spearman correlation across contexts of simulated (median over paths) and realised "
    "volatility (1 is perfect timing). Cal. error: NeuralFactors eq. 12 on the PITs of the realised H-day 1/N return, to "
    "be read against Cal. floor, its expected value for a calibrated model on as many (overlapping) contexts, and its 95th percentile (a calibrated model often exceeds the floor; a p-value below 0.05 says miscalibrated). 90% band "
    "coverage should be near 90%, Below sim. q1%/q5% near 1%/5%. Stylized facts: simulated against real over the same "
    "windows. Drift corr.: correlation across stocks of the simulated mean return with the training-period mean "
    "(memorisation: high) and with the realised mean."
)


def _key(r: RolloutReport) -> str:
    return f"{slug(r.name, default='report', strip='_')}_{r.part}"


def rollouts_table(reports: RolloutReport | list[RolloutReport], horizon: int | None = None) -> pd.DataFrame:
    """One row per report and horizon (index: model) with ``part``, ``H`` and the titled
    metrics of :data:`ROLLOUT_COLUMNS`; only ``horizon`` when given."""
    reps = [reports] if isinstance(reports, RolloutReport) else list(reports)
    if not reps:
        raise DataValidationError("no rollout reports to tabulate")
    rows, names = [], []
    for r in reps:
        for h in r.horizons:
            if horizon is not None and h != horizon:
                continue
            row: dict[str, Any] = {"part": r.part, "H": h}
            row.update({title: r.scalars[h].get(k, math.nan) for k, (title, _) in ROLLOUT_COLUMNS.items()})
            rows.append(row)
            names.append(r.name)
    cols = ["part", "H"] + [t for t, _ in ROLLOUT_COLUMNS.values()]
    return pd.DataFrame(rows, index=pd.Index(names, name="model"), columns=cols)


def rollouts_markdown(table: pd.DataFrame) -> str:
    """A markdown table per horizon of a :func:`rollouts_table` (formats of :data:`ROLLOUT_COLUMNS`)."""
    from factorgym.report.tables import format_table

    parts = []
    for h, sub in table.groupby("H", sort=True):
        for group, frame, fmts in _groups(sub):
            body = format_table(frame, formats=fmts)
            parts.append(f"### H = {int(h)} days: {group}\n\n" + to_markdown(body))  # type: ignore[call-overload]
    return "\n\n".join(parts) + "\n"


def _groups(sub: pd.DataFrame) -> list[tuple[str, pd.DataFrame, dict[str, str]]]:
    """The :data:`ROLLOUT_GROUPS` tables of one horizon's rows (``part`` first)."""
    out = []
    for group, keys in ROLLOUT_GROUPS.items():
        titles = [ROLLOUT_COLUMNS[k][0] for k in keys]
        out.append((group, sub[["part", *titles]], {ROLLOUT_COLUMNS[k][0]: ROLLOUT_COLUMNS[k][1] for k in keys}))
    return out


def save_rollouts(reports: RolloutReport | list[RolloutReport], out_dir: str | Path) -> dict[str, Path]:
    """Write the rollout tables atomically into ``out_dir``.

    Files: ``rollouts.csv`` (:func:`rollouts_table`, every horizon), ``rollouts.md`` (a table
    per horizon), ``rollouts.json`` (every report's :meth:`RolloutReport.to_dict`) and
    ``rollouts/<name>_<part>_h<H>.csv`` (one row per context, for plots).

    Returns
    -------
    dict of str to Path
        The written files by role (``csv``, ``markdown``, ``json``, ``contexts:<name>_<part>_h<H>``).
    """
    reps = [reports] if isinstance(reports, RolloutReport) else list(reports)
    keys = [_key(r) for r in reps]
    if len(set(keys)) != len(keys):
        raise DataValidationError(f"rollout reports need distinct (name, part) to be saved side by side: {keys}")
    out = Path(out_dir)
    table = rollouts_table(reps)
    paths = {role: out / ROLLOUT_FILES[role] for role in ("csv", "markdown", "json")}
    atomic_write_text(paths["csv"], table.to_csv())
    atomic_write_text(paths["markdown"], rollouts_markdown(table))
    atomic_write_text(paths["json"], json.dumps([r.to_dict() for r in reps], indent=2, allow_nan=False) + "\n")
    for key, r in zip(keys, reps, strict=True):
        for h in r.horizons:
            p = out / ROLLOUT_FILES["contexts"] / f"{key}_h{h}.csv"
            atomic_write_text(p, r.contexts[h].to_csv())
            paths[f"contexts:{key}_h{h}"] = p
    return paths


# ----------------------------------------------------------------------------- report section
def _pit_figure(pits: dict[str, np.ndarray], h: int, bins: int = 10) -> Any:
    import plotly.graph_objects as go

    from factorgym.report.figures import PALETTE, new_figure

    fig = new_figure(f"PIT of the realised {h}-day 1/N return within the simulated paths", height=360)
    edges = np.linspace(0.0, 1.0, bins + 1)
    mids = (edges[:-1] + edges[1:]) / 2
    for i, (name, u) in enumerate(pits.items()):
        u = u[np.isfinite(u)]
        if not u.size:
            continue
        dens = np.histogram(u, bins=edges)[0] / (u.size / bins)
        fig.add_trace(go.Bar(x=mids.tolist(), y=dens.tolist(), name=name, marker_color=PALETTE[i % len(PALETTE)],
                             hovertemplate="PIT %{x:.2f}: density %{y:.2f}<extra>" + name + "</extra>"))  # fmt: skip
    fig.add_hline(y=1.0, line={"color": "#999999", "dash": "dash", "width": 1})
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="PIT (10 bins)", range=[0, 1])
    fig.update_yaxes(title_text="density (1 = calibrated)")
    return fig


def _vol_figure(frames: dict[str, pd.DataFrame], h: int) -> Any:
    import plotly.graph_objects as go

    from factorgym.report.figures import PALETTE, new_figure

    fig = new_figure(f"Simulated against realised {h}-day volatility of 1/N, one point per context", height=420)
    allv = np.concatenate([np.r_[f["real_vol"].to_numpy(float), f["sim_vol"].to_numpy(float)] for f in frames.values()])
    allv = allv[np.isfinite(allv) & (allv > 0)]
    if allv.size:
        lo, hi = float(allv.min()) * 0.9, float(allv.max()) * 1.1
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="simulated = realised",
                                 line={"color": "#999999", "dash": "dash", "width": 1}))  # fmt: skip
    for i, (name, f) in enumerate(frames.items()):
        dates = [str(d)[:10] for d in f.index]
        fig.add_trace(go.Scatter(
            x=f["real_vol"].tolist(), y=f["sim_vol"].tolist(), mode="markers", name=name, text=dates,
            marker={"size": 6, "color": PALETTE[i % len(PALETTE)], "opacity": 0.75},
            hovertemplate="%{text}: realised %{x:.2%}, simulated %{y:.2%}<extra>" + name + "</extra>",
        ))  # fmt: skip
    # log axes labelled at 1, 2 and 5 of each decade only
    fig.update_xaxes(title_text="realised daily volatility", type="log", tickformat=".1%", dtick="D2")
    fig.update_yaxes(title_text="simulated daily volatility (median over paths)", type="log", tickformat=".1%", dtick="D2")
    return fig


def add_rollouts_section(report: Any, folder: str | Path, *, level: int = 2) -> bool:
    """Add a "Rollouts" section to ``report`` from the files :func:`save_rollouts` wrote in
    ``folder``: a table per horizon, the PIT histogram and the volatility scatter.

    Parameters
    ----------
    report : factorgym.report.Report
    folder : path-like
        Holds ``rollouts.csv`` and ``rollouts/``.
    level : {2, 3}
        Heading level of the section (3 inside another section).

    Returns
    -------
    bool
        False (and nothing added) when ``folder`` has no ``rollouts.csv``.
    """
    root = Path(folder)
    if not (root / ROLLOUT_FILES["csv"]).is_file():
        return False
    table = pd.read_csv(root / ROLLOUT_FILES["csv"], index_col=0)
    report.add_section("Rollouts", level)
    report.add_text(
        "Multi-day paths simulated from real contexts and held against what followed (`rollout_diagnostics`): "
        "the use a simulator is put to, which one-day scores do not check."
    )
    for h, sub in table.groupby("H", sort=True):
        h = int(h)
        (g1, t1, f1), (g2, t2, f2) = _groups(sub)
        report.add_table(t1, f"Rollouts of {h} days: {g1}", formats=f1)
        report.add_table(t2, f"Rollouts of {h} days: {g2}", formats=f2, how=_HOW)
        frames: dict[str, pd.DataFrame] = {}
        for name, part in zip(sub.index, sub["part"], strict=True):
            p = root / ROLLOUT_FILES["contexts"] / f"{slug(str(name), default='report', strip='_')}_{part}_h{h}.csv"
            if p.is_file():
                frames[str(name)] = pd.read_csv(p, index_col=0)
        if frames:
            report.add_figure(
                _pit_figure({n: f["pit"].to_numpy(float) for n, f in frames.items()}, h),
                how="Flat at 1 when the simulated distribution is calibrated; a U shape means too narrow, a hump too wide, a slope a biased centre.",
            )
            report.add_figure(
                _vol_figure(frames, h),
                how="Points along the diagonal: the paths know the volatility regime they start in; a flat cloud: they do not.",
            )
    return True

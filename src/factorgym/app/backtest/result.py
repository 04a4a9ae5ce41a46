"""What a backtest produced (:class:`BacktestResult`): its path runs and tables, views of
them (daily series, weights, wealth) and how they are written to files."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from factorgym.app.backtest.agent import BacktestAgent
from factorgym.app.backtest.config import BacktestConfig
from factorgym.artifacts import atomic_write_text
from factorgym.envs.rollout import PathRun
from factorgym.jsonable import jsonable, slug

if TYPE_CHECKING:
    from factorgym.report import Report

__all__ = ["BacktestResult"]


@dataclass
class BacktestResult:
    """Everything a backtest produced; :meth:`save` writes it, :meth:`to_report` shows it.

    Attributes
    ----------
    config : BacktestConfig
    dataset : str
    assets : tuple of str
    start_date, end_date : pandas.Timestamp
        The real path's first observation (last pre-test day) and last day.
    agents : list of BacktestAgent
    reference : str
        Name of the 1/N agent the comparisons use.
    added_reference : bool
        True when 1/N was added to the run automatically.
    real : dict of str to PathRun
    synthetic : dict of str to dict of str to PathRun
        ``synthetic[generator][agent]``.
    benchmark : pandas.Series or None
        The index's daily returns over the real path's days.
    summary : DataFrame
        Real-path metrics per agent (+ benchmark row), with bootstrap interval columns.
    bootstrap : DataFrame
        Long table: (agent, statistic) -> estimate, lower, upper, std_error, block_length, reps.
    synthetic_paths : DataFrame
        One row per (generator, agent, path): metrics, ``ruined``, ``episode_seed``, ``path_hash``.
    synthetic_summary : DataFrame
        Per (generator, agent): median and band of each metric, terminal-wealth CVaR(95%),
        P(underperform 1/N), ruined paths, fallbacks.
    gap : DataFrame
        Per (generator, agent): for Sharpe, annualised return and max drawdown the real value
        (``*_real``), the synthetic median, their difference (``*_gap``, real minus
        synthetic) and the real value's mid-rank percentile among the paths
        (``*_percentile``); ``sharpe_in_band`` is 1.0 when the real Sharpe lies inside the
        synthetic band, 0.0 outside, NaN when undefined; ``trained_on`` marks agents
        trained in a simulator.
    notes : list of str
    cost_sensitivity : DataFrame
        Per agent: Sharpe ratio and annualised return at each of ``config.cost_multipliers``
        times the costs, break-even multiplier and cost against 1/N
        (:mod:`factorgym.app.backtest.sensitivity`); empty without multipliers.
    """

    config: BacktestConfig
    dataset: str
    assets: tuple[str, ...]
    start_date: pd.Timestamp
    end_date: pd.Timestamp
    agents: list[BacktestAgent]
    reference: str
    added_reference: bool
    real: dict[str, PathRun]
    synthetic: dict[str, dict[str, PathRun]]
    benchmark: pd.Series | None
    summary: pd.DataFrame
    bootstrap: pd.DataFrame
    synthetic_paths: pd.DataFrame
    synthetic_summary: pd.DataFrame
    gap: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    cost_sensitivity: pd.DataFrame = field(default_factory=pd.DataFrame)

    # ------------------------------------------------------------------ views
    @property
    def agent_names(self) -> list[str]:
        """Agent names in run order."""
        return [a.name for a in self.agents]

    @property
    def first_test_date(self) -> pd.Timestamp:
        """The first day whose return the real path earns."""
        return pd.Timestamp(self.real[self.reference].dates[0])

    def daily(self, agent: str) -> pd.DataFrame:
        """Daily real-path series of ``agent``: wealth, net_return, cost, turnover and the
        target weights held over each day (``w_<asset>``, ``w_cash``), indexed by the day
        earned."""
        run = self.real[agent]
        idx = pd.DatetimeIndex([pd.Timestamp(d) for d in run.dates], name="date")
        df = pd.DataFrame(
            {"wealth": run.wealth[:, 0], "net_return": run.net_return[:, 0], "cost": run.cost[:, 0], "turnover": run.turnover[:, 0]},
            index=idx,
        )
        if run.weights is not None:
            w = run.weights[:, 0, :]
            for j, a in enumerate(self.assets):
                df[f"w_{a}"] = w[:, j]
            df["w_cash"] = 1.0 - w.sum(axis=1)
        return df

    def weights(self, agent: str) -> pd.DataFrame:
        """Target weights (assets and ``cash``) held over each real day by ``agent``."""
        d = self.daily(agent)
        cols = [c for c in d.columns if c.startswith("w_")]
        return d[cols].rename(columns=lambda c: c[2:])

    def wealth_table(self) -> pd.DataFrame:
        """Real-path wealth of every agent (and the benchmark), starting at 1 on the start day."""
        cols = {}
        for a in self.agent_names:
            d = self.daily(a)["wealth"]
            cols[a] = pd.concat([pd.Series([1.0], index=[self.start_date]), d])
        if self.benchmark is not None:
            b = (1.0 + self.benchmark).cumprod()
            cols[self.benchmark_label] = pd.concat([pd.Series([1.0], index=[self.start_date]), b])
        df = pd.DataFrame(cols)
        df.index = pd.DatetimeIndex(df.index, name="date")
        return df

    @property
    def benchmark_label(self) -> str:
        """Row and column label of the benchmark index."""
        return f"{self.config.benchmark} (index)"

    # ------------------------------------------------------------------ files
    def save(self, out_dir: str | os.PathLike[str], *, report: bool = True) -> dict[str, Path]:
        """Write tables (CSV + markdown), daily series, ``backtest.json`` and the report.

        Files: ``summary_real.csv``/``.md``, ``bootstrap_real.csv``,
        ``cost_sensitivity.csv``/``.md`` (with cost multipliers),
        ``synthetic_summary.csv``/``.md``, ``synthetic_paths.csv``,
        ``sim_to_real_gap.csv``/``.md``, ``daily/<agent>.csv`` (real path: wealth, net
        return, cost, turnover, weights), ``daily/benchmark.csv``, ``backtest.json`` and
        ``report.html``.

        The folder is replaced as a whole (:mod:`factorgym.app.backtest.output`): everything
        is written to a temporary folder beside it first, so ``out_dir`` holds either its
        previous complete contents or this result, never a mix of two runs or half of one.
        It must be absent, empty or a previous backtest's folder.

        Returns
        -------
        dict of str to Path
            Paths inside ``out_dir``.
        """
        from factorgym.app.backtest.output import staged_folder

        out = Path(out_dir)
        with staged_folder(out) as tmp:
            rel = self._write(tmp, report=report)
        return {k: out / r for k, r in rel.items()}

    def _write(self, folder: Path, *, report: bool) -> dict[str, Path]:
        """Write every file into ``folder``; returns their paths relative to it."""
        from factorgym.report.tables import to_markdown

        paths: dict[str, Path] = {}

        def put(key: str, rel: str, text: str) -> None:
            atomic_write_text(folder / rel, text)
            paths[key] = Path(rel)

        put("summary_csv", "summary_real.csv", self.summary.to_csv())
        put("summary_md", "summary_real.md", to_markdown(self.summary))
        put("bootstrap_csv", "bootstrap_real.csv", self.bootstrap.to_csv(index=False))
        if not self.cost_sensitivity.empty:
            put("cost_sensitivity_csv", "cost_sensitivity.csv", self.cost_sensitivity.to_csv())
            put("cost_sensitivity_md", "cost_sensitivity.md", to_markdown(self.cost_sensitivity))
        if not self.synthetic_summary.empty:
            put("synthetic_summary_csv", "synthetic_summary.csv", self.synthetic_summary.to_csv())
            put("synthetic_summary_md", "synthetic_summary.md", to_markdown(self.synthetic_summary.reset_index(level=0)))
            put("synthetic_paths_csv", "synthetic_paths.csv", self.synthetic_paths.to_csv(index=False))
            put("gap_csv", "sim_to_real_gap.csv", self.gap.to_csv())
            put("gap_md", "sim_to_real_gap.md", to_markdown(self.gap.reset_index(level=0)))
        used: set[str] = set()
        for a in self.agent_names:
            put(f"daily:{a}", f"daily/{slug(a, used, default='agent')}.csv", self.daily(a).to_csv())
        if self.benchmark is not None:
            b = pd.DataFrame({"net_return": self.benchmark, "wealth": (1.0 + self.benchmark).cumprod()})
            b.index.name = "date"
            put("daily:benchmark", "daily/benchmark.csv", b.to_csv())
        put("json", "backtest.json", json.dumps(jsonable(self.to_dict(), inf="null", other="str"), indent=2, allow_nan=False) + "\n")
        if report:
            self.to_report().write(folder / "report.html")
            paths["report"] = Path("report.html")
        return paths

    def to_dict(self) -> dict[str, Any]:
        """Configuration, period, agents, tables and notes (JSON-ready after NaN -> null)."""
        return {
            "dataset": self.dataset,
            "assets": list(self.assets),
            "start_date": str(self.start_date.date()),
            "first_test_date": str(self.first_test_date.date()),
            "end_date": str(self.end_date.date()),
            "config": self.config.describe(),
            "reference": self.reference,
            "added_reference": self.added_reference,
            "agents": [a.describe() for a in self.agents],
            "generators": list(self.synthetic),
            "summary_real": _records(self.summary),
            "bootstrap_real": self.bootstrap.to_dict(orient="records"),
            "synthetic_summary": _records(self.synthetic_summary.reset_index()) if not self.synthetic_summary.empty else [],
            "sim_to_real_gap": _records(self.gap.reset_index()) if not self.gap.empty else [],
            "cost_sensitivity": _records(self.cost_sensitivity) if not self.cost_sensitivity.empty else [],
            "notes": list(self.notes),
        }


    # ------------------------------------------------------------------ report
    def to_report(self, title: str | None = None, *, max_weight_plots: int = 4) -> Report:
        """An HTML :class:`~factorgym.report.Report` of the backtest (tables and figures;
        see :func:`factorgym.app.backtest.report.backtest_report`)."""
        from factorgym.app.backtest.report import backtest_report

        return backtest_report(self, title, max_weight_plots=max_weight_plots)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    d = df.reset_index() if df.index.name is not None or isinstance(df.index, pd.MultiIndex) else df
    return [{str(k): v for k, v in r.items()} for r in d.to_dict(orient="records")]

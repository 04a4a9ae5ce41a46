"""``factorgym backtest``: agents by spec on the real held-out path and on synthetic paths.

The command line takes costs in basis points and the cash rate as an annual figure;
:func:`backtest_cli` converts them to the Python API's units (fractions, a daily rate) for
:func:`factorgym.app.backtest.run_backtest`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from factorgym.app.cli.common import BuyBpsOpt, SellBpsOpt, app

if TYPE_CHECKING:
    from rich.console import Console

    from factorgym.app.backtest import BacktestResult
    from factorgym.app.specs import AgentSpec
    from factorgym.data import ReturnPanel

__all__ = ["backtest", "backtest_cli", "parse_multipliers"]


def backtest_cli(
    agents: Sequence[str | AgentSpec],
    generators: Sequence[str | os.PathLike[str]] = (),
    *,
    dataset: str | ReturnPanel = "sp500",
    out: str | os.PathLike[str] = "runs/backtest",
    train_end: str | None = None,
    val_end: str | None = None,
    test_end: str | None = None,
    n_paths: int = 32,
    horizon: int | None = None,
    seed: int = 0,
    buy_bps: float = 7.5,
    sell_bps: float = 12.5,
    impact: float = 0.0,
    max_weight: float | None = None,
    risk_free: float = 0.0,
    bootstrap_reps: int = 1000,
    confidence: float = 0.95,
    benchmark: str | None = "SP500",
    cost_multipliers: Sequence[float] | str = (),
    execution_lag: int = 0,
    report: bool = True,
    progress: bool = True,
    console: Console | None = None,
) -> BacktestResult:
    """Body of ``factorgym backtest``, in the command line's units.

    Parameters
    ----------
    agents : sequence of str or AgentSpec
        Agent specs (:mod:`factorgym.app.specs`), e.g. ``["mv:ledoit_wolf",
        "cvar:runs/neuralfactors", "sb3:runs/ppo/agent.zip", "buy_and_hold"]``. 1/N is added
        when absent.
    generators : sequence of path
        Generator run folders (or artifacts) whose synthetic paths to run on.
    dataset : str or ReturnPanel
        Embedded dataset name or CSV/Parquet path (or a panel, from Python).
    out : path
        Output folder.
    train_end, val_end : str, optional
        The split (default :class:`~factorgym.data.Split`'s: test from 2019).
    test_end : str, optional
        Last test day (default: the panel's last day).
    n_paths, horizon, seed
        Synthetic paths per generator, their length (default: the real path's), the seed.
    buy_bps, sell_bps, impact
        The cost model: **basis points** of the value traded (divided by 10,000), and the
        square-root impact coefficient.
    max_weight : float, optional
        Per-asset cap (long-only, invested up to 100% otherwise).
    risk_free : float
        **Annual** cash rate, booked daily as ``(1 + rf)^(1/252) - 1``.
    cost_multipliers : sequence of float or str
        Multiples of the costs for the cost-sensitivity table, or a comma-separated list
        (``"0,1,2,5"``; empty skips it).
    execution_lag : int
        Days between a decision and its trade: 0 trades at the close the agent observed,
        1 at the next close.
    bootstrap_reps, confidence, benchmark, report, progress, console
        As for :func:`~factorgym.app.backtest.run_backtest`.

    Returns
    -------
    BacktestResult
    """
    from factorgym.app.backtest.experiment import run_backtest
    from factorgym.app.specs import annual_to_daily, bps_to_fraction
    from factorgym.costs import CostModel
    from factorgym.data import Split
    from factorgym.envs.actions import Constraints

    return run_backtest(
        agents, generators, dataset=dataset, out=out, split=Split(train_end or Split.train_end, val_end or Split.val_end),
        test_end=test_end, n_paths=n_paths, horizon=horizon, seed=seed,
        cost_model=CostModel(buy=bps_to_fraction(buy_bps), sell=bps_to_fraction(sell_bps), impact=float(impact)),
        constraints=Constraints() if max_weight is None else Constraints(box=(0.0, float(max_weight))),
        risk_free=annual_to_daily(risk_free), bootstrap_reps=bootstrap_reps, confidence=confidence, benchmark=benchmark,
        cost_multipliers=parse_multipliers(cost_multipliers) if isinstance(cost_multipliers, str) else tuple(cost_multipliers),
        execution_lag=execution_lag, report=report, progress=progress, console=console,
    )  # fmt: skip


def parse_multipliers(text: str) -> tuple[float, ...]:
    """``"0,1,2,5"`` -> ``(0.0, 1.0, 2.0, 5.0)`` (blank: none).

    Raises
    ------
    DataValidationError
        When an entry is not a number.
    """
    from factorgym.errors import DataValidationError

    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            out.append(float(part))
        except ValueError:
            raise DataValidationError(f"--cost-multipliers: {part!r} is not a number (expected e.g. 0,1,2,5)") from None
    return tuple(out)


def _columns_help() -> str:
    """One line per column the statistics add to the tables (the command's epilog)."""
    from factorgym.app.backtest.sensitivity import COST_COLUMNS
    from factorgym.app.backtest.statistics import INFERENCE_COLUMNS

    lines = ["\b", "Columns of summary_real.csv beside the metrics:"]
    lines += [f"  {k}: {v}" for k, v in INFERENCE_COLUMNS.items()]
    lines += ["", "\b", "Columns of cost_sensitivity.csv (with --cost-multipliers; {m} is a multiplier such as 2x):"]
    lines += [f"  {k}: {v}" for k, v in COST_COLUMNS.items()]
    return "\n".join(lines)


@app.command("backtest", epilog=_columns_help())
def backtest(
    agents: Annotated[list[str], typer.Argument(help="Agent specs, e.g. equal_weight mv:ledoit_wolf cvar:runs/neuralfactors sb3:runs/agents/ppo (grammar: factorgym.app.specs).")],
    generator: Annotated[list[Path] | None, typer.Option("--generator", "-g", help="Generator run folder for synthetic paths (repeatable).")] = None,
    dataset: Annotated[str, typer.Option(help="Embedded dataset name or CSV/Parquet path.")] = "sp500",
    out: Annotated[Path, typer.Option(help="Output folder (tables, daily series, report.html).")] = Path("runs/backtest"),
    train_end: Annotated[str | None, typer.Option(help="Last training date (default 2013-12-31).")] = None,
    val_end: Annotated[str | None, typer.Option(help="Last validation date; the test path starts after it (default 2018-12-31).")] = None,
    test_end: Annotated[str | None, typer.Option(help="Last test date (default: end of data).")] = None,
    n_paths: Annotated[int, typer.Option(help="Synthetic paths per generator.")] = 32,
    horizon: Annotated[int | None, typer.Option(help="Synthetic path length in days (default: the real test length).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of synthetic paths, scenario sampling and bootstraps.")] = 0,
    buy_bps: BuyBpsOpt = 7.5,
    sell_bps: SellBpsOpt = 12.5,
    impact: Annotated[float, typer.Option(help="Square-root impact coefficient.")] = 0.0,
    max_weight: Annotated[float | None, typer.Option(help="Per-asset weight cap (a fraction of wealth, e.g. 0.2).")] = None,
    risk_free: Annotated[float, typer.Option(help="Annual cash rate as a fraction (0.03 = 3%/yr); booked daily as (1 + r)^(1/252) - 1.")] = 0.0,
    bootstrap_reps: Annotated[int, typer.Option(help="Stationary-bootstrap replications for confidence intervals.")] = 1000,
    confidence: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.95,
    cost_multipliers: Annotated[str, typer.Option(help="Re-run every agent on the real path at these multiples of the costs, e.g. 0,1,2,5: writes cost_sensitivity.csv with break-even costs vs 1/N (default: skipped).")] = "",
    execution_lag: Annotated[int, typer.Option(help="Days between a decision and its trade: 0 trades at the close the agent observed (earns the next day), 1 at the next close (earns the day after).")] = 0,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip the HTML report.")] = False,
) -> None:
    """Backtest agents on the real held-out test path and on synthetic paths of each generator."""
    backtest_cli(
        agents, generator or [], dataset=dataset, out=out, train_end=train_end, val_end=val_end, test_end=test_end,
        n_paths=n_paths, horizon=horizon, seed=seed, buy_bps=buy_bps, sell_bps=sell_bps, impact=impact,
        max_weight=max_weight, risk_free=risk_free, bootstrap_reps=bootstrap_reps, confidence=confidence,
        cost_multipliers=cost_multipliers, execution_lag=execution_lag, report=not no_report,
    )  # fmt: skip

"""A backtest described by specs: agents by spec, generators by run folder, the dataset by
name or path; builds everything, checks that the generators are out of sample, runs
:func:`~factorgym.app.backtest.run.backtest` and writes every output
(:func:`run_backtest`, the body of ``factorgym backtest``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from factorgym.app.agent_factory import LoadedRun, agent_from_spec, load_generator_run
from factorgym.app.backtest.agent import BacktestAgent
from factorgym.app.backtest.config import BacktestConfig, held_out_rows
from factorgym.app.backtest.output import check_output_folder
from factorgym.app.backtest.report import print_summary
from factorgym.app.backtest.result import BacktestResult
from factorgym.app.backtest.run import backtest
from factorgym.app.specs import AgentSpec
from factorgym.costs import CostModel
from factorgym.data import ReturnPanel, Split
from factorgym.envs.actions import Constraints
from factorgym.errors import DataValidationError

if TYPE_CHECKING:
    from rich.console import Console

    from factorgym.generators.base import ReturnGenerator

__all__ = ["run_backtest"]


def _generators(
    paths: Sequence[str | os.PathLike[str]], panel: ReturnPanel, start_row: int, dataset: str | ReturnPanel,
    loaded: dict[str, LoadedRun], notes: list[str],
) -> dict[str, ReturnGenerator]:
    """Load the generator runs by display name (unique), refusing runs fitted on test data."""
    gens: dict[str, ReturnGenerator] = {}
    for g in paths:
        run = load_generator_run(g, loaded)
        spec = (run.record or {}).get("spec", {})
        fitted_to = spec.get("val_end")
        if fitted_to is None:
            notes.append(f"{run.name}: no run record, so its training period cannot be checked against the test period.")
        elif pd.Timestamp(fitted_to) > panel.dates[start_row]:
            raise DataValidationError(
                f"generator run {g} was fitted with data through {fitted_to}; the test period starts after "
                f"{panel.dates[start_row].date()}: its synthetic paths would not be out of sample"
            )
        ds = spec.get("dataset")
        if ds is not None and not isinstance(dataset, ReturnPanel) and str(ds) != str(dataset):
            notes.append(f"{run.name} was fitted on {ds}, the backtest runs on {dataset}.")
        label, i = run.name, 2
        while label in gens:
            label, i = f"{run.name}_{i}", i + 1
        gens[label] = run.generator
    return gens


def run_backtest(
    agents: Sequence[str | AgentSpec | BacktestAgent],
    generators: Sequence[str | os.PathLike[str]] = (),
    *,
    dataset: str | ReturnPanel = "sp500",
    out: str | os.PathLike[str] = "runs/backtest",
    split: Split | None = None,
    test_end: str | None = None,
    n_paths: int = 32,
    horizon: int | None = None,
    seed: int = 0,
    cost_model: CostModel | None = None,
    constraints: Constraints | None = None,
    risk_free: float = 0.0,
    bootstrap_reps: int = 1000,
    confidence: float = 0.95,
    benchmark: str | None = "SP500",
    cost_multipliers: Sequence[float] = (),
    execution_lag: int = 0,
    report: bool = True,
    progress: bool = True,
    console: Console | None = None,
) -> BacktestResult:
    """Backtest agents given by spec on generators given by run folder; write every output.

    Parameters
    ----------
    agents : sequence of str, AgentSpec or BacktestAgent
        Agent specs (:mod:`factorgym.app.specs`), e.g. ``["mv:ledoit_wolf",
        AgentSpec.of("cvar", "runs/neuralfactors", draws="shared")]``, or agents already
        built. 1/N is added when absent.
    generators : sequence of path
        Generator run folders (or artifacts) whose synthetic paths to run on.
    dataset : str or ReturnPanel
        Embedded dataset name or CSV/Parquet path (or a panel).
    out : path
        Output folder: absent, empty or a previous backtest's (checked before anything
        runs); replaced as a whole at the end (:mod:`factorgym.app.backtest.output`).
    split : Split, optional
        Default :class:`~factorgym.data.Split`'s (test from 2019). Every generator run must
        have been fitted on data up to ``split.val_end`` at the latest.
    test_end : str, optional
        Last test day (default: the panel's last day).
    n_paths, horizon, seed
        Synthetic paths per generator, their length (default: the real path's), the seed.
    cost_model : CostModel, optional
        Costs as fractions of the value traded (default 7.5 / 12.5 bps).
    constraints : Constraints, optional
        Default long-only, invested up to 100%.
    risk_free : float
        **Daily** cash rate.
    bootstrap_reps, confidence
        Bootstrap of the real path.
    benchmark : str or None
        Exogenous index column for the benchmark row.
    cost_multipliers : sequence of float
        Multiples of the costs for the cost-sensitivity table (e.g. ``(0, 1, 2, 5)``;
        empty skips it). See :class:`~factorgym.app.backtest.BacktestConfig`.
    execution_lag : int
        Days between a decision and its trade (0: at the observed close; 1: the next close).
    report : bool
        Write ``report.html``.
    progress : bool
        Show a progress bar and print a summary.
    console : rich.console.Console, optional

    Returns
    -------
    BacktestResult
    """
    from factorgym.io import load_source

    check_output_folder(out)
    panel = dataset if isinstance(dataset, ReturnPanel) else load_source(str(dataset))
    split = split if split is not None else Split()
    cm = cost_model if cost_model is not None else CostModel()
    cons = constraints if constraints is not None else Constraints()
    cfg = BacktestConfig(
        split=split, test_end=test_end, n_paths=n_paths, horizon=horizon, seed=seed, cost_model=cm, constraints=cons,
        risk_free=risk_free, bootstrap_reps=bootstrap_reps, confidence=confidence, benchmark=benchmark,
        cost_multipliers=tuple(cost_multipliers), execution_lag=execution_lag,
    )  # fmt: skip
    notes: list[str] = []
    built: list[BacktestAgent] = []
    loaded: dict[str, LoadedRun] = {}
    for spec in agents:
        if isinstance(spec, BacktestAgent):
            built.append(spec)
            continue
        b = agent_from_spec(spec, cost_model=cm, constraints=cons, risk_free=risk_free, loaded=loaded)
        built.append(b.agent)
        notes.extend(b.notes)
    start_row, _ = held_out_rows(panel, split, test_end)
    gens = _generators(generators, panel, start_row, dataset, loaded, notes)
    result = backtest(built, panel, gens, cfg, progress=progress, console=console, notes=notes)
    written = result.save(out, report=report)
    if progress:
        print_summary(result, Path(out), written, console)
    return result

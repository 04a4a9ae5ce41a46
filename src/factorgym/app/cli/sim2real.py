"""``factorgym sim2real CONFIG --out DIR``: train arms x seeds in their markets (in parallel
on Ray) and measure on real data whether simulator training pays off
(:func:`factorgym.app.sim2real.run_sim2real`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from factorgym.app.cli.common import app, echo_wide

__all__ = ["sim2real"]


@app.command("sim2real")
def sim2real(
    config: Annotated[Path, typer.Argument(help="Experiment file (.toml or .json): arms, seeds, budget, split; see examples/sim2real_small.toml.")],
    out: Annotated[Path, typer.Option("--out", help="Experiment folder: agents/, runs/ (kept for resuming) and results/ (tables, report.html).")],
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Runs at once (default: every core of a local Ray, or every CPU of --address; 1: sequential, without Ray).")] = None,
    address: Annotated[str | None, typer.Option("--address", help="A running Ray cluster (auto, HOST:6379 or ray://HOST:10001); default: a local Ray.")] = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip results/report.html.")] = False,
) -> None:
    """Train every arm x seed with one budget, evaluate each policy on the real validation and
    test periods (execution lags from the file) beside 1/N and Ledoit-Wolf mean-variance, and
    write IQM / probability-of-improvement tables, learning curves and a report.

    Costs in the file are basis points (buy_bps, sell_bps). Finished runs are reused when the
    command is run again with the same settings (an interrupted experiment resumes).
    """
    from factorgym.app.sim2real import run_sim2real

    result = run_sim2real(config, out, workers=workers, address=address, progress=True, report=not no_report)
    s = result.summary
    lag = s["selection_lag"]
    best = s.get("best")
    if best is not None:
        poi = best.get("poi_vs_reference")
        echo_wide(
            f"best arm on validation (lag {lag}): {s['best_arm']}: test IQM Sharpe {best['test_sharpe_iqm']:.2f} "
            f"(1/N {s['equal_weight_test_sharpe'][str(lag)]:.2f})"
            + ("" if poi is None else f", P(improvement) over {s['reference_arm']} {poi:.2f}")
        )
    echo_wide(f"{s['n_runs']} runs ({s['n_trials']} trials counted) -> {out / 'results'}")

"""``factorgym demo``: the main job end to end (:mod:`factorgym.app.demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from factorgym.app.cli.common import app

__all__ = ["demo"]


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option(help="Output folder; finished stages found there are reused.")] = Path("runs/demo"),
    seed: Annotated[int, typer.Option(help="Seed of every stage.")] = 0,
) -> None:
    """The main job: fit generators, evaluate them, backtest agents, train PPO, stress, write report.html."""
    from factorgym.app.demo import DemoConfig, run_demo

    run_demo(DemoConfig(out=str(out), seed=seed))

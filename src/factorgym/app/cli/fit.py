"""``factorgym fit``: fit a generator into a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from factorgym.app.cli.common import DatasetOpt, app, echo_wide

__all__ = ["ParamOpt", "fit"]

ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Generator parameter override key=value (JSON values), repeatable, e.g. --set n_factors=8."),
]


@app.command("fit")
def fit(
    generator: Annotated[str, typer.Argument(help="Generator kind: neuralfactors, diffusion, gaussian, ledoit_wolf, ppca, garch, bootstrap.")],
    dataset: DatasetOpt = "sp500",
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default runs/GENERATOR).")] = None,
    train_end: Annotated[str, typer.Option(help="Last training date (inclusive).")] = "2013-12-31",
    val_end: Annotated[str, typer.Option(help="Last validation date (inclusive); test follows.")] = "2018-12-31",
    seed: Annotated[int, typer.Option(help="Seed of every random draw of the fit.")] = 0,
    params: ParamOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Refit even if the run folder holds a finished run.")] = False,
) -> None:
    """Fit a generator on the train split (selecting on validation) into a run folder.

    Re-running with the same settings reuses the finished run; an interrupted fit resumes
    from its checkpoint in RUN/.pending/train/. The folder keeps its finished run until the
    new fit is complete; a second fit into a folder that is being fitted is refused.
    """
    from factorgym.app.specs import parse_params
    from factorgym.generators.runs import RunSpec, fit_run

    spec = RunSpec(kind=generator, dataset=dataset, train_end=train_end, val_end=val_end, seed=seed, params=parse_params(params))
    out_dir = out or Path("runs") / generator
    _, record = fit_run(spec, out_dir, force=force)
    echo_wide(f"{generator}: {record['status']} in {record.get('fit_seconds', 0):.1f}s -> {out_dir}")

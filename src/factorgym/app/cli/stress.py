"""``factorgym stress``: generate a stress scenario set, save it with its specification, and
summarise the losses of portfolios (``--portfolio``, :func:`factorgym.app.specs.read_weights`)
and agents (``--agent``, :func:`factorgym.app.stress.stress_agents`) over it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from factorgym.app.cli.common import app, echo_wide

__all__ = ["stress"]


@app.command("stress")
def stress(
    kind: Annotated[str | None, typer.Argument(help="factor_shock, vol_regime, crisis or replay (omit with --from).")] = None,
    run: Annotated[str | None, typer.Option(help="Generator run folder or artifact (not for replay).")] = None,
    date: Annotated[str | None, typer.Option(help="Last real day of the conditioning history, e.g. 2020-02-19.")] = None,
    window: Annotated[str | None, typer.Option(help="Named window for replay: gfc-2008 or covid-2020.")] = None,
    horizon: Annotated[int, typer.Option(help="Days per path (factor_shock is one day).")] = 1,
    scenarios: Annotated[int, typer.Option("--scenarios", "-n", help="Number of scenario paths.")] = 2000,
    quantile: Annotated[float | None, typer.Option(help="factor_shock: keep the market factor below this quantile.")] = 0.01,
    shift_sd: Annotated[float | None, typer.Option(help="factor_shock: shift the market factor by this many sd instead.")] = None,
    vol_scale: Annotated[float, typer.Option(help="vol_regime: dispersion multiplier.")] = 2.0,
    dataset: Annotated[str, typer.Option(help="Embedded dataset or data file of the context.")] = "sp500",
    seed: Annotated[int, typer.Option(help="Seed of the scenario draws.")] = 0,
    portfolio: Annotated[list[str] | None, typer.Option(help="equal, or a JSON {asset: weight} / CSV asset,weight file (repeatable).")] = None,
    agent: Annotated[list[str] | None, typer.Option(help="Agent spec run through every path after costs, e.g. mv:ledoit_wolf or sb3:runs/ppo (repeatable).")] = None,
    out: Annotated[Path | None, typer.Option(help="Parquet file to write (default runs/stress/<kind>.parquet).")] = None,
    from_file: Annotated[Path | None, typer.Option("--from", help="Regenerate a saved set exactly from its stored specification.")] = None,
) -> None:
    """Generate a stress scenario set, save it with its specification, and summarise its losses.

    Portfolios are held as constant mixes without costs; agents trade through every path
    (real history up to the context date, then the scenario's days) after 7.5 / 12.5 bps costs.
    Every --portfolio and --agent is checked before anything is generated or written; the
    scenario file, its .spec.json and its .losses.csv are written together at the end.
    """
    import json

    import numpy as np
    import pandas as pd

    from factorgym.app.specs import read_weights
    from factorgym.app.stress import build_stress_agents
    from factorgym.errors import DataValidationError
    from factorgym.generators.stress import (
        StressSpec,
        generate,
        loss_summary,
        portfolio_path_returns,
        read_scenarios,
        realised_comparison,
    )
    from factorgym.io import load_source

    if from_file is not None:
        if kind is not None:
            raise DataValidationError("give either a KIND or --from FILE, not both")
        saved = read_scenarios(from_file)
        spec = saved.spec
    else:
        if kind is None:
            raise DataValidationError("give a KIND (factor_shock, vol_regime, crisis, replay) or --from FILE")
        spec = StressSpec(
            kind, run=run, dataset=dataset, date=date, window=window, horizon=horizon, n_scenarios=scenarios, seed=seed,
            quantile=None if shift_sd is not None else quantile, shift_sd=shift_sd, vol_scale=vol_scale,
        )  # fmt: skip
    target = out or (from_file if from_file is not None else Path("runs") / "stress" / f"{spec.kind}.parquet")
    if Path(target).is_dir():
        raise DataValidationError(f"--out {target} is a folder; give the path of a .parquet file")
    panel = load_source(spec.dataset)
    portfolios = [read_weights(p, panel.assets) for p in portfolio or ([] if agent else ["equal"])]
    agents = build_stress_agents(list(agent or []))
    s = generate(spec, panel=panel)
    if from_file is not None:
        same = s.paths.shape == saved.paths.shape and bool(np.array_equal(s.paths, saved.paths))
        echo_wide(f"regenerated {from_file} from its specification: {'identical' if same else 'DIFFERENT'} paths")
        if not same:
            raise DataValidationError(f"{from_file} did not regenerate identically (different library version, data or run?)")
    rows = {pf.label: loss_summary(portfolio_path_returns(s.paths, pf.weights)) for pf in portfolios}
    if agents:
        from factorgym.app.stress import stress_agents

        for name, summ in stress_agents(s, agents, panel, seed=spec.seed).items():
            rows[f"agent {name} (after costs)"] = summ
    table = pd.DataFrame.from_dict(rows, orient="index")
    summary_path = Path(str(target) + ".losses.csv")
    s.save(target, losses=table.to_csv())  # the set, its spec and its losses swapped in as one unit
    S, H, _ = s.paths.shape  # noqa: N806
    echo_wide(f"{spec.kind}: {S} paths x {H} days from {s.context_date}; losses over the path (positive = loss):")
    echo_wide(table.to_string(float_format=lambda v: f"{v:.4f}"))
    if spec.kind == "crisis":
        try:
            cmp = realised_comparison(s, panel)
        except DataValidationError as exc:
            echo_wide(f"(no comparison with what followed: {exc})")
        else:
            echo_wide("what actually followed (equal weight): " + json.dumps({k: round(v, 4) for k, v in cmp.items()}))
    echo_wide(f"wrote {target} (+ .spec.json) and {summary_path}")

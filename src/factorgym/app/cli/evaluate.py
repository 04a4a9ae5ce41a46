"""``factorgym evaluate-generators``: score generators on held-out days."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from factorgym.app.cli.common import app, echo_wide, print_wide

if TYPE_CHECKING:
    from factorgym.data import ReturnPanel

__all__ = ["evaluate_generators"]


@app.command("evaluate-generators")
def evaluate_generators(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (or generator artifacts) to evaluate.")],
    split_part: Annotated[str, typer.Option("--split", help="Which part to score: val or test.")] = "test",
    dataset: Annotated[str | None, typer.Option("--dataset", help="Dataset (default: the one each run was fitted on).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the CSV/JSON/markdown tables.")] = Path("runs/evaluation"),
    seed: Annotated[int, typer.Option(help="Seed of the sampling-based metrics.")] = 0,
    n_samples: Annotated[int, typer.Option(help="Samples per day for sample-based metrics.")] = 1000,
    sim_paths: Annotated[int, typer.Option(help="Simulated one-year paths for stylized facts.")] = 100,
    nll_scale: Annotated[str, typer.Option(help="Return scale for NLL: pooled (one train std, as NeuralFactors) or per_asset.")] = "pooled",
    day_stride: Annotated[int, typer.Option(help="Score every k-th day only (for slow samplers such as the diffusion model).")] = 1,
    rollouts: Annotated[bool, typer.Option("--rollouts", help="Also roll paths forward from real contexts and compare them with what followed (adds rollouts.* and report.html).")] = False,
    horizons: Annotated[str, typer.Option(help="With --rollouts: path lengths in days, comma-separated.")] = "5,21,63",
    rollout_paths: Annotated[int, typer.Option(help="With --rollouts: simulated paths per context.")] = 100,
    rollout_every: Annotated[int, typer.Option(help="With --rollouts: days between contexts.")] = 10,
) -> None:
    """Score generators on held-out days: NLL, covariance, calibration, VaR, CRPS/energy, stylized facts;
    with --rollouts, multi-day paths against what followed (volatility timing, calibration, tails, drift)."""
    import numpy as np

    from factorgym.data import Split
    from factorgym.generators.evaluation import (
        RolloutOptions,
        evaluate_generator,
        evaluation_page,
        reports_table,
        rollout_diagnostics,
        rollouts_markdown,
        rollouts_table,
        save_reports,
        save_rollouts,
    )
    from factorgym.generators.runs import load_run
    from factorgym.io import load_source
    from factorgym.report.tables import to_markdown

    if split_part not in ("val", "test"):
        raise typer.BadParameter(f"--split must be val or test, got {split_part!r}")
    hs = _horizons(horizons) if rollouts else ()
    if rollouts:  # bad rollout settings are refused before the (long) one-day evaluation
        RolloutOptions(horizons=hs, n_paths=rollout_paths, every=rollout_every).checked_horizons()
    reports, rolled = [], []
    panels: dict[str, ReturnPanel] = {}
    for run in runs:
        gen, record, name = load_run(run)
        spec = (record or {}).get("spec", {})
        source = dataset or spec.get("dataset", "sp500")
        if source not in panels:
            panels[source] = load_source(source)
        split = Split(spec.get("train_end", Split.train_end), spec.get("val_end", Split.val_end))
        reports.append(
            evaluate_generator(
                gen, panels[source], split, split_part, rng=np.random.default_rng(seed), n_samples=n_samples,
                sim_paths=sim_paths, name=name, nll_scale=nll_scale, day_stride=day_stride,  # type: ignore[arg-type]
            )
        )
        if rollouts:
            rolled.append(
                rollout_diagnostics(
                    gen, panels[source], split, split_part, rng=np.random.default_rng(seed), horizons=hs,
                    n_paths=rollout_paths, every=rollout_every, name=name,
                )
            )
    table = reports_table(reports)
    save_reports(reports, out)
    print_wide(Text(to_markdown(table)))
    if rolled:
        save_rollouts(rolled, out)
        print_wide(Text("\nRollouts\n\n" + rollouts_markdown(rollouts_table(rolled))))
        evaluation_page(out).write(out / "report.html")
    echo_wide(f"\nwrote {out}/")


def _horizons(text: str) -> tuple[int, ...]:
    """``"5,21,63"`` -> ``(5, 21, 63)``; anything else is a one-line usage error."""
    try:
        hs = tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        hs = ()
    if not hs or min(hs) < 1:
        raise typer.BadParameter(f"--horizons must be positive whole days separated by commas, got {text!r}")
    return hs

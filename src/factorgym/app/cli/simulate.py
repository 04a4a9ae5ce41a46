"""``factorgym simulate``: write a scenario bank (a generator's paths, simulated ahead of time in
shards, in parallel as Ray tasks) or regenerate one from its spec
(:func:`factorgym.generators.banks.simulate_bank`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from factorgym.app.cli.common import app, echo_wide

__all__ = ["simulate"]


@app.command("simulate")
def simulate(
    run: Annotated[str | None, typer.Argument(help="Generator run folder or artifact (omit with --from).")] = None,
    paths: Annotated[int, typer.Option("--paths", "-n", help="Number of paths.")] = 1024,
    horizon: Annotated[int, typer.Option(help="Simulated days per path.")] = 252,
    contexts: Annotated[
        str,
        typer.Option(
            help="Where paths start: dates (2015-01-02,2016-01-04; round robin), every:K[:PART] (every K-th trading "
            "day of the data or of its train/val/test part) or random[:PART] (a day drawn per path).",
        ),
    ] = "random:train",
    out: Annotated[Path | None, typer.Option("--out", help="Bank folder (replaced whole at the end; default runs/banks/<run name>).")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Real history the paths start from (default: the run's dataset).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bank: path i's episode seed is that of path i of a VecPortfolioEnv with this seed.")] = 0,
    shard_size: Annotated[int, typer.Option(help="Paths per shard (one batch, one Ray task).")] = 64,
    history: Annotated[int | None, typer.Option(help="Days of real history every context needs (default: the generator's; set it to the env's window or feature warm-up).")] = None,
    workers: Annotated[int, typer.Option(help="Ray tasks at a time (1: no Ray, in this process).")] = 1,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (ray://host:10001 or auto); default a local Ray.")] = None,
    from_bank: Annotated[Path | None, typer.Option("--from", help="Regenerate this bank exactly from its spec (into --out) and check every shard.")] = None,
) -> None:
    """Simulate a scenario bank: PATHS paths of HORIZON days from a generator run.

    The bank folder holds bank.json (run and its SHA-256, dataset, contexts, seeds per path,
    shard hashes) and shards/part-NNNNN.parquet: one row per (path, day), a column per asset
    (pandas.read_parquet("BANK/shards") reads it all). The output is the same for any
    --workers. Replay it in an environment with factorgym.envs.markets.bank.BankMarket.
    """
    import time

    from factorgym.errors import DataValidationError
    from factorgym.generators.banks import read_bank, regenerate_bank, simulate_bank

    t0 = time.perf_counter()
    if from_bank is not None:
        if run is not None:
            raise DataValidationError("give either a RUN or --from BANK, not both")
        target = regenerate_bank(from_bank, out or from_bank, workers=workers, address=address)
        echo_wide(f"regenerated {from_bank} from its spec into {target}: every shard identical")
        return
    if run is None:
        raise DataValidationError("give a generator RUN folder, or --from BANK")
    target = out or Path("runs") / "banks" / Path(run).name
    simulate_bank(
        run, dataset, n_paths=paths, horizon=horizon, out=target, contexts=contexts, seed=seed,
        shard_size=shard_size, workers=workers, address=address, history=history,
    )  # fmt: skip
    spec = read_bank(target).spec
    secs = time.perf_counter() - t0
    echo_wide(
        f"{spec.generator_kind}: {spec.n_paths} paths x {spec.horizon} days in {len(spec.shards)} shards "
        f"({spec.n_paths * spec.horizon / max(secs, 1e-9):,.0f} path-days/s overall with {workers} worker(s)) -> {target}"
    )

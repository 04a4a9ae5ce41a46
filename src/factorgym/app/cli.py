"""The ``factorgym`` command line.

Every user error -- a :class:`~factorgym.errors.FactorGymError` (bad data, bad checkpoint,
infeasible constraints...), a missing or unreadable file, a bad option or command -- ends
the command with **one line on stderr and exit status 2**, never a traceback. Anything
else is a bug and keeps its traceback.

Adding a command
----------------
Decorate one function; :func:`main` does the error handling for every command::

    @app.command("fit")
    def fit(config: Path = typer.Argument(..., help="...")) -> None:
        '''Fit a generator.'''
        ...  # raise FactorGymError subclasses for user errors; return None

Group related commands under a sub-app as ``data`` does (``app.add_typer``). A command
sets a non-zero exit status with ``raise typer.Exit(code)``.

Typer vendors click as ``typer._click`` (there is no standalone ``click`` package), so the
usage-error classes are imported from there; ``typer.Abort`` and ``typer.Exit`` are public.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console, RenderableType
from rich.text import Text

try:  # typer >= 0.20 vendors click as typer._click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer depends on click itself
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # type: ignore[no-redef]

from factorgym.errors import FactorGymError

if TYPE_CHECKING:
    import numpy as np

    from factorgym.data import ReturnPanel
    from factorgym.io import FileFormat

__all__ = ["app", "data_app", "main", "print_wide"]

app = typer.Typer(
    help="Trained generative models of stock returns as market simulators.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
data_app = typer.Typer(help="Inspect datasets and data files.", no_args_is_help=True)
app.add_typer(data_app, name="data")

#: Exit status of every user error.
USAGE_ERROR = 2


def print_wide(renderable: RenderableType) -> None:
    """Print to stdout on a console wide enough that no table cell is wrapped or cut."""
    from factorgym.reporting import required_width

    probe = Console()
    Console(width=max(probe.width, required_width(renderable, probe))).print(renderable)


def read_dataset_arg(
    source: str,
    *,
    kind: Literal["auto", "prices", "returns"] = "auto",
    layout: Literal["auto", "wide", "long"] = "auto",
    date_col: str | None = None,
    asset_col: str | None = None,
    value_col: str | None = None,
    exog: Sequence[str] = (),
    static: Sequence[str] = (),
    date_format: str | None = None,
) -> tuple[ReturnPanel, FileFormat | None]:
    """:func:`factorgym.io.read_source` with the file options named by their command-line flags
    in the error when they are given for an embedded dataset."""
    from factorgym.io import is_dataset_name, read_source

    file_opts = {
        "--kind": kind != "auto", "--layout": layout != "auto", "--date-col": date_col, "--asset-col": asset_col,
        "--value-col": value_col, "--exog": exog, "--static": static, "--date-format": date_format,
    }  # fmt: skip
    used = [k for k, v in file_opts.items() if v]
    if is_dataset_name(source) and used:
        raise typer.BadParameter(f"{', '.join(used)} appl{'y' if len(used) > 1 else 'ies'} to data files, not to the embedded dataset {source!r}")
    return read_source(
        source, kind=kind, layout=layout, date_col=date_col, asset_col=asset_col, value_col=value_col,
        exog_cols=tuple(exog), static_cols=tuple(static), date_format=date_format,
    )  # fmt: skip


SourceArg = Annotated[
    str,
    typer.Argument(help="An embedded dataset name (sp500) or the path of a CSV/Parquet file (.csv, .csv.gz, .parquet)."),
]
KindOpt = Annotated[
    Literal["auto", "prices", "returns"],
    typer.Option("--kind", help="Whether a file holds prices or simple returns (auto: detect, or fail if unclear)."),
]
LayoutOpt = Annotated[
    Literal["auto", "wide", "long"],
    typer.Option("--layout", help="wide: date + one column per asset; long: date, asset, value rows (auto: detect)."),
]
DateColOpt = Annotated[str | None, typer.Option("--date-col", help="Date column of a file (default: found by name).")]
AssetColOpt = Annotated[str | None, typer.Option("--asset-col", help="Asset column of a long file.")]
ValueColOpt = Annotated[str | None, typer.Option("--value-col", help="Price/return column of a long file.")]
ExogOpt = Annotated[
    list[str] | None,
    typer.Option("--exog", help="A column (wide) or asset (long) to read as an exogenous series, e.g. an index. Repeatable."),
]
StaticOpt = Annotated[
    list[str] | None,
    typer.Option("--static", help="A per-asset attribute column of a long file, e.g. sector. Repeatable."),
]
DateFormatOpt = Annotated[
    str | None, typer.Option("--date-format", help="strptime format of non-ISO dates, e.g. %d/%m/%Y.")
]


@data_app.command("show")
def data_show(
    source: SourceArg = "sp500",
    kind: KindOpt = "auto",
    layout: LayoutOpt = "auto",
    date_col: DateColOpt = None,
    asset_col: AssetColOpt = None,
    value_col: ValueColOpt = None,
    exog: ExogOpt = None,
    static: StaticOpt = None,
    date_format: DateFormatOpt = None,
) -> None:
    """Print dates, assets, missing values, exogenous series and per-asset statistics."""
    from factorgym.reporting import panel_report

    panel, fmt = read_dataset_arg(
        source, kind=kind, layout=layout, date_col=date_col, asset_col=asset_col, value_col=value_col,
        exog=exog or (), static=static or (), date_format=date_format,
    )
    if fmt is not None:
        print_wide(Text(f"read {fmt.describe()}\n"))
    print_wide(panel_report(panel))


# ---------------------------------------------------------------------------- generators
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Generator parameter override key=value (JSON values), repeatable, e.g. --set n_factors=8."),
]


@app.command("fit")
def fit(
    generator: Annotated[str, typer.Argument(help="Generator kind: neuralfactors, diffusion, gaussian, ledoit_wolf, ppca, garch, bootstrap.")],
    dataset: Annotated[str, typer.Option("--dataset", help="Embedded dataset name or CSV/Parquet path.")] = "sp500",
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default runs/GENERATOR).")] = None,
    train_end: Annotated[str, typer.Option(help="Last training date (inclusive).")] = "2013-12-31",
    val_end: Annotated[str, typer.Option(help="Last validation date (inclusive); test follows.")] = "2018-12-31",
    seed: Annotated[int, typer.Option(help="Seed of every random draw of the fit.")] = 0,
    params: ParamOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Refit even if the run folder holds a finished run.")] = False,
) -> None:
    """Fit a generator on the train split (selecting on validation) into a run folder.

    Re-running with the same settings reuses the finished run; an interrupted fit resumes
    from its checkpoint in RUN/train/.
    """
    from factorgym.app.specs import parse_params
    from factorgym.generators.runs import RunSpec, fit_run

    spec = RunSpec(kind=generator, dataset=dataset, train_end=train_end, val_end=val_end, seed=seed, params=parse_params(params))
    out_dir = out or Path("runs") / generator
    _, record = fit_run(spec, out_dir, force=force)
    print_wide(Text(f"{generator}: {record['status']} in {record.get('fit_seconds', 0):.1f}s -> {out_dir}"))


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
) -> None:
    """Score generators on held-out days: NLL, covariance, calibration, VaR, CRPS/energy, stylized facts."""
    import numpy as np

    from factorgym.data import Split
    from factorgym.generators.evaluation import (
        evaluate_generator,
        reports_table,
        save_reports,
        to_markdown,
    )
    from factorgym.generators.runs import load_run
    from factorgym.io import load_source

    if split_part not in ("val", "test"):
        raise typer.BadParameter(f"--split must be val or test, got {split_part!r}")
    reports = []
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
    table = reports_table(reports)
    save_reports(reports, out)
    print_wide(Text(to_markdown(table)))
    print_wide(Text(f"\nwrote {out}/"))


# ---------------------------------------------------------------------------- agents
@app.command("backtest")
def backtest(
    agents: Annotated[list[str], typer.Argument(help="Agent specs, e.g. equal_weight mv:ledoit_wolf cvar:runs/neuralfactors sb3:runs/agents/ppo (see factorgym.app.backtest).")],
    generator: Annotated[list[Path] | None, typer.Option("--generator", "-g", help="Generator run folder for synthetic paths (repeatable).")] = None,
    dataset: Annotated[str, typer.Option(help="Embedded dataset name or CSV/Parquet path.")] = "sp500",
    out: Annotated[Path, typer.Option(help="Output folder (tables, daily series, report.html).")] = Path("runs/backtest"),
    train_end: Annotated[str | None, typer.Option(help="Last training date (default 2013-12-31).")] = None,
    val_end: Annotated[str | None, typer.Option(help="Last validation date; the test path starts after it (default 2018-12-31).")] = None,
    test_end: Annotated[str | None, typer.Option(help="Last test date (default: end of data).")] = None,
    n_paths: Annotated[int, typer.Option(help="Synthetic paths per generator.")] = 32,
    horizon: Annotated[int | None, typer.Option(help="Synthetic path length in days (default: the real test length).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of synthetic paths, scenario sampling and bootstraps.")] = 0,
    buy_bps: Annotated[float, typer.Option(help="Proportional cost of buys, bps.")] = 7.5,
    sell_bps: Annotated[float, typer.Option(help="Proportional cost of sells, bps.")] = 12.5,
    impact: Annotated[float, typer.Option(help="Square-root impact coefficient.")] = 0.0,
    max_weight: Annotated[float | None, typer.Option(help="Per-asset weight cap.")] = None,
    risk_free: Annotated[float, typer.Option(help="Annual cash rate.")] = 0.0,
    bootstrap_reps: Annotated[int, typer.Option(help="Stationary-bootstrap replications for confidence intervals.")] = 1000,
    confidence: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.95,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip the HTML report.")] = False,
) -> None:
    """Backtest agents on the real held-out test path and on synthetic paths of each generator."""
    from factorgym.app.backtest import backtest_cli

    backtest_cli(
        agents, generator or [], dataset=dataset, out=out, train_end=train_end, val_end=val_end, test_end=test_end,
        n_paths=n_paths, horizon=horizon, seed=seed, buy_bps=buy_bps, sell_bps=sell_bps, impact=impact,
        max_weight=max_weight, risk_free=risk_free, bootstrap_reps=bootstrap_reps, confidence=confidence,
        report=not no_report,
    )


@app.command("train-agent")
def train_agent(
    algo: Annotated[str, typer.Argument(help="ppo, sac, a2c or td3 (stable-baselines3).")],
    market: Annotated[str, typer.Option("--market", help="historical (train-split replay) or a generator run folder.")] = "historical",
    out: Annotated[Path | None, typer.Option(help="Agent folder (default runs/agents/ALGO-MARKET-sSEED).")] = None,
    timesteps: Annotated[int, typer.Option(help="Total environment steps.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Seed of the environments and the algorithm.")] = 0,
    n_envs: Annotated[int, typer.Option(help="Parallel paths in the batched env.")] = 8,
    dataset: Annotated[str | None, typer.Option(help="Dataset (default: the generator run's, or sp500).")] = None,
    train_end: Annotated[str | None, typer.Option(help="Last training date.")] = None,
    val_end: Annotated[str | None, typer.Option(help="Last validation date.")] = None,
    horizon: Annotated[int, typer.Option(help="Training episode length in days.")] = 252,
    window: Annotated[int, typer.Option(help="Days of returns in the observation.")] = 20,
    action_mode: Annotated[str, typer.Option(help="softmax, simplex or long_short.")] = "softmax",
    reward: Annotated[str, typer.Option(help="log, differential_sharpe, mean_variance, drawdown or cvar.")] = "log",
    buy_bps: Annotated[float, typer.Option(help="Proportional cost of buys, bps.")] = 7.5,
    sell_bps: Annotated[float, typer.Option(help="Proportional cost of sells, bps.")] = 12.5,
    eval_freq: Annotated[int, typer.Option(help="Steps between validation evaluations.")] = 10_000,
    eval_episodes: Annotated[int, typer.Option(help="Validation episodes per evaluation.")] = 5,
    params: Annotated[list[str] | None, typer.Option("--set", help="SB3 keyword argument key=value (JSON), repeatable.")] = None,
    env_params: Annotated[list[str] | None, typer.Option("--env", help="Further env option key=value (JSON), repeatable.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing agent folder.")] = False,
) -> None:
    """Train a stable-baselines3 agent in a generator market or on historical replay, validating on real data."""
    from factorgym.app.train import train_agent_cli

    train_agent_cli(
        algo, market, out, timesteps, seed, n_envs, dataset, train_end, val_end, horizon, window, action_mode, reward,
        buy_bps * 1e-4, sell_bps * 1e-4, eval_freq, eval_episodes, params, env_params, progress=True,
        overwrite=overwrite, echo=lambda line: print_wide(Text(line)),
    )


# ---------------------------------------------------------------------------- stress
def _read_weights(spec: str | None, assets: Sequence[str]) -> tuple[str, np.ndarray]:
    """``None``/``equal``: 1/N; else a JSON file ``{asset: weight}`` or a CSV with columns
    ``asset,weight`` (assets not named get 0; cash is ``1 - sum``)."""
    import json

    import numpy as np
    import pandas as pd

    from factorgym.errors import DataValidationError

    n = len(assets)
    if spec is None or spec == "equal":
        return "1/N", np.full(n, 1.0 / n)
    path = Path(spec)
    if path.suffix.lower() == ".json":
        raw = {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
    else:
        df = pd.read_csv(path)
        if not {"asset", "weight"} <= set(df.columns):
            raise DataValidationError(f"{path} needs columns asset,weight; it has {list(df.columns)}")
        raw = dict(zip(df["asset"].astype(str), df["weight"].astype(float), strict=True))
    unknown = sorted(set(raw) - set(assets))
    if unknown:
        raise DataValidationError(f"{path} names assets the scenarios do not hold: {unknown[:5]}")
    w = np.array([raw.get(a, 0.0) for a in assets])
    if not np.isfinite(w).all():
        raise DataValidationError(f"{path} has non-finite weights")
    return path.stem, w


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
    """
    import json

    import numpy as np
    import pandas as pd

    from factorgym.artifacts import atomic_write_text
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
        panel = load_source(spec.dataset)
        s = generate(spec, panel=panel)
        same = s.paths.shape == saved.paths.shape and bool(np.array_equal(s.paths, saved.paths))
        print_wide(Text(f"regenerated {from_file} from its specification: {'identical' if same else 'DIFFERENT'} paths"))
        if not same:
            raise DataValidationError(f"{from_file} did not regenerate identically (different library version, data or run?)")
    else:
        if kind is None:
            raise DataValidationError("give a KIND (factor_shock, vol_regime, crisis, replay) or --from FILE")
        spec = StressSpec(
            kind, run=run, dataset=dataset, date=date, window=window, horizon=horizon, n_scenarios=scenarios, seed=seed,
            quantile=None if shift_sd is not None else quantile, shift_sd=shift_sd, vol_scale=vol_scale,
        )
        panel = load_source(spec.dataset)
        s = generate(spec, panel=panel)
    target = out or (from_file if from_file is not None else Path("runs") / "stress" / f"{spec.kind}.parquet")
    if from_file is None or out is not None:
        s.save(target)
    rows = {}
    for p in portfolio or ([] if agent else ["equal"]):
        label, w = _read_weights(p, s.assets)
        rows[label] = loss_summary(portfolio_path_returns(s.paths, w))
    if agent:
        from factorgym.app.backtest import stress_agents

        for name, summ in stress_agents(s, list(agent), panel, seed=spec.seed).items():
            rows[f"agent {name} (after costs)"] = summ
    table = pd.DataFrame.from_dict(rows, orient="index")
    summary_path = Path(str(target) + ".losses.csv")
    atomic_write_text(summary_path, table.to_csv())
    S, H, _ = s.paths.shape  # noqa: N806
    print_wide(Text(f"{spec.kind}: {S} paths x {H} days from {s.context_date}; losses over the path (positive = loss):"))
    print_wide(Text(table.to_string(float_format=lambda v: f"{v:.4f}")))
    if spec.kind == "crisis":
        try:
            cmp = realised_comparison(s, panel)
        except DataValidationError as exc:
            print_wide(Text(f"(no comparison with what followed: {exc})"))
        else:
            print_wide(Text("what actually followed (equal weight): " + json.dumps({k: round(v, 4) for k, v in cmp.items()})))
    print_wide(Text(f"wrote {target} (+ .spec.json) and {summary_path}"))


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option(help="Output folder; finished stages found there are reused.")] = Path("runs/demo"),
    seed: Annotated[int, typer.Option(help="Seed of every stage.")] = 0,
) -> None:
    """The main job: fit generators, evaluate them, backtest agents, train PPO, stress, write report.html."""
    from factorgym.app.demo import DemoConfig, run_demo

    run_demo(DemoConfig(out=str(out), seed=seed))


# ---------------------------------------------------------------------------- entry point
def _one_line(message: str) -> str:
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    return "; ".join(lines) or "(no message)"


def _error(message: str) -> None:
    sys.stderr.write(f"error: {_one_line(message)}\n")
    sys.stderr.flush()


def _os_message(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (the console script exits with it).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        0 on success; 2 for every user error (printed as one ``error: ...`` line on
        stderr), and for a missing command (after printing the help); 1 when aborted;
        130 on Ctrl-C; or the code of a ``typer.Exit`` raised by a command.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        rv = app(args=args, prog_name="factorgym", standalone_mode=False)
    except NoArgsIsHelpError:
        return USAGE_ERROR  # typer printed the help already
    except UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _error(f"{_one_line(exc.format_message())}{hint}")
        return USAGE_ERROR
    except ClickException as exc:
        _error(exc.format_message())
        return USAGE_ERROR
    except typer.Abort:
        _error("aborted")
        return 1
    except FactorGymError as exc:
        _error(str(exc))
        return USAGE_ERROR
    except OSError as exc:  # missing / unreadable / unwritable files
        _error(_os_message(exc))
        return USAGE_ERROR
    # with standalone_mode=False, typer returns the code of a typer.Exit (and 130 on Ctrl-C)
    if isinstance(rv, int) and not isinstance(rv, bool):
        return rv
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

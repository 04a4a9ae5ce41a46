"""Running a backtest: one agent on one market (:func:`run_agent`, through the one rollout
:func:`factorgym.envs.rollout.rollout`), and every agent on the real held-out path and on
each generator's synthetic paths (:func:`backtest`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from factorgym import metrics as M
from factorgym.agents.baselines import BuyAndHold, EqualWeight, market_returns
from factorgym.app.backtest.agent import BacktestAgent
from factorgym.app.backtest.config import BacktestConfig, held_out_rows, synthetic_episode_seeds
from factorgym.app.backtest.result import BacktestResult
from factorgym.app.backtest.sensitivity import cost_sensitivity_table, scaled_cost_model
from factorgym.app.backtest.tables import real_tables, synthetic_tables
from factorgym.costs import CostModel
from factorgym.data import ReturnPanel
from factorgym.envs.actions import Constraints
from factorgym.envs.markets import GenerativeMarket, HistoricalMarket, Market
from factorgym.envs.rollout import PathRun, rollout
from factorgym.errors import DataValidationError
from factorgym.progress import Progress

if TYPE_CHECKING:
    from rich.console import Console

    from factorgym.generators.base import ReturnGenerator

__all__ = ["backtest", "run_agent"]


def run_agent(
    agent: BacktestAgent,
    market: Market,
    episode_seeds: Sequence[int],
    *,
    cost_model: CostModel,
    constraints: Constraints,
    risk_free: float = 0.0,
    execution_lag: int = 0,
    seed: int = 0,
    record_weights: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> PathRun:
    """Run one agent on ``len(episode_seeds)`` paths of ``market`` for one episode each.

    The agent acts through :class:`~factorgym.envs.vec_env.VecPortfolioEnv` (the same engine
    as :class:`~factorgym.envs.portfolio_env.PortfolioEnv`) with the given costs,
    constraints and cash rate, in the one rollout loop (:func:`factorgym.envs.rollout.rollout`);
    path ``i`` starts with ``reset(options={"episode_seed": episode_seeds[i]})``. The agent is
    reset with ``seed`` first (its random stream for path ``i`` is ``(seed, i)``).

    Parameters
    ----------
    agent : BacktestAgent
    market : Market
        Fixed start (no random start), one horizon for every path.
    episode_seeds : sequence of int
    cost_model, constraints, risk_free, execution_lag
        The run's accounting (``risk_free`` daily; ``execution_lag`` in days).
    seed : int
        Seed of the agent's random streams (when it has none of its own).
    record_weights : bool
        Keep the target weights of every day (``(H, P, N)``).
    on_step : callable, optional
        Called with 1 after every day (progress bars).

    Returns
    -------
    PathRun
    """
    from factorgym.envs.vec_env import VecPortfolioEnv

    P = len(episode_seeds)
    if P < 1:
        raise DataValidationError("run_agent needs at least one episode seed")
    if isinstance(market, HistoricalMarket) and agent.needs_predictor and market.predictor is None:
        raise DataValidationError(f"agent {agent.name!r} observes generator moments: give it a predictor (predictor=RUN)")
    env = VecPortfolioEnv(
        market, P, cost_model=cost_model, constraints=constraints, risk_free=risk_free, execution_lag=execution_lag,
        **agent.env_kwargs(),
    )
    agent.reset(agent.seed if agent.seed is not None else seed)
    run = rollout(
        agent.policy, env, options=[{"episode_seed": int(s)} for s in episode_seeds], seed=int(seed),
        deterministic=agent.deterministic, record_weights=record_weights, on_step=on_step, label=f"agent {agent.name!r}",
    )
    run.counters = agent.counters()
    return run




# =========================================================================== the backtest
def _resolve_agents(agents: Sequence[Any] | Mapping[str, Any]) -> list[BacktestAgent]:
    items = list(agents.items()) if isinstance(agents, Mapping) else [(None, a) for a in agents]
    out = [BacktestAgent.wrap(a, name) for name, a in items]
    names = [a.name for a in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataValidationError(f"agent names must be unique, repeated: {dup} (use label=... in the spec)")
    if not out:
        raise DataValidationError("no agents to backtest")
    return out


def _with_reference(agents: list[BacktestAgent]) -> tuple[BacktestAgent, bool]:
    """The 1/N reference agent, appended to ``agents`` when none is there (then ``True``)."""
    ref = next((a for a in agents if a.is_equal_weight), None)
    if ref is not None:
        return ref, False
    name = "equal_weight" if "equal_weight" not in {a.name for a in agents} else "1/N"
    ref = BacktestAgent(name, EqualWeight(), window=1)
    agents.append(ref)
    return ref, True


@dataclass(frozen=True)
class _Period:
    """The rows of a backtest: the real path runs from row ``start`` (last pre-test day) to
    row ``end``; synthetic paths are ``horizon`` days from ``start``."""

    start: int
    end: int
    horizon: int
    seeds: list[int]

    @property
    def n_real(self) -> int:
        return self.end - self.start


def _run_paths(
    agents: list[BacktestAgent],
    panel: ReturnPanel,
    gens: Mapping[str, ReturnGenerator],
    period: _Period,
    cfg: BacktestConfig,
    bar: Progress,
) -> tuple[dict[str, PathRun], dict[str, dict[str, PathRun]]]:
    """Every agent on the real path, then on each generator's synthetic paths."""
    real_panel = panel.iloc(0, period.end + 1)  # nothing after the test end can be read
    context = panel.iloc(0, period.start + 1)  # generators see nothing after the start day
    acct = {"cost_model": cfg.cost_model, "constraints": cfg.constraints, "risk_free": cfg.risk_free,
            "execution_lag": cfg.execution_lag, "seed": cfg.seed}  # fmt: skip
    real: dict[str, PathRun] = {}
    for a in agents:
        bar.describe(f"{a.name} | real")
        market = HistoricalMarket(real_panel, start=period.start, horizon=None, random_start=False, predictor=a.predictor)
        _prefetch_real_path(a, real_panel, period.start, period.end)
        real[a.name] = run_agent(a, market, [cfg.seed], record_weights=True, on_step=bar.advance, **acct)
    synthetic: dict[str, dict[str, PathRun]] = {g: {} for g in gens} if period.seeds else {}
    for g, gen in gens.items() if period.seeds else ():
        gmarket = GenerativeMarket(gen, context, start=period.start, horizon=period.horizon, random_start=False)
        for a in agents:
            bar.describe(f"{a.name} | {g}")
            synthetic[g][a.name] = run_agent(a, gmarket, period.seeds, on_step=bar.advance, **acct)
        _check_same_paths(g, synthetic[g])
    return real, synthetic


def backtest(
    agents: Sequence[Any] | Mapping[str, Any],
    panel: ReturnPanel,
    generators: Mapping[str, ReturnGenerator] | None = None,
    config: BacktestConfig | None = None,
    *,
    progress: bool = False,
    console: Console | None = None,
    notes: Sequence[str] = (),
) -> BacktestResult:
    """Run agents on the real test path and on synthetic paths of each generator.

    Parameters
    ----------
    agents : sequence or mapping
        :class:`BacktestAgent` objects, agent objects (wrapped with
        :meth:`BacktestAgent.wrap`), or a mapping name -> agent. A 1/N agent is added when
        none is present (the reference of the comparisons).
    panel : ReturnPanel
        The full panel (train, validation and test rows); only rows up to the test end are
        read, and the generators see rows up to the last pre-test day only.
    generators : mapping of str to ReturnGenerator, optional
        Fitted generators by display name (fitted on data before the test period).
    config : BacktestConfig, optional
    progress : bool
        Show a progress bar (:class:`factorgym.progress.Progress`).
    console : rich.console.Console, optional
    notes : sequence of str
        Extra notes for the report.

    Returns
    -------
    BacktestResult
    """
    cfg = config if config is not None else BacktestConfig()
    gens = dict(generators or {})
    runs_agents = _resolve_agents(agents)
    all_notes = list(notes)
    ref, added = _with_reference(runs_agents)
    start, end = held_out_rows(panel, cfg.split, cfg.test_end)
    start_date, end_date = panel.dates[start], panel.dates[end]
    for a in runs_agents:
        if a.training_end is not None and pd.Timestamp(a.training_end) > start_date:
            raise DataValidationError(
                f"agent {a.name!r} (or its generator) was fitted on data through {a.training_end}, "
                f"after the test period starts ({panel.dates[start + 1].date()}): the backtest would not be out of sample"
            )
        _check_agent_accounting(a, cfg, all_notes)
    n_real = end - start
    horizon = int(cfg.horizon) if cfg.horizon is not None else n_real
    if gens and cfg.n_paths > 0 and horizon != n_real:
        all_notes.append(
            f"Synthetic paths are {horizon} days long, the real path {n_real}: terminal wealth is not comparable across them "
            "(annualised metrics are)."
        )
    period = _Period(start, end, horizon, synthetic_episode_seeds(cfg.seed, cfg.n_paths) if cfg.n_paths > 0 else [])
    extra = [m for m in cfg.cost_multipliers if m != 1.0]
    total = len(runs_agents) * (n_real * (1 + len(extra)) + (len(gens) * horizon if period.seeds else 0))
    with Progress(total, "backtest", enabled=progress, console=console) as bar:
        real, synthetic = _run_paths(runs_agents, panel, gens, period, cfg, bar)
        costs = _cost_sensitivity(runs_agents, ref.name, panel, period, cfg, real, bar)
    all_notes.extend(_cash_notes(runs_agents, real))
    real_panel = panel.iloc(0, end + 1)
    bench = _benchmark(real_panel, real[ref.name], cfg, all_notes)
    rt = real_tables(runs_agents, real, ref.name, bench, real_panel, cfg)
    st = synthetic_tables(runs_agents, synthetic, ref.name, rt.summary, cfg)
    ruined = int(st.paths["ruined"].sum()) if not st.paths.empty else 0
    if ruined:
        all_notes.append(f"{ruined} synthetic agent-paths were ruined (wealth <= 1%); they are scored flat after ruin.")
    return BacktestResult(
        config=cfg, dataset=panel.name, assets=tuple(panel.assets), start_date=start_date, end_date=end_date,
        agents=runs_agents, reference=ref.name, added_reference=added, real=real, synthetic=synthetic, benchmark=bench,
        summary=rt.summary, bootstrap=rt.bootstrap, synthetic_paths=st.paths, synthetic_summary=st.summary, gap=st.gap,
        notes=all_notes, cost_sensitivity=costs,
    )  # fmt: skip


def _cost_sensitivity(
    agents: list[BacktestAgent], ref: str, panel: ReturnPanel, period: _Period, cfg: BacktestConfig,
    real: Mapping[str, PathRun], bar: Progress,
) -> pd.DataFrame:  # fmt: skip
    """The cost-sensitivity table (:mod:`factorgym.app.backtest.sensitivity`): every agent
    re-run on the real path at each multiplier of the costs (empty without multipliers)."""
    if not cfg.cost_multipliers:
        return pd.DataFrame()
    real_panel = panel.iloc(0, period.end + 1)
    by_name = {a.name: a for a in agents}
    grid = set(cfg.cost_multipliers)
    cache: dict[tuple[str, float], tuple[float, float]] = {}

    def metrics_at(name: str, m: float) -> tuple[float, float]:
        key = (name, float(m))
        if key not in cache:
            if m == 1.0:
                r = real[name].returns(0)
            else:
                a = by_name[name]
                bar.describe(f"{name} | real, {m:g}x costs")
                market = HistoricalMarket(real_panel, start=period.start, horizon=None, random_start=False, predictor=a.predictor)
                with _planning_costs(a, m):
                    run = run_agent(
                        a, market, [cfg.seed], cost_model=scaled_cost_model(cfg.cost_model, m), constraints=cfg.constraints,
                        risk_free=cfg.risk_free, execution_lag=cfg.execution_lag, seed=cfg.seed,
                        on_step=bar.advance if m in grid else None,
                    )  # fmt: skip
                r = run.returns(0)
            cache[key] = (float(M.sharpe_ratio(r, cfg.risk_free, cfg.periods_per_year)), float(M.annualised_return(r, cfg.periods_per_year)))
        return cache[key]

    return cost_sensitivity_table([a.name for a in agents], ref, metrics_at, cfg.cost_multipliers, cfg.cost_model)


@contextmanager
def _planning_costs(agent: BacktestAgent, m: float) -> Iterator[None]:
    """Within the block, an agent that plans with a cost model (an optimizer, buy-and-hold's
    self-financing purchase) plans with it scaled by ``m``; restored afterwards."""
    from factorgym.agents.optimizers import OptimizerAgent

    p = agent.policy
    if not isinstance(p, OptimizerAgent | BuyAndHold):
        yield
        return
    saved = p.cost_model
    p.cost_model = scaled_cost_model(saved if saved is not None else CostModel(), m)
    try:
        yield
    finally:
        p.cost_model = saved


def _cash_notes(agents: list[BacktestAgent], real: Mapping[str, PathRun]) -> list[str]:
    """Notes on agents that stayed (almost) entirely in cash on the real path."""
    out = []
    for a in agents:
        w = real[a.name].weights
        if w is not None and float(np.abs(w).sum(axis=-1).mean()) < 0.01:
            out.append(
                f"{a.name} stayed (almost) entirely in cash on the real path (mean gross exposure "
                f"{float(np.abs(w).sum(axis=-1).mean()):.2%}): its risk aversion may be too high for daily returns."
            )
    return out


def _benchmark(real_panel: ReturnPanel, ref_run: PathRun, cfg: BacktestConfig, notes: list[str]) -> pd.Series | None:
    """The index's daily returns over the real path's days (``None`` with a note when absent)."""
    if cfg.benchmark is None:
        return None
    if real_panel.exog is not None and cfg.benchmark in real_panel.exog.columns:
        dates = pd.DatetimeIndex([pd.Timestamp(d) for d in ref_run.dates])
        return market_returns(real_panel, dates=dates, column=cfg.benchmark)
    notes.append(f"No benchmark row: {real_panel.name} has no exogenous column {cfg.benchmark!r}.")
    return None


def _prefetch_real_path(a: BacktestAgent, real_panel: ReturnPanel, start: int, end: int, chunk: int = 128) -> None:
    """Batch-predict every window the agent will observe on the real path (rows ``start ..
    end - 1``, as :class:`HistoricalMarket` builds them: absent returns read as 0) into its
    generator's prediction cache. Each window holds only days up to its own decision day,
    so this changes the speed, not the information or the result."""
    from factorgym.agents.estimators import GeneratorSource
    from factorgym.agents.optimizers import OptimizerAgent

    p = a.policy
    if not isinstance(p, OptimizerAgent) or not isinstance(p.source, GeneratorSource) or p.source.cache is None:
        return
    R = np.ascontiguousarray(real_panel.filled(0.0))  # noqa: N806
    W = int(a.window)  # noqa: N806
    days = np.arange(max(start, W - 1), end)
    for c0 in range(0, len(days), chunk):
        p.source.prefetch(np.stack([R[t - W + 1 : t + 1] for t in days[c0 : c0 + chunk]]))


def _check_agent_accounting(a: BacktestAgent, cfg: BacktestConfig, notes: list[str]) -> None:
    """Note optimizers that plan with other costs or another cash rate than the run's (they still run)."""
    from factorgym.agents.optimizers import OptimizerAgent

    p = a.policy
    if not isinstance(p, OptimizerAgent):
        return
    if p.cost_model_ != cfg.cost_model:
        notes.append(f"{a.name} plans with costs {p.cost_model_}, the run charges {cfg.cost_model}.")
    if isinstance(p.risk_free, float | int) and float(p.risk_free) != cfg.risk_free:
        notes.append(f"{a.name} assumes a cash rate of {p.risk_free}/day, the run books {cfg.risk_free}/day.")


def _check_same_paths(gen: str, runs: Mapping[str, PathRun]) -> None:
    """Every agent must have faced the same synthetic returns on each path."""
    items = list(runs.items())
    first_name, first = items[0]
    for name, run in items[1:]:
        for p, (h0, h1, t0, t1) in enumerate(zip(first.path_hash, run.path_hash, first.terminated, run.terminated, strict=True)):
            if h0 != h1 and not (t0 or t1):
                raise DataValidationError(
                    f"generator {gen!r} produced different returns on path {p} for {first_name!r} and {name!r}: its "
                    "PathSimulator must depend only on the starting window and the path's random stream"
                )

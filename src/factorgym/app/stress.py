"""Agents through stress scenarios: the loss distribution of saved agents over a scenario
set, after costs (``factorgym stress --agent``; the demo's stress stage)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from factorgym.app.agent_factory import LoadedRun, agent_from_spec
from factorgym.app.backtest.agent import BacktestAgent
from factorgym.app.backtest.run import run_agent
from factorgym.app.specs import AgentSpec
from factorgym.costs import CostModel
from factorgym.data import ReturnPanel
from factorgym.envs.actions import Constraints
from factorgym.envs.markets import GenerativeMarket
from factorgym.errors import DataValidationError

if TYPE_CHECKING:
    from factorgym.generators.stress import ScenarioSet

__all__ = ["build_stress_agents", "stress_agents"]


def build_stress_agents(
    agents: Sequence[str | AgentSpec | BacktestAgent],
    *,
    cost_model: CostModel | None = None,
    constraints: Constraints | None = None,
) -> list[BacktestAgent]:
    """The agents of :func:`stress_agents`, built from their specs (so that a bad spec or a
    missing agent folder is reported before any scenario is generated or written).

    Raises
    ------
    FactorGymError
        For a malformed spec, a missing or damaged run or agent folder.
    """
    cm = cost_model if cost_model is not None else CostModel()
    cons = constraints if constraints is not None else Constraints()
    loaded: dict[str, LoadedRun] = {}
    return [a if isinstance(a, BacktestAgent) else agent_from_spec(a, cost_model=cm, constraints=cons, loaded=loaded).agent for a in agents]


def stress_agents(
    scenarios: ScenarioSet,
    agents: Sequence[str | AgentSpec | BacktestAgent],
    panel: ReturnPanel,
    *,
    cost_model: CostModel | None = None,
    constraints: Constraints | None = None,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Loss distribution of saved agents over a stress scenario set, after costs.

    Every agent runs through every scenario path in one
    :class:`~factorgym.envs.vec_env.VecPortfolioEnv`: it observes the real history up to the
    set's context date, then the scenario's days as they happen (never a day ahead), and
    trades with the environment's costs and constraints. Each path starts in cash on the
    context date, so the first day's purchase is paid for. The loss is minus the path's
    cumulative net return (:func:`factorgym.generators.stress.loss_summary`).

    Parameters
    ----------
    scenarios : ScenarioSet
        From :func:`factorgym.generators.stress.generate` or ``read_scenarios``.
    agents : sequence of str, AgentSpec or BacktestAgent
        Agent specs as in :func:`~factorgym.app.agent_factory.agent_from_spec`
        (``mv:ledoit_wolf``, ``sb3:runs/ppo``...) or agents already built.
    panel : ReturnPanel
        The dataset the scenarios were conditioned on (its assets, in order).
    cost_model, constraints : optional
        Default: 7.5 / 12.5 bps, long-only.
    seed : int
        Seed of the agents' random streams.

    Returns
    -------
    dict
        Agent name -> ``loss_summary`` (VaR/ES at 95/99% as positive losses, worst, mean).
    """
    from factorgym.generators.stress import ScenarioReplay, loss_summary

    paths = np.asarray(scenarios.paths)
    if tuple(scenarios.assets) != tuple(panel.assets):
        raise DataValidationError("the scenarios' assets differ from the panel's")
    S, H, _ = paths.shape  # noqa: N806
    if scenarios.context_date is None:
        raise DataValidationError("the scenario set has no context date to start the agents from")
    t = panel.index_of(str(scenarios.context_date))
    if scenarios.spec.kind == "replay":  # a replay's context date is its first day: start the day before
        t -= 1
    cm = cost_model if cost_model is not None else CostModel()
    cons = constraints if constraints is not None else Constraints()
    market = GenerativeMarket(ScenarioReplay(scenarios), panel.iloc(0, t + 1), start=t, horizon=H, random_start=False)  # type: ignore[arg-type]
    out: dict[str, dict[str, float]] = {}
    for agent in build_stress_agents(agents, cost_model=cm, constraints=cons):
        run = run_agent(agent, market, list(range(S)), cost_model=cm, constraints=cons, seed=seed)
        growth = np.prod(1.0 + run.net_return, axis=0) - 1.0  # (S,) after costs
        out[agent.name] = loss_summary(growth)
    return out

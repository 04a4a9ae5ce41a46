"""Agents from specs: :func:`agent_from_spec` builds the agent an :class:`~factorgym.app.specs.AgentSpec`
(or its text) describes, solving against a run's costs and constraints, without writing
files or printing.

>>> from factorgym.app.agent_factory import agent_from_spec
>>> from factorgym.app.specs import AgentSpec
>>> agent, notes = agent_from_spec(AgentSpec.of("mv", "ledoit_wolf", gamma=50))
>>> agent.name, agent.window
('mv:ledoit_wolf', 252)

Generator runs named by several specs are loaded once when the same ``loaded`` dict is
passed (:func:`load_generator_run`): the agents then share the generator and one
prediction cache.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd

from factorgym.agents.baselines import BuyAndHold, EqualWeight
from factorgym.agents.protocol import Agent
from factorgym.app.backtest.agent import (
    DEFAULT_HISTORY_WINDOW,
    BacktestAgent,
    BuiltAgent,
    sb3_agent,
)
from factorgym.app.specs import ESTIMATORS, AgentSpec, parse_agent_spec
from factorgym.costs import CostModel
from factorgym.envs.actions import Constraints
from factorgym.errors import DataValidationError, FactorGymError

if TYPE_CHECKING:
    from factorgym.agents.estimators import PredictionCache
    from factorgym.generators.base import ReturnGenerator

__all__ = ["BuiltAgent", "LoadedRun", "agent_from_spec", "load_generator_run"]


class LoadedRun(NamedTuple):
    """A generator run loaded once per backtest."""

    generator: ReturnGenerator
    name: str
    #: the run's ``run.json`` record (``None`` for a bare artifact)
    record: dict[str, Any] | None
    #: shared by every agent on the run
    cache: PredictionCache

    @property
    def fitted_to(self) -> str | None:
        """Last day of the data the generator was fitted or selected on, when recorded."""
        return ((self.record or {}).get("spec") or {}).get("val_end")


def _invested(constraints: Constraints) -> Constraints:
    """``constraints`` with the budget pinned to fully invested (``sum(w) = 1``)."""
    lo, hi = constraints.budget
    if not lo <= 1.0 <= hi:
        raise DataValidationError(f"invested=true needs a budget that allows sum(w) = 1, the run's budget is {constraints.budget}")
    return replace(constraints, budget=(1.0, 1.0))


def load_generator_run(path: str | os.PathLike[str], loaded: dict[str, LoadedRun] | None = None) -> LoadedRun:
    """Load a generator run once per backtest: ``loaded`` (keyed by the resolved path)
    shares the generator and one :class:`~factorgym.agents.estimators.PredictionCache`
    between every agent and synthetic market that names the same run."""
    from factorgym.agents.estimators import PredictionCache
    from factorgym.generators.runs import load_run

    key = str(Path(path).resolve())
    if loaded is not None and key in loaded:
        return loaded[key]
    gen, record, name = load_run(path)
    entry = LoadedRun(gen, name, record, PredictionCache(gen))
    if loaded is not None:
        loaded[key] = entry
    return entry


def agent_from_spec(
    spec: str | AgentSpec,
    *,
    cost_model: CostModel | None = None,
    constraints: Constraints | None = None,
    risk_free: float = 0.0,
    loaded: dict[str, LoadedRun] | None = None,
) -> BuiltAgent:
    """Build the agent a spec describes, solving against the run's costs and constraints.

    Parameters
    ----------
    spec : str or AgentSpec
    cost_model, constraints : optional
        The backtest's (optimizers optimise against exactly what the environment charges
        and enforces; buy-and-hold self-finances its purchase under these costs).
    risk_free : float
        Daily cash rate (as the environment books it).
    loaded : dict, optional
        Runs already loaded in this backtest (see :func:`load_generator_run`); agents on the
        same run then share its generator and prediction cache.

    Returns
    -------
    BuiltAgent
        ``(agent, notes)``: the :class:`BacktestAgent` and notes on what was ignored.
    """
    from factorgym.agents.estimators import GeneratorSource, HistoricalSource
    from factorgym.agents.optimizers import MeanCVaR, MeanVariance, MinVariance

    sp = spec if isinstance(spec, AgentSpec) else parse_agent_spec(spec)
    cm = cost_model if cost_model is not None else CostModel()
    cons = constraints if constraints is not None else Constraints()
    seed = sp.option("seed", int, None)
    notes: list[str] = []
    if sp.kind == "equal_weight":
        return BuiltAgent(BacktestAgent(sp.label, EqualWeight(), window=1, seed=seed, spec=sp.text), notes)
    if sp.kind == "buy_and_hold":
        return BuiltAgent(BacktestAgent(sp.label, BuyAndHold(cost_model=cm), window=1, seed=seed, spec=sp.text), notes)
    if sp.kind == "sb3":
        return _sb3_from_spec(sp, seed)
    assert sp.arg is not None
    kind = sp.kind
    invested = sp.option("invested", bool, True)
    agent_cons = _invested(cons) if invested else cons
    trained_on = None
    training_end = None
    if sp.uses_run:
        run = load_generator_run(sp.arg, loaded)
        training_end = run.fitted_to
        source: Any = GeneratorSource(
            run.generator, n_scenarios=sp.option("n_scenarios", int, 500), draws=sp.option("draws", str, "own"), cache=run.cache
        )
        window = max(int(run.generator.min_history), sp.option("window", int, 1))
        trained_on = f"generator:{run.name}"
        for k in ("mean", "cov"):
            if k in sp.options:
                raise DataValidationError(f"option {k} of {sp.text!r} applies to estimators, not generator runs")
    else:
        mean, cov = ESTIMATORS[sp.arg]
        mean = str(sp.options.get("mean", mean))
        cov = str(sp.options.get("cov", cov))
        window = sp.option("window", int, DEFAULT_HISTORY_WINDOW)
        if window < 2:
            raise DataValidationError(f"window of {sp.text!r} must be at least 2 days")
        source = HistoricalSource(window=None, mean=mean, covariance=cov)  # type: ignore[arg-type]
        source.validate()
        for k in ("n_scenarios", "draws"):
            if k in sp.options:
                raise DataValidationError(f"option {k} of {sp.text!r} applies to generator runs only")
    common = {"constraints": agent_cons, "cost_model": cm, "risk_free": risk_free, "cost_aware": sp.option("cost_aware", bool, True), "seed": seed}
    policy: Agent
    if kind == "mv":
        policy = MeanVariance(source, gamma=sp.option("gamma", float, 100.0), **common)
    elif kind == "minvar":
        policy = MinVariance(source, gamma=sp.option("gamma", float, 100.0), **common)
    else:
        policy = MeanCVaR(source, alpha=sp.option("alpha", float, 0.95), risk_aversion=sp.option("risk_aversion", float, 1.0), **common)
    policy.validate()
    agent = BacktestAgent(sp.label, policy, window=window, seed=seed, trained_on=trained_on, spec=sp.text, training_end=training_end)
    return BuiltAgent(agent, notes)


def _training_end(meta: Mapping[str, Any]) -> str | None:
    """The latest training/selection date recorded in an RL agent's metadata, if any."""
    found: list[pd.Timestamp] = []

    def visit(d: Any, depth: int) -> None:
        if not isinstance(d, Mapping) or depth > 3:
            return
        for k, v in d.items():
            if k in ("val_end", "train_end", "last_day", "data_end", "training_end") and isinstance(v, str):
                try:
                    found.append(pd.Timestamp(v))
                except ValueError:
                    pass
            elif isinstance(v, Mapping):
                visit(v, depth + 1)

    visit(meta, 0)
    return str(max(found).date()) if found else None


def _sb3_from_spec(sp: AgentSpec, seed: int | None) -> BuiltAgent:
    assert sp.arg is not None
    try:
        from factorgym.agents.rl import load_agent  # looked up at call time (tests replace it)
    except ImportError as exc:
        raise FactorGymError(f"{sp.text}: loading RL agents needs factorgym.agents.rl ({exc})") from None
    which = str(sp.options.get("model", "auto"))
    if which not in ("auto", "best", "final"):
        raise DataValidationError(f"model of {sp.text!r} must be best, final or auto, got {which!r}")
    if which == "auto":  # the validation-selected model when training kept one
        which = "best" if Path(sp.arg).is_dir() and (Path(sp.arg) / "best_model.zip").is_file() else "final"
    model, meta_ = load_agent(sp.arg, which=which)
    meta = dict(meta_.record)
    env_kwargs = meta_.env.kwargs()
    if meta_.market.source == "mixture":  # several sources: name the market kind, not one run
        meta.setdefault("trained_on", f"market:{(meta.get('market') or {}).get('kind', 'mixture')}")
    elif not meta_.market.is_historical:
        meta.setdefault("generator", str(meta_.market.source))
    predictor = None
    pred_path = sp.options.get("predictor") or meta.get("predictor_run")
    if pred_path:
        predictor = load_generator_run(str(pred_path)).generator
    trained_on = meta.get("trained_on")
    if trained_on is None and isinstance(meta.get("generator"), str):
        trained_on = f"generator:{Path(meta['generator']).name}"
    return sb3_agent(
        model,
        env_kwargs,
        name=sp.label,
        predictor=predictor,
        trained_on=None if trained_on is None else str(trained_on),
        training_end=_training_end(meta),
        deterministic=sp.option("deterministic", bool, True),
        seed=seed,
        spec=sp.text,
    )


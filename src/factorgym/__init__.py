"""factorgym: trained generative models of stock returns as market simulators.

The names a script needs are exported here; each is loaded on first use, so ``import
factorgym`` stays light (numpy, pandas, scipy: no torch, no stable-baselines3).

>>> import factorgym as fg
>>> panel = fg.load_dataset("sp500")                       # doctest: +SKIP
>>> run = fg.fit_run(fg.RunSpec(kind="ledoit_wolf"), "runs/lw")   # doctest: +SKIP

The package has five floors, each importing only the floors below it (checked by
import-linter, see ``docs/architecture.md``)::

    app         factorgym.app         command line, demo, backtest, specs, stress runs
    agents      factorgym.agents      optimizers, baselines, stable-baselines3 RL
    envs        factorgym.envs        markets, PortfolioEnv, VecPortfolioEnv, the rollout
    generators  factorgym.generators  NeuralFactors, diffusion, classical baselines, runs
    core        factorgym.*           data, io, features, costs, constraints, metrics, report

This module is the facade above all of them: it imports nothing from them until a name is
asked for (no static import either, so that a core module's ``from factorgym import
__version__`` never reaches an upper floor).
"""

from __future__ import annotations

import importlib
from typing import Any

from factorgym.data import ReturnPanel, Split, load_dataset, synthetic_factor_panel
from factorgym.errors import (
    CheckpointError,
    DataValidationError,
    FactorGymError,
    InfeasibleError,
    NotFittedError,
)

__version__ = "0.1.0"

#: Public name -> module that defines it (loaded on first access).
_LAZY: dict[str, str] = {
    # core
    "read_panel": "factorgym.io",
    "read_source": "factorgym.io",
    "write_panel": "factorgym.io",
    "CostModel": "factorgym.costs",
    "Constraints": "factorgym.constraints",
    "FeatureConfig": "factorgym.features",
    "portfolio_metrics": "factorgym.metrics",
    # generators
    "RunSpec": "factorgym.generators.runs",
    "fit_run": "factorgym.generators.runs",
    "load_run": "factorgym.generators.runs",
    "load_generator": "factorgym.generators.base",
    "ReturnGenerator": "factorgym.generators.base",
    "NeuralFactors": "factorgym.generators.neuralfactors",
    "DiffusionGenerator": "factorgym.generators.diffusion",
    "evaluate_generator": "factorgym.generators.evaluation",
    "StressSpec": "factorgym.generators.stress",
    # envs
    "EnvConfig": "factorgym.envs.config",
    "PortfolioEnv": "factorgym.envs.portfolio_env",
    "VecPortfolioEnv": "factorgym.envs.vec_env",
    "HistoricalMarket": "factorgym.envs.markets",
    "GenerativeMarket": "factorgym.envs.markets",
    # agents
    "EqualWeight": "factorgym.agents.baselines",
    "BuyAndHold": "factorgym.agents.baselines",
    "MeanVariance": "factorgym.agents.optimizers",
    "MinVariance": "factorgym.agents.optimizers",
    "MeanCVaR": "factorgym.agents.optimizers",
    "train_agent": "factorgym.agents.rl",
    "load_agent": "factorgym.agents.rl",
    "MarketSpec": "factorgym.agents.rl",
    "evaluate_policy_on": "factorgym.agents.rl",
    # app
    "backtest": "factorgym.app.backtest",
    "BacktestConfig": "factorgym.app.backtest",
    "agent_from_spec": "factorgym.app.agent_factory",
}

__all__ = [
    "BacktestConfig",
    "BuyAndHold",
    "CheckpointError",
    "Constraints",
    "CostModel",
    "DataValidationError",
    "DiffusionGenerator",
    "EnvConfig",
    "EqualWeight",
    "FactorGymError",
    "FeatureConfig",
    "GenerativeMarket",
    "HistoricalMarket",
    "InfeasibleError",
    "MarketSpec",
    "MeanCVaR",
    "MeanVariance",
    "MinVariance",
    "NeuralFactors",
    "NotFittedError",
    "PortfolioEnv",
    "ReturnGenerator",
    "ReturnPanel",
    "RunSpec",
    "Split",
    "StressSpec",
    "VecPortfolioEnv",
    "__version__",
    "agent_from_spec",
    "backtest",
    "evaluate_generator",
    "evaluate_policy_on",
    "fit_run",
    "load_agent",
    "load_dataset",
    "load_generator",
    "load_run",
    "portfolio_metrics",
    "read_panel",
    "read_source",
    "synthetic_factor_panel",
    "train_agent",
    "write_panel",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'factorgym' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

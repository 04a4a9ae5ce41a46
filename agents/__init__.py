"""Portfolio agents: cvxpy optimizers, simple baselines and stable-baselines3 adapters.

Every agent follows one protocol, stable-baselines3's
``predict(obs, state=None, episode_start=None, deterministic=True) -> (action, state)``,
so one rollout (:func:`factorgym.envs.rollout.rollout`) runs optimizers and SB3 models
alike; backtests live on the app floor (:mod:`factorgym.app.backtest`, or
``factorgym.backtest``). The RL helpers (:mod:`factorgym.agents.rl`) import stable-baselines3 and torch, so
they are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "MeanVariance": "factorgym.agents.optimizers",
    "MeanCVaR": "factorgym.agents.optimizers",
    "MinVariance": "factorgym.agents.optimizers",
    "EqualWeight": "factorgym.agents.baselines",
    "BuyAndHold": "factorgym.agents.baselines",
    "HistoricalSource": "factorgym.agents.estimators",
    "GeneratorSource": "factorgym.agents.estimators",
    "train_agent": "factorgym.agents.rl",
    "load_agent": "factorgym.agents.rl",
    "evaluate_policy_on": "factorgym.agents.rl",
    "MarketSpec": "factorgym.agents.rl",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'factorgym.agents' has no attribute {name!r}")

"""Gymnasium portfolio environments (numpy at step time; torch is never imported here).

* :class:`PortfolioEnv` (registered as ``"factorgym/Portfolio-v0"``): one path, Gymnasium API.
* :class:`VecPortfolioEnv`: many paths in one batched call, stable-baselines3 ``VecEnv`` API
  (imported lazily: it pulls in stable-baselines3 and torch).
* Markets: :class:`HistoricalMarket` (real history) and :class:`GenerativeMarket` (a trained
  generator rolled forward on its own samples).
* Options: :class:`EnvConfig` (:mod:`factorgym.envs.config`), the one list of them.
* Actions: :mod:`factorgym.envs.actions` (constraints: the core :mod:`factorgym.constraints`,
  re-exported); accounting: :mod:`factorgym.envs.accounting`; rewards:
  :mod:`factorgym.envs.rewards`; the one policy rollout: :mod:`factorgym.envs.rollout`.

Internals (the batched engine :class:`~factorgym.envs.engine.PortfolioEngine`,
:func:`~factorgym.envs.accounting.settle_day`, the test-only
:class:`~factorgym.envs.wrappers.LookaheadWrapper`) are importable from their modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium

from factorgym.constraints import (
    FEASIBILITY_TOL,
    Constraints,
    InfeasibleActionError,
    check_feasible,
)
from factorgym.envs.accounting import DayAccounts
from factorgym.envs.actions import ACTION_MODES, ActionMapper
from factorgym.envs.config import ENV_KEYS, EnvConfig
from factorgym.envs.engine import episode_streams
from factorgym.envs.markets import GenerativeMarket, HistoricalMarket, Market, ObservationConfig
from factorgym.envs.portfolio_env import PortfolioEnv
from factorgym.envs.rewards import REWARDS, Reward, make_reward
from factorgym.envs.wrappers import EpisodeStatistics, episode_statistics

if TYPE_CHECKING:
    from factorgym.envs.vec_env import VecPortfolioEnv

__all__ = [
    "ACTION_MODES",
    "ENV_ID",
    "ENV_KEYS",
    "FEASIBILITY_TOL",
    "REWARDS",
    "ActionMapper",
    "Constraints",
    "DayAccounts",
    "EnvConfig",
    "EpisodeStatistics",
    "GenerativeMarket",
    "HistoricalMarket",
    "InfeasibleActionError",
    "Market",
    "ObservationConfig",
    "PortfolioEnv",
    "Reward",
    "VecPortfolioEnv",
    "check_feasible",
    "episode_statistics",
    "episode_streams",
    "make_reward",
]

#: Gymnasium id of :class:`PortfolioEnv`.
ENV_ID = "factorgym/Portfolio-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="factorgym.envs.portfolio_env:PortfolioEnv")


def __getattr__(name: str) -> Any:
    if name == "VecPortfolioEnv":
        from factorgym.envs.vec_env import VecPortfolioEnv

        return VecPortfolioEnv
    raise AttributeError(f"module 'factorgym.envs' has no attribute {name!r}")

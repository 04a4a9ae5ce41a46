"""Gymnasium portfolio environments (numpy at step time; torch is never imported here).

* :class:`PortfolioEnv` (registered as ``"factorgym/Portfolio-v0"``): one path, Gymnasium API.
* :class:`VecPortfolioEnv`: many paths in one batched call, stable-baselines3 ``VecEnv`` API
  (imported lazily: it pulls in stable-baselines3 and torch).
* Markets: :class:`HistoricalMarket` (real history) and :class:`GenerativeMarket` (a trained
  generator rolled forward on its own samples).
* Actions and constraints: :mod:`factorgym.envs.actions`; accounting:
  :mod:`factorgym.envs.accounting`; rewards: :mod:`factorgym.envs.rewards`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium

from factorgym.envs.accounting import DayAccounts, settle_day
from factorgym.envs.actions import (
    ACTION_MODES,
    FEASIBILITY_TOL,
    ActionMapper,
    Constraints,
    InfeasibleActionError,
    check_feasible,
)
from factorgym.envs.markets import GenerativeMarket, HistoricalMarket, Market, ObservationConfig
from factorgym.envs.portfolio_env import PortfolioEngine, PortfolioEnv, episode_streams
from factorgym.envs.rewards import REWARDS, Reward, make_reward
from factorgym.envs.wrappers import EpisodeStatistics, LookaheadWrapper, episode_statistics

if TYPE_CHECKING:
    from factorgym.envs.vec_env import VecPortfolioEnv

__all__ = [
    "ACTION_MODES",
    "ENV_ID",
    "FEASIBILITY_TOL",
    "REWARDS",
    "ActionMapper",
    "Constraints",
    "DayAccounts",
    "EpisodeStatistics",
    "GenerativeMarket",
    "HistoricalMarket",
    "InfeasibleActionError",
    "LookaheadWrapper",
    "Market",
    "ObservationConfig",
    "PortfolioEngine",
    "PortfolioEnv",
    "Reward",
    "VecPortfolioEnv",
    "check_feasible",
    "episode_statistics",
    "episode_streams",
    "make_reward",
    "settle_day",
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

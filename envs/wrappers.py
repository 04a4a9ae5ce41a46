"""Gymnasium wrappers for :class:`~factorgym.envs.portfolio_env.PortfolioEnv`.

* :class:`EpisodeStatistics` adds a summary of each finished episode to its last ``info``
  (annualised return, volatility, Sharpe ratio, maximum drawdown, turnover, costs).
* :class:`LookaheadWrapper` is **privileged and for tests only**: it reveals the next day's
  returns ``r_{t+1}`` in the observation. A trivial agent that reads them earns implausibly
  high returns, which shows that the leak tests of the environment can fail.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from factorgym.errors import FactorGymError

__all__ = ["EpisodeStatistics", "LookaheadWrapper", "episode_statistics"]


def episode_statistics(
    net_returns: np.ndarray, turnover: np.ndarray, costs: np.ndarray, periods_per_year: int = 252
) -> dict[str, float]:
    """Summary of one episode's daily net returns ``(T,)``, turnovers ``(T,)`` and costs ``(T,)``.

    Returns
    -------
    dict
        ``days``, ``total_return`` (``prod(1 + R) - 1``), ``ann_return`` (geometric),
        ``ann_volatility``, ``sharpe`` (annualised mean / std of daily net returns, zero cash
        rate; NaN with fewer than 2 days or zero volatility), ``max_drawdown``,
        ``mean_turnover`` (per day) and ``total_cost`` (sum of daily cost fractions).
    """
    r = np.asarray(net_returns, dtype=np.float64)
    n = r.size
    growth = np.cumprod(1.0 + r) if n else np.ones(0)
    wealth = np.concatenate([[1.0], growth])
    peak = np.maximum.accumulate(wealth)
    total = float(wealth[-1] - 1.0)
    sd = float(r.std(ddof=1)) if n > 1 else float("nan")
    return {
        "days": float(n),
        "total_return": total,
        "ann_return": float(wealth[-1] ** (periods_per_year / n) - 1.0) if n and wealth[-1] > 0 else float("nan"),
        "ann_volatility": sd * np.sqrt(periods_per_year),
        "sharpe": float(r.mean() / sd * np.sqrt(periods_per_year)) if n > 1 and sd > 0 else float("nan"),
        "max_drawdown": float((1.0 - wealth / peak).max()),
        "mean_turnover": float(np.mean(turnover)) if n else 0.0,
        "total_cost": float(np.sum(costs)),
    }


class EpisodeStatistics(gym.Wrapper):
    """Adds ``info["episode_statistics"]`` (see :func:`episode_statistics`) when an episode ends."""

    def __init__(self, env: gym.Env, periods_per_year: int = 252) -> None:
        super().__init__(env)
        self.periods_per_year = int(periods_per_year)
        self._r: list[float] = []
        self._to: list[float] = []
        self._c: list[float] = []

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._r, self._to, self._c = [], [], []
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._r.append(info["net_return"])
        self._to.append(info["turnover"])
        self._c.append(info["cost"])
        if terminated or truncated:
            info = dict(info)
            info["episode_statistics"] = episode_statistics(
                np.array(self._r), np.array(self._to), np.array(self._c), self.periods_per_year
            )
        return obs, reward, terminated, truncated, info


class LookaheadWrapper(gym.ObservationWrapper):
    """PRIVILEGED, for tests only: adds ``"next_returns"`` ``(N,)`` = ``r_{t+1}`` to observations.

    Works on a ``PortfolioEnv`` over a :class:`~factorgym.envs.markets.HistoricalMarket` (a
    generative market has not drawn tomorrow yet). Never use it to train or evaluate agents.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        paths = getattr(getattr(env.unwrapped, "engine", None), "paths", None)
        if paths is None or not hasattr(paths, "lookahead"):
            raise FactorGymError("LookaheadWrapper needs a PortfolioEnv over a HistoricalMarket")
        self._paths = paths
        n = env.unwrapped.engine.n_assets
        base = env.observation_space
        assert isinstance(base, spaces.Dict)
        self.observation_space = spaces.Dict(
            {**base.spaces, "next_returns": spaces.Box(-1.0, np.inf, shape=(n,), dtype=np.float64)}
        )

    def observation(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**observation, "next_returns": np.array(self._paths.lookahead()[0])}

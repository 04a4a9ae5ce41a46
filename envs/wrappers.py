"""Gymnasium wrappers for :class:`~factorgym.envs.portfolio_env.PortfolioEnv`.

* :class:`EpisodeStatistics` adds a summary of each finished episode to its last ``info``
  (:func:`factorgym.metrics.portfolio_metrics`: annualised return, volatility, Sharpe ratio
  in excess of the cash rate, maximum drawdown, turnover, costs...).
* :class:`LookaheadWrapper` is **privileged and for tests only**: it reveals the next day's
  returns ``r_{t+1}`` in the observation. A trivial agent that reads them earns implausibly
  high returns, which shows that the leak tests of the environment can fail.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from factorgym import metrics as M
from factorgym.envs.markets import HistoricalPaths
from factorgym.envs.portfolio_env import PortfolioEnv
from factorgym.errors import FactorGymError

__all__ = ["EpisodeStatistics", "LookaheadWrapper", "episode_statistics"]


def episode_statistics(
    net_returns: np.ndarray,
    turnover: np.ndarray,
    costs: np.ndarray,
    periods_per_year: int = 252,
    risk_free: float = 0.0,
) -> dict[str, float]:
    """Summary of one episode's daily net returns ``(T,)``, turnovers ``(T,)`` and costs ``(T,)``.

    The one metrics stack: :func:`factorgym.metrics.portfolio_metrics` (net returns floored
    at -100%, as a ruined book loses everything once).

    Parameters
    ----------
    net_returns, turnover, costs : ndarray of shape (T,)
    periods_per_year : int
    risk_free : float
        Per-period (daily) cash rate, the environment's ``risk_free`` (Sharpe and Sortino
        are of returns in excess of it).

    Returns
    -------
    dict
        The keys of :func:`~factorgym.metrics.portfolio_metrics`: ``n_periods``,
        ``accumulated_return`` (``prod(1 + R) - 1``), ``annualised_return``,
        ``annualised_volatility``, ``sharpe``, ``sortino``, ``calmar``, ``max_drawdown``,
        ``var_95``, ``cvar_95``, ``hit_rate``, ``mean_turnover``, ``annualised_turnover``,
        ``total_turnover``, ``total_costs``, ``annualised_costs``.
    """
    r = np.maximum(np.asarray(net_returns, dtype=np.float64), -1.0)
    return M.portfolio_metrics(r, turnover=turnover, costs=costs, periods_per_year=periods_per_year, risk_free=risk_free)


class EpisodeStatistics(gym.Wrapper):
    """Adds ``info["episode_statistics"]`` (see :func:`episode_statistics`) when an episode ends.

    Parameters
    ----------
    env : PortfolioEnv (possibly wrapped)
    periods_per_year : int
    risk_free : float, optional
        Daily cash rate of the Sharpe ratio; default: the environment's ``risk_free``.
    """

    def __init__(self, env: gym.Env, periods_per_year: int = 252, risk_free: float | None = None) -> None:
        super().__init__(env)
        self.periods_per_year = int(periods_per_year)
        if risk_free is None:
            base = env.unwrapped
            if not isinstance(base, PortfolioEnv):
                raise FactorGymError(f"EpisodeStatistics needs a PortfolioEnv (or a risk_free rate), got {type(base).__name__}")
            risk_free = base.config.risk_free
        self.risk_free = float(risk_free)
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
                np.array(self._r), np.array(self._to), np.array(self._c), self.periods_per_year, self.risk_free
            )
        return obs, reward, terminated, truncated, info


class LookaheadWrapper(gym.ObservationWrapper):
    """PRIVILEGED, for tests only: adds ``"next_returns"`` ``(N,)`` = ``r_{t+days}`` to observations.

    Works on a ``PortfolioEnv`` over a :class:`~factorgym.envs.markets.HistoricalMarket` (a
    generative market has not drawn tomorrow yet). Never use it to train or evaluate agents.
    With ``execution_lag=L`` a decision first earns ``r_{t+L+1}``: peeking ``days=L + 1``
    ahead is the leak that pays.
    """

    def __init__(self, env: gym.Env, days: int = 1) -> None:
        super().__init__(env)
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise FactorGymError(f"days must be a whole number >= 1, got {days!r}")
        self.days = days
        base = env.unwrapped
        if not isinstance(base, PortfolioEnv) or not isinstance(base.engine.paths, HistoricalPaths):
            raise FactorGymError("LookaheadWrapper needs a PortfolioEnv over a HistoricalMarket")
        self._paths = base.engine.paths
        n = base.engine.n_assets
        base = env.observation_space
        assert isinstance(base, spaces.Dict)
        self.observation_space = spaces.Dict(
            {**base.spaces, "next_returns": spaces.Box(-1.0, np.inf, shape=(n,), dtype=np.float64)}
        )

    def observation(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**observation, "next_returns": np.array(self._paths.lookahead(self.days)[0])}

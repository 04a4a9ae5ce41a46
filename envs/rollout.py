"""The one policy rollout of factorgym: an agent or policy acting on ``P`` paths of a market
through :class:`~factorgym.envs.vec_env.VecPortfolioEnv`, with every day's accounting kept.

Backtests, RL validation and stress losses all run their policies through :func:`rollout`, so
one agent is scored from one set of records (:class:`PathRun`) by one metrics stack
(:func:`factorgym.metrics.portfolio_metrics`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from factorgym import metrics as M
from factorgym.errors import FactorGymError

if TYPE_CHECKING:
    from factorgym.envs.vec_env import VecPortfolioEnv

__all__ = ["PathRun", "rollout"]


@dataclass
class PathRun:
    """Daily records of one agent on ``P`` paths of one market (``H`` days at most).

    Attributes
    ----------
    net_return, cost, turnover : ndarray of shape (H, P)
        As in the environment's infos (0 after a path ended).
    wealth : ndarray of shape (H, P)
        Wealth after each day (NaN after a path ended).
    alive : ndarray of shape (H, P), bool
        True on the days a path's episode was running.
    terminated : ndarray of shape (P,), bool
        Ruined paths (wealth fell to the ruin threshold; wealth is floored at 0).
    dates : list of date or None, length H
        The day each row earned (``None`` on simulated days).
    start_date : date
        The real start day of the first path (its first observation).
    episode_seeds : list of int
    path_hash : list of str
        Fingerprint of each path's market returns (equal across agents on the same paths).
    weights : ndarray of shape (H, P, N) or None
        Risky weights held over each day right after the trade at the previous close (when
        recorded): the executed target, i.e. the decision of ``execution_lag`` days earlier,
        with delisted positions settled into cash.
    counters : dict
        The agent's optimizer counters over the run.
    start_dates : list of date
        The real start day of each path.
    """

    net_return: np.ndarray
    cost: np.ndarray
    turnover: np.ndarray
    wealth: np.ndarray
    alive: np.ndarray
    terminated: np.ndarray
    dates: list[Any]
    start_date: Any
    episode_seeds: list[int]
    path_hash: list[str]
    weights: np.ndarray | None = None
    counters: dict[str, float] = field(default_factory=dict)
    start_dates: list[Any] = field(default_factory=list)

    @property
    def n_paths(self) -> int:
        """Number of paths ``P``."""
        return int(self.net_return.shape[1])

    def returns(self, p: int = 0) -> np.ndarray:
        """Net returns of path ``p`` over its running days, floored at -100%."""
        r = self.net_return[self.alive[:, p], p]
        return np.maximum(r, -1.0)

    def final_wealth(self) -> np.ndarray:
        """Terminal wealth of each path ``(P,)`` (floored at 0)."""
        out = np.ones(self.n_paths)
        for p in range(self.n_paths):
            a = np.flatnonzero(self.alive[:, p])
            if a.size:
                out[p] = max(0.0, float(self.wealth[a[-1], p]))
        return out

    def path_metrics(self, p: int, *, periods_per_year: int = 252, risk_free: float = 0.0) -> dict[str, float]:
        """:func:`factorgym.metrics.portfolio_metrics` of path ``p`` plus terminal wealth.

        A ruined path is scored on its running days with a flat (0) return afterwards, so
        every path covers the same horizon. ``risk_free`` is the per-period (daily) cash rate.
        """
        return self._metrics(p, True, periods_per_year, risk_free)

    def episode_metrics(self, p: int, *, periods_per_year: int = 252, risk_free: float = 0.0) -> dict[str, float]:
        """:func:`factorgym.metrics.portfolio_metrics` of path ``p`` over its running days
        only (episodes of different lengths are each scored on their own days), plus
        terminal wealth. ``risk_free`` is the per-period (daily) cash rate."""
        return self._metrics(p, False, periods_per_year, risk_free)

    def _metrics(self, p: int, pad: bool, periods_per_year: int, risk_free: float) -> dict[str, float]:
        """Metrics of path ``p``: over every row (``pad``: 0 after the path ended) or its running days."""
        alive = self.alive[:, p]
        if not pad:
            r, to, c = self.returns(p), self.turnover[alive, p], self.cost[alive, p]
        else:
            r = np.where(alive, np.maximum(self.net_return[:, p], -1.0), 0.0)
            to = np.where(alive, self.turnover[:, p], 0.0)
            c = np.where(alive, self.cost[:, p], 0.0)
        m = M.portfolio_metrics(r, turnover=to, costs=c, periods_per_year=periods_per_year, risk_free=risk_free)
        m["terminal_wealth"] = float(self.final_wealth()[p])
        return m


def rollout(
    policy: Any,
    env: VecPortfolioEnv,
    *,
    options: Sequence[Mapping[str, Any]] | None = None,
    seed: int = 0,
    deterministic: bool = True,
    record_weights: bool = False,
    on_step: Callable[[int], None] | None = None,
    label: str = "policy",
) -> PathRun:
    """One episode of ``policy`` on every path of ``env``, with daily records.

    Parameters
    ----------
    policy : object with SB3's ``predict(obs, state, episode_start, deterministic)``
        An SB3 model or a :class:`~factorgym.agents.protocol.Agent`'s policy.
    env : VecPortfolioEnv
        ``P`` paths; a path that ends early (ruin, or a shorter horizon) is auto-reset by
        the vector env and its later days are ignored.
    options : sequence of mappings, optional
        Reset options of each path (``{"episode_seed": s}`` or ``{"start": row}``).
    seed : int
        ``env.seed(seed)`` before the reset (streams of paths without an episode seed and
        of auto-resets, which are never recorded).
    deterministic : bool
        Passed to ``policy.predict``.
    record_weights : bool
        Keep the target weights of every day (``(H, P, N)``).
    on_step : callable, optional
        Called with the number of days done after each day (progress bars); every day of
        the horizon is reported, also when all paths ended early.
    label : str
        Names the policy in error messages.

    Returns
    -------
    PathRun
    """
    # Long (~75 lines of body) on purpose: the one daily loop of every backtest and RL
    # validation; its bookkeeping (alive, hashes, terminal observations) belongs together.
    P = env.num_envs
    env.seed(int(seed))
    if options is not None:
        env.set_options([dict(o) for o in options])
    obs = env.reset()
    first = list(env.reset_infos)
    engine = env.engine
    H = int(engine.paths.horizons.max())
    N = engine.n_assets
    net, cost, to, wealth = (np.zeros((H, P)) for _ in range(4))
    alive = np.zeros((H, P), dtype=bool)
    terminated = np.zeros(P, dtype=bool)
    weights = np.zeros((H, P, N)) if record_weights else None
    dates: list[Any] = [None] * H
    hashes = [hashlib.blake2b(digest_size=12) for _ in range(P)]
    finished = np.zeros(P, dtype=bool)
    episode_start = np.ones(P, dtype=bool)
    state: Any = None
    k = 0
    for k in range(H):
        action, state = policy.predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)
        action = np.asarray(action)
        try:
            obs, _, dones, infos = env.step(action)
        except FactorGymError as exc:
            exc.args = (f"{label} on day {k + 1} of {env.engine.market!r}: {exc}", *exc.args[1:])
            raise
        if weights is not None:
            weights[k] = engine.held  # traded to at the close (after any execution lag and settlement)
        live = ~finished
        alive[k] = live
        net[k] = [i["net_return"] for i in infos]
        cost[k] = [i["cost"] for i in infos]
        to[k] = [i["turnover"] for i in infos]
        wealth[k] = [i["wealth"] for i in infos]
        dates[k] = infos[0]["date"]
        last_row = obs["returns"][:, -1, :]
        for p in np.flatnonzero(live).tolist():
            if dones[p]:
                # the observation of a finished path is its reset observation
                term = infos[p]["terminal_observation"]["returns"][-1]
                hashes[p].update(np.ascontiguousarray(term, dtype=np.float64).tobytes())
                terminated[p] = not infos[p]["TimeLimit.truncated"]
            else:
                hashes[p].update(np.ascontiguousarray(last_row[p], dtype=np.float64).tobytes())
        net[k, ~live] = cost[k, ~live] = to[k, ~live] = 0.0
        wealth[k, ~live] = np.nan
        finished |= np.asarray(dones, dtype=bool)
        episode_start = np.asarray(dones, dtype=bool).copy()
        if on_step is not None:
            on_step(1)
        if finished.all():
            break
    n = k + 1
    if on_step is not None and n < H:
        on_step(H - n)  # every path ended early (ruin)
    sl = slice(0, n)
    return PathRun(
        net_return=net[sl],
        cost=cost[sl],
        turnover=to[sl],
        wealth=wealth[sl],
        alive=alive[sl],
        terminated=terminated,
        dates=dates[:n],
        start_date=first[0]["start_date"],
        episode_seeds=[int(i["episode_seed"]) for i in first],
        path_hash=[h.hexdigest() for h in hashes],
        weights=None if weights is None else weights[sl],
        start_dates=[i["start_date"] for i in first],
    )

"""The batched engine behind both portfolio environments.

:class:`PortfolioEngine` holds the state of ``P`` paths (market, book, reward) and steps them
together in numpy; :class:`~factorgym.envs.portfolio_env.PortfolioEnv` is that engine with
``P = 1`` behind the Gymnasium API, and :class:`~factorgym.envs.vec_env.VecPortfolioEnv` is the
same engine with ``P > 1`` behind stable-baselines3's ``VecEnv`` API. Sharing one engine, one
configuration (:class:`~factorgym.envs.config.EnvConfig`) and one seeding rule
(:func:`episode_streams`) is what makes the two produce identical trajectories.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from factorgym.constraints import Constraints
from factorgym.costs import CostModel
from factorgym.data import ReturnPanel
from factorgym.envs.accounting import CostFunction, settle_day, with_cash
from factorgym.envs.actions import ActionMapper
from factorgym.envs.config import EnvConfig
from factorgym.envs.markets import HistoricalMarket, Market, StartSpec
from factorgym.envs.randomization import MIN_SCALED_RETURN, EpisodeDraw
from factorgym.envs.rewards import log_growth, make_reward
from factorgym.errors import ActionError, DataValidationError, FactorGymError

__all__ = [
    "RESET_OPTIONS",
    "PortfolioEngine",
    "check_reset_options",
    "default_market",
    "draw_episode_seed",
    "episode_streams",
]

#: Option keys accepted by ``reset(options=...)``.
RESET_OPTIONS = frozenset({"episode_seed", "start"})


def check_reset_options(options: Mapping[str, Any]) -> None:
    """Raise :class:`FactorGymError` unless every key of ``options`` is in :data:`RESET_OPTIONS`
    and ``episode_seed`` (when given) is a whole number ``>= 0`` (a
    :class:`~factorgym.errors.DataValidationError` naming it otherwise). ``start`` is checked
    by the market when the episode starts."""
    if not isinstance(options, Mapping):
        raise FactorGymError(f"reset options must be a mapping such as {{'episode_seed': 3}}, got {options!r}")
    unknown = set(options) - RESET_OPTIONS
    if unknown:
        raise FactorGymError(f"unknown reset options {sorted(unknown, key=str)}; accepted: {sorted(RESET_OPTIONS)}")
    s = options.get("episode_seed")
    if s is not None and (isinstance(s, bool | np.bool_) or not isinstance(s, int | np.integer) or s < 0):
        raise DataValidationError(f"episode_seed must be a whole number >= 0, got {s!r}")


def draw_episode_seed(rng: np.random.Generator) -> int:
    """The next episode seed of an environment (or of one vec-env path) from its ``np_random``."""
    return int(rng.integers(0, np.iinfo(np.int64).max))


def episode_streams(episode_seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """``(start_rng, path_rng)`` of an episode: two independent streams spawned from its seed.

    ``start_rng`` draws the start day; ``path_rng`` is the path's stream handed to the
    generator's ``PathSimulator``. An episode is a function of its seed (and the actions).
    """
    start_ss, path_ss = np.random.SeedSequence(int(episode_seed)).spawn(2)
    return np.random.default_rng(start_ss), np.random.default_rng(path_ss)


def _equal_weight_return(r: np.ndarray, tradable: np.ndarray | None) -> np.ndarray:
    """The day's simple return ``(P,)`` of 1/N over the assets tradable at the trade (all when
    ``tradable`` is None), before costs; 0 on a path where none is."""
    if tradable is None:
        return r.mean(axis=1)
    k = tradable.sum(axis=1)
    return np.where(k > 0, np.where(tradable, r, 0.0).sum(axis=1) / np.maximum(k, 1), 0.0)


@functools.lru_cache(maxsize=1)
def _sp500_train() -> ReturnPanel:
    from factorgym.data import Split, load_dataset

    return Split().part(load_dataset("sp500"), "train")


def default_market() -> HistoricalMarket:
    """The market used when none is given: the sp500 training split (1990-2013), random
    starts, 252-day episodes (the immutable panel is loaded once per process)."""
    return HistoricalMarket(_sp500_train(), horizon=252)


class PortfolioEngine:
    """Batched state and dynamics of ``P`` portfolio paths (see
    :class:`~factorgym.envs.portfolio_env.PortfolioEnv`).

    Parameters
    ----------
    market : Market
    n_paths : int
        ``P``.
    config : EnvConfig, optional
        The environment's options (default ``EnvConfig()``).
    """

    def __init__(self, market: Market, n_paths: int, config: EnvConfig | None = None) -> None:
        if not isinstance(market, Market):
            raise FactorGymError(f"market must be a HistoricalMarket or GenerativeMarket, got {type(market).__name__}")
        if int(n_paths) < 1:
            raise FactorGymError(f"n_paths must be at least 1, got {n_paths}")
        cfg = self.config = config if config is not None else EnvConfig()
        if not isinstance(cfg, EnvConfig):
            raise FactorGymError(f"config must be an EnvConfig, got {type(cfg).__name__}")
        self.market = market
        self.n_paths = P = int(n_paths)
        self.n_assets = N = market.n_assets
        self.obs_config = cfg.observation_config
        self.paths = market.open(P, self.obs_config)
        assert cfg.constraints is not None and cfg.cost_model is not None  # resolved by EnvConfig
        self.constraints: Constraints = cfg.constraints
        self.mapper = ActionMapper(cfg.action_mode, N, self.constraints, cfg.temperature, cfg.residual_scale, cfg.base_weights,
                                   trade_rate=cfg.trade_rate, no_trade_band=cfg.no_trade_band)
        self.cost_model: CostModel = cfg.cost_model
        self._cost_fn = CostFunction(self.cost_model, N)  # also validates per-asset rate shapes
        self.turnover_penalty = float(cfg.turnover_penalty)
        self.reward_benchmark = cfg.reward_benchmark
        self.randomization = cfg.randomization
        #: per-path randomisation draws (identity when randomisation is off)
        self.draws: list[EpisodeDraw] = [EpisodeDraw()] * P
        self._vol = np.ones(P)
        self._perm = np.tile(np.arange(N), (P, 1)) if (cfg.randomization is not None and cfg.randomization.permute_assets) else None
        if cfg.randomization is not None and cfg.randomization.cost_scale is not None:
            self._cost_fn = _ScaledCost(self.cost_model, N, P)
        self.reward_fn = make_reward(cfg.reward, P, **cfg.reward_kwargs)
        self.risk_free = float(cfg.risk_free)
        self.ruin_threshold = float(cfg.ruin_threshold)
        self.lag = L = int(cfg.execution_lag)
        if cfg.initial_weights is None:
            w0 = np.zeros(N)
        else:
            w0 = np.asarray(cfg.initial_weights, dtype=np.float64)
            if w0.shape != (N,) or not np.isfinite(w0).all():
                raise ActionError(f"initial_weights must be {N} finite numbers, got shape {w0.shape}")
        self.initial_weights = w0
        self.observation_space = self._make_observation_space()
        self.action_space = self.mapper.action_space
        # state
        self.wealth = np.ones(P)
        self.w_drifted = np.tile(w0, (P, 1))
        self.steps = np.zeros(P, dtype=np.int64)
        self.net_return = np.zeros(P)
        self.cost = np.zeros(P)
        self.turnover = np.zeros(P)
        self.ruined = np.zeros(P, dtype=bool)
        #: the weights held over the day just earned, per path (after the trade and any settlement)
        self.held = np.tile(w0, (P, 1))
        # decisions waiting for execution, oldest first (row j executes in j + 1 steps)
        self._pending = np.zeros((L, P, N))
        self._pending_ok = np.zeros((L, P), dtype=bool)
        self.episode_seeds: list[int] = [0] * P
        self._start_dates: list[Any] = [None] * P
        self.active = np.zeros(P, dtype=bool)

    # ------------------------------------------------------------------ spaces
    def _make_observation_space(self) -> spaces.Dict:
        N, W = self.n_assets, self.obs_config.window
        f64 = np.float64
        d: dict[str, spaces.Space] = {
            "returns": spaces.Box(-1.0, np.inf, shape=(W, N), dtype=f64),
            "weights": spaces.Box(-np.inf, np.inf, shape=(N + 1,), dtype=f64),
        }
        if self.paths.has_mask:
            d["mask"] = spaces.Box(0.0, 1.0, shape=(W, N), dtype=f64)
        if self.obs_config.features is not None:
            d["features"] = spaces.Box(-np.inf, np.inf, shape=(N, self.obs_config.features.n_features), dtype=f64)
        if self.obs_config.moments is not None:
            rows = 2 if self.obs_config.moments == "diag" else N + 1
            d["moments"] = spaces.Box(-np.inf, np.inf, shape=(rows, N), dtype=f64)
        return spaces.Dict(d)

    # ------------------------------------------------------------------ dynamics
    def reset_paths(self, idx: np.ndarray, episode_seeds: Sequence[int], starts: Sequence[StartSpec]) -> None:
        """Start new episodes for paths ``idx`` ``(k,)`` from their episode seeds."""
        idx = np.asarray(idx, dtype=np.int64)
        streams = [episode_streams(s) for s in episode_seeds]
        self.paths.reset(idx, [s[0] for s in streams], [s[1] for s in streams], list(starts))
        self.wealth[idx] = 1.0
        self.w_drifted[idx] = self.initial_weights
        self.steps[idx] = 0
        self.net_return[idx] = 0.0
        self.cost[idx] = 0.0
        self.turnover[idx] = 0.0
        self.ruined[idx] = False
        self._pending_ok[:, idx] = False
        for p, s, d in zip(idx.tolist(), episode_seeds, self.paths.start_dates(idx), strict=True):
            self.episode_seeds[p] = int(s)
            self._start_dates[p] = d
        if self.randomization is not None:
            for p, s in zip(idx.tolist(), episode_seeds, strict=True):
                d = self.draws[p] = self.randomization.draw(int(s), self.n_assets)
                self._vol[p] = d.vol_scale
                if isinstance(self._cost_fn, _ScaledCost):
                    self._cost_fn.scale[p] = d.cost_scale
                if self._perm is not None:
                    assert d.permutation is not None
                    self._perm[p] = d.permutation
        self.reward_fn.reset(idx, self.wealth[idx])
        self.active[idx] = True

    def step(self, actions: Any, *, validated: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply actions ``(P, D)`` for one day -> ``(reward, terminated, truncated)``, each ``(P,)``.

        Invalid actions raise before any state changes.
        """
        if not self.active.all():
            p = int(np.argmin(self.active))
            raise FactorGymError(f"path {p} has no running episode: call reset() first (after it ended)")
        a = actions if validated else self.mapper.validate(actions, self.n_paths)
        if self._perm is not None:
            a = self._unpermute(a)
        mapper, wd = self.mapper, self.w_drifted
        tradable = self.paths.tradable()  # of today's close, where the trade happens
        if self.lag == 0:
            w = mapper.target(a, wd)
            if tradable is not None:
                w, bad = mapper.limit_absent(w, wd, tradable)
                if bad is not None and mapper.mode == "weights":
                    self._refuse_absent(a, wd, bad)
            if mapper.mode != "weights":
                w = mapper.cap(w, wd)
        else:
            decided = mapper.target(a)  # static constraints only: the book traded from is not known yet
            w = np.where(self._pending_ok[0][:, None], self._pending[0], wd)  # decided L days ago, or hold
            if tradable is not None:
                w, _ = mapper.limit_absent(w, wd, tradable)
            w = mapper.cap(w, wd)
            self._pending[:-1], self._pending_ok[:-1] = self._pending[1:], self._pending_ok[1:]
            self._pending[-1], self._pending_ok[-1] = decided, True
        held = w
        gone = self.paths.delisted()
        if gone is not None and (gone & (w != 0.0)).any():
            held = np.where(gone, 0.0, w)  # settled into cash at today's (its last) close
        r = self.paths.step()
        if self.randomization is not None and self.randomization.vol_scale is not None:
            r = np.maximum(r * self._vol[:, None], MIN_SCALED_RETURN)
        acc = settle_day(self.wealth, w, wd, r, self._cost_fn, self.risk_free, held=None if held is w else held)
        self.held = held
        self.wealth = acc.wealth
        self.w_drifted = acc.drifted
        self.net_return, self.cost, self.turnover = acc.net_return, acc.cost, acc.turnover
        reward = self.reward_fn(acc.net_return, acc.wealth)
        if self.turnover_penalty:
            reward = reward - self.turnover_penalty * acc.turnover
        if self.reward_benchmark is not None:  # "equal_weight": minus 1/N's log growth (gross) of the same day
            reward = reward - log_growth(_equal_weight_return(r, tradable))
        self.steps += 1
        terminated = acc.wealth <= self.ruin_threshold
        self.ruined = terminated.copy()
        truncated = (self.steps >= self.paths.horizons) & ~terminated
        self.active &= ~(terminated | truncated)
        return reward, terminated, truncated

    def _unpermute(self, a: np.ndarray) -> np.ndarray:
        """Actions ``(P, D)`` read in each path's permuted asset order, in the real order
        (column ``j`` of a permuted action belongs to real asset ``perm[j]``; cash stays last)."""
        assert self._perm is not None
        n = self.n_assets
        out = np.array(a, dtype=np.float64)
        np.put_along_axis(out[:, :n], self._perm, a[:, :n], axis=1)
        return out

    def _permute_obs(self, obs: dict[str, np.ndarray], idx: np.ndarray | None) -> dict[str, np.ndarray]:
        """Observations in each path's permuted asset order (column ``j`` shows ``perm[j]``)."""
        assert self._perm is not None
        perm = self._perm if idx is None else self._perm[idx]
        n = self.n_assets
        out = dict(obs)
        out["returns"] = np.take_along_axis(obs["returns"], perm[:, None, :], axis=2)
        if "mask" in obs:
            out["mask"] = np.take_along_axis(obs["mask"], perm[:, None, :], axis=2)
        w = obs["weights"].copy()
        w[:, :n] = np.take_along_axis(obs["weights"][:, :n], perm, axis=1)
        out["weights"] = w
        if "features" in obs:
            out["features"] = np.take_along_axis(obs["features"], perm[:, :, None], axis=1)
        if "moments" in obs:
            m = np.take_along_axis(obs["moments"], perm[:, None, :], axis=2)
            if self.obs_config.moments == "cov":  # rows 1.. are the covariance: permute them too
                m[:, 1:] = np.take_along_axis(m[:, 1:], perm[:, :, None], axis=1)
            out["moments"] = m
        return out

    def _refuse_absent(self, w: np.ndarray, wd: np.ndarray, bad: np.ndarray) -> None:
        """Raise :class:`ActionError` naming the first asset a ``"weights"`` action would buy
        (or short further) on a day it does not trade."""
        p, i = (int(x) for x in np.argwhere(bad)[0])
        day = self.paths.dates()[p]
        where = f" (path {p})" if self.n_paths > 1 else ""
        raise ActionError(
            f"target weight {w[p, i]:.6g} in {self.market.assets[i]} on {day}{where} is outside "
            f"[{min(wd[p, i], 0.0):.6g}, {max(wd[p, i], 0.0):.6g}]: {self.market.assets[i]} does not trade "
            "that day (absent from the panel), so it can only be reduced towards zero, not bought or "
            "shorted further; keep it at most at its drifted weight (observation 'weights') where "
            "observation 'mask' is 0 on the last row"
        )

    # ------------------------------------------------------------------ outputs
    def observe(self, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Observations of paths ``idx`` (all by default), each array with a leading ``k`` axis."""
        paths = self.paths
        wd = self.w_drifted if idx is None else self.w_drifted[idx]
        obs = {"returns": paths.returns_window(idx), "weights": with_cash(wd)}
        if paths.has_mask:
            obs["mask"] = paths.mask_window(idx)
        if self.obs_config.features is not None:
            obs["features"] = paths.features(idx)
        if self.obs_config.moments is not None:
            obs["moments"] = paths.moments(idx)
        if self.randomization is not None:
            if self.randomization.vol_scale is not None:
                vol = self._vol if idx is None else self._vol[idx]
                obs["returns"] = np.maximum(obs["returns"] * vol[:, None, None], MIN_SCALED_RETURN)
            if self._perm is not None:
                obs = self._permute_obs(obs, idx)
        return obs

    def infos(self, idx: np.ndarray | None = None) -> list[dict[str, Any]]:
        """Info dicts of paths ``idx`` (see :class:`~factorgym.envs.portfolio_env.PortfolioEnv`, *Info*)."""
        sel: Any = slice(None) if idx is None else idx
        ids = range(self.n_paths) if idx is None else np.asarray(idx).tolist()
        dates = self.paths.dates()
        starts = self._start_dates
        out = [
            {
                "wealth": w,
                "net_return": r,
                "cost": c,
                "turnover": to,
                "step": k,
                "date": dates[p],
                "start_date": starts[p],
                "path_id": p,
                "episode_seed": self.episode_seeds[p],
                "ruined": ru,
            }
            for p, w, r, c, to, k, ru in zip(
                ids,
                self.wealth[sel].tolist(),
                self.net_return[sel].tolist(),
                self.cost[sel].tolist(),
                self.turnover[sel].tolist(),
                self.steps[sel].tolist(),
                self.ruined[sel].tolist(),
                strict=True,
            )
        ]
        sources = getattr(self.paths, "path_sources", None)
        if sources is not None:  # a mixture market: which source each episode drew
            names = sources()
            for p, info in zip(ids, out, strict=True):
                info["market_source"] = names[p]
        if self.randomization is not None:
            for p, info in zip(ids, out, strict=True):
                info["randomization"] = self.draws[p].info()
        return out


class _ScaledCost(CostFunction):
    """A :class:`CostFunction` whose costs are multiplied by a per-path factor ``scale`` ``(P,)``
    (domain randomisation of cost rates)."""

    def __init__(self, cost_model: CostModel, n_assets: int, n_paths: int) -> None:
        super().__init__(cost_model, n_assets)
        self.scale = np.ones(int(n_paths))

    def cost_and_turnover(self, w_target: np.ndarray, w_drifted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, to = super().cost_and_turnover(w_target, w_drifted)
        return c * self.scale, to

"""A stable-baselines3 ``VecEnv`` that steps many portfolio paths in one batched call.

:class:`VecPortfolioEnv` runs ``n_envs`` paths of the same :class:`~factorgym.envs.engine.PortfolioEngine`
as :class:`~factorgym.envs.portfolio_env.PortfolioEnv`: market data are gathered (historical)
or sampled through one batched ``PathSimulator`` call (generative) for all paths, and the
accounting is vectorised numpy, with no Python loop over paths at step time except to build
the ``infos`` list that the ``VecEnv`` API requires.

Seeding follows SB3's convention exactly: ``seed(s)`` gives path ``i`` the seed ``s + i``,
used at the next ``reset()`` to create that path's ``np_random`` as ``PortfolioEnv.reset``
would; each episode of path ``i`` (including auto-resets) draws its episode seed from that
generator. Hence ``VecPortfolioEnv(market, n, ...)`` seeded with ``s`` produces the same
trajectories as ``DummyVecEnv([lambda: PortfolioEnv(market, ...)] * n)`` seeded with ``s``
(tested). Auto-reset stores the final observation in ``infos[i]["terminal_observation"]``
and sets ``infos[i]["TimeLimit.truncated"]``.

Importing this module imports stable-baselines3 (and so torch); :mod:`factorgym.envs` loads it
lazily.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from factorgym.envs.config import EnvConfig
from factorgym.envs.engine import (
    PortfolioEngine,
    check_reset_options,
    default_market,
    draw_episode_seed,
)
from factorgym.envs.markets import Market
from factorgym.errors import FactorGymError

__all__ = ["VecPortfolioEnv"]


class VecPortfolioEnv(VecEnv):
    """``n_envs`` batched portfolio paths behind SB3's ``VecEnv`` API.

    Parameters
    ----------
    market : Market, optional
        As for :class:`~factorgym.envs.portfolio_env.PortfolioEnv` (default: sp500 training split).
    n_envs : int
        Number of paths ``P``.
    seed : int, optional
        Shorthand for calling :meth:`seed` before the first ``reset()``.
    config : EnvConfig or mapping, optional
        The environment's options (default ``EnvConfig()``).
    **options
        :class:`~factorgym.envs.config.EnvConfig` fields (``window``, ``action_mode``,
        ``constraints``, ``cost_model``, ``reward``, ...) overriding ``config``'s, as for
        :class:`~factorgym.envs.portfolio_env.PortfolioEnv` (which also takes ``render_mode``).

    Notes
    -----
    Observations are dicts of arrays with a leading ``n_envs`` axis; rewards are float64
    ``(n_envs,)``; infos carry the keys of ``PortfolioEnv`` with ``path_id`` the path index.
    Per-path reset options (``set_options``) accept ``"episode_seed"`` and ``"start"``.
    """

    def __init__(
        self,
        market: Market | None = None,
        n_envs: int = 8,
        *,
        seed: int | None = None,
        config: EnvConfig | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        if "render_mode" in options:
            raise FactorGymError("VecPortfolioEnv does not render")
        cfg = EnvConfig.merged(config, **options)
        self.engine = PortfolioEngine(market if market is not None else default_market(), int(n_envs), cfg)
        self.render_mode = None
        self._np_randoms: list[np.random.Generator | None] = [None] * int(n_envs)
        self._actions: np.ndarray | None = None
        super().__init__(int(n_envs), self.engine.observation_space, self.engine.action_space)
        if seed is not None:
            self.seed(seed)

    # ------------------------------------------------------------------ seeding
    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seeds ``seed + i`` for path ``i``, applied at the next ``reset()``.

        ``seed=None`` draws a base seed from OS entropy (never from global RNG state).
        """
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        self._seeds = [int(seed) + i for i in range(self.num_envs)]
        return self._seeds

    def _path_rng(self, p: int) -> np.random.Generator:
        rng = self._np_randoms[p]
        if rng is None:
            rng, _ = seeding.np_random()
            self._np_randoms[p] = rng
        return rng

    # ------------------------------------------------------------------ VecEnv API
    def reset(self) -> dict[str, np.ndarray]:
        seeds: list[int] = []
        starts: list[Any] = []
        for p in range(self.num_envs):
            if self._seeds[p] is not None:
                self._np_randoms[p], _ = seeding.np_random(self._seeds[p])
            opts = self._options[p] or {}
            check_reset_options(opts)
            s = opts.get("episode_seed")
            seeds.append(draw_episode_seed(self._path_rng(p)) if s is None else int(s))
            starts.append(opts.get("start"))
        self.engine.reset_paths(np.arange(self.num_envs), seeds, starts)
        self.reset_infos = self.engine.infos()
        self._reset_seeds()
        self._reset_options()
        return self.engine.observe()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise FactorGymError("step_wait() called without step_async()")
        actions, self._actions = self._actions, None
        engine = self.engine
        reward, terminated, truncated = engine.step(actions)
        done = terminated | truncated
        obs = engine.observe()
        infos = engine.infos()
        for info in infos:
            info["TimeLimit.truncated"] = False
        if done.any():
            idx = np.flatnonzero(done)
            for p in idx.tolist():
                infos[p]["terminal_observation"] = {k: v[p].copy() for k, v in obs.items()}
                infos[p]["TimeLimit.truncated"] = bool(truncated[p] and not terminated[p])
            engine.reset_paths(idx, [draw_episode_seed(self._path_rng(p)) for p in idx.tolist()], [None] * len(idx))
            fresh = engine.observe(idx)
            for k, v in fresh.items():
                obs[k][idx] = v
            for p, info in zip(idx.tolist(), engine.infos(idx), strict=True):
                self.reset_infos[p] = info
        return obs, reward, done, infos

    def close(self) -> None:
        return None

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute of this (shared) environment, once per index."""
        value = getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute shared by all paths (``indices`` must cover every path)."""
        if sorted(self._get_indices(indices)) != list(range(self.num_envs)):
            raise FactorGymError("VecPortfolioEnv paths share their attributes; set_attr needs all indices")
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any) -> list[Any]:
        """Call a method of this (shared) environment once per index."""
        method = getattr(self, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]

    # ------------------------------------------------------------------ conveniences
    @property
    def assets(self) -> tuple[str, ...]:
        """Asset names (the order of weights and returns)."""
        return self.engine.market.assets

    @property
    def config(self) -> EnvConfig:
        """The environment's options."""
        return self.engine.config

    @property
    def wealth(self) -> np.ndarray:
        """Current wealth of every path ``(n_envs,)`` (a copy)."""
        return self.engine.wealth.copy()

    def __repr__(self) -> str:
        return f"<VecPortfolioEnv n_envs={self.num_envs} {self.engine.market!r} mode={self.engine.mapper.mode}>"

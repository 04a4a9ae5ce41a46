"""A seed ensemble: the average of the target weights of ``K`` policies, :class:`SeedEnsemble`.

Each member is anything with stable-baselines3's ``predict`` (an SB3 model, a
:class:`~factorgym.agents.rl.TrainedAgent`, an optimizer or baseline
:class:`~factorgym.agents.protocol.Agent`) together with the environment configuration
whose action mode reads its actions (a ``TrainedAgent`` brings its own, ``meta.env``; an
``Agent`` acts in ``"weights"``). Every member sees the same observation, its action is
mapped to target risky weights with its own static map (:meth:`ActionMapper.target`:
softmax and temperature, simplex projection, residual tilt...) and the weights are averaged
(equal weights by default). The average of long-only portfolios under the same convex
constraints satisfies them too.

The ensemble is itself a policy: it acts in the ``"simplex"`` action mode (the averaged
portfolio with cash last, which the simplex projection leaves where it is) for long-only
members, or ``"long_short"`` for long/short ones (the risky weights divided by the gross
cap, which that mode multiplies back), so the environment still applies its turnover cap and
absent-asset rules. Use it anywhere an agent is: ``evaluate_policy_on(ens, market,
env=ens.env_config)``, ``BacktestAgent.wrap(ens)`` (``action_mode`` and ``window`` are
attributes), ``rollout``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from factorgym.envs.actions import ActionMapper
from factorgym.envs.config import EnvConfig
from factorgym.errors import FactorGymError

__all__ = ["SeedEnsemble"]


def _member_config(member: Any, config: EnvConfig | Mapping[str, Any] | None) -> EnvConfig | None:
    """The member's configuration; ``None`` for an :class:`Agent` acting in ``"weights"``
    (it reads whatever observation it is given)."""
    if config is not None:
        return EnvConfig.coerce(config)
    meta = getattr(member, "meta", None)
    if meta is not None and isinstance(getattr(meta, "env", None), EnvConfig):
        return meta.env
    if getattr(member, "action_mode", None) == "weights":
        return None
    raise FactorGymError(
        f"ensemble member {type(member).__name__} brings no environment configuration: pass it as (policy, EnvConfig)"
    )


class SeedEnsemble:
    """Average of the target weights of ``K`` policies (see the module docstring).

    Parameters
    ----------
    members : sequence
        Policies, or ``(policy, config)`` pairs with ``config`` an :class:`EnvConfig` (or
        mapping) whose action mode reads that policy's actions.
    weights : sequence of float, optional
        Member weights (non-negative, normalised); default equal.
    deterministic : bool
        Passed to every member's ``predict`` (default True, whatever the caller asks).

    Attributes
    ----------
    action_mode : str
        ``"simplex"`` (long-only members) or ``"long_short"``.
    window : int
        The members' observation window (they must agree).
    env_config : EnvConfig
        The first member's configuration in the ensemble's action mode: the environment to
        run the ensemble in.
    """

    def __init__(self, members: Sequence[Any], weights: Sequence[float] | None = None, *, deterministic: bool = True) -> None:
        given: list[tuple[Any, EnvConfig | None]] = []
        for i, m in enumerate(members):
            pol, cfg = (m if isinstance(m, tuple) and len(m) == 2 else (m, None))
            if not callable(getattr(pol, "predict", None)):
                raise FactorGymError(f"ensemble member {i} ({type(pol).__name__}) has no predict() method")
            given.append((pol, _member_config(pol, cfg)))
        if not given:
            raise FactorGymError("an ensemble needs at least one member")
        known = [c for _, c in given if c is not None]
        ref = known[0] if known else EnvConfig(action_mode="weights", window=max(int(getattr(p, "window", 1) or 1) for p, _ in given))
        as_weights = EnvConfig.merged(ref.for_evaluation(), action_mode="weights", base_weights=None)
        pairs = [(p, as_weights if c is None else c) for p, c in given]
        w = np.ones(len(pairs)) if weights is None else np.asarray(list(weights), dtype=np.float64)
        if w.shape != (len(pairs),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise FactorGymError(f"ensemble weights must be {len(pairs)} non-negative numbers, not all zero; got {weights!r}")
        first = pairs[0][1]
        for i, (_, c) in enumerate(pairs):
            if c.observation_config != first.observation_config:
                raise FactorGymError(
                    f"ensemble member {i} observes {c.observation_config}, member 0 {first.observation_config}; "
                    "members must share one observation"
                )
            if c.constraints.long_only != first.constraints.long_only:  # type: ignore[union-attr]
                raise FactorGymError("ensemble members must all be long-only or all long/short")
            if (c.trade_rate, c.no_trade_band) != (first.trade_rate, first.no_trade_band):
                raise FactorGymError(
                    f"ensemble member {i} trades with trade_rate={c.trade_rate}, no_trade_band={c.no_trade_band}; "
                    f"member 0 with {first.trade_rate}, {first.no_trade_band}: members must share one trading rule "
                    "(the environment applies it to the averaged target)"
                )
        self.members = [p for p, _ in pairs]
        self.configs = [c for _, c in pairs]
        self.member_weights = w / w.sum()
        self.deterministic = bool(deterministic)
        self.long_only = bool(first.constraints.long_only)  # type: ignore[union-attr]
        self.action_mode = "simplex" if self.long_only else "long_short"
        self.window = int(first.window)
        self.env_config = EnvConfig.merged(first.for_evaluation(), action_mode=self.action_mode, base_weights=None)
        self._mappers: dict[int, list[ActionMapper]] = {}

    @classmethod
    def load(cls, paths: Sequence[str | Path], *, which: str = "best", weights: Sequence[float] | None = None) -> SeedEnsemble:
        """An ensemble of saved RL agents (:func:`~factorgym.agents.rl.load_agent` each, with
        its observation normaliser when it has one)."""
        from factorgym.agents.rl import load_agent

        members = []
        for p in paths:
            model, meta = load_agent(p, which=which)
            members.append((model, meta.env))
        return cls(members, weights)

    def _mappers_for(self, n: int) -> list[ActionMapper]:
        got = self._mappers.get(n)
        if got is None:
            got = self._mappers[n] = [
                ActionMapper(c.action_mode, n, c.constraints, c.temperature, c.residual_scale, c.base_weights)  # type: ignore[arg-type]
                for c in self.configs
            ]
        return got

    def weights(self, observation: Mapping[str, Any]) -> np.ndarray:
        """The averaged target risky weights ``(B, N)`` of a (batched or single) observation."""
        w_obs = np.asarray(observation["weights"], dtype=np.float64)
        batched = w_obs.ndim == 2
        obs = observation if batched else {k: np.asarray(v)[None] for k, v in observation.items()}
        n = int(np.asarray(obs["weights"]).shape[-1]) - 1
        wd = np.asarray(obs["weights"], dtype=np.float64)[:, :n]
        total = np.zeros_like(wd)
        for pol, mapper, mw in zip(self.members, self._mappers_for(n), self.member_weights, strict=True):
            a, _ = pol.predict(obs, None, None, self.deterministic)
            a = mapper.validate(np.asarray(a, dtype=np.float64).reshape(len(wd), -1), len(wd))
            total += mw * mapper.target(a)  # static constraints: the env caps turnover from the drifted book
        return total

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """The ensemble's action (SB3 signature) in :attr:`action_mode`."""
        w = self.weights(observation)
        if self.long_only:
            action = np.concatenate([w, 1.0 - w.sum(axis=-1, keepdims=True)], axis=-1)
            action = np.clip(action, 0.0, 1.0)
        else:
            lev = float(self.env_config.constraints.max_gross_leverage)  # type: ignore[union-attr]
            action = np.clip(w / lev, -1.0, 1.0)
        single = np.asarray(observation["weights"]).ndim == 1
        return (action[0] if single else action), state

    def __repr__(self) -> str:
        return f"SeedEnsemble({len(self.members)} members, {self.action_mode})"

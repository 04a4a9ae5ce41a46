"""Domain randomisation of training episodes: :class:`DomainRandomization`.

Three per-episode perturbations, each off by default, each drawn from the episode's own
stream (:func:`randomization_stream`, spawned from the episode seed beside the start and
path streams of :func:`~factorgym.envs.engine.episode_streams`, which it does not change),
so an episode is still a function of its seed:

``vol_scale=(lo, hi)``
    Every return of the episode, observed and earned, is multiplied by one factor ``s``
    drawn log-uniformly from ``[lo, hi]`` (floored at -0.99 so a scaled return stays a
    possible simple return). The volatility of the market seen by the agent is ``s`` times
    its source's; the mean too (a pure rescaling of the path).
``cost_scale=(lo, hi)``
    Every cost of the episode is multiplied by one factor drawn log-uniformly from
    ``[lo, hi]`` (the rates, buy and sell and impact alike).
``permute_assets=True``
    The episode's assets are presented to the agent in a random order: the observation's
    asset axes (returns, mask, weights, features, moments) are permuted, and the agent's
    action is read in that order and mapped back before the accounting (cash stays last).
    A policy therefore cannot memorise which column is which stock.

The draws are reported in ``info["randomization"]``: ``{"vol_scale": s, "cost_scale": c,
"permutation": [...]}`` with ``permutation[j]`` the real asset shown in column ``j``.

Randomisation is for training only: evaluation on real data (validation, backtests,
:func:`~factorgym.agents.rl.evaluate_policy_on`) runs without it
(:meth:`~factorgym.envs.config.EnvConfig.for_evaluation`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from factorgym.errors import FactorGymError

__all__ = ["DomainRandomization", "EpisodeDraw", "randomization_stream"]

#: Lowest scaled simple return (a scale of a large loss must stay above -100%).
MIN_SCALED_RETURN = -0.99


def randomization_stream(episode_seed: int) -> np.random.Generator:
    """The randomisation stream of an episode: the third child of its seed's
    ``SeedSequence`` (the first two are the start and path streams)."""
    return np.random.default_rng(np.random.SeedSequence(int(episode_seed), spawn_key=(2,)))


def _range(name: str, value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lo, hi = (float(x) for x in value)
    except (TypeError, ValueError):
        raise FactorGymError(f"{name} must be a pair (low, high) of positive numbers, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise FactorGymError(f"{name} must be a pair (low, high) with 0 < low <= high, got {value!r}")
    return lo, hi


@dataclass(frozen=True)
class EpisodeDraw:
    """One episode's randomisation: scales and the permutation (``None``: identity)."""

    vol_scale: float = 1.0
    cost_scale: float = 1.0
    permutation: np.ndarray | None = None

    def info(self) -> dict[str, Any]:
        return {
            "vol_scale": self.vol_scale,
            "cost_scale": self.cost_scale,
            "permutation": None if self.permutation is None else self.permutation.tolist(),
        }


@dataclass(frozen=True)
class DomainRandomization:
    """Per-episode randomisation of a training environment (see the module docstring).

    Parameters
    ----------
    vol_scale : (low, high), optional
        Range of the log-uniform return scale (e.g. ``(0.7, 1.5)``); ``None``: off.
    cost_scale : (low, high), optional
        Range of the log-uniform cost scale (e.g. ``(0.5, 2.0)``); ``None``: off.
    permute_assets : bool
        Present the assets in a random order each episode (default off).
    """

    vol_scale: tuple[float, float] | None = None
    cost_scale: tuple[float, float] | None = None
    permute_assets: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "vol_scale", _range("vol_scale", self.vol_scale))
        object.__setattr__(self, "cost_scale", _range("cost_scale", self.cost_scale))
        if not isinstance(self.permute_assets, bool | np.bool_):
            raise FactorGymError(f"permute_assets must be true or false, got {self.permute_assets!r}")
        object.__setattr__(self, "permute_assets", bool(self.permute_assets))

    @property
    def active(self) -> bool:
        """True when anything is randomised."""
        return self.vol_scale is not None or self.cost_scale is not None or self.permute_assets

    def draw(self, episode_seed: int, n_assets: int) -> EpisodeDraw:
        """The episode's draw, a function of its seed only."""
        rng = randomization_stream(episode_seed)

        def loguniform(r: tuple[float, float] | None) -> float:
            u = float(rng.random())  # always drawn, so each option's draw does not depend on the others
            return 1.0 if r is None else float(math.exp(math.log(r[0]) + u * (math.log(r[1]) - math.log(r[0]))))

        vol = loguniform(self.vol_scale)
        cost = loguniform(self.cost_scale)
        perm = rng.permutation(int(n_assets))
        return EpisodeDraw(vol, cost, perm if self.permute_assets else None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "vol_scale": None if self.vol_scale is None else list(self.vol_scale),
            "cost_scale": None if self.cost_scale is None else list(self.cost_scale),
            "permute_assets": self.permute_assets,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DomainRandomization:
        unknown = sorted(set(d) - {"vol_scale", "cost_scale", "permute_assets"})
        if unknown:
            raise FactorGymError(f"unknown randomization options {unknown}; accepted: vol_scale, cost_scale, permute_assets")
        return cls(**dict(d))

    @classmethod
    def coerce(cls, value: Any) -> DomainRandomization | None:
        """``None``, a :class:`DomainRandomization` or its JSON form; ``None`` when nothing is randomised."""
        if value is None:
            return None
        if isinstance(value, Mapping):
            value = cls.from_dict(value)
        if not isinstance(value, DomainRandomization):
            raise FactorGymError(f"randomization must be a DomainRandomization or a mapping, got {type(value).__name__}")
        return value if value.active else None

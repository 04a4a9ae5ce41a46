"""The stable-baselines3 algorithms an agent can train with, which action modes they can
act in (:func:`check_compatible`) and their keyword arguments (:func:`algo_kwargs`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces
from stable_baselines3 import A2C, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise

from factorgym.errors import FactorGymError

if TYPE_CHECKING:
    pass

__all__ = ["ALGOS", "DEFAULT_BUFFER_CAP", "DEFAULT_TD3_NOISE", "RL_ACTION_MODES", "algo_kwargs", "check_compatible"]


#: SB3 algorithm classes by name.
ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "sac": SAC, "td3": TD3}
#: Environment action modes an RL policy can act in (see the module docstring).
RL_ACTION_MODES: tuple[str, ...] = ("softmax", "simplex", "long_short")

#: Default SAC/TD3 replay buffer cap: float64 Dict observations cost about
#: ``2 * 8 * (window * N + N + 1)`` bytes per transition (about 6.7 kB for sp500, window 20).
DEFAULT_BUFFER_CAP = 100_000
#: Default std of TD3's Gaussian exploration noise (SB3 adds none unless given one).
DEFAULT_TD3_NOISE = 0.1


def check_compatible(algo: str, action_mode: str, action_space: spaces.Space | None = None) -> None:
    """Raise :class:`FactorGymError` unless SB3's ``algo`` can act in ``action_mode``.

    Parameters
    ----------
    algo : {"ppo", "a2c", "sac", "td3"}
    action_mode : str
        An environment action mode.
    action_space : gymnasium.spaces.Space, optional
        The built environment's action space, checked to be a ``Box`` with finite bounds.
    """
    if algo not in ALGOS:
        raise FactorGymError(f"unknown RL algorithm {algo!r}; expected one of {', '.join(ALGOS)}")
    if action_mode == "weights":
        raise FactorGymError(
            f"{algo} cannot act in action_mode 'weights': that Box holds only per-asset bounds while "
            "budget and leverage are checked, so a policy's action can be infeasible; use one of "
            f"{', '.join(RL_ACTION_MODES)} (the environment maps them onto the constraints)"
        )
    if action_mode not in RL_ACTION_MODES:
        raise FactorGymError(f"unknown action_mode {action_mode!r} for RL; expected one of {', '.join(RL_ACTION_MODES)}")
    if action_space is not None:
        if not isinstance(action_space, spaces.Box):
            raise FactorGymError(f"{algo} needs a Box action space, the environment has {action_space}")
        if not (np.isfinite(action_space.low).all() and np.isfinite(action_space.high).all()):
            raise FactorGymError(f"{algo} needs an action Box with finite bounds, got {action_space}")


_ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU", "elu": "ELU", "leaky_relu": "LeakyReLU", "gelu": "GELU", "silu": "SiLU"}


def algo_kwargs(
    algo: str, user: Mapping[str, Any] | None, total_timesteps: int, action_dim: int
) -> dict[str, Any]:
    """SB3 keyword arguments: factorgym's few defaults, then the user's (which win)."""
    kw: dict[str, Any] = {"device": "cpu", "verbose": 0}
    if algo in ("sac", "td3"):
        kw["buffer_size"] = int(min(DEFAULT_BUFFER_CAP, max(total_timesteps, 1)))
    if algo == "td3":
        kw["action_noise"] = DEFAULT_TD3_NOISE
    kw.update(dict(user or {}))
    for k in ("policy", "env", "seed", "tensorboard_log"):
        if k in kw:
            raise FactorGymError(f"algo_kwargs may not set {k!r}; train_agent sets it")
    pk = dict(kw.get("policy_kwargs") or {})
    act = pk.get("activation_fn")
    if isinstance(act, str):
        import torch.nn as nn

        name = _ACTIVATIONS.get(act.lower(), act)
        if not hasattr(nn, name):
            raise FactorGymError(f"unknown activation_fn {act!r}; e.g. {', '.join(_ACTIVATIONS)}")
        pk["activation_fn"] = getattr(nn, name)
    if pk:
        kw["policy_kwargs"] = pk
    noise = kw.get("action_noise")
    if isinstance(noise, int | float) and not isinstance(noise, bool):
        if algo not in ("sac", "td3"):
            raise FactorGymError(f"action_noise applies to sac/td3, not {algo}")
        sigma = float(noise)
        kw["action_noise"] = None if sigma == 0 else NormalActionNoise(np.zeros(action_dim), np.full(action_dim, sigma))
    return kw

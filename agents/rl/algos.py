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

__all__ = [
    "ALGOS", "DEFAULT_BUFFER_CAP", "DEFAULT_LOG_STD_INIT", "DEFAULT_PPO_BATCH", "DEFAULT_PPO_N_STEPS", "DEFAULT_TD3_NOISE",
    "DEVICES", "RL_ACTION_MODES", "algo_kwargs", "check_algo_kwargs", "check_compatible", "check_device",
]  # fmt: skip


#: SB3 algorithm classes by name.
ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "sac": SAC, "td3": TD3}
#: Environment action modes an RL policy can act in (see the module docstring).
RL_ACTION_MODES: tuple[str, ...] = ("softmax", "simplex", "long_short", "residual")

#: Default SAC/TD3 replay buffer cap: float64 Dict observations cost about
#: ``2 * 8 * (window * N + N + 1)`` bytes per transition (about 6.7 kB for sp500, window 20).
DEFAULT_BUFFER_CAP = 100_000
#: Default std of TD3's Gaussian exploration noise (SB3 adds none unless given one).
DEFAULT_TD3_NOISE = 0.1
#: PPO's default rollout length per path (SB3's 2048 x 16 paths made 7 updates in 200k
#: steps; 256 x 8 paths is 2,048 steps a rollout: 48 updates in the CLI's 100k steps).
DEFAULT_PPO_N_STEPS = 256
#: PPO's default minibatch when neither ``n_steps`` nor ``batch_size`` is given.
DEFAULT_PPO_BATCH = 256
#: Initial log-std of PPO/A2C's Gaussian policy (SB3: 0, std 1). Exploration turnover of
#: zero-mean actions on sp500 (per day, sum |w - w_d|), log-std 0 / -1 / -2: softmax at
#: temperature 0.25: 1.44 / 1.24 / 0.55; temperature 1: 0.70 / 0.38 / 0.14; residual mode
#: with scale 0.1: 0.79 / 0.40 / 0.15. Lower is not free: in the drift test of
#: tests/test_rl.py (24,576 steps) softmax 0.25 reached a weight of 0.88 on the drifting
#: asset with log-std 0, 0.51 with -1, 0.19 (no learning) with -2. -1 is the compromise;
#: quieter exploration is better bought with the temperature or the residual mode.
DEFAULT_LOG_STD_INIT = -1.0
#: Accepted ``device`` values (also ``"cuda:N"``).
DEVICES = ("auto", "cpu", "cuda")


def check_device(device: str) -> str:
    """``device`` if it is ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, else a
    :class:`FactorGymError` naming it."""
    d = device if isinstance(device, str) else None
    if d is None or not (d in DEVICES or (d.startswith("cuda:") and d[5:].isdigit())):
        raise FactorGymError(f"device must be one of {', '.join(DEVICES)} or cuda:N, got {device!r}")
    return d


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


#: SB3 keyword arguments whose type can be checked before SB3 sees them (SB3 itself fails
#: late and deep for many of them: an assertion, or a torch TypeError in the middle of
#: training): name -> (kind, lowest allowed value, highest allowed value).
_KWARG_TYPES: dict[str, tuple[str, float | None, float | None]] = {
    "learning_rate": ("float", 0.0, None), "gamma": ("float", 0.0, 1.0), "gae_lambda": ("float", 0.0, 1.0),
    "vf_coef": ("float", 0.0, None), "max_grad_norm": ("float", 0.0, None), "clip_range": ("float", 0.0, None),
    "clip_range_vf": ("float", 0.0, None), "tau": ("float", 0.0, 1.0), "target_kl": ("float", 0.0, None),
    "target_policy_noise": ("float", 0.0, None), "target_noise_clip": ("float", 0.0, None),
    "rms_prop_eps": ("float", 0.0, None), "ent_coef": ("float", 0.0, None),
    "n_steps": ("int", 1, None), "batch_size": ("int", 1, None), "n_epochs": ("int", 1, None),
    "buffer_size": ("int", 1, None), "learning_starts": ("int", 0, None), "gradient_steps": ("int", -1, None),
    "train_freq": ("int", 1, None), "policy_delay": ("int", 1, None), "target_update_interval": ("int", 1, None),
    "sde_sample_freq": ("int", -1, None), "stats_window_size": ("int", 1, None), "verbose": ("int", 0, 2),
    "normalize_advantage": ("bool", None, None), "use_sde": ("bool", None, None), "use_rms_prop": ("bool", None, None),
    "optimize_memory_usage": ("bool", None, None), "use_sde_at_warmup": ("bool", None, None),
    "policy_kwargs": ("dict", None, None),
}  # fmt: skip


def check_algo_kwargs(algo: str, user: Mapping[str, Any] | None) -> None:
    """Raise :class:`FactorGymError` naming the key of an SB3 keyword argument whose value
    has the wrong type or range (checked before any data is loaded)."""
    for k, v in (user or {}).items():
        _check_kwarg(algo, k, v)


def _check_kwarg(algo: str, key: str, value: Any) -> None:
    """Raise :class:`FactorGymError` naming ``key`` when ``value`` cannot be what SB3 expects."""
    import math

    if key not in _KWARG_TYPES or callable(value) or value is None:
        return  # SB3's own check (an unknown keyword is a TypeError at construction); schedules are callables
    kind, lo, hi = _KWARG_TYPES[key]
    if key == "ent_coef" and algo == "sac" and isinstance(value, str) and value.startswith("auto"):
        return  # SAC's automatic entropy coefficient
    if key == "train_freq" and isinstance(value, list | tuple) and len(value) == 2:
        value = value[0]
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "dict":
        ok = isinstance(value, dict)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    expected = {"bool": "true or false", "dict": "a JSON object", "int": "an integer", "float": "a finite number"}[kind]
    if not ok:
        raise FactorGymError(f"{algo} keyword {key}={value!r} must be {expected}")
    if kind in ("int", "float") and ((lo is not None and value < lo) or (hi is not None and value > hi)):
        lo_s = "" if lo is None else f">= {lo:g}"
        hi_s = "" if hi is None else f"<= {hi:g}"
        raise FactorGymError(f"{algo} keyword {key}={value!r} must be {' and '.join(x for x in (lo_s, hi_s) if x)}")


_ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU", "elu": "ELU", "leaky_relu": "LeakyReLU", "gelu": "GELU", "silu": "SiLU"}


def algo_kwargs(
    algo: str, user: Mapping[str, Any] | None, total_timesteps: int, action_dim: int
) -> dict[str, Any]:
    """SB3 keyword arguments: factorgym's few defaults, then the user's (which win).

    Defaults differing from SB3's: ``device="cpu"``; PPO ``n_steps=256`` (and
    ``batch_size=256`` when neither is given); PPO/A2C ``policy_kwargs["log_std_init"]=-1``;
    SAC/TD3 ``buffer_size`` capped; TD3 ``action_noise=0.1``.
    """
    kw: dict[str, Any] = {"device": "cpu", "verbose": 0}
    given = dict(user or {})
    if algo == "ppo" and "n_steps" not in given:
        kw["n_steps"] = DEFAULT_PPO_N_STEPS
        if "batch_size" not in given:
            kw["batch_size"] = DEFAULT_PPO_BATCH
    if algo in ("ppo", "a2c") and "log_std_init" not in dict(given.get("policy_kwargs") or {}):
        kw["policy_kwargs"] = {**dict(given.get("policy_kwargs") or {}), "log_std_init": DEFAULT_LOG_STD_INIT}
        given["policy_kwargs"] = kw["policy_kwargs"]
    if algo in ("sac", "td3"):
        kw["buffer_size"] = int(min(DEFAULT_BUFFER_CAP, max(total_timesteps, 1)))
    if algo == "td3":
        kw["action_noise"] = DEFAULT_TD3_NOISE
    kw.update(given)
    if "device" in kw:
        check_device(kw["device"])
    for k in ("policy", "env", "seed", "tensorboard_log"):
        if k in kw:
            raise FactorGymError(f"algo_kwargs may not set {k!r}; train_agent sets it")
    check_algo_kwargs(algo, user)
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
    if isinstance(kw.get("train_freq"), list):  # JSON has no tuples: SB3 wants (n, "step")
        kw["train_freq"] = tuple(kw["train_freq"])
    noise = kw.get("action_noise")
    if isinstance(noise, int | float) and not isinstance(noise, bool):
        if algo not in ("sac", "td3"):
            raise FactorGymError(f"action_noise applies to sac/td3, not {algo}")
        sigma = float(noise)
        kw["action_noise"] = None if sigma == 0 else NormalActionNoise(np.zeros(action_dim), np.full(action_dim, sigma))
    return kw

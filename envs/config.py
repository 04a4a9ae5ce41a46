"""The one list of a portfolio environment's options: :class:`EnvConfig`.

Everything that fixes an agent's observation and action spaces and its accounting, as one
frozen record that round-trips through JSON (how an agent's environment is saved beside it and
rebuilt exactly for a backtest). :class:`~factorgym.envs.PortfolioEnv` and
:class:`~factorgym.envs.vec_env.VecPortfolioEnv` take these fields as keyword arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from factorgym.costs import CostModel
from factorgym.envs.actions import ACTION_MODES, Constraints
from factorgym.envs.markets import ObservationConfig
from factorgym.errors import FactorGymError
from factorgym.features import FeatureConfig, FeatureScaler
from factorgym.jsonable import jsonable, numbers_from_json

__all__ = ["ENV_KEYS", "EnvConfig", "constraints_from_dict", "constraints_to_dict", "cost_from_dict", "cost_to_dict"]



def constraints_to_dict(c: Constraints) -> dict[str, Any]:
    return jsonable({
        "long_only": c.long_only, "max_gross_leverage": c.max_gross_leverage, "budget": list(c.budget),
        "box": None if c.box is None else list(c.box), "max_turnover": c.max_turnover, "tol": c.tol,
    })  # fmt: skip


def constraints_from_dict(d: Mapping[str, Any]) -> Constraints:
    d = numbers_from_json(dict(d))
    box = d.get("box")
    return Constraints(
        long_only=bool(d["long_only"]),
        max_gross_leverage=float(d["max_gross_leverage"]),
        budget=(float(d["budget"][0]), float(d["budget"][1])),
        box=None if box is None else (box[0], box[1]),
        max_turnover=None if d.get("max_turnover") is None else float(d["max_turnover"]),
        tol=float(d["tol"]),
    )


def cost_to_dict(c: CostModel) -> dict[str, Any]:
    return jsonable({"buy": np.asarray(c.buy), "sell": np.asarray(c.sell), "impact": np.asarray(c.impact)})


def cost_from_dict(d: Mapping[str, Any]) -> CostModel:
    def arr(v: Any) -> Any:
        return np.asarray(v, dtype=np.float64) if isinstance(v, list) else float(v)

    return CostModel(buy=arr(d["buy"]), sell=arr(d["sell"]), impact=arr(d.get("impact", 0.0)))


@dataclass(frozen=True)
class EnvConfig:
    """Everything that fixes an agent's observation and action spaces and its accounting.

    The fields are the keyword arguments of :class:`~factorgym.envs.PortfolioEnv` (and of
    :class:`~factorgym.envs.vec_env.VecPortfolioEnv`) except the market; :meth:`kwargs` gives
    them back. The configuration round-trips through JSON (:meth:`to_dict`,
    :meth:`from_dict`), which is how an agent's environment is rebuilt exactly for a backtest.

    Parameters
    ----------
    window, action_mode, temperature, constraints, cost_model, reward, reward_kwargs,
    risk_free, ruin_threshold, features, feature_scaler, moments, initial_weights
        As for :class:`~factorgym.envs.PortfolioEnv`. ``reward`` must be a registered reward
        name (a custom ``Reward`` object cannot be saved). ``cost_model=None`` and
        ``constraints=None`` are resolved to the environment's defaults, so the saved
        configuration states the rates and constraints actually used.
    """

    window: int = 20
    action_mode: str = "softmax"
    temperature: float = 0.25
    constraints: Constraints | None = None
    cost_model: CostModel | None = None
    reward: str = "log"
    reward_kwargs: Mapping[str, Any] = field(default_factory=dict)
    risk_free: float = 0.0
    ruin_threshold: float = 0.01
    features: FeatureConfig | None = None
    feature_scaler: FeatureScaler | None = None
    moments: str | None = None
    initial_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.action_mode not in ACTION_MODES:
            raise FactorGymError(f"unknown action_mode {self.action_mode!r}; expected one of {', '.join(ACTION_MODES)}")
        if not isinstance(self.reward, str):
            raise FactorGymError(
                "reward must be a registered reward name (with reward_kwargs), not a Reward object, "
                "so that the agent's environment can be saved and rebuilt"
            )
        if int(self.window) < 1:
            raise FactorGymError(f"window must be at least 1 day, got {self.window}")
        # resolve defaults so that the sidecar records what was actually used
        if self.constraints is None:
            c = Constraints.long_short() if self.action_mode == "long_short" else Constraints()
            object.__setattr__(self, "constraints", c)
        if self.cost_model is None:
            object.__setattr__(self, "cost_model", CostModel())
        object.__setattr__(self, "window", int(self.window))
        object.__setattr__(self, "reward_kwargs", dict(self.reward_kwargs))
        if self.initial_weights is not None:
            object.__setattr__(self, "initial_weights", tuple(float(x) for x in self.initial_weights))

    @classmethod
    def coerce(cls, value: EnvConfig | Mapping[str, Any] | None) -> EnvConfig:
        """An :class:`EnvConfig` from itself, ``None`` (defaults) or a mapping of env kwargs.

        Mapping values may be the objects (``CostModel``, ``Constraints``, ``FeatureConfig``,
        ``FeatureScaler``) or their JSON forms.
        """
        if value is None:
            return cls()
        if isinstance(value, EnvConfig):
            return value
        if not isinstance(value, Mapping):
            raise FactorGymError(f"env_kwargs must be a mapping or an EnvConfig, got {type(value).__name__}")
        unknown = sorted(set(value) - set(ENV_KEYS))
        if unknown:
            raise FactorGymError(f"unknown environment options {unknown}; accepted: {', '.join(ENV_KEYS)}")
        return cls.from_dict(value)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EnvConfig:
        """Inverse of :meth:`to_dict` (also accepts the objects themselves as values)."""
        kw = dict(d)
        c = kw.get("constraints")
        if isinstance(c, Mapping):
            kw["constraints"] = constraints_from_dict(c)
        cm = kw.get("cost_model")
        if isinstance(cm, Mapping):
            kw["cost_model"] = cost_from_dict(cm)
        f = kw.get("features")
        if isinstance(f, Mapping):
            kw["features"] = FeatureConfig.from_dict(dict(f))
        s = kw.get("feature_scaler")
        if isinstance(s, Mapping):
            kw["feature_scaler"] = FeatureScaler.from_dict(dict(s))
        if "reward_kwargs" in kw:
            kw["reward_kwargs"] = numbers_from_json(dict(kw["reward_kwargs"] or {}))
        try:
            return cls(**{k: v for k, v in kw.items() if k in ENV_KEYS})
        except (TypeError, ValueError, KeyError) as exc:
            raise FactorGymError(f"bad environment configuration: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the ``env`` entry of ``agent.json``)."""
        assert self.constraints is not None and self.cost_model is not None
        return {
            "window": self.window,
            "action_mode": self.action_mode,
            "temperature": self.temperature,
            "constraints": constraints_to_dict(self.constraints),
            "cost_model": cost_to_dict(self.cost_model),
            "reward": self.reward,
            "reward_kwargs": jsonable(self.reward_kwargs),
            "risk_free": self.risk_free,
            "ruin_threshold": self.ruin_threshold,
            "features": None if self.features is None else self.features.to_dict(),
            "feature_scaler": None if self.feature_scaler is None else self.feature_scaler.to_dict(),
            "moments": self.moments,
            "initial_weights": None if self.initial_weights is None else list(self.initial_weights),
        }

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``PortfolioEnv`` / ``VecPortfolioEnv`` (without the market)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def observation_config(self) -> ObservationConfig:
        """The observation part of the configuration."""
        return ObservationConfig(self.window, self.features, self.feature_scaler, self.moments)  # type: ignore[arg-type]


#: The option names, in the order of :class:`EnvConfig`'s fields (the one list of them).
ENV_KEYS: tuple[str, ...] = tuple(f.name for f in fields(EnvConfig))

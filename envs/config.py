"""The one list of a portfolio environment's options: :class:`EnvConfig`.

Everything that fixes an agent's observation and action spaces and its accounting, as one
frozen, validated record that round-trips through JSON (how an agent's environment is saved
beside it and rebuilt exactly for a backtest). The engine
(:class:`~factorgym.envs.engine.PortfolioEngine`), :class:`~factorgym.envs.PortfolioEnv` and
:class:`~factorgym.envs.vec_env.VecPortfolioEnv` all take their options from it: the envs
accept an ``EnvConfig`` and/or its field names as keyword arguments (:meth:`EnvConfig.merged`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from factorgym.constraints import Constraints
from factorgym.costs import CostModel
from factorgym.envs.actions import ACTION_MODES, check_trading_rules
from factorgym.envs.markets import ObservationConfig
from factorgym.envs.randomization import DomainRandomization
from factorgym.envs.rewards import Reward
from factorgym.errors import ActionError, FactorGymError
from factorgym.features import FeatureConfig, FeatureScaler
from factorgym.jsonable import jsonable, numbers_from_json

__all__ = [
    "ENV_KEYS",
    "EnvConfig",
    "check_keys",
    "constraints_from_dict",
    "constraints_to_dict",
    "cost_from_dict",
    "cost_to_dict",
    "default_constraints",
]


def constraints_to_dict(c: Constraints) -> dict[str, Any]:
    """JSON form of a :class:`~factorgym.constraints.Constraints` (see ``Constraints.to_dict``)."""
    return c.to_dict()


def constraints_from_dict(d: Mapping[str, Any]) -> Constraints:
    """Inverse of :func:`constraints_to_dict`."""
    return Constraints.from_dict(d)


def cost_to_dict(c: CostModel) -> dict[str, Any]:
    return jsonable({"buy": np.asarray(c.buy), "sell": np.asarray(c.sell), "impact": np.asarray(c.impact)})


def cost_from_dict(d: Mapping[str, Any]) -> CostModel:
    def arr(v: Any) -> Any:
        return np.asarray(v, dtype=np.float64) if isinstance(v, list) else float(v)

    return CostModel(buy=arr(d["buy"]), sell=arr(d["sell"]), impact=arr(d.get("impact", 0.0)))


def default_constraints(action_mode: str) -> Constraints:
    """The constraint set of an environment given none: long/short for ``"long_short"``, else long-only."""
    return Constraints.long_short() if action_mode == "long_short" else Constraints()


#: Benchmarks whose same-day log growth ``EnvConfig.reward_benchmark`` subtracts from the reward.
REWARD_BENCHMARKS: tuple[str, ...] = ("equal_weight",)


@dataclass(frozen=True)
class EnvConfig:
    """Everything that fixes an agent's observation and action spaces and its accounting.

    The fields are the options of :class:`~factorgym.envs.PortfolioEnv` (and of
    :class:`~factorgym.envs.vec_env.VecPortfolioEnv`) except the market; :meth:`kwargs` gives
    them back. Every option is validated here, once. The configuration round-trips through
    JSON (:meth:`to_dict`, :meth:`from_dict`), which is how an agent's environment is rebuilt
    exactly for a backtest.

    Parameters
    ----------
    window : int
        Days of returns observed (default 20).
    action_mode : {"weights", "softmax", "simplex", "long_short"}
        See :mod:`factorgym.envs.actions`.
    temperature : float
        Softmax temperature (``"softmax"`` only, default 0.25).
    constraints : Constraints, optional
        Default: long/short for ``"long_short"``, else long-only invested up to 100%.
    cost_model : CostModel, optional
        Default ``CostModel()`` (7.5 bps buys, 12.5 bps sells, no impact).
    reward : str or Reward
        A registered reward name (with ``reward_kwargs``) or a ``Reward`` instance; an
        instance works in an environment but cannot be saved (:meth:`to_dict` refuses it).
    reward_kwargs : mapping
    risk_free : float
        Daily simple return of the cash leg (> -1).
    ruin_threshold : float
        Wealth at or below which an episode terminates, in ``[0, 1)`` (default 0.01).
    features, feature_scaler, moments
        Extra observations (see :class:`~factorgym.envs.markets.ObservationConfig`).
    initial_weights : sequence of float, optional
        The starting book ``(N,)`` (default all cash).
    execution_lag : int
        Days between a decision and its trade (default 0), a whole number ``>= 0``. With lag
        0 the weights chosen at the close of day ``t`` are traded at that close and earn
        ``r_{t+1}``. With lag ``L`` they are traded at the close of day ``t + L`` (costs on
        ``|w_target - w_drifted|`` with the drifted weights of that close) and first earn
        ``r_{t+L+1}``; until then the book keeps drifting. The first ``L`` days of an
        episode hold the starting book and its last ``L`` decisions never execute (an
        episode still has the market's horizon of steps, each earning one day).
    turnover_penalty : float
        Subtracted from the reward per unit of the day's turnover ``sum|w - w_d|`` (the
        info's ``turnover``, buys plus sells), e.g. ``1e-3``; default 0 (off). It shapes the
        reward only: wealth, costs and every metric are unchanged.
    residual_scale : float
        ``action_mode="residual"`` only: the largest move of one entry (asset or cash) away
        from the base portfolio, in ``(0, 1]`` (default 0.1). See :mod:`factorgym.envs.actions`.
    base_weights : sequence of float, optional
        ``action_mode="residual"`` only: the base risky weights ``(N,)``, long-only with
        ``sum <= 1`` (cash is the rest); default ``1/N`` fully invested.
    reward_benchmark : {"equal_weight"}, optional
        Subtract the benchmark's log growth of the same day from the reward (default
        ``None``, off). ``"equal_weight"``: 1/N of the assets tradable at the trade, before
        costs. The term does not depend on the action, so the policy that maximises the
        expected reward is unchanged; it removes the market's common move from the reward,
        a control variate that cuts the noise of the policy gradient. Wealth, costs and every
        metric are unchanged.
    trade_rate : float
        Mapped action modes: the fraction of the way from the drifted book to the policy's
        target traded each day, in ``(0, 1]`` (default 1, off); e.g. 0.25 holds an
        exponential average of the targets and trades noise in them four times less (and,
        from an all-cash start, takes about ``1 / trade_rate`` days to invest).
    no_trade_band : float
        Mapped action modes: no trade on a day when ``sum|target - w_drifted|`` is below
        this L1 distance (default 0, off). See :mod:`factorgym.envs.actions`.
    randomization : DomainRandomization or mapping, optional
        Per-episode domain randomisation of training episodes (volatility scale, cost
        scale, asset-order permutation; :mod:`factorgym.envs.randomization`), off by
        default. :meth:`for_evaluation` drops it.

    ``cost_model=None`` and ``constraints=None`` are resolved to the defaults above, so the
    saved configuration states the rates and constraints actually used.
    """

    window: int = 20
    action_mode: str = "softmax"
    temperature: float = 0.25
    constraints: Constraints | None = None
    cost_model: CostModel | None = None
    reward: str | Reward = "log"
    reward_kwargs: Mapping[str, Any] = field(default_factory=dict)
    risk_free: float = 0.0
    ruin_threshold: float = 0.01
    features: FeatureConfig | None = None
    feature_scaler: FeatureScaler | None = None
    moments: str | None = None
    initial_weights: tuple[float, ...] | None = None
    execution_lag: int = 0
    turnover_penalty: float = 0.0
    residual_scale: float = 0.1
    base_weights: tuple[float, ...] | None = None
    reward_benchmark: str | None = None
    trade_rate: float = 1.0
    no_trade_band: float = 0.0
    randomization: DomainRandomization | None = None

    def __post_init__(self) -> None:
        if self.action_mode not in ACTION_MODES:
            raise ActionError(f"unknown action_mode {self.action_mode!r}; expected one of {', '.join(ACTION_MODES)}")
        if not isinstance(self.reward, str | Reward):
            raise FactorGymError(
                "reward must be a registered reward name (with reward_kwargs) or a Reward object, "
                f"got {type(self.reward).__name__}"
            )
        w = self.window
        if isinstance(w, bool) or not isinstance(w, int | np.integer) or w < 1:
            raise FactorGymError(f"window must be a whole number of days >= 1, got {w!r}")
        risk_free, ruin = float(self.risk_free), float(self.ruin_threshold)
        if not math.isfinite(risk_free) or risk_free <= -1:
            raise FactorGymError(f"risk_free must be a finite daily rate > -1, got {self.risk_free}")
        if not math.isfinite(ruin) or ruin < 0 or ruin >= 1:
            raise FactorGymError(f"ruin_threshold must be in [0, 1), got {self.ruin_threshold}")
        # resolve defaults so that the sidecar records what was actually used
        if self.constraints is None:
            object.__setattr__(self, "constraints", default_constraints(self.action_mode))
        if self.cost_model is None:
            object.__setattr__(self, "cost_model", CostModel())
        if not isinstance(self.cost_model, CostModel):
            raise FactorGymError(f"cost_model must be a factorgym.costs.CostModel, got {type(self.cost_model).__name__}")
        if not isinstance(self.constraints, Constraints):
            raise FactorGymError(f"constraints must be a factorgym.constraints.Constraints, got {type(self.constraints).__name__}")
        lag = self.execution_lag
        if isinstance(lag, bool) or not isinstance(lag, int | np.integer) or lag < 0:
            raise FactorGymError(f"execution_lag must be a whole number of days >= 0, got {lag!r}")
        object.__setattr__(self, "execution_lag", int(lag))
        object.__setattr__(self, "window", int(self.window))
        object.__setattr__(self, "reward_kwargs", dict(self.reward_kwargs or {}))
        if self.initial_weights is not None:
            w0 = np.asarray(self.initial_weights, dtype=np.float64)
            if w0.ndim != 1:
                raise ActionError(f"initial_weights must be a 1-D sequence of weights, got shape {w0.shape}")
            object.__setattr__(self, "initial_weights", tuple(float(x) for x in w0))
        self._check_training_options()

    def _check_training_options(self) -> None:
        """Validate the training and trading options (turnover_penalty ... randomization)."""
        tp = self.turnover_penalty
        if isinstance(tp, bool) or not isinstance(tp, int | float | np.floating | np.integer) or not math.isfinite(tp) or tp < 0:
            raise FactorGymError(f"turnover_penalty must be a finite number >= 0, got {tp!r}")
        object.__setattr__(self, "turnover_penalty", float(tp))
        rs = self.residual_scale
        if isinstance(rs, bool) or not isinstance(rs, int | float | np.floating | np.integer) or not 0 < rs <= 1:
            raise FactorGymError(f"residual_scale must be a number in (0, 1], got {rs!r}")
        object.__setattr__(self, "residual_scale", float(rs))
        rate, band = check_trading_rules(self.trade_rate, self.no_trade_band, self.action_mode)
        object.__setattr__(self, "trade_rate", rate)
        object.__setattr__(self, "no_trade_band", band)
        if self.reward_benchmark is not None and self.reward_benchmark not in REWARD_BENCHMARKS:
            raise FactorGymError(f"reward_benchmark must be one of {', '.join(REWARD_BENCHMARKS)} or None, got {self.reward_benchmark!r}")
        if self.base_weights is not None:
            try:
                b = np.asarray(self.base_weights, dtype=np.float64)
            except (TypeError, ValueError):
                raise FactorGymError(f"base_weights must be a sequence of numbers, got {self.base_weights!r}") from None
            if b.ndim != 1 or b.size == 0 or not np.isfinite(b).all() or (b < 0).any() or b.sum() > 1 + 1e-9:
                raise FactorGymError(
                    f"base_weights must be finite long-only risky weights summing to at most 1, got {self.base_weights!r}"
                )
            if self.action_mode != "residual":
                raise FactorGymError(f"base_weights apply to action_mode 'residual' only, not {self.action_mode!r}")
            object.__setattr__(self, "base_weights", tuple(float(x) for x in b))
        object.__setattr__(self, "randomization", DomainRandomization.coerce(self.randomization))
        if self.randomization is not None and self.randomization.vol_scale is not None and (
            self.features is not None or self.moments is not None
        ):
            raise FactorGymError(
                "randomization vol_scale rescales the returns but not features or moments observations; "
                "drop vol_scale or those observations"
            )

    def for_evaluation(self) -> EnvConfig:
        """This configuration without its training-only domain randomisation (how agents are
        evaluated on real data)."""
        return self if self.randomization is None else replace(self, randomization=None)

    @classmethod
    def merged(cls, config: EnvConfig | Mapping[str, Any] | None = None, **options: Any) -> EnvConfig:
        """``config`` (an :class:`EnvConfig`, a mapping of options, or ``None``: defaults) with
        ``options`` (field names) taking precedence.

        When ``options`` change the ``action_mode`` of a ``config`` whose constraints were the
        old mode's default, the new mode's default constraints are used; a change to
        ``"weights"`` drops ``trade_rate`` and ``no_trade_band`` unless ``options`` set them.

        Raises
        ------
        FactorGymError
            An unknown option (the message lists the accepted ones) or a bad value.
        """
        check_keys(options)
        if config is None:
            return cls(**options)
        base = cls.coerce(config)
        if not options:
            return base
        kw = base.kwargs()
        mode = options.get("action_mode", base.action_mode)
        if "constraints" not in options and mode != base.action_mode and base.constraints == default_constraints(base.action_mode):
            kw["constraints"] = None
        if mode == "weights":  # the trading rules act on mapped targets only
            kw["trade_rate"], kw["no_trade_band"] = 1.0, 0.0
        kw.update(options)
        return cls(**kw)

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
        check_keys(value)
        return cls.from_dict(value)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EnvConfig:
        """Inverse of :meth:`to_dict` (also accepts the objects themselves as values)."""
        kw = dict(d)
        c = kw.get("constraints")
        if isinstance(c, Mapping):
            kw["constraints"] = Constraints.from_dict(c)
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
        except FactorGymError:
            raise
        except (TypeError, ValueError, KeyError) as exc:
            raise FactorGymError(f"bad environment configuration: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the ``env`` entry of ``agent.json``).

        Raises
        ------
        FactorGymError
            When ``reward`` is a ``Reward`` object rather than a registered name.
        """
        assert self.constraints is not None and self.cost_model is not None
        if not isinstance(self.reward, str):
            raise FactorGymError(
                f"this environment's reward is a {type(self.reward).__name__} object, which cannot be saved: "
                "configure a registered reward name with reward_kwargs so that the agent's environment "
                "can be saved and rebuilt"
            )
        return {
            "window": self.window,
            "action_mode": self.action_mode,
            "temperature": self.temperature,
            "constraints": self.constraints.to_dict(),
            "cost_model": cost_to_dict(self.cost_model),
            "reward": self.reward,
            "reward_kwargs": jsonable(self.reward_kwargs),
            "risk_free": self.risk_free,
            "ruin_threshold": self.ruin_threshold,
            "features": None if self.features is None else self.features.to_dict(),
            "feature_scaler": None if self.feature_scaler is None else self.feature_scaler.to_dict(),
            "moments": self.moments,
            "initial_weights": None if self.initial_weights is None else list(self.initial_weights),
            "execution_lag": self.execution_lag,
            "turnover_penalty": self.turnover_penalty,
            "residual_scale": self.residual_scale,
            "base_weights": None if self.base_weights is None else list(self.base_weights),
            "reward_benchmark": self.reward_benchmark,
            "trade_rate": self.trade_rate,
            "no_trade_band": self.no_trade_band,
            "randomization": None if self.randomization is None else self.randomization.to_dict(),
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


def check_keys(options: Mapping[str, Any]) -> None:
    """Raise :class:`FactorGymError` naming any key of ``options`` that is not an :data:`ENV_KEYS` option."""
    unknown = sorted(set(options) - set(ENV_KEYS))
    if unknown:
        raise FactorGymError(f"unknown environment options {unknown}; accepted: {', '.join(ENV_KEYS)}")

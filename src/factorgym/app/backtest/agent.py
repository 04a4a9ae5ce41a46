"""An agent as the backtest runs it: a policy plus how it observes and acts.

Only what an agent *observes* and *how its action is read* differ between agents (its
observation ``window``, ``action_mode`` and, for RL policies, softmax temperature /
features / moments); the accounting (costs, constraints, cash rate) is the run's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from factorgym.agents.baselines import EqualWeight
from factorgym.agents.protocol import Agent, Policy
from factorgym.envs.actions import ACTION_MODES
from factorgym.envs.config import ENV_KEYS
from factorgym.errors import DataValidationError

if TYPE_CHECKING:
    from factorgym.generators.base import ReturnGenerator

__all__ = ["DEFAULT_HISTORY_WINDOW", "OBS_KEYS", "BacktestAgent", "BuiltAgent", "infer_window", "sb3_agent"]

#: Estimation window (days) of optimizer agents built on classical estimators.
DEFAULT_HISTORY_WINDOW = 252

#: Environment options that shape what an agent observes and how its action is read and
#: traded (the trading rules ``trade_rate`` and ``no_trade_band`` are part of the agent).
OBS_KEYS = frozenset({"window", "action_mode", "temperature", "features", "feature_scaler", "moments", "residual_scale", "base_weights",
                      "trade_rate", "no_trade_band"})  # fmt: skip
#: Environment options of the accounting, which the backtest sets alike for every agent.
ACCOUNTING_KEYS = (frozenset(ENV_KEYS) - OBS_KEYS) | {"render_mode"}


@dataclass
class BacktestAgent:
    """An agent as the backtest runs it: a policy plus how it observes and acts.

    Parameters
    ----------
    name : str
        Row label in every table (unique within a run).
    policy : Policy
        Anything with SB3's ``predict(obs, state=None, episode_start=None,
        deterministic=True) -> (action, state)``: an :class:`~factorgym.agents.protocol.Agent`
        or a stable-baselines3 model.
    action_mode : str
        The environment action mode its actions are meant for.
    window : int
        Days of returns observed.
    obs_kwargs : dict
        Other observation/action keywords of the environment: ``temperature``,
        ``features``, ``feature_scaler``, ``moments``.
    predictor : ReturnGenerator, optional
        Fills a ``moments`` observation on the real path (a generative market uses its own
        generator).
    seed : int, optional
        Seed of the agent's own random streams (default: the run's seed).
    deterministic : bool
        Passed to ``predict``.
    trained_on : str, optional
        Where the agent was trained (e.g. ``"generator:ledoit_wolf"``), shown in the gap table.
    spec : str, optional
        The spec it was built from.
    training_end : str, optional
        Last date of data the agent (or its generator) was fitted or selected on; checked
        to precede the test period.
    """

    name: str
    policy: Policy
    action_mode: str = "weights"
    window: int = 1
    obs_kwargs: dict[str, Any] = field(default_factory=dict)
    predictor: ReturnGenerator | None = None
    seed: int | None = None
    deterministic: bool = True
    trained_on: str | None = None
    spec: str | None = None
    training_end: str | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise DataValidationError(f"an agent needs a non-empty name, got {self.name!r}")
        if not callable(getattr(self.policy, "predict", None)):
            raise DataValidationError(f"agent {self.name!r}: the policy has no predict() method ({type(self.policy).__name__})")
        if self.action_mode not in ACTION_MODES:
            raise DataValidationError(f"agent {self.name!r}: unknown action_mode {self.action_mode!r}; expected one of {ACTION_MODES}")
        if int(self.window) < 1:
            raise DataValidationError(f"agent {self.name!r}: window must be at least 1 day, got {self.window}")
        self.window = int(self.window)
        bad = set(self.obs_kwargs) - (OBS_KEYS - {"window", "action_mode"})
        if bad:
            raise DataValidationError(
                f"agent {self.name!r}: obs_kwargs may set only {', '.join(sorted(OBS_KEYS - {'window', 'action_mode'}))}; got {sorted(bad)}"
            )

    @classmethod
    def wrap(cls, agent: Any, name: str | None = None, **kwargs: Any) -> BacktestAgent:
        """A :class:`BacktestAgent` for an agent object, inferring its mode and window.

        ``action_mode`` is the agent's ``action_mode`` attribute (``"weights"`` for every
        :class:`~factorgym.agents.protocol.Agent`); ``window`` is its ``window`` attribute,
        else its source's estimation window (``HistoricalSource(window=None)`` ->
        :data:`DEFAULT_HISTORY_WINDOW`, a generator -> its ``min_history``), else 1.
        """
        if isinstance(agent, BacktestAgent):
            return replace(agent, name=name or agent.name, **kwargs) if (name or kwargs) else agent
        kw: dict[str, Any] = {
            "action_mode": str(getattr(agent, "action_mode", "weights")),
            "window": infer_window(agent),
        }
        kw.update(kwargs)
        return cls(name=name or _default_name(agent), policy=agent, **kw)

    # ------------------------------------------------------------------ helpers
    def env_kwargs(self) -> dict[str, Any]:
        """The observation/action keywords of the environment this agent runs in."""
        return {"window": self.window, "action_mode": self.action_mode, **self.obs_kwargs}

    @property
    def is_equal_weight(self) -> bool:
        """True for a fully invested 1/N agent (the reference of the comparisons)."""
        p = self.policy
        return isinstance(p, EqualWeight) and float(p.budget) == 1.0

    @property
    def needs_predictor(self) -> bool:
        """True when the observation includes generator-predicted moments."""
        return self.obs_kwargs.get("moments") is not None

    def reset(self, seed: int) -> None:
        """Restart the agent's random streams and counters (agents of this package only)."""
        if isinstance(self.policy, Agent):
            self.policy.reset(seed=int(seed))

    def counters(self) -> dict[str, float]:
        """Optimizer decision counters since the last reset (NaN for agents without them)."""
        from factorgym.agents.optimizers import OptimizerAgent

        p = self.policy
        keys = ("n_solves", "n_fallbacks", "n_holds")
        if not isinstance(p, OptimizerAgent):
            return dict.fromkeys(keys, math.nan)
        return {k: float(getattr(p, f"{k}_", math.nan)) for k in keys}  # NaN before its first reset

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (for ``backtest.json``)."""
        return {
            "name": self.name,
            "spec": self.spec,
            "policy": type(self.policy).__name__,
            "action_mode": self.action_mode,
            "window": self.window,
            "obs": {k: (v if isinstance(v, str | int | float | bool) or v is None else type(v).__name__) for k, v in self.obs_kwargs.items()},
            "trained_on": self.trained_on,
            "training_end": self.training_end,
            "seed": self.seed,
        }


def _default_name(agent: Any) -> str:
    cls = type(agent).__name__
    return {"EqualWeight": "equal_weight", "BuyAndHold": "buy_and_hold"}.get(cls, cls)


def infer_window(agent: Any) -> int:
    """Observation window an agent object needs (see :meth:`BacktestAgent.wrap`)."""
    w = getattr(agent, "window", None)
    if isinstance(w, int | np.integer) and not isinstance(w, bool) and w >= 1:
        return int(w)
    from factorgym.agents.estimators import HistoricalSource
    from factorgym.agents.optimizers import OptimizerAgent

    if isinstance(agent, OptimizerAgent):
        if isinstance(agent.source, HistoricalSource) and agent.source.window is None:
            return DEFAULT_HISTORY_WINDOW
        return max(1, int(agent.source.min_window))
    return 1


class BuiltAgent(NamedTuple):
    """An agent built from a spec or a saved model, with what the build noted (ignored
    settings...)."""

    agent: BacktestAgent
    notes: list[str]


def sb3_agent(
    model: Policy,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    name: str = "sb3",
    predictor: ReturnGenerator | None = None,
    trained_on: str | None = None,
    training_end: str | None = None,
    deterministic: bool = True,
    seed: int | None = None,
    spec: str | None = None,
) -> BuiltAgent:
    """Adapt a stable-baselines3 model (or any policy) and its training env keywords.

    Only the observation/action keywords are taken from ``env_kwargs`` (:data:`OBS_KEYS`:
    ``window``, ``action_mode``, ``temperature``, ``features``, ``feature_scaler``, ``moments``,
    the residual base and the trading rules ``trade_rate`` and ``no_trade_band``); the
    accounting keywords it was trained with (``cost_model``, ``constraints``, ``risk_free``,
    ``reward``...) are replaced by the backtest's own, so every agent is charged alike.

    Returns
    -------
    BuiltAgent
        ``(agent, notes)``: the :class:`BacktestAgent` and what was ignored from
        ``env_kwargs`` and why.
    """
    kw = dict(env_kwargs or {})
    notes: list[str] = []
    obs = {k: kw.pop(k) for k in list(kw) if k in OBS_KEYS}
    acct = sorted(k for k in kw if k in ACCOUNTING_KEYS)
    if acct:
        notes.append(f"{name}: its training {', '.join(acct)} are replaced by the backtest's (identical accounting for all agents)")
    other = sorted(k for k in kw if k not in ACCOUNTING_KEYS)
    if other:
        notes.append(f"{name}: ignored unknown environment keywords {other}")
    window = int(obs.pop("window", 20))
    mode = str(obs.pop("action_mode", getattr(model, "action_mode", "softmax")))
    agent = BacktestAgent(
        name=name,
        policy=model,
        action_mode=mode,
        window=window,
        obs_kwargs={k: v for k, v in obs.items() if v is not None},
        predictor=predictor,
        seed=seed,
        deterministic=deterministic,
        trained_on=trained_on,
        spec=spec,
        training_end=training_end,
    )
    return BuiltAgent(agent, notes)

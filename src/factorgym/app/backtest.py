"""Backtest protocol: agents x markets under identical accounting (``factorgym backtest``).

Every agent - an optimizer, a baseline or a stable-baselines3 policy - is run through the
same :class:`~factorgym.envs.vec_env.VecPortfolioEnv` engine with the same
:class:`~factorgym.costs.CostModel`, :class:`~factorgym.envs.actions.Constraints` and cash
rate, so differences between agents are differences of decisions, never of bookkeeping.
Only what an agent *observes* and *how its action is read* differ (its observation
``window``, ``action_mode`` and, for RL policies, softmax temperature / features / moments).

Markets
-------
**Real held-out path.** One :class:`~factorgym.envs.markets.HistoricalMarket` episode that
starts on the last day before the test period (the split's ``val_end``; the first trade
earns the first test day's return) and runs to the end of the test period (``test_end``, or
the panel's last day). No random start. The market is built on the panel cut at the end of
the test period, so nothing after it can be read; observation windows reach back into the
validation period (past information).

**Synthetic paths.** For each generator, ``n_paths`` paths of a
:class:`~factorgym.envs.markets.GenerativeMarket` conditioned on the same real history (the
panel cut at the same start day), ``horizon`` days long (default: as long as the real
path). Path ``i`` has the fixed episode seed ``synthetic_episode_seeds(seed, n)[i]`` (it does
not depend on ``n``), so every agent sees the *same* paths; this is checked at run time
with a fingerprint of each path's returns (see ``path_hash`` in the per-path table).

Statistics
----------
* Real path: :func:`factorgym.metrics.portfolio_metrics` of each agent's daily net returns
  (after costs), with turnover and costs, terminal wealth and optimizer solve / fallback /
  hold counts; the market index (``benchmark`` exogenous column, the S&P 500 in ``sp500``)
  as a benchmark row scored the same way with zero turnover and costs.
* Stationary-bootstrap confidence intervals (:class:`arch.bootstrap.StationaryBootstrap`,
  percentile method, block length from :func:`arch.bootstrap.optimal_block_length` unless
  given) of the Sharpe ratio, annualised return and volatility on the real path, and of the
  Sharpe *difference* to 1/N on the same resampled days (a paired test). Each agent's draws
  are seeded from ``(seed, agent name)``, so an interval does not change when other agents
  are added to the run.
* Synthetic paths: per-path metrics, then per agent the median and 5-95% band of each,
  CVaR(95%) of terminal wealth (a positive loss: the mean of ``1 - W_T`` over the worst 5%
  of paths), the probability of ending below 1/N's wealth on the same path, ruined paths
  and fallback counts. 1/N (:class:`~factorgym.agents.baselines.EqualWeight`) is added to
  the run when absent.
* Synthetic-to-real gap: real value minus the synthetic median, and the real value's
  percentile in the synthetic distribution (mid-rank), for Sharpe, annualised return and
  maximum drawdown. For an agent trained in a simulator, a real value far below its
  synthetic band is the sim-to-real gap.

Agent specs (command line)
--------------------------
``KIND[:ARG][,KEY=VALUE]...`` (values are JSON where they parse, else strings)::

    equal_weight                    1/N, rebalanced daily
    buy_and_hold                    1/N bought once (cost self-financed), then held
    mv:ESTIMATOR | mv:RUN           cost-aware mean-variance (MeanVariance)
    minvar:ESTIMATOR | minvar:RUN   cost-aware minimum variance
    cvar:ESTIMATOR | cvar:RUN       cost-aware mean-CVaR (MeanCVaR) on scenarios
    sb3:PATH                        a saved RL agent (factorgym.agents.rl.load_agent)

The optimizers are fully invested (``sum(w) = 1``, long-only within the run's constraints)
unless ``invested=false``, like 1/N and like the diffusion paper's portfolios: with daily
return scales a risk aversion such as the paper's gamma = 100 otherwise keeps almost all
wealth in cash, and the comparison with 1/N would be about leverage, not about the view.

``ESTIMATOR`` is ``sample`` (sample mean and covariance), ``ledoit_wolf`` (sample mean,
Ledoit-Wolf covariance) or ``james_stein`` (James-Stein mean, Ledoit-Wolf covariance); for
``cvar`` the scenarios are the window's observed days (historical simulation;
``historical`` is an alias of ``ledoit_wolf`` there). Any other ``ARG`` is a generator run
folder or artifact (:func:`factorgym.generators.runs.load_run`): the agent then uses the generator's
predictive distribution (:class:`~factorgym.agents.estimators.GeneratorSource`); write
``./NAME`` for a run folder that is named like an estimator.

Keys: ``label`` (display name), ``seed``; optimizers: ``window`` (days observed and used for
estimation; default 252 for estimators, the generator's ``min_history`` for runs),
``gamma`` (mv/minvar risk aversion, default 100), ``alpha`` (cvar level, 0.95),
``risk_aversion`` (cvar, 1.0), ``n_scenarios`` (runs, 500), ``draws`` (runs: ``own``, or
``shared`` to use the predictive's fixed draw, the same scenarios for every agent on the
run; see :class:`~factorgym.agents.estimators.GeneratorSource`), ``mean`` / ``cov`` (override
the estimator's), ``cost_aware`` (true), ``invested`` (fully invested: ``budget = (1, 1)``
within the run's constraints; default true; ``false`` lets the agent hold cash); sb3:
``deterministic`` (true), ``predictor=RUN`` (the generator behind a ``moments``
observation on the real path), ``model`` (``best``: the model selected on the validation
period, the default when training kept one; ``final``: the last one). Examples::

    mv:ledoit_wolf,gamma=50,window=126     cvar:runs/neuralfactors,n_scenarios=200
    minvar:sample,label=minvar-1y          sb3:runs/ppo_lw/agent.zip
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from factorgym import metrics as M
from factorgym.agents.baselines import BuyAndHold, EqualWeight, market_metrics, market_returns
from factorgym.agents.protocol import Agent, Policy
from factorgym.artifacts import atomic_write_text
from factorgym.costs import CostModel
from factorgym.data import ReturnPanel, Split
from factorgym.envs.actions import ACTION_MODES, Constraints
from factorgym.envs.markets import GenerativeMarket, HistoricalMarket, Market
from factorgym.envs.rollout import PathRun, rollout
from factorgym.errors import DataValidationError, FactorGymError

if TYPE_CHECKING:
    from rich.console import Console

    from factorgym.generators.base import ReturnGenerator
    from factorgym.report import Report

__all__ = [
    "AgentSpec",
    "BacktestAgent",
    "BacktestConfig",
    "BacktestResult",
    "PathRun",
    "agent_from_spec",
    "backtest",
    "backtest_cli",
    "bootstrap_intervals",
    "parse_agent_spec",
    "run_agent",
    "sb3_agent",
    "stress_agents",
    "synthetic_episode_seeds",
    "held_out_rows",
]

logger = logging.getLogger(__name__)

#: Estimation window (days) of optimizer agents built on classical estimators.
DEFAULT_HISTORY_WINDOW = 252

#: Metrics summarised over synthetic paths (median and band) and their table titles.
DIST_METRICS: dict[str, str] = {
    "sharpe": "Sharpe",
    "annualised_return": "Ann. return",
    "annualised_volatility": "Ann. vol",
    "sortino": "Sortino",
    "calmar": "Calmar",
    "max_drawdown": "Max DD",
    "cvar_95": "CVaR95 (daily)",
    "annualised_turnover": "Turnover/yr",
    "annualised_costs": "Costs/yr",
    "terminal_wealth": "Terminal wealth",
}

#: Metrics of the synthetic-to-real gap table.
GAP_METRICS: tuple[str, ...] = ("sharpe", "annualised_return", "max_drawdown")

#: Bootstrapped statistics of the real path.
BOOTSTRAP_STATS: tuple[str, ...] = ("sharpe", "annualised_return", "annualised_volatility", "sharpe_minus_ew")

_ENV_OBS_KEYS = frozenset({"window", "action_mode", "temperature", "features", "feature_scaler", "moments"})
_ENV_ACCOUNTING_KEYS = frozenset(
    {"cost_model", "constraints", "risk_free", "reward", "reward_kwargs", "ruin_threshold", "initial_weights", "render_mode"}
)


# =========================================================================== agents
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
        bad = set(self.obs_kwargs) - (_ENV_OBS_KEYS - {"window", "action_mode"})
        if bad:
            raise DataValidationError(
                f"agent {self.name!r}: obs_kwargs may set only temperature, features, feature_scaler, moments; got {sorted(bad)}"
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
        return {
            "n_solves": float(getattr(self.policy, "n_solves_", math.nan)),
            "n_fallbacks": float(getattr(self.policy, "n_fallbacks_", math.nan)),
            "n_holds": float(getattr(self.policy, "n_holds_", math.nan)),
        }

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
    source = getattr(agent, "source", None)
    if source is not None:
        from factorgym.agents.estimators import HistoricalSource

        if isinstance(source, HistoricalSource) and source.window is None:
            return DEFAULT_HISTORY_WINDOW
        return max(1, int(source.min_window))
    return 1


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
) -> tuple[BacktestAgent, list[str]]:
    """Adapt a stable-baselines3 model (or any policy) and its training env keywords.

    Only the observation/action keywords are taken from ``env_kwargs`` (``window``,
    ``action_mode``, ``temperature``, ``features``, ``feature_scaler``, ``moments``); the
    accounting keywords it was trained with (``cost_model``, ``constraints``, ``risk_free``,
    ``reward``...) are replaced by the backtest's own, so every agent is charged alike.

    Returns
    -------
    agent : BacktestAgent
    notes : list of str
        What was ignored from ``env_kwargs`` and why.
    """
    kw = dict(env_kwargs or {})
    notes: list[str] = []
    obs = {k: kw.pop(k) for k in list(kw) if k in _ENV_OBS_KEYS}
    acct = sorted(k for k in kw if k in _ENV_ACCOUNTING_KEYS)
    if acct:
        notes.append(f"{name}: its training {', '.join(acct)} are replaced by the backtest's (identical accounting for all agents)")
    other = sorted(k for k in kw if k not in _ENV_ACCOUNTING_KEYS)
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
    return agent, notes


# =========================================================================== spec grammar
_KINDS = ("equal_weight", "buy_and_hold", "mv", "minvar", "cvar", "sb3")
_ESTIMATORS: dict[str, tuple[str, str]] = {
    "sample": ("sample", "sample"),
    "ledoit_wolf": ("sample", "ledoit_wolf"),
    "james_stein": ("james_stein", "ledoit_wolf"),
    "historical": ("sample", "ledoit_wolf"),
}
_KEYS: dict[str, frozenset[str]] = {
    "equal_weight": frozenset({"label", "seed"}),
    "buy_and_hold": frozenset({"label", "seed"}),
    "mv": frozenset({"label", "seed", "window", "gamma", "mean", "cov", "cost_aware", "invested", "n_scenarios", "draws"}),
    "minvar": frozenset({"label", "seed", "window", "gamma", "cov", "cost_aware", "invested", "n_scenarios", "draws"}),
    "cvar": frozenset({"label", "seed", "window", "alpha", "risk_aversion", "mean", "cost_aware", "invested", "n_scenarios", "draws"}),
    "sb3": frozenset({"label", "seed", "deterministic", "predictor", "model"}),
}


@dataclass(frozen=True)
class AgentSpec:
    """A parsed agent spec ``KIND[:ARG][,KEY=VALUE]...`` (see the module docstring).

    Attributes
    ----------
    kind : str
    arg : str or None
    options : dict
        Parsed ``KEY=VALUE`` pairs (JSON values where they parse).
    text : str
        The spec as written.
    """

    kind: str
    arg: str | None
    options: dict[str, Any]
    text: str

    @property
    def uses_run(self) -> bool:
        """True when ``arg`` names a generator run (not a classical estimator)."""
        return self.kind in ("mv", "minvar", "cvar") and self.arg is not None and self.arg not in _ESTIMATORS

    @property
    def label(self) -> str:
        """The display name: ``label=`` if given, else the spec without options
        (generator runs as ``KIND:gen:RUN_NAME``)."""
        if "label" in self.options:
            return str(self.options["label"])
        if self.arg is None:
            return self.kind
        if self.uses_run:
            return f"{self.kind}:gen:{Path(self.arg).name or self.arg}"
        if self.kind == "sb3":
            p = Path(self.arg)
            return f"sb3:{p.stem if p.suffix else p.name}"
        return f"{self.kind}:{self.arg}"


def parse_agent_spec(text: str) -> AgentSpec:
    """Parse ``KIND[:ARG][,KEY=VALUE]...`` (see the module docstring).

    Raises
    ------
    DataValidationError
        For an unknown kind or key, a missing or superfluous argument, or a malformed pair.
    """
    s = str(text).strip()
    if not s:
        raise DataValidationError("empty agent spec")
    head, *pairs = s.split(",")
    kind, sep, arg = head.partition(":")
    kind = kind.strip().lower().replace("-", "_")
    if kind not in _KINDS:
        raise DataValidationError(f"unknown agent kind {kind!r} in {s!r}; expected one of {', '.join(_KINDS)}")
    arg_v: str | None = arg.strip() if sep else None
    if kind in ("equal_weight", "buy_and_hold") and arg_v:
        raise DataValidationError(f"{kind} takes no argument, got {s!r}")
    if kind in ("mv", "minvar", "cvar", "sb3") and not arg_v:
        hint = "a path" if kind == "sb3" else f"an estimator ({', '.join(_ESTIMATORS)}) or a generator run folder"
        raise DataValidationError(f"{kind} needs {hint}: {kind}:ARG, got {s!r}")
    options: dict[str, Any] = {}
    for p in pairs:
        key, eq, val = p.partition("=")
        key = key.strip()
        if not eq or not key:
            raise DataValidationError(f"agent option {p!r} in {s!r} must look like key=value")
        if key not in _KEYS[kind]:
            raise DataValidationError(f"unknown option {key!r} for {kind} in {s!r}; accepted: {', '.join(sorted(_KEYS[kind]))}")
        val = val.strip()
        try:
            options[key] = json.loads(val)
        except json.JSONDecodeError:
            options[key] = val
    return AgentSpec(kind, arg_v, options, s)


def _opt(spec: AgentSpec, key: str, cast: Callable[[Any], Any], default: Any) -> Any:
    if key not in spec.options:
        return default
    v = spec.options[key]
    try:
        if cast is bool:
            if isinstance(v, bool):
                return v
            if str(v).lower() in ("true", "1", "yes"):
                return True
            if str(v).lower() in ("false", "0", "no"):
                return False
            raise ValueError(v)
        return cast(v)
    except (TypeError, ValueError):
        raise DataValidationError(f"option {key}={v!r} of {spec.text!r} is not a valid {getattr(cast, '__name__', cast)}") from None


def _invested(constraints: Constraints) -> Constraints:
    """``constraints`` with the budget pinned to fully invested (``sum(w) = 1``)."""
    lo, hi = constraints.budget
    if not lo <= 1.0 <= hi:
        raise DataValidationError(f"invested=true needs a budget that allows sum(w) = 1, the run's budget is {constraints.budget}")
    return replace(constraints, budget=(1.0, 1.0))


#: a loaded generator run: (generator, run name, record, shared prediction cache)
LoadedRun = tuple["ReturnGenerator", str, "dict[str, Any] | None", Any]


def load_generator_run(path: str | os.PathLike[str], loaded: dict[str, LoadedRun] | None = None) -> LoadedRun:
    """Load a generator run once per backtest: ``loaded`` (keyed by the resolved path)
    shares the generator and one :class:`~factorgym.agents.estimators.PredictionCache`
    between every agent and synthetic market that names the same run."""
    from factorgym.agents.estimators import PredictionCache
    from factorgym.generators.runs import load_run

    key = str(Path(path).resolve())
    if loaded is not None and key in loaded:
        return loaded[key]
    gen, record, name = load_run(path)
    entry: LoadedRun = (gen, name, record, PredictionCache(gen))
    if loaded is not None:
        loaded[key] = entry
    return entry


def agent_from_spec(
    spec: str | AgentSpec,
    *,
    cost_model: CostModel | None = None,
    constraints: Constraints | None = None,
    risk_free: float = 0.0,
    loaded: dict[str, LoadedRun] | None = None,
) -> tuple[BacktestAgent, list[str]]:
    """Build the agent a spec describes, solving against the run's costs and constraints.

    Parameters
    ----------
    spec : str or AgentSpec
    cost_model, constraints : optional
        The backtest's (optimizers optimise against exactly what the environment charges
        and enforces; buy-and-hold self-finances its purchase under these costs).
    risk_free : float
        Daily cash rate (as the environment books it).
    loaded : dict, optional
        Runs already loaded in this backtest (see :func:`load_generator_run`); agents on the
        same run then share its generator and prediction cache.

    Returns
    -------
    agent : BacktestAgent
    notes : list of str
    """
    from factorgym.agents.estimators import GeneratorSource, HistoricalSource
    from factorgym.agents.optimizers import MeanCVaR, MeanVariance, MinVariance

    sp = spec if isinstance(spec, AgentSpec) else parse_agent_spec(spec)
    cm = cost_model if cost_model is not None else CostModel()
    cons = constraints if constraints is not None else Constraints()
    seed = _opt(sp, "seed", int, None)
    notes: list[str] = []
    if sp.kind == "equal_weight":
        return BacktestAgent(sp.label, EqualWeight(), window=1, seed=seed, spec=sp.text), notes
    if sp.kind == "buy_and_hold":
        return BacktestAgent(sp.label, BuyAndHold(cost_model=cm), window=1, seed=seed, spec=sp.text), notes
    if sp.kind == "sb3":
        return _sb3_from_spec(sp, seed)
    assert sp.arg is not None
    kind = sp.kind
    invested = _opt(sp, "invested", bool, True)
    agent_cons = _invested(cons) if invested else cons
    trained_on = None
    training_end = None
    if sp.uses_run:
        gen, run_name, record, cache = load_generator_run(sp.arg, loaded)
        training_end = ((record or {}).get("spec") or {}).get("val_end")
        source: Any = GeneratorSource(
            gen, n_scenarios=_opt(sp, "n_scenarios", int, 500), draws=_opt(sp, "draws", str, "own"), cache=cache
        )
        window = max(int(gen.min_history), _opt(sp, "window", int, 1))
        trained_on = f"generator:{run_name}"
        for k in ("mean", "cov"):
            if k in sp.options:
                raise DataValidationError(f"option {k} of {sp.text!r} applies to estimators, not generator runs")
    else:
        mean, cov = _ESTIMATORS[sp.arg]
        mean = str(sp.options.get("mean", mean))
        cov = str(sp.options.get("cov", cov))
        window = _opt(sp, "window", int, DEFAULT_HISTORY_WINDOW)
        if window < 2:
            raise DataValidationError(f"window of {sp.text!r} must be at least 2 days")
        source = HistoricalSource(window=None, mean=mean, covariance=cov)  # type: ignore[arg-type]
        source._validate()
        for k in ("n_scenarios", "draws"):
            if k in sp.options:
                raise DataValidationError(f"option {k} of {sp.text!r} applies to generator runs only")
    common = {"constraints": agent_cons, "cost_model": cm, "risk_free": risk_free, "cost_aware": _opt(sp, "cost_aware", bool, True), "seed": seed}
    policy: Agent
    if kind == "mv":
        policy = MeanVariance(source, gamma=_opt(sp, "gamma", float, 100.0), **common)
    elif kind == "minvar":
        policy = MinVariance(source, gamma=_opt(sp, "gamma", float, 100.0), **common)
    else:
        policy = MeanCVaR(source, alpha=_opt(sp, "alpha", float, 0.95), risk_aversion=_opt(sp, "risk_aversion", float, 1.0), **common)
    policy._validate_params()  # type: ignore[attr-defined]
    agent = BacktestAgent(sp.label, policy, window=window, seed=seed, trained_on=trained_on, spec=sp.text, training_end=training_end)
    return agent, notes


def _training_end(meta: Mapping[str, Any]) -> str | None:
    """The latest training/selection date recorded in an RL agent's metadata, if any."""
    found: list[pd.Timestamp] = []

    def visit(d: Any, depth: int) -> None:
        if not isinstance(d, Mapping) or depth > 3:
            return
        for k, v in d.items():
            if k in ("val_end", "train_end", "last_day", "data_end", "training_end") and isinstance(v, str):
                try:
                    found.append(pd.Timestamp(v))
                except ValueError:
                    pass
            elif isinstance(v, Mapping):
                visit(v, depth + 1)

    visit(meta, 0)
    return str(max(found).date()) if found else None


def _sb3_from_spec(sp: AgentSpec, seed: int | None) -> tuple[BacktestAgent, list[str]]:
    assert sp.arg is not None
    try:
        from factorgym.agents.rl import load_agent  # type: ignore[import-not-found]
    except ImportError as exc:
        raise FactorGymError(f"{sp.text}: loading RL agents needs factorgym.agents.rl ({exc})") from None
    which = str(sp.options.get("model", "auto"))
    if which not in ("auto", "best", "final"):
        raise DataValidationError(f"model of {sp.text!r} must be best, final or auto, got {which!r}")
    if which == "auto":  # the validation-selected model when training kept one
        which = "best" if Path(sp.arg).is_dir() and (Path(sp.arg) / "best_model.zip").is_file() else "final"
    model, loaded = load_agent(sp.arg, which=which)
    if hasattr(loaded, "record") and hasattr(loaded, "env"):  # factorgym.agents.rl.AgentMeta
        meta = dict(loaded.record)
        meta["env_kwargs"] = loaded.env.kwargs()
        source = getattr(loaded.market, "source", None)
        if source and str(source) != "historical":
            meta.setdefault("generator", str(source))
    else:
        meta = dict(loaded or {})
    env_kwargs = meta.get("env_kwargs") or meta.get("env") or {}
    predictor = None
    pred_path = sp.options.get("predictor") or meta.get("predictor_run")
    if pred_path:
        predictor = load_generator_run(str(pred_path))[0]
    trained_on = meta.get("trained_on")
    if trained_on is None and isinstance(meta.get("generator"), str):
        trained_on = f"generator:{Path(meta['generator']).name}"
    return sb3_agent(
        model,
        env_kwargs,
        name=sp.label,
        predictor=predictor,
        trained_on=None if trained_on is None else str(trained_on),
        training_end=_training_end(meta),
        deterministic=_opt(sp, "deterministic", bool, True),
        seed=seed,
        spec=sp.text,
    )


# =========================================================================== config
@dataclass(frozen=True)
class BacktestConfig:
    """Settings of a backtest.

    Parameters
    ----------
    split : Split
        The test period starts the day after ``split.val_end``.
    test_end : str, optional
        Last test day (inclusive; default the panel's last day).
    n_paths : int
        Synthetic paths per generator (``M``; 0 skips the synthetic markets).
    horizon : int, optional
        Days per synthetic path (default: the real test path's length).
    seed : int
        Seeds the synthetic paths' episode seeds, the agents' random streams (unless an
        agent has its own) and the bootstrap.
    cost_model : CostModel
        Charged to every agent (default 7.5 / 12.5 bps).
    constraints : Constraints
        Enforced for every agent (default long-only, invested up to 100%).
    risk_free : float
        **Daily** simple cash rate booked by the environment (metrics use its annual
        equivalent ``(1 + rf)^252 - 1``).
    bootstrap_reps : int
        Bootstrap resamples (0 skips the intervals).
    confidence : float
        Level of the bootstrap intervals.
    block_length : float, optional
        Mean block length of the stationary bootstrap (default: Politis-White optimal
        length of each series, at least 1).
    band : (float, float)
        Quantiles of the synthetic bands (default 5% and 95%).
    benchmark : str or None
        Exogenous column scored as the market benchmark row (``None`` to skip).
    periods_per_year : int
    """

    split: Split = field(default_factory=Split)
    test_end: str | None = None
    n_paths: int = 32
    horizon: int | None = None
    seed: int = 0
    cost_model: CostModel = field(default_factory=CostModel)
    constraints: Constraints = field(default_factory=Constraints)
    risk_free: float = 0.0
    bootstrap_reps: int = 1000
    confidence: float = 0.95
    block_length: float | None = None
    band: tuple[float, float] = (0.05, 0.95)
    benchmark: str | None = "SP500"
    periods_per_year: int = 252

    def __post_init__(self) -> None:
        if int(self.n_paths) < 0:
            raise DataValidationError(f"n_paths must be >= 0, got {self.n_paths}")
        if self.horizon is not None and int(self.horizon) < 1:
            raise DataValidationError(f"horizon must be at least 1 day, got {self.horizon}")
        if int(self.bootstrap_reps) < 0:
            raise DataValidationError(f"bootstrap_reps must be >= 0, got {self.bootstrap_reps}")
        if not 0.0 < float(self.confidence) < 1.0:
            raise DataValidationError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.block_length is not None and not float(self.block_length) >= 1.0:
            raise DataValidationError(f"block_length must be >= 1, got {self.block_length}")
        lo, hi = self.band
        if not 0.0 <= lo < hi <= 1.0:
            raise DataValidationError(f"band must be two quantiles 0 <= lo < hi <= 1, got {self.band}")
        if not math.isfinite(float(self.risk_free)) or self.risk_free <= -1:
            raise DataValidationError(f"risk_free must be a finite daily rate > -1, got {self.risk_free}")
        if not isinstance(self.cost_model, CostModel):
            raise DataValidationError("cost_model must be a factorgym.costs.CostModel")
        if not isinstance(self.constraints, Constraints):
            raise DataValidationError("constraints must be a factorgym.envs.actions.Constraints")

    @property
    def annual_risk_free(self) -> float:
        """The annual rate equivalent to the daily ``risk_free`` (as :mod:`factorgym.metrics` wants)."""
        return float((1.0 + self.risk_free) ** self.periods_per_year - 1.0)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description."""
        cm, c = self.cost_model, self.constraints
        return {
            "train_end": self.split.train_end,
            "val_end": self.split.val_end,
            "test_end": self.test_end,
            "n_paths": int(self.n_paths),
            "horizon": self.horizon,
            "seed": int(self.seed),
            "cost_model": {k: np.asarray(v).tolist() for k, v in asdict(cm).items()},
            "constraints": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(c).items()},
            "risk_free_daily": self.risk_free,
            "bootstrap_reps": int(self.bootstrap_reps),
            "confidence": self.confidence,
            "block_length": self.block_length,
            "band": list(self.band),
            "benchmark": self.benchmark,
            "periods_per_year": self.periods_per_year,
        }


def held_out_rows(panel: ReturnPanel, split: Split, test_end: str | None = None) -> tuple[int, int]:
    """Rows ``(start, end)`` of the real test path: ``start`` is the last day before the
    test period (the first observation), ``end`` the last test day (inclusive).

    Raises
    ------
    DataValidationError
        When the test period is empty or has no day before it.
    """
    b = split.bounds(panel.dates)["test"][0]
    end = panel.T - 1 if test_end is None else int(panel.dates.searchsorted(pd.Timestamp(test_end), side="right")) - 1
    if b >= panel.T or end < b:
        raise DataValidationError(
            f"the test period after {split.val_end}{'' if test_end is None else ' through ' + str(test_end)} "
            f"is empty in {panel.name} ({panel.dates[0].date()}..{panel.dates[-1].date()})"
        )
    if b == 0:
        raise DataValidationError(f"{panel.name} has no day before the test period to start from")
    return b - 1, end



def synthetic_episode_seeds(seed: int, n_paths: int) -> list[int]:
    """Episode seeds of synthetic paths ``0..n_paths-1``; path ``i``'s seed does not depend
    on ``n_paths`` (``SeedSequence(seed).spawn`` children), so a larger run extends a
    smaller one."""
    children = np.random.SeedSequence(int(seed)).spawn(int(n_paths))
    return [int(c.generate_state(1, np.uint64)[0] >> np.uint64(1)) for c in children]


# =========================================================================== running
def run_agent(
    agent: BacktestAgent,
    market: Market,
    episode_seeds: Sequence[int],
    *,
    cost_model: CostModel,
    constraints: Constraints,
    risk_free: float = 0.0,
    seed: int = 0,
    record_weights: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> PathRun:
    """Run one agent on ``len(episode_seeds)`` paths of ``market`` for one episode each.

    The agent acts through :class:`~factorgym.envs.vec_env.VecPortfolioEnv` (the same engine
    as :class:`~factorgym.envs.portfolio_env.PortfolioEnv`) with the given costs,
    constraints and cash rate, in the one rollout loop (:func:`factorgym.envs.rollout.rollout`);
    path ``i`` starts with ``reset(options={"episode_seed": episode_seeds[i]})``. The agent is
    reset with ``seed`` first (its random stream for path ``i`` is ``(seed, i)``).

    Parameters
    ----------
    agent : BacktestAgent
    market : Market
        Fixed start (no random start), one horizon for every path.
    episode_seeds : sequence of int
    cost_model, constraints, risk_free
        The run's accounting (``risk_free`` daily).
    seed : int
        Seed of the agent's random streams (when it has none of its own).
    record_weights : bool
        Keep the target weights of every day (``(H, P, N)``).
    on_step : callable, optional
        Called with 1 after every day (progress bars).

    Returns
    -------
    PathRun
    """
    from factorgym.envs.vec_env import VecPortfolioEnv

    P = len(episode_seeds)
    if P < 1:
        raise DataValidationError("run_agent needs at least one episode seed")
    if isinstance(market, HistoricalMarket) and agent.needs_predictor and market.predictor is None:
        raise DataValidationError(f"agent {agent.name!r} observes generator moments: give it a predictor (predictor=RUN)")
    env = VecPortfolioEnv(
        market, P, cost_model=cost_model, constraints=constraints, risk_free=risk_free, **agent.env_kwargs()
    )
    agent.reset(agent.seed if agent.seed is not None else seed)
    run = rollout(
        agent.policy, env, options=[{"episode_seed": int(s)} for s in episode_seeds], seed=int(seed),
        deterministic=agent.deterministic, record_weights=record_weights, on_step=on_step, label=f"agent {agent.name!r}",
    )
    run.counters = agent.counters()
    return run


# =========================================================================== statistics
def _agent_seed(seed: int, name: str) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed), zlib.crc32(name.encode("utf-8"))])


def _block_length(x: np.ndarray) -> float:
    from arch.bootstrap import optimal_block_length

    if x.shape[0] < 10 or not np.std(x) > 0:
        return 1.0
    b = float(optimal_block_length(x)["stationary"].iloc[0])
    return b if math.isfinite(b) and b >= 1.0 else 1.0


def bootstrap_intervals(
    returns: np.ndarray,
    reference: np.ndarray | None = None,
    *,
    reps: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.SeedSequence = 0,
    block_length: float | None = None,
    periods_per_year: int = 252,
    risk_free: float = 0.0,
) -> pd.DataFrame:
    """Stationary-bootstrap percentile intervals of a daily return series.

    Statistics: ``sharpe``, ``annualised_return``, ``annualised_volatility`` (as in
    :mod:`factorgym.metrics`) and, with ``reference`` (e.g. 1/N's returns on the same days),
    ``sharpe_minus_ew`` = Sharpe(returns) - Sharpe(reference) on the *same* resampled days.

    Parameters
    ----------
    returns : ndarray of shape (T,)
    reference : ndarray of shape (T,), optional
    reps : int
        Resamples.
    confidence : float
        Interval level.
    seed : int or SeedSequence
        Seeds the resampling (same seed -> same interval).
    block_length : float, optional
        Mean block length (default: :func:`arch.bootstrap.optimal_block_length` of
        ``returns``, at least 1).
    periods_per_year : int
    risk_free : float
        Annual rate, as in :mod:`factorgym.metrics`.

    Returns
    -------
    DataFrame
        Index: statistic; columns ``estimate`` (on the original series), ``lower``,
        ``upper``, ``std_error`` (of the resampled values), ``block_length``, ``reps``.
    """
    from arch.bootstrap import StationaryBootstrap

    x = np.asarray(returns, dtype=np.float64)
    if x.ndim != 1 or x.shape[0] < 2:
        raise DataValidationError(f"bootstrap needs a 1-D series of at least 2 returns, got shape {x.shape}")
    ref = None if reference is None else np.asarray(reference, dtype=np.float64)
    if ref is not None and ref.shape != x.shape:
        raise DataValidationError(f"reference has shape {ref.shape}, returns have {x.shape}")
    ppy, rf = periods_per_year, risk_free

    def stats(r: np.ndarray, q: np.ndarray | None = None) -> np.ndarray:
        s = float(M.sharpe_ratio(r, rf, ppy))
        out = [s, float(M.annualised_return(r, ppy)), float(M.annualised_volatility(r, ppy))]
        if q is not None:
            out.append(s - float(M.sharpe_ratio(q, rf, ppy)))
        return np.array(out)

    names = list(BOOTSTRAP_STATS[:3]) + (["sharpe_minus_ew"] if ref is not None else [])
    est = stats(x, ref)
    b = float(block_length) if block_length is not None else _block_length(x)
    rng = np.random.default_rng(seed)
    args = (x,) if ref is None else (x, ref)
    lower, upper, se = (np.full(len(names), np.nan) for _ in range(3))
    if reps > 0:
        bs = StationaryBootstrap(b, *args, seed=rng)
        draws = bs.apply(stats, reps=int(reps))
        a = (1.0 - confidence) / 2.0
        for j in range(len(names)):
            d = draws[:, j]
            d = d[np.isfinite(d)]  # e.g. the Sharpe ratio of a resample without variance
            if d.size >= 2:
                lower[j], upper[j] = np.quantile(d, [a, 1.0 - a])
                se[j] = np.std(d, ddof=1)
    df = pd.DataFrame(
        {"estimate": est, "lower": lower, "upper": upper, "std_error": se, "block_length": b, "reps": int(reps)},
        index=pd.Index(names, name="statistic"),
    )
    return df


def _percentile_of(value: float, sample: np.ndarray) -> float:
    """Mid-rank percentile of ``value`` in ``sample`` (in [0, 1]; NaN if either is missing)."""
    s = sample[np.isfinite(sample)]
    if not s.size or not math.isfinite(value):
        return math.nan
    return float((np.sum(s < value) + 0.5 * np.sum(s == value)) / s.size)


# =========================================================================== results
@dataclass
class BacktestResult:
    """Everything a backtest produced; :meth:`save` writes it, :meth:`to_report` shows it.

    Attributes
    ----------
    config : BacktestConfig
    dataset : str
    assets : tuple of str
    start_date, end_date : pandas.Timestamp
        The real path's first observation (last pre-test day) and last day.
    agents : list of BacktestAgent
    reference : str
        Name of the 1/N agent the comparisons use.
    added_reference : bool
        True when 1/N was added to the run automatically.
    real : dict of str to PathRun
    synthetic : dict of str to dict of str to PathRun
        ``synthetic[generator][agent]``.
    benchmark : pandas.Series or None
        The index's daily returns over the real path's days.
    summary : DataFrame
        Real-path metrics per agent (+ benchmark row), with bootstrap interval columns.
    bootstrap : DataFrame
        Long table: (agent, statistic) -> estimate, lower, upper, std_error, block_length, reps.
    synthetic_paths : DataFrame
        One row per (generator, agent, path): metrics, ``ruined``, ``episode_seed``, ``path_hash``.
    synthetic_summary : DataFrame
        Per (generator, agent): median and band of each metric, terminal-wealth CVaR(95%),
        P(underperform 1/N), ruined paths, fallbacks.
    gap : DataFrame
        Per (generator, agent): for Sharpe, annualised return and max drawdown the real value
        (``*_real``), the synthetic median, their difference (``*_gap``, real minus
        synthetic) and the real value's mid-rank percentile among the paths
        (``*_percentile``); ``sharpe_in_band`` is 1.0 when the real Sharpe lies inside the
        synthetic band, 0.0 outside, NaN when undefined; ``trained_on`` marks agents
        trained in a simulator.
    notes : list of str
    """

    config: BacktestConfig
    dataset: str
    assets: tuple[str, ...]
    start_date: pd.Timestamp
    end_date: pd.Timestamp
    agents: list[BacktestAgent]
    reference: str
    added_reference: bool
    real: dict[str, PathRun]
    synthetic: dict[str, dict[str, PathRun]]
    benchmark: pd.Series | None
    summary: pd.DataFrame
    bootstrap: pd.DataFrame
    synthetic_paths: pd.DataFrame
    synthetic_summary: pd.DataFrame
    gap: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ views
    @property
    def agent_names(self) -> list[str]:
        """Agent names in run order."""
        return [a.name for a in self.agents]

    @property
    def first_test_date(self) -> pd.Timestamp:
        """The first day whose return the real path earns."""
        return pd.Timestamp(self.real[self.reference].dates[0])

    def daily(self, agent: str) -> pd.DataFrame:
        """Daily real-path series of ``agent``: wealth, net_return, cost, turnover and the
        target weights held over each day (``w_<asset>``, ``w_cash``), indexed by the day
        earned."""
        run = self.real[agent]
        idx = pd.DatetimeIndex([pd.Timestamp(d) for d in run.dates], name="date")
        df = pd.DataFrame(
            {"wealth": run.wealth[:, 0], "net_return": run.net_return[:, 0], "cost": run.cost[:, 0], "turnover": run.turnover[:, 0]},
            index=idx,
        )
        if run.weights is not None:
            w = run.weights[:, 0, :]
            for j, a in enumerate(self.assets):
                df[f"w_{a}"] = w[:, j]
            df["w_cash"] = 1.0 - w.sum(axis=1)
        return df

    def weights(self, agent: str) -> pd.DataFrame:
        """Target weights (assets and ``cash``) held over each real day by ``agent``."""
        d = self.daily(agent)
        cols = [c for c in d.columns if c.startswith("w_")]
        return d[cols].rename(columns=lambda c: c[2:])

    def wealth_table(self) -> pd.DataFrame:
        """Real-path wealth of every agent (and the benchmark), starting at 1 on the start day."""
        cols = {}
        for a in self.agent_names:
            d = self.daily(a)["wealth"]
            cols[a] = pd.concat([pd.Series([1.0], index=[self.start_date]), d])
        if self.benchmark is not None:
            b = (1.0 + self.benchmark).cumprod()
            cols[self._benchmark_label] = pd.concat([pd.Series([1.0], index=[self.start_date]), b])
        df = pd.DataFrame(cols)
        df.index = pd.DatetimeIndex(df.index, name="date")
        return df

    @property
    def _benchmark_label(self) -> str:
        return f"{self.config.benchmark} (index)"

    # ------------------------------------------------------------------ files
    def save(self, out_dir: str | os.PathLike[str], *, report: bool = True) -> dict[str, Path]:
        """Write tables (CSV + markdown), daily series, ``backtest.json`` and the report.

        Files (all written atomically): ``summary_real.csv``/``.md``,
        ``bootstrap_real.csv``, ``synthetic_summary.csv``/``.md``, ``synthetic_paths.csv``,
        ``sim_to_real_gap.csv``/``.md``, ``daily/<agent>.csv`` (real path: wealth, net
        return, cost, turnover, weights), ``daily/benchmark.csv``, ``backtest.json`` and
        ``report.html``.

        Returns
        -------
        dict of str to Path
        """
        from factorgym.generators.evaluation import to_markdown

        out = Path(out_dir)
        paths: dict[str, Path] = {}

        def put(key: str, rel: str, text: str) -> None:
            p = out / rel
            atomic_write_text(p, text)
            paths[key] = p

        put("summary_csv", "summary_real.csv", self.summary.to_csv())
        put("summary_md", "summary_real.md", to_markdown(self.summary))
        put("bootstrap_csv", "bootstrap_real.csv", self.bootstrap.to_csv(index=False))
        if not self.synthetic_summary.empty:
            put("synthetic_summary_csv", "synthetic_summary.csv", self.synthetic_summary.to_csv())
            put("synthetic_summary_md", "synthetic_summary.md", to_markdown(self.synthetic_summary.reset_index(level=0)))
            put("synthetic_paths_csv", "synthetic_paths.csv", self.synthetic_paths.to_csv(index=False))
            put("gap_csv", "sim_to_real_gap.csv", self.gap.to_csv())
            put("gap_md", "sim_to_real_gap.md", to_markdown(self.gap.reset_index(level=0)))
        used: set[str] = set()
        for a in self.agent_names:
            slug = _file_slug(a, used)
            put(f"daily:{a}", f"daily/{slug}.csv", self.daily(a).to_csv())
        if self.benchmark is not None:
            b = pd.DataFrame({"net_return": self.benchmark, "wealth": (1.0 + self.benchmark).cumprod()})
            b.index.name = "date"
            put("daily:benchmark", "daily/benchmark.csv", b.to_csv())
        put("json", "backtest.json", json.dumps(_json_safe(self.to_dict()), indent=2, allow_nan=False) + "\n")
        if report:
            p = out / "report.html"
            self.to_report().write(p)
            paths["report"] = p
        return paths

    def to_dict(self) -> dict[str, Any]:
        """Configuration, period, agents, tables and notes (JSON-ready after NaN -> null)."""
        return {
            "dataset": self.dataset,
            "assets": list(self.assets),
            "start_date": str(self.start_date.date()),
            "first_test_date": str(self.first_test_date.date()),
            "end_date": str(self.end_date.date()),
            "config": self.config.describe(),
            "reference": self.reference,
            "added_reference": self.added_reference,
            "agents": [a.describe() for a in self.agents],
            "generators": list(self.synthetic),
            "summary_real": _records(self.summary),
            "bootstrap_real": self.bootstrap.to_dict(orient="records"),
            "synthetic_summary": _records(self.synthetic_summary.reset_index()) if not self.synthetic_summary.empty else [],
            "sim_to_real_gap": _records(self.gap.reset_index()) if not self.gap.empty else [],
            "notes": list(self.notes),
        }

    # ------------------------------------------------------------------ report
    def to_report(self, title: str | None = None, *, max_weight_plots: int = 4) -> Report:
        """An HTML :class:`~factorgym.report.Report` of the backtest (tables and figures)."""
        from factorgym.report import Report, distribution_figure, equity_figure, weights_figure

        cfg = self.config
        rep = Report(
            title or f"Backtest on {self.dataset}",
            subtitle=(
                f"real test path {self.first_test_date.date()} .. {self.end_date.date()} "
                f"({len(self.real[self.reference].dates)} days, first observation {self.start_date.date()}); "
                f"{len(self.synthetic)} generator(s) x {cfg.n_paths} synthetic paths"
            ),
        )
        rep.add_section("Protocol")
        rep.add_list(self._protocol_lines())
        # ---- real path
        rep.add_section("Real held-out path")
        df, cap, fmts = self._display_summary()
        rep.add_table(df, cap, formats=fmts)
        rep.add_figure(
            equity_figure(self.wealth_table(), benchmark=self._benchmark_label if self.benchmark is not None else None,
                          title="Real path: wealth (log scale) and drawdown"),
            "Wealth after costs and drawdown from the running peak, all agents and the index.",
        )
        if not self.bootstrap.empty:
            rep.add_section("Bootstrap confidence intervals", level=3)
            rep.add_text(
                f"Stationary bootstrap of the daily net returns ({cfg.bootstrap_reps} resamples, "
                f"{cfg.confidence:.0%} percentile intervals, mean block length shown). "
                "`Sharpe - 1/N` resamples the agent and 1/N on the same days: an interval "
                "that contains 0 means the real path cannot tell the two apart."
            )
            rep.add_table(self._display_bootstrap(), "Real-path bootstrap intervals", floatfmt=".3f")
        shown = [a for a in self.agents if a.name != self.reference and not isinstance(a.policy, BuyAndHold)][:max_weight_plots]
        if shown:
            rep.add_section("Weights over time", level=3)
            for a in shown:
                rep.add_figure(weights_figure(self.weights(a.name), title=f"{a.name}: target weights"), f"{a.name}: weights held each day (cash in grey).")
        # ---- synthetic
        for gen, runs in self.synthetic.items():
            rep.add_section(f"Synthetic paths: {gen}")
            sub = self.synthetic_summary.loc[gen]
            df, cap, fmts = self._display_synthetic(sub, gen)
            rep.add_table(df, cap, formats=fmts)
            paths = self.synthetic_paths[self.synthetic_paths["generator"] == gen]
            for metric, label, ref in (("sharpe", "Sharpe ratio", 0.0), ("terminal_wealth", "terminal wealth", 1.0)):
                samples = {a: paths.loc[paths["agent"] == a, metric].to_numpy() for a in runs}
                real = {a: float(self.summary.loc[a, metric]) for a in runs if a in self.summary.index}
                rep.add_figure(
                    distribution_figure(samples, real=real, reference=ref, xlabel=label, title=f"{gen}: {label} over {cfg.n_paths} paths"),
                    f"Boxes: quartiles; whiskers: {cfg.band[0]:.0%}-{cfg.band[1]:.0%} band; red diamond: the real path.",
                )
        if not self.gap.empty:
            rep.add_section("Synthetic-to-real gap")
            rep.add_text(
                "Real value minus the median over synthetic paths, and the real value's percentile "
                "in the synthetic distribution (mid-rank; near 0% or 100% means the simulator "
                "did not cover what happened). Agents trained in a simulator are marked."
            )
            rep.add_table(self._display_gap(), "Sim-to-real gap", floatfmt=".3f")
        if self.notes:
            rep.add_section("Notes")
            rep.add_list(self.notes)
        return rep

    def _protocol_lines(self) -> list[str]:
        cfg, cm, c = self.config, self.config.cost_model, self.config.constraints
        lines = [
            f"Data: {self.dataset}, {len(self.assets)} assets; split train <= {cfg.split.train_end}, "
            f"validation <= {cfg.split.val_end}, test {self.first_test_date.date()} .. {self.end_date.date()}.",
            "Every agent trades through the same environment: cost "
            f"{_bps(cm.buy)} bps buys / {_bps(cm.sell)} bps sells"
            + ("" if cm.is_linear else " plus square-root impact")
            + f", settled pro rata; constraints: {'long-only' if c.long_only else 'long/short'}, "
            f"budget {c.budget}, gross <= {c.max_gross_leverage:g}"
            + (f", box {c.box}" if c.box is not None else "")
            + (f", turnover <= {c.max_turnover:g}" if c.max_turnover is not None else "")
            + f"; cash rate {cfg.risk_free:g}/day.",
            f"Real path: one episode from the close of {self.start_date.date()} to {self.end_date.date()} "
            "(no random start; data after the test end is never read).",
        ]
        if self.synthetic:
            h = self.synthetic_paths["days"].max() if not self.synthetic_paths.empty else cfg.horizon
            lines.append(
                f"Synthetic: {cfg.n_paths} paths per generator of {int(h)} days, conditioned on the real history up to "
                f"{self.start_date.date()}, with fixed episode seeds (seed {cfg.seed}): every agent faces the same paths "
                "(verified by a fingerprint of each path's returns)."
            )
        lines.append(
            f"1/N reference: {self.reference}" + (" (added automatically)." if self.added_reference else ".")
        )
        return lines

    def _display_summary(self) -> tuple[pd.DataFrame, str, dict[str, str]]:
        s = self.summary
        cols = {
            "annualised_return": "Ann. return",
            "annualised_volatility": "Ann. vol",
            "sharpe": "Sharpe",
            "sharpe_ci": "Sharpe CI",
            "sortino": "Sortino",
            "calmar": "Calmar",
            "max_drawdown": "Max DD",
            "cvar_95": "CVaR95 (daily)",
            "annualised_turnover": "Turnover/yr",
            "annualised_costs": "Costs/yr",
            "terminal_wealth": "Terminal wealth",
            "n_fallbacks": "Fallbacks",
            "n_holds": "Holds",
        }
        df = pd.DataFrame(index=s.index)
        for k, title in cols.items():
            if k == "sharpe_ci":
                if "sharpe_ci_lower" in s.columns:
                    df[title] = [
                        "N/A" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{lo:.2f}, {hi:.2f}]"
                        for lo, hi in zip(s["sharpe_ci_lower"], s["sharpe_ci_upper"], strict=True)
                    ]
            elif k in s.columns:
                df[title] = s[k]
        if df.get("Fallbacks") is not None and df["Fallbacks"].isna().all():
            df = df.drop(columns=["Fallbacks", "Holds"])
        fmts = {"Ann. return": ".2%", "Ann. vol": ".2%", "Sharpe": ".2f", "Sortino": ".2f", "Calmar": ".2f",
                "Max DD": ".1%", "CVaR95 (daily)": ".2%", "Turnover/yr": ".2f", "Costs/yr": ".2%", "Terminal wealth": ".3f",
                "Fallbacks": ".0f", "Holds": ".0f"}
        df.index.name = "agent"
        cap = "Real path, after costs (turnover: one-way per year; costs: fraction of wealth per year)"
        return df, cap, {k: v for k, v in fmts.items() if k in df.columns}

    def _display_bootstrap(self) -> pd.DataFrame:
        b = self.bootstrap
        titles = {"sharpe": "Sharpe", "annualised_return": "Ann. return", "annualised_volatility": "Ann. vol", "sharpe_minus_ew": "Sharpe - 1/N"}
        rows = {}
        for agent, g in b.groupby("agent", sort=False):
            row: dict[str, Any] = {}
            for _, r in g.iterrows():
                t = titles.get(r["statistic"], r["statistic"])
                row[t] = _interval(r["estimate"], r["lower"], r["upper"], pct=r["statistic"] in ("annualised_return", "annualised_volatility"))
            row["block"] = float(g["block_length"].iloc[0])
            rows[agent] = row
        df = pd.DataFrame.from_dict(rows, orient="index")
        df.index.name = "agent"
        return df

    def _display_synthetic(self, sub: pd.DataFrame, gen: str) -> tuple[pd.DataFrame, str, dict[str, str]]:
        lo, hi = self.config.band
        df = pd.DataFrame(index=sub.index)
        pct = {"annualised_return", "annualised_volatility", "max_drawdown", "cvar_95", "annualised_costs"}
        for k in ("sharpe", "annualised_return", "annualised_volatility", "max_drawdown", "annualised_turnover", "annualised_costs", "terminal_wealth"):
            df[DIST_METRICS[k]] = [
                _interval(m, a, b, pct=k in pct)
                for m, a, b in zip(sub[f"{k}_median"], sub[f"{k}_p{lo * 100:02.0f}"], sub[f"{k}_p{hi * 100:02.0f}"], strict=True)
            ]
        df["CVaR95 of W_T"] = sub["terminal_wealth_cvar_95"]
        df["P(W_T < 1/N)"] = sub["p_underperform_ew"]
        df["Ruined"] = sub["n_ruined"]
        if sub["n_fallbacks"].notna().any():
            df["Fallbacks"] = sub["n_fallbacks"]
        df.index.name = "agent"
        fmts = {"CVaR95 of W_T": ".1%", "P(W_T < 1/N)": ".0%", "Ruined": ".0f", "Fallbacks": ".0f"}
        cap = f"{gen}: median [{lo:.0%}, {hi:.0%}] over {self.config.n_paths} paths; CVaR95 of W_T: mean loss 1 - W_T over the worst 5% of paths"
        return df, cap, {k: v for k, v in fmts.items() if k in df.columns}

    def _display_gap(self) -> pd.DataFrame:
        g = self.gap.reset_index()
        df = pd.DataFrame(
            {
                "generator": g["generator"],
                "agent": g["agent"],
                "trained in": g["trained_on"].fillna(""),
                "real Sharpe": g["sharpe_real"],
                "synthetic median": g["sharpe_synthetic_median"],
                "gap": g["sharpe_gap"],
                "percentile": g["sharpe_percentile"],
                "ann. return gap": g["annualised_return_gap"],
                "max DD gap": g["max_drawdown_gap"],
                "max DD percentile": g["max_drawdown_percentile"],
            }
        ).set_index("generator")
        return df


def _interval(m: float, lo: float, hi: float, *, pct: bool) -> str:
    if not math.isfinite(m):
        return "N/A"
    f = (lambda v: f"{v:.1%}") if pct else (lambda v: f"{v:.2f}")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f(m)
    return f"{f(m)} [{f(lo)}, {f(hi)}]"


def _bps(v: Any) -> str:
    a = np.asarray(v, dtype=np.float64) * 1e4
    return f"{float(a):g}" if a.ndim == 0 else f"{a.min():g}-{a.max():g}"


def _file_slug(name: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.") or "agent"
    s, i = base, 2
    while s in used:
        s, i = f"{base}_{i}", i + 1
    used.add(s)
    return s


def _json_safe(o: Any) -> Any:
    if isinstance(o, Mapping):
        return {str(k): _json_safe(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_json_safe(v) for v in o]
    if isinstance(o, np.ndarray):
        return _json_safe(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, pd.Timestamp):
        return str(o.date()) if o == o.normalize() else o.isoformat()
    if isinstance(o, str | int | float | bool) or o is None:
        return o
    return str(o)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    d = df.reset_index() if df.index.name is not None or isinstance(df.index, pd.MultiIndex) else df
    return [{str(k): v for k, v in r.items()} for r in d.to_dict(orient="records")]


# =========================================================================== backtest
def _resolve_agents(agents: Sequence[Any] | Mapping[str, Any]) -> list[BacktestAgent]:
    items = list(agents.items()) if isinstance(agents, Mapping) else [(None, a) for a in agents]
    out = [BacktestAgent.wrap(a, name) for name, a in items]
    names = [a.name for a in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataValidationError(f"agent names must be unique, repeated: {dup} (use label=... in the spec)")
    if not out:
        raise DataValidationError("no agents to backtest")
    return out


class _Progress:
    """One rich progress bar over all agent-days (or nothing)."""

    def __init__(self, enabled: bool, total: int, console: Console | None = None) -> None:
        self.enabled = enabled
        self.total = total
        self.console = console

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._p = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                console=self.console, transient=False,
            )
            self._p.__enter__()
            self._task = self._p.add_task("backtest", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._p.__exit__(*exc)  # type: ignore[arg-type]

    def describe(self, text: str) -> None:
        if self.enabled:
            self._p.update(self._task, description=text)

    def advance(self, n: int = 1) -> None:
        if self.enabled:
            self._p.advance(self._task, n)


def backtest(
    agents: Sequence[Any] | Mapping[str, Any],
    panel: ReturnPanel,
    generators: Mapping[str, ReturnGenerator] | None = None,
    config: BacktestConfig | None = None,
    *,
    progress: bool = False,
    console: Console | None = None,
    notes: Sequence[str] = (),
) -> BacktestResult:
    """Run agents on the real test path and on synthetic paths of each generator.

    Parameters
    ----------
    agents : sequence or mapping
        :class:`BacktestAgent` objects, agent objects (wrapped with
        :meth:`BacktestAgent.wrap`), or a mapping name -> agent. A 1/N agent is added when
        none is present (the reference of the comparisons).
    panel : ReturnPanel
        The full panel (train, validation and test rows); only rows up to the test end are
        read, and the generators see rows up to the last pre-test day only.
    generators : mapping of str to ReturnGenerator, optional
        Fitted generators by display name (fitted on data before the test period).
    config : BacktestConfig, optional
    progress : bool
        Show a rich progress bar.
    console : rich.console.Console, optional
    notes : sequence of str
        Extra notes for the report.

    Returns
    -------
    BacktestResult
    """
    cfg = config if config is not None else BacktestConfig()
    gens = dict(generators or {})
    runs_agents = _resolve_agents(agents)
    all_notes = list(notes)
    ref = next((a for a in runs_agents if a.is_equal_weight), None)
    added = ref is None
    if ref is None:
        name = "equal_weight" if "equal_weight" not in {a.name for a in runs_agents} else "1/N"
        ref = BacktestAgent(name, EqualWeight(), window=1)
        runs_agents.append(ref)
    start, end = held_out_rows(panel, cfg.split, cfg.test_end)
    start_date, end_date = panel.dates[start], panel.dates[end]
    for a in runs_agents:
        if a.training_end is not None and pd.Timestamp(a.training_end) > start_date:
            raise DataValidationError(
                f"agent {a.name!r} (or its generator) was fitted on data through {a.training_end}, "
                f"after the test period starts ({panel.dates[start + 1].date()}): the backtest would not be out of sample"
            )
        _check_agent_accounting(a, cfg, all_notes)
    real_panel = panel.iloc(0, end + 1)  # nothing after the test end can be read
    context = panel.iloc(0, start + 1)  # generators see nothing after the start day
    n_real = end - start
    horizon = int(cfg.horizon) if cfg.horizon is not None else n_real
    if gens and cfg.n_paths > 0 and horizon != n_real:
        all_notes.append(
            f"Synthetic paths are {horizon} days long, the real path {n_real}: terminal wealth is not comparable across them "
            "(annualised metrics are)."
        )
    seeds = synthetic_episode_seeds(cfg.seed, cfg.n_paths) if cfg.n_paths > 0 else []
    total = len(runs_agents) * (n_real + (len(gens) * horizon if seeds else 0))
    acct = {"cost_model": cfg.cost_model, "constraints": cfg.constraints, "risk_free": cfg.risk_free, "seed": cfg.seed}
    real: dict[str, PathRun] = {}
    synthetic: dict[str, dict[str, PathRun]] = {g: {} for g in gens} if seeds else {}
    with _Progress(progress, total, console) as bar:
        for a in runs_agents:
            bar.describe(f"{a.name} | real")
            market = HistoricalMarket(real_panel, start=start, horizon=None, random_start=False, predictor=a.predictor)
            _prefetch_real_path(a, real_panel, start, end)
            real[a.name] = run_agent(a, market, [cfg.seed], record_weights=True, on_step=bar.advance, **acct)
        for g, gen in gens.items() if seeds else ():
            gmarket = GenerativeMarket(gen, context, start=start, horizon=horizon, random_start=False)
            for a in runs_agents:
                bar.describe(f"{a.name} | {g}")
                synthetic[g][a.name] = run_agent(a, gmarket, seeds, on_step=bar.advance, **acct)
            _check_same_paths(g, synthetic[g])
    for a in runs_agents:
        w = real[a.name].weights
        if w is not None and float(np.abs(w).sum(axis=-1).mean()) < 0.01:
            all_notes.append(
                f"{a.name} stayed (almost) entirely in cash on the real path (mean gross exposure "
                f"{float(np.abs(w).sum(axis=-1).mean()):.2%}): its risk aversion may be too high for daily returns."
            )
    bench = None
    if cfg.benchmark is not None:
        if real_panel.exog is not None and cfg.benchmark in real_panel.exog.columns:
            dates = pd.DatetimeIndex([pd.Timestamp(d) for d in real[ref.name].dates])
            bench = market_returns(real_panel, dates=dates, column=cfg.benchmark)
        else:
            all_notes.append(f"No benchmark row: {panel.name} has no exogenous column {cfg.benchmark!r}.")
    summary, boot = _real_tables(runs_agents, real, ref.name, bench, real_panel, cfg)
    paths_df, syn_df, gap_df = _synthetic_tables(runs_agents, synthetic, ref.name, summary, cfg)
    ruined = int(paths_df["ruined"].sum()) if not paths_df.empty else 0
    if ruined:
        all_notes.append(f"{ruined} synthetic agent-paths were ruined (wealth <= 1%); they are scored flat after ruin.")
    return BacktestResult(
        config=cfg,
        dataset=panel.name,
        assets=tuple(panel.assets),
        start_date=start_date,
        end_date=end_date,
        agents=runs_agents,
        reference=ref.name,
        added_reference=added,
        real=real,
        synthetic=synthetic,
        benchmark=bench,
        summary=summary,
        bootstrap=boot,
        synthetic_paths=paths_df,
        synthetic_summary=syn_df,
        gap=gap_df,
        notes=all_notes,
    )


def _prefetch_real_path(a: BacktestAgent, real_panel: ReturnPanel, start: int, end: int, chunk: int = 128) -> None:
    """Batch-predict every window the agent will observe on the real path (rows ``start ..
    end - 1``, as :class:`HistoricalMarket` builds them: absent returns read as 0) into its
    generator's prediction cache. Each window holds only days up to its own decision day,
    so this changes the speed, not the information or the result."""
    src = getattr(a.policy, "source", None)
    if getattr(src, "cache", None) is None or not hasattr(src, "prefetch"):
        return
    R = np.ascontiguousarray(real_panel.filled(0.0))
    W = int(a.window)
    days = np.arange(max(start, W - 1), end)
    for c0 in range(0, len(days), chunk):
        src.prefetch(np.stack([R[t - W + 1 : t + 1] for t in days[c0 : c0 + chunk]]))


def _check_agent_accounting(a: BacktestAgent, cfg: BacktestConfig, notes: list[str]) -> None:
    """Note optimizers that plan with other costs than the run charges (they still run)."""
    p = a.policy
    cm = getattr(p, "cost_model_", None)
    if cm is not None and cm != cfg.cost_model:
        notes.append(f"{a.name} plans with costs {cm}, the run charges {cfg.cost_model}.")
    rf = getattr(p, "risk_free", None)
    if isinstance(p, Agent) and isinstance(rf, float | int) and float(rf) != cfg.risk_free:
        notes.append(f"{a.name} assumes a cash rate of {rf}/day, the run books {cfg.risk_free}/day.")


def _check_same_paths(gen: str, runs: Mapping[str, PathRun]) -> None:
    """Every agent must have faced the same synthetic returns on each path."""
    items = list(runs.items())
    first_name, first = items[0]
    for name, run in items[1:]:
        for p, (h0, h1, t0, t1) in enumerate(zip(first.path_hash, run.path_hash, first.terminated, run.terminated, strict=True)):
            if h0 != h1 and not (t0 or t1):
                raise DataValidationError(
                    f"generator {gen!r} produced different returns on path {p} for {first_name!r} and {name!r}: its "
                    "PathSimulator must depend only on the starting window and the path's random stream"
                )


def _real_tables(
    agents: list[BacktestAgent],
    real: Mapping[str, PathRun],
    ref: str,
    bench: pd.Series | None,
    panel: ReturnPanel,
    cfg: BacktestConfig,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    ppy, rf = cfg.periods_per_year, cfg.annual_risk_free
    rows: dict[str, dict[str, float]] = {}
    boots = []
    ref_r = real[ref].returns(0)
    series: dict[str, tuple[np.ndarray, dict[str, float]]] = {}
    for a in agents:
        run = real[a.name]
        m = run.path_metrics(0, periods_per_year=ppy, risk_free=rf)
        m.update(run.counters)
        series[a.name] = (run.returns(0), m)
    if bench is not None:
        m = market_metrics(panel, dates=pd.DatetimeIndex(bench.index), column=bench.name, risk_free=rf, periods_per_year=ppy)  # type: ignore[arg-type]
        m["terminal_wealth"] = float(np.prod(1.0 + bench.to_numpy()))
        series[f"{cfg.benchmark} (index)"] = (bench.to_numpy(), m)
    for name, (r, m) in series.items():
        if cfg.bootstrap_reps > 0 and r.shape[0] >= 2:
            b = bootstrap_intervals(
                r, None if name == ref or r.shape != ref_r.shape else ref_r, reps=cfg.bootstrap_reps, confidence=cfg.confidence,
                seed=_agent_seed(cfg.seed, name), block_length=cfg.block_length, periods_per_year=ppy, risk_free=rf,
            )
            for stat in ("sharpe", "annualised_return"):
                m[f"{stat}_ci_lower"] = float(b.loc[stat, "lower"])
                m[f"{stat}_ci_upper"] = float(b.loc[stat, "upper"])
            if "sharpe_minus_ew" in b.index:
                m["sharpe_minus_ew"] = float(b.loc["sharpe_minus_ew", "estimate"])
                m["sharpe_minus_ew_ci_lower"] = float(b.loc["sharpe_minus_ew", "lower"])
                m["sharpe_minus_ew_ci_upper"] = float(b.loc["sharpe_minus_ew", "upper"])
            boots.append(b.reset_index().assign(agent=name))
        rows[name] = m
    summary = pd.DataFrame.from_dict(rows, orient="index")
    summary.index.name = "agent"
    boot = pd.concat(boots, ignore_index=True) if boots else pd.DataFrame(columns=["agent", "statistic", "estimate", "lower", "upper", "std_error", "block_length", "reps"])
    boot = boot[["agent", "statistic", "estimate", "lower", "upper", "std_error", "block_length", "reps"]]
    return summary, boot


def _synthetic_tables(
    agents: list[BacktestAgent],
    synthetic: Mapping[str, Mapping[str, PathRun]],
    ref: str,
    summary: pd.DataFrame,
    cfg: BacktestConfig,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ppy, rf = cfg.periods_per_year, cfg.annual_risk_free
    lo, hi = cfg.band
    rows = []
    syn_rows: dict[tuple[str, str], dict[str, Any]] = {}
    gap_rows: dict[tuple[str, str], dict[str, Any]] = {}
    trained = {a.name: a.trained_on for a in agents}
    for g, runs in synthetic.items():
        ref_w = runs[ref].final_wealth()
        for name, run in runs.items():
            per = []
            for p in range(run.n_paths):
                m = run.path_metrics(p, periods_per_year=ppy, risk_free=rf)
                m.update(
                    generator=g, agent=name, path=p, episode_seed=run.episode_seeds[p], days=int(run.alive[:, p].sum()),
                    ruined=bool(run.terminated[p]), path_hash=run.path_hash[p],
                )
                per.append(m)
            rows.extend(per)
            df = pd.DataFrame(per)
            s: dict[str, Any] = {}
            for k in DIST_METRICS:
                v = df[k].to_numpy(dtype=np.float64)
                v = v[np.isfinite(v)]
                s[f"{k}_median"] = float(np.median(v)) if v.size else math.nan
                s[f"{k}_p{lo * 100:02.0f}"] = float(np.quantile(v, lo)) if v.size else math.nan
                s[f"{k}_p{hi * 100:02.0f}"] = float(np.quantile(v, hi)) if v.size else math.nan
            w = run.final_wealth()
            s["terminal_wealth_mean"] = float(w.mean())
            s["terminal_wealth_cvar_95"] = float(M.historical_cvar(w - 1.0, 0.95)) if w.size >= 1 else math.nan
            s["p_underperform_ew"] = math.nan if name == ref else float(np.mean(w < ref_w))
            s["n_paths"] = run.n_paths
            s["n_ruined"] = int(run.terminated.sum())
            s["n_solves"] = run.counters.get("n_solves", math.nan)
            s["n_fallbacks"] = run.counters.get("n_fallbacks", math.nan)
            s["n_holds"] = run.counters.get("n_holds", math.nan)
            syn_rows[(g, name)] = s
            gr: dict[str, Any] = {"trained_on": trained.get(name)}
            for k in GAP_METRICS:
                real_v = float(summary.loc[name, k]) if name in summary.index else math.nan
                syn_v = df[k].to_numpy(dtype=np.float64)
                med = s[f"{k}_median"]
                gr[f"{k}_real"] = real_v
                gr[f"{k}_synthetic_median"] = med
                gr[f"{k}_gap"] = real_v - med
                gr[f"{k}_percentile"] = _percentile_of(real_v, syn_v)
            band_lo, band_hi, rs = s[f"sharpe_p{lo * 100:02.0f}"], s[f"sharpe_p{hi * 100:02.0f}"], gr["sharpe_real"]
            gr["sharpe_in_band"] = float(band_lo <= rs <= band_hi) if np.isfinite([band_lo, band_hi, rs]).all() else math.nan
            gap_rows[(g, name)] = gr
    paths_df = pd.DataFrame(rows)
    if not paths_df.empty:
        front = ["generator", "agent", "path", "episode_seed", "days", "ruined"]
        paths_df = paths_df[front + [c for c in paths_df.columns if c not in front]]
    idx_names = ["generator", "agent"]
    syn_df = pd.DataFrame.from_dict(syn_rows, orient="index")
    gap_df = pd.DataFrame.from_dict(gap_rows, orient="index")
    for d in (syn_df, gap_df):
        if not d.empty:
            d.index = pd.MultiIndex.from_tuples(list(d.index), names=idx_names)
    return paths_df, syn_df, gap_df


# =========================================================================== CLI entry
def backtest_cli(
    agents: Sequence[str],
    generators: Sequence[str | os.PathLike[str]] = (),
    *,
    dataset: str | ReturnPanel = "sp500",
    out: str | os.PathLike[str] = "runs/backtest",
    train_end: str | None = None,
    val_end: str | None = None,
    test_end: str | None = None,
    n_paths: int = 32,
    horizon: int | None = None,
    seed: int = 0,
    buy_bps: float = 7.5,
    sell_bps: float = 12.5,
    impact: float = 0.0,
    max_weight: float | None = None,
    risk_free: float = 0.0,
    bootstrap_reps: int = 1000,
    confidence: float = 0.95,
    benchmark: str | None = "SP500",
    report: bool = True,
    progress: bool = True,
    console: Console | None = None,
) -> BacktestResult:
    """``factorgym backtest``: agents by spec, generators by run folder; writes every output.

    Parameters
    ----------
    agents : sequence of str
        Agent specs (module docstring), e.g. ``["mv:ledoit_wolf", "cvar:runs/neuralfactors",
        "sb3:runs/ppo/agent.zip", "buy_and_hold"]``. 1/N is added when absent.
    generators : sequence of path
        Generator run folders (or artifacts) whose synthetic paths to run on.
    dataset : str or ReturnPanel
        Embedded dataset name or CSV/Parquet path (or a panel, from Python).
    out : path
        Output folder.
    train_end, val_end : str, optional
        The split (default :class:`~factorgym.data.Split`'s: test from 2019). Every
        generator run must have been fitted on data up to ``val_end`` at the latest.
    test_end : str, optional
        Last test day (default: the panel's last day).
    n_paths, horizon, seed
        Synthetic paths per generator, their length (default: the real path's), the seed.
    buy_bps, sell_bps, impact
        The cost model (bps per unit traded; square-root impact coefficient).
    max_weight : float, optional
        Per-asset cap (long-only, invested up to 100% otherwise).
    risk_free : float
        **Annual** cash rate (booked daily as ``(1 + rf)^(1/252) - 1``).
    bootstrap_reps, confidence
        Bootstrap of the real path.
    benchmark : str or None
        Exogenous index column for the benchmark row.
    report : bool
        Write ``report.html``.
    progress : bool
        Show rich progress bars and print a summary.
    console : rich.console.Console, optional

    Returns
    -------
    BacktestResult
    """
    from factorgym.io import load_source

    panel = dataset if isinstance(dataset, ReturnPanel) else load_source(str(dataset))
    split = Split(train_end or Split.train_end, val_end or Split.val_end)
    cm = CostModel(buy=float(buy_bps) * 1e-4, sell=float(sell_bps) * 1e-4, impact=float(impact))
    cons = Constraints() if max_weight is None else Constraints(box=(0.0, float(max_weight)))
    rf_daily = float((1.0 + float(risk_free)) ** (1.0 / 252) - 1.0)
    cfg = BacktestConfig(
        split=split, test_end=test_end, n_paths=n_paths, horizon=horizon, seed=seed, cost_model=cm, constraints=cons,
        risk_free=rf_daily, bootstrap_reps=bootstrap_reps, confidence=confidence, benchmark=benchmark,
    )
    notes: list[str] = []
    built: list[BacktestAgent] = []
    loaded: dict[str, LoadedRun] = {}
    for spec in agents:
        a, n = agent_from_spec(spec, cost_model=cm, constraints=cons, risk_free=rf_daily, loaded=loaded)
        built.append(a)
        notes.extend(n)
    gens: dict[str, ReturnGenerator] = {}
    start_row, _ = held_out_rows(panel, split, test_end)
    for g in generators:
        gen, name, record, _ = load_generator_run(g, loaded)
        spec = (record or {}).get("spec", {})
        fitted_to = spec.get("val_end")
        if fitted_to is None:
            notes.append(f"{name}: no run record, so its training period cannot be checked against the test period.")
        elif pd.Timestamp(fitted_to) > panel.dates[start_row]:
            raise DataValidationError(
                f"generator run {g} was fitted with data through {fitted_to}; the test period starts after "
                f"{panel.dates[start_row].date()}: its synthetic paths would not be out of sample"
            )
        ds = spec.get("dataset")
        if ds is not None and not isinstance(dataset, ReturnPanel) and str(ds) != str(dataset):
            notes.append(f"{name} was fitted on {ds}, the backtest runs on {dataset}.")
        label, i = name, 2
        while label in gens:
            label, i = f"{name}_{i}", i + 1
        gens[label] = gen
    result = backtest(built, panel, gens, cfg, progress=progress, console=console, notes=notes)
    written = result.save(out, report=report)
    if progress:
        _print_summary(result, Path(out), written, console)
    return result


def stress_agents(
    scenarios: Any,
    agents: Sequence[str | BacktestAgent],
    panel: ReturnPanel,
    *,
    cost_model: CostModel | None = None,
    constraints: Constraints | None = None,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Loss distribution of saved agents over a stress scenario set, after costs.

    Every agent runs through every scenario path in one
    :class:`~factorgym.envs.vec_env.VecPortfolioEnv`: it observes the real history up to the
    set's context date, then the scenario's days as they happen (never a day ahead), and
    trades with the environment's costs and constraints. Each path starts in cash on the
    context date, so the first day's purchase is paid for. The loss is minus the path's
    cumulative net return (:func:`factorgym.generators.stress.loss_summary`).

    Parameters
    ----------
    scenarios : ScenarioSet
        From :func:`factorgym.generators.stress.generate` or ``read_scenarios``.
    agents : sequence of str or BacktestAgent
        Agent specs as in :func:`agent_from_spec` (``mv:ledoit_wolf``, ``sb3:runs/ppo``...).
    panel : ReturnPanel
        The dataset the scenarios were conditioned on (its assets, in order).
    cost_model, constraints : optional
        Default: 7.5 / 12.5 bps, long-only.
    seed : int
        Seed of the agents' random streams.

    Returns
    -------
    dict
        Agent name -> ``loss_summary`` (VaR/ES at 95/99% as positive losses, worst, mean).
    """
    from factorgym.generators.stress import ScenarioReplay, loss_summary

    paths = np.asarray(scenarios.paths)
    if tuple(scenarios.assets) != tuple(panel.assets):
        raise DataValidationError("the scenarios' assets differ from the panel's")
    S, H, _ = paths.shape  # noqa: N806
    if scenarios.context_date is None:
        raise DataValidationError("the scenario set has no context date to start the agents from")
    t = panel.index_of(str(scenarios.context_date))
    if scenarios.spec.kind == "replay":  # a replay's context date is its first day: start the day before
        t -= 1
    cm = cost_model if cost_model is not None else CostModel()
    cons = constraints if constraints is not None else Constraints()
    market = GenerativeMarket(ScenarioReplay(scenarios), panel.iloc(0, t + 1), start=t, horizon=H, random_start=False)  # type: ignore[arg-type]
    out: dict[str, dict[str, float]] = {}
    loaded: dict[str, LoadedRun] = {}
    for a in agents:
        agent = a if isinstance(a, BacktestAgent) else agent_from_spec(a, cost_model=cm, constraints=cons, loaded=loaded)[0]
        run = run_agent(agent, market, list(range(S)), cost_model=cm, constraints=cons, seed=seed)
        growth = np.prod(1.0 + run.net_return, axis=0) - 1.0  # (S,) after costs
        out[agent.name] = loss_summary(growth)
    return out


def _print_summary(result: BacktestResult, out: Path, written: Mapping[str, Path], console: Console | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from factorgym.reporting import required_width

    t = Table(title=f"real path {result.first_test_date.date()}..{result.end_date.date()} (after costs)", title_justify="left")
    for c in ("agent", "ann. return", "ann. vol", "Sharpe [CI]", "max DD", "turnover/yr", "terminal W"):
        t.add_column(c, justify="left" if c == "agent" else "right", no_wrap=True)
    s = result.summary
    for name, r in s.iterrows():
        sharpe = _interval(r["sharpe"], r.get("sharpe_ci_lower", math.nan), r.get("sharpe_ci_upper", math.nan), pct=False)
        t.add_row(
            str(name), f"{r['annualised_return']:.1%}", f"{r['annualised_volatility']:.1%}", sharpe,
            f"{r['max_drawdown']:.1%}", f"{r.get('annualised_turnover', 0.0):.2f}", f"{r['terminal_wealth']:.3f}",
        )
    if console is None:
        probe = Console()
        con = Console(width=max(probe.width, required_width(t, probe)))
    else:
        con = console
    con.print(t)
    report = f"; report: {written['report']}" if "report" in written else ""
    con.print(f"wrote {len(written)} files to {out}/{report}")

"""Reinforcement-learning agents: stable-baselines3 trained in factorgym markets.

This module is a thin adapter between stable-baselines3 (SB3) and the portfolio
environments. It never implements an RL algorithm itself: PPO, A2C, SAC and TD3 are SB3's,
with SB3's ``MultiInputPolicy`` over the environment's Dict observation.

Protocol
--------
* **Where to train** (:class:`MarketSpec`): ``"historical"`` replays the *train* rows of a
  dataset from random start days; a generator **run folder** (``factorgym fit``) gives a
  :class:`~factorgym.envs.markets.GenerativeMarket` conditioned on real train-period history
  at random start days inside the train split and rolled forward on the generator's own
  samples. A generator run fixes the dataset and the split it was fitted with, so the
  agent's validation period can never overlap the generator's training data.
* **Model selection** happens on the *real validation period* only: every ``eval_freq``
  steps (at the next rollout boundary) and at the end, the deterministic policy is run
  over fixed, evenly spaced episodes of a
  :class:`~factorgym.envs.markets.HistoricalMarket` over the validation rows; the mean
  episode log-wealth is logged and the best model is kept (``best_model.zip``). The test
  rows are never read during training. Because validation is used for selection, report
  the selected model's numbers on the *test* period.
* **Seeds**: ``seed`` is passed to SB3 (``Algo(..., seed=seed)``) and to the environment.
  SB3 then calls its ``set_random_seed``, which **seeds the global RNGs of Python's
  ``random``, NumPy's legacy ``np.random`` and torch** (SB3 draws minibatch permutations and
  action noise from them); factorgym itself never touches global RNG state. Environment path
  ``i`` gets seed ``seed + i`` (SB3's convention, applied by SB3 through ``env.seed``). On
  CPU, with the same torch build and thread count, two trainings with the same seed give
  bit-identical policy parameters (tested); across machines, torch versions or thread
  counts floating-point reductions may differ.
* **Speed**: training and :func:`evaluate_policy_on` run torch single-threaded by default
  (``torch_threads=1``, restored afterwards): fastest for these small MLP policies and
  robust on shared machines.

Action modes and algorithms
---------------------------
Every algorithm here needs a ``Box`` action space with finite bounds. The mapped action
modes ``"softmax"``, ``"simplex"`` and ``"long_short"`` are ``Box(-1, 1)`` and work with all
four algorithms (PPO/A2C clip their Gaussian actions to the box; SAC/TD3 squash with tanh
and rescale). ``"weights"`` does **not** work with any of them: its Box holds only per-asset
bounds, while budget and leverage constraints are *checked*, so an RL action inside the Box
can still be infeasible and raise mid-training. Use ``"weights"`` for optimizer agents.

=============  =====  =====  =====  =====
action_mode    ppo    a2c    sac    td3
=============  =====  =====  =====  =====
softmax        yes    yes    yes    yes
simplex        yes    yes    yes    yes
long_short     yes    yes    yes    yes
weights        no     no     no     no
=============  =====  =====  =====  =====

Agent folder
------------
``train_agent(..., out_dir=D)`` writes

``D/model.zip``           the final SB3 model (written atomically: temp file + ``os.replace``);
``D/best_model.zip``      the best model on the validation episodes (when evaluating);
``D/evaluations.json``    every validation evaluation (per-episode log-wealth and Sharpe);
``D/checkpoints/``        SB3 ``CheckpointCallback`` snapshots (SB3 writes these itself,
                          not atomically, during rollout collection: an on-policy snapshot
                          at step ``t`` predates the update on the rollout holding ``t``);
``D/tb/``                 TensorBoard logs (``tensorboard --logdir D/tb``): SB3's training
                          scalars, ``eval/*`` (validation) and ``market/episode_log_wealth``
                          (training-market episodes);
``D/agent.json``          the sidecar, written last: algorithm, environment configuration
                          (everything needed to rebuild identical observation and action
                          spaces), asset order, market, seeds, timesteps, versions and the
                          SHA-256 of the model files. Its presence marks a finished agent.

:func:`load_agent` reads the folder back; :func:`evaluate_policy_on` runs any policy with
SB3's ``predict`` signature (an SB3 model, a :class:`~factorgym.agents.protocol.Agent`) over
episodes of a market and returns per-episode log-wealth and Sharpe ratios, so that the gap
between the training market and real held-out data can be measured (:func:`policy_gap`).

Example
-------
>>> agent = train_agent("ppo", "runs/ledoit_wolf", out_dir="runs/agents/ppo",
...                     total_timesteps=200_000, env_kwargs={"window": 20})  # doctest: +SKIP
>>> model, meta = load_agent("runs/agents/ppo", which="best")               # doctest: +SKIP
>>> test = meta.market.build().heldout("test")       # real 2019+ history   # doctest: +SKIP
>>> evaluate_policy_on(model, test, env=meta).summary()                     # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from gymnasium import spaces
from stable_baselines3 import A2C, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import VecMonitor

from factorgym.artifacts import atomic_write_bytes, atomic_write_text
from factorgym.data import ReturnPanel, Split
from factorgym.envs.config import EnvConfig
from factorgym.envs.markets import GenerativeMarket, HistoricalMarket, Market
from factorgym.envs.rollout import rollout
from factorgym.envs.vec_env import VecPortfolioEnv
from factorgym.envs.wrappers import episode_statistics
from factorgym.errors import CheckpointError, DataValidationError, FactorGymError
from factorgym.features import FeatureConfig, FeatureScaler, compute_features
from factorgym.generators.base import torch_threads as _torch_threads
from factorgym.io import is_dataset_name, load_source, same_source
from factorgym.jsonable import jsonable

if TYPE_CHECKING:
    from factorgym.generators.base import ReturnGenerator

__all__ = [
    "ALGOS",
    "RL_ACTION_MODES",
    "AgentMeta",
    "EnvConfig",
    "MarketSpec",
    "Markets",
    "PolicyEvaluation",
    "TrainedAgent",
    "ValidationCallback",
    "check_compatible",
    "evaluate_policy_on",
    "evaluation_starts",
    "load_agent",
    "policy_gap",
    "train_agent",
]

#: SB3 algorithm classes by name.
ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "sac": SAC, "td3": TD3}
#: Environment action modes an RL policy can act in (see the module docstring).
RL_ACTION_MODES: tuple[str, ...] = ("softmax", "simplex", "long_short")

AGENT_KIND = "factorgym.rl_agent"
AGENT_FORMAT = 1
META_NAME = "agent.json"
MODEL_NAME = "model.zip"
BEST_NAME = "best_model.zip"
EVALS_NAME = "evaluations.json"
IN_MEMORY = "in-memory:"
#: Default SAC/TD3 replay buffer cap: float64 Dict observations cost about
#: ``2 * 8 * (window * N + N + 1)`` bytes per transition (about 6.7 kB for sp500, window 20).
DEFAULT_BUFFER_CAP = 100_000
#: Default std of TD3's Gaussian exploration noise (SB3 adds none unless given one).
DEFAULT_TD3_NOISE = 0.1
_PERIODS_PER_YEAR = 252


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _save_model(model: BaseAlgorithm, path: Path) -> str:
    """``model.save`` into memory, then an atomic write to ``path``; returns the SHA-256."""
    buf = io.BytesIO()
    model.save(buf)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return _sha256(data)


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


# =========================================================================== markets
@dataclass(frozen=True)
class MarketSpec:
    """Where an agent trains, as plain, JSON-able data.

    Parameters
    ----------
    source : str
        ``"historical"`` (replay of the train rows) or the path of a generator run folder
        (or a bare generator artifact) written by ``factorgym fit``.
    dataset : str, optional
        Embedded dataset name or CSV/Parquet path. Default: the run's dataset for a
        generator, ``"sp500"`` for ``"historical"``.
    train_end, val_end : str, optional
        The split (inclusive ends). Default: the run's split for a generator (an explicit
        value that differs raises: the agent's validation period must not overlap the rows
        the generator was fitted or selected on), else :class:`~factorgym.data.Split`'s.
    horizon : int
        Steps per training episode (default 252, one trading year).
    """

    source: str = "historical"
    dataset: str | None = None
    train_end: str | None = None
    val_end: str | None = None
    horizon: int = 252

    def __post_init__(self) -> None:
        if int(self.horizon) < 1:
            raise FactorGymError(f"horizon must be at least 1 step, got {self.horizon}")
        object.__setattr__(self, "horizon", int(self.horizon))
        object.__setattr__(self, "source", str(self.source))

    @property
    def is_historical(self) -> bool:
        """True for training on replayed train rows."""
        return self.source == "historical"

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"source": self.source, "dataset": self.dataset, "train_end": self.train_end,
                "val_end": self.val_end, "horizon": self.horizon}  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MarketSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: d[k] for k in ("source", "dataset", "train_end", "val_end", "horizon") if k in d})

    def build(self, panel: ReturnPanel | None = None) -> Markets:
        """Load the data (and the generator) and build the markets.

        Parameters
        ----------
        panel : ReturnPanel, optional
            The dataset's panel, if already loaded (it must be the dataset named here).
        """
        from factorgym.generators.runs import load_run

        if self.source.startswith(IN_MEMORY) or (panel is None and str(self.dataset or "").startswith(IN_MEMORY)):
            raise FactorGymError(
                f"this agent was trained on an {self.source} market, which cannot be rebuilt from its "
                "description; build the markets yourself with Markets.from_objects(panel, split, generator)"
            )
        generator: ReturnGenerator | None = None
        run_info: dict[str, Any] = {}
        dataset, train_end, val_end = self.dataset, self.train_end, self.val_end
        source = self.source
        if not self.is_historical:
            run_path = Path(self.source).expanduser()
            generator, record, name = load_run(run_path)
            source = str(run_path.resolve())
            spec = (record or {}).get("spec") or {}
            # a bare artifact has no run.json: its split cannot be checked (recorded as such)
            run_info = {"run": name, "generator": type(generator).kind, "run_spec": spec,
                        "split_checked": record is not None}  # fmt: skip
            for label, mine, theirs in (("train_end", train_end, spec.get("train_end")),
                                        ("val_end", val_end, spec.get("val_end"))):  # fmt: skip
                if mine is not None and theirs is not None and pd.Timestamp(mine) != pd.Timestamp(theirs):
                    raise DataValidationError(
                        f"{label}={mine} differs from the {theirs} the generator run {name!r} was fitted with; "
                        "the agent must use the generator's split so that its validation period never "
                        "overlaps the generator's training or selection rows (omit the split to use the run's)"
                    )
            run_dataset = spec.get("dataset")
            if dataset is not None and run_dataset is not None and not same_source(dataset, run_dataset):
                raise DataValidationError(
                    f"dataset {dataset!r} differs from the dataset {run_dataset!r} the generator run was fitted on"
                )
            dataset = dataset or run_dataset
            train_end = train_end or spec.get("train_end")
            val_end = val_end or spec.get("val_end")
        dataset = dataset or "sp500"
        if not is_dataset_name(dataset):
            dataset = str(Path(dataset).expanduser().resolve())
        split = Split(train_end or Split.train_end, val_end or Split.val_end)
        if panel is None:
            panel = load_source(dataset)
        resolved = replace(self, source=source, dataset=dataset, train_end=split.train_end, val_end=split.val_end)
        return Markets(resolved, panel, split, generator, run_info)


@dataclass
class Markets:
    """The resolved markets of one :class:`MarketSpec`: training and held-out real markets.

    Every market is built over the *whole* panel with day bounds (``first_day``/``last_day``),
    so that all of them have the same observation keys; a market never reads a row after its
    ``last_day`` (historical) or after an episode's start day (generative).

    Attributes
    ----------
    spec : MarketSpec
        The resolved specification (absolute paths, explicit split).
    panel : ReturnPanel
        The whole dataset.
    split : Split
    generator : ReturnGenerator or None
        The generator of a generative market.
    info : dict
        Run name, generator kind and run specification (generative markets).
    """

    spec: MarketSpec
    panel: ReturnPanel
    split: Split
    generator: ReturnGenerator | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_objects(
        cls,
        panel: ReturnPanel,
        split: Split,
        generator: ReturnGenerator | None = None,
        horizon: int = 252,
    ) -> Markets:
        """Markets over an in-memory panel and (optionally) an in-memory fitted generator.

        An agent trained on these records the market as ``"in-memory:..."``; it loads and
        backtests like any other, but its market cannot be rebuilt from ``agent.json`` alone.
        """
        src = "historical" if generator is None else f"{IN_MEMORY}{type(generator).kind}"
        spec = MarketSpec(src, dataset=f"{IN_MEMORY}{panel.name}", train_end=split.train_end,
                          val_end=split.val_end, horizon=horizon)  # fmt: skip
        info = {} if generator is None else {"generator": type(generator).kind, "run": None}
        return cls(spec, panel, split, generator, info)

    def rows(self, part: str) -> tuple[int, int]:
        """Inclusive panel rows ``(first, last)`` of ``"train"``, ``"val"`` or ``"test"``."""
        bounds = self.split.bounds(self.panel.dates)
        if part not in bounds:
            raise DataValidationError(f"unknown split part {part!r}; expected train, val or test")
        i0, i1 = bounds[part]
        if i1 <= i0:
            raise DataValidationError(
                f"split part {part!r} of {self.panel.name} is empty (train_end={self.split.train_end}, "
                f"val_end={self.split.val_end})"
            )
        return i0, i1 - 1

    @property
    def train(self) -> Market:
        """The training market: random start days inside the train rows, ``spec.horizon`` steps."""
        _, last = self.rows("train")
        h = self.spec.horizon
        if self.generator is None:
            return HistoricalMarket(self.panel, horizon=h, random_start=True, last_day=last)
        return GenerativeMarket(self.generator, self.panel, horizon=h, random_start=True, last_day=last)

    def heldout(self, part: str = "val", horizon: int | None = None) -> HistoricalMarket:
        """Real history of ``part`` (``"val"``, ``"test"`` or ``"train"``) as a market.

        Episodes start on days of ``part`` (observation windows may reach back before it,
        which is past information) and never earn a return after its last day. ``horizon``
        ``None`` runs each episode to the end of ``part``. The generator, when there is one,
        is the predictor of ``"moments"`` observations.
        """
        first, last = self.rows(part)
        return HistoricalMarket(
            self.panel, horizon=horizon, random_start=False, first_day=first, last_day=last, predictor=self.generator
        )

    def describe(self) -> dict[str, Any]:
        """JSON form: the specification (:meth:`MarketSpec.from_dict` reads it back) plus the
        kind, generator run details and the train rows."""
        d = self.spec.to_dict()
        d["kind"] = "historical" if self.generator is None else "generative"
        d.update(self.info)
        d["train_rows"] = list(self.rows("train"))
        return jsonable(d)


def _fit_train_scaler(markets: Markets, features: FeatureConfig) -> FeatureScaler:
    """The feature scaler fitted on the train rows (saved with the agent, used everywhere)."""
    X, valid = compute_features(markets.panel, features)
    _, last = markets.rows("train")
    try:
        return FeatureScaler().fit(X[: last + 1], valid[: last + 1])
    except DataValidationError:
        raise DataValidationError(f"no complete feature rows in the train split of {markets.panel.name}") from None


def evaluation_starts(market: Market, config: EnvConfig | Mapping[str, Any] | None, n_episodes: int) -> list[int]:
    """``n_episodes`` start rows evenly spaced over ``market``'s allowed start range.

    The first episode starts on the first allowed day, the last as late as the market's
    horizon allows; duplicates (a range shorter than ``n_episodes``) are dropped. With
    ``n_episodes * horizon`` about the period's length, the episodes cover it end to end.
    """
    if int(n_episodes) < 1:
        raise FactorGymError(f"n_episodes must be at least 1, got {n_episodes}")
    cfg = EnvConfig.coerce(config)
    lo, hi = market.open(1, cfg.observation_config).start_range()
    return sorted({int(round(x)) for x in np.linspace(lo, hi, int(n_episodes))})


# =========================================================================== evaluation
@dataclass(frozen=True)
class PolicyEvaluation:
    """Per-episode results of a policy in a market (see :func:`evaluate_policy_on`).

    Attributes
    ----------
    episodes : pandas.DataFrame
        One row per episode: ``start_date``, ``episode_seed``, ``days``, ``log_wealth``
        (``log(W_T / W_0)``, after costs), ``ann_log_growth`` (``log_wealth * 252 / days``),
        ``sharpe`` (annualised, zero cash rate) and the other fields of
        :func:`~factorgym.envs.wrappers.episode_statistics`.
    net_returns : tuple of ndarray
        Each episode's daily net returns ``R``.
    market : str
        The market's description.
    """

    episodes: pd.DataFrame
    net_returns: tuple[np.ndarray, ...]
    market: str

    @property
    def log_wealth(self) -> np.ndarray:
        """Per-episode log-wealth ``(n_episodes,)``."""
        return self.episodes["log_wealth"].to_numpy()

    @property
    def sharpe(self) -> np.ndarray:
        """Per-episode annualised Sharpe ratios ``(n_episodes,)`` (NaN: fewer than 2 days or no volatility)."""
        return self.episodes["sharpe"].to_numpy()

    def summary(self) -> dict[str, float]:
        """Means (and spreads) over episodes."""
        e = self.episodes
        lw = e["log_wealth"].to_numpy()
        return {
            "n_episodes": float(len(e)),
            "mean_days": float(e["days"].mean()),
            "mean_log_wealth": float(lw.mean()),
            "std_log_wealth": float(lw.std(ddof=1)) if len(lw) > 1 else float("nan"),
            "median_log_wealth": float(np.median(lw)),
            "mean_ann_log_growth": float(e["ann_log_growth"].mean()),
            "mean_sharpe": float(np.nanmean(e["sharpe"])) if e["sharpe"].notna().any() else float("nan"),
            "mean_max_drawdown": float(e["max_drawdown"].mean()),
            "mean_turnover": float(e["mean_turnover"].mean()),
            "mean_total_cost": float(e["total_cost"].mean()),
        }


def policy_gap(synthetic: PolicyEvaluation, real: PolicyEvaluation) -> dict[str, float]:
    """The synthetic-to-real gap of one policy: training-market minus real-market figures.

    Log-wealth is compared per year (``ann_log_growth``) because episode lengths may differ.

    Returns
    -------
    dict
        ``ann_log_growth_synthetic``, ``ann_log_growth_real``, ``ann_log_growth_gap``,
        ``sharpe_synthetic``, ``sharpe_real``, ``sharpe_gap`` (gap = synthetic - real; a large
        positive gap means the policy exploits the simulator more than it earns in reality).
    """
    s, r = synthetic.summary(), real.summary()
    return {
        "ann_log_growth_synthetic": s["mean_ann_log_growth"],
        "ann_log_growth_real": r["mean_ann_log_growth"],
        "ann_log_growth_gap": s["mean_ann_log_growth"] - r["mean_ann_log_growth"],
        "sharpe_synthetic": s["mean_sharpe"],
        "sharpe_real": r["mean_sharpe"],
        "sharpe_gap": s["mean_sharpe"] - r["mean_sharpe"],
    }


def _check_policy_spaces(policy: Any, env: VecPortfolioEnv) -> None:
    """A policy that declares its spaces (SB3 models do) must match the environment's."""
    obs_space = getattr(policy, "observation_space", None)
    if isinstance(obs_space, spaces.Dict):
        mine = {k: tuple(v.shape) for k, v in obs_space.spaces.items()}  # type: ignore[union-attr]
        env_space = env.observation_space
        assert isinstance(env_space, spaces.Dict)
        theirs = {k: tuple(v.shape) for k, v in env_space.spaces.items()}  # type: ignore[union-attr]
        if mine != theirs:
            raise CheckpointError(
                f"the policy observes {mine} but this environment gives {theirs}: rebuild the environment "
                "with the agent's configuration (AgentMeta.env) on a market with the same assets"
            )
    act_space = getattr(policy, "action_space", None)
    if isinstance(act_space, spaces.Box) and tuple(act_space.shape) != tuple(env.action_space.shape):  # type: ignore[arg-type]
        raise CheckpointError(
            f"the policy acts in shape {act_space.shape} but this environment expects {env.action_space.shape} "
            "(different action mode or number of assets)"
        )


def _rollout(
    policy: Any,
    env: VecPortfolioEnv,
    *,
    seed: int,
    starts: Sequence[int] | None,
    deterministic: bool,
) -> PolicyEvaluation:
    """One episode per path of ``env`` through :func:`~factorgym.envs.rollout.rollout`, scored per episode."""
    run = rollout(
        policy, env, options=None if starts is None else [{"start": int(s)} for s in starts],
        seed=seed, deterministic=deterministic,
    )  # fmt: skip
    final_wealth = run.final_wealth()
    rows, rets = [], []
    for p in range(run.n_paths):
        alive = run.alive[:, p]
        k = int(alive.sum())
        r, to, c = run.net_return[alive, p], run.turnover[alive, p], run.cost[alive, p]
        stats = episode_statistics(r, to, c, _PERIODS_PER_YEAR)
        lw = float(np.log(max(final_wealth[p], 1e-12)))
        rows.append({
            "start_date": run.start_dates[p], "episode_seed": run.episode_seeds[p], "days": k,
            "log_wealth": lw, "ann_log_growth": lw * _PERIODS_PER_YEAR / k,
            **{key: v for key, v in stats.items() if key != "days"},
        })  # fmt: skip
        rets.append(r.copy())
    return PolicyEvaluation(pd.DataFrame(rows), tuple(rets), repr(env.engine.market))


def _start_row(market: Market, start: int | str | pd.Timestamp) -> int:
    if isinstance(start, int | np.integer):
        return int(start)
    return market.panel.index_of(pd.Timestamp(start))


def evaluate_policy_on(
    policy: Any,
    market: Market,
    n_episodes: int = 1,
    seed: int = 0,
    *,
    env: EnvConfig | Mapping[str, Any] | AgentMeta | None = None,
    starts: Sequence[int | str | pd.Timestamp] | None = None,
    deterministic: bool = True,
    batch_size: int = 64,
    torch_threads: int | None = 1,
) -> PolicyEvaluation:
    """Run ``policy`` over ``n_episodes`` episodes of ``market`` and score each.

    Parameters
    ----------
    policy : object with SB3's ``predict(obs, state, episode_start, deterministic)``
        An SB3 model, a :class:`TrainedAgent` or a :class:`~factorgym.agents.protocol.Agent`.
    market : Market
        E.g. ``Markets.train`` (the synthetic training market) or ``Markets.heldout("test")``.
    n_episodes : int
        Episodes to run (ignored when ``starts`` is given: one per start).
    seed : int
        Environment seed: episode ``j`` is the first episode of a path seeded ``seed + j``
        (its start day on random-start markets, its generator stream on generative ones).
    env : EnvConfig, mapping, AgentMeta or None
        The environment configuration; an :class:`AgentMeta` also checks that ``market``
        has the agent's assets, in order.
    starts : sequence of int (panel rows) or dates, optional
        Fixed start days, e.g. :func:`evaluation_starts`.
    deterministic : bool
        SB3's flag. ``False`` samples actions from torch's *global* RNG (SB3's behaviour).
    batch_size : int
        Episodes stepped together in one vectorised environment.
    torch_threads : int or None
        Torch intra-op threads during the run (restored afterwards; ``None``: unchanged).
        One is fastest for small policies (see :func:`train_agent`).

    Returns
    -------
    PolicyEvaluation
        Per-episode log-wealth, Sharpe ratio, drawdown, turnover and costs.
    """
    if isinstance(env, AgentMeta):
        env.check_market(market)
        cfg = env.env
    else:
        cfg = EnvConfig.coerce(env)
    start_list = None if starts is None else [_start_row(market, s) for s in starts]
    total = len(start_list) if start_list is not None else int(n_episodes)
    if total < 1:
        raise FactorGymError(f"n_episodes must be at least 1, got {n_episodes}")
    if int(batch_size) < 1:
        raise FactorGymError(f"batch_size must be at least 1, got {batch_size}")
    parts = []
    venv: VecPortfolioEnv | None = None
    with _torch_threads(torch_threads):
        for j0 in range(0, total, int(batch_size)):
            k = min(int(batch_size), total - j0)
            if venv is None or venv.num_envs != k:
                venv = VecPortfolioEnv(market, k, **cfg.kwargs())
                _check_policy_spaces(policy, venv)
            parts.append(_rollout(policy, venv, seed=int(seed) + j0, deterministic=deterministic,
                                  starts=None if start_list is None else start_list[j0 : j0 + k]))  # fmt: skip
    return PolicyEvaluation(
        pd.concat([p.episodes for p in parts], ignore_index=True),
        tuple(r for p in parts for r in p.net_returns),
        parts[0].market,
    )


# =========================================================================== callbacks
class ValidationCallback(BaseCallback):
    """SB3 callback: periodic deterministic evaluation on real validation episodes.

    At the first rollout boundary after every ``eval_freq`` environment steps, and at the
    end of training, the policy is run over one episode per start in ``starts`` of ``env`` (a :class:`VecPortfolioEnv` over the
    validation market). It records ``eval/mean_log_wealth``, ``eval/std_log_wealth`` and
    ``eval/mean_sharpe`` in SB3's logger (TensorBoard), appends the evaluation to
    ``out_dir/evaluations.json`` and saves ``out_dir/best_model.zip`` when the mean
    log-wealth improves. Evaluating at rollout boundaries means the evaluated parameters
    are exactly those trained on the recorded number of steps (the last evaluation is of the
    final model). Evaluation draws no random numbers, so it does not change training.
    It also records ``market/episode_log_wealth``, the log-wealth of finished *training*
    episodes.

    Parameters
    ----------
    env : VecPortfolioEnv
        One path per validation episode.
    starts : sequence of int
        Start rows, one per path.
    eval_freq : int
        Environment steps between evaluations (0: only the training-market logging).
    out_dir : path
    seed : int
        Environment seed (irrelevant on fixed historical starts; recorded).
    log : callable, optional
        Called with one line per evaluation (progress output).
    """

    def __init__(
        self,
        env: VecPortfolioEnv,
        starts: Sequence[int],
        eval_freq: int,
        out_dir: str | Path,
        seed: int = 0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(verbose=0)
        if len(starts) != env.num_envs:
            raise FactorGymError(f"{len(starts)} validation starts for {env.num_envs} paths")
        self.eval_env = env
        self.starts = [int(s) for s in starts]
        self.eval_freq = int(eval_freq)
        self.out_dir = Path(out_dir)
        self.seed = int(seed)
        self._log = log
        self.evaluations: list[dict[str, Any]] = []
        self.best_mean_log_wealth = -math.inf
        self.best_timestep: int | None = None
        self.best_sha256: str | None = None
        self.eval_seconds = 0.0
        self._next_eval = self.eval_freq
        self._last_eval_step = -1

    def _on_step(self) -> bool:
        dones = self.locals.get("dones")
        infos = self.locals.get("infos")
        if dones is not None and infos is not None and np.any(dones):
            for d, info in zip(dones, infos, strict=True):
                if d:
                    self.logger.record_mean("market/episode_log_wealth", math.log(max(info["wealth"], 1e-12)))
        return True

    def _on_rollout_start(self) -> None:
        # Between rollouts the parameters are those trained on every step collected so far
        # (on ``_on_step`` an on-policy model has not yet been updated on its current rollout).
        if self.eval_freq > 0 and self.num_timesteps >= self._next_eval:
            self.evaluate()
            while self._next_eval <= self.num_timesteps:
                self._next_eval += self.eval_freq

    def _on_training_end(self) -> None:
        if self.eval_freq > 0 and self._last_eval_step != self.num_timesteps:
            self.evaluate()

    def evaluate(self) -> dict[str, Any]:
        """Evaluate now; returns the record appended to :attr:`evaluations`."""
        t0 = time.perf_counter()
        res = _rollout(self.model, self.eval_env, seed=self.seed, starts=self.starts, deterministic=True)
        s = res.summary()
        rec = {
            "timesteps": int(self.num_timesteps),
            "mean_log_wealth": s["mean_log_wealth"],
            "std_log_wealth": s["std_log_wealth"],
            "mean_sharpe": s["mean_sharpe"],
            "log_wealth": res.log_wealth.tolist(),
            "sharpe": res.sharpe.tolist(),
            "start_dates": [str(d) for d in res.episodes["start_date"]],
        }
        self.evaluations.append(rec)
        self._last_eval_step = self.num_timesteps
        self.logger.record("eval/mean_log_wealth", s["mean_log_wealth"])
        self.logger.record("eval/std_log_wealth", s["std_log_wealth"])
        self.logger.record("eval/mean_sharpe", s["mean_sharpe"])
        improved = s["mean_log_wealth"] > self.best_mean_log_wealth
        if improved:
            self.best_mean_log_wealth = s["mean_log_wealth"]
            self.best_timestep = int(self.num_timesteps)
            self.best_sha256 = _save_model(self.model, self.out_dir / BEST_NAME)
        self.logger.record("eval/best_mean_log_wealth", self.best_mean_log_wealth)
        self.logger.dump(self.num_timesteps)
        atomic_write_text(self.out_dir / EVALS_NAME, json.dumps(jsonable(self.evaluations), indent=1))
        self.eval_seconds += time.perf_counter() - t0
        if self._log is not None:
            self._log(
                f"step {self.num_timesteps:>9,}  validation: mean log-wealth {s['mean_log_wealth']:+.4f}, "
                f"mean Sharpe {s['mean_sharpe']:+.2f}{'  (best)' if improved else ''}"
            )
        return rec


class _Progress(BaseCallback):
    """A rich progress bar (SB3's own needs tqdm, which factorgym does not depend on)."""

    def __init__(self, total: int) -> None:
        super().__init__(verbose=0)
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.total = int(total)
        self.progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        self._task = self.progress.add_task("train", total=self.total)

    def _on_training_start(self) -> None:
        self.progress.start()

    def _on_step(self) -> bool:
        self.progress.update(self._task, completed=min(self.num_timesteps, self.total))
        return True

    def _on_training_end(self) -> None:
        self.progress.update(self._task, completed=min(self.num_timesteps, self.total))
        self.progress.stop()

    def print(self, line: str) -> None:
        self.progress.console.print(line, highlight=False)


# =========================================================================== train / save / load
@dataclass(frozen=True)
class AgentMeta:
    """The contents of ``agent.json``.

    Attributes
    ----------
    algo : str
    env : EnvConfig
        Rebuilds identical observation/action spaces: ``VecPortfolioEnv(market, n, **meta.env.kwargs())``.
    assets : tuple of str
        Asset order the policy was trained with.
    market : MarketSpec
        Where it trained (``market.build().heldout("test")`` gives the real test market).
    seed, n_envs, total_timesteps, num_timesteps : int
        Requested and actually trained timesteps (SB3 finishes whole rollouts).
    library_version : str
    record : dict
        The full JSON record (versions, algorithm kwargs, evaluation summary, timings, files).
    """

    algo: str
    env: EnvConfig
    assets: tuple[str, ...]
    market: MarketSpec
    seed: int
    n_envs: int
    total_timesteps: int
    num_timesteps: int
    library_version: str
    record: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AgentMeta:
        """Parse ``agent.json`` contents (raises KeyError/TypeError/ValueError when malformed)."""
        return cls(
            algo=str(d["algo"]),
            env=EnvConfig.from_dict(d["env"]),
            assets=tuple(str(a) for a in d["assets"]),
            market=MarketSpec.from_dict(d["market"]),
            seed=int(d["seed"]),
            n_envs=int(d["n_envs"]),
            total_timesteps=int(d["total_timesteps"]),
            num_timesteps=int(d["num_timesteps"]),
            library_version=str(d["library_version"]),
            record=dict(d),
        )

    def check_market(self, market: Market) -> None:
        """Raise :class:`CheckpointError` unless ``market`` has the agent's assets in order."""
        if tuple(market.assets) != self.assets:
            raise CheckpointError(
                f"the agent was trained on assets {list(self.assets)[:6]}... (N={len(self.assets)}) but the "
                f"market has {list(market.assets)[:6]}... (N={len(market.assets)}); the order must match too"
            )

    def make_env(self, market: Market, n_envs: int = 1, seed: int | None = None) -> VecPortfolioEnv:
        """A :class:`VecPortfolioEnv` over ``market`` with this agent's spaces."""
        self.check_market(market)
        return VecPortfolioEnv(market, n_envs, seed=seed, **self.env.kwargs())


@dataclass
class TrainedAgent:
    """A trained SB3 model with its metadata; a policy itself (SB3's ``predict``).

    Attributes
    ----------
    model : stable_baselines3.common.base_class.BaseAlgorithm
        The final model.
    meta : AgentMeta
    path : Path
        The agent folder.
    evaluations : list of dict
        The validation evaluations (also in ``evaluations.json``).
    markets : Markets
        The markets it trained and was validated on.
    """

    model: BaseAlgorithm
    meta: AgentMeta
    path: Path
    evaluations: list[dict[str, Any]]
    markets: Markets

    @property
    def observation_space(self) -> spaces.Space:
        """The model's observation space."""
        return self.model.observation_space

    @property
    def action_space(self) -> spaces.Space:
        """The model's action space."""
        return self.model.action_space

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[np.ndarray, Any]:
        """SB3's ``predict`` of the final model."""
        return self.model.predict(observation, state, episode_start, deterministic)


_ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU", "elu": "ELU", "leaky_relu": "LeakyReLU", "gelu": "GELU", "silu": "SiLU"}


def _algo_kwargs(
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


def train_agent(
    algo: str,
    market: str | MarketSpec | Markets = "historical",
    *,
    out_dir: str | Path,
    total_timesteps: int,
    n_envs: int = 8,
    seed: int = 0,
    env_kwargs: EnvConfig | Mapping[str, Any] | None = None,
    algo_kwargs: Mapping[str, Any] | None = None,
    eval_freq: int = 10_000,
    eval_episodes: int = 5,
    eval_horizon: int | None = None,
    checkpoint_freq: int | None = None,
    progress: bool = False,
    overwrite: bool = False,
    torch_threads: int | None = 1,
) -> TrainedAgent:
    """Train an SB3 agent in a market, validating on real held-out history; save it.

    Parameters
    ----------
    algo : {"ppo", "a2c", "sac", "td3"}
    market : str, MarketSpec or Markets
        ``"historical"``, a generator run folder, a :class:`MarketSpec`, or prebuilt
        :class:`Markets` (e.g. :meth:`Markets.from_objects` for in-memory data).
    out_dir : path
        The agent folder (see the module docstring).
    total_timesteps : int
        Environment steps over all paths (SB3 finishes its last rollout, so the trained
        count ``meta.num_timesteps`` may be a little higher).
    n_envs : int
        Paths stepped together in one :class:`VecPortfolioEnv`.
    seed : int
        Seed of SB3 (which seeds the global Python/NumPy/torch RNGs, see the module
        docstring) and of the environment paths (``seed + i``).
    env_kwargs : EnvConfig or mapping, optional
        ``window``, ``action_mode``, ``cost_model``, ``constraints``, ``reward``, ``features``...
        When ``features`` are observed without a ``feature_scaler``, one is fitted on the
        train rows and saved, so validation and test observations are scaled identically.
    algo_kwargs : mapping, optional
        Keyword arguments of the SB3 class (``learning_rate``, ``n_steps``, ``policy_kwargs``...).
        Defaults differing from SB3's: ``device="cpu"``; SAC/TD3 ``buffer_size`` capped at
        ``min(total_timesteps, 100_000)`` (float64 Dict observations are large); TD3
        ``action_noise=0.1``. A number as ``action_noise`` means Gaussian noise of that std;
        ``policy_kwargs["activation_fn"]`` may be a name (``"tanh"``, ``"relu"``...).
    eval_freq : int
        Environment steps between validation evaluations; 0 disables evaluation (and
        ``best_model.zip``).
    eval_episodes : int
        Validation episodes, at evenly spaced fixed start days (:func:`evaluation_starts`).
    eval_horizon : int, optional
        Steps per validation episode (default: the training horizon; must fit in the
        validation period).
    checkpoint_freq : int, optional
        Environment steps between ``checkpoints/`` snapshots (default ``eval_freq``; 0: none).
    progress : bool
        Show a progress bar and one line per evaluation.
    overwrite : bool
        Replace an agent already in ``out_dir`` (else that raises).
    torch_threads : int or None
        Torch intra-op threads while training (restored afterwards); ``None`` leaves torch's
        setting alone. The default 1 is fastest for these small MLP policies and robust on
        shared machines: with 2 threads on a busy 2-core machine we measured PPO at ~180
        steps/s against ~1,650 with 1 (thread oversubscription). Results may differ in the
        last bits between thread counts; it is recorded in ``agent.json``.

    Returns
    -------
    TrainedAgent

    Raises
    ------
    FactorGymError
        Unknown algorithm, an action mode the algorithm cannot use, bad options, an
        ``out_dir`` that holds an agent (without ``overwrite``).
    """
    algo = str(algo).lower()
    cfg = EnvConfig.coerce(env_kwargs)
    check_compatible(algo, cfg.action_mode)
    for name, v, lo in (("total_timesteps", total_timesteps, 1), ("n_envs", n_envs, 1), ("eval_freq", eval_freq, 0),
                        ("eval_episodes", eval_episodes, 1), ("seed", seed, 0)):  # fmt: skip
        if int(v) < lo:
            raise FactorGymError(f"{name} must be at least {lo}, got {v}")
    out = Path(out_dir)
    if (out / META_NAME).exists() and not overwrite:
        raise FactorGymError(f"{out} already holds a trained agent; choose another folder or overwrite it")

    if isinstance(market, Markets):
        markets = market
    else:
        spec = market if isinstance(market, MarketSpec) else MarketSpec(str(market))
        markets = spec.build()
    if cfg.moments is not None and markets.generator is None:
        raise FactorGymError("moments observations need a generator market (a run folder), not historical replay")
    if cfg.features is not None and cfg.feature_scaler is None:
        cfg = replace(cfg, feature_scaler=_fit_train_scaler(markets, cfg.features))

    env = VecPortfolioEnv(markets.train, int(n_envs), seed=int(seed), **cfg.kwargs())
    check_compatible(algo, cfg.action_mode, env.action_space)
    kw = _algo_kwargs(algo, algo_kwargs, int(total_timesteps), int(env.action_space.shape[0]))  # type: ignore[index]

    eval_h = markets.spec.horizon if eval_horizon is None else int(eval_horizon)
    # without evaluation the validation env only checks that the observation spaces agree
    val_market = markets.heldout("val", horizon=eval_h if eval_freq > 0 else 1)
    try:
        starts = evaluation_starts(val_market, cfg, int(eval_episodes) if eval_freq > 0 else 1)
    except DataValidationError as exc:
        first, last = markets.rows("val")
        d = markets.panel.dates
        raise DataValidationError(
            f"the validation period {d[first].date()}..{d[last].date()} ({last - first + 1} days) cannot hold "
            f"{eval_h}-day evaluation episodes: pass a smaller eval_horizon ({exc})"
        ) from None
    eval_env = VecPortfolioEnv(val_market, len(starts), seed=int(seed), **cfg.kwargs())
    if eval_env.observation_space != env.observation_space:
        raise DataValidationError(
            f"the validation market observes {eval_env.observation_space} but the training market "
            f"{env.observation_space}; they must match"
        )

    import stable_baselines3
    import torch

    from factorgym import __version__

    with _torch_threads(torch_threads) as threads:
        try:  # SB3 writes nothing before learn()
            model = ALGOS[algo]("MultiInputPolicy", VecMonitor(env), seed=int(seed), tensorboard_log=str(out / "tb"), **kw)
        except TypeError as exc:
            raise FactorGymError(f"bad algo_kwargs for {algo}: {exc}") from None
        # everything is validated: only now touch the output folder
        if (out / META_NAME).exists():
            (out / META_NAME).unlink()  # the folder holds no finished agent until the new one is saved
            for stale in [out / BEST_NAME, out / EVALS_NAME, *(out / "checkpoints").glob("model_*_steps.zip")]:
                stale.unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        ui = _Progress(int(total_timesteps)) if progress else None
        val = ValidationCallback(eval_env, starts, int(eval_freq), out, seed=int(seed), log=None if ui is None else ui.print)
        callbacks: list[BaseCallback] = [val]
        ckpt = int(eval_freq) if checkpoint_freq is None else int(checkpoint_freq)
        if ckpt > 0:
            callbacks.append(CheckpointCallback(max(ckpt // int(n_envs), 1), str(out / "checkpoints"), name_prefix="model"))
        if ui is not None:
            callbacks.append(ui)
        t0 = time.perf_counter()
        model.learn(int(total_timesteps), callback=callbacks, tb_log_name=algo, progress_bar=False)
        seconds = time.perf_counter() - t0

    model_sha = _save_model(model, out / MODEL_NAME)

    train_seconds = max(seconds - val.eval_seconds, 1e-9)
    files = {"model": {"name": MODEL_NAME, "sha256": model_sha}}
    if val.best_sha256 is not None:
        files["best_model"] = {"name": BEST_NAME, "sha256": val.best_sha256}
    record = {
        "kind": AGENT_KIND,
        "format": AGENT_FORMAT,
        "algo": algo,
        "policy": "MultiInputPolicy",
        "env": cfg.to_dict(),
        "assets": list(env.assets),
        "observation_space": {k: list(v.shape) for k, v in env.observation_space.spaces.items()},  # type: ignore[union-attr]
        "action_space": {"shape": list(env.action_space.shape), "low": -1.0, "high": 1.0},  # type: ignore[arg-type]
        "market": markets.describe(),
        "seed": int(seed),
        "n_envs": int(n_envs),
        "total_timesteps": int(total_timesteps),
        "num_timesteps": int(model.num_timesteps),
        "algo_kwargs": jsonable(kw),
        "evaluation": {
            "part": "val",
            "eval_freq": int(eval_freq),
            "horizon": eval_h,
            "start_rows": starts if eval_freq > 0 else [],
            "start_dates": [str(markets.panel.dates[s].date()) for s in starts] if eval_freq > 0 else [],
            "best_mean_log_wealth": None if val.best_timestep is None else val.best_mean_log_wealth,
            "best_timestep": val.best_timestep,
            "last": val.evaluations[-1] if val.evaluations else None,
        },
        "seconds": {"learn": round(seconds, 3), "evaluation": round(val.eval_seconds, 3)},
        "train_steps_per_second": round(model.num_timesteps / train_seconds, 1),
        "files": files,
        "library_version": __version__,
        "sb3_version": stable_baselines3.__version__,
        "torch_version": torch.__version__,
        "torch_threads": threads,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    text = json.dumps(jsonable(record), indent=2)
    atomic_write_text(out / META_NAME, text)
    meta = AgentMeta.from_dict(json.loads(text))  # exactly what load_agent will read
    return TrainedAgent(model, meta, out, list(val.evaluations), markets)


def load_agent(
    path: str | Path, *, which: str = "final", device: str = "cpu"
) -> tuple[BaseAlgorithm, AgentMeta]:
    """Load a trained agent: ``(model, meta)``.

    Parameters
    ----------
    path : path
        An agent folder (with ``agent.json``), or a model ``.zip`` inside one (e.g. a
        checkpoint under ``checkpoints/``: the sidecar of the folder above is used).
    which : {"final", "best"}
        With a folder: ``model.zip`` or ``best_model.zip`` (selected on validation).
    device : str
        Torch device for the policy.

    Returns
    -------
    model : BaseAlgorithm
    meta : AgentMeta
        Rebuild the environment with ``meta.make_env(market)`` (same spaces), and the markets
        with ``meta.market.build()``.

    Raises
    ------
    CheckpointError
        Missing folder or files, a corrupt or modified model or sidecar, an unknown
        algorithm, spaces that disagree with the sidecar.
    """
    if which not in ("final", "best"):
        raise FactorGymError(f"which must be 'final' or 'best', got {which!r}")
    p = Path(path)
    if p.is_dir():
        folder = p
        model_file = folder / (MODEL_NAME if which == "final" else BEST_NAME)
    elif p.is_file():
        model_file = p
        folder = p.parent if (p.parent / META_NAME).is_file() else p.parent.parent
    else:
        raise CheckpointError(f"no agent at {p}")
    meta_file = folder / META_NAME
    if not meta_file.is_file():
        raise CheckpointError(f"{folder} has no {META_NAME}: not a finished factorgym agent (interrupted training?)")
    try:
        d = json.loads(meta_file.read_text())
        if not isinstance(d, dict) or d.get("kind") != AGENT_KIND:
            raise CheckpointError(f"{meta_file} is not a factorgym agent sidecar")
        if d.get("format") != AGENT_FORMAT:
            raise CheckpointError(f"{meta_file} has format {d.get('format')!r}; this library reads {AGENT_FORMAT}")
        meta = AgentMeta.from_dict(d)
    except CheckpointError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, FactorGymError) as exc:
        raise CheckpointError(f"{meta_file} is corrupt: {type(exc).__name__}: {exc}") from exc
    if meta.algo not in ALGOS:
        raise CheckpointError(f"{meta_file} names unknown algorithm {meta.algo!r}")
    if not model_file.is_file():
        hint = " (no validation evaluation was run)" if which == "best" else ""
        raise CheckpointError(f"{model_file} is missing{hint}")
    data = model_file.read_bytes()
    expected = {f["name"]: f["sha256"] for f in (d.get("files") or {}).values() if isinstance(f, dict)}
    if model_file.parent == folder and model_file.name in expected and _sha256(data) != expected[model_file.name]:
        raise CheckpointError(f"{model_file} does not match {META_NAME} (SHA-256 differs): truncated or replaced")
    try:
        model = ALGOS[meta.algo].load(io.BytesIO(data), device=device)
    except Exception as exc:  # SB3 surfaces damage as many types (zip, pickle, torch, KeyError...)
        raise CheckpointError(f"{model_file} is corrupt or not a {meta.algo} model: {type(exc).__name__}: {exc}") from exc
    want = {k: tuple(v) for k, v in (d.get("observation_space") or {}).items()}
    obs_space = model.observation_space
    got = {k: tuple(v.shape) for k, v in obs_space.spaces.items()} if isinstance(obs_space, spaces.Dict) else None  # type: ignore[union-attr]
    if want and got != want:
        raise CheckpointError(f"{model_file} observes {got}, but {META_NAME} records {want}")
    return model, meta

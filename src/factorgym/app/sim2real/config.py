"""The settings of a sim-to-real experiment (:class:`Sim2RealConfig`, :class:`Arm`) and how
they are read from a TOML or JSON file (:func:`load_config`), every value checked before any
training starts.

An *arm* is one way of training an agent: a training market plus the algorithm, its keyword
arguments, environment options and further :func:`~factorgym.agents.rl.train_agent` keywords.
Every arm gets the same total-timestep budget, the same validation protocol and every seed.
An arm's ``algo_kwargs``, ``env`` and ``train`` are plain mappings passed through to
``train_agent`` (checked against its signature, SB3's class signature and
:data:`~factorgym.envs.config.ENV_KEYS`), so a training tool added there becomes an arm
setting without a change here.

File layout (TOML; JSON with the same nesting also works)::

    name = "sim2real-small"
    dataset = "sp500"
    train_end = "2013-12-31"
    val_end = "2018-12-31"
    seeds = [0, 1]
    total_timesteps = 100_000          # the equal budget of every arm
    lags = [0, 1]                      # execution lags of the real evaluation (days)
    buy_bps = 7.5                      # costs in basis points (the file's only unit choice)
    sell_bps = 12.5

    [validation]                       # the same for every arm
    eval_freq = 10_000
    eval_episodes = 10
    eval_horizon = 63

    [defaults]                         # merged under every arm's own settings
    algo = "ppo"
    algo_kwargs = { n_steps = 256, batch_size = 256 }
    env = { window = 20 }
    train = { n_envs = 8 }

    [[arms]]
    name = "replay"
    market = "historical"

    [[arms]]
    name = "neuralfactors"
    market = "runs/neuralfactors"      # a generator run folder
    env = { temperature = 0.5 }
"""

# Over 500 lines by its docstrings and checks: every setting of the experiment is documented,
# read and checked here, in one place, before any training starts.
from __future__ import annotations

import inspect
import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from factorgym.costs import CostModel
from factorgym.data import Split
from factorgym.errors import FactorGymError
from factorgym.jsonable import jsonable

__all__ = ["BASELINES", "FIXED_TRAIN_KEYS", "Arm", "Sim2RealConfig", "load_config"]

#: The reference policies evaluated beside the trained ones (agent specs of
#: :mod:`factorgym.app.specs`): 1/N and Ledoit-Wolf mean-variance.
BASELINES: tuple[str, ...] = ("equal_weight", "mv:ledoit_wolf")
#: ``train_agent`` keywords the experiment sets itself (equal budget, shared validation,
#: one torch thread for identical results on any worker), so an arm may not.
FIXED_TRAIN_KEYS = frozenset({
    "algo", "market", "out_dir", "total_timesteps", "seed", "env_kwargs", "algo_kwargs", "eval_freq",
    "eval_episodes", "eval_horizon", "eval_stride", "checkpoint_freq", "progress", "overwrite", "torch_threads",
})  # fmt: skip
_ARM_KEYS = ("name", "market", "algo", "algo_kwargs", "env", "train", "description", "compare_to")
_DEFAULT_KEYS = ("algo", "algo_kwargs", "env", "train")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _int(name: str, v: Any, lo: int) -> int:
    if not _is_int(v) or int(v) < lo:
        raise FactorGymError(f"{name} must be a whole number >= {lo}, got {v!r}")
    return int(v)


def _mapping(name: str, v: Any) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise FactorGymError(f"{name} must be a table of key = value settings, got {v!r}")
    return dict(v)


@dataclass(frozen=True)
class Arm:
    """One way of training: a market, an algorithm and its settings.

    Parameters
    ----------
    name : str
        Unique; letters, digits, ``_ . -`` (it names the arm's folder).
    market : str or mapping
        ``"historical"`` (replay of the train split), a generator run folder, or a mapping of
        :class:`~factorgym.agents.rl.MarketSpec` fields (e.g. a mixture once the market
        supports one). The experiment's dataset, split and training horizon are filled in.
    algo : str
        ``ppo`` (default), ``a2c``, ``sac`` or ``td3``.
    algo_kwargs : mapping
        Keyword arguments of the SB3 class (``n_steps``, ``learning_rate``, ``policy_kwargs``...).
    env : mapping
        Environment options (:data:`~factorgym.envs.config.ENV_KEYS`) of the training
        environment; the experiment's cost model unless ``cost_model`` is given here.
    train : mapping
        Further :func:`~factorgym.agents.rl.train_agent` keywords (``n_envs``...), except the
        ones the experiment sets (:data:`FIXED_TRAIN_KEYS`).
    description : str
        Shown in the report.
    compare_to : str, optional
        Another arm this one is paired with, typically replay with the same tools (the
        same environment and training settings): the arms table then gives this arm's
        probability of improvement over that arm too (``poi_vs_pair``), which isolates the
        effect of the market from the effect of the tools.
    """

    name: str
    market: str | Mapping[str, Any] = "historical"
    algo: str = "ppo"
    algo_kwargs: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    compare_to: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise FactorGymError(
                f"arm name {self.name!r} must be 1-64 letters, digits, '_', '.' or '-' (it names a folder)"
            )
        where = f"arm {self.name!r}"
        if isinstance(self.market, str):
            if not self.market.strip():
                raise FactorGymError(f"{where}: market must be 'historical' or a generator run folder, got an empty string")
        elif not isinstance(self.market, Mapping) or "source" not in self.market:
            raise FactorGymError(f"{where}: market must be 'historical', a generator run folder or a table with a source, got {self.market!r}")
        object.__setattr__(self, "algo", str(self.algo).lower())
        for k in ("algo_kwargs", "env", "train"):
            object.__setattr__(self, k, _mapping(f"{where}: {k}", getattr(self, k)))
        if not isinstance(self.description, str):
            raise FactorGymError(f"{where}: description must be text, got {self.description!r}")
        if self.compare_to is not None and (not isinstance(self.compare_to, str) or self.compare_to == self.name):
            raise FactorGymError(f"{where}: compare_to must name another arm, got {self.compare_to!r}")

    @property
    def is_historical(self) -> bool:
        """True for replay of the real train split."""
        src = self.market if isinstance(self.market, str) else self.market.get("source")
        return str(src).strip() == "historical"

    @property
    def market_source(self) -> str:
        """The market's source text (``historical`` or a path)."""
        return str(self.market if isinstance(self.market, str) else self.market.get("source")).strip()

    def to_dict(self) -> dict[str, Any]:
        """JSON form (:meth:`Sim2RealConfig.from_dict` reads it back inside ``arms``)."""
        return jsonable({
            "name": self.name, "market": self.market if isinstance(self.market, str) else dict(self.market),
            "algo": self.algo, "algo_kwargs": dict(self.algo_kwargs), "env": dict(self.env), "train": dict(self.train),
            "description": self.description, "compare_to": self.compare_to,
        })  # fmt: skip


@dataclass(frozen=True)
class Sim2RealConfig:
    """A sim-to-real experiment: ``arms x seeds`` training runs with one budget, each policy
    evaluated on the real validation and test periods at every execution lag.

    Parameters
    ----------
    arms : sequence of Arm
        At least one; names unique.
    seeds : sequence of int
        Every arm trains once per seed (distinct, >= 0).
    dataset : str
        Embedded dataset name or CSV/Parquet path (read by every worker: on a cluster, a path
        must exist on every node).
    train_end, val_end : str
        The split (inclusive ends); test runs from the day after ``val_end`` to ``test_end``.
    test_end : str, optional
        Last test day (default: the panel's last day).
    total_timesteps : int
        The equal budget: environment steps of every run.
    n_envs : int
        Paths stepped together while training (an arm's ``train.n_envs`` may change it).
    horizon : int
        Days per training episode.
    eval_freq, eval_episodes, eval_horizon, eval_stride
        Validation during training (the same for every arm): every ``eval_freq`` steps,
        ``eval_episodes`` real validation episodes of ``eval_horizon`` days (default: the
        training horizon), or with ``eval_stride`` rolling episodes starting every
        ``eval_stride`` days (when ``train_agent`` takes it); the best evaluation's model is
        the run's selected policy.
    curve_episodes : int
        Training-market episodes each checkpoint is scored on for the learning curves
        (fixed seeds; 0 skips the training-market curve).
    lags : sequence of int
        Execution lags of the real evaluation (days, :class:`~factorgym.envs.EnvConfig`).
    cost_model : CostModel
        Charged on every real evaluation, and the training environments' unless an arm's
        ``env`` sets ``cost_model``. Fractions of the value traded.
    risk_free : float
        Daily cash rate of the real evaluation.
    reference_arm : str, optional
        The arm others are compared to (default: the first historical-replay arm).
    baselines : sequence of str
        Agent specs evaluated beside the trained policies (1/N is the reference of the
        Sharpe comparisons and must be among them).
    bootstrap_reps, confidence, stats_seed
        The bootstrap intervals of the statistics.
    name : str
        Shown in the report.
    """

    arms: tuple[Arm, ...]
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    dataset: str = "sp500"
    train_end: str = Split.train_end
    val_end: str = Split.val_end
    test_end: str | None = None
    total_timesteps: int = 100_000
    n_envs: int = 8
    horizon: int = 252
    eval_freq: int = 10_000
    eval_episodes: int = 10
    eval_horizon: int | None = None
    eval_stride: int | None = None
    curve_episodes: int = 8
    lags: tuple[int, ...] = (0, 1)
    cost_model: CostModel = field(default_factory=CostModel)
    risk_free: float = 0.0
    reference_arm: str | None = None
    baselines: tuple[str, ...] = BASELINES
    bootstrap_reps: int = 2000
    confidence: float = 0.95
    stats_seed: int = 0
    name: str = "sim2real"

    def __post_init__(self) -> None:  # noqa: C901 - one check per setting, in order
        arms = tuple(self.arms)
        if not arms:
            raise FactorGymError("a sim2real experiment needs at least one arm")
        if not all(isinstance(a, Arm) for a in arms):
            raise FactorGymError("arms must be Arm objects (or tables in a config file)")
        names = [a.name for a in arms]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise FactorGymError(f"arm names must be unique, repeated: {dup}")
        object.__setattr__(self, "arms", arms)
        if isinstance(self.seeds, str | bytes) or not isinstance(self.seeds, Sequence) or not self.seeds:
            raise FactorGymError(f"seeds must be a non-empty list of whole numbers, got {self.seeds!r}")
        seeds = tuple(_int("seed", s, 0) for s in self.seeds)
        if len(set(seeds)) != len(seeds):
            raise FactorGymError(f"seeds must be distinct, got {list(seeds)}")
        object.__setattr__(self, "seeds", seeds)
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise FactorGymError(f"dataset must be a dataset name or a file path, got {self.dataset!r}")
        Split(self.train_end, self.val_end)  # a clear error for bad or unordered dates
        if self.test_end is not None:
            from factorgym.data.validation import parse_iso_date

            parse_iso_date(self.test_end, "test_end")
            if pd.Timestamp(self.test_end) <= pd.Timestamp(self.val_end):
                raise FactorGymError(f"test_end {self.test_end} must follow val_end {self.val_end}")
        for k, lo in (("total_timesteps", 1), ("n_envs", 1), ("horizon", 2), ("eval_freq", 1), ("eval_episodes", 1),
                      ("curve_episodes", 0), ("bootstrap_reps", 0), ("stats_seed", 0)):  # fmt: skip
            object.__setattr__(self, k, _int(k, getattr(self, k), lo))
        for k in ("eval_horizon", "eval_stride"):
            if getattr(self, k) is not None:
                object.__setattr__(self, k, _int(k, getattr(self, k), 2 if k == "eval_horizon" else 1))
        if self.eval_freq > self.total_timesteps:
            raise FactorGymError(
                f"eval_freq={self.eval_freq} exceeds total_timesteps={self.total_timesteps}: no validation "
                "evaluation would select a checkpoint"
            )
        if isinstance(self.lags, str | bytes) or not isinstance(self.lags, Sequence) or not self.lags:
            raise FactorGymError(f"lags must be a non-empty list of whole numbers of days, got {self.lags!r}")
        lags = tuple(_int("lag", v, 0) for v in self.lags)
        if len(set(lags)) != len(lags):
            raise FactorGymError(f"lags must be distinct, got {list(lags)}")
        object.__setattr__(self, "lags", lags)
        if not isinstance(self.cost_model, CostModel):
            raise FactorGymError(f"cost_model must be a factorgym.costs.CostModel, got {type(self.cost_model).__name__}")
        rf = self.risk_free
        if isinstance(rf, bool) or not isinstance(rf, numbers.Real) or not math.isfinite(rf) or rf <= -1:
            raise FactorGymError(f"risk_free must be a finite daily rate > -1, got {rf!r}")
        if not (isinstance(self.confidence, numbers.Real) and 0 < float(self.confidence) < 1):
            raise FactorGymError(f"confidence must be in (0, 1), got {self.confidence!r}")
        if self.reference_arm is None:
            ref = next((a.name for a in arms if a.is_historical), None)
            object.__setattr__(self, "reference_arm", ref)
        elif self.reference_arm not in names:
            raise FactorGymError(f"reference_arm {self.reference_arm!r} is not an arm; arms: {', '.join(names)}")
        for a in arms:
            if a.compare_to is not None and a.compare_to not in names:
                raise FactorGymError(f"arm {a.name!r}: compare_to {a.compare_to!r} is not an arm; arms: {', '.join(names)}")
        if self.eval_stride is not None:
            from factorgym.agents.rl import train_agent

            if "eval_stride" not in inspect.signature(train_agent).parameters:
                raise FactorGymError("eval_stride needs a train_agent that takes it (this version does not)")
        self._check_baselines()
        for a in arms:
            self._check_arm(a)

    # ------------------------------------------------------------------ checks
    def _check_baselines(self) -> None:
        from factorgym.app.specs import parse_agent_spec

        if isinstance(self.baselines, str) or not isinstance(self.baselines, Sequence):
            raise FactorGymError(f"baselines must be a list of agent specs, got {self.baselines!r}")
        specs = [parse_agent_spec(str(b)) for b in self.baselines]
        if not any(s.kind == "equal_weight" for s in specs):
            raise FactorGymError("baselines must include equal_weight (1/N, the reference of the Sharpe comparisons)")
        bad = [s.text for s in specs if s.kind == "sb3"]
        if bad:
            raise FactorGymError(f"baselines are fixed rules or optimizers, not trained agents: {bad}")
        labels = [s.label for s in specs]
        clash = sorted({x for x in labels if labels.count(x) > 1} | ({x for x in labels} & {a.name for a in self.arms}))
        if clash:
            raise FactorGymError(f"baseline labels must be unique and differ from the arm names: {clash}")
        object.__setattr__(self, "baselines", tuple(s.text for s in specs))

    def _check_arm(self, arm: Arm) -> None:
        """Every setting of ``arm`` that can be checked without data: the algorithm and its
        keyword names and values, the environment options, the ``train_agent`` keywords."""
        from factorgym.agents.rl import ALGOS, train_agent
        from factorgym.agents.rl.algos import check_algo_kwargs, check_compatible
        from factorgym.envs.config import EnvConfig, check_keys

        where = f"arm {arm.name!r}"
        if arm.algo not in ALGOS:
            raise FactorGymError(f"{where}: unknown algo {arm.algo!r}; expected one of {', '.join(ALGOS)}")
        accepted = set(inspect.signature(ALGOS[arm.algo].__init__).parameters) - {"self", "policy", "env", "seed", "tensorboard_log"}
        unknown = sorted(set(arm.algo_kwargs) - accepted)
        if unknown:
            raise FactorGymError(f"{where}: unknown {arm.algo} keyword(s) {unknown} in algo_kwargs")
        try:
            check_algo_kwargs(arm.algo, arm.algo_kwargs)
        except FactorGymError as exc:
            raise FactorGymError(f"{where}: {exc}") from None
        try:
            check_keys(arm.env)
            cfg = EnvConfig.coerce(self.env_options(arm))
            check_compatible(arm.algo, cfg.action_mode)
        except (TypeError, ValueError, FactorGymError) as exc:
            raise FactorGymError(f"{where}: bad env options: {exc}") from None
        params = inspect.signature(train_agent).parameters
        fixed = sorted(set(arm.train) & FIXED_TRAIN_KEYS)
        if fixed:
            raise FactorGymError(f"{where}: train may not set {fixed}; the experiment sets them alike for every arm")
        unknown = sorted(set(arm.train) - set(params))
        if unknown:
            raise FactorGymError(f"{where}: unknown train_agent keyword(s) {unknown} in train")
        if "n_envs" in arm.train:
            _int(f"{where}: train.n_envs", arm.train["n_envs"], 1)
        if isinstance(arm.market, Mapping):
            import dataclasses

            from factorgym.agents.rl import MarketSpec

            own = {"dataset", "train_end", "val_end"}
            accepted = {f.name for f in dataclasses.fields(MarketSpec)} - own
            bad = sorted(set(arm.market) - accepted)
            if bad:
                shared = " (the experiment's dataset and split apply to every arm)" if set(bad) & own else ""
                raise FactorGymError(f"{where}: market may not set {bad}{shared}; accepted: {', '.join(sorted(accepted))}")

    # ------------------------------------------------------------------ views
    def arm(self, name: str) -> Arm:
        """The arm called ``name``."""
        for a in self.arms:
            if a.name == name:
                return a
        raise FactorGymError(f"no arm {name!r}; arms: {', '.join(a.name for a in self.arms)}")

    def env_options(self, arm: Arm) -> dict[str, Any]:
        """The training environment options of ``arm`` (the experiment's cost model unless
        the arm sets its own)."""
        from factorgym.envs.config import cost_to_dict

        return {"cost_model": cost_to_dict(self.cost_model), **dict(arm.env)}

    def n_envs_of(self, arm: Arm) -> int:
        """Training paths of ``arm``."""
        return int(arm.train.get("n_envs", self.n_envs))

    def policy_updates(self, arm: Arm) -> int | None:
        """Policy updates the budget buys an on-policy arm (``total_timesteps // (n_steps *
        n_envs)``; ``None`` for off-policy algorithms)."""
        if arm.algo not in ("ppo", "a2c"):
            return None
        from factorgym.agents.rl import algos

        default = int(getattr(algos, "DEFAULT_PPO_N_STEPS", 2048)) if arm.algo == "ppo" else 5
        n_steps = int(arm.algo_kwargs.get("n_steps", default))
        return self.total_timesteps // max(n_steps * self.n_envs_of(arm), 1)

    @property
    def split(self) -> Split:
        """The train / validation / test split."""
        return Split(self.train_end, self.val_end)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, the layout of a config file (costs as ``cost_model`` fractions):
        :meth:`from_dict` reads it back to an equal config."""
        from factorgym.envs.config import cost_to_dict

        return jsonable({
            "name": self.name, "dataset": self.dataset, "train_end": self.train_end, "val_end": self.val_end,
            "test_end": self.test_end, "seeds": list(self.seeds), "total_timesteps": self.total_timesteps,
            "n_envs": self.n_envs, "horizon": self.horizon, "curve_episodes": self.curve_episodes,
            "validation": {"eval_freq": self.eval_freq, "eval_episodes": self.eval_episodes, "eval_horizon": self.eval_horizon,
                           "eval_stride": self.eval_stride},
            "lags": list(self.lags), "cost_model": cost_to_dict(self.cost_model), "risk_free": self.risk_free,
            "reference_arm": self.reference_arm, "baselines": list(self.baselines),
            "bootstrap_reps": self.bootstrap_reps, "confidence": self.confidence, "stats_seed": self.stats_seed,
            "arms": [a.to_dict() for a in self.arms],
        })  # fmt: skip

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, base: Path | None = None) -> Sim2RealConfig:
        """A config from a file's nested tables (see the module docstring).

        ``base`` resolves relative generator-run and dataset paths (the config file's folder).
        Costs are ``buy_bps``/``sell_bps`` (basis points) or ``cost_model`` (fractions, as
        :func:`factorgym.envs.config.cost_to_dict` writes it).
        """
        if not isinstance(d, Mapping):
            raise FactorGymError(f"a sim2real config is a table of settings, got {type(d).__name__}")
        top = ("name", "dataset", "train_end", "val_end", "test_end", "seeds", "total_timesteps", "n_envs", "horizon",
               "curve_episodes", "lags", "buy_bps", "sell_bps", "cost_model", "risk_free", "reference_arm", "baselines",
               "bootstrap_reps", "confidence", "stats_seed", "validation", "defaults", "arms")  # fmt: skip
        unknown = sorted(set(d) - set(top))
        if unknown:
            raise FactorGymError(f"unknown sim2real setting(s) {unknown}; accepted: {', '.join(top)}")
        kw: dict[str, Any] = {k: d[k] for k in top if k in d and k not in ("validation", "defaults", "arms", "buy_bps", "sell_bps", "cost_model")}
        val = _mapping("validation", d.get("validation"))
        bad = sorted(set(val) - {"eval_freq", "eval_episodes", "eval_horizon", "eval_stride"})
        if bad:
            raise FactorGymError(f"unknown validation setting(s) {bad}; accepted: eval_freq, eval_episodes, eval_horizon, eval_stride")
        kw.update(val)
        kw["cost_model"] = _cost_model(d)
        if base is not None and "dataset" in kw and isinstance(kw["dataset"], str):
            kw["dataset"] = _resolve(kw["dataset"], base, dataset=True)
        defaults = _mapping("defaults", d.get("defaults"))
        bad = sorted(set(defaults) - set(_DEFAULT_KEYS))
        if bad:
            raise FactorGymError(f"unknown defaults setting(s) {bad}; accepted: {', '.join(_DEFAULT_KEYS)}")
        raw_arms = d.get("arms")
        if not isinstance(raw_arms, Sequence) or isinstance(raw_arms, str) or not raw_arms:
            raise FactorGymError("a sim2real config needs an [[arms]] list with at least one arm")
        kw["arms"] = tuple(_arm(a, i, defaults, base) for i, a in enumerate(raw_arms))
        for k in ("seeds", "lags", "baselines"):
            if k in kw and isinstance(kw[k], list):
                kw[k] = tuple(kw[k])
        return cls(**kw)


def _cost_model(d: Mapping[str, Any]) -> CostModel:
    from factorgym.envs.config import cost_from_dict

    if "cost_model" in d and ("buy_bps" in d or "sell_bps" in d):
        raise FactorGymError("give the costs as buy_bps/sell_bps or as cost_model, not both")
    if "cost_model" in d:
        cm = _mapping("cost_model", d["cost_model"])
        try:
            return cost_from_dict(cm)
        except (KeyError, TypeError, ValueError) as exc:
            raise FactorGymError(f"bad cost_model {cm}: {exc} (fractions: buy, sell, impact)") from None
    vals = {}
    for k, default in (("buy_bps", 7.5), ("sell_bps", 12.5)):
        v = d.get(k, default)
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
            raise FactorGymError(f"{k} must be a finite number of basis points >= 0, got {v!r}")
        vals[k] = float(v) * 1e-4
    return CostModel(buy=vals["buy_bps"], sell=vals["sell_bps"])


def _resolve(path: str, base: Path, *, dataset: bool = False) -> str:
    """A relative path resolved against the config file's folder (names and ``historical`` kept)."""
    from factorgym.io import is_dataset_name

    if path in ("historical", "mixture") or (dataset and is_dataset_name(path)) or Path(path).expanduser().is_absolute():
        return path
    return str((base / path).resolve())


def _arm(raw: Any, i: int, defaults: Mapping[str, Any], base: Path | None) -> Arm:
    if not isinstance(raw, Mapping):
        raise FactorGymError(f"arm {i + 1} must be a table of settings, got {raw!r}")
    where = f"arm {raw.get('name', i + 1)!r}"
    unknown = sorted(set(raw) - set(_ARM_KEYS))
    if unknown:
        raise FactorGymError(f"{where}: unknown setting(s) {unknown}; accepted: {', '.join(_ARM_KEYS)}")
    if "name" not in raw:
        raise FactorGymError(f"arm {i + 1} has no name")
    kw: dict[str, Any] = {"name": raw["name"], "algo": raw.get("algo", defaults.get("algo", "ppo"))}
    for k in ("algo_kwargs", "env", "train"):
        kw[k] = {**_mapping(f"defaults.{k}", defaults.get(k)), **_mapping(f"{where}: {k}", raw.get(k))}
    market = raw.get("market", "historical")
    if base is not None:
        if isinstance(market, str):
            market = _resolve(market, base)
        elif isinstance(market, Mapping) and isinstance(market.get("source"), str):
            market = {**market, "source": _resolve(market["source"], base)}
            if isinstance(market.get("mixture"), list):  # [[source, weight], ...]: each source resolved too
                market["mixture"] = [[_resolve(m[0], base), *m[1:]] if isinstance(m, list) and m and isinstance(m[0], str)
                                     else m for m in market["mixture"]]  # fmt: skip
    kw["market"] = market
    for k in ("description", "compare_to"):
        if k in raw:
            kw[k] = raw[k]
    return Arm(**kw)


def load_config(path: str | Path) -> Sim2RealConfig:
    """Read and check a sim2real config file (``.toml`` or ``.json``).

    Relative paths inside (generator runs, a dataset file) are read relative to the file's
    folder.

    Raises
    ------
    FactorGymError
        A file that cannot be parsed, an unknown setting or a bad value (the message names it).
    OSError
        A missing or unreadable file.
    """
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    if suffix == ".toml":
        import tomllib

        try:
            d = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise FactorGymError(f"{p} is not valid TOML: {exc}") from None
    elif suffix == ".json":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FactorGymError(f"{p} is not valid JSON: {exc}") from None
    else:
        raise FactorGymError(f"{p}: a sim2real config is a .toml or .json file, got {suffix or 'no extension'}")
    return Sim2RealConfig.from_dict(d, base=p.parent.resolve())

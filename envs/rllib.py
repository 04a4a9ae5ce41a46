"""Ray RLlib support: :class:`PortfolioEnv` with a flat observation, built from an ``env_config``.

RLlib's default models have no encoder for a ``Dict`` observation, so the environment that
RLlib builds here is :class:`~factorgym.envs.PortfolioEnv` behind gymnasium's
``FlattenObservation``: the observation is the concatenation of the ``Dict`` entries in the
space's (sorted) key order, each flattened row-major, exactly
``gymnasium.spaces.flatten(env.observation_space, obs)``: the same information as the ``Dict``
observation, nothing more (``tests/test_rllib.py`` checks it step by step).

Everything is built from one plain ``env_config`` dict (what RLlib passes to an env creator
in every env runner, on any machine of a cluster), so nothing but strings and numbers
travels::

    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from factorgym.envs.rllib import register_rllib_env

    ray.init()                                   # a cluster: ray.init(address="auto") or RAY_ADDRESS
    name = register_rllib_env()                  # "factorgym-portfolio"
    config = PPOConfig().environment(name, env_config={"market": "historical", "window": 20})
    algo = config.build_algo()
    algo.train()

Ray is imported only inside :func:`register_rllib_env`; importing :mod:`factorgym.envs`
never imports it.
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import pandas as pd

from factorgym.data import ReturnPanel, Split
from factorgym.envs.config import ENV_KEYS, EnvConfig
from factorgym.envs.markets import GenerativeMarket, HistoricalMarket, Market
from factorgym.envs.portfolio_env import PortfolioEnv
from factorgym.errors import FactorGymError

if TYPE_CHECKING:
    from factorgym.generators.base import ReturnGenerator

__all__ = ["MARKET_KEYS", "RLLIB_ENV_NAME", "make_rllib_env", "market_from_config", "register_rllib_env"]

#: Name :func:`register_rllib_env` registers by default.
RLLIB_ENV_NAME = "factorgym-portfolio"

#: ``env_config`` keys that describe the market (the other keys are :data:`ENV_KEYS`).
MARKET_KEYS: tuple[str, ...] = ("market", "dataset", "part", "train_end", "val_end", "horizon", "random_start")
_PARTS = ("train", "val", "test")

# panels and generators loaded once per process (an env runner builds one env per vector slot)
_CACHE: dict[tuple[str, ...], Any] = {}
_LOCK = threading.Lock()


def _cached(key: tuple[str, ...], load: Any) -> Any:
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = load()
        return _CACHE[key]


def _load_panel(dataset: str) -> ReturnPanel:
    from factorgym.io import is_dataset_name, load_source

    if not is_dataset_name(dataset):
        dataset = str(Path(dataset).expanduser().resolve())
    return _cached(("panel", dataset), lambda: load_source(dataset))


def _load_run(path: str) -> tuple[ReturnGenerator, dict[str, Any]]:
    from factorgym.generators.runs import load_run

    p = Path(path).expanduser().resolve()

    def load() -> tuple[ReturnGenerator, dict[str, Any]]:
        gen, record, _ = load_run(p)
        return gen, dict((record or {}).get("spec") or {})

    return _cached(("run", str(p)), load)


def market_from_config(env_config: Mapping[str, Any]) -> Market:
    """The market an ``env_config`` describes (only its :data:`MARKET_KEYS` are read).

    Parameters
    ----------
    env_config : mapping
        ``market``: ``"historical"`` (replay of real rows, the default) or the path of a
        generator run folder written by ``factorgym fit`` (a market rolled forward on the
        generator's samples). ``dataset``: an embedded dataset name or a CSV/Parquet path
        (default: the run's dataset, else ``"sp500"``). ``train_end``, ``val_end``: the split
        (default: the run's, else :class:`~factorgym.data.Split`'s; a value that differs from
        the run's raises, so that an agent never trains on rows the generator was selected
        on). ``part``: ``"train"`` (default), ``"val"`` or ``"test"``: episodes start on days
        of that part and, on a historical market, never earn a return after its last day.
        ``horizon``: steps per episode (default 252). ``random_start``: draw each episode's
        start day (default True).

    Returns
    -------
    HistoricalMarket or GenerativeMarket
        Built over the whole panel with day bounds, so the observation window may reach back
        before the part's first day (past information only).

    Raises
    ------
    FactorGymError
        A bad value (named in the message), an empty part, or a split or dataset that differs
        from the generator run's.
    """
    source = str(env_config.get("market", "historical"))
    part = str(env_config.get("part", "train"))
    if part not in _PARTS:
        raise FactorGymError(f"part must be one of {', '.join(_PARTS)}, got {part!r}")
    horizon = env_config.get("horizon", 252)
    if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral) or horizon < 1):
        raise FactorGymError(f"horizon must be a whole number of steps >= 1, got {horizon!r}")
    random_start = env_config.get("random_start", True)
    if not isinstance(random_start, bool):
        raise FactorGymError(f"random_start must be True or False, got {random_start!r}")
    dataset = env_config.get("dataset")
    train_end, val_end = env_config.get("train_end"), env_config.get("val_end")
    generator = None
    if source != "historical":
        if not Path(source).expanduser().exists():
            raise FactorGymError(f"market must be 'historical' or a generator run folder; {source!r} does not exist")
        generator, spec = _load_run(source)
        for label, mine, theirs in (("train_end", train_end, spec.get("train_end")), ("val_end", val_end, spec.get("val_end"))):
            if mine is not None and theirs is not None and pd.Timestamp(mine) != pd.Timestamp(theirs):
                raise FactorGymError(
                    f"{label}={mine} differs from the {theirs} the generator run {source!r} was fitted with; "
                    "omit it to use the run's split"
                )
        from factorgym.io import same_source

        run_dataset = spec.get("dataset")
        if dataset is not None and run_dataset is not None and not same_source(str(dataset), str(run_dataset)):
            raise FactorGymError(f"dataset {dataset!r} differs from the dataset {run_dataset!r} the generator run was fitted on")
        dataset = dataset or run_dataset
        train_end, val_end = train_end or spec.get("train_end"), val_end or spec.get("val_end")
    panel = _load_panel(str(dataset or "sp500"))
    try:
        split = Split(train_end or Split.train_end, val_end or Split.val_end)
        i0, i1 = split.bounds(panel.dates)[part]
    except (TypeError, ValueError) as exc:
        raise FactorGymError(f"bad split train_end={train_end!r}, val_end={val_end!r}: {exc}") from None
    if i1 <= i0:
        raise FactorGymError(f"part {part!r} of {panel.name} is empty (train_end={split.train_end}, val_end={split.val_end})")
    first = None if part == "train" else i0
    if generator is None:
        return HistoricalMarket(panel, horizon=horizon, random_start=random_start, first_day=first, last_day=i1 - 1)
    if horizon is None:
        raise FactorGymError("a generator market needs a horizon (steps per episode), got None")
    return GenerativeMarket(generator, panel, horizon=horizon, random_start=random_start, first_day=first, last_day=i1 - 1)


def make_rllib_env(env_config: Mapping[str, Any] | None = None) -> gym.Env:
    """RLlib env creator: a :class:`~factorgym.envs.PortfolioEnv` with a flat ``Box`` observation.

    Parameters
    ----------
    env_config : mapping, optional
        RLlib's ``env_config`` (its ``EnvContext`` or a plain dict). Keys: the market
        description (:data:`MARKET_KEYS`, see :func:`market_from_config`) and any
        :class:`~factorgym.envs.config.EnvConfig` option (:data:`ENV_KEYS`: ``window``,
        ``action_mode``, ``cost_model``, ``reward``, ...), given as objects or their JSON
        forms (``EnvConfig.to_dict``). Nothing else is accepted.

    Returns
    -------
    gymnasium.Env
        ``FlattenObservation(PortfolioEnv(market, config))``: the observation is
        ``gymnasium.spaces.flatten`` of the ``Dict`` observation (float64); actions, rewards,
        infos and seeding are :class:`~factorgym.envs.PortfolioEnv`'s. The unwrapped env is
        ``env.unwrapped``.

    Raises
    ------
    FactorGymError
        An unknown key (the message lists the accepted ones) or a bad value.

    Examples
    --------
    >>> env = make_rllib_env({"market": "historical", "part": "train", "window": 10})
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape == env.observation_space.shape
    True
    """
    cfg = dict(env_config or {})
    unknown = sorted(set(cfg) - set(ENV_KEYS) - set(MARKET_KEYS))
    if unknown:
        raise FactorGymError(
            f"unknown env_config keys {unknown}; accepted: market keys {', '.join(MARKET_KEYS)} "
            f"and environment options {', '.join(ENV_KEYS)}"
        )
    market = market_from_config(cfg)
    options = EnvConfig.coerce({k: v for k, v in cfg.items() if k in ENV_KEYS})
    return gym.wrappers.FlattenObservation(PortfolioEnv(market, options))


def register_rllib_env(name: str = RLLIB_ENV_NAME) -> str:
    """Register :func:`make_rllib_env` with Ray Tune's registry under ``name``.

    Call it on the driver before building an algorithm; RLlib ships the creator to every env
    runner (local or on a cluster), which builds its environments from ``env_config``.

    Parameters
    ----------
    name : str
        The env name to pass to ``AlgorithmConfig.environment``.

    Returns
    -------
    str
        ``name``.

    Raises
    ------
    FactorGymError
        Ray RLlib is not installed (``pip install "factorgym[rllib]"``), or ``name`` is empty.
    """
    if not isinstance(name, str) or not name:
        raise FactorGymError(f"name must be a non-empty string, got {name!r}")
    try:
        from ray.tune.registry import register_env
    except ImportError as exc:  # ray or its tune/rllib extras missing
        raise FactorGymError(f'Ray RLlib is not installed ({exc}); pip install "factorgym[rllib]"') from None
    register_env(name, make_rllib_env)
    return name

"""Training an agent: :func:`train_agent` (SB3 in a factorgym market, validated on real
held-out history, saved as an agent folder)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

from factorgym.agents.rl.algos import ALGOS, check_algo_kwargs, check_compatible, check_device
from factorgym.agents.rl.algos import algo_kwargs as make_algo_kwargs
from factorgym.agents.rl.callbacks import TrainingProgress, ValidationCallback
from factorgym.agents.rl.evaluate import evaluation_starts, rolling_starts
from factorgym.agents.rl.markets import Markets, MarketSpec, fit_train_scaler
from factorgym.agents.rl.normalize import BEST_NORMALIZER_NAME, NORMALIZER_NAME, ObsNormalizer
from factorgym.agents.rl.persistence import (
    AGENT_FORMAT,
    AGENT_KIND,
    BEST_NAME,
    META_NAME,
    MODEL_NAME,
    PENDING_NAME,
    AgentMeta,
    TrainedAgent,
    commit_agent_folder,
    file_sha256,
    save_model,
)
from factorgym.artifacts import atomic_write_text
from factorgym.envs.config import EnvConfig
from factorgym.envs.vec_env import VecPortfolioEnv
from factorgym.errors import DataValidationError, FactorGymError
from factorgym.generators.base import torch_threads as torch_thread_limit
from factorgym.jsonable import jsonable
from factorgym.progress import Progress

__all__ = ["LOCK_NAME", "train_agent"]

#: The lock file a training holds, inside the agent folder.
LOCK_NAME = ".train.lock"


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
    device: str = "cpu",
    normalize_obs: bool = False,
    normalize_reward: bool = False,
    clip_obs: float = 10.0,
    eval_stride: int | None = None,
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
        Defaults differing from SB3's: ``device="cpu"``; PPO ``n_steps=256`` (and
        ``batch_size=256`` when neither is given: 2,048 steps a rollout with 8 paths, at
        least 20 policy updates from 41k steps); PPO/A2C ``policy_kwargs["log_std_init"]=-1``
        (exploration that does not trade the whole book daily); SAC/TD3 ``buffer_size`` capped at
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
    device : {"cpu", "auto", "cuda", "cuda:N"}
        Torch device of the SB3 model (default ``"cpu"``: fastest for these small MLPs;
        ``algo_kwargs["device"]`` wins when given). Recorded in ``agent.json``.
    normalize_obs : bool
        Normalise observations with running statistics (SB3's ``VecNormalize``). The
        statistics are frozen with every saved model and applied identically whenever the
        agent acts (validation, :class:`TrainedAgent`, :func:`load_agent`, backtests); see
        :mod:`factorgym.agents.rl.normalize`.
    normalize_reward : bool
        Scale rewards by the running standard deviation of the discounted return
        (``VecNormalize``'s ``norm_reward``; training signal only).
    clip_obs : float
        Bound of normalised observations (``VecNormalize``'s ``clip_obs``, default 10).
    eval_stride : int, optional
        Validation episodes start every ``eval_stride`` days of the validation period
        (rolling windows, :func:`~factorgym.agents.rl.evaluate.rolling_starts`) instead of
        ``eval_episodes`` evenly spaced ones: more episodes for checkpoint selection.

    Returns
    -------
    TrainedAgent

    Raises
    ------
    FactorGymError
        Unknown algorithm, an action mode the algorithm cannot use, bad options, an
        ``out_dir`` that holds an agent (without ``overwrite``).
    """
    # Over 100 lines only by its docstring (every option documented); the body is ~50 lines.
    algo = str(algo).lower()
    check_algo_kwargs(algo, algo_kwargs)
    _check_env_types(env_kwargs)
    try:
        cfg = EnvConfig.coerce(env_kwargs)
    except (TypeError, ValueError) as exc:  # a value of the wrong type deep in a check
        if isinstance(exc, FactorGymError):
            raise
        shown = env_kwargs if isinstance(env_kwargs, EnvConfig) else dict(env_kwargs or {})
        raise FactorGymError(f"bad env_kwargs {shown}: {exc}") from None
    check_compatible(algo, cfg.action_mode)
    device = check_device(device)
    for name, v in (("normalize_obs", normalize_obs), ("normalize_reward", normalize_reward)):
        if not isinstance(v, bool):
            raise FactorGymError(f"{name} must be true or false, got {v!r}")
    if isinstance(clip_obs, bool) or not isinstance(clip_obs, int | float) or not 0 < clip_obs < float("inf"):
        raise FactorGymError(f"clip_obs must be a positive finite number, got {clip_obs!r}")
    if eval_stride is not None and (isinstance(eval_stride, bool) or not isinstance(eval_stride, int) or eval_stride < 1):
        raise FactorGymError(f"eval_stride must be a whole number of days >= 1, got {eval_stride!r}")
    for name, v, lo in (("total_timesteps", total_timesteps, 1), ("n_envs", n_envs, 1), ("eval_freq", eval_freq, 0),
                        ("eval_episodes", eval_episodes, 1), ("seed", seed, 0)):  # fmt: skip
        if int(v) < lo:
            raise FactorGymError(f"{name} must be at least {lo}, got {v}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FactorGymError(f"{out} is a file, not an agent folder")
    if ((out / META_NAME).exists() or (out / PENDING_NAME / META_NAME).exists()) and not overwrite:
        raise FactorGymError(f"{out} already holds a trained agent; choose another folder or overwrite it")

    if isinstance(market, Markets):
        markets = market
    else:
        markets = (market if isinstance(market, MarketSpec) else MarketSpec(str(market))).build()
    cfg = _complete_config(cfg, markets)
    env = VecPortfolioEnv(markets.train, int(n_envs), seed=int(seed), config=cfg)
    check_compatible(algo, cfg.action_mode, env.action_space)
    user_kw = dict(algo_kwargs or {})
    user_kw.setdefault("device", device)
    kw = make_algo_kwargs(algo, user_kw, int(total_timesteps), int(env.action_space.shape[0]))  # type: ignore[index]
    val = _validation_setup(markets, cfg, env, eval_horizon, int(eval_freq), int(eval_episodes), int(seed), eval_stride)
    norm = {"obs": normalize_obs, "reward": normalize_reward, "clip_obs": float(clip_obs)}

    with torch_thread_limit(torch_threads) as threads, _agent_folder(out, overwrite) as pend:
        try:  # SB3 writes nothing before learn()
            venv: VecEnv = VecMonitor(env)
            if normalize_obs or normalize_reward:
                venv = VecNormalize(venv, norm_obs=normalize_obs, norm_reward=normalize_reward, clip_obs=float(clip_obs),
                                    gamma=float(kw.get("gamma", 0.99)))  # fmt: skip
            model = ALGOS[algo]("MultiInputPolicy", venv, seed=int(seed), tensorboard_log=str(pend / "tb"), **kw)
        except (TypeError, ValueError, AssertionError) as exc:  # SB3 checks its arguments with assertions
            raise FactorGymError(f"bad algo_kwargs for {algo} ({_kwargs_text(algo_kwargs)}): {exc}") from None
        with Progress(int(total_timesteps), "training", enabled=progress) as bar:
            callback = ValidationCallback(val.env, val.starts, int(eval_freq), pend, seed=int(seed), log=bar.print if progress else None)
            callbacks: list[BaseCallback] = [callback]
            ckpt = int(eval_freq) if checkpoint_freq is None else int(checkpoint_freq)
            if ckpt > 0:
                callbacks.append(CheckpointCallback(max(ckpt // int(n_envs), 1), str(pend / "checkpoints"), name_prefix="model",
                                                    save_vecnormalize=normalize_obs))  # fmt: skip
            if progress:
                callbacks.append(TrainingProgress(bar))
            t0 = time.perf_counter()
            model.learn(int(total_timesteps), callback=callbacks, tb_log_name=algo, progress_bar=False)
            seconds = time.perf_counter() - t0
        model.tensorboard_log = str(out / "tb")  # where its logs are once the folder is swapped in
        model_sha = save_model(model, pend / MODEL_NAME)
        normalizer = ObsNormalizer.from_vecnormalize(venv) if normalize_obs else None
        norm_sha = None
        if normalizer is not None:
            norm_text = json.dumps(jsonable(normalizer.to_dict()))
            atomic_write_text(pend / NORMALIZER_NAME, norm_text)
            norm_sha = file_sha256(norm_text.encode())
        record = _agent_record(
            algo, cfg, env, markets, model, kw, callback, val, model_sha,
            seed=int(seed), n_envs=int(n_envs), total_timesteps=int(total_timesteps), eval_freq=int(eval_freq),
            seconds=seconds, threads=threads, normalize=norm, normalizer_sha=norm_sha,
        )  # fmt: skip
        text = json.dumps(jsonable(record), indent=2)
        atomic_write_text(pend / META_NAME, text)  # the commit point
        commit_agent_folder(out)
    meta = AgentMeta.from_dict(json.loads(text))  # exactly what load_agent will read
    return TrainedAgent(model, meta, out, list(callback.evaluations), markets, normalizer)


def _check_env_types(env_kwargs: EnvConfig | Mapping[str, Any] | None) -> None:
    """Refuse env options whose value is not of their default's type (a number given as
    text would otherwise fail deep inside the environment with a bare TypeError)."""
    import dataclasses
    import math

    if not isinstance(env_kwargs, Mapping):
        return
    defaults = {f.name: f.default for f in dataclasses.fields(EnvConfig) if f.default is not dataclasses.MISSING}
    for k, v in env_kwargs.items():
        d = defaults.get(k)
        if isinstance(d, bool):
            ok = isinstance(v, bool)
        elif isinstance(d, int | float):
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            ok = ok and (isinstance(v, int) or not isinstance(d, int))
        else:
            continue
        if not ok:
            kind = "true or false" if isinstance(d, bool) else "an integer" if isinstance(d, int) else "a finite number"
            raise FactorGymError(f"env option {k}={v!r} must be {kind}")


def _kwargs_text(algo_kwargs: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in (algo_kwargs or {}).items()) or "defaults"


@contextmanager
def _agent_folder(out: Path, overwrite: bool) -> Iterator[Path]:
    """Hold ``out``'s lock while training into ``out/.pending`` (created empty; removed when
    training fails); the previous agent in ``out`` stays complete until the new one is
    swapped in by :func:`commit_agent_folder`."""
    from factorgym.artifacts import folder_lock

    def busy(p: Path) -> FactorGymError:
        return FactorGymError(f"{p} is being trained into by another process right now; wait for it or choose another --out")

    created = not out.exists()
    pend = out / PENDING_NAME
    with folder_lock(out, LOCK_NAME, busy):
        commit_agent_folder(out)  # a swap that a kill interrupted
        if (out / META_NAME).exists() and not overwrite:
            raise FactorGymError(f"{out} already holds a trained agent; choose another folder or overwrite it")
        shutil.rmtree(pend, ignore_errors=True)  # an interrupted training: SB3 cannot resume it
        pend.mkdir()
        try:
            yield pend
        except FactorGymError:
            shutil.rmtree(out if created else pend, ignore_errors=True)
            raise


def _complete_config(cfg: EnvConfig, markets: Markets) -> EnvConfig:
    """Check the observations against the market; fit the feature scaler on the train rows
    when features are observed without one (saved with the agent, used everywhere)."""
    if cfg.moments is not None and markets.generator is None:
        raise FactorGymError("moments observations need a generator market (a run folder), not historical replay")
    if cfg.features is not None and cfg.feature_scaler is None:
        cfg = replace(cfg, feature_scaler=fit_train_scaler(markets, cfg.features))
    return cfg


@dataclass(frozen=True)
class _Validation:
    """The validation environment of a training run: one path per start row."""

    env: VecPortfolioEnv
    starts: list[int]
    horizon: int


def _validation_setup(
    markets: Markets, cfg: EnvConfig, train_env: VecPortfolioEnv, eval_horizon: int | None, eval_freq: int,
    eval_episodes: int, seed: int, eval_stride: int | None = None,
) -> _Validation:
    """The validation episodes on the real validation rows (without evaluation, one 1-day
    episode that only checks that the observation spaces agree)."""
    eval_h = markets.spec.horizon if eval_horizon is None else int(eval_horizon)
    val_market = markets.heldout("val", horizon=eval_h if eval_freq > 0 else 1)
    cfg = cfg.for_evaluation()  # validation is real data: no domain randomisation
    try:
        if eval_stride is not None and eval_freq > 0:
            starts = rolling_starts(val_market, cfg, eval_stride)
        else:
            starts = evaluation_starts(val_market, cfg, eval_episodes if eval_freq > 0 else 1)
    except DataValidationError as exc:
        first, last = markets.rows("val")
        d = markets.panel.dates
        raise DataValidationError(
            f"the validation period {d[first].date()}..{d[last].date()} ({last - first + 1} days) cannot hold "
            f"{eval_h}-day evaluation episodes: pass a smaller eval_horizon ({exc})"
        ) from None
    eval_env = VecPortfolioEnv(val_market, len(starts), seed=seed, config=cfg)
    if eval_env.observation_space != train_env.observation_space:
        raise DataValidationError(
            f"the validation market observes {eval_env.observation_space} but the training market "
            f"{train_env.observation_space}; they must match"
        )
    return _Validation(eval_env, starts, eval_h)


def _agent_record(
    algo: str, cfg: EnvConfig, env: VecPortfolioEnv, markets: Markets, model: BaseAlgorithm, kw: Mapping[str, Any],
    callback: ValidationCallback, val: _Validation, model_sha: str, *, seed: int, n_envs: int, total_timesteps: int,
    eval_freq: int, seconds: float, threads: int | None, normalize: Mapping[str, Any] | None = None,
    normalizer_sha: str | None = None,
) -> dict[str, Any]:
    """The ``agent.json`` record of a finished training run."""
    import stable_baselines3
    import torch

    from factorgym import __version__

    train_seconds = max(seconds - callback.eval_seconds, 1e-9)
    files = {"model": {"name": MODEL_NAME, "sha256": model_sha}}
    if callback.best_sha256 is not None:
        files["best_model"] = {"name": BEST_NAME, "sha256": callback.best_sha256}
    if normalizer_sha is not None:
        files["normalizer"] = {"name": NORMALIZER_NAME, "sha256": normalizer_sha}
    if callback.best_normalizer_sha256 is not None:
        files["best_normalizer"] = {"name": BEST_NORMALIZER_NAME, "sha256": callback.best_normalizer_sha256}
    rollout_steps = int(getattr(model, "n_steps", 0)) * n_envs if algo in ("ppo", "a2c") else 0
    starts = val.starts if eval_freq > 0 else []
    return {
        "kind": AGENT_KIND,
        "format": AGENT_FORMAT,
        "algo": algo,
        "policy": "MultiInputPolicy",
        "env": cfg.to_dict(),
        "assets": list(env.assets),
        "observation_space": {k: list(v.shape) for k, v in env.observation_space.spaces.items()},  # type: ignore[union-attr]
        "action_space": {"shape": list(env.action_space.shape), "low": -1.0, "high": 1.0},  # type: ignore[arg-type]
        "market": markets.describe(),
        "seed": seed,
        "n_envs": n_envs,
        "total_timesteps": total_timesteps,
        "num_timesteps": int(model.num_timesteps),
        "algo_kwargs": jsonable(kw),
        "device": str(kw.get("device", "cpu")),
        "torch_device": str(model.device),  # SB3 falls back to the CPU when CUDA is not available
        "normalize": dict(normalize or {"obs": False, "reward": False}),
        "policy_updates": int(model.num_timesteps // rollout_steps) if rollout_steps else None,
        "evaluation": {
            "part": "val",
            "eval_freq": eval_freq,
            "horizon": val.horizon,
            "start_rows": starts,
            "start_dates": [str(markets.panel.dates[s].date()) for s in starts],
            "n_episodes": len(starts),
            "best_mean_log_wealth": None if callback.best_timestep is None else callback.best_mean_log_wealth,
            "best_timestep": callback.best_timestep,
            "last": callback.evaluations[-1] if callback.evaluations else None,
        },
        "seconds": {"learn": round(seconds, 3), "evaluation": round(callback.eval_seconds, 3)},
        "train_steps_per_second": round(model.num_timesteps / train_seconds, 1),
        "files": files,
        "library_version": __version__,
        "sb3_version": stable_baselines3.__version__,
        "torch_version": torch.__version__,
        "torch_threads": threads,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }

"""The agent folder: saving models atomically, the ``agent.json`` sidecar
(:class:`AgentMeta`), :class:`TrainedAgent` and :func:`load_agent`."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm

from factorgym.agents.rl.algos import ALGOS
from factorgym.agents.rl.markets import Markets, MarketSpec
from factorgym.agents.rl.normalize import (
    BEST_NORMALIZER_NAME,
    NORMALIZER_NAME,
    NormalizedPolicy,
    ObsNormalizer,
    checkpoint_normalizer,
)
from factorgym.artifacts import atomic_write_bytes
from factorgym.envs.config import EnvConfig
from factorgym.envs.markets import Market
from factorgym.envs.vec_env import VecPortfolioEnv
from factorgym.errors import CheckpointError, FactorGymError

if TYPE_CHECKING:
    pass

__all__ = [
    "AGENT_FORMAT", "AGENT_KIND", "BEST_NAME", "EVALS_NAME", "META_NAME", "MODEL_NAME", "PENDING_NAME", "AgentMeta",
    "TrainedAgent", "commit_agent_folder", "file_sha256", "load_agent", "save_model",
]  # fmt: skip


AGENT_KIND = "factorgym.rl_agent"
AGENT_FORMAT = 1
META_NAME = "agent.json"
MODEL_NAME = "model.zip"
BEST_NAME = "best_model.zip"
EVALS_NAME = "evaluations.json"
#: A training in progress, inside the agent folder; swapped in when it finishes.
PENDING_NAME = ".pending"
#: The files of a finished agent besides the sidecar (a new agent replaces all of them).
AGENT_ITEMS = (MODEL_NAME, BEST_NAME, EVALS_NAME, "checkpoints", "tb", "normalizer.json", "best_normalizer.json")


def file_sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (the fingerprint of a model file in ``agent.json``)."""
    return hashlib.sha256(data).hexdigest()


def save_model(model: BaseAlgorithm, path: Path) -> str:
    """``model.save`` into memory, then an atomic write to ``path``; returns the SHA-256."""
    buf = io.BytesIO()
    model.save(buf)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return file_sha256(data)


def commit_agent_folder(out: Path) -> None:
    """Swap a finished training in ``out/.pending`` into ``out``, the sidecar last.

    Training writes everything into ``out/.pending`` and its sidecar there last; only a
    pending folder with a sidecar is swapped in, so ``out`` keeps the previous agent until
    the new one is complete. Every step is idempotent: a kill during the swap is completed
    by calling this again (:func:`factorgym.agents.rl.train_agent` does, before anything
    else). Meanwhile :func:`load_agent` reads whichever complete agent the model files match.
    """
    pend = out / PENDING_NAME
    if not (pend / META_NAME).is_file():
        return
    for name in AGENT_ITEMS:
        if (pend / name).exists():  # present until moved: the old one goes first
            (pend / f".moved-{name}").touch()
            _remove(out / name)
            os.rename(pend / name, out / name)
        elif not (pend / f".moved-{name}").exists():
            _remove(out / name)  # the new agent has none: drop the old agent's
    os.replace(pend / META_NAME, out / META_NAME)
    shutil.rmtree(pend, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class AgentMeta:
    """The contents of ``agent.json``.

    Attributes
    ----------
    algo : str
    env : EnvConfig
        Rebuilds identical observation/action spaces: ``VecPortfolioEnv(market, n, config=meta.env)``.
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
        """A :class:`VecPortfolioEnv` over ``market`` with this agent's spaces (without its
        training-only domain randomisation)."""
        self.check_market(market)
        return VecPortfolioEnv(market, n_envs, seed=seed, config=self.env.for_evaluation())

    @property
    def normalizes_observations(self) -> bool:
        """True when the agent was trained on normalised observations (it then acts through
        its frozen statistics, :class:`~factorgym.agents.rl.normalize.NormalizedPolicy`)."""
        return bool((self.record.get("normalize") or {}).get("obs"))


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
    normalizer : ObsNormalizer, optional
        The frozen observation statistics of the final model (trained with
        ``normalize_obs=True``); :meth:`predict` normalises with them.
    """

    model: BaseAlgorithm
    meta: AgentMeta
    path: Path
    evaluations: list[dict[str, Any]]
    markets: Markets
    normalizer: ObsNormalizer | None = None

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
        """SB3's ``predict`` of the final model (on normalised observations when it was trained so)."""
        if self.normalizer is not None:
            observation = self.normalizer(observation)
        return self.model.predict(observation, state, episode_start, deterministic)


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
    model : BaseAlgorithm or NormalizedPolicy
        For an agent trained on normalised observations (``normalize_obs=True``), the model
        wrapped in a :class:`~factorgym.agents.rl.normalize.NormalizedPolicy` holding the
        statistics frozen with that model file: its ``predict`` normalises exactly as in
        training, and every other attribute is the model's.
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
        if (folder / PENDING_NAME).is_dir():
            raise CheckpointError(
                f"{folder} holds no finished agent: a training into it is running or was interrupted; "
                "run `factorgym train-agent` into it again"
            )
        raise CheckpointError(f"{folder} has no {META_NAME}: not a finished factorgym agent (interrupted training?)")
    if model_file.parent == folder and (folder / PENDING_NAME / META_NAME).is_file() and model_file.is_file():
        # killed while swapping a new agent in: read the sidecar that matches the model file
        try:
            pending = json.loads((folder / PENDING_NAME / META_NAME).read_text())
            files = {f["name"]: f["sha256"] for f in pending["files"].values()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            files = {}
        if files.get(model_file.name) == file_sha256(model_file.read_bytes()):
            meta_file = folder / PENDING_NAME / META_NAME
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
    if model_file.parent == folder and model_file.name in expected and file_sha256(data) != expected[model_file.name]:
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
    if meta.normalizes_observations:
        return NormalizedPolicy(model, _normalizer_of(model_file, folder, expected)), meta  # type: ignore[return-value]
    return model, meta


def _normalizer_of(model_file: Path, folder: Path, expected: Mapping[str, str]) -> ObsNormalizer:
    """The frozen observation statistics saved with ``model_file``."""
    if model_file.parent != folder:
        return checkpoint_normalizer(model_file)
    name = {MODEL_NAME: NORMALIZER_NAME, BEST_NAME: BEST_NORMALIZER_NAME}.get(model_file.name)
    if name is None:
        raise CheckpointError(f"{model_file}: no observation statistics are known for this file")
    f = folder / name
    if not f.is_file():
        raise CheckpointError(f"{f} is missing: the observation statistics of {model_file.name}")
    text = f.read_text()
    if name in expected and file_sha256(text.encode()) != expected[name]:
        raise CheckpointError(f"{f} does not match {META_NAME} (SHA-256 differs): truncated or replaced")
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{f} is corrupt: {exc}") from None
    return ObsNormalizer.from_dict(d)

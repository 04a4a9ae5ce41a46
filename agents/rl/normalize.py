"""Observation normalisation saved with an agent: :class:`ObsNormalizer` (frozen statistics
of SB3's ``VecNormalize``) and :class:`NormalizedPolicy` (a policy that normalises what it
observes with them).

Training with ``train_agent(..., normalize_obs=True)`` wraps the training env in SB3's
``VecNormalize``, whose running means and variances of every observation key are updated
while training. The statistics of the moment are frozen with every saved model
(``normalizer.json`` beside ``model.zip``, ``best_normalizer.json`` beside
``best_model.zip``, SB3's ``model_vecnormalize_<t>_steps.pkl`` beside each checkpoint), and
the agent then acts on real data through :class:`NormalizedPolicy` with exactly
``VecNormalize.normalize_obs``'s arithmetic: ``clip((obs - mean) / sqrt(var + eps), -clip,
clip)`` cast to float32. Reward normalisation (``normalize_reward=True``) only rescales the
training signal; nothing of it is needed to act.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from factorgym.errors import CheckpointError

__all__ = ["NORMALIZER_NAME", "BEST_NORMALIZER_NAME", "NormalizedPolicy", "ObsNormalizer", "checkpoint_normalizer"]

#: The frozen statistics of the final model, in the agent folder.
NORMALIZER_NAME = "normalizer.json"
#: The frozen statistics of the validation-selected model.
BEST_NORMALIZER_NAME = "best_normalizer.json"


@dataclass(frozen=True)
class ObsNormalizer:
    """Frozen observation statistics: ``mean[key]``, ``var[key]`` for each normalised key."""

    mean: Mapping[str, np.ndarray]
    var: Mapping[str, np.ndarray]
    clip_obs: float = 10.0
    epsilon: float = 1e-8
    count: float = 0.0

    @classmethod
    def from_vecnormalize(cls, vn: Any) -> ObsNormalizer:
        """A copy of the current statistics of an SB3 ``VecNormalize``."""
        rms = vn.obs_rms
        if not isinstance(rms, dict):
            raise CheckpointError("expected VecNormalize statistics of a Dict observation")
        keys = list(vn.norm_obs_keys or rms)
        return cls(
            {k: np.array(rms[k].mean, dtype=np.float64) for k in keys},
            {k: np.array(rms[k].var, dtype=np.float64) for k in keys},
            float(vn.clip_obs),
            float(vn.epsilon),
            float(rms[keys[0]].count) if keys else 0.0,
        )

    def __call__(self, obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """``obs`` with every normalised key normalised (as ``VecNormalize.normalize_obs``)."""
        out = dict(obs)
        for k, m in self.mean.items():
            x = np.asarray(obs[k])
            out[k] = np.clip((x - m) / np.sqrt(self.var[k] + self.epsilon), -self.clip_obs, self.clip_obs).astype(np.float32)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": {k: v.tolist() for k, v in self.mean.items()},
            "var": {k: v.tolist() for k, v in self.var.items()},
            "clip_obs": self.clip_obs,
            "epsilon": self.epsilon,
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ObsNormalizer:
        try:
            return cls(
                {k: np.asarray(v, dtype=np.float64) for k, v in d["mean"].items()},
                {k: np.asarray(v, dtype=np.float64) for k, v in d["var"].items()},
                float(d["clip_obs"]),
                float(d["epsilon"]),
                float(d.get("count", 0.0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"malformed observation normaliser: {type(exc).__name__}: {exc}") from None


def checkpoint_normalizer(model_file: Path) -> ObsNormalizer:
    """The statistics SB3's ``CheckpointCallback`` saved beside checkpoint ``model_<t>_steps.zip``."""
    name = model_file.name
    if not (name.startswith("model_") and name.endswith("_steps.zip")):
        raise CheckpointError(f"{model_file}: this agent normalises observations and no statistics are known for this file")
    pkl = model_file.with_name(name.replace("model_", "model_vecnormalize_", 1).replace(".zip", ".pkl"))
    if not pkl.is_file():
        raise CheckpointError(f"{pkl} is missing: the observation statistics of checkpoint {name}")
    try:
        with pkl.open("rb") as f:
            vn = pickle.load(f)  # noqa: S301 - SB3's own file in the agent folder, as trusted as model.zip
        return ObsNormalizer.from_vecnormalize(vn)
    except CheckpointError:
        raise
    except Exception as exc:  # pickle surfaces damage as many types
        raise CheckpointError(f"{pkl} is corrupt: {type(exc).__name__}: {exc}") from None


class NormalizedPolicy:
    """A policy (an SB3 model) acting on observations normalised with frozen statistics.

    Everything but :meth:`predict` is the wrapped model's (``observation_space``,
    ``policy``, ``save``...), so it stands in for the model anywhere a policy is used.
    """

    def __init__(self, model: Any, normalizer: ObsNormalizer) -> None:
        self.model = model
        self.normalizer = normalizer

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True) -> tuple[np.ndarray, Any]:
        return self.model.predict(self.normalizer(observation), state, episode_start, deterministic)

    def __getattr__(self, name: str) -> Any:
        if name in ("model", "normalizer"):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.model, name)

    def __repr__(self) -> str:
        return f"NormalizedPolicy({type(self.model).__name__})"

"""Path simulator of the diffusion generator: paths rolled forward on the model's own samples."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from factorgym.errors import DataValidationError
from factorgym.features import RollingFeatures
from factorgym.generators.base import PathSimulator

if TYPE_CHECKING:
    from factorgym.generators.diffusion.generator import DiffusionGenerator

__all__ = ["DiffusionPathSimulator", "MOMENT_SEED"]

#: Seed of the fixed draw behind a predictive distribution's moments and quantiles.
MOMENT_SEED = 0


class DiffusionPathSimulator(PathSimulator):
    """``P`` paths rolled forward on the model's own samples.

    Each :meth:`step` recomputes every path's factors from its trailing window
    (:class:`~factorgym.features.RollingFeatures` buffer), draws path ``p``'s noise from
    ``rngs[p]`` in numpy, runs the sampler batched over paths, and pushes the new day.
    """

    def __init__(
        self, gen: DiffusionGenerator, window: np.ndarray, rngs: Sequence[np.random.Generator]
    ) -> None:
        self._gen = gen
        rngs = list(rngs)
        if not rngs:
            raise DataValidationError("a path simulator needs at least one random stream")
        w = np.asarray(window, dtype=np.float64)
        if w.ndim == 3 and w.shape[0] != len(rngs):
            raise DataValidationError(f"{w.shape[0]} windows but {len(rngs)} random streams")
        if w.ndim not in (2, 3):
            raise DataValidationError(f"window must be (W, N) or (P, W, N), got shape {w.shape}")
        gen.window_inputs(w[-gen.min_history :] if w.ndim == 2 else w[:, -gen.min_history :])  # validates
        self._roll = RollingFeatures(
            w, gen.config.features, length=gen.min_history, n_paths=len(rngs) if w.ndim == 2 else None
        )
        self._rngs = rngs
        self._moments: tuple[int, np.ndarray, np.ndarray] | None = None

    @property
    def n_paths(self) -> int:
        return self._roll.n_paths

    @property
    def n_assets(self) -> int:
        return int(self._roll.window.shape[2])

    @property
    def window(self) -> np.ndarray:
        """Current trailing windows ``(P, min_history, N)`` (read-only view)."""
        v = self._roll.window.view()
        v.setflags(write=False)
        return v

    def step(self) -> np.ndarray:
        gen = self._gen
        x, present, scale = gen.window_inputs(self._roll.window)  # (P, N, K), (P, N), (P, N)
        draws = gen.n_noise_draws
        noise = np.stack([r.standard_normal((draws, self.n_assets)) for r in self._rngs], axis=1)  # (draws, P, N)
        noise_t = torch.from_numpy(noise.astype(np.float32))[:, :, None, :]  # (draws, P, 1, N)
        r = gen.sample_returns(x, present, scale, noise_t)[:, 0]  # (P, N)
        self._roll.push(r)
        self._moments = None
        return r

    def reset_paths(
        self, idx: np.ndarray, windows: np.ndarray, rngs: Sequence[np.random.Generator]
    ) -> None:
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        w = np.asarray(windows, dtype=np.float64)
        if w.ndim != 3 or w.shape[0] != idx.size or len(rngs) != idx.size:
            raise DataValidationError(
                f"reset_paths needs {idx.size} windows (k, W, N) and streams; got {w.shape} and {len(rngs)}"
            )
        L = self._roll.length
        if w.shape[1] < L or w.shape[2] != self.n_assets:
            raise DataValidationError(f"reset windows must be (k, >= {L}, {self.n_assets}), got {w.shape}")
        self._roll.window[idx] = w[:, -L:, :]
        for i, r in zip(idx, rngs, strict=True):
            self._rngs[int(i)] = r
        self._moments = None

    def moments(self, n_samples: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``(P, N)`` and covariance ``(P, N, N)`` of the next step.

        Estimated from ``n_samples`` draws with fixed noise (seed :data:`MOMENT_SEED`, shared by
        all paths); the path streams are not touched, so calling this never changes a path.
        """
        if self._moments is None or self._moments[0] != n_samples:
            gen = self._gen
            x, present, scale = gen.window_inputs(self._roll.window)
            g = gen.torch_generator(np.random.default_rng(MOMENT_SEED))
            s = gen.sample_returns(x, present, scale, gen.torch_noise(n_samples, g))  # (P, S, N)
            mean = s.mean(axis=1)
            c = s - mean[:, None, :]
            cov = np.einsum("psi,psj->pij", c, c) / max(n_samples - 1, 1)
            self._moments = (n_samples, mean, cov)
        return self._moments[1], self._moments[2]

"""Path simulator of the Student-T-decoder PPCA baseline.

Shapes: ``P`` paths, ``W`` window days, ``N`` assets, ``k`` factors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from factorgym.generators.baselines.common import PathStreams, rowwise_matvec
from factorgym.generators.baselines.simulator import RollingWindowSimulator

__all__ = ["PPCASimulator"]

#: ``windows (P, W, N) -> (mu (P, N), W (P, N, k), sigma (P, N))``
ParamsFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


class PPCASimulator(RollingWindowSimulator):
    """Paths drawing ``mu + W z + sigma t`` per day (rolling: re-estimated each step from the path's window).

    Parameters
    ----------
    windows : ndarray (P, W, N)
    rngs : sequence of numpy.random.Generator, length P
    params_for : callable ``windows -> (mu, W, sigma)``
        The generator's per-window parameters (fixed ones broadcast in train mode).
    nu : ndarray (N,)
        Degrees of freedom of the Student-T noise.
    n_factors : int
    rolling : bool
        False in train mode (fixed parameters, the window is not updated).
    """

    def __init__(
        self,
        windows: np.ndarray,
        rngs: Sequence[np.random.Generator],
        params_for: ParamsFn,
        nu: np.ndarray,
        n_factors: int,
        *,
        rolling: bool,
    ) -> None:
        k, n = n_factors, windows.shape[2]
        streams = PathStreams(rngs, lambda g, b: (g.standard_normal((b, k)), g.standard_t(nu, size=(b, n))))
        super().__init__(windows, streams, params_for, rolling=rolling)
        self._nu = nu

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        mu, W, sigma = self.params()
        nu = self._nu
        cov = np.matmul(W, W.transpose(0, 2, 1))
        cov[:, np.arange(self.n_assets), np.arange(self.n_assets)] += sigma**2 * nu / (nu - 2)
        return mu.copy(), cov

    def step(self) -> np.ndarray:
        mu, W, sigma = self.params()
        z, t = self._streams.next()
        return self.advance(mu + rowwise_matvec(W, z) + sigma * t)

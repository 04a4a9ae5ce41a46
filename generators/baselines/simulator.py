"""The path simulator shared by the rolling-window baselines (Gaussian, Ledoit-Wolf, PPCA).

Each path keeps its trailing window of returns in a ring buffer; the model's parameters
are estimated from every path's window (batched), a step draws the next day from them, and
the drawn day replaces the oldest row of the window, so the next step re-estimates.

Shapes: ``P`` paths, ``W`` window days, ``N`` assets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from factorgym.generators.base import PathSimulator
from factorgym.generators.baselines.common import (
    PathStreams,
    as_windows,
    check_reset,
    clip_simulated,
)

__all__ = ["RollingWindowSimulator"]


class RollingWindowSimulator(PathSimulator):
    """Paths whose parameters are re-estimated each day from their own trailing window.

    Subclasses implement :meth:`step` with :meth:`params` (the estimate for the current
    windows) and :meth:`advance` (clip the drawn day, append it, invalidate the estimate).

    Parameters
    ----------
    windows : ndarray (P, W, N)
        Starting windows, owned (and overwritten) by the simulator; estimators must ignore
        the row order, since the ring's oldest row sits at the write position.
    streams : PathStreams
        One random stream per path.
    estimate : callable ``(windows (P, W, N)) -> parameters``
        Batched estimator; its result is cached until the windows change.
    rolling : bool
        False for fixed parameters: drawn days are not appended (the estimate is kept).
    """

    def __init__(
        self,
        windows: np.ndarray,
        streams: PathStreams,
        estimate: Callable[[np.ndarray], Any],
        *,
        rolling: bool = True,
    ) -> None:
        self._X = windows
        self._pos = 0
        self._streams = streams
        self._estimate = estimate
        self._rolling = rolling
        self._params: Any = None
        #: Number of simulated cells clipped into [-0.99, 1.0] (expected 0).
        self.n_clipped = 0

    @property
    def n_paths(self) -> int:
        return int(self._X.shape[0])

    @property
    def n_assets(self) -> int:
        return int(self._X.shape[2])

    def params(self) -> Any:
        """The estimate for the current windows (computed once per step)."""
        if self._params is None:
            self._params = self._estimate(self._X)
        return self._params

    def advance(self, r: np.ndarray) -> np.ndarray:
        """Clip the drawn day ``r`` ``(P, N)``, append it to every window; returns it clipped."""
        r, bad = clip_simulated(r)
        self.n_clipped += bad
        if self._rolling:
            self._X[:, self._pos] = r
            self._pos = (self._pos + 1) % self._X.shape[1]
            self._params = None
        return r

    def reset_paths(self, idx: np.ndarray, windows: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        idx = check_reset(idx, windows, rngs, self.n_paths)
        # the ring's oldest row sits at the write position
        self._X[idx] = np.roll(as_windows(windows, self._X.shape[1], self.n_assets), self._pos, axis=1)
        self._streams.reset(idx, rngs)
        self._params = None

"""Small panels and a test generator for the environment tests.

:class:`GaussianARGenerator` is a complete :class:`~factorgym.generators.base.ReturnGenerator`:
``r_{t+1} = mu + phi * (r_t - mu) + L z`` with ``z ~ N(0, I)`` drawn from each path's own
stream, so a path's trajectory depends only on its window and its stream (the
``PathSimulator`` contract). ``phi != 0`` makes the conditioning window matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from factorgym.data import ReturnPanel, Split
from factorgym.generators.base import PathSimulator, Predictive, ReturnGenerator


def make_panel(T: int = 400, N: int = 5, seed: int = 0, missing: bool = False, vol: float = 0.015) -> ReturnPanel:  # noqa: N803
    """A random factor-structured panel; with ``missing``, a few assets list late / pause."""
    rng = np.random.default_rng(seed)
    beta = rng.normal(1.0, 0.3, N)
    mkt = rng.standard_t(5, T) * vol * 0.6
    r = 3e-4 + mkt[:, None] * beta + rng.standard_t(5, (T, N)) * vol * 0.8
    r = np.clip(r, -0.5, 0.5)
    mask = np.ones((T, N), dtype=bool)
    if missing:
        mask[: T // 3, 0] = False  # asset 0 lists late
        mask[T // 2 : T // 2 + 10, N - 1] = False  # asset N-1 pauses
    r = np.where(mask, r, np.nan)
    dates = pd.bdate_range("2001-01-01", periods=T)
    return ReturnPanel(dates, tuple(f"A{i}" for i in range(N)), r, mask, name=f"test(seed={seed})")


def with_future_changed(panel: ReturnPanel, t: int, seed: int = 99) -> ReturnPanel:
    """``panel`` with every row after ``t`` replaced by other (valid) returns."""
    rng = np.random.default_rng(seed)
    r = np.array(panel.returns)
    fut = rng.normal(0.0, 0.03, r[t + 1 :].shape)
    r[t + 1 :] = np.where(panel.mask[t + 1 :], fut, np.nan)
    return panel.with_returns(r)


class _GaussianPredictive(Predictive):
    has_closed_form = True

    def __init__(self, mean: np.ndarray, cov: np.ndarray) -> None:
        self._mean, self._cov = mean, cov
        self._chol = np.linalg.cholesky(cov)

    @property
    def n_assets(self) -> int:
        return self._mean.shape[0]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self._mean + rng.standard_normal((n, self.n_assets)) @ self._chol.T

    def mean(self) -> np.ndarray:
        return self._mean.copy()

    def cov(self) -> np.ndarray:
        return self._cov.copy()

    def marginal_cdf(self, r: np.ndarray) -> np.ndarray:
        return stats.norm.cdf(r, self._mean, np.sqrt(np.diag(self._cov)))

    def marginal_ppf(self, q: np.ndarray) -> np.ndarray:
        return stats.norm.ppf(np.asarray(q)[:, None], self._mean, np.sqrt(np.diag(self._cov)))


class _GaussianARSimulator(PathSimulator):
    def __init__(self, gen: GaussianARGenerator, windows: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        self.gen = gen
        self.rngs = list(rngs)
        self.last = gen._last_rows(windows)

    @property
    def n_paths(self) -> int:
        return len(self.rngs)

    @property
    def n_assets(self) -> int:
        return self.gen.mu.shape[0]

    def step(self) -> np.ndarray:
        z = np.stack([rng.standard_normal(self.n_assets) for rng in self.rngs])
        # elementwise products and row sums: a path's result does not depend on the batch size
        shock = (z[:, None, :] * self.gen.chol[None]).sum(axis=-1)
        r = self.gen.mu + self.gen.phi * (self.last - self.gen.mu) + shock
        self.last = r
        return r

    def reset_paths(self, idx: np.ndarray, windows: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        idx = np.asarray(idx)
        self.last[idx] = self.gen._last_rows(windows)
        for j, p in enumerate(idx.tolist()):
            self.rngs[p] = rngs[j]

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        mean = self.gen.mu + self.gen.phi * (self.last - self.gen.mu)
        return mean, np.broadcast_to(self.gen.cov, (self.n_paths, *self.gen.cov.shape)).copy()


class GaussianARGenerator(ReturnGenerator):
    """Gaussian AR(1) cross-section: the environment tests' generator."""

    kind = "test_gaussian_ar"

    def __init__(self, phi: float = 0.05, history: int = 10, vol_scale: float = 1.0) -> None:
        self.phi = float(phi)
        self.history = int(history)
        self.vol_scale = float(vol_scale)

    @property
    def min_history(self) -> int:
        return self.history

    def fit(self, panel: ReturnPanel, split: Split | None = None, *, out_dir: Any = None, progress: bool = True, rng: Any = None) -> GaussianARGenerator:
        part = panel if split is None else split.part(panel, "train")
        r = part.filled(0.0)
        self.assets_ = tuple(panel.assets)
        self.mu = r.mean(axis=0)
        self.cov = np.cov(r, rowvar=False) * self.vol_scale**2 + 1e-10 * np.eye(panel.N)
        self.chol = np.linalg.cholesky(self.cov)
        return self

    def _last_rows(self, windows: np.ndarray) -> np.ndarray:
        w = np.asarray(windows, dtype=np.float64)
        if w.ndim == 2:
            w = w[None]
        if w.shape[-2] < self.min_history:
            raise ValueError(f"window of {w.shape[-2]} days is shorter than min_history {self.min_history}")
        last = w[:, -1, :]
        return np.where(np.isnan(last), self.mu, last)

    def predict_window(self, window: np.ndarray) -> Predictive:
        last = self._last_rows(window)[0]
        return _GaussianPredictive(self.mu + self.phi * (last - self.mu), self.cov)

    def simulator_window(self, window: np.ndarray, rngs: Sequence[np.random.Generator]) -> PathSimulator:
        w = np.asarray(window, dtype=np.float64)
        if w.ndim == 2:
            w = np.broadcast_to(w, (len(rngs), *w.shape))
        return _GaussianARSimulator(self, w, rngs)

    def save(self, path: str | Path) -> None:
        np.savez(path, mu=self.mu, cov=self.cov, phi=self.phi, history=self.history, assets=np.array(self.assets_))

    @classmethod
    def load(cls, path: str | Path) -> GaussianARGenerator:
        d = np.load(path)
        g = cls(float(d["phi"]), int(d["history"]))
        g.assets_ = tuple(str(a) for a in d["assets"])
        g.mu, g.cov = d["mu"], d["cov"]
        g.chol = np.linalg.cholesky(g.cov)
        return g


def fitted_generator(panel: ReturnPanel, **kwargs: Any) -> GaussianARGenerator:
    """A :class:`GaussianARGenerator` fitted on the whole of ``panel``."""
    return GaussianARGenerator(**kwargs).fit(panel)


def random_policy_actions(space: Any, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` actions sampled from a seeded copy of ``space``."""
    space.seed(seed)
    return [space.sample() for _ in range(n)]

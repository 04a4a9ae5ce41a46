"""Test-only generators: a tiny Gaussian :class:`ReturnGenerator` with closed forms.

``GaussianTestGenerator`` predicts ``N(mean_t, var_scale * Sigma)`` for the next day, where
``Sigma`` and ``mu`` are the train-period covariance / mean and

    mean_t = (1 - mean_weight) * mu + mean_weight * nanmean(last ``lookback`` rows of the window)

With ``mean_weight = 0`` (default) it is an i.i.d. Gaussian model that ignores the window;
with ``mean_weight > 0`` predictions depend on the history (so look-ahead tests can fail).
``var_scale`` mis-specifies the variance on purpose. Paths are simulated with one RNG
stream per path, the history window rolling forward on the path's own samples.

Import in tests as ``from helpers_generators import GaussianTestGenerator`` (``tests/`` is on
``sys.path`` under pytest's default import mode). The class is not registered in the
generator registry (no global side effect).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
from scipy import stats
from scipy.linalg import solve_triangular

from factorgym.artifacts import read_artifact, write_artifact
from factorgym.data import ReturnPanel, Split
from factorgym.errors import DataValidationError
from factorgym.features import FeatureConfig, MarketStateConfig
from factorgym.generators.base import PathSimulator, Predictive, ReturnGenerator

if TYPE_CHECKING:
    from factorgym.generators.neuralfactors.config import NeuralFactorsConfig

__all__ = [
    "TINY_NF_FEATURES",
    "TINY_NF_MARKET",
    "GaussianPredictive",
    "GaussianTestGenerator",
    "gaussian_panel",
    "small_nf_config",
    "tiny_nf_config",
]

_LOG_2PI = float(np.log(2.0 * np.pi))


class GaussianPredictive(Predictive):
    """``N(mean, cov)`` over ``N`` assets, with exact closed forms.

    Parameters
    ----------
    mean : ndarray of shape (N,)
    cov : ndarray of shape (N, N), symmetric positive definite
    chol : ndarray of shape (N, N), optional
        Lower Cholesky factor of ``cov`` (computed when omitted).
    """

    has_closed_form: ClassVar[bool] = True
    has_log_prob: ClassVar[bool] = True

    def __init__(self, mean: np.ndarray, cov: np.ndarray, chol: np.ndarray | None = None) -> None:
        self._mean = np.asarray(mean, dtype=np.float64)
        self._cov = np.asarray(cov, dtype=np.float64)
        self._chol = np.linalg.cholesky(self._cov) if chol is None else chol
        self._sd = np.sqrt(np.diag(self._cov))

    @property
    def n_assets(self) -> int:
        return int(self._mean.shape[0])

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self._mean + rng.standard_normal((n, self.n_assets)) @ self._chol.T

    def mean(self) -> np.ndarray:
        return self._mean.copy()

    def cov(self) -> np.ndarray:
        return self._cov.copy()

    def log_prob(self, r: np.ndarray) -> np.ndarray:
        d = np.asarray(r, dtype=np.float64) - self._mean
        flat = d.reshape(-1, self.n_assets)
        z = solve_triangular(self._chol, flat.T, lower=True)
        logdet = 2.0 * np.sum(np.log(np.diag(self._chol)))
        lp = -0.5 * (np.sum(z * z, axis=0) + logdet + self.n_assets * _LOG_2PI)
        return lp.reshape(d.shape[:-1])

    def marginal_log_prob(self, r: np.ndarray) -> np.ndarray:
        return stats.norm.logpdf(np.asarray(r, dtype=np.float64), self._mean, self._sd)

    def marginal_cdf(self, r: np.ndarray) -> np.ndarray:
        return stats.norm.cdf(np.asarray(r, dtype=np.float64), self._mean, self._sd)

    def marginal_ppf(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        return self._mean + stats.norm.ppf(q)[:, None] * self._sd


class GaussianTestGenerator(ReturnGenerator):
    """Gaussian next-day model fitted on the train rows (see the module docstring).

    Parameters
    ----------
    var_scale : float
        Multiplies the fitted covariance (1 = correctly specified for Gaussian data).
    lookback : int
        ``min_history``, and the rows averaged for the window-dependent mean.
    mean_weight : float
        Weight of the recent window mean in the predicted mean (0 = i.i.d. model).
    """

    kind: ClassVar[str] = "test_gaussian"

    def __init__(self, var_scale: float = 1.0, lookback: int = 1, mean_weight: float = 0.0) -> None:
        self.var_scale = float(var_scale)
        self.lookback = int(lookback)
        self.mean_weight = float(mean_weight)

    @property
    def min_history(self) -> int:
        return self.lookback

    def get_params(self) -> dict[str, float | int]:
        return {"var_scale": self.var_scale, "lookback": self.lookback, "mean_weight": self.mean_weight}

    # ------------------------------------------------------------------ fitting
    def _set(self, mean: np.ndarray, cov: np.ndarray, assets: Sequence[str]) -> GaussianTestGenerator:
        self.mean_ = np.asarray(mean, dtype=np.float64)
        self.cov_ = np.asarray(cov, dtype=np.float64) * self.var_scale
        self.chol_ = np.linalg.cholesky(self.cov_)
        self.assets_ = tuple(assets)
        return self

    def fit(
        self,
        panel: ReturnPanel,
        split: Split,
        *,
        out_dir: str | Path | None = None,
        progress: bool = True,
        rng: np.random.Generator | None = None,
    ) -> GaussianTestGenerator:
        """Sample mean and covariance of the train rows where every asset is available."""
        train = split.part(panel, "train")
        x = train.returns[train.mask.all(axis=1)]
        if x.shape[0] <= panel.N:
            raise DataValidationError(f"{x.shape[0]} complete train rows are too few for {panel.N} assets")
        return self._set(x.mean(axis=0), np.cov(x, rowvar=False), panel.assets)

    @classmethod
    def from_moments(
        cls, mean: np.ndarray, cov: np.ndarray, assets: Sequence[str], **params: float
    ) -> GaussianTestGenerator:
        """A generator with given (true) moments, no fitting (``var_scale`` still applies)."""
        return cls(**params)._set(mean, cov, assets)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ prediction
    def _means(self, windows: np.ndarray) -> np.ndarray:
        """Predicted means ``(D, N)`` for windows ``(D, W, N)``."""
        base = np.broadcast_to(self.mean_, (windows.shape[0], self.mean_.shape[0]))
        if self.mean_weight == 0.0:
            return base.copy()
        recent = windows[:, -self.lookback :]
        n = np.sum(~np.isnan(recent), axis=1)
        s = np.nansum(recent, axis=1)
        m = np.where(n > 0, s / np.maximum(n, 1), base)
        return (1.0 - self.mean_weight) * base + self.mean_weight * m

    def _check_windows(self, windows: np.ndarray) -> np.ndarray:
        w = np.asarray(windows, dtype=np.float64)
        if w.ndim != 3 or w.shape[2] != len(self.assets_) or w.shape[1] < self.lookback:
            raise DataValidationError(
                f"windows must be (D, W>={self.lookback}, {len(self.assets_)}), got {w.shape}"
            )
        return w

    def predict_window(self, window: np.ndarray) -> Predictive:
        return self.predict_windows(np.asarray(window)[None])[0]

    def predict_windows(self, windows: np.ndarray) -> list[Predictive]:
        means = self._means(self._check_windows(windows))
        return [GaussianPredictive(m, self.cov_, self.chol_) for m in means]

    def simulator_window(
        self, window: np.ndarray, rngs: Sequence[np.random.Generator]
    ) -> _GaussianSimulator:
        w = np.asarray(window, dtype=np.float64)
        if w.ndim == 2:
            w = np.broadcast_to(w, (len(rngs), *w.shape))
        return _GaussianSimulator(self, self._check_windows(w), rngs)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        write_artifact(path, self.artifact_meta(), arrays={"mean": self.mean_, "cov": self.cov_ / self.var_scale})

    @classmethod
    def load(cls, path: str | Path) -> GaussianTestGenerator:
        meta, arrays, _ = read_artifact(path, expect_kind=cls.kind)
        return cls(**meta["config"])._set(arrays["mean"], arrays["cov"], meta["assets"])


class _GaussianSimulator(PathSimulator):
    """Paths of :class:`GaussianTestGenerator`; path ``p`` draws only from ``rngs[p]``."""

    def __init__(
        self, gen: GaussianTestGenerator, windows: np.ndarray, rngs: Sequence[np.random.Generator]
    ) -> None:
        if windows.shape[0] != len(rngs):
            raise DataValidationError(f"{windows.shape[0]} windows for {len(rngs)} random streams")
        self._gen = gen
        self._hist = np.array(windows[:, -gen.lookback :], dtype=np.float64)
        self._rngs = list(rngs)

    @property
    def n_paths(self) -> int:
        return len(self._rngs)

    @property
    def n_assets(self) -> int:
        return int(self._hist.shape[2])

    def step(self) -> np.ndarray:
        means = self._gen._means(self._hist)
        z = np.stack([g.standard_normal(self.n_assets) for g in self._rngs])
        out = means + z @ self._gen.chol_.T
        self._hist = np.concatenate([self._hist[:, 1:], out[:, None]], axis=1)
        return out

    def reset_paths(
        self, idx: np.ndarray, windows: np.ndarray, rngs: Sequence[np.random.Generator]
    ) -> None:
        idx = np.asarray(idx, dtype=np.int64)
        w = self._gen._check_windows(windows)
        if len(idx) != len(rngs) or len(idx) != w.shape[0]:
            raise DataValidationError("idx, windows and rngs must have the same length")
        self._hist[idx] = w[:, -self._gen.lookback :]
        for i, g in zip(idx, rngs, strict=True):
            self._rngs[int(i)] = g

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        means = self._gen._means(self._hist)
        return means, np.broadcast_to(self._gen.cov_, (self.n_paths, *self._gen.cov_.shape)).copy()


def gaussian_panel(
    T: int = 600,  # noqa: N803
    N: int = 4,  # noqa: N803
    seed: int = 0,
    start: str = "2010-01-01",
) -> tuple[ReturnPanel, np.ndarray, np.ndarray]:
    """An i.i.d. Gaussian panel with random correlated covariance (daily vols 1-2%).

    Returns
    -------
    panel : ReturnPanel
        ``T`` business days from ``start``.
    mean : ndarray of shape (N,)
    cov : ndarray of shape (N, N)
    """
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(N, N))
    corr = a @ a.T + N * np.eye(N)
    d = 1.0 / np.sqrt(np.diag(corr))
    vol = rng.uniform(0.01, 0.02, N)
    cov = (corr * d[:, None] * d[None, :]) * vol[:, None] * vol[None, :]
    mean = rng.normal(3e-4, 2e-4, N)
    r = mean + rng.standard_normal((T, N)) @ np.linalg.cholesky(cov).T
    dates = pd.bdate_range(start, periods=T)
    assets = tuple(f"A{i}" for i in range(N))
    panel = ReturnPanel(dates, assets, r, np.ones((T, N), dtype=bool), name=f"gaussian(seed={seed})")
    return panel, mean, cov


# ----------------------------------------------------------------------------- small NeuralFactors
#: Short feature and market-state windows for panels of a few hundred days.
TINY_NF_FEATURES = FeatureConfig(vol_windows=(3, 6), mom_windows=(5,))
TINY_NF_MARKET = MarketStateConfig(vol_windows=(3, 8), drawdown_window=10, dispersion_windows=(4,))


def tiny_nf_config(**kw: object) -> NeuralFactorsConfig:
    """A NeuralFactors configuration that fits in seconds (hidden 8, 2 factors, 12 steps),
    with ``kw`` overriding any field."""
    from factorgym.generators.neuralfactors.config import NeuralFactorsConfig

    base: dict[str, object] = dict(
        lookback=4, hidden=8, n_heads=2, n_kv_heads=1, mlp_ratio=2, n_factors=2, dropout=0.0,
        features=TINY_NF_FEATURES, market_state=TINY_NF_MARKET, sector_embedding_dim=2,
        days_per_block=4, blocks_per_batch=2, k=4, val_k=4, max_steps=12, val_every=6,
        warmup_steps=2, checkpoint_every=5, lr=3e-3,
    )  # fmt: skip
    return NeuralFactorsConfig(**{**base, **kw})  # type: ignore[arg-type]


def small_nf_config(**kw: object) -> NeuralFactorsConfig:
    """A larger quick NeuralFactors configuration (hidden 16, 4 heads, 3 factors, an asset
    embedding, the default market state) for the speed-path and scale tests."""
    from factorgym.generators.neuralfactors.config import NeuralFactorsConfig

    base: dict[str, object] = dict(
        lookback=5, hidden=16, n_heads=4, n_kv_heads=1, mlp_ratio=2, n_factors=3, dropout=0.0,
        features=TINY_NF_FEATURES, sector_embedding_dim=2, asset_embedding_dim=2, days_per_block=4,
        blocks_per_batch=2, k=4, val_k=4, max_steps=8, val_every=4, warmup_steps=2, checkpoint_every=100,
    )  # fmt: skip
    return NeuralFactorsConfig(**{**base, **kw})  # type: ignore[arg-type]

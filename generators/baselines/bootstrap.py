"""Stationary block bootstrap of historical cross-sections: the "replay" simulator baseline.

Politis & Romano (1994): a path replays whole historical days (so the cross-asset
dependence of each day is kept), in blocks of consecutive days whose lengths are geometric
with mean ``mean_block``: each day the path moves on to the next pool day with probability
``1 - 1/mean_block`` and jumps to a uniformly drawn pool day otherwise (the pool is read
circularly, as in the original scheme).

The pool is the **train** history: every train day on which all the *established* assets
are available (days with an absent one are dropped, since a replayed day must give every
asset a return). An asset is established when it traded on at least half the train days
(``MIN_COVERAGE``); requiring the others too would cut the pool to their few days. An asset
that is not established (it lists late, e.g. in the validation period, or trades rarely;
``pooled_assets_`` names them) keeps its own return on the pool days it traded, and on the
others takes the return of a "donor": an established asset drawn uniformly at random (with
the fit's ``rng``) for that day and asset. A replayed day is thus a real cross-section of
that day, the filled asset behaving like a typical asset of it (its variance and its
correlation with the market), never a zero. With every asset established the pool is
exactly the complete train days.

The pool does not grow with the window at prediction time. When the prediction day is
known (:meth:`BlockBootstrapGenerator.predict` / ``simulator``, or ``as_of=``), the pool is
cut to the train days on or before it, so it never holds a day after the prediction day.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from factorgym.artifacts import write_artifact
from factorgym.data import ReturnPanel, Split
from factorgym.errors import CheckpointError, DataValidationError
from factorgym.generators.base import (
    PathSimulator,
    Predictive,
    ReturnGenerator,
    artifact_errors,
    check_context,
    register_generator,
)
from factorgym.generators.baselines.common import (
    PathStreams,
    as_window,
    as_windows,
    check_fitted,
    check_reset,
    check_shape,
    load_checked,
    path_windows,
    split_rows,
)

__all__ = ["EmpiricalPredictive", "BlockBootstrapGenerator"]

#: Fraction of the train days an asset must trade on to be required on every pool day.
MIN_COVERAGE = 0.5


class EmpiricalPredictive(Predictive):
    """The empirical distribution of ``M`` historical cross-sections (uniform weights).

    Exact for that discrete distribution: ``mean`` and ``cov`` (population, ``1/M``), the
    marginal CDF (fraction of days ``<= r``), ``marginal_ppf`` (the inverse of that CDF, i.e.
    ``numpy.quantile(..., method="inverted_cdf")``). There is no density (``log_prob``).

    Parameters
    ----------
    rows : ndarray (M, N)
        The days it draws from (complete rows).
    """

    has_closed_form: ClassVar[bool] = True
    has_log_prob: ClassVar[bool] = False

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = np.asarray(rows, dtype=np.float64)
        if self.rows.ndim != 2 or self.rows.shape[0] == 0:
            raise DataValidationError(f"need a non-empty (M, N) pool; got {self.rows.shape}")
        self._sorted: np.ndarray | None = None

    @property
    def n_assets(self) -> int:
        return int(self.rows.shape[1])

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` pool days drawn uniformly with replacement, ``(n, N)``."""
        return self.rows[rng.integers(self.rows.shape[0], size=int(n))]

    def mean(self) -> np.ndarray:
        return self.rows.mean(axis=0)

    def cov(self) -> np.ndarray:
        return np.cov(self.rows, rowvar=False, ddof=0).reshape(self.n_assets, self.n_assets)

    def marginal_cdf(self, r: np.ndarray) -> np.ndarray:
        if self._sorted is None:
            self._sorted = np.sort(self.rows, axis=0)
        r = np.asarray(r, dtype=np.float64)
        flat = r.reshape(-1, self.n_assets)
        out = np.empty(flat.shape)
        for j in range(self.n_assets):
            out[:, j] = np.searchsorted(self._sorted[:, j], flat[:, j], side="right") / self.rows.shape[0]
        out[~np.isfinite(flat)] = np.nan
        return out.reshape(r.shape)

    def marginal_ppf(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64).reshape(-1)
        return np.quantile(self.rows, q, axis=0, method="inverted_cdf")


class _BootstrapSimulator(PathSimulator):
    """Stationary-bootstrap paths over a fixed pool; one stream per path."""

    def __init__(self, pool: np.ndarray, mean_block: float, rngs: Sequence[np.random.Generator]) -> None:
        self._pool = pool
        self._p = 1.0 / mean_block
        M = pool.shape[0]
        self._streams = PathStreams(rngs, lambda g, b: (g.random(b), g.integers(M, size=b)))
        self._idx = np.full(len(rngs), -1, dtype=np.int64)  # -1: no block started yet
        self._mean = pool.mean(axis=0)
        self._cov = np.cov(pool, rowvar=False, ddof=0).reshape(pool.shape[1], pool.shape[1])

    @property
    def n_paths(self) -> int:
        return int(self._idx.shape[0])

    @property
    def n_assets(self) -> int:
        return int(self._pool.shape[1])

    @property
    def positions(self) -> np.ndarray:
        """Current pool row of every path ``(P,)`` (``-1`` before the first step)."""
        return self._idx.copy()

    def step(self) -> np.ndarray:
        u, start = self._streams.next()
        jump = (self._idx < 0) | (u < self._p)
        self._idx = np.where(jump, start, (self._idx + 1) % self._pool.shape[0])
        return self._pool[self._idx].copy()

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact next-step moments: the mixture of a jump (prob ``1/L``) and the next pool day."""
        P, N = self.n_paths, self.n_assets
        mean = np.empty((P, N))
        cov = np.empty((P, N, N))
        fresh = self._idx < 0
        mean[fresh], cov[fresh] = self._mean, self._cov
        go = ~fresh
        if go.any():
            p = self._p
            x = self._pool[(self._idx[go] + 1) % self._pool.shape[0]]
            m = p * self._mean + (1 - p) * x
            d0 = self._mean - m
            d1 = x - m
            cov[go] = (
                p * (self._cov + d0[:, :, None] * d0[:, None, :]) + (1 - p) * d1[:, :, None] * d1[:, None, :]
            )
            mean[go] = m
        return mean, cov

    def reset_paths(self, idx: np.ndarray, windows: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        idx = check_reset(idx, windows, rngs, self.n_paths)
        self._idx[idx] = -1
        self._streams.reset(idx, rngs)


@register_generator
class BlockBootstrapGenerator(ReturnGenerator):
    """Stationary block bootstrap of whole historical days ("bootstrap").

    Parameters
    ----------
    mean_block : float
        Mean block length in days (``>= 1``; 1 is the i.i.d. bootstrap of days).

    Attributes
    ----------
    pool_ : ndarray (M, N)
        The train days with every established asset available (the others filled from
        donors; see the module docstring).
    pool_dates_ : pandas.DatetimeIndex (M,)
    pooled_assets_ : tuple of str
        The assets that are not established (filled from donors where absent).
    """

    kind: ClassVar[str] = "bootstrap"

    def __init__(self, mean_block: float = 10.0) -> None:
        self.mean_block = mean_block

    def get_params(self) -> dict[str, Any]:
        return {"mean_block": self.mean_block}

    def _check_params(self) -> None:
        if not np.isfinite(self.mean_block) or self.mean_block < 1:
            raise DataValidationError(f"mean_block must be >= 1; got {self.mean_block!r}")

    @property
    def min_history(self) -> int:
        return 1

    def fit(
        self,
        panel: ReturnPanel,
        split: Split,
        *,
        out_dir: str | Path | None = None,
        progress: bool = True,
        rng: np.random.Generator | None = None,
    ) -> BlockBootstrapGenerator:
        """Store the train days as the pool (nothing else is estimated).

        ``rng`` draws the donors of the assets that are not established (default seed 0);
        it is not used when every asset is established.
        """
        self._check_params()
        (t0, t1), _ = split_rows(panel, split)
        M = np.asarray(panel.mask)[t0:t1]
        est = M.mean(axis=0) >= MIN_COVERAGE
        if not est.any():
            raise DataValidationError(
                f"no asset of {panel.name} traded on at least {MIN_COVERAGE:.0%} of the {t1 - t0} train days"
            )
        full = M[:, est].all(axis=1)
        if full.sum() < 2:
            raise DataValidationError(
                "the train rows have fewer than 2 days with every established asset available"
            )
        pool = np.asarray(panel.returns)[t0:t1][full].copy()
        if not est.all():
            rng = np.random.default_rng(0) if rng is None else rng
            donors = np.flatnonzero(est)[rng.integers(est.sum(), size=pool.shape)]
            take = ~np.isfinite(pool)  # only non-established assets can be absent on a pool day
            rows = np.nonzero(take)[0]
            pool[take] = pool[rows, donors[take]]
        self.assets_ = tuple(panel.assets)
        self.n_assets_ = panel.N
        self.pool_ = pool
        self.pool_dates_ = panel.dates[t0:t1][full]
        self.pooled_assets_ = tuple(a for a, e in zip(panel.assets, est, strict=True) if not e)
        return self

    def _pool(self, as_of: str | pd.Timestamp | None) -> np.ndarray:
        if as_of is None:
            return self.pool_
        n = int(self.pool_dates_.searchsorted(pd.Timestamp(as_of), side="right"))
        if n < 1:
            raise DataValidationError(
                f"no pool day on or before {pd.Timestamp(as_of).date()} (the pool starts {self.pool_dates_[0].date()})"
            )
        return self.pool_[:n]

    def predict_window(self, window: np.ndarray, *, as_of: str | pd.Timestamp | None = None) -> EmpiricalPredictive:
        """Next day: a uniformly drawn pool day (a new block starts), whatever the window.

        ``as_of`` (the prediction day's date) cuts the pool to days on or before it; without
        it the whole train pool is used, which is correct for windows ending after train.
        """
        check_fitted(self, "pool_")
        as_window(window, 1, self.n_assets_)
        return EmpiricalPredictive(self._pool(as_of))

    def predict_windows(self, windows: np.ndarray, *, as_of: str | pd.Timestamp | None = None) -> list[Predictive]:
        """Batched :meth:`predict_window`: the same pool distribution for every window."""
        check_fitted(self, "pool_")
        n = as_windows(windows, 1, self.n_assets_).shape[0]
        pred = EmpiricalPredictive(self._pool(as_of))
        return [pred for _ in range(n)]

    def simulator_window(
        self, window: np.ndarray, rngs: Sequence[np.random.Generator], *, as_of: str | pd.Timestamp | None = None
    ) -> PathSimulator:
        """Stationary-bootstrap paths (each starts a fresh block) over the pool cut at ``as_of``."""
        check_fitted(self, "pool_")
        path_windows(window, len(rngs), 1, self.n_assets_)
        return _BootstrapSimulator(self._pool(as_of), float(self.mean_block), rngs)

    def predict(self, panel: ReturnPanel, t: int) -> Predictive:
        """As the base method, with the pool cut at ``panel.dates[t]``."""
        check_context(panel, t, self.min_history, self.assets_)
        return self.predict_window(np.asarray(panel.returns[t : t + 1]), as_of=panel.dates[t])

    def simulator(self, panel: ReturnPanel, t: int, n_paths: int, rng: np.random.Generator) -> PathSimulator:
        """As the base method, with the pool cut at ``panel.dates[t]``."""
        check_context(panel, t, self.min_history, self.assets_)
        return self.simulator_window(np.asarray(panel.returns[t : t + 1]), rng.spawn(n_paths), as_of=panel.dates[t])

    def save(self, path: str | Path) -> None:
        """Write an artifact: kind, config, the pool and its dates, assets."""
        check_fitted(self, "pool_")
        arrays = {"pool": self.pool_, "pool_dates": self.pool_dates_.asi8}
        write_artifact(path, self.artifact_meta(pooled_assets=list(self.pooled_assets_)), arrays)

    @classmethod
    def load(cls, path: str | Path) -> BlockBootstrapGenerator:
        meta, arrays = load_checked(path, cls.kind, ["pool", "pool_dates"], ["config", "assets"])
        with artifact_errors(path, cls.kind):
            gen = cls(**meta["config"])
            gen._check_params()
            assets = tuple(str(a) for a in meta["assets"])
            gen.assets_, gen.n_assets_ = assets, len(assets)
            gen.pool_ = check_shape(path, "pool", arrays["pool"], (arrays["pool"].shape[0], len(assets)))
            dates = check_shape(path, "pool_dates", arrays["pool_dates"], (gen.pool_.shape[0],))
            gen.pool_dates_ = pd.DatetimeIndex(dates.astype("datetime64[ns]"))
            gen.pooled_assets_ = tuple(str(a) for a in meta.get("pooled_assets", []))
            if gen.pool_.shape[0] < 2:
                raise CheckpointError(f"{path}: empty bootstrap pool")
        return gen

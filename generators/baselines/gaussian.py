"""Rolling-window multivariate Gaussian generators: sample covariance and Ledoit-Wolf.

Each day's predictive is ``N(mu_t, C_t)`` with ``mu_t`` and ``C_t`` estimated from the
trailing ``window`` days only; a simulated path re-estimates them every step from its own
rolling window, which takes in the path's simulated days.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy import stats
from scipy.linalg import solve_triangular

from factorgym.artifacts import write_artifact
from factorgym.data import ReturnPanel, Split
from factorgym.errors import DataValidationError
from factorgym.generators.base import (
    PathSimulator,
    Predictive,
    ReturnGenerator,
    artifact_errors,
    register_generator,
)
from factorgym.generators.baselines.common import (
    PathStreams,
    as_window,
    as_windows,
    availability_groups,
    check_fitted,
    check_shape,
    flat_returns,
    load_checked,
    path_windows,
    per_asset_nll,
    progress_printer,
    require_val_rows,
    rowwise_matvec,
    safe_cholesky,
    split_rows,
    window_moments,
    windows_before,
)
from factorgym.generators.baselines.pooling import pooled_train_var
from factorgym.generators.baselines.simulator import RollingWindowSimulator

__all__ = ["GaussianPredictive", "GaussianGenerator", "LedoitWolfGenerator"]

_LOG_2PI = float(np.log(2.0 * np.pi))


class GaussianPredictive(Predictive):
    """A multivariate normal ``N(mean, cov)`` over ``N`` assets; everything exact.

    Unavailable assets: :meth:`log_prob` of a row with ``NaN`` entries is the log density of
    the **marginal** distribution of the available assets (the sub-vector of ``mean`` and
    sub-matrix of ``cov``), i.e. absent assets are integrated out; an all-``NaN`` row has log
    density 0. ``marginal_*`` return ``NaN`` where ``r`` is ``NaN``.

    Parameters
    ----------
    mean : ndarray (N,)
    cov : ndarray (N, N)
        Symmetric positive definite.
    """

    has_closed_form: ClassVar[bool] = True
    has_log_prob: ClassVar[bool] = True

    def __init__(self, mean: np.ndarray, cov: np.ndarray, chol: np.ndarray | None = None) -> None:
        self._mean = np.asarray(mean, dtype=np.float64)
        self._cov = np.asarray(cov, dtype=np.float64)
        n = self._mean.shape[0]
        if self._mean.ndim != 1 or self._cov.shape != (n, n):
            raise DataValidationError(f"mean {self._mean.shape} and cov {self._cov.shape} do not match")
        self._chol = chol
        self._sd = np.sqrt(np.diag(self._cov))

    @property
    def n_assets(self) -> int:
        return int(self._mean.shape[0])

    @property
    def chol(self) -> np.ndarray:
        """Lower Cholesky factor of the covariance, ``(N, N)``."""
        if self._chol is None:
            self._chol = safe_cholesky(self._cov)
        return self._chol

    def mean(self) -> np.ndarray:
        return self._mean.copy()

    def cov(self) -> np.ndarray:
        return self._cov.copy()

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws ``(n, N)``: ``mean + L z`` with ``z`` standard normal from ``rng``."""
        z = rng.standard_normal((int(n), self.n_assets))
        return self._mean + z @ self.chol.T

    def log_prob(self, r: np.ndarray) -> np.ndarray:
        """Exact joint log density (nats) of ``r`` ``(..., N)`` -> ``(...)``.

        ``NaN`` entries are marginalised out (see the class docstring).
        """
        r = np.asarray(r, dtype=np.float64)
        flat = flat_returns(r, self.n_assets)
        out = np.empty(flat.shape[0])
        for rows, pat in availability_groups(flat):
            if not pat.any():
                out[rows] = 0.0
                continue
            if pat.all():
                L = self.chol
            else:
                L = safe_cholesky(self._cov[np.ix_(pat, pat)])
            dev = flat[np.ix_(rows, pat)] - self._mean[pat]
            u = solve_triangular(L, dev.T, lower=True)
            out[rows] = (
                -0.5 * (u * u).sum(axis=0)
                - np.log(np.diag(L)).sum()
                - 0.5 * pat.sum() * _LOG_2PI
            )
        return out.reshape(r.shape[:-1])

    def marginal_log_prob(self, r: np.ndarray) -> np.ndarray:
        return stats.norm.logpdf(np.asarray(r, dtype=np.float64), self._mean, self._sd)

    def marginal_cdf(self, r: np.ndarray) -> np.ndarray:
        return stats.norm.cdf(np.asarray(r, dtype=np.float64), self._mean, self._sd)

    def marginal_ppf(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64).reshape(-1, 1)
        return stats.norm.ppf(q, self._mean, self._sd)


class _GaussianSimulator(RollingWindowSimulator):
    """Paths whose next day is ``N(mu, C)`` of each path's own trailing window."""

    def __init__(self, gen: GaussianGenerator, windows: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        n = gen.n_assets_
        streams = PathStreams(rngs, lambda g, b: (g.standard_normal((b, n)),))
        super().__init__(windows, streams, gen.moments_with_chol)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        mu, C, _ = self.params()
        return mu.copy(), C.copy()

    def step(self) -> np.ndarray:
        mu, _, L = self.params()
        (z,) = self._streams.next()
        return self.advance(mu + rowwise_matvec(L, z))


@register_generator
class GaussianGenerator(ReturnGenerator):
    """Multivariate normal next-day returns from a rolling window ("gaussian").

    ``r_{t+1} ~ N(mu_t, C_t)`` where ``C_t`` is the sample (or Ledoit-Wolf) covariance of the
    trailing ``window`` days and ``mu_t`` is zero or their sample mean. Nothing is fitted
    beyond the asset list and each asset's train variance; with ``window="auto"`` the window
    is chosen on the validation rows by mean joint NLL per asset-day.

    Absent and late-listing assets: every entry of ``C_t`` uses only the days on which its
    assets traded (an absent day is never a zero return). An asset with fewer than 2
    returns in the window (not listed yet, or delisted) gets mean 0, its train variance and
    the correlations of the window's "average asset"
    (:func:`~factorgym.generators.baselines.pooling.average_asset_corr`), until its own days
    enter the window. An asset with fewer than ``MIN_OWN_TRAIN_DAYS`` (20) train returns, one
    that lists during or after validation for instance, is accepted: its train variance is
    the mean train variance of the other assets (``pooled_assets_`` names them). Assets
    present in a window get exactly the estimate they would get without the absent ones.

    Parameters
    ----------
    cov : {"sample", "ledoit_wolf"}
        Covariance estimator (see :func:`~factorgym.generators.baselines.common.window_moments`
        for the treatment of unavailable cells).
    window : int or "auto"
        Trailing days used each day (``min_history``). ``"auto"`` picks from ``window_grid``.
    mean : {"zero", "sample"}
        Zero mean (the usual choice for daily returns) or the window's sample mean.
    window_grid : sequence of int
        Candidates for ``window="auto"``; with ``cov="sample"`` windows shorter than
        ``N + 2`` are skipped (singular covariance).

    Attributes
    ----------
    assets_ : tuple of str
    n_assets_ : int
    window_ : int
        The window in use.
    train_var_ : ndarray (N,)
        Own train variance, or the pooled one for the assets in ``pooled_assets_``.
    pooled_assets_ : tuple of str
        Assets with too little train history for their own train variance.
    validation_ : dict
        ``{window: mean validation NLL per asset-day}`` when chosen on validation.
    """

    kind: ClassVar[str] = "gaussian"

    def __init__(
        self,
        cov: str = "sample",
        window: int | str = 63,
        mean: str = "zero",
        window_grid: Sequence[int] = (21, 42, 63, 126, 252, 504),
    ) -> None:
        self.cov = cov
        self.window = window
        self.mean = mean
        self.window_grid = tuple(int(w) for w in window_grid)

    def get_params(self) -> dict[str, Any]:
        return {"cov": self.cov, "window": self.window, "mean": self.mean, "window_grid": list(self.window_grid)}

    def _check_params(self, n_assets: int) -> None:
        if self.cov not in ("sample", "ledoit_wolf"):
            raise DataValidationError(f"cov must be 'sample' or 'ledoit_wolf'; got {self.cov!r}")
        if self.mean not in ("zero", "sample"):
            raise DataValidationError(f"mean must be 'zero' or 'sample'; got {self.mean!r}")
        if self.window != "auto":
            if not isinstance(self.window, (int, np.integer)) or self.window < 2:
                raise DataValidationError(f"window must be an int >= 2 or 'auto'; got {self.window!r}")
            if self.cov == "sample" and self.window < n_assets + (self.mean == "sample"):
                raise DataValidationError(
                    f"a sample covariance of {self.window} days is singular for {n_assets} assets; "
                    "use a longer window or cov='ledoit_wolf'"
                )

    @property
    def min_history(self) -> int:
        check_fitted(self, "window_")
        return int(self.window_)

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        panel: ReturnPanel,
        split: Split,
        *,
        out_dir: str | Path | None = None,
        progress: bool = True,
        rng: np.random.Generator | None = None,
    ) -> GaussianGenerator:
        """Record the assets and train variances; choose the window on validation if "auto".

        ``out_dir`` and ``rng`` are unused (the fit is deterministic and fast).
        """
        self._check_params(panel.N)
        (t0, t1), val = split_rows(panel, split)
        R = np.asarray(panel.returns)
        train_var, pooled = pooled_train_var(R[t0:t1], panel.assets)
        self.assets_ = tuple(panel.assets)
        self.n_assets_ = panel.N
        self.train_var_ = train_var
        self.pooled_assets_ = tuple(a for a, p in zip(panel.assets, pooled, strict=True) if p)
        self.validation_: dict[int, float] = {}
        if self.window != "auto":
            self.window_ = int(self.window)
            return self
        require_val_rows(val, "the window")
        say = progress_printer(progress)
        days = np.arange(*val)
        grid = [w for w in self.window_grid if w <= val[0] and (self.cov != "sample" or w >= panel.N + 2)]
        if not grid:
            raise DataValidationError(f"no window in {self.window_grid} fits before the validation rows")
        for w in grid:
            mu, C = self._moments(windows_before(R, days, w))
            logp = _batched_mvn_logpdf(R[days], mu, C)
            self.validation_[w] = float(np.nanmean(per_asset_nll(logp, R[days])))
            say(f"{self.kind}: window {w}: validation NLL {self.validation_[w]:.4f}")
        self.window_ = int(min(self.validation_, key=self.validation_.__getitem__))
        return self

    # ------------------------------------------------------------------ prediction
    def _moments(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return window_moments(X, mean=self.mean, cov=self.cov, fallback_var=self.train_var_, absent="average")

    def moments_with_chol(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean ``(B, N)``, covariance ``(B, N, N)`` and its Cholesky factor of windows ``(B, W, N)``."""
        mu, C = self._moments(X)
        return mu, C, safe_cholesky(C)

    def predict_window(self, window: np.ndarray) -> GaussianPredictive:
        """``N(mu, C)`` of the day after ``window`` ``(W, N)`` (last ``window_`` rows used)."""
        check_fitted(self, "window_")
        w = as_window(window, self.window_, self.n_assets_)
        mu, C = self._moments(w[None])
        return GaussianPredictive(mu[0], C[0])

    def predict_windows(self, windows: np.ndarray) -> list[Predictive]:
        """Batched :meth:`predict_window` for ``(D, W, N)``."""
        check_fitted(self, "window_")
        w = as_windows(windows, self.window_, self.n_assets_)
        mu, C = self._moments(w)
        return [GaussianPredictive(m, c) for m, c in zip(mu, C, strict=True)]

    def simulator_window(self, window: np.ndarray, rngs: Sequence[np.random.Generator]) -> PathSimulator:
        """Paths re-estimating ``N(mu, C)`` each day from their own rolling window."""
        check_fitted(self, "window_")
        X = path_windows(window, len(rngs), self.window_, self.n_assets_)
        return _GaussianSimulator(self, X, rngs)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write an artifact: kind, config, window, train variances, validation scores, assets."""
        check_fitted(self, "window_")
        fitted = {
            "window": self.window_,
            "validation": {str(k): v for k, v in self.validation_.items()},
            "pooled_assets": list(self.pooled_assets_),
        }
        write_artifact(path, self.artifact_meta(fitted=fitted), {"train_var": self.train_var_})

    @classmethod
    def load(cls, path: str | Path) -> GaussianGenerator:
        meta, arrays = load_checked(path, cls.kind, ["train_var"], ["config", "assets", "fitted"])
        with artifact_errors(path, cls.kind):
            cfg = dict(meta["config"])
            if cls is not GaussianGenerator:
                cfg.pop("cov", None)
            gen = cls(**cfg)
            assets = tuple(str(a) for a in meta["assets"])
            gen._check_params(len(assets))
            gen.assets_ = assets
            gen.n_assets_ = len(assets)
            gen.train_var_ = check_shape(path, "train_var", arrays["train_var"], (len(assets),))
            gen.window_ = int(meta["fitted"]["window"])
            gen.validation_ = {int(k): float(v) for k, v in meta["fitted"]["validation"].items()}
            gen.pooled_assets_ = tuple(str(a) for a in meta["fitted"].get("pooled_assets", []))
        return gen


@register_generator
class LedoitWolfGenerator(GaussianGenerator):
    """Multivariate normal with a rolling Ledoit-Wolf covariance ("ledoit_wolf").

    :class:`GaussianGenerator` with ``cov="ledoit_wolf"``; same parameters otherwise.
    """

    kind: ClassVar[str] = "ledoit_wolf"

    def __init__(
        self,
        window: int | str = 63,
        mean: str = "zero",
        window_grid: Sequence[int] = (21, 42, 63, 126, 252, 504),
    ) -> None:
        super().__init__(cov="ledoit_wolf", window=window, mean=mean, window_grid=window_grid)

    def get_params(self) -> dict[str, Any]:
        p = super().get_params()
        p.pop("cov")
        return p


def _batched_mvn_logpdf(r: np.ndarray, mu: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Log densities of ``r`` ``(D, N)`` under ``N(mu[d], C[d])``; ``NaN`` cells marginalised."""
    out = np.empty(r.shape[0])
    full = np.isfinite(r).all(axis=1)
    if full.any():
        L = safe_cholesky(C[full])
        dev = (r[full] - mu[full])[:, :, None]
        u = np.linalg.solve(L, dev)[:, :, 0]
        out[full] = (
            -0.5 * (u * u).sum(axis=1)
            - np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
            - 0.5 * r.shape[1] * _LOG_2PI
        )
    for d in np.nonzero(~full)[0]:
        out[d] = GaussianPredictive(mu[d], C[d]).log_prob(r[d])
    return out

"""GARCH(1,1) per asset with (skew-)Student-T innovations and constant correlation.

Per asset ``i``::

    r_{i,t} = mu_i + sqrt(h_{i,t}) e_{i,t},     h_{i,t+1} = omega_i + alpha_i (r_{i,t} - mu_i)^2 + beta_i h_{i,t}

with ``e_i`` standardised (mean 0, variance 1) Hansen skew-t (or Student-T) innovations,
fitted once on the train rows by ``arch``. Cross-sectional dependence is a **Gaussian
copula** with constant correlation ``R`` (CCC): ``e_i = F_i^{-1}(Phi(g_i))``, ``g ~ N(0, R)``,
``R`` the correlation of the normal scores ``Phi^{-1}(F_i(e_i))`` of the train standardised
residuals. Everything is closed form: the joint log density is
``sum_i [log f_i(e_i) - log sqrt(h_i)] + log c_R(q)``; the covariance is
``diag(sqrt h) P diag(sqrt h)`` where ``P``, the Pearson correlation of the innovations that
the copula implies, is computed once by 2-D Gauss-Hermite quadrature.

At prediction time the fitted recursion filters the window (started at the unconditional
variance ``burn_in`` days back; a missing day replaces its squared shock by its expectation
``h``). Simulated paths roll the recursion forward on their own draws.

Absent and late-listing assets: an asset with fewer than ``MIN_GARCH_DAYS`` (100) train
returns is not fitted by ``arch``; it gets pooled parameters (``pooled_assets_``): mean 0,
the median ``alpha``, ``beta``, ``eta`` and ``lambda`` of the fitted assets, and an
unconditional variance (``omega / (1 - alpha - beta)``, also the filter's start) equal to its
own train variance when it has ``MIN_OWN_TRAIN_DAYS`` (20) train returns and to the mean
unconditional variance of the fitted assets otherwise. Its copula correlations come from
the normal scores of its own train days (filtered with the pooled parameters) when it has
``MIN_OWN_TRAIN_DAYS`` of them, and otherwise are those of an "average asset"
(:func:`~factorgym.generators.baselines.pooling.average_asset_corr`). The fitted assets'
parameters and correlations are the ones fitted without it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy import special

from factorgym.artifacts import write_artifact
from factorgym.data import ReturnPanel, Split
from factorgym.errors import CheckpointError, DataValidationError
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
    check_reset,
    check_shape,
    clip_simulated,
    flat_returns,
    load_checked,
    path_windows,
    progress_printer,
    rowwise_matvec,
    safe_cholesky,
    split_rows,
    window_moments,
)
from factorgym.generators.baselines.pooling import MIN_OWN_TRAIN_DAYS, average_asset_corr

__all__ = ["GarchPredictive", "GarchGenerator", "skewt_logpdf", "skewt_cdf", "skewt_from_normal"]

_LOG_2PI = float(np.log(2.0 * np.pi))

#: Train returns an asset needs for its own GARCH fit; fewer: pooled parameters.
MIN_GARCH_DAYS = 100


# ============================================================================ Hansen skew-t
def _skewt_abc(eta: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = np.exp(special.gammaln((eta + 1) / 2) - special.gammaln(eta / 2)) / np.sqrt(np.pi * (eta - 2))
    a = 4 * lam * c * (eta - 2) / (eta - 1)
    b = np.sqrt(1 + 3 * lam**2 - a**2)
    return a, b, c


def skewt_logpdf(z: np.ndarray, eta: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Log density of Hansen's (1994) standardised skew-t (``lam=0``: unit-variance Student-T).

    Same parametrisation as :class:`arch.univariate.SkewStudent` (``eta`` > 2, ``|lam| < 1``);
    ``eta`` and ``lam`` broadcast against ``z``.
    """
    a, b, c = _skewt_abc(eta, lam)
    s = np.where(z < -a / b, 1 - lam, 1 + lam)
    y = (b * z + a) / s
    return np.log(b) + np.log(c) - (eta + 1) / 2 * np.log1p(y * y / (eta - 2))


def skewt_cdf(z: np.ndarray, eta: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(F(z), 1 - F(z))`` of the standardised skew-t, each accurate in its own tail."""
    a, b, _ = _skewt_abc(eta, lam)
    lower = z < -a / b
    s = np.where(lower, 1 - lam, 1 + lam)
    y = (b * z + a) / s * np.sqrt(eta / (eta - 2))
    lo_cdf = (1 - lam) * special.stdtr(eta, y)
    up_sf = (1 + lam) * special.stdtr(eta, -y)
    cdf = np.where(lower, lo_cdf, 1 - up_sf)
    sf = np.where(lower, 1 - lo_cdf, up_sf)
    return cdf, sf


def _normal_score(z: np.ndarray, eta: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """``Phi^{-1}(F(z))`` computed from whichever tail is accurate."""
    cdf, sf = skewt_cdf(z, eta, lam)
    return np.where(cdf < 0.5, special.ndtri(cdf), -special.ndtri(sf))


def skewt_from_normal(g: np.ndarray, eta: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The quantile transform ``F^{-1}(Phi(g))`` of the standardised skew-t (tail-accurate)."""
    a, b, _ = _skewt_abc(eta, lam)
    u = special.ndtr(g)
    s = special.ndtr(-g)
    k = np.sqrt((eta - 2) / eta)
    lower = u < (1 - lam) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        y_lo = special.stdtrit(eta, np.minimum(u / (1 - lam), 1.0))
        y_up = -special.stdtrit(eta, np.minimum(s / (1 + lam), 1.0))
    y = np.where(lower, (1 - lam) * y_lo, (1 + lam) * y_up)
    return (y * k - a) / b


def _copula_pearson(R: np.ndarray, eta: np.ndarray, lam: np.ndarray, n: int = 48) -> np.ndarray:
    """Pearson correlation of ``e_i = F_i^{-1}(Phi(g_i))``, ``g ~ N(0, R)``, by Gauss-Hermite."""
    N = R.shape[0]
    x, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / w.sum()
    f = skewt_from_normal(x[None, :], eta[:, None], lam[:, None])  # (N, n)
    out = np.eye(N)
    second = f**2 @ w
    for i in range(N - 1):
        rho = R[i, i + 1 :]  # (M,)
        pts = rho[:, None, None] * x[None, :, None] + np.sqrt(1 - rho**2)[:, None, None] * x[None, None, :]
        fj = skewt_from_normal(pts, eta[i + 1 :, None, None], lam[i + 1 :, None, None])  # (M, n, n)
        m = np.einsum("a,b,a,jab->j", w, w, f[i], fj)
        out[i, i + 1 :] = out[i + 1 :, i] = m / np.sqrt(second[i] * second[i + 1 :])
    return out


# ============================================================================ predictive
class GarchPredictive(Predictive):
    """Gaussian copula of standardised skew-t marginals scaled by GARCH volatilities.

    Exact: ``log_prob`` (``NaN`` entries marginalised: the copula's sub-correlation),
    ``mean``, ``cov``, marginals, sampling.

    Parameters
    ----------
    mu, sd : ndarray (N,)
        Conditional means and standard deviations.
    R : ndarray (N, N)
        Copula correlation.
    pearson : ndarray (N, N)
        Pearson correlation of the innovations implied by ``R`` and the marginals.
    eta, lam : ndarray (N,)
        Skew-t shape (``lam = 0``: Student-T).
    """

    has_closed_form: ClassVar[bool] = True
    has_log_prob: ClassVar[bool] = True

    def __init__(
        self,
        mu: np.ndarray,
        sd: np.ndarray,
        R: np.ndarray,
        pearson: np.ndarray,
        eta: np.ndarray,
        lam: np.ndarray,
        chol: np.ndarray | None = None,
    ) -> None:
        self.mu, self.sd = np.asarray(mu, dtype=np.float64), np.asarray(sd, dtype=np.float64)
        self.R, self.pearson = R, pearson
        self.eta, self.lam = eta, lam
        self._chol = chol

    @property
    def n_assets(self) -> int:
        return int(self.mu.shape[0])

    @property
    def chol(self) -> np.ndarray:
        if self._chol is None:
            self._chol = safe_cholesky(self.R)
        return self._chol

    def mean(self) -> np.ndarray:
        return self.mu.copy()

    def cov(self) -> np.ndarray:
        return self.pearson * np.outer(self.sd, self.sd)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        g = rng.standard_normal((int(n), self.n_assets)) @ self.chol.T
        return self.mu + self.sd * skewt_from_normal(g, self.eta, self.lam)

    def log_prob(self, r: np.ndarray) -> np.ndarray:
        """Exact joint log density of ``r`` ``(..., N)``; ``NaN`` entries are marginalised."""
        r = np.asarray(r, dtype=np.float64)
        flat = flat_returns(r, self.n_assets)
        e = (flat - self.mu) / self.sd
        marg = skewt_logpdf(e, self.eta, self.lam) - np.log(self.sd)
        q = _normal_score(e, self.eta, self.lam)
        out = np.empty(flat.shape[0])
        for rows, pat in availability_groups(flat):
            if not pat.any():
                out[rows] = 0.0
                continue
            L = self.chol if pat.all() else safe_cholesky(self.R[np.ix_(pat, pat)])
            qs = q[np.ix_(rows, pat)]
            u = np.linalg.solve(L, qs.T)  # L^{-1} q
            logc = -np.log(np.diag(L)).sum() - 0.5 * (u * u).sum(axis=0) + 0.5 * (qs * qs).sum(axis=1)
            out[rows] = marg[np.ix_(rows, pat)].sum(axis=1) + logc
        return out.reshape(r.shape[:-1])

    def marginal_log_prob(self, r: np.ndarray) -> np.ndarray:
        r = np.asarray(r, dtype=np.float64)
        return skewt_logpdf((r - self.mu) / self.sd, self.eta, self.lam) - np.log(self.sd)

    def marginal_cdf(self, r: np.ndarray) -> np.ndarray:
        r = np.asarray(r, dtype=np.float64)
        return skewt_cdf((r - self.mu) / self.sd, self.eta, self.lam)[0]

    def marginal_ppf(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64).reshape(-1, 1)
        return self.mu + self.sd * skewt_from_normal(special.ndtri(q), self.eta, self.lam)


# ============================================================================ simulator
class _GarchSimulator(PathSimulator):
    def __init__(self, gen: GarchGenerator, windows: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        self._gen = gen
        self._h = gen._filter(windows)  # (P, N) next-day variances
        n = gen.n_assets_
        self._streams = PathStreams(rngs, lambda g, b: (g.standard_normal((b, n)),))
        self._L = safe_cholesky(gen.corr_)
        #: Number of simulated cells clipped into [-0.99, 1.0] (expected 0).
        self.n_clipped = 0

    @property
    def n_paths(self) -> int:
        return int(self._h.shape[0])

    @property
    def n_assets(self) -> int:
        return int(self._h.shape[1])

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        sd = np.sqrt(self._h)
        mu = np.broadcast_to(self._gen.mu_, self._h.shape).copy()
        return mu, self._gen.pearson_ * sd[:, :, None] * sd[:, None, :]

    def step(self) -> np.ndarray:
        g = self._gen
        (z,) = self._streams.next()
        e = skewt_from_normal(rowwise_matvec(self._L[None], z), g.eta_, g.lam_)
        r, bad = clip_simulated(g.mu_ + np.sqrt(self._h) * e)
        self.n_clipped += bad
        self._h = g.omega_ + g.alpha_ * (r - g.mu_) ** 2 + g.beta_ * self._h
        return r

    def reset_paths(self, idx: np.ndarray, windows: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        idx = check_reset(idx, windows, rngs, self.n_paths)
        self._h[idx] = self._gen._filter(as_windows(windows, self._gen.min_history, self.n_assets))
        self._streams.reset(idx, rngs)


# ============================================================================ generator
@register_generator
class GarchGenerator(ReturnGenerator):
    """GARCH(1,1)-(skew-)t per asset with a constant-correlation Gaussian copula ("garch").

    Parameters
    ----------
    dist : {"skewt", "t"}
        Innovation distribution (Hansen skew-t as in the NeuralFactors paper's "GARCH Skew
        Student", or Student-T).
    mean : {"zero", "constant"}
        Zero mean or a constant mean per asset (estimated jointly by ``arch``).
    burn_in : int
        Window days the variance filter runs over (``min_history``); it starts at the
        unconditional variance, whose influence decays like ``beta^burn_in``.

    Attributes
    ----------
    mu_, omega_, alpha_, beta_, eta_, lam_ : ndarray (N,)
        Per-asset parameters in return units (``omega_`` in squared simple returns).
    corr_ : ndarray (N, N)
        Copula (CCC) correlation of the train normal scores.
    pearson_ : ndarray (N, N)
        Implied Pearson correlation of the innovations.
    h0_ : ndarray (N,)
        Starting variance of the filter.
    converged_ : ndarray (N,) of bool
        ``arch``'s optimiser convergence per asset (False for a pooled asset).
    pooled_assets_ : tuple of str
        Assets with fewer than ``MIN_GARCH_DAYS`` train returns (pooled parameters; see the
        module docstring).
    """

    kind: ClassVar[str] = "garch"

    def __init__(self, dist: str = "skewt", mean: str = "zero", burn_in: int = 252) -> None:
        self.dist = dist
        self.mean = mean
        self.burn_in = burn_in

    def get_params(self) -> dict[str, Any]:
        return {"dist": self.dist, "mean": self.mean, "burn_in": self.burn_in}

    def _check_params(self) -> None:
        if self.dist not in ("skewt", "t"):
            raise DataValidationError(f"dist must be 'skewt' or 't'; got {self.dist!r}")
        if self.mean not in ("zero", "constant"):
            raise DataValidationError(f"mean must be 'zero' or 'constant'; got {self.mean!r}")
        if not isinstance(self.burn_in, (int, np.integer)) or self.burn_in < 1:
            raise DataValidationError(f"burn_in must be a positive int; got {self.burn_in!r}")

    @property
    def min_history(self) -> int:
        return int(self.burn_in)

    def fit(
        self,
        panel: ReturnPanel,
        split: Split,
        *,
        out_dir: str | Path | None = None,
        progress: bool = True,
        rng: np.random.Generator | None = None,
    ) -> GarchGenerator:
        """Fit each asset's GARCH on its available train days, then the copula correlation.

        Returns are scaled by 100 for ``arch``'s optimiser and converted back. ``out_dir``
        and ``rng`` are unused (deterministic and fast); nothing is chosen on validation.
        """
        from arch import arch_model

        self._check_params()
        (t0, t1), _ = split_rows(panel, split)
        R = np.asarray(panel.returns)[t0:t1]
        N = panel.N
        say = progress_printer(progress)
        par = np.zeros((N, 6))  # mu, omega, alpha, beta, eta, lam
        conv = np.zeros(N, dtype=bool)
        z = np.full(R.shape, np.nan)
        fitted = np.isfinite(R).sum(axis=0) >= MIN_GARCH_DAYS
        if not fitted.any():
            raise DataValidationError(
                f"no asset has {MIN_GARCH_DAYS} train returns (the train part has {R.shape[0]} days); "
                "GARCH needs them for at least one asset"
            )
        for i in np.flatnonzero(fitted):
            ok = np.isfinite(R[:, i])
            am = arch_model(
                100 * R[ok, i], mean="Zero" if self.mean == "zero" else "Constant", vol="GARCH", p=1, q=1,
                dist="skewt" if self.dist == "skewt" else "t", rescale=False,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = am.fit(disp="off", show_warning=False)
            p = res.params
            par[i, 0] = p["mu"] / 100 if self.mean == "constant" else 0.0
            par[i, 1] = p["omega"] / 1e4
            par[i, 2], par[i, 3] = p["alpha[1]"], p["beta[1]"]
            par[i, 4] = p["eta"] if self.dist == "skewt" else p["nu"]
            par[i, 5] = p["lambda"] if self.dist == "skewt" else 0.0
            conv[i] = res.convergence_flag == 0
            z[ok, i] = np.asarray(res.std_resid)
            say(f"garch: {panel.assets[i]} alpha={par[i, 2]:.3f} beta={par[i, 3]:.3f} eta={par[i, 4]:.2f}")
        self.assets_ = tuple(panel.assets)
        self.n_assets_ = N
        self.mu_, self.omega_, self.alpha_, self.beta_, self.eta_, self.lam_ = (par[:, j].copy() for j in range(6))
        self.converged_ = conv
        persist = self.alpha_ + self.beta_
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column of an unlisted asset
            train_var = np.nanvar(R, axis=0)
        self.h0_ = np.where(persist < 1, self.omega_ / np.maximum(1 - persist, 1e-12), train_var)
        own = np.isfinite(R).sum(axis=0) >= MIN_OWN_TRAIN_DAYS
        if not fitted.all():
            self._pool_parameters(fitted, own, train_var)
            for i in np.flatnonzero(~fitted & own):  # standardised residuals under the pooled recursion
                z[:, i] = self._standardise(R[:, i], i)
        self.pooled_assets_ = tuple(a for a, f in zip(panel.assets, fitted, strict=True) if not f)
        q = _normal_score(z, self.eta_, self.lam_)
        _, C = window_moments(q[None], mean="sample", cov="sample", fallback_var=np.ones(N))
        sd = np.sqrt(np.diag(C[0]))
        self.corr_ = C[0] / np.outer(sd, sd)
        if not own.all():
            self.corr_ = average_asset_corr(self.corr_, own)
        self.pearson_ = _copula_pearson(self.corr_, self.eta_, self.lam_)
        return self

    def _pool_parameters(self, fitted: np.ndarray, own: np.ndarray, train_var: np.ndarray) -> None:
        """Pooled GARCH parameters for the assets not ``fitted`` (see the module docstring)."""
        pool = ~fitted
        alpha, beta = float(np.median(self.alpha_[fitted])), float(np.median(self.beta_[fitted]))
        beta = min(beta, 0.999 - alpha)  # medians of stationary fits could sum past 1
        uncond = float(np.mean(self.h0_[fitted]))
        var = np.where(own, train_var, uncond)
        self.mu_[pool] = 0.0
        self.alpha_[pool], self.beta_[pool] = alpha, beta
        self.eta_[pool] = np.median(self.eta_[fitted])
        self.lam_[pool] = np.median(self.lam_[fitted])
        self.omega_[pool] = var[pool] * (1.0 - alpha - beta)
        self.h0_[pool] = var[pool]

    def _standardise(self, x: np.ndarray, i: int) -> np.ndarray:
        """Standardised residuals of one asset's returns ``x`` ``(T,)`` (NaN where absent)."""
        h = self.h0_[i]
        out = np.full(x.shape, np.nan)
        for t, v in enumerate(x):
            if np.isfinite(v):
                out[t] = (v - self.mu_[i]) / np.sqrt(h)
                h = self.omega_[i] + self.alpha_[i] * (v - self.mu_[i]) ** 2 + self.beta_[i] * h
            else:
                h = self.omega_[i] + (self.alpha_[i] + self.beta_[i]) * h
        return out

    # ------------------------------------------------------------------ prediction
    def _filter(self, X: np.ndarray) -> np.ndarray:
        """Next-day conditional variances ``(B, N)`` after windows ``(B, W, N)``."""
        h = np.broadcast_to(self.h0_, X.shape[::2]).copy()
        for t in range(X.shape[1]):
            x = X[:, t]
            e2 = np.where(np.isfinite(x), (x - self.mu_) ** 2, h)
            h = self.omega_ + self.alpha_ * e2 + self.beta_ * h
        return h

    def _predictive(self, h: np.ndarray, chol: np.ndarray | None = None) -> GarchPredictive:
        return GarchPredictive(self.mu_, np.sqrt(h), self.corr_, self.pearson_, self.eta_, self.lam_, chol)

    def predict_window(self, window: np.ndarray) -> GarchPredictive:
        """Distribution of the day after ``window`` ``(W, N)`` (last ``burn_in`` rows filtered)."""
        check_fitted(self, "corr_")
        w = as_window(window, self.min_history, self.n_assets_)
        return self._predictive(self._filter(w[None])[0])

    def predict_windows(self, windows: np.ndarray) -> list[Predictive]:
        check_fitted(self, "corr_")
        h = self._filter(as_windows(windows, self.min_history, self.n_assets_))
        L = safe_cholesky(self.corr_)
        return [self._predictive(hd, L) for hd in h]

    def simulator_window(self, window: np.ndarray, rngs: Sequence[np.random.Generator]) -> PathSimulator:
        """Paths rolling each asset's variance recursion forward on their own draws."""
        check_fitted(self, "corr_")
        return _GarchSimulator(self, path_windows(window, len(rngs), self.min_history, self.n_assets_), rngs)

    # ------------------------------------------------------------------ persistence
    _ARRAYS = ("mu", "omega", "alpha", "beta", "eta", "lam", "h0", "corr", "pearson", "converged")

    def save(self, path: str | Path) -> None:
        """Write an artifact: kind, config, per-asset GARCH parameters, correlations, assets."""
        check_fitted(self, "corr_")
        arrays = {a: getattr(self, a + "_") for a in self._ARRAYS}
        write_artifact(path, self.artifact_meta(pooled_assets=list(self.pooled_assets_)), arrays)

    @classmethod
    def load(cls, path: str | Path) -> GarchGenerator:
        meta, arrays = load_checked(path, cls.kind, cls._ARRAYS, ["config", "assets"])
        with artifact_errors(path, cls.kind):
            gen = cls(**meta["config"])
            gen._check_params()
            assets = tuple(str(a) for a in meta["assets"])
            N = len(assets)
            gen.assets_, gen.n_assets_ = assets, N
            for a in cls._ARRAYS:
                shape = (N, N) if a in ("corr", "pearson") else (N,)
                setattr(gen, a + "_", check_shape(path, a, arrays[a], shape))
            gen.pooled_assets_ = tuple(str(a) for a in meta.get("pooled_assets", []))
            if (gen.eta_ <= 2).any() or (np.abs(gen.lam_) >= 1).any() or (gen.h0_ <= 0).any():
                raise CheckpointError(f"{path}: invalid GARCH parameters")
        return gen

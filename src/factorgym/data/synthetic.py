"""Synthetic panels drawn from a known Student-T factor model, with their exact log density."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.linalg import cho_solve, solve_triangular
from scipy.special import gammaln

from factorgym.data.panel import ReturnPanel
from factorgym.errors import DataValidationError

__all__ = ["SyntheticFactorPanel", "synthetic_factor_panel"]


def _t_logpdf(x: np.ndarray, nu: np.ndarray | float, scale: np.ndarray | float) -> np.ndarray:
    """Elementwise log density of a centred Student-T with ``nu`` dof and ``scale``."""
    nu = np.asarray(nu, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    u = x / scale
    return (
        gammaln((nu + 1) / 2)
        - gammaln(nu / 2)
        - 0.5 * np.log(nu * np.pi)
        - np.log(scale)
        - (nu + 1) / 2 * np.log1p(u * u / nu)
    )


@dataclass(frozen=True, eq=False)
class SyntheticFactorPanel:
    """A panel drawn from a known Student-T factor model, with its exact log density.

    The model (the NeuralFactors model class with fixed parameters)::

        z_t ~ prod_f T(nu_z, 0, s_z[f])                   (F factor returns)
        r_{i,t} | z_t ~ T(nu_x, alpha_i + v_t * beta_i' z_t, v_t * sigma_i)

    where ``v_t`` is 1, or with ``time_varying_vol`` a GARCH(1,1)-style scale driven by the
    previous day's standardised first-factor shock (so it is a function of the past only).

    Attributes
    ----------
    panel : ReturnPanel
    log_density : ndarray of shape (T,)
        ``log p(r_t | past)`` in nats under the true model (importance-sampled integral over
        z; about 1e-2 nats of noise per day, 1e-3 on average over days).
    alpha, sigma : ndarray of shape (N,)
    beta : ndarray of shape (N, F)
    s_z : ndarray of shape (F,)
    nu_x, nu_z : float
    vol : ndarray of shape (T,)
        The volatility scale ``v_t``.
    """

    panel: ReturnPanel
    log_density: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    sigma: np.ndarray
    s_z: np.ndarray
    nu_x: float
    nu_z: float
    vol: np.ndarray

    def true_log_density(self, r: np.ndarray, t: int, n_samples: int = 4096, seed: int = 0) -> np.ndarray:
        """``log p(r | past)`` of candidate returns ``r`` (shape ``(..., N)``) on day ``t``."""
        return _factor_model_logpdf(
            np.atleast_2d(r), self.alpha, self.beta * self.vol[t], self.sigma * self.vol[t],
            self.s_z, self.nu_x, self.nu_z, n_samples, np.random.default_rng(seed),
        )

    def covariance(self, t: int) -> np.ndarray:
        """True covariance of day ``t`` returns, shape ``(N, N)``."""
        v = self.vol[t]
        var_z = self.s_z**2 * self.nu_z / (self.nu_z - 2)
        return v**2 * ((self.beta * var_z) @ self.beta.T + np.diag(self.sigma**2 * self.nu_x / (self.nu_x - 2)))


def _mvt_standard(rng: np.random.Generator, n: int, dim: int, dof: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` standard multivariate-T draws ``(n, dim)`` and their log densities ``(n,)``."""
    u = rng.standard_normal((n, dim)) / np.sqrt(rng.chisquare(dof, size=(n, 1)) / dof)
    logq = (
        gammaln((dof + dim) / 2)
        - gammaln(dof / 2)
        - dim / 2 * np.log(dof * np.pi)
        - (dof + dim) / 2 * np.log1p((u * u).sum(axis=1) / dof)
    )
    return u, logq


def _factor_model_logpdf(
    r: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    sigma: np.ndarray,
    s_z: np.ndarray,
    nu_x: float,
    nu_z: float,
    n_samples: int,
    rng: np.random.Generator,
    proposal_dof: float = 5.0,
) -> np.ndarray:
    """Importance-sampled ``log p(r)`` for rows of ``r`` (shape ``(D, N)``) -> ``(D,)``.

    Two-stage adaptive importance sampling over the F factor returns. Stage 1 proposes from
    a multivariate T (``proposal_dof``) around the moment-matched Gaussian posterior of
    NeuralFactors' eq. 8; stage 2 refits the proposal to the stage-1 weighted posterior
    mean and covariance (widened by 1.2) and gives the estimate. T tails heavier than the
    posterior's keep the weights bounded.
    """
    F = beta.shape[1]
    var_x = sigma**2 * nu_x / (nu_x - 2)
    var_z = s_z**2 * nu_z / (nu_z - 2)
    prec = np.diag(1 / var_z) + (beta.T / var_x) @ beta  # (F, F)
    L = np.linalg.cholesky(prec)
    mean0 = cho_solve((L, True), (((r - alpha) / var_x) @ beta).T).T  # (D, F)
    # A = L^{-T} (upper triangular) satisfies A A' = prec^{-1}; widen by 1.2
    A0 = solve_triangular(L, np.eye(F), lower=True).T * 1.2

    def log_weights(d: int, mean: np.ndarray, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u, logq_u = _mvt_standard(rng, n_samples, F, proposal_dof)
        z = mean + u @ A.T  # (S, F)
        logq = logq_u - np.log(np.abs(np.diag(np.linalg.cholesky(A @ A.T)))).sum()
        logprior = _t_logpdf(z, nu_z, s_z).sum(axis=1)
        loglik = _t_logpdf(r[d] - alpha - z @ beta.T, nu_x, sigma).sum(axis=1)
        return z, loglik + logprior - logq

    out = np.empty(r.shape[0])
    for d in range(r.shape[0]):
        z, lw = log_weights(d, mean0[d], A0)
        w = np.exp(lw - lw.max())
        w /= w.sum()
        m1 = w @ z
        c1 = (z - m1).T @ ((z - m1) * w[:, None]) + 1e-12 * np.eye(F)
        _, lw = log_weights(d, m1, np.linalg.cholesky(c1) * 1.2)
        mx = lw.max()
        out[d] = mx + np.log(np.mean(np.exp(lw - mx)))
    return out


def synthetic_factor_panel(
    T: int = 2000,  # noqa: N803
    N: int = 20,  # noqa: N803
    F: int = 3,  # noqa: N803
    nu: float = 5.0,
    seed: int = 0,
    *,
    nu_z: float | None = None,
    time_varying_vol: bool = False,
    garch: tuple[float, float] = (0.08, 0.90),
    start: str = "2000-01-03",
    n_is_samples: int = 4096,
) -> SyntheticFactorPanel:
    """Draw a panel from a known Student-T factor model and return it with its true density.

    Parameters
    ----------
    T, N, F : int
        Days, assets and factors.
    nu : float
        Degrees of freedom of the idiosyncratic noise (and of the factors unless ``nu_z``).
    seed : int
        Seed of the parameters, the draws and the density estimate.
    time_varying_vol : bool
        Scale each day by ``v_t`` with ``v_t^2 = (1-a-b) + a u_{t-1}^2 + b v_{t-1}^2`` where
        ``u`` is the standardised first-factor shock and ``(a, b) = garch``.

    Returns
    -------
    SyntheticFactorPanel
        ``.panel`` (business-day dates from ``start``) and ``.log_density`` of shape (T,).
    """
    if nu <= 2 or (nu_z is not None and nu_z <= 2):
        raise DataValidationError("degrees of freedom must exceed 2 (finite variance)")
    rng = np.random.default_rng(seed)
    nu_z = float(nu if nu_z is None else nu_z)
    alpha = rng.normal(2e-4, 2e-4, N)
    beta = np.column_stack([rng.normal(1.0, 0.25, N)] + [rng.normal(0.0, 0.6, N) for _ in range(F - 1)])
    s_z = np.array([0.009] + [0.005] * (F - 1)) * np.sqrt((nu_z - 2) / nu_z)
    sigma = rng.uniform(0.008, 0.02, N) * np.sqrt((nu - 2) / nu)
    z = rng.standard_t(nu_z, size=(T, F)) * s_z
    eps = rng.standard_t(nu, size=(T, N)) * sigma
    vol = np.ones(T)
    if time_varying_vol:
        a, b = garch
        u = z[:, 0] / (s_z[0] * np.sqrt(nu_z / (nu_z - 2)))
        v2 = 1.0
        for t in range(T):
            vol[t] = np.sqrt(v2)
            v2 = (1 - a - b) + a * (vol[t] * u[t]) ** 2 + b * vol[t] ** 2
    r = alpha + vol[:, None] * (z @ beta.T + eps)
    dates = pd.bdate_range(start, periods=T)
    assets = tuple(f"S{i:02d}" for i in range(N))
    static = pd.DataFrame({"sector": [f"G{i % 4}" for i in range(N)]}, index=list(assets))
    panel = ReturnPanel(dates, assets, r, np.ones((T, N), dtype=bool), static=static, name=f"synthetic(seed={seed})")
    is_rng = np.random.default_rng([seed, 1])
    # r_t = alpha + v_t x_t with x_t from the unit-scale model, so (exact change of variables)
    # log p(r_t | past) = log p_1(alpha + (r_t - alpha) / v_t) - N log v_t: one batched call.
    unit = alpha + (r - alpha) / vol[:, None]
    logd = _factor_model_logpdf(unit, alpha, beta, sigma, s_z, nu, nu_z, n_is_samples, is_rng) - N * np.log(vol)
    return SyntheticFactorPanel(panel, logd, alpha, beta, sigma, s_z, float(nu), nu_z, vol)

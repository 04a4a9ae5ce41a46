"""Probabilistic PCA with a Student-T decoder (the NeuralFactors paper's PPCA baseline).

Model, for the next day's returns ``r`` of ``N`` assets and ``k`` latent factors::

    z ~ N(0, I_k),     r_i | z ~ T(nu_i, mu_i + w_i' z, sigma_i)   independently over i.

Two estimation modes, chosen on validation together with ``k``:

``window="train"`` (fixed parameters)
    Maximum likelihood on the train rows by Monte Carlo ECM: the Student-T noise is written
    as a Gaussian scale mixture (``u_i ~ Gamma(nu_i/2, nu_i/2)``); the E-step
    importance-samples ``z`` per day (a multivariate-T proposal around the Gaussian
    conditional posterior given the current expected precisions, with common random numbers
    across iterations so the fit is deterministic) and takes ``u | z`` in closed form; the
    CM-steps are per-asset weighted least squares for ``(mu_i, w_i)``, the closed-form
    ``sigma_i`` and a 1-D root for ``nu_i`` (Liu & Rubin's ECM for the t). It starts from
    the Tipping & Bishop closed form. Parameters are then fixed: the window is not used.

``window=<int>`` (rolling)
    Each day, the Tipping & Bishop (1999) closed form on the trailing ``window`` days'
    sample covariance ``S`` (``W = U_k (L_k - s2 I)^{1/2}``, ``s2`` the mean discarded
    eigenvalue), with heteroscedastic noise variances ``psi_i = S_ii - ||w_i||^2`` (so the
    model matches every asset's window variance) carried by a Student-T of one shared
    ``nu`` (``sigma_i = sqrt(psi_i (nu - 2) / nu)``); ``nu`` is the maximum-likelihood value
    on (a subsample of) the train days' one-day-ahead predictions. Simulated paths
    re-estimate from their own rolling window each step.

``log_prob`` is an importance-sampling **estimate** (multivariate-T proposal around the
variational posterior of ``z``, fixed seed); the mean and covariance are exact; the marginals (a Gaussian
convolved with a Student-T) are computed by 1-D quadrature.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy import special

from factorgym.artifacts import read_artifact, write_artifact
from factorgym.data import ReturnPanel, Split
from factorgym.errors import CheckpointError, DataValidationError
from factorgym.generators.base import PathSimulator, Predictive, ReturnGenerator, register_generator
from factorgym.generators.baselines_common import (
    PathStreams,
    as_window,
    as_windows,
    check_fitted,
    check_reset,
    check_shape,
    clip_simulated,
    config_hash,
    data_fingerprint,
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

__all__ = ["TFactorPredictive", "PPCAGenerator", "tfactor_log_density", "fit_tppca_em"]

_LOG_2PI = float(np.log(2.0 * np.pi))
#: Bounds on the Student-T degrees of freedom (above 2: finite variance).
NU_MIN, NU_MAX = 2.1, 200.0
#: Importance proposal: a multivariate T with this dof around the variational posterior,
#: its covariance widened by ``_PROPOSAL_WIDEN**2`` (heavier tails than the posterior, whose
#: tails are at most those of the N(0, I) prior, keep the weights bounded).
_PROPOSAL_DOF = 8.0
_PROPOSAL_WIDEN = 1.15
_VB_ITER = 15


# ============================================================================ densities
def _t_const(nu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Normalising constant of the log density of ``T(nu, 0, sigma)``."""
    return special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2) - 0.5 * np.log(nu * np.pi) - np.log(sigma)


def _mvt_standard(
    rng: np.random.Generator, shape: tuple[int, ...], k: int, dof: float = _PROPOSAL_DOF
) -> tuple[np.ndarray, np.ndarray]:
    """Standard multivariate-T draws ``shape + (k,)`` and their log densities ``shape``."""
    u = rng.standard_normal(shape + (k,)) / np.sqrt(rng.chisquare(dof, size=shape + (1,)) / dof)
    logq = (
        special.gammaln((dof + k) / 2)
        - special.gammaln(dof / 2)
        - k / 2 * np.log(dof * np.pi)
        - (dof + k) / 2 * np.log1p((u * u).sum(axis=-1) / dof)
    )
    return u, logq


def tfactor_log_density(
    r: np.ndarray,
    mu: np.ndarray,
    W: np.ndarray,
    sigma: np.ndarray,
    nu: np.ndarray,
    n_samples: int = 1024,
    rng: np.random.Generator | None = None,
    *,
    max_cells: int = 2**21,
) -> np.ndarray:
    """Importance-sampled ``log p(r_d)`` under ``z ~ N(0, I)``, ``r_i | z ~ T(nu_i, mu_i + w_i'z, sigma_i)``.

    Parameters
    ----------
    r : ndarray (D, N)
        Returns; ``NaN`` entries are integrated out (the model is conditionally independent
        given ``z``, so an absent asset simply drops out of the likelihood).
    mu, sigma, nu : ndarray (N,) or (D, N)
    W : ndarray (N, k) or (D, N, k)
        Per-day parameters may be given with a leading ``D`` axis.
    n_samples : int
        Proposal draws per day.
    rng : numpy.random.Generator
        Source of the proposal draws (default: seed 0). The draws do not depend on the
        parameters, so re-using a seed gives common random numbers across parameter values.

    Returns
    -------
    ndarray (D,)
        Estimates ``log mean_s p(r, z_s) / q(z_s)`` in nats. The proposal ``q`` is a
        multivariate T (dof 8) centred on the mean-field variational posterior of ``z``
        (the Student-T noise written as a Gaussian scale mixture, 15 fixed-point
        iterations), with 1.15^2 x its covariance. Like any such estimate it is slightly
        biased low (by about half its variance); for ``N=20``, ``k=12`` the spread over seeds
        is ~0.02 nats per day at 1024 draws, i.e. 1e-3 nats per asset.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    r = np.asarray(r, dtype=np.float64)
    if r.ndim != 2:
        raise DataValidationError(f"r must be (D, N); got {r.shape}")
    D, N = r.shape
    W = np.asarray(W, dtype=np.float64)
    k = W.shape[-1]
    mu = np.broadcast_to(np.asarray(mu, dtype=np.float64), (D, N))
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (D, N))
    nu = np.broadcast_to(np.asarray(nu, dtype=np.float64), (D, N))
    W = np.broadcast_to(W, (D, N, k))
    S = int(n_samples)
    out = np.empty(D)
    chunk = max(1, max_cells // (S * max(N, k)))
    for s0 in range(0, D, chunk):
        sl = slice(s0, min(D, s0 + chunk))
        out[sl] = _is_chunk(r[sl], mu[sl], W[sl], sigma[sl], nu[sl], S, rng)
    return out


def _is_chunk(
    r: np.ndarray, mu: np.ndarray, W: np.ndarray, sigma: np.ndarray, nu: np.ndarray, S: int, rng: np.random.Generator
) -> np.ndarray:
    D, N, k = W.shape
    avail = np.isfinite(r)
    dev = np.where(avail, r - mu, 0.0)
    Wt = W.transpose(0, 2, 1)
    # mean-field variational posterior q(z) q(u): each T is a Gaussian scale mixture, and
    # u_i's expected precision and z's Gaussian posterior are iterated to a fixed point
    ubar = np.broadcast_to((nu - 2) / nu, (D, N)).copy()
    WW = W[:, :, :, None] * W[:, :, None, :]  # (D, N, k, k)
    for _ in range(_VB_ITER):
        a = avail * ubar / sigma**2
        P = np.eye(k) + np.einsum("dn,dnkl->dkl", a, WW)
        Pinv = np.linalg.inv(P)
        m = np.matmul(Pinv, np.matmul(Wt, (a * dev)[:, :, None]))[:, :, 0]
        e2 = (dev - np.matmul(W, m[:, :, None])[:, :, 0]) ** 2 + np.einsum("dnkl,dkl->dn", WW, Pinv)
        ubar = (nu + 1) / (nu + e2 / sigma**2)
    dof = _PROPOSAL_DOF
    A = _PROPOSAL_WIDEN * np.sqrt((dof - 2) / dof) * safe_cholesky(0.5 * (Pinv + Pinv.transpose(0, 2, 1)))
    u, logq_u = _mvt_standard(rng, (D, S), k, dof)
    z = m[:, None, :] + np.matmul(u, A.transpose(0, 2, 1))  # (D, S, k)
    logq = logq_u - np.log(np.diagonal(A, axis1=1, axis2=2)).sum(axis=1)[:, None]
    logprior = -0.5 * (z * z).sum(axis=2) - 0.5 * k * _LOG_2PI
    e = dev[:, None, :] - np.matmul(z, Wt)  # (D, S, N)
    const = np.where(avail, _t_const(nu, sigma), 0.0)
    lt = np.log1p(e * e / (nu * sigma**2)[:, None, :]) * avail[:, None, :]
    ll = const.sum(axis=1)[:, None] - (((nu + 1) / 2)[:, None, :] * lt).sum(axis=2)
    lw = ll + logprior - logq
    mx = lw.max(axis=1)
    return mx + np.log(np.mean(np.exp(lw - mx[:, None]), axis=1))


# ============================================================================ marginals
def _quad_nodes(b: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trapezoid nodes/weights over the standard normal, fine enough for ``sigma / b``."""
    with np.errstate(divide="ignore"):
        ratio = float(np.min(np.where(b > 0, sigma / np.maximum(b, 1e-300), np.inf)))
    h = float(np.clip(ratio / 4.0, 0.004, 0.05)) if np.isfinite(ratio) else 0.05
    g = np.arange(-8.5, 8.5 + h / 2, h)
    w = np.exp(-0.5 * g * g)
    return g, w / w.sum()


class TFactorPredictive(Predictive):
    """Next-day distribution of the PPCA / Student-T factor model with Gaussian factors.

    ``z ~ N(0, I_k)``, ``r_i | z ~ T(nu_i, mu_i + w_i' z, sigma_i)``.

    * ``mean`` and ``cov`` (``W W' + diag(sigma^2 nu / (nu - 2))``) are exact.
    * ``log_prob`` is an importance-sampling **estimate** with a fixed seed
      (:func:`tfactor_log_density`, ``n_is_samples`` draws); ``NaN`` entries are
      marginalised out.
    * Marginals ``r_i = mu_i + b_i g + sigma_i t`` (``b_i = ||w_i||``) are computed by
      quadrature over the Gaussian part (a trapezoid rule with a step adapted to
      ``min_i sigma_i / b_i``; it agrees with adaptive quadrature to 1e-7 in the tests);
      ``marginal_ppf`` inverts the CDF by bisection.

    Parameters
    ----------
    mu, sigma, nu : ndarray (N,)
    W : ndarray (N, k)
    n_is_samples : int
    seed : int
        Seed of the importance sampler.
    """

    has_closed_form: ClassVar[bool] = False
    has_log_prob: ClassVar[bool] = True

    def __init__(
        self,
        mu: np.ndarray,
        W: np.ndarray,
        sigma: np.ndarray,
        nu: np.ndarray,
        n_is_samples: int = 1024,
        seed: int = 0,
    ) -> None:
        self.mu = np.asarray(mu, dtype=np.float64)
        self.W = np.asarray(W, dtype=np.float64)
        N = self.mu.shape[0]
        self.sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (N,)).copy()
        self.nu = np.broadcast_to(np.asarray(nu, dtype=np.float64), (N,)).copy()
        if self.W.ndim != 2 or self.W.shape[0] != N:
            raise DataValidationError(f"W must be (N, k) with N={N}; got {self.W.shape}")
        if (self.nu <= 2).any() or (self.sigma <= 0).any():
            raise DataValidationError("need nu > 2 and sigma > 0")
        self.n_is_samples = int(n_is_samples)
        self.seed = int(seed)
        self._b = np.sqrt((self.W**2).sum(axis=1))
        self._nodes: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def n_assets(self) -> int:
        return int(self.mu.shape[0])

    @property
    def n_factors(self) -> int:
        """Number of latent factors ``k``."""
        return int(self.W.shape[1])

    def mean(self) -> np.ndarray:
        return self.mu.copy()

    def cov(self) -> np.ndarray:
        return self.W @ self.W.T + np.diag(self.sigma**2 * self.nu / (self.nu - 2))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws ``(n, N)``: ``mu + W z + sigma * t_nu`` from ``rng``."""
        z = rng.standard_normal((int(n), self.n_factors))
        t = rng.standard_t(self.nu, size=(int(n), self.n_assets))
        return self.mu + z @ self.W.T + self.sigma * t

    def log_prob(self, r: np.ndarray) -> np.ndarray:
        """Importance-sampled **estimate** of the joint log density of ``r`` ``(..., N)``.

        Deterministic (seed ``self.seed``); see :func:`tfactor_log_density` for its accuracy.
        """
        r = np.asarray(r, dtype=np.float64)
        if r.shape[-1] != self.n_assets:
            raise DataValidationError(f"r has {r.shape[-1]} assets, expected {self.n_assets}")
        flat = r.reshape(-1, self.n_assets)
        out = tfactor_log_density(
            flat, self.mu, self.W, self.sigma, self.nu, self.n_is_samples, np.random.default_rng(self.seed)
        )
        return out.reshape(r.shape[:-1])

    def _grid(self) -> tuple[np.ndarray, np.ndarray]:
        if self._nodes is None:
            self._nodes = _quad_nodes(self._b, self.sigma)
        return self._nodes

    def _cdf(self, x: np.ndarray) -> np.ndarray:
        """Marginal CDFs at ``x`` ``(M, N)`` -> ``(M, N)``."""
        g, w = self._grid()
        out = np.empty(x.shape)
        step = max(1, 2**21 // (x.shape[1] * g.size))
        for s in range(0, x.shape[0], step):
            y = (x[s : s + step, :, None] - self.mu[:, None] - self._b[:, None] * g) / self.sigma[:, None]
            out[s : s + step] = special.stdtr(self.nu[:, None], y) @ w
        return out

    def marginal_log_prob(self, r: np.ndarray) -> np.ndarray:
        r = np.asarray(r, dtype=np.float64)
        x = r.reshape(-1, self.n_assets)
        g, w = self._grid()
        out = np.empty(x.shape)
        c = _t_const(self.nu, self.sigma)[:, None]
        step = max(1, 2**21 // (x.shape[1] * g.size))
        for s in range(0, x.shape[0], step):
            y = (x[s : s + step, :, None] - self.mu[:, None] - self._b[:, None] * g) / self.sigma[:, None]
            dens = np.exp(c - (self.nu[:, None] + 1) / 2 * np.log1p(y * y / self.nu[:, None]))
            with np.errstate(divide="ignore"):
                out[s : s + step] = np.log(dens @ w)
        return out.reshape(r.shape)

    def marginal_cdf(self, r: np.ndarray) -> np.ndarray:
        r = np.asarray(r, dtype=np.float64)
        return self._cdf(r.reshape(-1, self.n_assets)).reshape(r.shape)

    def marginal_ppf(self, q: np.ndarray) -> np.ndarray:
        """Quantiles ``(Q, N)`` at levels ``q`` ``(Q,)`` by bisection on the quadrature CDF."""
        q = np.asarray(q, dtype=np.float64).reshape(-1)
        Q, N = q.size, self.n_assets
        qq = np.clip(q, 1e-300, 1 - 1e-16)[:, None]
        # union bound: CDF(Q_G(q/2) + Q_T(q/2)) <= q <= CDF(Q_G((1+q)/2) + Q_T((1+q)/2))
        lo = self.mu + self._b * special.ndtri(qq / 2) + self.sigma * special.stdtrit(self.nu, qq / 2)
        hi = self.mu + self._b * special.ndtri((1 + qq) / 2) + self.sigma * special.stdtrit(self.nu, (1 + qq) / 2)
        target = np.broadcast_to(qq, (Q, N))
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            below = self._cdf(mid) < target
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        out = 0.5 * (lo + hi)
        out[q <= 0] = -np.inf
        out[q >= 1] = np.inf
        return out


# ============================================================================ estimation
def _eig_desc(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of ``(..., N, N)`` with eigenvalues in decreasing order."""
    lam, U = np.linalg.eigh(C)
    return lam[..., ::-1], U[..., ::-1]


def tipping_bishop(lam: np.ndarray, U: np.ndarray, diag: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """PPCA closed form ``W = U_k (L_k - s2 I)^{1/2}`` and residual variances.

    Parameters
    ----------
    lam : ndarray (..., N)
        Eigenvalues in decreasing order; ``U`` (..., N, N) the eigenvectors (columns).
    diag : ndarray (..., N)
        Diagonal of the covariance the decomposition came from.
    k : int
        Number of factors, ``1 <= k < N``.

    Returns
    -------
    W : ndarray (..., N, k)
    psi : ndarray (..., N)
        ``diag - ||w_i||^2`` (>= the isotropic ``s2``-part, floored at ``1e-8 * mean(diag)``).
    """
    s2 = lam[..., k:].mean(axis=-1)
    W = U[..., :k] * np.sqrt(np.maximum(lam[..., :k] - s2[..., None], 0.0))[..., None, :]
    psi = diag - (W * W).sum(axis=-1)
    return W, np.maximum(psi, 1e-8 * diag.mean(axis=-1, keepdims=True))


def _solve_nu(c: np.ndarray) -> np.ndarray:
    """Root in ``[NU_MIN, NU_MAX]`` of ``log(nu/2) - digamma(nu/2) + 1 + c = 0`` (vectorised)."""
    lo = np.full(c.shape, np.log(NU_MIN))
    hi = np.full(c.shape, np.log(NU_MAX))

    def f(x: np.ndarray) -> np.ndarray:
        v = np.exp(x) / 2
        return np.log(v) - special.digamma(v) + 1 + c

    # f decreases in nu; clamp when the root lies outside the bounds
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        pos = f(mid) > 0
        lo = np.where(pos, mid, lo)
        hi = np.where(pos, hi, mid)
    return np.exp(0.5 * (lo + hi))


def fit_tppca_em(
    X: np.ndarray,
    k: int,
    *,
    mean: str = "zero",
    n_iter: int = 100,
    n_samples: int = 16,
    tol: float = 1e-5,
    rng: np.random.Generator | None = None,
) -> dict[str, Any]:
    """Maximum likelihood for the Student-T-decoder PPCA by Monte Carlo ECM.

    Parameters
    ----------
    X : ndarray (T, N)
        Train returns, ``NaN`` where unavailable.
    k : int
        Number of factors (``1 <= k < N``).
    mean : {"zero", "sample"}
        ``"zero"`` fixes ``mu = 0``; ``"sample"`` estimates it.
    n_iter : int
        Maximum ECM iterations.
    n_samples : int
        Importance draws of ``z`` per day (common random numbers across iterations).
    tol : float
        Stop when the estimated mean log-likelihood per asset-day changes by less than
        ``tol`` twice in a row.
    rng : numpy.random.Generator
        Source of the (fixed) importance draws; default seed 0.

    Returns
    -------
    dict
        ``mu`` (N,), ``W`` (N, k), ``sigma`` (N,), ``nu`` (N,), ``loglik`` (list: importance
        estimate of the mean train log-likelihood per asset-day at each iteration, ``n_samples``
        draws so biased low), ``n_iter``, ``converged``.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    X = np.asarray(X, dtype=np.float64)
    T, N = X.shape
    if not 1 <= k < N:
        raise DataValidationError(f"n_factors must satisfy 1 <= k < N={N}; got {k}")
    M = np.isfinite(X)
    Mf = M.astype(np.float64)
    X0 = np.where(M, X, 0.0)
    n_i = np.maximum(M.sum(axis=0), 1)
    n_obs = float(M.sum())
    # Tipping & Bishop start
    mu0, C = window_moments(X[None], mean=mean, cov="sample", fallback_var=np.nanvar(X, axis=0))
    lam, U = _eig_desc(C[0])
    W, psi = tipping_bishop(lam, U, np.diag(C[0]), k)
    mu = mu0[0]
    nu = np.full(N, 8.0)
    sigma = np.sqrt(psi * (nu - 2) / nu)
    S = int(n_samples)
    u, logq_u = _mvt_standard(rng, (T, S), k)
    ubar = np.broadcast_to((nu - 2) / nu, (T, N)).copy()  # E[u | data] starts at 1/variance-ratio
    p = k + (mean == "sample")
    trace: list[float] = []
    converged = False
    small = 0
    chunk = max(1, 2**14 // S)  # days per block of the M-step (16384 draws)
    for _ in range(int(n_iter)):
        # ---------------- E-step: proposal = Gaussian posterior of z given E[u]
        a = Mf * ubar / sigma**2  # (T, N)
        WW = (W[:, :, None] * W[:, None, :]).reshape(N, k * k)
        P = np.eye(k) + (a @ WW).reshape(T, k, k)
        L = safe_cholesky(P)
        m = np.linalg.solve(P, ((a * (X0 - mu)) @ W)[:, :, None])[:, :, 0]
        A = 1.2 * np.linalg.inv(L).transpose(0, 2, 1)
        logdet = np.log(np.abs(np.diagonal(A, axis1=1, axis2=2))).sum(axis=1)
        z = m[:, None, :] + np.matmul(u, A.transpose(0, 2, 1))  # (T, S, k)
        logq = logq_u - logdet[:, None]
        logprior = -0.5 * (z * z).sum(axis=2) - 0.5 * k * _LOG_2PI
        e = X0[:, None, :] - mu - z @ W.T  # (T, S, N)
        q = e * e / sigma**2
        lq = np.log1p(q / nu)
        ll = (Mf[:, None, :] * (_t_const(nu, sigma) - (nu + 1) / 2 * lq)).sum(axis=2)
        lw = ll + logprior - logq
        mx = lw.max(axis=1, keepdims=True)
        w = np.exp(lw - mx)
        sw = w.sum(axis=1, keepdims=True)
        trace.append(float((mx[:, 0] + np.log(sw[:, 0] / S)).sum() / n_obs))
        w /= sw
        Eu = (nu + 1) / (nu + q)  # (T, S, N)
        Elogu = special.digamma((nu + 1) / 2) - np.log(nu / 2) - lq
        ubar = (w[:, :, None] * Eu).sum(axis=1)
        c = (w[:, :, None] * Mf[:, None, :] * (Elogu - Eu)).sum(axis=(0, 1)) / n_i
        # ---------------- CM-steps: (mu, W) by weighted least squares, then sigma, nu
        wts = w[:, :, None] * Eu * Mf[:, None, :]  # (T, S, N)
        Zt = np.concatenate([np.ones((T, S, 1)), z], axis=2) if mean == "sample" else z
        A_n = np.zeros((p * p, N))
        for s0 in range(0, T, chunk):
            zc = Zt[s0 : s0 + chunk].reshape(-1, p)
            # (outer products)' @ weights: this operand order is the fast BLAS path
            A_n += (zc[:, :, None] * zc[:, None, :]).reshape(-1, p * p).T @ wts[s0 : s0 + chunk].reshape(-1, N)
        b_n = np.einsum("tn,tnp->np", X0, np.matmul(wts.transpose(0, 2, 1), Zt))
        A_n = A_n.T.reshape(N, p, p) + 1e-12 * np.eye(p)
        coef = np.linalg.solve(A_n, b_n[:, :, None])[:, :, 0]  # (N, p)
        if mean == "sample":
            mu, W = coef[:, 0], coef[:, 1:]
        else:
            W = coef
        e = X0[:, None, :] - mu - z @ W.T
        sigma = np.sqrt(np.maximum((wts * e * e).sum(axis=(0, 1)) / n_i, 1e-300))
        nu = _solve_nu(c)
        if len(trace) > 1 and abs(trace[-1] - trace[-2]) < tol:
            small += 1
            if small >= 2:
                converged = True
                break
        else:
            small = 0
    return {"mu": mu, "W": W, "sigma": sigma, "nu": nu, "loglik": trace, "n_iter": len(trace), "converged": converged}


def _golden_min(f: Any, lo: float, hi: float, n_iter: int = 20) -> float:
    """Minimise a unimodal ``f`` on ``[lo, hi]`` by golden-section search."""
    g = (np.sqrt(5.0) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(n_iter):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return 0.5 * (a + b)


# ============================================================================ simulator
class _PPCASimulator(PathSimulator):
    """Paths of the T-decoder PPCA (rolling: re-estimated each step from the path's window)."""

    def __init__(self, gen: PPCAGenerator, windows: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        self._gen = gen
        self._X = windows
        self._pos = 0
        k, n = gen.n_factors_, gen.n_assets_
        nu = gen._nu_vector()
        self._streams = PathStreams(
            rngs, lambda g, b: (g.standard_normal((b, k)), g.standard_t(nu, size=(b, n)))
        )
        self._params: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        #: Number of simulated cells clipped into [-0.99, 1.0] (expected 0).
        self.n_clipped = 0

    @property
    def n_paths(self) -> int:
        return int(self._X.shape[0])

    @property
    def n_assets(self) -> int:
        return int(self._X.shape[2])

    def _current(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._params is None:
            self._params = self._gen._params_for(self._X)
        return self._params

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        mu, W, sigma = self._current()
        nu = self._gen._nu_vector()
        cov = np.matmul(W, W.transpose(0, 2, 1))
        cov[:, np.arange(self.n_assets), np.arange(self.n_assets)] += sigma**2 * nu / (nu - 2)
        return mu.copy(), cov

    def step(self) -> np.ndarray:
        mu, W, sigma = self._current()
        z, t = self._streams.next()
        r = mu + rowwise_matvec(W, z) + sigma * t
        r, bad = clip_simulated(r)
        self.n_clipped += bad
        if self._gen.window_ != "train":
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


# ============================================================================ generator
@register_generator
class PPCAGenerator(ReturnGenerator):
    """Probabilistic PCA with a Student-T decoder ("ppca"); see the module docstring.

    Parameters
    ----------
    n_factors : int or "auto"
        Number of factors ``k``; ``"auto"`` chooses from ``factor_grid`` on validation.
    window : int, "train" or "auto"
        Rolling estimation window in days, ``"train"`` for parameters fitted once on the
        train rows, or ``"auto"`` to choose from ``window_grid`` on validation.
    mean : {"zero", "sample"}
        Zero mean, or estimated (``mu`` by ML in train mode, the window mean when rolling).
    factor_grid : sequence of int
        Candidates for ``n_factors="auto"`` (values ``>= N`` are dropped).
    window_grid : sequence of int or "train"
        Candidates for ``window="auto"``.
    n_is_samples : int
        Importance draws per day of the predictive :meth:`~TFactorPredictive.log_prob`.
    select_is_samples : int
        Importance draws per day when scoring candidates (validation) and fitting ``nu``.
    nu_days : int
        Train days (evenly spaced) on which the rolling mode's ``nu`` is fitted.
    em_iter, em_samples, em_tol :
        Monte Carlo ECM settings of the train mode (see :func:`fit_tppca_em`).

    Attributes
    ----------
    assets_, n_assets_ :
    n_factors_ : int
    window_ : int or "train"
    nu_ : ndarray (N,)
        Degrees of freedom (one shared value repeated when rolling).
    mu_, W_, sigma_ : ndarray
        Fixed parameters in train mode (``(N,)``, ``(N, k)``, ``(N,)``); ``None`` when rolling.
    validation_ : dict
        ``{"<window>/<k>": mean validation NLL per asset-day}`` of every candidate scored.
    candidates_ : dict
        ``{"<window>/<k>": {"nu_median", and for train mode "n_iter", "converged"}}``.
    em_info_ : dict
        Iterations / convergence of the train-mode fit (empty when rolling).
    """

    kind: ClassVar[str] = "ppca"

    def __init__(
        self,
        n_factors: int | str = "auto",
        window: int | str = "auto",
        mean: str = "zero",
        factor_grid: Sequence[int] = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15),
        window_grid: Sequence[int | str] = (126, 252, 504, "train"),
        n_is_samples: int = 1024,
        select_is_samples: int = 256,
        nu_days: int = 300,
        em_iter: int = 100,
        em_samples: int = 16,
        em_tol: float = 1e-5,
    ) -> None:
        self.n_factors = n_factors
        self.window = window
        self.mean = mean
        self.factor_grid = tuple(int(k) for k in factor_grid)
        self.window_grid = tuple(w if w == "train" else int(w) for w in window_grid)
        self.n_is_samples = n_is_samples
        self.select_is_samples = select_is_samples
        self.nu_days = nu_days
        self.em_iter = em_iter
        self.em_samples = em_samples
        self.em_tol = em_tol

    def get_params(self) -> dict[str, Any]:
        return {
            "n_factors": self.n_factors,
            "window": self.window,
            "mean": self.mean,
            "factor_grid": list(self.factor_grid),
            "window_grid": list(self.window_grid),
            "n_is_samples": self.n_is_samples,
            "select_is_samples": self.select_is_samples,
            "nu_days": self.nu_days,
            "em_iter": self.em_iter,
            "em_samples": self.em_samples,
            "em_tol": self.em_tol,
        }

    def _check_params(self, n_assets: int) -> None:
        if self.mean not in ("zero", "sample"):
            raise DataValidationError(f"mean must be 'zero' or 'sample'; got {self.mean!r}")
        if n_assets < 2:
            raise DataValidationError("PPCA needs at least 2 assets")
        if self.n_factors != "auto" and not (isinstance(self.n_factors, (int, np.integer)) and 1 <= self.n_factors < n_assets):
            raise DataValidationError(f"n_factors must be 'auto' or an int in [1, {n_assets}); got {self.n_factors!r}")
        for w in (self.window,) if self.window != "auto" else self.window_grid:
            if w != "train" and not (isinstance(w, (int, np.integer)) and w > n_assets):
                raise DataValidationError(
                    f"a rolling window must be an int > N={n_assets} (or 'train'); got {w!r}"
                )

    @property
    def min_history(self) -> int:
        check_fitted(self, "window_")
        return 1 if self.window_ == "train" else int(self.window_)

    def _nu_vector(self) -> np.ndarray:
        return np.asarray(self.nu_, dtype=np.float64)

    # ------------------------------------------------------------------ parameters from windows
    def _params_for(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-window ``mu (B, N)``, ``W (B, N, k)``, ``sigma (B, N)`` for windows ``(B, W, N)``."""
        B = X.shape[0]
        if self.window_ == "train":
            return (
                np.broadcast_to(self.mu_, (B, self.n_assets_)),
                np.broadcast_to(self.W_, (B,) + self.W_.shape),
                np.broadcast_to(self.sigma_, (B, self.n_assets_)),
            )
        mu, C = window_moments(X, mean=self.mean, cov="sample", fallback_var=self.train_var_)
        lam, U = _eig_desc(C)
        W, psi = tipping_bishop(lam, U, np.diagonal(C, axis1=1, axis2=2), self.n_factors_)
        nu = self.nu_[0]
        return mu, W, np.sqrt(psi * (nu - 2) / nu)

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        panel: ReturnPanel,
        split: Split,
        *,
        out_dir: str | Path | None = None,
        progress: bool = True,
        rng: np.random.Generator | None = None,
    ) -> PPCAGenerator:
        """Fit on the train rows; choose ``k`` and the window on the validation rows.

        Every candidate ``(window, k)`` is fitted on train only and scored by its mean
        validation NLL per asset-day (importance-sampled, ``select_is_samples`` draws). With
        ``out_dir``, each scored candidate is checkpointed to ``out_dir/ppca_selection.fgz``
        and a re-run with the same data and settings resumes from it.

        ``rng`` seeds the importance draws (default seed 0); the fit is deterministic given it.
        """
        self._check_params(panel.N)
        (t0, t1), val = split_rows(panel, split)
        R = np.asarray(panel.returns)
        N = panel.N
        seed = int((np.random.default_rng(0) if rng is None else rng).integers(2**31))
        say = progress_printer(progress)
        train_var = np.nanvar(R[t0:t1], axis=0)
        if not np.isfinite(train_var).all() or (train_var <= 0).any():
            raise DataValidationError("every asset needs at least two distinct train returns")
        ks = [self.n_factors] if self.n_factors != "auto" else [k for k in self.factor_grid if 1 <= k < N]
        windows = [self.window] if self.window != "auto" else list(self.window_grid)
        if not ks:
            raise DataValidationError(f"no factor count in {self.factor_grid} is below N={N}")
        select = len(ks) * len(windows) > 1
        if select:
            require_val_rows(val, "the number of factors / window")
        val_days = np.arange(*val)
        for w in windows:
            if w != "train" and select and w > val[0]:
                raise DataValidationError(f"window {w} is longer than the history before the validation rows")
            if w != "train" and t1 - t0 <= w + 1:
                raise DataValidationError(f"window {w} leaves no train days to fit nu on")

        ckpt = _Checkpoint(out_dir, {"config": self.get_params(), "seed": seed, "data": data_fingerprint(R[t0 : max(t1, val[1])]), "assets": list(panel.assets)})
        scores: dict[str, float] = dict(ckpt.scores)
        fitted: dict[str, dict[str, Any]] = dict(ckpt.fitted)
        for w in windows:
            if w == "train":
                for k in ks:
                    key = f"train/{k}"
                    if key not in fitted:
                        say(f"ppca: ECM fit, k={k} ...")
                        fit = fit_tppca_em(
                            R[t0:t1], k, mean=self.mean, n_iter=self.em_iter, n_samples=self.em_samples,
                            tol=self.em_tol, rng=np.random.default_rng([seed, k]),
                        )
                        fitted[key] = fit
                        if select:
                            lp = tfactor_log_density(
                                R[val_days], fit["mu"], fit["W"], fit["sigma"], fit["nu"],
                                self.select_is_samples, np.random.default_rng([seed, 1]),
                            )
                            scores[key] = float(np.nanmean(per_asset_nll(lp, R[val_days])))
                        ckpt.save(scores, fitted)
                    say(f"ppca: train k={k}: {fitted[key]['n_iter']} ECM iterations, validation NLL {scores.get(key, float('nan')):.4f}")
                continue
            w = int(w)
            nu_days = np.arange(t0 + w, t1)
            if len(nu_days) > self.nu_days:
                nu_days = nu_days[np.linspace(0, len(nu_days) - 1, self.nu_days).round().astype(int)]
            todo = [k for k in ks if f"{w}/{k}" not in fitted]
            if not todo:
                continue
            eig_nu = self._rolling_eig(windows_before(R, nu_days, w), train_var)
            eig_val = self._rolling_eig(windows_before(R, val_days, w), train_var) if select else None
            for k in todo:
                key = f"{w}/{k}"
                nu = self._fit_rolling_nu(eig_nu, R[nu_days], k, seed)
                fitted[key] = {"nu": np.array([nu])}
                if select:
                    assert eig_val is not None
                    lp = self._rolling_logp(eig_val, R[val_days], k, nu, seed)
                    scores[key] = float(np.nanmean(per_asset_nll(lp, R[val_days])))
                ckpt.save(scores, fitted)
                scored = f", validation NLL {scores[key]:.4f}" if key in scores else " (fixed, not selected on validation)"
                say(f"ppca: window {w} k={k}: nu={nu:.2f}{scored}")

        keys = [f"{w}/{k}" for w in windows for k in ks]
        best = min(keys, key=lambda s: scores.get(s, np.inf)) if select else keys[0]
        w_s, k_s = best.split("/")
        self.assets_ = tuple(panel.assets)
        self.n_assets_ = N
        self.train_var_ = train_var
        self.n_factors_ = int(k_s)
        self.window_ = "train" if w_s == "train" else int(w_s)
        self.validation_ = {s: scores[s] for s in keys if s in scores}
        self.candidates_ = {s: _candidate_info(fitted[s]) for s in keys}
        fit = fitted[best]
        if self.window_ == "train":
            self.mu_, self.W_, self.sigma_ = fit["mu"], fit["W"], fit["sigma"]
            self.nu_ = np.asarray(fit["nu"], dtype=np.float64)
            self.em_info_ = {"n_iter": int(fit["n_iter"]), "converged": bool(fit["converged"]),
                             "train_loglik_is": float(fit["loglik"][-1])}
        else:
            self.mu_ = self.W_ = self.sigma_ = None
            self.nu_ = np.full(N, float(np.asarray(fit["nu"]).reshape(-1)[0]))
            self.em_info_ = {}
        return self

    def _rolling_eig(self, X: np.ndarray, train_var: np.ndarray) -> tuple[np.ndarray, ...]:
        mu, C = window_moments(X, mean=self.mean, cov="sample", fallback_var=train_var)
        lam, U = _eig_desc(C)
        return mu, lam, U, np.diagonal(C, axis1=1, axis2=2).copy()

    def _rolling_logp(self, eig: tuple[np.ndarray, ...], r: np.ndarray, k: int, nu: float, seed: int) -> np.ndarray:
        mu, lam, U, diag = eig
        W, psi = tipping_bishop(lam, U, diag, k)
        sigma = np.sqrt(psi * (nu - 2) / nu)
        return tfactor_log_density(r, mu, W, sigma, np.full_like(sigma, nu), self.select_is_samples,
                                   np.random.default_rng([seed, 2]))

    def _fit_rolling_nu(self, eig: tuple[np.ndarray, ...], r: np.ndarray, k: int, seed: int) -> float:
        """ML of the shared ``nu`` on the train days' one-day-ahead log densities."""

        def nll(x: float) -> float:
            return -float(np.mean(self._rolling_logp(eig, r, k, 2.0 + np.exp(x), seed)))

        x = _golden_min(nll, np.log(NU_MIN - 2.0), np.log(NU_MAX - 2.0), n_iter=14)
        return float(2.0 + np.exp(x))

    # ------------------------------------------------------------------ prediction
    def _predictive(self, mu: np.ndarray, W: np.ndarray, sigma: np.ndarray) -> TFactorPredictive:
        return TFactorPredictive(mu, W, sigma, self._nu_vector(), self.n_is_samples, seed=0)

    def predict_window(self, window: np.ndarray) -> TFactorPredictive:
        """Distribution of the day after ``window`` ``(W, N)`` (unused in train mode)."""
        check_fitted(self, "window_")
        w = as_window(window, self.min_history, self.n_assets_)
        mu, W, sigma = self._params_for(w[None])
        return self._predictive(mu[0], W[0], sigma[0])

    def predict_windows(self, windows: np.ndarray) -> list[Predictive]:
        """Batched :meth:`predict_window` for ``(D, W, N)``."""
        check_fitted(self, "window_")
        w = as_windows(windows, self.min_history, self.n_assets_)
        mu, W, sigma = self._params_for(w)
        return [self._predictive(mu[d], W[d], sigma[d]) for d in range(w.shape[0])]

    def simulator_window(self, window: np.ndarray, rngs: Sequence[np.random.Generator]) -> PathSimulator:
        """Paths drawing ``mu + W z + sigma t`` per day; rolling mode re-estimates from each path's window."""
        check_fitted(self, "window_")
        X = path_windows(window, len(rngs), self.min_history, self.n_assets_)
        return _PPCASimulator(self, X, rngs)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write an artifact: kind, config, choice of k / window, parameters, scores, assets."""
        check_fitted(self, "window_")
        arrays = {"nu": self.nu_, "train_var": self.train_var_}
        if self.window_ == "train":
            arrays.update(mu=self.mu_, W=self.W_, sigma=self.sigma_)
        meta = {
            "kind": self.kind,
            "config": self.get_params(),
            "assets": list(self.assets_),
            "fitted": {"n_factors": self.n_factors_, "window": self.window_, "validation": self.validation_,
                       "candidates": self.candidates_, "em_info": self.em_info_},
        }
        write_artifact(path, meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> PPCAGenerator:
        meta, arrays = load_checked(path, cls.kind, ["nu", "train_var"], ["config", "assets", "fitted"])
        try:
            gen = cls(**meta["config"])
            assets = tuple(str(a) for a in meta["assets"])
            N = len(assets)
            gen._check_params(N)
            fitted = meta["fitted"]
            gen.assets_, gen.n_assets_ = assets, N
            gen.n_factors_ = int(fitted["n_factors"])
            gen.window_ = "train" if fitted["window"] == "train" else int(fitted["window"])
            gen.validation_ = {str(k): float(v) for k, v in fitted["validation"].items()}
            gen.em_info_ = dict(fitted["em_info"])
            gen.candidates_ = {str(k): dict(v) for k, v in fitted["candidates"].items()}
            gen.nu_ = check_shape(path, "nu", arrays["nu"], (N,))
            gen.train_var_ = check_shape(path, "train_var", arrays["train_var"], (N,))
            if not 1 <= gen.n_factors_ < N or (gen.nu_ <= 2).any():
                raise CheckpointError(f"{path}: invalid fitted parameters")
            if gen.window_ == "train":
                for name in ("mu", "W", "sigma"):
                    if name not in arrays:
                        raise CheckpointError(f"{path} is incomplete: missing {name}")
                gen.mu_ = check_shape(path, "mu", arrays["mu"], (N,))
                gen.W_ = check_shape(path, "W", arrays["W"], (N, gen.n_factors_))
                gen.sigma_ = check_shape(path, "sigma", arrays["sigma"], (N,))
            else:
                gen.mu_ = gen.W_ = gen.sigma_ = None
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path}: invalid ppca artifact: {exc}") from exc
        return gen


def _candidate_info(fit: dict[str, Any]) -> dict[str, Any]:
    """JSON-able diagnostics of one fitted candidate (``nu``; ECM iterations / convergence)."""
    nu = np.asarray(fit["nu"], dtype=np.float64).reshape(-1)
    info: dict[str, Any] = {"nu_median": float(np.median(nu))}
    if "n_iter" in fit:
        info.update(n_iter=int(fit["n_iter"]), converged=bool(fit["converged"]))
    return info


class _Checkpoint:
    """Per-candidate results of the PPCA selection, in ``out_dir/ppca_selection.fgz``."""

    _ARRAYS = ("mu", "W", "sigma", "nu")

    def __init__(self, out_dir: str | Path | None, identity: dict[str, Any]) -> None:
        self.path = None if out_dir is None else Path(out_dir) / "ppca_selection.fgz"
        self.key = config_hash(identity)
        self.scores: dict[str, float] = {}
        self.fitted: dict[str, dict[str, Any]] = {}
        if self.path is None or not self.path.exists():
            return
        meta, arrays, _ = read_artifact(self.path, expect_kind="ppca_selection")
        if meta.get("identity") != self.key:
            raise CheckpointError(
                f"{self.path} was written for other data or settings; delete it or use another out_dir"
            )
        try:
            self.scores = {str(k): float(v) for k, v in meta["scores"].items()}
            for cand, info in meta["fitted"].items():
                d: dict[str, Any] = dict(info)
                for a in self._ARRAYS:
                    if f"{cand}:{a}" in arrays:
                        d[a] = arrays[f"{cand}:{a}"]
                self.fitted[str(cand)] = d
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{self.path} is corrupt: {exc}") from exc

    def save(self, scores: dict[str, float], fitted: dict[str, dict[str, Any]]) -> None:
        if self.path is None:
            return
        arrays = {f"{c}:{a}": np.asarray(v[a]) for c, v in fitted.items() for a in self._ARRAYS if a in v}
        info = {c: {k: v for k, v in d.items() if k not in self._ARRAYS} for c, d in fitted.items()}
        write_artifact(self.path, {"kind": "ppca_selection", "identity": self.key, "scores": scores, "fitted": info}, arrays)

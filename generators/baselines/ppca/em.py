"""Estimation of the Student-T-decoder PPCA: the Tipping & Bishop closed form and Monte Carlo ECM.

Shapes: ``T`` days, ``N`` assets, ``k`` factors, ``S`` importance draws per day.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from factorgym.errors import DataValidationError
from factorgym.generators.baselines.common import safe_cholesky, window_moments
from factorgym.generators.baselines.ppca.density import (
    LOG_2PI,
    NU_MAX,
    NU_MIN,
    mvt_standard,
    t_log_const,
)

__all__ = ["eig_desc", "tipping_bishop", "fit_tppca_em", "golden_min"]


def eig_desc(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    # One function on purpose: the E-step and the CM-steps of an iteration share a dozen
    # (T, S, N) arrays (draws, weights, residuals); the body is ~80 lines after this docstring.
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
    lam, U = eig_desc(C[0])
    W, psi = tipping_bishop(lam, U, np.diag(C[0]), k)
    mu = mu0[0]
    nu = np.full(N, 8.0)
    sigma = np.sqrt(psi * (nu - 2) / nu)
    S = int(n_samples)
    u, logq_u = mvt_standard(rng, (T, S), k)
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
        logprior = -0.5 * (z * z).sum(axis=2) - 0.5 * k * LOG_2PI
        e = X0[:, None, :] - mu - z @ W.T  # (T, S, N)
        q = e * e / sigma**2
        lq = np.log1p(q / nu)
        ll = (Mf[:, None, :] * (t_log_const(nu, sigma) - (nu + 1) / 2 * lq)).sum(axis=2)
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


def golden_min(f: Any, lo: float, hi: float, n_iter: int = 20) -> float:
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

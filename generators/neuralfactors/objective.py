"""The NeuralFactors objective: densities, posterior and CIWAE bound (paper 2.3, 3.3).

Posterior (eq. 8). Moment-match the Student-T prior and decoder by Gaussians with the same
variances, ``Sigma_z = diag(s_z^2 nu_z / (nu_z - 2))`` and ``Sigma_x = diag(sigma_i^2
nu_i / (nu_i - 2))``; then ``q(z | r) = N(mu, Lambda^{-1})`` with precision ``Lambda =
Sigma_z^{-1} + B' Sigma_x^{-1} B`` and ``mu = Lambda^{-1} B' Sigma_x^{-1} (r - alpha)``
(``mu_z = 0``). Masked assets get zero weight in ``Sigma_x^{-1}``. Everything goes through
the Cholesky factor ``L L' = Lambda`` (``cholesky_solve`` / triangular solves, no inverse);
reparameterised draws are ``z = mu + L'^{-1} eps`` with ``eps ~ N(0, I)``.

Loss (eq. 3). The conditional IWAE bound with ``k`` draws per day,
``log (1/k) sum_j p(r | z_j) p(z_j) / q(z_j | r)``, negated and divided by the number of
available assets (nats per asset and day, in units of scaled returns).

The training loop that minimises it is :mod:`factorgym.generators.neuralfactors.training`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from factorgym.generators.neuralfactors.model import FactorParams, NeuralFactorsNet

__all__ = [
    "TrainData",
    "block_params",
    "ciwae_bound",
    "evaluate_bound",
    "gaussian_posterior",
    "iwae_log_weights",
    "student_t_logpdf",
    "variance_factor",
]

_LOG_2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------------- densities
def student_t_logpdf(x: Tensor, loc: Tensor, scale: Tensor, nu: Tensor) -> Tensor:
    """Elementwise log density of ``t_nu(loc, scale)``; ``nu = inf`` gives the Gaussian."""
    u = (x - loc) / scale
    if bool(torch.isinf(nu).all()):
        return -0.5 * u * u - torch.log(scale) - 0.5 * _LOG_2PI
    return (
        torch.lgamma((nu + 1) / 2)
        - torch.lgamma(nu / 2)
        - 0.5 * torch.log(nu * math.pi)
        - torch.log(scale)
        - (nu + 1) / 2 * torch.log1p(u * u / nu)
    )


def variance_factor(nu: Tensor) -> Tensor:
    """``nu / (nu - 2)``: variance of a unit-scale Student-T (1 for ``nu = inf``)."""
    return torch.where(torch.isinf(nu), torch.ones_like(nu), nu / (nu - 2))


def gaussian_posterior(
    beta: Tensor, alpha: Tensor, var_x: Tensor, var_z: Tensor, y: Tensor, mask: Tensor
) -> tuple[Tensor, Tensor]:
    """The moment-matched Gaussian posterior of eq. 8, via Cholesky.

    Parameters
    ----------
    beta : Tensor of shape (..., N, F)
    alpha, var_x, y : Tensor of shape (..., N)
        Decoder means, variances and the observed returns (finite everywhere).
    var_z : Tensor of shape (F,)
        Prior variances (``mu_z = 0``).
    mask : Tensor of shape (..., N), bool
        Available assets; the others contribute nothing.

    Returns
    -------
    mu : Tensor of shape (..., F)
        Posterior mean.
    chol : Tensor of shape (..., F, F)
        Lower Cholesky factor ``L`` of the posterior precision ``Lambda = L L'``.
    """
    w = torch.where(mask, 1.0 / var_x, torch.zeros_like(var_x))  # (..., N) = diag(Sigma_x^{-1})
    resid = torch.where(mask, y - alpha, torch.zeros_like(y))  # (..., N)
    prec = torch.einsum("...nf,...n,...ng->...fg", beta, w, beta)  # (..., F, F) = B' Sx^-1 B
    prec = prec + torch.diag_embed(1.0 / var_z)  # + Sz^-1
    chol = torch.linalg.cholesky(prec)  # (..., F, F)
    rhs = torch.einsum("...nf,...n->...f", beta, w * resid)  # (..., F) = B' Sx^-1 (r - alpha)
    mu = torch.cholesky_solve(rhs.unsqueeze(-1), chol).squeeze(-1)  # (..., F)
    return mu, chol


def iwae_log_weights(
    params: FactorParams,
    prior_scale: Tensor,
    prior_dof: Tensor,
    y: Tensor,
    mask: Tensor,
    eps: Tensor,
) -> Tensor:
    """Log importance weights ``log p(y|z_j) + log p(z_j) - log q(z_j|y)``.

    Parameters
    ----------
    params : FactorParams
        ``alpha, sigma, nu`` ``(..., N)``, ``beta`` ``(..., N, F)``.
    prior_scale, prior_dof : Tensor of shape (F,)
        ``prior_dof = inf`` for a Gaussian prior; ``params.nu = inf`` for a Gaussian decoder.
    y : Tensor of shape (..., N)
    mask : Tensor of shape (..., N), bool
    eps : Tensor of shape (k, ..., F)
        Standard normal noise; ``z_j = mu + L'^{-1} eps_j`` (reparameterised).

    Returns
    -------
    Tensor of shape (k, ...)
    """
    y = torch.where(mask, y, torch.zeros_like(y))
    var_x = params.sigma**2 * variance_factor(params.nu)  # (..., N)
    var_z = prior_scale**2 * variance_factor(prior_dof)  # (F,)
    mu, chol = gaussian_posterior(params.beta, params.alpha, var_x, var_z, y, mask)
    F = eps.shape[-1]  # noqa: N806
    # z = mu + L'^{-1} eps  (covariance L'^{-1} L^{-1} = Lambda^{-1})
    dz = torch.linalg.solve_triangular(chol.mT, eps.unsqueeze(-1), upper=True).squeeze(-1)  # (k, ..., F)
    z = mu + dz  # (k, ..., F)
    log_q = -0.5 * (eps * eps).sum(-1) - 0.5 * F * _LOG_2PI + torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    log_pz = student_t_logpdf(z, torch.zeros_like(z), prior_scale, prior_dof).sum(-1)  # (k, ...)
    loc = params.alpha + torch.einsum("...nf,k...f->k...n", params.beta, z)  # (k, ..., N)
    ll = student_t_logpdf(y, loc, params.sigma, params.nu)  # (k, ..., N)
    log_px = torch.where(mask, ll, torch.zeros_like(ll)).sum(-1)  # (k, ...)
    return log_px + log_pz - log_q


def ciwae_bound(log_w: Tensor) -> Tensor:
    """``log (1/k) sum_j exp(log_w_j)`` over the first axis: ``(k, ...)`` -> ``(...)``."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


# ---------------------------------------------------------------------- data
@dataclass
class TrainData:
    """The panel as tensors (built by the generator).

    Attributes
    ----------
    inputs : Tensor of shape (T, N, D), float32
        Model inputs of each day (see :mod:`.inputs`).
    y : Tensor of shape (T, N), float32
        Scaled returns (0 where unavailable).
    mask : Tensor of shape (T, N), bool
    asset_ids, sector_ids : LongTensor of shape (N,)
    train_rows : ndarray of int
        Target rows eligible for training (sorted; enough history, in the train split).
    val_rows : ndarray of int
        Contiguous validation target rows.
    """

    inputs: Tensor
    y: Tensor
    mask: Tensor
    asset_ids: Tensor
    sector_ids: Tensor
    train_rows: np.ndarray
    val_rows: np.ndarray


def block_params(
    net: NeuralFactorsNet, data: TrainData, first: Tensor, n_days: int, gen: torch.Generator | None
) -> tuple[FactorParams, Tensor, Tensor]:
    """Parameters for runs of ``n_days`` consecutive target days starting at rows ``first``.

    Each run is one causal pass over ``n_days + R - 1`` input days (``R`` the receptive
    field); the outputs at positions ``>= R - 1`` are exactly the per-day predictions.

    Returns
    -------
    params : FactorParams with leading shape (B, n_days)
    y, mask : Tensor of shape (B, n_days, N)
    """
    R = net.cfg.receptive_field  # noqa: N806
    B, N = first.shape[0], data.inputs.shape[1]  # noqa: N806
    rows = first[:, None] + torch.arange(n_days + R - 1, device=first.device) - R  # (B, S) input rows
    x = data.inputs[rows]  # (B, S, N, D)
    x = x.permute(0, 2, 1, 3).reshape(B * N, n_days + R - 1, -1)  # (B*N, S, D)
    h = net.encode(x, gen)[:, R - 1 :]  # (B*N, n_days, H)
    h = h.reshape(B, N, n_days, -1).transpose(1, 2)  # (B, n_days, N, H)
    params = net.heads(h, data.asset_ids, data.sector_ids, gen)
    targets = first[:, None] + torch.arange(n_days, device=first.device)  # (B, n_days)
    return params, data.y[targets], data.mask[targets]


def evaluate_bound(
    net: NeuralFactorsNet, data: TrainData, rows: np.ndarray, eps: Tensor, chunk: int = 128
) -> float:
    """Mean negative CIWAE bound (nats per available asset-day) over contiguous ``rows``.

    ``eps`` ``(k, len(rows), F)`` is the fixed noise (so repeated evaluations compare).
    """
    total, count = 0.0, 0.0
    with torch.inference_mode():
        prior_scale, prior_dof = net.prior()
        for a in range(0, len(rows), chunk):
            seg = rows[a : a + chunk]
            params, y, mask = block_params(net, data, torch.tensor([seg[0]], device=data.y.device), len(seg), None)
            lw = iwae_log_weights(params, prior_scale, prior_dof, y, mask, eps[:, None, a : a + len(seg)])
            total += float(ciwae_bound(lw).sum())
            count += float(mask.sum())
    return -total / max(count, 1.0)

"""The Gaussian diffusion process: noise schedule, training loss and samplers.

Discrete DDPM (Ho et al. 2020) with ``T`` steps ``n = 0..T-1``::

    q(y_n | y_0) = N(sqrt(abar_n) y_0, (1 - abar_n) I),   abar_n = prod_{m<=n} (1 - beta_m)

trained by noise prediction: the squared error of the predicted noise, averaged over present
assets, with per-step weights ``w_n`` (``loss_weight="eps"``: ``w_n = 1``, DDPM's simple loss;
``"trunc_snr"``, the generator's default: ``w_n = max(1, 1/SNR_n)``, see :meth:`GaussianDiffusion.loss`).

Output parametrisation (``skip=True``, the generator's default): the network output ``F``
enters the noise prediction through a built-in skip, ``eps_hat = sigma_n y_n + alpha_n F``
(``alpha_n = sqrt(abar_n)``, ``sigma_n = sqrt(1 - abar_n)``). The loss is unchanged (the
DDPM noise-prediction MSE); only the conditioning of the network improves. With a plain
eps network (``skip=False``) the sampler's ``x0 = (y - sigma eps) / alpha`` divides the
network's error by ``alpha_n``, which is ~5e-4 at the last step of a cosine schedule, so
few-step DDIM / DPM-Solver samples blow up (std 1.5-2x too large after a 600-step fit on
the Gaussian of ``test_short_fit_recovers_gaussian_mean_and_covariance``); with the skip,
``x0 = alpha y - sigma F`` needs no division, and a zero-initialised output (adaLN-Zero)
starts as the exact denoiser of standard-normal data.

Samplers (all batched over the leading dimension: scenarios x days):

* ``ddpm`` - ancestral sampling over all ``T`` steps with the posterior variance
  ``beta_tilde``;
* ``ddim`` - DDIM (Song et al. 2021) on ``S`` evenly spaced steps with stochasticity
  ``eta`` (0: deterministic, 1: ancestral on the respaced chain);
* ``dpm2m`` - multistep DPM-Solver-2 (Lu et al. 2022, noise-prediction form), the
  second-order solver of the same probability-flow ODE that deterministic DDIM solves to
  first order, on the same ``S`` steps and with one network call per step. DDIM's
  first-order error shrinks the spread of the samples at small ``S``: with the exact
  denoiser of unit-Gaussian data each step multiplies the std by the cosine of the step's
  angle, -6% at ``S = 20`` on the 1000-step cosine schedule (-10% with ``eta = 1``); the
  second-order update leaves +1% (``test_samplers_recover_gaussian_with_exact_denoiser``).

Why ``trunc_snr``: under the simple loss the noise error at step ``n`` equals ``SNR_n`` times
the error of the implied ``x0`` prediction, so the high-noise steps (``SNR << 1``) barely
train the ``x0`` prediction. On the Gaussian of the short-fit test this leaves the
high-noise predictions with their mean shrunk to 0 and their correlation wrong, and the
deterministic samplers (DDIM ``eta = 0``, ``dpm2m``) carry that to the samples (mean -0.06 sd,
correlation 0.59 instead of 0.5); with ``max(1, 1/SNR)`` they come out at +0.02 sd and 0.46.

Every sampler takes its Gaussian noise **pre-drawn** as one tensor of shape
``(n_draws, B, N)`` (see :meth:`GaussianDiffusion.n_noise_draws`): draw 0 starts the chain,
draw ``k`` is the noise of the ``k``-th stochastic step. A caller can therefore draw each
scenario's noise from its own stream (``numpy.random.Generator`` per simulated path) or all of
it from one ``torch.Generator``; either way a scenario's result depends only on its own noise,
never on the batch it is computed in.

The ``x0`` prediction is clipped to ``[-clip, clip]``, the support of the (winsorised)
training targets, before each update (``clip_denoised`` in the DDPM/DDIM references).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from factorgym.errors import DataValidationError

__all__ = ["GaussianDiffusion", "beta_schedule"]

#: ``(y_n (..., N), n) -> output (..., N)``: the network with its conditioning bound, at step n.
Denoiser = Callable[[torch.Tensor, int], torch.Tensor]


def beta_schedule(kind: str, n_steps: int) -> np.ndarray:
    """Noise variances ``beta_n`` ``(n_steps,)`` (float64).

    ``"linear"``: Ho et al.'s 1e-4 .. 0.02 for 1000 steps, rescaled by ``1000 / n_steps`` so
    that other lengths span the same noise range (Nichol & Dhariwal 2021).
    ``"cosine"``: ``abar(n) = cos^2(((n/T + s) / (1 + s)) pi / 2)`` with ``s = 0.008`` and betas
    clipped at 0.999.
    """
    if n_steps < 2:
        raise DataValidationError(f"a diffusion needs at least 2 steps, got {n_steps}")
    if kind == "linear":
        scale = 1000.0 / n_steps
        return np.linspace(scale * 1e-4, min(scale * 0.02, 0.999), n_steps, dtype=np.float64)
    if kind == "cosine":
        s = 0.008
        u = np.arange(n_steps + 1, dtype=np.float64) / n_steps
        f = np.cos((u + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        return np.clip(1.0 - abar[1:] / abar[:-1], 0.0, 0.999)
    raise DataValidationError(f"unknown noise schedule {kind!r}; expected 'linear' or 'cosine'")


class GaussianDiffusion:
    """A discrete Gaussian diffusion of length ``n_steps``.

    Parameters
    ----------
    schedule : {"linear", "cosine"}
    n_steps : int
        ``T``.
    skip : bool
        Network output ``F`` means ``eps_hat = sigma_n y_n + alpha_n F`` (True) or ``eps_hat = F``.
    loss_weight : {"eps", "trunc_snr"}
        Per-step weight of the noise MSE (see :meth:`loss`).
    weight_cap : float, optional
        Upper bound of the ``trunc_snr`` weights.

    Attributes
    ----------
    betas, alphas_cumprod : ndarray of shape (T,), float64
    """

    def __init__(
        self,
        schedule: str = "cosine",
        n_steps: int = 1000,
        skip: bool = False,
        loss_weight: str = "eps",
        weight_cap: float | None = None,
    ) -> None:
        if loss_weight not in ("eps", "trunc_snr"):
            raise DataValidationError(f"loss_weight must be 'eps' or 'trunc_snr', got {loss_weight!r}")
        self.schedule = schedule
        self.skip = bool(skip)
        self.loss_weight = loss_weight
        self.n_steps = int(n_steps)
        self.betas = beta_schedule(schedule, self.n_steps)
        self.alphas_cumprod = np.cumprod(1.0 - self.betas)
        self._sqrt_ab = torch.from_numpy(np.sqrt(self.alphas_cumprod)).to(torch.float32)
        self._sqrt_1mab = torch.from_numpy(np.sqrt(1.0 - self.alphas_cumprod)).to(torch.float32)
        # the same float32 values as Python floats, for the sampler's one-step-per-call path
        # (no device round trip per step)
        self._sqrt_ab_f = self._sqrt_ab.tolist()
        self._sqrt_1mab_f = self._sqrt_1mab.tolist()
        snr = self.alphas_cumprod / (1.0 - self.alphas_cumprod)
        w = np.ones(self.n_steps) if loss_weight == "eps" else np.maximum(1.0, 1.0 / snr)
        if weight_cap is not None:
            w = np.minimum(w, max(float(weight_cap), 1.0))
        self.weight_cap = weight_cap
        #: per-step weight of the squared noise error, shape (T,)
        self.loss_weights = torch.from_numpy(w).to(torch.float32)

    def __repr__(self) -> str:
        return (
            f"GaussianDiffusion(schedule={self.schedule!r}, n_steps={self.n_steps}, skip={self.skip}, "
            f"loss_weight={self.loss_weight!r}, weight_cap={self.weight_cap})"
        )

    def to(self, device: torch.device | str) -> GaussianDiffusion:
        """Move the per-step tensors (indexed by training batches' steps) to ``device``; returns self."""
        self._sqrt_ab = self._sqrt_ab.to(device)
        self._sqrt_1mab = self._sqrt_1mab.to(device)
        self.loss_weights = self.loss_weights.to(device)
        return self

    def eps_from_output(self, out: torch.Tensor, y: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Noise prediction from the network output ``out`` at noisy ``y`` (both ``(B, ..., N)``).

        ``t`` is a ``(B,)`` tensor of steps (training) or one step for the whole batch.
        """
        if not self.skip:
            return out
        if isinstance(t, int):
            return self._sqrt_1mab_f[t] * y + self._sqrt_ab_f[t] * out
        shape = (-1,) + (1,) * (y.ndim - 1)
        return self._sqrt_1mab[t].view(shape) * y + self._sqrt_ab[t].view(shape) * out

    # ------------------------------------------------------------------ training
    def q_sample(self, y0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Forward-noise ``y0`` ``(B, N)`` to steps ``t`` ``(B,)`` with ``noise`` ``(B, N)``."""
        return self._sqrt_ab[t][:, None] * y0 + self._sqrt_1mab[t][:, None] * noise

    def loss(
        self,
        model: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
        y0: torch.Tensor,
        x: torch.Tensor,
        mask: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        reduce: bool = True,
    ) -> torch.Tensor:
        """Masked, per-step weighted noise-prediction MSE ``w_n |eps_hat - eps|^2``.

        ``w_n = 1`` is DDPM's simple loss; ``"trunc_snr"`` uses ``w_n = max(1, 1 / SNR_n)``
        (``SNR = abar / (1 - abar)``), i.e. the noise MSE where ``SNR >= 1`` and the MSE of the
        implied ``x0`` prediction where the noise dominates (the truncated-SNR weighting of
        Salimans & Ho 2022), since ``|eps_hat - eps|^2 = SNR |x0_hat - x0|^2``.

        Parameters
        ----------
        model : callable ``(y_n, t, x, mask) -> eps_hat``
        y0 : Tensor (B, N)
            Clean standardised targets (any finite value where ``mask`` is False).
        x : Tensor (B, N, K)
        mask : Tensor (B, N), bool
        t : Tensor (B,), int64
        noise : Tensor (B, N)
        reduce : bool
            True: mean over present cells (a scalar). False: ``(sum of squared errors (B,),
            present cells (B,))`` stacked as ``(2, B)``.
        """
        y0 = torch.where(mask, y0, torch.zeros((), dtype=y0.dtype))
        y_t = self.q_sample(y0, t, noise)  # (B, N)
        eps = self.eps_from_output(model(y_t, t, x, mask), y_t, t)  # (B, N)
        m = mask.to(eps.dtype)
        sq = (eps - noise).square() * m * self.loss_weights[t][:, None]  # (B, N)
        if reduce:
            return sq.sum() / m.sum().clamp_min(1.0)
        return torch.stack([sq.sum(dim=1), m.sum(dim=1)])

    # ------------------------------------------------------------------ sampling
    def ddim_steps(self, sample_steps: int) -> np.ndarray:
        """The ``S`` evenly spaced steps of a DDIM chain, descending from ``T - 1`` to 0."""
        if not 1 <= sample_steps <= self.n_steps:
            raise DataValidationError(f"sample_steps must lie in [1, {self.n_steps}], got {sample_steps}")
        grid = np.linspace(self.n_steps - 1, 0, sample_steps)  # S = 1 gives the single step T - 1
        steps = np.unique(np.round(grid).astype(np.int64))
        return steps[::-1].copy()

    def n_noise_draws(self, sampler: str, sample_steps: int, eta: float) -> int:
        """Gaussian draws of shape ``(B, N)`` a sampler consumes (the first dim of ``noise``)."""
        if sampler == "ddpm":
            return self.n_steps  # x_T plus one per step n = T-1 .. 1
        if sampler == "ddim":
            s = len(self.ddim_steps(sample_steps))
            return 1 + (s - 1 if eta > 0 else 0)  # the last step (to n = -1) adds no noise
        if sampler == "dpm2m":
            return 1
        raise DataValidationError(f"unknown sampler {sampler!r}; expected 'ddim', 'dpm2m' or 'ddpm'")

    @torch.no_grad()
    def sample(
        self,
        denoise: Denoiser,
        noise: torch.Tensor,
        *,
        sampler: str = "ddim",
        sample_steps: int = 50,
        eta: float = 0.0,
        clip: float | None = None,
    ) -> torch.Tensor:
        """Draw ``y_0`` (shape ``noise.shape[1:]``) by running the reverse process.

        Parameters
        ----------
        denoise : callable ``(y_n (..., N), n: int) -> output (..., N)``
            The network with its conditioning bound (its output is read through ``skip``).
        noise : Tensor of shape (n_draws, ..., N)
            Pre-drawn standard normals, ``n_draws = n_noise_draws(sampler, sample_steps, eta)``;
            the remaining dimensions are the batch (e.g. days x scenarios x assets).
        sampler : {"ddim", "dpm2m", "ddpm"}
        sample_steps : int
            DDIM / DPM-Solver steps (ignored by ``ddpm``).
        eta : float
            DDIM stochasticity (ignored by the others).
        clip : float, optional
            Clip of the ``x0`` prediction.
        """
        need = self.n_noise_draws(sampler, sample_steps, eta)
        if noise.ndim < 2 or noise.shape[0] != need:
            raise DataValidationError(f"noise must have shape ({need}, ..., N), got {tuple(noise.shape)}")
        if sampler == "ddpm":
            return self._ddpm(denoise, noise, clip)
        if sampler == "dpm2m":
            return self._dpm2m(denoise, noise, self.ddim_steps(sample_steps), clip)
        return self._ddim(denoise, noise, self.ddim_steps(sample_steps), eta, clip)

    def _x0_eps(
        self, denoise: Denoiser, y: torch.Tensor, n: int, clip: float | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x0_hat, eps_hat)`` at step ``n``; with clipping, ``eps`` is made consistent with ``x0``."""
        ab = float(self.alphas_cumprod[n])
        eps = self.eps_from_output(denoise(y, n), y, n)  # (..., N)
        x0 = (y - math.sqrt(1.0 - ab) * eps) / math.sqrt(ab)  # (..., N)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
            eps = (y - math.sqrt(ab) * x0) / math.sqrt(1.0 - ab)
        return x0, eps

    def _ddpm(self, denoise: Denoiser, noise: torch.Tensor, clip: float | None) -> torch.Tensor:
        y = noise[0]  # (..., N) = y_{T-1}
        ab = self.alphas_cumprod
        for n in range(self.n_steps - 1, -1, -1):
            x0, _ = self._x0_eps(denoise, y, n, clip)
            if n == 0:
                y = x0
                break
            ab_prev = ab[n - 1]
            beta = self.betas[n]
            c0 = math.sqrt(ab_prev) * beta / (1.0 - ab[n])
            ct = math.sqrt(1.0 - beta) * (1.0 - ab_prev) / (1.0 - ab[n])
            var = beta * (1.0 - ab_prev) / (1.0 - ab[n])
            y = c0 * x0 + ct * y + math.sqrt(var) * noise[self.n_steps - n]
        return y

    def _ddim(
        self, denoise: Denoiser, noise: torch.Tensor, steps: np.ndarray, eta: float, clip: float | None
    ) -> torch.Tensor:
        y = noise[0]  # (..., N)
        k = 1
        for i, n in enumerate(steps):
            x0, eps = self._x0_eps(denoise, y, int(n), clip)
            if i == len(steps) - 1:
                return x0  # abar_prev = 1: the last step lands on x0
            ab = self.alphas_cumprod[n]
            ab_prev = self.alphas_cumprod[steps[i + 1]]
            sigma = eta * math.sqrt((1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev))
            y = math.sqrt(ab_prev) * x0 + math.sqrt(max(1.0 - ab_prev - sigma**2, 0.0)) * eps
            if eta > 0:
                y = y + sigma * noise[k]
                k += 1
        return y

    def _dpm2m(
        self, denoise: Denoiser, noise: torch.Tensor, steps: np.ndarray, clip: float | None
    ) -> torch.Tensor:
        """Multistep DPM-Solver-2 in noise-prediction form on ``lambda = log(alpha / sigma)``.

        ``y_m = (alpha_m / alpha_n) y_n - sigma_m expm1(h) D`` with ``h = lambda_m - lambda_n``
        and ``D`` the current noise prediction (first step: this is DDIM) or its multistep
        second-order correction ``eps_n + (eps_n - eps_prev) / (2 r)``, ``r = h_prev / h``.
        """
        alpha = np.sqrt(self.alphas_cumprod)
        sigma = np.sqrt(1.0 - self.alphas_cumprod)
        lam = np.log(alpha) - np.log(sigma)
        y = noise[0]  # (..., N)
        eps_prev: torch.Tensor | None = None
        h_prev = 0.0
        for i, n in enumerate(steps):
            x0, eps = self._x0_eps(denoise, y, int(n), clip)
            if i == len(steps) - 1:
                return x0
            m = int(steps[i + 1])
            h = float(lam[m] - lam[n])
            d = eps if eps_prev is None else eps + (0.5 * h / h_prev) * (eps - eps_prev)
            y = (alpha[m] / alpha[n]) * y - sigma[m] * math.expm1(h) * d
            eps_prev, h_prev = eps, h
        return y

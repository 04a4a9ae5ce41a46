"""Checkpoint selection by a proper scoring rule of the model's samples on the validation split.

The denoising loss measures how well the network removes noise at every noise level; what the
generator is used for is its **samples**. :class:`ValidationScorer` draws ``select_samples``
scenarios on ``select_days`` validation days (evenly spaced over the split) with the
configured sampler and scores them against what was realised:

* ``"energy"``: the fair energy score (:func:`factorgym.metrics.scoring.energy_score`) of the
  cross-section in the network's units (standardised log returns: each asset's return over
  its trailing volatility, winsorised as the training targets), absent assets left out (set
  to 0 in both the draw and the realisation, so they add nothing to any distance);
* ``"crps_ew"``: the fair CRPS (:func:`factorgym.metrics.scoring.crps_ensemble`) of the
  equal-weight portfolio's simple return over the present assets.

Both are averaged over the scored days. The noise is fixed (numpy, seed :data:`SELECT_SEED`
and the day chunk), so successive evaluations see common random numbers and differ only
through the weights; the score does not depend on the device beyond float round-off.
Only validation rows are ever read: the scorer holds nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from factorgym.metrics.scoring import crps_ensemble, energy_score

if TYPE_CHECKING:
    from factorgym.generators.diffusion.config import DiffusionConfig
    from factorgym.generators.diffusion.diffusion import GaussianDiffusion
    from factorgym.generators.diffusion.model import FactorDiT
    from factorgym.generators.diffusion.training import TrainingSet

__all__ = ["SELECT_SEED", "ValidationScorer", "selection_days"]

#: Seed of the fixed noise behind the validation scores.
SELECT_SEED = 20_251_202


def selection_days(n_days: int, k: int) -> np.ndarray:
    """``min(k, n_days)`` day indices evenly spaced over ``0 .. n_days - 1`` (first and last included)."""
    if n_days <= k:
        return np.arange(n_days)
    return np.unique(np.round(np.linspace(0, n_days - 1, k)).astype(np.int64))


class ValidationScorer:
    """Scores a network's samples on fixed validation days (lower is better).

    Parameters
    ----------
    diffusion : GaussianDiffusion
    config : DiffusionConfig
        ``selection``, ``select_days``, ``select_samples``, the sampler settings,
        ``target_clip`` and ``sample_batch`` are read.
    val : TrainingSet
        Validation days; ``"crps_ew"`` needs its ``scale``.
    device : torch.device
    """

    def __init__(
        self, diffusion: GaussianDiffusion, config: DiffusionConfig, val: TrainingSet, device: torch.device
    ) -> None:
        self.diffusion = diffusion
        self.config = config
        self.device = device
        self.days = selection_days(val.n_days, config.select_days)
        self.x = val.x[self.days]  # (D, N, K)
        self.y = val.y[self.days].astype(np.float64)  # (D, N)
        self.mask = val.mask[self.days]  # (D, N)
        self.scale = None if val.scale is None else val.scale[self.days].astype(np.float64)
        if config.selection == "crps_ew" and self.scale is None:
            raise ValueError("selection='crps_ew' needs the validation scales")

    def samples(self, model: FactorDiT) -> np.ndarray:
        """Standardised draws ``(S, D, N)`` (0 at absent assets) of the scored days."""
        cfg = self.config
        S = cfg.select_samples
        D, N = self.mask.shape
        draws = self.diffusion.n_noise_draws(cfg.sampler, cfg.sample_steps, cfg.eta)
        per = max(1, cfg.sample_batch // S)
        out = np.empty((D, S, N))
        model.eval()
        with torch.no_grad():
            for d0 in range(0, D, per):
                d1 = min(d0 + per, D)
                noise = np.random.default_rng([SELECT_SEED, d0]).standard_normal((draws, d1 - d0, S, N))
                nz = torch.from_numpy(noise.astype(np.float32)).to(self.device)
                xt = torch.from_numpy(self.x[d0:d1]).to(self.device)
                mt = torch.from_numpy(self.mask[d0:d1]).to(self.device)
                fx = model.embed_factors(xt, mt)
                steps = torch.empty((d1 - d0,), dtype=torch.int64, device=self.device)

                def denoise(yy: torch.Tensor, n: int, fx=fx, mt=mt, steps=steps) -> torch.Tensor:
                    return model.denoise(yy, steps.fill_(n), fx, mt)

                y = self.diffusion.sample(
                    denoise, nz, sampler=cfg.sampler, sample_steps=cfg.sample_steps, eta=cfg.eta, clip=cfg.target_clip
                )  # (Dc, S, N)
                out[d0:d1] = y.to(torch.float64).cpu().numpy()
        out = np.where(self.mask[:, None, :], out, 0.0)
        return np.moveaxis(out, 1, 0)  # (S, D, N)

    def score(self, model: FactorDiT) -> float:
        """Mean score of ``model``'s samples over the scored days."""
        s = self.samples(model)
        obs = np.where(self.mask, self.y, 0.0)
        if self.config.selection == "energy":
            return float(np.mean(energy_score(obs, s)))
        # equal-weight simple return of the present assets
        assert self.scale is not None
        n = np.maximum(self.mask.sum(axis=1), 1)
        r_obs = (np.where(self.mask, np.expm1(self.scale * obs), 0.0)).sum(axis=1) / n  # (D,)
        r_s = (np.where(self.mask, np.expm1(self.scale * s), 0.0)).sum(axis=2) / n  # (S, D)
        return float(np.mean(crps_ensemble(r_obs, r_s)))

"""Factor-conditioned diffusion transformer (Gao, He & He 2025, arXiv 2509.22088).

A conditional DDPM over the whole cross-section of next-day returns: one token per asset,
token-wise adaLN-Zero conditioning on each asset's own factor vector, self-attention across
assets (no positional encoding: permutation-equivariant), DDPM / DDIM samplers.

Importing this module registers the generator kind ``"diffusion"``::

    from factorgym.generators.diffusion import DiffusionConfig, DiffusionGenerator

    gen = DiffusionGenerator(DiffusionConfig(max_steps=2000)).fit(panel, Split())
    pred = gen.predict(panel, t)             # sample-based next-day distribution
    paths = gen.simulate(panel, t, horizon=20, n_paths=100, rng=np.random.default_rng(0))

Modules: ``config`` (dataclasses), ``factors`` (factor vectors from return windows),
``model`` (the network), ``diffusion`` (schedule, loss, samplers), ``training`` (loop, EMA,
resumable state), ``selection`` (checkpoint selection by the validation energy score or CRPS
of samples), ``device`` (the ``device`` setting), ``generator`` (the
:class:`~factorgym.generators.base.ReturnGenerator`), ``persistence`` (its artifact),
``simulator`` (its path simulator).
"""

from factorgym.generators.diffusion.config import DiffusionConfig, DiTConfig
from factorgym.generators.diffusion.diffusion import GaussianDiffusion, beta_schedule
from factorgym.generators.diffusion.factors import factor_names, panel_factors, window_factors
from factorgym.generators.diffusion.generator import (
    DiffusionGenerator,
    DiffusionPathSimulator,
    DiffusionPredictive,
)
from factorgym.generators.diffusion.model import FactorDiT

__all__ = [
    "DiTConfig",
    "DiffusionConfig",
    "DiffusionGenerator",
    "DiffusionPathSimulator",
    "DiffusionPredictive",
    "FactorDiT",
    "GaussianDiffusion",
    "beta_schedule",
    "factor_names",
    "panel_factors",
    "window_factors",
]

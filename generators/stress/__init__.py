"""Synthetic stress scenarios from any trained generator.

A :class:`StressSpec` fully specifies a scenario set (generator run, dataset, context date,
shock, horizon, count, seed); :func:`generate` turns it into a :class:`ScenarioSet` of
simple-return paths ``(S, H, N)``, and :func:`regenerate` re-creates the identical set from
a saved file's specification. Kinds:

``factor_shock``
    Market-level shock on the next day. For a generator whose predictive exposes its
    latent factors (NeuralFactors: ``sample_factors`` / ``sample_given_factors``) the
    factor most like the market (largest absolute equal-weight exposure ``mean_i beta_if``,
    oriented so that a negative value is a market fall) is conditioned: either below its
    ``quantile`` (rejection sampling from the prior) or shifted by ``shift_sd`` of its
    standard deviation; stock returns are then sampled given the factors. For other
    generators the same market-level criterion is applied to the equal-weight return of
    their samples (filtering below its ``quantile``; ``shift_sd`` is not available).
``vol_regime``
    The predicted dispersion scaled by ``vol_scale``: ``r = mu + s (r0 - mu)`` around the
    predictive mean, applied to ``H``-day paths day by day.
``crisis``
    Paths rolled forward on the generator's own samples from the real history ending at
    ``date`` (e.g. 2008-09-12, 2020-02-19); :func:`realised_comparison` reports how much
    probability the generator gave to what actually followed.
``replay``
    The real returns of a named window (:data:`NAMED_WINDOWS`) as the single reference path.

Every set is saved as Parquet (long format: scenario, day, asset, return) with the JSON
specification in the file's metadata and in a ``.spec.json`` sidecar.

Modules: ``spec`` (:class:`StressSpec`), ``generate`` (the kinds, :func:`generate`,
:func:`regenerate`), ``io`` (:class:`ScenarioSet`, :func:`read_scenarios`), ``losses``
(:func:`portfolio_path_returns`, :func:`loss_summary`, :func:`realised_comparison`) and
``replay`` (:class:`ScenarioReplay`).
"""

from factorgym.generators.stress.generate import generate, market_factor, regenerate
from factorgym.generators.stress.io import ScenarioSet, read_scenarios
from factorgym.generators.stress.losses import (
    loss_summary,
    portfolio_path_returns,
    realised_comparison,
)
from factorgym.generators.stress.replay import ScenarioReplay
from factorgym.generators.stress.spec import KINDS, NAMED_WINDOWS, StressSpec

__all__ = [
    "KINDS",
    "NAMED_WINDOWS",
    "ScenarioReplay",
    "ScenarioSet",
    "StressSpec",
    "generate",
    "loss_summary",
    "market_factor",
    "portfolio_path_returns",
    "read_scenarios",
    "realised_comparison",
    "regenerate",
]

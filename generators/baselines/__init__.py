"""Classical baseline generators, all behind the :class:`ReturnGenerator` interface.

Importing this module registers the kinds

* ``"gaussian"`` - :class:`GaussianGenerator`: multivariate normal, rolling sample covariance;
* ``"ledoit_wolf"`` - :class:`LedoitWolfGenerator`: the same with Ledoit-Wolf shrinkage;
* ``"ppca"`` - :class:`PPCAGenerator`: probabilistic PCA with a Student-T decoder
  (NeuralFactors' PPCA baseline; ``k`` and the estimation window chosen on validation);
* ``"garch"`` - :class:`GarchGenerator`: GARCH(1,1)-skew-t per asset, constant-correlation
  Gaussian copula;
* ``"bootstrap"`` - :class:`BlockBootstrapGenerator`: stationary block bootstrap of whole
  historical days.

Example
-------
>>> from factorgym import Split, load_dataset
>>> from factorgym.generators.baselines import LedoitWolfGenerator
>>> panel = load_dataset("sp500")
>>> gen = LedoitWolfGenerator(window=63).fit(panel, Split(), progress=False)
>>> pred = gen.predict(panel, panel.T - 2)              # distribution of the last day
>>> float(pred.log_prob(panel.returns[-1])) > 0
True

Every generator: ``fit`` uses train rows only (validation rows only to choose
hyper-parameters), ``predict_window`` / ``predict_windows`` give the next-day distribution
from a history window, ``simulator_window`` rolls paths forward on their own samples with
one random stream per path, ``save`` / ``load`` write and read one atomic artifact.

Absent assets (``NaN`` in the panel, ``False`` in its mask) are missing, never zero returns:
an asset that lists late (during validation, or with fewer than 20 train days) is accepted,
gets pooled parameters until it has history of its own (each module's docstring gives its
rule) and is named in the fitted ``pooled_assets_``.

Modules: ``common`` (window checks, rolling covariance estimators, per-path random streams,
artifact plumbing), ``pooling`` (pooled parameters of late-listing assets), ``simulator``
(the rolling-window path simulator), ``gaussian``, ``garch``, ``bootstrap`` and the
``ppca`` subpackage.
"""

from __future__ import annotations

from factorgym.errors import NotFittedError
from factorgym.generators.baselines.bootstrap import BlockBootstrapGenerator, EmpiricalPredictive
from factorgym.generators.baselines.garch import GarchGenerator, GarchPredictive
from factorgym.generators.baselines.gaussian import (
    GaussianGenerator,
    GaussianPredictive,
    LedoitWolfGenerator,
)
from factorgym.generators.baselines.ppca import (
    PPCAGenerator,
    TFactorPredictive,
    fit_tppca_em,
    tfactor_log_density,
)

__all__ = [
    "GaussianGenerator",
    "LedoitWolfGenerator",
    "PPCAGenerator",
    "GarchGenerator",
    "BlockBootstrapGenerator",
    "GaussianPredictive",
    "TFactorPredictive",
    "GarchPredictive",
    "EmpiricalPredictive",
    "NotFittedError",
    "fit_tppca_em",
    "tfactor_log_density",
]

"""Probabilistic PCA with a Student-T decoder (the NeuralFactors paper's PPCA baseline).

Modules: ``density`` (:func:`tfactor_log_density`, :class:`TFactorPredictive`), ``em``
(the Tipping & Bishop closed form and the Monte Carlo ECM fit :func:`fit_tppca_em`),
``simulator`` (the path simulator) and ``generator`` (:class:`PPCAGenerator`, registered as
``"ppca"``; its module docstring describes the model and both estimation modes).
"""

from factorgym.generators.baselines.ppca.density import TFactorPredictive, tfactor_log_density
from factorgym.generators.baselines.ppca.em import fit_tppca_em, tipping_bishop
from factorgym.generators.baselines.ppca.generator import PPCAGenerator

__all__ = ["PPCAGenerator", "TFactorPredictive", "fit_tppca_em", "tfactor_log_density", "tipping_bishop"]

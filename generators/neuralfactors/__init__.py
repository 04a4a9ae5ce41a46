"""NeuralFactors (Gopal 2024): a neural conditional factor model of daily stock returns.

Importing this module registers the ``"neuralfactors"`` generator kind.

>>> from factorgym import Split, load_dataset
>>> from factorgym.generators.neuralfactors import NeuralFactors
>>> model = NeuralFactors().fit(load_dataset("sp500"), Split())  # doctest: +SKIP
"""

from factorgym.generators.neuralfactors.config import NeuralFactorsConfig
from factorgym.generators.neuralfactors.generator import (
    NeuralFactors,
    NeuralFactorsPredictive,
    NeuralFactorsSimulator,
)
from factorgym.generators.neuralfactors.model import FactorParams, NeuralFactorsNet

__all__ = [
    "FactorParams",
    "NeuralFactors",
    "NeuralFactorsConfig",
    "NeuralFactorsNet",
    "NeuralFactorsPredictive",
    "NeuralFactorsSimulator",
]

"""NeuralFactors (Gopal 2024): a neural conditional factor model of daily stock returns.

Importing this module registers the ``"neuralfactors"`` generator kind.

>>> from factorgym import Split, load_dataset
>>> from factorgym.generators.neuralfactors import NeuralFactors
>>> model = NeuralFactors().fit(load_dataset("sp500"), Split())  # doctest: +SKIP
"""

from factorgym.generators.neuralfactors.config import NeuralFactorsConfig
from factorgym.generators.neuralfactors.generator import NeuralFactors
from factorgym.generators.neuralfactors.model import FactorParams, NeuralFactorsNet
from factorgym.generators.neuralfactors.predictive import NeuralFactorsPredictive
from factorgym.generators.neuralfactors.simulator import NeuralFactorsSimulator

__all__ = [
    "FactorParams",
    "NeuralFactors",
    "NeuralFactorsConfig",
    "NeuralFactorsNet",
    "NeuralFactorsPredictive",
    "NeuralFactorsSimulator",
]

"""factorgym: trained generative models of stock returns as market simulators.

The core package (``factorgym``) is numpy/pandas only: data, features, splits, metrics,
evaluation and the CLI. Generators (torch) live in :mod:`factorgym.generators`, Gymnasium
environments in :mod:`factorgym.envs`, agents in :mod:`factorgym.agents`.
"""

from factorgym.data import ReturnPanel, Split, load_dataset, synthetic_factor_panel
from factorgym.errors import FactorGymError

__version__ = "0.1.0"

__all__ = ["ReturnPanel", "Split", "load_dataset", "synthetic_factor_panel", "FactorGymError", "__version__"]

"""Generative models of daily stock returns behind one interface.

Import the interface from :mod:`factorgym.generators.base`; concrete generators live in
``factorgym.generators.neuralfactors``, ``factorgym.generators.diffusion`` and
``factorgym.generators.baselines`` and are imported on demand (they need torch / arch),
so importing this package stays light.
"""

from factorgym.generators.base import (
    BUILTIN_GENERATORS,
    PathSimulator,
    Predictive,
    ReturnGenerator,
    SamplePredictive,
    generator_class,
    load_generator,
)

__all__ = [
    "BUILTIN_GENERATORS",
    "PathSimulator",
    "Predictive",
    "ReturnGenerator",
    "SamplePredictive",
    "generator_class",
    "load_generator",
]

"""Use any fitted factorgym generator as skfolio's ``SyntheticData`` distribution estimator.

skfolio's :class:`skfolio.prior.SyntheticData` prior needs an estimator with ``fit(X)`` and
``sample(n_samples)``. :class:`GeneratorDistribution` wraps a *fitted*
:class:`~factorgym.generators.base.ReturnGenerator`: ``fit(X)`` conditions it on the last
``min_history`` rows of the returns ``X`` (information up to the last row), and ``sample``
draws the next day's cross-section — or, with ``horizon > 1``, compounded returns over the
next ``horizon`` days from paths rolled forward on the generator's own samples. skfolio's
optimisers and stress tools then run on factorgym scenarios::

    from skfolio.optimization import MeanRisk
    from skfolio.prior import SyntheticData
    from skfolio import RiskMeasure

    prior = SyntheticData(distribution_estimator=GeneratorDistribution(gen, seed=0), n_samples=2000)
    model = MeanRisk(risk_measure=RiskMeasure.CVAR, prior_estimator=prior).fit(X)

Fitting the generator itself stays factorgym's job (``factorgym fit``): it needs a date split
for validation-based model selection, which skfolio's ``fit(X)`` does not carry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from factorgym.errors import DataValidationError
from factorgym.generators.base import Predictive, ReturnGenerator

__all__ = ["GeneratorDistribution"]


class GeneratorDistribution(BaseEstimator):
    """A fitted factorgym generator as a skfolio/scikit-learn distribution estimator.

    Parameters
    ----------
    generator : ReturnGenerator
        A fitted generator (it must have ``assets_``).
    horizon : int, default=1
        Days ahead. 1 samples next-day simple returns; ``h > 1`` samples the compounded
        simple return over ``h`` simulated days.
    seed : int, default=0
        Seed of the sampling stream (each ``sample`` call continues it, so repeated calls
        give fresh but reproducible draws).

    Attributes
    ----------
    predictive_ : Predictive
        Next-day distribution given the fitted context (``horizon == 1``).
    window_ : ndarray of shape (min_history, N)
        The conditioning history.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (N,)
    """

    def __init__(self, generator: ReturnGenerator, horizon: int = 1, seed: int = 0) -> None:
        self.generator = generator
        self.horizon = horizon
        self.seed = seed

    def __sklearn_clone__(self) -> GeneratorDistribution:
        """An unfitted copy that shares the (already fitted) generator.

        skfolio clones its distribution estimator; scikit-learn's default clone would
        rebuild the generator from its constructor parameters, i.e. *unfitted*. Prediction
        never mutates a generator, so sharing it is safe.
        """
        return type(self)(self.generator, horizon=self.horizon, seed=self.seed)

    def fit(self, X: Any, y: Any = None) -> GeneratorDistribution:  # noqa: N803 - sklearn API
        """Condition the generator on the last ``min_history`` rows of returns ``X``.

        Parameters
        ----------
        X : array-like of shape (n_observations, n_assets)
            Simple daily returns, oldest first; columns in the generator's asset order (a
            DataFrame's columns are checked against ``generator.assets_``).
        """
        gen = self.generator
        if not hasattr(gen, "assets_"):
            raise DataValidationError(
                "GeneratorDistribution needs a fitted generator (run `factorgym fit` or "
                "generator.fit(panel, split) first)"
            )
        if isinstance(X, pd.DataFrame):
            cols = tuple(str(c) for c in X.columns)
            if cols != tuple(gen.assets_):
                raise DataValidationError(
                    f"X columns {list(cols)[:5]}... differ from the generator's assets {list(gen.assets_)[:5]}..."
                )
            self.feature_names_in_ = np.asarray(cols, dtype=object)
        values = np.asarray(X, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(gen.assets_):
            raise DataValidationError(
                f"X must have shape (n_observations, {len(gen.assets_)}), got {values.shape}"
            )
        if values.shape[0] < gen.min_history:
            raise DataValidationError(
                f"X has {values.shape[0]} rows; the generator needs {gen.min_history} days of history"
            )
        if int(self.horizon) < 1:
            raise DataValidationError(f"horizon must be >= 1, got {self.horizon}")
        self.window_ = values[-gen.min_history :]
        self.n_features_in_ = values.shape[1]
        self.predictive_: Predictive = gen.predict_window(self.window_)
        self._rng = np.random.default_rng(self.seed)
        return self

    def sample(self, n_samples: int = 1) -> np.ndarray:
        """Draw ``n_samples`` scenarios, shape ``(n_samples, N)``."""
        if not hasattr(self, "predictive_"):
            raise DataValidationError("call fit(X) before sample()")
        if self.horizon == 1:
            return self.predictive_.sample(int(n_samples), self._rng)
        sim = self.generator.simulator_window(self.window_, self._rng.spawn(int(n_samples)))
        growth = np.ones((int(n_samples), self.n_features_in_))
        for _ in range(int(self.horizon)):
            growth *= 1.0 + sim.step()
        return growth - 1.0

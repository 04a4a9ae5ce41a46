"""A factorgym generator as skfolio's SyntheticData distribution estimator."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_generators import GaussianTestGenerator
from skfolio import RiskMeasure
from skfolio.optimization import MeanRisk
from skfolio.prior import SyntheticData

from factorgym.data import Split, synthetic_factor_panel
from factorgym.errors import DataValidationError
from factorgym.generators.skfolio_adapter import GeneratorDistribution


@pytest.fixture(scope="module")
def fitted():
    panel = synthetic_factor_panel(T=600, N=5, F=2, seed=1, n_is_samples=64).panel
    gen = GaussianTestGenerator(lookback=60).fit(panel, Split.by_fraction(panel.dates))
    return panel, gen


def test_meanrisk_cvar_fitted_on_generator_scenarios(fitted) -> None:
    panel, gen = fitted
    X = panel.to_frame().iloc[:400]
    dist = GeneratorDistribution(gen, seed=3)
    model = MeanRisk(
        risk_measure=RiskMeasure.CVAR,
        prior_estimator=SyntheticData(distribution_estimator=dist, n_samples=3000),
    ).fit(X)
    w = model.weights_
    assert w.shape == (5,) and np.isclose(w.sum(), 1.0) and (w >= -1e-8).all()
    # skfolio optimised on exactly our scenarios: refitting the same seed gives the same ones
    scen = model.prior_estimator_.return_distribution_.returns
    again = GeneratorDistribution(gen, seed=3).fit(X).sample(3000)
    np.testing.assert_array_equal(scen, again)
    # and they come from the generator's predictive given the last rows of X
    pred = gen.predict_window(X.to_numpy()[-gen.min_history :])
    se = np.sqrt(np.diag(pred.cov()) / 3000)
    assert np.all(np.abs(scen.mean(axis=0) - pred.mean()) < 5 * se)


def test_multi_day_horizon_compounds_simulated_paths(fitted) -> None:
    panel, gen = fitted
    X = panel.to_frame().iloc[:400]
    one = GeneratorDistribution(gen, horizon=1, seed=0).fit(X).sample(4000)
    five = GeneratorDistribution(gen, horizon=5, seed=0).fit(X).sample(4000)
    ratio = five.std(axis=0) / one.std(axis=0)
    assert np.all((ratio > 1.8) & (ratio < 2.7))  # ~ sqrt(5) for near-iid daily returns


def test_clear_errors(fitted) -> None:
    panel, gen = fitted
    X = panel.to_frame()
    with pytest.raises(DataValidationError, match="fitted generator"):
        GeneratorDistribution(GaussianTestGenerator()).fit(X)
    with pytest.raises(DataValidationError, match="differ"):
        GeneratorDistribution(gen).fit(X.rename(columns={X.columns[0]: "ZZZ"}))
    with pytest.raises(DataValidationError, match="history"):
        GeneratorDistribution(gen).fit(X.iloc[:3])

"""Where an optimizer's view comes from: exact generator moments (issue 12 item 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorgym import Split, synthetic_factor_panel
from factorgym.agents.estimators import GeneratorSource, exact_moments
from factorgym.agents.optimizers import MeanVariance
from factorgym.constraints import Constraints
from factorgym.costs import CostModel
from factorgym.features import FeatureConfig
from factorgym.generators.neuralfactors import NeuralFactors, NeuralFactorsConfig


def _tiny_nf_config() -> NeuralFactorsConfig:
    return NeuralFactorsConfig(
        lookback=4, hidden=8, n_heads=2, n_kv_heads=1, mlp_ratio=2, n_factors=2, dropout=0.1,
        features=FeatureConfig(vol_windows=(3, 6), mom_windows=(5,)), sector_embedding_dim=2,
        asset_embedding_dim=2, days_per_block=4, blocks_per_batch=2, k=4, val_k=4, max_steps=6,
        val_every=6, warmup_steps=2, checkpoint_every=5, lr=3e-3, market_state=None,
    )


@pytest.fixture(scope="module")
def nf():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        syn = synthetic_factor_panel(T=300, N=5, F=2, seed=3, n_is_samples=64)
        split = Split.by_fraction(syn.panel.dates, 0.6, 0.2)
        model = NeuralFactors(_tiny_nf_config()).fit(syn.panel, split, progress=False)
    finally:
        torch.set_num_threads(old)
    return model, np.asarray(syn.panel.returns)


def test_neuralfactors_moments_are_exact_and_used(nf) -> None:
    model, r = nf
    window = r[200 - model.min_history : 200]
    pred = model.predict_window(window)
    assert not pred.has_closed_form and pred.has_exact_moments and exact_moments(pred)
    est = GeneratorSource(model, n_scenarios=50).estimate(window, np.random.default_rng(0))
    assert est.exact
    np.testing.assert_array_equal(est.mean, pred.mean())
    np.testing.assert_array_equal(est.cov, pred.cov())


def test_neuralfactors_mean_variance_weights_do_not_depend_on_the_agent_seed(nf) -> None:
    """The MV agent optimises on the model's own moments, not on this day's Monte-Carlo draws."""
    model, r = nf
    kw = dict(gamma=50.0, constraints=Constraints(budget=(1.0, 1.0)), cost_model=CostModel(0.0, 0.0))
    for day in (200, 240):
        window = r[day - 30 : day]
        a = MeanVariance(GeneratorSource(model), seed=1, **kw).optimize(window, np.zeros(5))
        b = MeanVariance(GeneratorSource(model), seed=2, **kw).optimize(window, np.zeros(5))
        assert (a.weights > 0.05).all()  # an interior optimum, where noise in the moments would show
        np.testing.assert_array_equal(a.weights, b.weights)

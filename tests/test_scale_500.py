"""Scale fixes for large universes (issue 17, item 3: 500 assets), checked on small sizes.

The 500-asset run itself is ``benchmarks/bench_scale.py`` (figures in
``benchmarks/results/scale.md``); here each fix is shown at unit level.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers_generators import small_nf_config

from factorgym.generators.neuralfactors import model as nf_model
from factorgym.generators.neuralfactors.model import NeuralFactorsNet


def _batches_seen(net: NeuralFactorsNet) -> list[int]:
    """Record the batch size of every full encoder pass (``embed_inputs`` on (B, S, D))."""
    seen: list[int] = []
    orig = net.embed_inputs

    def spy(x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            seen.append(int(x.shape[0]))
        return orig(x)

    net.embed_inputs = spy  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize("sequence_model", ["attention", "gru", "lstm"])
def test_prefill_in_bounded_passes_equals_one_pass(monkeypatch: pytest.MonkeyPatch, sequence_model: str) -> None:
    # P paths x N assets sequences: at 64 x 500 one pass held 2 GB of attention scores a layer
    cfg = small_nf_config(sequence_model=sequence_model, n_layers=2)
    net = NeuralFactorsNet.build(cfg, 3, 2, torch.Generator().manual_seed(0)).eval()
    R = cfg.receptive_field  # noqa: N806
    x = torch.randn((11, R + 6, cfg.n_inputs), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        h_ref, st_ref = net.prefill(x[:, :R])
        monkeypatch.setattr(nf_model, "MAX_SEQUENCES", 4)
        seen = _batches_seen(net)
        h, st = net.prefill(x[:, :R])
        assert seen and max(seen) <= 4 and sum(seen) == 11
        np.testing.assert_allclose(h.numpy(), h_ref.numpy(), rtol=1e-6, atol=1e-6)
        for j in range(6):  # the stacked state streams on exactly like the one-pass state
            got, ref = net.step(x[:, R + j], st), net.step(x[:, R + j], st_ref)
            np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)


def test_ledoit_wolf_covariance_skips_the_unused_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    # scikit-learn's LedoitWolf also stores the precision (an N x N pinvh: an eigendecomposition,
    # O(N^3)) that no caller uses: 80% of a mean-variance day at N = 100
    from sklearn.covariance import _empirical_covariance, ledoit_wolf

    from factorgym.agents.estimators.historical import ledoit_wolf_covariance

    x = np.random.default_rng(0).standard_t(5, size=(60, 8)) * 0.01

    def no_pinvh(*a: object, **k: object) -> None:
        raise AssertionError("the precision matrix was computed")

    monkeypatch.setattr(_empirical_covariance.linalg, "pinvh", no_pinvh)
    np.testing.assert_array_equal(ledoit_wolf_covariance(x), ledoit_wolf(x)[0])


@pytest.fixture(scope="module")
def fitted_nf():
    from factorgym.data import Split
    from factorgym.data.synthetic import synthetic_factor_panel
    from factorgym.generators.neuralfactors import NeuralFactors

    syn = synthetic_factor_panel(T=300, N=4, F=2, seed=5, n_is_samples=16)
    split = Split.by_fraction(syn.panel.dates, 0.6, 0.2)
    return NeuralFactors(small_nf_config()).fit(syn.panel, split, progress=False), syn.panel


def test_simulator_diagonal_moments_equal_the_covariance_diagonal(fitted_nf) -> None:
    gen, panel = fitted_nf
    w = np.asarray(panel.returns)[-gen.min_history :]
    sim = gen.simulator_window(w, [np.random.default_rng(i) for i in range(3)])
    sim.step()
    mean, cov = sim.moments()
    m2, var = sim.moments_diag()
    np.testing.assert_array_equal(m2, mean)
    np.testing.assert_allclose(var, np.diagonal(cov, axis1=-2, axis2=-1), rtol=1e-12)


def test_live_market_diag_moments_skip_the_full_covariance(fitted_nf, monkeypatch: pytest.MonkeyPatch) -> None:
    # moments="diag" built the (P, N, N) covariance every step (128 MB at 64 paths x 500 assets)
    from factorgym.envs import GenerativeMarket
    from factorgym.envs.markets.base import format_moments
    from factorgym.envs.vec_env import VecPortfolioEnv
    from factorgym.generators.neuralfactors.simulator import NeuralFactorsSimulator

    gen, panel = fitted_nf
    full = NeuralFactorsSimulator.moments
    diag = NeuralFactorsSimulator.__dict__.get("moments_diag")
    expected: list[np.ndarray] = []

    def spy_diag(self: NeuralFactorsSimulator) -> tuple[np.ndarray, np.ndarray]:
        mean, cov = full(self)  # what the observation showed before, kept for the comparison
        expected.append(format_moments(mean, cov, "diag"))
        assert diag is not None
        return diag(self)

    def no_full(self: NeuralFactorsSimulator) -> None:
        raise AssertionError("the full covariance was built for a diagonal observation")

    monkeypatch.setattr(NeuralFactorsSimulator, "moments", no_full)
    monkeypatch.setattr(NeuralFactorsSimulator, "moments_diag", spy_diag, raising=False)
    vec = VecPortfolioEnv(GenerativeMarket(gen, panel, horizon=5), 3, seed=0, window=5, moments="diag")
    obs = vec.reset()  # stable-baselines3 VecEnv API
    got = [obs["moments"]]
    for _ in range(3):
        obs, *_ = vec.step(np.full((3, vec.action_space.shape[0]), 0.2, dtype=np.float32))
        got.append(obs["moments"])
    assert len(expected) == len(got)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e.astype(g.dtype), rtol=1e-6, atol=1e-9)

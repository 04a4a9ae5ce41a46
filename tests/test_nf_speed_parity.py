"""NeuralFactors streaming fast path: same numbers as the reference formulation.

The simulator's per-day step (``NeuralFactorsNet.step`` with functional calls, fused
``baddbmm`` scores, precomputed slot biases; ``head_weights`` / ``heads_raw`` with the static
embeddings folded into a bias; one float64 conversion) is checked against the plain module
formulation it replaced, and the simulated one-day distribution against the closed-form
predictive moments. The streaming-equals-full-recomputation checks live in
``tests/test_neuralfactors.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers_generators import small_nf_config

from factorgym import Split, synthetic_factor_panel
from factorgym.generators.neuralfactors import NeuralFactors, NeuralFactorsNet
from factorgym.generators.neuralfactors.model import KVCache

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: one intra-op thread




def _reference_step(net: NeuralFactorsNet, x: torch.Tensor, caches: list[KVCache], slot: int) -> torch.Tensor:
    """The module-call formulation of one streaming day (the pre-optimisation code)."""
    h = net.embed_inputs(x)
    for blk, cache in zip(net.blocks, caches, strict=True):
        a = blk.attn
        y = blk.ln1(h)
        B = y.shape[0]  # noqa: N806
        q, k, v = a._qkv(y)  # pre-scaled queries
        cache.kt[:, :, :, slot] = k
        cache.v[:, :, slot, :] = v
        att = torch.softmax(torch.matmul(q, cache.kt) + a.slot_bias(slot), dim=-1)
        h = h + a.proj(torch.matmul(att, cache.v).reshape(B, -1))
        h = h + blk.fc2(torch.nn.functional.gelu(blk.fc1(blk.ln2(h))))
    return net.ln_f(h)


@pytest.mark.parametrize(("n_heads", "n_kv_heads", "hidden"), [(4, 1, 16), (4, 2, 16), (3, 1, 12)])
def test_fast_step_equals_module_formulation(n_heads: int, n_kv_heads: int, hidden: int) -> None:
    # (3, 1, 12): dh = 4, scale 1/2 (exact); (4, 1, 16): dh = 4; (4, 2, 16): the grouped-query branch
    cfg = small_nf_config(n_heads=n_heads, n_kv_heads=n_kv_heads, hidden=hidden, n_layers=2)
    net = NeuralFactorsNet.build(cfg, 3, 2, torch.Generator().manual_seed(0)).eval()
    R = cfg.receptive_field  # noqa: N806
    x = torch.randn((7, R + 12, cfg.n_inputs), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        _, state = net.prefill(x[:, :R])
        ref_caches = [KVCache(c.kt.clone(), c.v.clone()) for c in state.caches or []]
        slot = state.slot
        for j in range(12):
            slot = (slot + 1) % cfg.lookback
            ref = _reference_step(net, x[:, R + j], ref_caches, slot)
            got = net.step(x[:, R + j], state)
            assert state.slot == slot
            np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-6, atol=1e-6)
        for c, r in zip(state.caches or [], ref_caches, strict=True):
            np.testing.assert_allclose(c.kt.numpy(), r.kt.numpy(), rtol=1e-6, atol=1e-6)


def test_heads_raw_equals_heads() -> None:
    cfg = small_nf_config()
    net = NeuralFactorsNet.build(cfg, 5, 3, torch.Generator().manual_seed(2)).eval()
    aid, sid = torch.arange(5), torch.tensor([0, 2, 1, 2, 0])
    h2 = torch.randn((4, 5, cfg.hidden), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        ref = net.heads(h2, aid, sid)
        w_h, bias = net.head_weights(aid, sid)
        o = net.heads_raw(h2.reshape(20, -1), w_h, bias.repeat(4, 1)).view(4, 5, -1)
    np.testing.assert_allclose(o[..., 0].numpy(), ref.alpha.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(o[..., 3:].numpy(), ref.beta.numpy(), rtol=1e-6, atol=1e-7)
    sigma = torch.nn.functional.softplus(o[..., 1]) + 1e-4
    np.testing.assert_allclose(sigma.numpy(), ref.sigma.numpy(), rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def fitted():
    syn = synthetic_factor_panel(T=300, N=4, F=2, seed=5, n_is_samples=64)
    split = Split.by_fraction(syn.panel.dates, 0.6, 0.2)
    return NeuralFactors(small_nf_config()).fit(syn.panel, split, progress=False), syn


def test_simulator_params_equal_the_predictive_and_one_day_moments(fitted) -> None:
    model, syn = fitted
    w = np.asarray(syn.panel.returns[100 : 100 + model.min_history])
    P = 3000  # noqa: N806
    sim = model.simulator_window(w, np.random.default_rng(7).spawn(P))
    pred = model.predict_window(w)
    fp = sim.factor_params()
    for k in ("alpha", "beta", "sigma", "nu"):
        np.testing.assert_allclose(fp[k][0], getattr(pred, k), rtol=1e-6, atol=1e-10)
    mean, cov = sim.moments()
    np.testing.assert_allclose(cov[5], pred.cov(), rtol=1e-6)
    r = sim.step()  # (P, N): one day from the same window, independent paths
    sd = np.sqrt(np.diag(pred.cov()))
    z = (r.mean(0) - pred.mean()) / (sd / math.sqrt(P))
    assert np.all(np.abs(z) < 4.5), z
    emp = np.cov(r, rowvar=False)
    # Student-T tails: a loose but meaningful band on the covariance (relative to the variances)
    np.testing.assert_allclose(emp / np.outer(sd, sd), pred.cov() / np.outer(sd, sd), atol=0.15)


def test_same_seed_same_paths_after_reset(fitted) -> None:
    model, syn = fitted
    w = np.asarray(syn.panel.returns[120 : 120 + model.min_history])

    def run() -> np.ndarray:
        sim = model.simulator_window(w, [np.random.default_rng(s) for s in (1, 2, 3)])
        out = [sim.step() for _ in range(5)]
        sim.reset_paths(np.array([1]), w[None], [np.random.default_rng(9)])
        out += [sim.step() for _ in range(5)]
        return np.stack(out)

    np.testing.assert_array_equal(run(), run())

"""NeuralFactors' risk embedding (issue 13, synthetic regime target): a per-asset embedding that
sets the risk outputs (beta, sigma, nu) and never alpha, identical in training, prediction
and the path simulator, saved and loaded with the model; checkpoints without the field load
without it."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from helpers_generators import tiny_nf_config

from factorgym import Split, synthetic_factor_panel
from factorgym.errors import FactorGymError
from factorgym.generators.neuralfactors import NeuralFactors, NeuralFactorsConfig, NeuralFactorsNet


def _tiny(**kw: object) -> NeuralFactorsConfig:
    """The shared tiny configuration with a risk embedding (3) and 8 steps."""
    return tiny_nf_config(**{"asset_risk_embedding_dim": 3, "max_steps": 8, "val_every": 4, **kw})


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: one intra-op thread


@pytest.fixture(scope="module")
def syn():
    return synthetic_factor_panel(T=300, N=5, F=2, seed=6, n_is_samples=64)


@pytest.fixture(scope="module")
def fitted(syn):
    return NeuralFactors(_tiny()).fit(syn.panel, Split.by_fraction(syn.panel.dates, 0.6, 0.2), progress=False)


def _net(**kw: object) -> NeuralFactorsNet:
    return NeuralFactorsNet.build(_tiny(**kw), 4, 2, torch.Generator().manual_seed(0))


def test_risk_embedding_moves_the_risk_outputs_but_never_alpha() -> None:
    net = _net()
    h2 = torch.randn(3, 4, 8, generator=torch.Generator().manual_seed(1))
    ids, sectors = torch.arange(4), torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        net.out.weight[0].normal_(0.0, 1.0, generator=torch.Generator().manual_seed(3))  # alpha starts at 0: make it live
        before = net.heads(h2, ids, sectors)
        net.risk_emb.add_(torch.randn(net.risk_emb.shape, generator=torch.Generator().manual_seed(2)))
        after = net.heads(h2, ids, sectors)
    np.testing.assert_array_equal(after.alpha.numpy(), before.alpha.numpy())
    assert not torch.allclose(after.beta, before.beta) and not torch.allclose(after.sigma, before.sigma)
    # the inference form (static part folded into a per-asset bias) gives the same outputs
    w_h, bias = net.head_weights(ids, sectors)
    with torch.no_grad():
        raw = net.heads_raw(h2.reshape(-1, 8), w_h, bias.repeat(3, 1)).reshape(3, 4, -1)
    np.testing.assert_allclose(raw[..., 0].numpy(), after.alpha.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(raw[..., 3:].numpy(), after.beta.numpy(), rtol=1e-5, atol=1e-6)


def test_without_a_risk_embedding_the_network_is_unchanged() -> None:
    """Off (the default: it lost on issue 13's validation rollouts), the network has no such
    table and its heads see h2 and the sector only; no alpha-feeding asset embedding either."""
    assert NeuralFactorsConfig().asset_risk_embedding_dim == 0 and NeuralFactorsConfig().asset_embedding_dim == 0
    off = _net(asset_risk_embedding_dim=0)
    assert off.risk_emb is None and off.fc1.in_features == 8 + 2
    on = _net()
    assert on.risk_emb.shape == (4, 3) and on.fc1.in_features == 8 + 2 + 3
    with pytest.raises(FactorGymError, match="embedding sizes"):
        NeuralFactorsConfig(asset_risk_embedding_dim=-1)


def test_simulator_and_prediction_agree_and_the_model_round_trips(fitted, syn, tmp_path) -> None:
    w = np.asarray(syn.panel.returns[100 : 100 + fitted.min_history + 3])
    sim = fitted.simulator_window(w, np.random.default_rng(0).spawn(2))
    path = np.stack([sim.step() for _ in range(6)], axis=1)
    now = sim.factor_params()
    for p in range(2):
        ref = fitted.factor_params_windows(np.concatenate([w, path[p]])[None])
        for k in ("alpha", "beta", "sigma", "nu"):
            np.testing.assert_allclose(now[k][p], ref[k][0], rtol=1e-5, atol=1e-8)
    fitted.save(tmp_path / "m.zip")
    loaded = NeuralFactors.load(tmp_path / "m.zip")
    assert loaded.config.asset_risk_embedding_dim == 3
    np.testing.assert_array_equal(loaded.predict_window(w).cov(), fitted.predict_window(w).cov())


def test_checkpoint_without_the_field_loads_without_it(syn, tmp_path) -> None:
    model = NeuralFactors(_tiny(asset_risk_embedding_dim=0, max_steps=4))
    model.fit(syn.panel, Split.by_fraction(syn.panel.dates, 0.6, 0.2), progress=False)
    model.save(tmp_path / "new.zip")
    with zipfile.ZipFile(tmp_path / "new.zip") as zin, zipfile.ZipFile(tmp_path / "old.zip", "w") as zout:
        for item in zin.namelist():
            payload = zin.read(item)
            if item == "meta.json":
                meta = json.loads(payload)
                del meta["config"]["asset_risk_embedding_dim"]
                payload = json.dumps(meta).encode()
            zout.writestr(item, payload)
    old = NeuralFactors.load(tmp_path / "old.zip")
    assert old.config.asset_risk_embedding_dim == 0 and old.net_.risk_emb is None
    w = np.asarray(syn.panel.returns[20 : 20 + model.min_history])
    np.testing.assert_array_equal(old.predict_window(w).cov(), model.predict_window(w).cov())

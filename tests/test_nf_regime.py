"""NeuralFactors, issue 13 and 17: market-state inputs (point in time, identical in training,
prediction and simulation), no per-asset embedding by default, alpha shrinkage, the dof
bound, old checkpoints that lack the new fields, and the ``device`` setting (CPU only here)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from helpers_generators import TINY_NF_MARKET, tiny_nf_config

from factorgym import Split, synthetic_factor_panel
from factorgym.errors import FactorGymError
from factorgym.features import (
    MarketStateConfig,
    market_daily_stats,
    market_state_features,
)
from factorgym.generators.neuralfactors import NeuralFactors, NeuralFactorsConfig, NeuralFactorsNet
from factorgym.generators.neuralfactors.config import resolve_device
from factorgym.generators.neuralfactors.inputs import MarketStateTracker

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: one intra-op thread


@pytest.fixture(scope="module")
def syn():
    return synthetic_factor_panel(T=300, N=5, F=2, seed=4, n_is_samples=64)


@pytest.fixture(scope="module")
def split(syn):
    return Split.by_fraction(syn.panel.dates, 0.6, 0.2)


@pytest.fixture(scope="module")
def fitted(syn, split):
    return NeuralFactors(tiny_nf_config()).fit(syn.panel, split, progress=False)


# ---------------------------------------------------------------------- market state
def test_market_state_is_point_in_time_and_the_same_everywhere(syn) -> None:
    r = np.array(syn.panel.returns[:160])
    r[40:43, 2] = np.nan  # a gap in one asset
    r[70, :] = np.nan  # a day without any asset: the windows covering it are invalid
    M, ok = market_state_features(r, TINY_NF_MARKET)  # noqa: N806
    assert M.shape == (160, TINY_NF_MARKET.n_features) and not ok[: TINY_NF_MARKET.warmup - 1].any()
    assert not ok[70] and not ok[70 + TINY_NF_MARKET.warmup - 1] and ok[70 + TINY_NF_MARKET.warmup]
    assert (M[ok, TINY_NF_MARKET.names.index("mdd_10")] <= 0).all()
    # day t does not change when later rows change
    for t in (30, 90, 130):
        r2 = r.copy()
        r2[t + 1 :] = np.random.default_rng(t).normal(0, 0.2, r2[t + 1 :].shape)
        M2, ok2 = market_state_features(r2, TINY_NF_MARKET)  # noqa: N806
        np.testing.assert_array_equal(ok2[: t + 1], ok[: t + 1])
        np.testing.assert_array_equal(M2[: t + 1], M[: t + 1])
    # a window of the last `warmup` days gives the same last row (prediction)
    L = TINY_NF_MARKET.warmup  # noqa: N806
    for t in range(L - 1, 160):
        Mw, okw = market_state_features(r[t - L + 1 : t + 1], TINY_NF_MARKET)  # noqa: N806
        assert okw[-1] == ok[t]
        np.testing.assert_allclose(Mw[-1], M[t], rtol=1e-12, atol=1e-12, equal_nan=True)
    # the simulator's tracker, pushed one day at a time, agrees with the panel computation
    tr = MarketStateTracker(np.stack([r[:L], r[:L] * 2]), TINY_NF_MARKET)
    for t in range(L, 160):
        tr.push(np.stack([r[t], r[t] * 2]))
        Mt, okt = tr.features()  # noqa: N806
        assert okt[0] == ok[t]
        np.testing.assert_allclose(Mt[0], M[t], rtol=1e-12, atol=1e-12, equal_nan=True)
    # batched windows (leading axes) equal one-by-one
    Mb, _ = market_state_features(np.stack([r, r[::-1]]), TINY_NF_MARKET)  # noqa: N806
    np.testing.assert_array_equal(Mb[0], M)
    st = market_daily_stats(r)
    np.testing.assert_allclose(st[5], [np.mean(r[5]), np.std(r[5])])


def test_market_state_config_validation_and_roundtrip() -> None:
    assert MarketStateConfig.from_dict(TINY_NF_MARKET.to_dict()) == TINY_NF_MARKET
    assert TINY_NF_MARKET.warmup == 10 and TINY_NF_MARKET.names == ["mvol_3", "mvol_8", "mdd_10", "disp_4"]
    with pytest.raises(FactorGymError, match="drawdown_window"):
        MarketStateConfig(drawdown_window=1)
    with pytest.raises(FactorGymError, match="no feature"):
        MarketStateConfig(vol_windows=(), drawdown_window=0, dispersion_windows=())
    cfg = tiny_nf_config()
    assert NeuralFactorsConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.n_inputs == tiny_nf_config(market_state=None).n_inputs + TINY_NF_MARKET.n_features + 1


def test_model_with_market_state_uses_only_the_past_and_streams_exactly(fitted, syn) -> None:
    panel, t = syn.panel, 200
    a = fitted.predict(panel, t)
    r = np.array(panel.returns)
    r[t + 1 :] *= -3.0
    np.testing.assert_array_equal(a.cov(), fitted.predict(panel.with_returns(r), t).cov())
    # the simulator appends its own samples and recomputes the market state from them
    w = np.asarray(panel.returns[100 : 100 + fitted.min_history + 3])
    sim = fitted.simulator_window(w, np.random.default_rng(0).spawn(2))
    path = np.stack([sim.step() for _ in range(20)], axis=1)
    now = sim.factor_params()
    for p in range(2):
        ref = fitted.factor_params_windows(np.concatenate([w, path[p]])[None])
        for k in ("alpha", "beta", "sigma", "nu"):
            np.testing.assert_allclose(now[k][p], ref[k][0], rtol=1e-5, atol=1e-8)
    assert fitted.config.n_inputs == fitted.net_.inp.in_features  # the market state is part of every day's input


# ---------------------------------------------------------------------- defaults
def test_defaults_have_no_asset_embedding_but_a_market_state() -> None:
    cfg = NeuralFactorsConfig()
    assert cfg.asset_embedding_dim == 0 and cfg.market_state == MarketStateConfig()
    assert cfg.device == "cpu" and cfg.nu_min == 4.0
    # the market state adds no history beyond what the default features already need
    assert cfg.min_history == cfg.replace(market_state=None).min_history
    net = NeuralFactorsNet.build(cfg, 20, 5)
    assert net.asset_emb is None and net.sector_emb is not None
    assert NeuralFactorsNet.build(cfg.replace(asset_embedding_dim=4), 20, 5).asset_emb is not None


def test_alpha_penalty_shrinks_alpha(syn, split) -> None:
    cfg = tiny_nf_config(max_steps=40, val_every=20, warmup_steps=1, lr=1e-2)
    free = NeuralFactors(cfg).fit(syn.panel, split, progress=False)
    shrunk = NeuralFactors(cfg.replace(alpha_penalty=200.0)).fit(syn.panel, split, progress=False)
    ws = np.stack([np.asarray(syn.panel.returns[s : s + free.min_history]) for s in range(150, 170)])
    a_free = np.abs(free.factor_params_windows(ws)["alpha"] / free.spec_.scale).mean()
    a_shr = np.abs(shrunk.factor_params_windows(ws)["alpha"] / shrunk.spec_.scale).mean()
    assert a_shr < 0.5 * a_free, (a_shr, a_free)
    with pytest.raises(FactorGymError, match="alpha_penalty"):
        NeuralFactorsConfig(alpha_penalty=-1.0)


def test_nu_min_bounds_every_degree_of_freedom() -> None:
    cfg = tiny_nf_config(nu_min=2.5)
    net = NeuralFactorsNet.build(cfg, 3, 2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        net.out.bias[2] = -30.0  # softplus ~ 0: nu sits on its bound
        net.prior_dof_raw.fill_(-30.0)
        p = net.heads(torch.zeros(3, cfg.hidden), torch.arange(3), torch.tensor([0, 1, 0]))
        _, dof = net.prior()
    np.testing.assert_allclose(p.nu.numpy(), 2.5, atol=1e-5)
    np.testing.assert_allclose(dof.numpy(), 2.5, atol=1e-5)
    with pytest.raises(FactorGymError, match="nu_min"):
        NeuralFactorsConfig(nu_min=2.0)


# ---------------------------------------------------------------------- old checkpoints
def _rewrite_meta(src, dst, edit) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            payload = zin.read(item)
            if item == "meta.json":
                meta = json.loads(payload)
                edit(meta)
                payload = json.dumps(meta).encode()
            zout.writestr(item, payload)


def test_checkpoint_without_the_new_fields_loads_as_before(syn, split, tmp_path) -> None:
    """A model saved before the new fields existed (asset embedding, no market state, nu >= 4)
    loads with its own configuration, not today's defaults, and predicts as it did."""
    old = NeuralFactors(tiny_nf_config(market_state=None, asset_embedding_dim=2, max_steps=6)).fit(syn.panel, split, progress=False)
    old.save(tmp_path / "new_layout.zip")

    def strip(meta: dict) -> None:
        for k in ("market_state", "alpha_penalty", "nu_min", "device"):
            del meta["config"][k]
        del meta["market_scaler"]

    _rewrite_meta(tmp_path / "new_layout.zip", tmp_path / "old.zip", strip)
    loaded = NeuralFactors.load(tmp_path / "old.zip")
    assert loaded.config.market_state is None and loaded.config.asset_embedding_dim == 2
    assert loaded.config.nu_min == 4.0 and loaded.config.alpha_penalty == 0.0
    w = np.asarray(syn.panel.returns[20 : 20 + old.min_history])
    np.testing.assert_array_equal(loaded.predict_window(w).cov(), old.predict_window(w).cov())
    np.testing.assert_array_equal(
        loaded.simulate(syn.panel, 150, 4, 2, np.random.default_rng(0)), old.simulate(syn.panel, 150, 4, 2, np.random.default_rng(0))
    )


# ---------------------------------------------------------------------- device
def test_device_setting_resolves_and_checkpoints_load_on_cpu(fitted, syn, tmp_path) -> None:
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(FactorGymError, match="'cuda'"):
            resolve_device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")
    for bad in ("tpu", "gpu", "cuda:x"):
        with pytest.raises(FactorGymError, match=repr(bad)):
            NeuralFactorsConfig(device=bad)
        with pytest.raises(FactorGymError, match=repr(bad)):
            resolve_device(bad)
    # "auto" trains here (on the CPU without a GPU) and gives the same weights as "cpu"
    auto = NeuralFactors(tiny_nf_config(max_steps=4, device="auto")).fit(syn.panel, Split.by_fraction(syn.panel.dates, 0.6, 0.2), progress=False)
    cpu = NeuralFactors(tiny_nf_config(max_steps=4, device="cpu")).fit(syn.panel, Split.by_fraction(syn.panel.dates, 0.6, 0.2), progress=False)
    if not torch.cuda.is_available():
        assert auto.device_ == torch.device("cpu")
        for a, b in zip(auto.net_.state_dict().values(), cpu.net_.state_dict().values(), strict=True):
            assert torch.equal(a, b)
    # saved, then loaded with device="cpu": the same predictions and paths
    fitted.save(tmp_path / "m.zip")
    loaded = NeuralFactors.load(tmp_path / "m.zip", device="cpu")
    assert loaded.device_ == torch.device("cpu") and loaded.config.device == "cpu"
    w = np.asarray(syn.panel.returns[10 : 10 + fitted.min_history])
    np.testing.assert_array_equal(loaded.predict_window(w).cov(), fitted.predict_window(w).cov())
    np.testing.assert_array_equal(
        loaded.simulate(syn.panel, 150, 5, 2, np.random.default_rng(1)), fitted.simulate(syn.panel, 150, 5, 2, np.random.default_rng(1))
    )
    # a checkpoint written with device="cuda" still loads on a CPU-only machine
    _rewrite_meta(tmp_path / "m.zip", tmp_path / "cuda.zip", lambda meta: meta["config"].update(device="cuda"))
    if not torch.cuda.is_available():
        on_cpu = NeuralFactors.load(tmp_path / "cuda.zip")
        assert on_cpu.device_ == torch.device("cpu")
        np.testing.assert_array_equal(on_cpu.predict_window(w).cov(), fitted.predict_window(w).cov())
        with pytest.raises(FactorGymError, match="'cuda'"):
            NeuralFactors.load(tmp_path / "m.zip", device="cuda")
    with pytest.raises(FactorGymError, match="'tpu'"):
        NeuralFactors.load(tmp_path / "m.zip", device="tpu")

"""NeuralFactors: posterior and CIWAE math, predictive closed forms, streaming, persistence,
training and resume. Tiny configurations keep the file fast."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
from helpers_generators import TINY_NF_FEATURES, TINY_NF_MARKET, tiny_nf_config
from scipy import stats

from factorgym import Split, synthetic_factor_panel
from factorgym.errors import CheckpointError, DataValidationError
from factorgym.features import FeatureConfig, compute_features, window_features
from factorgym.generators.base import generator_class, load_generator
from factorgym.generators.neuralfactors import (
    FactorParams,
    NeuralFactors,
    NeuralFactorsConfig,
    NeuralFactorsNet,
    NeuralFactorsPredictive,
)
from factorgym.generators.neuralfactors.inputs import IncrementalFeatures, batched_features
from factorgym.generators.neuralfactors.training import (
    TRAIN_STATE_FILE,
    ciwae_bound,
    gaussian_posterior,
    iwae_log_weights,
)


def tiny_config(**kw: object) -> NeuralFactorsConfig:
    """The shared tiny configuration with dropout 0.1 and an asset embedding (2)."""
    return tiny_nf_config(**{"dropout": 0.1, "asset_embedding_dim": 2, **kw})


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: one intra-op thread


@pytest.fixture(scope="module")
def syn():
    return synthetic_factor_panel(T=360, N=5, F=2, seed=3, n_is_samples=256)


@pytest.fixture(scope="module")
def split(syn):
    return Split.by_fraction(syn.panel.dates, 0.6, 0.2)


@pytest.fixture(scope="module")
def fitted(syn, split):
    return NeuralFactors(tiny_config()).fit(syn.panel, split, progress=False)


def random_params(rng: np.random.Generator, N: int = 5, F: int = 2, nu: float = 8.0) -> dict:  # noqa: N803
    return dict(
        alpha=rng.normal(0, 1e-3, N),
        beta=rng.normal(0, 0.01, (N, F)),
        sigma=rng.uniform(0.005, 0.02, N),
        nu=np.full(N, nu),
        prior_scale=rng.uniform(0.5, 1.5, F),
        prior_dof=np.full(F, nu),
    )


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    # numpy's check: torch.testing imports torch.distributed (seconds on a busy machine)
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=rtol, atol=atol)


# ---------------------------------------------------------------------- config
def test_config_roundtrip_and_validation() -> None:
    cfg = tiny_config(sequence_model="gru", prior="gaussian")
    assert NeuralFactorsConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="sequence_model"):
        NeuralFactorsConfig(sequence_model="mamba")
    with pytest.raises(ValueError, match="multiple of n_heads"):
        NeuralFactorsConfig(hidden=30, n_heads=4)
    with pytest.raises(ValueError, match="exogenous"):
        NeuralFactorsConfig(features=FeatureConfig(exog=("SP500",)))
    with pytest.raises(ValueError, match="unknown"):
        NeuralFactorsConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    assert cfg.min_history == cfg.receptive_field + max(TINY_NF_FEATURES.warmup, TINY_NF_MARKET.warmup) - 1
    assert cfg.replace(market_state=None).min_history == cfg.receptive_field + TINY_NF_FEATURES.warmup - 1
    assert tiny_config().receptive_field == 2 * (4 - 1) + 1


# ---------------------------------------------------------------------- posterior / loss
def _brute_posterior(beta, alpha, var_x, var_z, y):
    """Explicit Gaussian conditioning of z on r = alpha + B z + e (numpy inverses)."""
    Sz, Sx = np.diag(var_z), np.diag(var_x)  # noqa: N806
    S = beta @ Sz @ beta.T + Sx  # noqa: N806
    G = Sz @ beta.T @ np.linalg.inv(S)  # noqa: N806
    return G @ (y - alpha), Sz - G @ beta @ Sz


def test_posterior_matches_bruteforce_conditioning() -> None:
    rng = np.random.default_rng(0)
    N, F = 6, 3  # noqa: N806
    beta, alpha = rng.normal(size=(N, F)), rng.normal(size=N)
    var_x, var_z, y = rng.uniform(0.2, 2, N), rng.uniform(0.5, 2, F), rng.normal(size=N)
    mask = np.ones(N, dtype=bool)
    mu, chol = gaussian_posterior(_t(beta), _t(alpha), _t(var_x), _t(var_z), _t(y), torch.from_numpy(mask))
    m_ref, c_ref = _brute_posterior(beta, alpha, var_x, var_z, y)
    np.testing.assert_allclose(mu.numpy(), m_ref, rtol=1e-10, atol=1e-12)
    prec = chol.numpy() @ chol.numpy().T
    np.testing.assert_allclose(np.linalg.inv(prec), c_ref, rtol=1e-10, atol=1e-12)
    # a masked asset is excluded: same as conditioning on the others only, whatever its value
    mask[2] = False
    y2 = y.copy()
    y2[2] = 1e6
    mu_m, chol_m = gaussian_posterior(_t(beta), _t(alpha), _t(var_x), _t(var_z), _t(y2), torch.from_numpy(mask))
    keep = np.arange(N) != 2
    m_ref, c_ref = _brute_posterior(beta[keep], alpha[keep], var_x[keep], var_z, y[keep])
    np.testing.assert_allclose(mu_m.numpy(), m_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.linalg.inv(chol_m.numpy() @ chol_m.numpy().T), c_ref, rtol=1e-10, atol=1e-12)


def test_iwae_is_exact_for_gaussian_prior_and_decoder() -> None:
    """With Gaussian prior and decoder eq. 8 is the exact posterior: every weight is log p(r)."""
    rng = np.random.default_rng(1)
    N, F, k = 7, 3, 5  # noqa: N806
    beta, alpha, sigma = rng.normal(size=(N, F)), rng.normal(size=N), rng.uniform(0.5, 1.5, N)
    s_z, y = rng.uniform(0.5, 2, F), rng.normal(size=(4, N))
    params = FactorParams(_t(alpha), _t(beta), _t(sigma), torch.full((N,), torch.inf, dtype=torch.float64))
    eps = torch.randn((k, 4, F), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lw = iwae_log_weights(params, _t(s_z), torch.full((F,), torch.inf, dtype=torch.float64), _t(y), torch.ones(4, N, dtype=torch.bool), eps)
    cov = (beta * s_z**2) @ beta.T + np.diag(sigma**2)
    exact = stats.multivariate_normal(alpha, cov).logpdf(y)
    np.testing.assert_allclose(lw.numpy(), np.broadcast_to(exact, (k, 4)), rtol=1e-10)
    np.testing.assert_allclose(ciwae_bound(lw).numpy(), exact, rtol=1e-10)


def test_masked_asset_does_not_affect_likelihood_of_others() -> None:
    rng = np.random.default_rng(2)
    p = random_params(rng, N=5, F=2)
    params = FactorParams(_t(p["alpha"]), _t(p["beta"]), _t(p["sigma"]), _t(p["nu"]))
    y = rng.normal(0, 0.01, 5)
    mask = torch.tensor([True, True, False, True, True])
    eps = torch.randn((6, 2), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a = iwae_log_weights(params, _t(p["prior_scale"]), _t(p["prior_dof"]), _t(y), mask, eps)
    y2 = y.copy()
    y2[2] = 5.0
    p2 = {k: v.copy() for k, v in p.items()}
    p2["beta"][2] *= 10
    p2["sigma"][2] = 1.0
    params2 = FactorParams(_t(p2["alpha"]), _t(p2["beta"]), _t(p2["sigma"]), _t(p2["nu"]))
    b = iwae_log_weights(params2, _t(p["prior_scale"]), _t(p["prior_dof"]), _t(y2), mask, eps)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    # and it equals the model restricted to the available assets
    keep = mask.numpy()
    sub = FactorParams(*(_t(p[k][keep]) for k in ("alpha", "beta", "sigma", "nu")))
    c = iwae_log_weights(sub, _t(p["prior_scale"]), _t(p["prior_dof"]), _t(y[keep]), torch.ones(4, dtype=torch.bool), eps)
    np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=1e-12)


# ---------------------------------------------------------------------- predictive
def test_fixed_draw_gives_common_random_numbers_across_days() -> None:
    rng = np.random.default_rng(5)
    p = random_params(rng, N=4, F=2, nu=9.0)
    day1 = NeuralFactorsPredictive(**p, marginal_samples=300)
    moved = {**p, "alpha": p["alpha"] + 0.01, "beta": p["beta"] * 2.0}
    day2 = NeuralFactorsPredictive(**moved, marginal_samples=300)
    a, b = day1.samples, day2.samples
    assert a.shape == (300, 4) and a is day1.samples and not a.flags.writeable
    # same shocks, new parameters: the difference is exactly the parameters' doing
    z = day1.sample_factors(300, np.random.default_rng(0))
    np.testing.assert_allclose(b - a, 0.01 + z @ p["beta"].T, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(NeuralFactorsPredictive(**p, marginal_samples=300, seed=1).samples.shape, (300, 4))
    assert not np.array_equal(NeuralFactorsPredictive(**p, marginal_samples=300, seed=1).samples, a)


def test_predictive_covariance_matches_sample_covariance() -> None:
    rng = np.random.default_rng(3)
    p = random_params(rng, N=4, F=2, nu=9.0)
    pred = NeuralFactorsPredictive(**p)
    x = pred.sample(400_000, np.random.default_rng(4))
    cov = pred.cov()
    sd = np.sqrt(np.diag(cov))
    err = (np.cov(x, rowvar=False) - cov) / np.outer(sd, sd)
    assert np.abs(err).max() < 0.03
    np.testing.assert_allclose(x.mean(0), pred.mean(), atol=3 * sd.max() / np.sqrt(4e5) * 3)


def test_predictive_log_prob_exact_in_gaussian_case_and_close_to_bruteforce() -> None:
    rng = np.random.default_rng(5)
    p = random_params(rng, N=5, F=2)
    g = dict(p, nu=np.full(5, np.inf), prior_dof=np.full(2, np.inf))
    pred = NeuralFactorsPredictive(**g)
    r = pred.sample(3, rng)
    exact = stats.multivariate_normal(pred.mean(), pred.cov()).logpdf(r)
    np.testing.assert_allclose(pred.log_prob(r), exact, rtol=1e-10)
    # Student-T: the 100-sample estimate is deterministic and close to a 20k-sample one
    pt = NeuralFactorsPredictive(**p)
    r = pt.sample(4, rng)
    a, b = pt.log_prob(r), pt.log_prob(r)
    np.testing.assert_array_equal(a, b)
    ref = pt.log_prob(r, n_samples=20_000, seed=7)
    assert np.abs(a - ref).max() < 0.05
    # NaN entries are integrated out: equals the model of the other assets
    r1 = r[0].copy()
    r1[1] = np.nan
    keep = np.arange(5) != 1
    sub = NeuralFactorsPredictive(**{k: (v[keep] if k in ("alpha", "beta", "sigma", "nu") else v) for k, v in p.items()})
    np.testing.assert_allclose(pt.log_prob(r1), sub.log_prob(r[0][keep]), rtol=1e-12)


def test_marginals_match_samples_and_invert() -> None:
    rng = np.random.default_rng(6)
    p = random_params(rng, N=3, F=2, nu=5.0)
    pred = NeuralFactorsPredictive(**p)
    x = pred.sample(200_000, np.random.default_rng(8))
    grid = np.quantile(x, [0.005, 0.05, 0.3, 0.5, 0.7, 0.95, 0.995], axis=0)  # (7, N)
    emp = (x[None, :, :] <= grid[:, None, :]).mean(1)
    np.testing.assert_allclose(pred.marginal_cdf(grid), emp, atol=4e-3)
    q = np.array([0.001, 0.01, 0.25, 0.5, 0.9, 0.999])
    xq = pred.marginal_ppf(q)
    assert xq.shape == (6, 3)
    np.testing.assert_allclose(pred.marginal_cdf(xq), np.broadcast_to(q[:, None], xq.shape), atol=1e-10)
    # the density is the derivative of the CDF and integrates to one
    h = 1e-6
    xs = pred.marginal_ppf(np.array([0.1, 0.6]))
    num = (pred.marginal_cdf(xs + h) - pred.marginal_cdf(xs - h)) / (2 * h)
    np.testing.assert_allclose(np.exp(pred.marginal_log_prob(xs)), num, rtol=1e-5)
    lo, hi = pred.marginal_ppf(np.array([1e-6, 1 - 1e-6]))
    g = np.linspace(lo, hi, 20001)
    mass = np.trapezoid(np.exp(pred.marginal_log_prob(g)), g, axis=0)
    np.testing.assert_allclose(mass, 1.0, atol=1e-4)
    # compression into 64 nodes is accurate against the uncompressed mixture
    fine = NeuralFactorsPredictive(**p, marginal_nodes=4096)
    np.testing.assert_allclose(pred.marginal_cdf(grid), fine.marginal_cdf(grid), atol=5e-4)


def test_sampling_is_deterministic_and_factor_structure_is_linear() -> None:
    p = random_params(np.random.default_rng(9), N=4, F=2)
    pred = NeuralFactorsPredictive(**p)
    a = pred.sample(50, np.random.default_rng(1))
    np.testing.assert_array_equal(a, pred.sample(50, np.random.default_rng(1)))
    assert not np.array_equal(a, pred.sample(50, np.random.default_rng(2)))
    z = np.zeros((1000, 2))
    z[:, 0] = 0.05
    x = pred.sample_given_factors(z, np.random.default_rng(3))
    np.testing.assert_allclose(np.median(x, 0), p["alpha"] + 0.05 * p["beta"][:, 0], atol=3e-3)
    with pytest.raises(DataValidationError):
        pred.sample_given_factors(np.zeros((2, 3)), np.random.default_rng(0))


# ---------------------------------------------------------------------- features
def test_batched_and_incremental_features_match_shared_definitions(syn) -> None:
    panel = syn.panel.iloc(0, 120)
    r = np.array(panel.returns)
    r[30:33, 1] = np.nan  # a gap, to exercise validity
    p2 = panel.with_returns(r, ~np.isnan(r))
    X, valid = compute_features(p2, TINY_NF_FEATURES)  # noqa: N806
    Xb, vb = batched_features(r[None], TINY_NF_FEATURES)  # noqa: N806
    np.testing.assert_array_equal(vb[0], valid)
    np.testing.assert_allclose(Xb[0], X, rtol=1e-9, atol=1e-12, equal_nan=True)
    L = TINY_NF_FEATURES.warmup  # noqa: N806
    inc = IncrementalFeatures(r[None, :L], TINY_NF_FEATURES, refresh_every=7)
    for t in range(L, 120):
        inc.push(r[None, t])
        Xi, vi = inc.features()  # noqa: N806
        ref = window_features(r[None, t - L + 1 : t + 1], TINY_NF_FEATURES)
        np.testing.assert_array_equal(vi[0], valid[t])
        np.testing.assert_allclose(Xi, ref, rtol=1e-9, atol=1e-12, equal_nan=True)


# ---------------------------------------------------------------------- streaming
@pytest.mark.parametrize("seq", ["attention", "lstm", "gru"])
def test_network_streaming_equals_full_recomputation(seq: str) -> None:
    cfg = tiny_config(sequence_model=seq, lookback=5, n_layers=2)
    net = NeuralFactorsNet.build(cfg, 3, 2, torch.Generator().manual_seed(0)).eval()
    R = cfg.receptive_field  # noqa: N806
    x = torch.randn((6, R + 15, cfg.n_inputs), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        full = net.encode(x)  # (6, R+15, H)
        h, state = net.prefill(x[:, :R])
        _close(h, full[:, R - 1])
        for j in range(15):
            h = net.step(x[:, R + j], state)
            if seq == "attention":  # sliding window: the full pass over the last R days only
                ref = net.encode(x[:, j + 1 : R + j + 1])[:, -1]
                _close(h, ref)
            _close(h, full[:, R + j])


def test_simulator_streaming_equals_full_recomputation(fitted, syn) -> None:
    w = np.asarray(syn.panel.returns[100 : 100 + fitted.min_history + 5])
    sim = fitted.simulator_window(w, np.random.default_rng(0).spawn(3))
    path = np.stack([sim.step() for _ in range(25)], axis=1)  # (P, 25, N)
    now = sim.factor_params()
    for p in range(3):
        full = np.concatenate([w, path[p]])
        ref = fitted.factor_params_windows(full[None])
        for k in ("alpha", "beta", "sigma", "nu"):
            np.testing.assert_allclose(now[k][p], ref[k][0], rtol=1e-5, atol=1e-8)
    mean, cov = sim.moments()
    np.testing.assert_allclose(cov[1], sim.predictive(1).cov(), rtol=1e-12)
    np.testing.assert_allclose(mean[2], ref["alpha"][0], rtol=1e-5, atol=1e-8)


def test_paths_are_independent_streams(fitted, syn) -> None:
    w = np.asarray(syn.panel.returns[50 : 50 + fitted.min_history])
    seeds = [11, 12, 13]
    together = fitted.simulator_window(w, [np.random.default_rng(s) for s in seeds])
    a = np.stack([together.step() for _ in range(15)], axis=1)
    alone = fitted.simulator_window(w, [np.random.default_rng(12)])
    b = np.stack([alone.step() for _ in range(15)], axis=1)
    np.testing.assert_allclose(a[1], b[0], rtol=1e-6, atol=1e-9)
    again = fitted.simulator_window(w, [np.random.default_rng(s) for s in seeds])
    np.testing.assert_array_equal(a, np.stack([again.step() for _ in range(15)], axis=1))
    # per-path windows, and a reset path restarts exactly like a fresh simulator
    ws = np.stack([np.asarray(syn.panel.returns[s : s + fitted.min_history]) for s in (40, 60)])
    sim = fitted.simulator_window(ws, [np.random.default_rng(1), np.random.default_rng(2)])
    for _ in range(4):
        sim.step()
    w_new = np.asarray(syn.panel.returns[80 : 80 + fitted.min_history])
    sim.reset_paths(np.array([0]), w_new[None], [np.random.default_rng(5)])
    c = np.stack([sim.step() for _ in range(10)], axis=1)
    fresh = fitted.simulator_window(w_new, [np.random.default_rng(5)])
    d = np.stack([fresh.step() for _ in range(10)], axis=1)
    np.testing.assert_allclose(c[0], d[0], rtol=1e-6, atol=1e-9)


def test_predictions_use_only_the_past_and_windows_are_validated(fitted, syn) -> None:
    panel, t = syn.panel, 200
    a = fitted.predict(panel, t)
    r = np.array(panel.returns)
    r[t + 1 :] *= -3.0
    b = fitted.predict(panel.with_returns(r), t)
    np.testing.assert_array_equal(a.cov(), b.cov())
    with pytest.raises(DataValidationError, match="min_history"):
        fitted.predict_window(np.asarray(panel.returns[: fitted.min_history - 1]))
    with pytest.raises(DataValidationError, match="assets"):
        fitted.predict_window(np.zeros((fitted.min_history, 3)))
    # batched consecutive windows (one causal pass) equal independent windows
    ws = np.stack([np.asarray(panel.returns[s : s + fitted.min_history]) for s in range(150, 160)])
    fa = fitted.factor_params_windows(ws)
    fb = fitted.factor_params_windows(ws[::-1])
    np.testing.assert_allclose(fa["beta"], fb["beta"][::-1], rtol=1e-5, atol=1e-8)


def test_variable_universe_with_masked_cells(syn, split) -> None:
    """Assets missing for stretches (NaN, mask False) are fed as flagged zeros and skipped in the loss."""
    r = np.array(syn.panel.returns)
    r[:150, 0] = np.nan  # listed late
    r[200:230, 3] = np.nan  # a suspension
    panel = syn.panel.with_returns(r, ~np.isnan(r))
    m = NeuralFactors(tiny_config(max_steps=6)).fit(panel, split, progress=False)
    w = r[190 : 190 + m.min_history]  # window with a gap in asset 3
    pred = m.predict_window(w)
    assert np.isfinite(pred.cov()).all() and np.isfinite(pred.mean()).all()
    y = r[190 + m.min_history].copy()
    y[3] = np.nan
    assert np.isfinite(pred.log_prob(y))
    sim = m.simulator_window(w, np.random.default_rng(0).spawn(2))
    path = np.stack([sim.step() for _ in range(30)], axis=1)
    assert np.isfinite(path).all()


# ---------------------------------------------------------------------- persistence
def test_save_load_roundtrip_and_corrupt_checkpoints(fitted, syn, tmp_path) -> None:
    path = tmp_path / "nf.zip"
    fitted.save(path)
    loaded = load_generator(path)
    assert isinstance(loaded, NeuralFactors) and generator_class("neuralfactors") is NeuralFactors
    w = np.asarray(syn.panel.returns[10 : 10 + fitted.min_history])
    a, b = fitted.predict_window(w), loaded.predict_window(w)
    np.testing.assert_array_equal(a.cov(), b.cov())
    r = np.asarray(syn.panel.returns[10 + fitted.min_history])
    assert a.log_prob(r) == b.log_prob(r)
    rng_a, rng_b = np.random.default_rng(0), np.random.default_rng(0)
    np.testing.assert_array_equal(
        fitted.simulate(syn.panel, 150, 5, 2, rng_a), loaded.simulate(syn.panel, 150, 5, 2, rng_b)
    )
    data = path.read_bytes()
    (tmp_path / "trunc.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        NeuralFactors.load(tmp_path / "trunc.zip")
    (tmp_path / "junk.zip").write_bytes(b"not a zip at all")
    with pytest.raises(CheckpointError):
        NeuralFactors.load(tmp_path / "junk.zip")
    # a valid archive whose weights do not fit the recorded configuration
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.namelist():
            payload = zin.read(item)
            if item == "meta.json":
                payload = payload.replace(b'"hidden": 8', b'"hidden": 16')
            zout.writestr(item, payload)
    with pytest.raises(CheckpointError, match="weights"):
        NeuralFactors.load(bad)
    with pytest.raises(CheckpointError):
        NeuralFactors.load(tmp_path / "missing.zip")


# ---------------------------------------------------------------------- training
def _heldout_nll(model: NeuralFactors, syn, start: int, stop: int) -> float:
    preds = model.predict_range(syn.panel, start - 1, stop - 1)
    r = np.asarray(syn.panel.returns[start:stop])
    return float(np.mean([p.log_prob(x) for p, x in zip(preds, r, strict=True)]))


def test_training_improves_heldout_likelihood(syn, split) -> None:
    cfg = tiny_config(hidden=16, max_steps=150, val_every=50, dropout=0.0, k=8)
    test0 = split.bounds(syn.panel.dates)["test"][0]
    before = NeuralFactors(cfg.replace(max_steps=1)).fit(syn.panel, split, progress=False)
    after = NeuralFactors(cfg).fit(syn.panel, split, progress=False)
    lb, la = _heldout_nll(before, syn, test0, syn.panel.T), _heldout_nll(after, syn, test0, syn.panel.T)
    truth = float(np.mean(syn.log_density[test0:]))
    assert la > lb + 0.5 * syn.panel.N * 0.1, (lb, la, truth)  # at least 0.05 nats/asset better
    assert after.fit_info_["best_val"] < before.fit_info_["best_val"]


def test_resume_after_kill_equals_uninterrupted(syn, split, tmp_path) -> None:
    cfg = tiny_config(max_steps=14, val_every=4, checkpoint_every=5, polyak_start=0.3)
    ref = NeuralFactors(cfg).fit(syn.panel, split, progress=False, out_dir=tmp_path / "a")

    class Killed(Exception):
        pass

    def kill_at_12(step: int, logs: dict) -> None:
        if step == 12:
            raise Killed

    with pytest.raises(Killed):
        NeuralFactors(cfg).fit(syn.panel, split, progress=False, out_dir=tmp_path / "b", callback=kill_at_12)
    assert (tmp_path / "b" / TRAIN_STATE_FILE).exists()
    resumed = NeuralFactors(cfg).fit(syn.panel, split, progress=False, out_dir=tmp_path / "b")
    assert resumed.train_result_.resumed_from == 10
    for (k, v), (k2, v2) in zip(ref.net_.state_dict().items(), resumed.net_.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2), k
    assert ref.fit_info_["history"] == resumed.fit_info_["history"]
    # a different configuration refuses the state instead of silently mixing runs
    with pytest.raises(CheckpointError, match="different configuration"):
        NeuralFactors(cfg.replace(lr=1e-2)).fit(syn.panel, split, progress=False, out_dir=tmp_path / "b")
    # the final model artifact is there and loads
    assert isinstance(NeuralFactors.load(tmp_path / "b" / "model.zip"), NeuralFactors)


def test_fit_does_not_touch_torch_global_state(syn, split) -> None:
    before = torch.random.get_rng_state().clone()
    torch.set_num_threads(2)
    try:
        m = NeuralFactors(tiny_config(max_steps=3)).fit(syn.panel, split, progress=False)
        m.simulate(syn.panel, 150, 3, 2, np.random.default_rng(0))
        assert torch.get_num_threads() == 2  # config threads are restored after each call
    finally:
        torch.set_num_threads(1)
    assert torch.equal(before, torch.random.get_rng_state())
    m2 = NeuralFactors(tiny_config(max_steps=3)).fit(syn.panel, split, progress=False)
    for v, v2 in zip(m.net_.state_dict().values(), m2.net_.state_dict().values(), strict=True):
        assert torch.equal(v, v2)


@pytest.mark.slow
def test_adam_matches_torch_optim_adam() -> None:
    """The in-house Adam (no torch._dynamo import) follows torch.optim.Adam step for step."""
    from factorgym.generators.neuralfactors.training import Adam

    def run(make):
        net = torch.nn.Linear(4, 3)
        with torch.no_grad():
            for i, p in enumerate(net.parameters()):
                p.copy_(torch.linspace(-1, 1, p.numel()).view_as(p) * (i + 1))
        opt = make(list(net.parameters()))
        g = torch.Generator().manual_seed(0)
        for _ in range(25):
            x = torch.randn((8, 4), generator=g)
            opt.zero_grad()
            (net(x) ** 2).mean().backward()
            opt.step()
        return [p.detach().clone() for p in net.parameters()]

    ours = run(lambda ps: Adam(ps, lr=1e-2, weight_decay=1e-3))
    ref = run(lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-3))
    for a, b in zip(ours, ref, strict=True):
        _close(a, b, rtol=1e-6, atol=1e-7)

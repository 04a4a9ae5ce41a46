"""Tests of the classical baseline generators (factorgym.generators.baselines)."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats

from factorgym.artifacts import read_artifact, write_artifact
from factorgym.data import ReturnPanel, Split, synthetic_factor_panel
from factorgym.errors import CheckpointError, DataValidationError
from factorgym.generators.base import ReturnGenerator, generator_class, load_generator
from factorgym.generators.baselines import (
    BlockBootstrapGenerator,
    EmpiricalPredictive,
    GarchGenerator,
    GarchPredictive,
    GaussianGenerator,
    GaussianPredictive,
    LedoitWolfGenerator,
    NotFittedError,
    PPCAGenerator,
    TFactorPredictive,
    fit_tppca_em,
    tfactor_log_density,
)
from factorgym.generators.baselines.common import PathStreams, window_moments
from factorgym.generators.baselines.garch import skewt_cdf, skewt_from_normal, skewt_logpdf

# ----------------------------------------------------------------------------- fixtures
N_SMALL = 5


@pytest.fixture(scope="module")
def small() -> tuple[ReturnPanel, Split]:
    """A small time-varying-vol factor panel (T=700, N=5) and a 60/20/20 split."""
    syn = synthetic_factor_panel(T=700, N=N_SMALL, F=2, seed=3, time_varying_vol=True, n_is_samples=64)
    return syn.panel, Split.by_fraction(syn.panel.dates)


@pytest.fixture(scope="module")
def masked(small: tuple[ReturnPanel, Split]) -> ReturnPanel:
    """``small`` with holes: asset 1 absent for its first 80 days, scattered missing cells."""
    panel, _ = small
    mask = np.array(panel.mask)
    mask[:80, 1] = False
    rng = np.random.default_rng(5)
    mask[rng.random(mask.shape) < 0.01] = False
    return panel.with_returns(np.where(mask, panel.returns, np.nan), mask)


FACTORIES: dict[str, Callable[[], ReturnGenerator]] = {
    "gaussian": lambda: GaussianGenerator(window=40),
    "ledoit_wolf": lambda: LedoitWolfGenerator(window=30, mean="sample"),
    "ppca_rolling": lambda: PPCAGenerator(n_factors=2, window=100, nu_days=60, select_is_samples=64, n_is_samples=256),
    "ppca_train": lambda: PPCAGenerator(n_factors=2, window="train", em_iter=15, n_is_samples=256),
    "garch": lambda: GarchGenerator(burn_in=100),
    "bootstrap": lambda: BlockBootstrapGenerator(mean_block=5.0),
}


@pytest.fixture(scope="module")
def fitted(small: tuple[ReturnPanel, Split]) -> dict[str, ReturnGenerator]:
    panel, split = small
    return {name: make().fit(panel, split, progress=False) for name, make in FACTORIES.items()}


def _rngs(*seeds: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in seeds]


def _test_day(panel: ReturnPanel, split: Split) -> int:
    return split.bounds(panel.dates)["test"][0] + 5


# ============================================================================ interface-wide
@pytest.mark.parametrize("name", list(FACTORIES))
class TestInterface:
    def test_registered_kind(self, name: str, fitted: dict[str, ReturnGenerator]) -> None:
        gen = fitted[name]
        assert generator_class(gen.kind) is type(gen)

    def test_shapes(self, name: str, fitted: dict[str, ReturnGenerator], small: tuple[ReturnPanel, Split]) -> None:
        panel, split = small
        gen = fitted[name]
        t = _test_day(panel, split)
        pred = gen.predict(panel, t)
        assert pred.n_assets == N_SMALL
        assert pred.sample(7, np.random.default_rng(0)).shape == (7, N_SMALL)
        assert pred.mean().shape == (N_SMALL,)
        cov = pred.cov()
        assert cov.shape == (N_SMALL, N_SMALL)
        np.testing.assert_allclose(cov, cov.T, atol=1e-15)
        assert np.linalg.eigvalsh(cov).min() > 0
        assert pred.marginal_cdf(panel.returns[t + 1 : t + 4]).shape == (3, N_SMALL)
        ppf = pred.marginal_ppf(np.array([0.05, 0.5, 0.95]))
        assert ppf.shape == (3, N_SMALL) and (np.diff(ppf, axis=0) >= 0).all()
        if pred.has_log_prob:
            assert pred.log_prob(panel.returns[t + 1 : t + 4]).shape == (3,)
            assert np.ndim(pred.log_prob(panel.returns[t + 1])) == 0
        paths = gen.simulate(panel, t, horizon=6, n_paths=3, rng=np.random.default_rng(1))
        assert paths.shape == (3, 6, N_SMALL) and np.isfinite(paths).all()

    def test_predict_windows_matches_predict_window(self, name: str, fitted: dict[str, ReturnGenerator], small: tuple[ReturnPanel, Split]) -> None:
        panel, split = small
        gen = fitted[name]
        t = _test_day(panel, split)
        W = gen.min_history
        wins = np.stack([panel.returns[s + 1 - W : s + 1] for s in (t, t + 1, t + 2)])
        batch = gen.predict_windows(wins)
        for w, pb in zip(wins, batch, strict=True):
            ps = gen.predict_window(w)
            np.testing.assert_allclose(pb.mean(), ps.mean(), rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(pb.cov(), ps.cov(), rtol=1e-10, atol=1e-15)

    def test_same_seed_same_samples(self, name: str, fitted: dict[str, ReturnGenerator], small: tuple[ReturnPanel, Split]) -> None:
        panel, split = small
        gen = fitted[name]
        t = _test_day(panel, split)
        a = gen.simulate(panel, t, 8, 4, np.random.default_rng(11))
        b = gen.simulate(panel, t, 8, 4, np.random.default_rng(11))
        c = gen.simulate(panel, t, 8, 4, np.random.default_rng(12))
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
        pred = gen.predict(panel, t)
        np.testing.assert_array_equal(pred.sample(5, np.random.default_rng(3)), pred.sample(5, np.random.default_rng(3)))

    def test_path_alone_equals_path_among_others(self, name: str, fitted: dict[str, ReturnGenerator], small: tuple[ReturnPanel, Split]) -> None:
        panel, split = small
        gen = fitted[name]
        t = _test_day(panel, split)
        W = gen.min_history
        wins = np.stack([panel.returns[s + 1 - W : s + 1] for s in (t, t - 7, t - 30)])
        many = gen.simulator_window(wins, _rngs(1, 2, 3))
        alone = gen.simulator_window(wins[1], _rngs(2))
        for _ in range(70):  # more than one block of buffered draws
            np.testing.assert_array_equal(many.step()[1], alone.step()[0])

    def test_reset_paths(self, name: str, fitted: dict[str, ReturnGenerator], small: tuple[ReturnPanel, Split]) -> None:
        panel, split = small
        gen = fitted[name]
        t = _test_day(panel, split)
        W = gen.min_history
        w_new = np.asarray(panel.returns[t - 50 + 1 - W : t - 50 + 1])
        sim = gen.simulator_window(np.asarray(panel.returns[t + 1 - W : t + 1]), _rngs(1, 2))
        for _ in range(5):
            sim.step()
        untouched = gen.simulator_window(np.asarray(panel.returns[t + 1 - W : t + 1]), _rngs(1, 2))
        for _ in range(5):
            untouched.step()
        sim.reset_paths(np.array([0]), w_new[None], _rngs(99))
        fresh = gen.simulator_window(w_new, _rngs(99))
        for _ in range(8):
            r = sim.step()
            # ring-buffer order may differ after a reset: equal up to summation order
            np.testing.assert_allclose(r[0], fresh.step()[0], rtol=1e-9, atol=1e-14)
            np.testing.assert_array_equal(r[1], untouched.step()[1])
        with pytest.raises(DataValidationError):
            sim.reset_paths(np.array([0, 1]), w_new[None], _rngs(1, 2))

    def test_moments_shapes(self, name: str, fitted: dict[str, ReturnGenerator], small: tuple[ReturnPanel, Split]) -> None:
        panel, split = small
        gen = fitted[name]
        t = _test_day(panel, split)
        sim = gen.simulator(panel, t, 3, np.random.default_rng(0))
        mean, cov = sim.moments()
        assert mean.shape == (3, N_SMALL) and cov.shape == (3, N_SMALL, N_SMALL)
        # the first step's moments are the predictive's
        pred = gen.predict(panel, t)
        np.testing.assert_allclose(mean[0], pred.mean(), rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(cov[0], pred.cov(), rtol=1e-8, atol=1e-15)

    def test_no_look_ahead(self, name: str, fitted: dict[str, ReturnGenerator], small: tuple[ReturnPanel, Split]) -> None:
        panel, split = small
        gen = fitted[name]
        t = _test_day(panel, split)
        r = np.array(panel.returns)
        r[t + 1 :] = np.random.default_rng(0).normal(0.0, 0.05, r[t + 1 :].shape)
        changed = panel.with_returns(r)
        a, b = gen.predict(panel, t), gen.predict(changed, t)
        np.testing.assert_array_equal(a.mean(), b.mean())
        np.testing.assert_array_equal(a.cov(), b.cov())
        x = panel.returns[t + 1 : t + 3]
        if a.has_log_prob:
            np.testing.assert_array_equal(a.log_prob(x), b.log_prob(x))
        np.testing.assert_array_equal(
            gen.simulate(panel, t, 5, 2, np.random.default_rng(4)), gen.simulate(changed, t, 5, 2, np.random.default_rng(4))
        )

    def test_save_load_round_trip(self, name: str, fitted: dict[str, ReturnGenerator], small: tuple[ReturnPanel, Split], tmp_path: Path) -> None:
        panel, split = small
        gen = fitted[name]
        path = tmp_path / "gen.fgz"
        gen.save(path)
        meta, arrays, _ = read_artifact(path)
        assert meta["kind"] == gen.kind and meta["assets"] == list(panel.assets)
        assert meta["config"] == gen.get_params() and "library_version" in meta
        back = load_generator(path)
        assert type(back) is type(gen) and back.get_params() == gen.get_params()
        t = _test_day(panel, split)
        a, b = gen.predict(panel, t), back.predict(panel, t)
        np.testing.assert_array_equal(a.mean(), b.mean())
        np.testing.assert_array_equal(a.cov(), b.cov())
        if a.has_log_prob:
            x = panel.returns[t + 1 : t + 3]
            np.testing.assert_array_equal(a.log_prob(x), b.log_prob(x))
        np.testing.assert_array_equal(
            gen.simulate(panel, t, 4, 2, np.random.default_rng(5)), back.simulate(panel, t, 4, 2, np.random.default_rng(5))
        )

    def test_corrupt_artifact(self, name: str, fitted: dict[str, ReturnGenerator], tmp_path: Path) -> None:
        gen = fitted[name]
        cls = type(gen)
        path = tmp_path / "gen.fgz"
        gen.save(path)
        data = path.read_bytes()
        (tmp_path / "trunc.fgz").write_bytes(data[: len(data) // 2])
        (tmp_path / "junk.fgz").write_bytes(b"not a zip at all")
        for bad in ("trunc.fgz", "junk.fgz", "missing.fgz"):
            with pytest.raises(CheckpointError):
                cls.load(tmp_path / bad)
        meta, arrays, _ = read_artifact(path)
        # an array with the wrong shape
        key = next(iter(arrays))
        write_artifact(tmp_path / "shape.fgz", meta, {**arrays, key: np.zeros((1, 2, 3))})
        with pytest.raises(CheckpointError):
            cls.load(tmp_path / "shape.fgz")
        # a missing array, and the wrong kind
        write_artifact(tmp_path / "partial.fgz", meta, {k: v for k, v in arrays.items() if k != key})
        with pytest.raises(CheckpointError):
            cls.load(tmp_path / "partial.fgz")
        write_artifact(tmp_path / "kind.fgz", {**meta, "kind": "something_else"}, arrays)
        with pytest.raises(CheckpointError):
            cls.load(tmp_path / "kind.fgz")

    def test_masked_panel(self, name: str, masked: ReturnPanel, small: tuple[ReturnPanel, Split]) -> None:
        _, split = small
        gen = FACTORIES[name]().fit(masked, split, progress=False)
        t = _test_day(masked, split)
        w = np.array(masked.returns[t + 1 - gen.min_history : t + 1])
        w[:, 2] = np.nan  # an asset absent from the whole window
        pred = gen.predict_window(w)
        assert np.isfinite(pred.mean()).all() and np.linalg.eigvalsh(pred.cov()).min() > 0
        if pred.has_log_prob:
            x = np.array(masked.returns[t + 1])
            x[3] = np.nan
            assert np.isfinite(pred.log_prob(x))
        sim = gen.simulator_window(w, _rngs(0))
        assert np.isfinite(np.stack([sim.step() for _ in range(5)])).all()


def test_not_fitted_and_bad_input(small: tuple[ReturnPanel, Split]) -> None:
    panel, split = small
    for make in FACTORIES.values():
        gen = make()
        with pytest.raises(NotFittedError):
            gen.predict_window(np.zeros((300, N_SMALL)))
    gen = GaussianGenerator(window=40).fit(panel, split, progress=False)
    with pytest.raises(DataValidationError):
        gen.predict_window(np.zeros((10, N_SMALL)))  # too short
    with pytest.raises(DataValidationError):
        gen.predict_window(np.zeros((40, N_SMALL + 1)))  # wrong width
    with pytest.raises(DataValidationError):
        gen.simulator_window(np.zeros((2, 40, N_SMALL)), _rngs(1, 2, 3))  # windows vs streams
    with pytest.raises(DataValidationError):
        GaussianGenerator(window=3).fit(panel, split, progress=False)  # singular sample covariance
    with pytest.raises(DataValidationError):
        PPCAGenerator(n_factors=N_SMALL).fit(panel, split, progress=False)


# ============================================================================ Gaussian / LW
def test_gaussian_log_prob_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 4))
    cov = A @ A.T + 0.5 * np.eye(4)
    mean = rng.normal(size=4)
    pred = GaussianPredictive(mean, cov)
    x = rng.normal(size=(6, 4))
    np.testing.assert_allclose(pred.log_prob(x), stats.multivariate_normal(mean, cov).logpdf(x), rtol=1e-12)
    # NaN entries are marginalised: the sub-vector's density
    y = x.copy()
    y[0, 1] = np.nan
    y[2, [0, 3]] = np.nan
    y[4] = np.nan
    lp = pred.log_prob(y)
    keep = [0, 2, 3]
    np.testing.assert_allclose(lp[0], stats.multivariate_normal(mean[keep], cov[np.ix_(keep, keep)]).logpdf(x[0, keep]))
    np.testing.assert_allclose(lp[2], stats.multivariate_normal(mean[1:3], cov[1:3, 1:3]).logpdf(x[2, 1:3]))
    assert lp[4] == 0.0
    np.testing.assert_allclose(lp[[1, 3, 5]], stats.multivariate_normal(mean, cov).logpdf(x[[1, 3, 5]]))
    np.testing.assert_allclose(pred.marginal_cdf(x), stats.norm.cdf(x, mean, np.sqrt(np.diag(cov))))
    np.testing.assert_allclose(pred.marginal_ppf(np.array([0.1, 0.9]))[1], stats.norm.ppf(0.9, mean, np.sqrt(np.diag(cov))))
    draws = pred.sample(200_000, np.random.default_rng(1))
    np.testing.assert_allclose(np.cov(draws, rowvar=False), cov, atol=0.03 * np.abs(cov).max())


@pytest.mark.parametrize("mean", ["zero", "sample"])
def test_window_moments_match_numpy_and_sklearn(mean: str) -> None:
    from sklearn.covariance import LedoitWolf

    rng = np.random.default_rng(1)
    X = rng.standard_t(4, size=(3, 30, 6)) * rng.uniform(0.5, 2, 6)
    fb = np.ones(6)
    mu, S = window_moments(X, mean=mean, cov="sample", fallback_var=fb)
    mu_lw, L = window_moments(X, mean=mean, cov="ledoit_wolf", fallback_var=fb)
    for b in range(3):
        if mean == "sample":
            np.testing.assert_allclose(mu[b], X[b].mean(0))
            np.testing.assert_allclose(S[b], np.cov(X[b], rowvar=False), rtol=1e-12)
        else:
            np.testing.assert_allclose(S[b], X[b].T @ X[b] / 30, rtol=1e-12)
        lw = LedoitWolf(assume_centered=(mean == "zero")).fit(X[b])
        np.testing.assert_allclose(L[b], lw.covariance_, rtol=1e-10)


def test_window_moments_masked_pairwise() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(1, 50, 3))
    X[0, :10, 0] = np.nan
    X[0, :, 2] = np.nan  # never observed: fallback variance, zero correlation
    X[0, 3, 2] = 0.1
    _, S = window_moments(X, mean="sample", cov="sample", fallback_var=np.array([1.0, 2.0, 7.0]))
    obs = ~np.isnan(X[0, :, 0])
    a, b = X[0, obs, 0], X[0, obs, 1]
    c = np.sum((a - a.mean()) * (b - X[0, :, 1].mean())) / (obs.sum() - 1)
    np.testing.assert_allclose(S[0, 0, 1], c, rtol=1e-6)
    np.testing.assert_allclose(S[0, 0, 0], np.var(a, ddof=1), rtol=1e-6)
    assert S[0, 2, 2] == pytest.approx(7.0) and S[0, 0, 2] == pytest.approx(0.0, abs=1e-12)


def test_gaussian_window_choice_on_validation(small: tuple[ReturnPanel, Split]) -> None:
    panel, split = small
    gen = LedoitWolfGenerator(window="auto", window_grid=(20, 60, 120)).fit(panel, split, progress=False)
    assert set(gen.validation_) == {20, 60, 120}
    assert gen.window_ == min(gen.validation_, key=gen.validation_.__getitem__)
    assert gen.min_history == gen.window_


def test_gaussian_simulator_reestimates_from_its_own_days(small: tuple[ReturnPanel, Split]) -> None:
    panel, split = small
    gen = GaussianGenerator(window=20).fit(panel, split, progress=False)
    sim = gen.simulator(panel, _test_day(panel, split), 1, np.random.default_rng(0))
    days = np.stack([sim.step()[0] for _ in range(20)])  # the window now holds only simulated days
    _, cov = sim.moments()
    np.testing.assert_allclose(cov[0], days.T @ days / 20, rtol=1e-10)


# ============================================================================ PPCA
def test_ppca_log_prob_against_quadrature_k1() -> None:
    """Importance-sampled log density vs adaptive quadrature over the single factor.

    Measured spread of the 4096-draw estimate over seeds: ~0.0015 nats on typical days,
    ~0.0035 on a day with conflicting outliers; tolerances are about 3-4 of those.
    """
    mu = np.array([0.001, -0.002, 0.0])
    W = np.array([[0.010], [0.015], [-0.008]])
    sigma = np.array([0.008, 0.012, 0.01])
    nu = np.array([4.0, 6.0, 9.0])
    pred = TFactorPredictive(mu, W, sigma, nu, n_is_samples=4096, seed=1)
    xs = pred.sample(4, np.random.default_rng(0))
    xs[0] = [0.06, -0.05, 0.01]  # conflicting outliers: a skewed, wide posterior
    for j, x in enumerate(xs):
        def integrand(z: float, x: np.ndarray = x) -> float:
            return stats.norm.pdf(z) * np.prod(stats.t.pdf(x, nu, loc=mu + W[:, 0] * z, scale=sigma))

        ref = np.log(integrate.quad(integrand, -12, 12, epsabs=0, epsrel=1e-11, limit=400)[0])
        est = np.array([tfactor_log_density(x[None], mu, W, sigma, nu, 4096, np.random.default_rng(s))[0] for s in range(8)])
        tol = 0.012 if j == 0 else 0.006
        assert np.abs(est - ref).max() < tol
        assert abs(est.mean() - ref) < tol / 2
        assert pred.log_prob(x) == pytest.approx(ref, abs=tol)
    # an absent asset is integrated out: equals the model on the other two
    y = xs[1].copy()
    y[1] = np.nan
    sub = TFactorPredictive(mu[[0, 2]], W[[0, 2]], sigma[[0, 2]], nu[[0, 2]], n_is_samples=4096, seed=1)
    assert pred.log_prob(y) == pytest.approx(float(sub.log_prob(xs[1][[0, 2]])), abs=0.006)


def test_ppca_log_prob_gaussian_limit() -> None:
    """With nu -> inf the model is N(0, WW' + diag(sigma^2)): check the estimate (spread ~0.004)."""
    rng = np.random.default_rng(4)
    N, k = 8, 3
    W = rng.normal(0, 0.01, (N, k))
    sigma = rng.uniform(0.005, 0.01, N)
    pred = TFactorPredictive(np.zeros(N), W, sigma, np.full(N, 1e7), n_is_samples=4096)
    x = pred.sample(5, rng)
    ref = stats.multivariate_normal(np.zeros(N), W @ W.T + np.diag(sigma**2)).logpdf(x)
    np.testing.assert_allclose(pred.log_prob(x), ref, atol=0.015)


def test_ppca_marginals_and_cov() -> None:
    rng = np.random.default_rng(5)
    N = 4
    W = rng.normal(0, 0.01, (N, 2))
    W[3] = [0.03, 0.0]  # loading much larger than the noise
    sigma = np.array([0.01, 0.005, 0.02, 0.002])
    nu = np.array([3.0, 5.0, 12.0, 4.0])
    mu = rng.normal(0, 1e-3, N)
    pred = TFactorPredictive(mu, W, sigma, nu)
    x = np.array([[-0.03, 0.0, 0.02, 0.05]])
    b = np.sqrt((W**2).sum(1))
    for i in range(N):
        ref_cdf = integrate.quad(lambda g, i=i: stats.norm.pdf(g) * stats.t.cdf(x[0, i], nu[i], mu[i] + b[i] * g, sigma[i]), -12, 12, epsabs=1e-13, limit=400)[0]
        ref_pdf = integrate.quad(lambda g, i=i: stats.norm.pdf(g) * stats.t.pdf(x[0, i], nu[i], mu[i] + b[i] * g, sigma[i]), -12, 12, epsabs=1e-13, limit=400)[0]
        assert pred.marginal_cdf(x)[0, i] == pytest.approx(ref_cdf, abs=1e-7)
        assert pred.marginal_log_prob(x)[0, i] == pytest.approx(np.log(ref_pdf), abs=1e-6)
    q = np.array([0.01, 0.3, 0.5, 0.99])
    np.testing.assert_allclose(pred.marginal_cdf(pred.marginal_ppf(q)), np.broadcast_to(q[:, None], (4, N)), atol=1e-9)
    draws = pred.sample(400_000, np.random.default_rng(6))
    np.testing.assert_allclose(np.cov(draws, rowvar=False), pred.cov(), rtol=0.05, atol=2e-6)
    np.testing.assert_allclose(draws.mean(0), mu, atol=2e-4)


def test_tfactor_log_density_per_day_params() -> None:
    rng = np.random.default_rng(7)
    N, k = 5, 2
    W = rng.normal(0, 0.01, (3, N, k))
    sigma = rng.uniform(0.005, 0.01, (3, N))
    nu = np.full((3, N), 5.0)
    x = rng.normal(0, 0.01, (3, N))
    batch = tfactor_log_density(x, np.zeros(N), W, sigma, nu, 4096, np.random.default_rng(0))
    for d in range(3):
        ref = tfactor_log_density(x[d : d + 1], np.zeros(N), W[d], sigma[d], nu[d], 2**16, np.random.default_rng(1))[0]
        assert batch[d] == pytest.approx(ref, abs=0.01)


@pytest.fixture(scope="module")
def factor3() -> tuple[ReturnPanel, Split, object]:
    syn = synthetic_factor_panel(T=1000, N=10, F=3, seed=1, n_is_samples=64)
    return syn.panel, Split.by_fraction(syn.panel.dates), syn


def test_ppca_chooses_k_near_truth(factor3: tuple[ReturnPanel, Split, object]) -> None:
    """True F=3: the validation choice of k must be within 1 of 3."""
    panel, split, _ = factor3
    gen = PPCAGenerator(window="train", factor_grid=(1, 2, 3, 4, 5), em_iter=30, select_is_samples=128).fit(panel, split, progress=False)
    assert set(gen.validation_) == {f"train/{k}" for k in (1, 2, 3, 4, 5)}
    assert abs(gen.n_factors_ - 3) <= 1
    # one factor is clearly worse than the chosen k
    assert gen.validation_["train/1"] > gen.validation_[f"train/{gen.n_factors_}"] + 0.003


def test_ppca_em_recovers_model(factor3: tuple[ReturnPanel, Split, object]) -> None:
    panel, split, syn = factor3
    R = np.asarray(panel.returns)
    fit = fit_tppca_em(R, 3, n_iter=40)
    true_cov = syn.covariance(0)
    model_cov = fit["W"] @ fit["W"].T + np.diag(fit["sigma"] ** 2 * fit["nu"] / (fit["nu"] - 2))
    assert np.linalg.norm(model_cov - true_cov) / np.linalg.norm(true_cov) < 0.15
    assert 3.5 < np.median(fit["nu"]) < 8.0  # true nu = 5 (idiosyncratic noise)
    assert fit["loglik"][-1] > fit["loglik"][0]


def test_ppca_rolling_selection_and_checkpoint(small: tuple[ReturnPanel, Split], tmp_path: Path) -> None:
    panel, split = small
    kw = dict(factor_grid=(1, 2), window_grid=(60, 120), nu_days=50, select_is_samples=64)
    gen = PPCAGenerator(**kw).fit(panel, split, progress=False, out_dir=tmp_path)
    assert set(gen.validation_) == {"60/1", "60/2", "120/1", "120/2"}
    assert (tmp_path / "ppca_selection.fgz").exists()
    assert 2 < gen.nu_[0] < 200 and np.all(gen.nu_ == gen.nu_[0])
    again = PPCAGenerator(**kw).fit(panel, split, progress=False, out_dir=tmp_path)  # resumes
    assert again.validation_ == gen.validation_ and np.array_equal(again.nu_, gen.nu_)
    with pytest.raises(CheckpointError):  # other settings, same folder
        PPCAGenerator(**{**kw, "nu_days": 40}).fit(panel, split, progress=False, out_dir=tmp_path)


# ============================================================================ GARCH
def test_skewt_matches_arch() -> None:
    from arch.univariate import SkewStudent

    d = SkewStudent()
    z = np.linspace(-6, 6, 41)
    for eta, lam in [(4.5, -0.3), (8.0, 0.2), (30.0, 0.0)]:
        params = np.array([eta, lam])
        np.testing.assert_allclose(skewt_logpdf(z, eta, lam), d.loglikelihood(params, z, np.ones_like(z), individual=True), rtol=1e-10)
        np.testing.assert_allclose(skewt_cdf(z, eta, lam)[0], d.cdf(z, params), rtol=1e-9, atol=1e-14)
        u = np.array([0.001, 0.2, 0.5, 0.8, 0.999])
        np.testing.assert_allclose(skewt_from_normal(stats.norm.ppf(u), eta, lam), d.ppf(u, params), rtol=1e-8)


def test_garch_filter_matches_arch(small: tuple[ReturnPanel, Split]) -> None:
    from arch import arch_model

    panel, split = small
    gen = GarchGenerator(dist="t", mean="constant", burn_in=100).fit(panel, split, progress=False)
    R = np.asarray(panel.returns)
    t1 = split.bounds(panel.dates)["train"][1]
    am = arch_model(100 * R[:t1, 0], mean="Constant", vol="GARCH", dist="t", rescale=False)
    res = am.fit(disp="off", show_warning=False)
    # after a long burn-in our filter must reproduce arch's conditional volatility
    for t in (300, 400):
        h = gen._filter(R[None, t - 200 : t])[0, 0]
        assert np.sqrt(h) * 100 == pytest.approx(res.conditional_volatility[t], rel=1e-4)


def test_garch_density_integrates_and_cov() -> None:
    R = np.array([[1.0, 0.6], [0.6, 1.0]])
    eta, lam = np.array([4.5, 7.0]), np.array([-0.2, 0.1])
    from factorgym.generators.baselines.garch import _copula_pearson

    pearson = _copula_pearson(R, eta, lam)
    pred = GarchPredictive(np.array([0.001, 0.0]), np.array([0.01, 0.02]), R, pearson, eta, lam)
    g1 = np.linspace(-0.25, 0.25, 501)
    g2 = np.linspace(-0.5, 0.5, 501)
    X, Y = np.meshgrid(g1, g2, indexing="ij")
    dens = np.exp(pred.log_prob(np.stack([X, Y], axis=-1)))
    h = (g1[1] - g1[0]) * (g2[1] - g2[0])
    assert dens.sum() * h == pytest.approx(1.0, abs=2e-3)
    m = pred.mean()
    cov01 = ((X - m[0]) * (Y - m[1]) * dens).sum() * h
    assert cov01 == pytest.approx(pred.cov()[0, 1], rel=0.03)
    # the marginal of asset 0 integrates the joint over asset 1
    marg = dens.sum(axis=1) * (g2[1] - g2[0])
    np.testing.assert_allclose(marg[200:300], np.exp(pred.marginal_log_prob(np.stack([g1, g1], 1))[200:300, 0]), rtol=5e-3)
    draws = pred.sample(200_000, np.random.default_rng(0))
    np.testing.assert_allclose(np.cov(draws, rowvar=False), pred.cov(), rtol=0.05)
    # NaN entry: the marginal density of the other asset
    x = np.array([0.004, np.nan])
    assert pred.log_prob(x) == pytest.approx(pred.marginal_log_prob(np.array([0.004, 0.0]))[0], abs=1e-12)


def test_garch_simulator_variance_recursion(fitted: dict[str, ReturnGenerator], small: tuple[ReturnPanel, Split]) -> None:
    panel, split = small
    gen = fitted["garch"]
    assert isinstance(gen, GarchGenerator)
    sim = gen.simulator(panel, _test_day(panel, split), 3, np.random.default_rng(0))
    _, c0 = sim.moments()
    h0 = np.diagonal(c0, axis1=1, axis2=2)
    r = sim.step()
    _, c1 = sim.moments()
    np.testing.assert_allclose(np.diagonal(c1, axis1=1, axis2=2), gen.omega_ + gen.alpha_ * (r - gen.mu_) ** 2 + gen.beta_ * h0, rtol=1e-10)


# ============================================================================ bootstrap
def test_bootstrap_replays_pool_days(small: tuple[ReturnPanel, Split]) -> None:
    panel, split = small
    gen = BlockBootstrapGenerator(mean_block=4.0).fit(panel, split, progress=False)
    t1 = split.bounds(panel.dates)["train"][1]
    train = np.asarray(panel.returns[:t1])
    np.testing.assert_array_equal(gen.pool_, train)
    index = {row.tobytes(): i for i, row in enumerate(train)}
    paths = gen.simulate(panel, _test_day(panel, split), 300, 20, np.random.default_rng(0))
    rows = np.array([[index[x.tobytes()] for x in p] for p in paths])  # KeyError if not a train day
    # blocks: consecutive pool days continue with probability 1 - 1/4
    cont = (np.diff(rows, axis=1) == 1) | ((rows[:, :-1] == t1 - 1) & (rows[:, 1:] == 0))
    assert cont.mean() == pytest.approx(0.75 + 0.25 / t1, abs=0.02)
    pred = gen.predict(panel, _test_day(panel, split))
    assert all(x.tobytes() in index for x in pred.sample(50, np.random.default_rng(1)))


def test_bootstrap_pool_never_after_prediction_day(small: tuple[ReturnPanel, Split]) -> None:
    panel, split = small
    gen = BlockBootstrapGenerator(mean_block=3.0).fit(panel, split, progress=False)
    t = 150  # inside the train period
    allowed = {row.tobytes() for row in np.asarray(panel.returns[: t + 1])}
    pred = gen.predict(panel, t)
    assert isinstance(pred, EmpiricalPredictive) and pred.rows.shape[0] == t + 1
    assert all(x.tobytes() in allowed for x in pred.sample(200, np.random.default_rng(0)))
    paths = gen.simulate(panel, t, 50, 10, np.random.default_rng(1))
    assert all(x.tobytes() in allowed for x in paths.reshape(-1, N_SMALL))


def test_bootstrap_skips_incomplete_days(masked: ReturnPanel, small: tuple[ReturnPanel, Split]) -> None:
    _, split = small
    gen = BlockBootstrapGenerator().fit(masked, split, progress=False)
    t1 = split.bounds(masked.dates)["train"][1]
    assert gen.pool_.shape[0] == int(masked.mask[:t1].all(axis=1).sum())
    assert np.isfinite(gen.pool_).all()


def test_bootstrap_moments_are_the_next_step_mixture() -> None:
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(7, 3))
    from factorgym.generators.baselines.bootstrap import _BootstrapSimulator

    sim = _BootstrapSimulator(pool, 2.5, _rngs(4))
    mean0, cov0 = sim.moments()
    np.testing.assert_allclose(cov0[0], np.cov(pool, rowvar=False, ddof=0))
    sim.step()
    nxt = (sim.positions[0] + 1) % 7
    weights = np.full(7, 0.4 / 7)
    weights[nxt] += 0.6
    mean, cov = sim.moments()
    np.testing.assert_allclose(mean[0], weights @ pool)
    np.testing.assert_allclose(cov[0], np.cov(pool, rowvar=False, aweights=weights, ddof=0), atol=1e-12)


def test_empirical_predictive_cdf_ppf() -> None:
    rows = np.arange(10.0).reshape(5, 2)
    pred = EmpiricalPredictive(rows)
    np.testing.assert_allclose(pred.marginal_cdf(np.array([4.0, 4.5])), [0.6, 0.4])
    np.testing.assert_allclose(pred.marginal_ppf(np.array([0.6, 0.61])), [[4.0, 5.0], [6.0, 7.0]])
    assert not pred.has_log_prob
    draws = pred.sample(100_000, np.random.default_rng(0))
    np.testing.assert_allclose(np.cov(draws, rowvar=False), pred.cov(), rtol=0.03)
    np.testing.assert_allclose(draws.mean(0), pred.mean(), atol=0.05)


# ============================================================================ streams
def test_path_streams_independent_of_batch() -> None:
    def draw(g: np.random.Generator, b: int) -> tuple[np.ndarray, ...]:
        return (g.standard_normal((b, 2)),)

    many = PathStreams(_rngs(1, 2, 3), draw, block=4)
    alone = PathStreams(_rngs(2), draw, block=4)
    for _ in range(10):
        np.testing.assert_array_equal(many.next()[0][1], alone.next()[0][0])
    with pytest.raises(DataValidationError):
        PathStreams([np.random.RandomState(0)], draw)  # type: ignore[list-item]


def test_artifact_is_a_zip_with_meta(fitted: dict[str, ReturnGenerator], tmp_path: Path) -> None:
    fitted["ppca_train"].save(tmp_path / "p.fgz")
    with zipfile.ZipFile(tmp_path / "p.fgz") as zf:
        assert {"meta.json", "arrays.npz"} <= set(zf.namelist())
    meta, arrays, _ = read_artifact(tmp_path / "p.fgz")
    assert meta["fitted"]["window"] == "train" and arrays["W"].shape == (N_SMALL, 2)

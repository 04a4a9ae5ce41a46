"""Late listings in the classical baselines: an asset that lists after the training period, or
has too little train history, is accepted (masked) and gets pooled parameters (issue 15).

The panel is point-in-time from the embedded sp500 data: ``LATE`` lists in the validation
period (no train day at all) and ``NEW30`` has only its last 30 train days. Each generator
fits, predicts and simulates finite numbers, never treats the late asset as riskless, and the
other assets' predictions are the ones the same panel gives without the late asset where the
rule says they must be (their estimates never see it).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from factorgym.data import ReturnPanel, Split, load_dataset
from factorgym.generators.base import ReturnGenerator
from factorgym.generators.baselines import (
    BlockBootstrapGenerator,
    GarchGenerator,
    GaussianGenerator,
    LedoitWolfGenerator,
    PPCAGenerator,
)
from factorgym.generators.baselines.common import window_moments
from factorgym.generators.baselines.pooling import average_asset_corr

BASE = ["AAPL", "BAC", "CVX", "JNJ", "KO", "MSFT"]
SPLIT = Split(train_end="2013-12-31", val_end="2015-12-31")
LISTING = "2014-07-01"  # LATE's first day: inside the validation period


def _frame() -> pd.DataFrame:
    return load_dataset("sp500").loc("2010-01-01", "2017-12-31").to_frame()


def _panel(frame: pd.DataFrame, late: bool = True, new30: bool = True) -> ReturnPanel:
    df = frame[BASE].copy()
    if late:
        df["LATE"] = frame["AMD"].where(frame.index >= pd.Timestamp(LISTING))
    if new30:
        train = frame.index[frame.index <= pd.Timestamp(SPLIT.train_end)]
        df["NEW30"] = frame["PG"].where(frame.index >= train[-30])
    return ReturnPanel.from_returns(df, name="pit")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return _frame()


FACTORIES: dict[str, Callable[[], ReturnGenerator]] = {
    "gaussian": lambda: GaussianGenerator(window=63),
    "ledoit_wolf": lambda: LedoitWolfGenerator(window=63, mean="sample"),
    "garch": lambda: GarchGenerator(burn_in=100),
    "ppca_train": lambda: PPCAGenerator(n_factors=2, window="train", em_iter=8, em_samples=8, n_is_samples=64),
    "ppca_rolling": lambda: PPCAGenerator(n_factors=2, window=126, nu_days=30, select_is_samples=32, n_is_samples=64),
    "bootstrap": lambda: BlockBootstrapGenerator(mean_block=5.0),
}


@pytest.fixture(scope="module")
def pit(frame: pd.DataFrame) -> ReturnPanel:
    return _panel(frame)


@pytest.fixture(scope="module")
def fitted(pit: ReturnPanel) -> dict[str, ReturnGenerator]:
    return {name: make().fit(pit, SPLIT, progress=False, rng=np.random.default_rng(0)) for name, make in FACTORIES.items()}


def _day_before_listing(panel: ReturnPanel) -> int:
    return panel.index_of(LISTING) - 3


def _test_day(panel: ReturnPanel) -> int:
    return int(np.searchsorted(panel.dates, pd.Timestamp("2016-06-01")))


@pytest.mark.parametrize("name", list(FACTORIES))
def test_fit_predict_simulate_with_late_listings(name: str, fitted: dict[str, ReturnGenerator], pit: ReturnPanel, tmp_path) -> None:
    gen = fitted[name]
    late = list(pit.assets).index("LATE")
    assert "LATE" in gen.pooled_assets_  # type: ignore[attr-defined]
    for t in (_day_before_listing(pit), _test_day(pit)):
        pred = gen.predict(pit, t)
        mean, cov = pred.mean(), pred.cov()
        assert np.isfinite(mean).all() and np.isfinite(cov).all()
        assert np.linalg.eigvalsh(cov).min() > 0
        var = np.diag(cov)
        # never riskless: the late asset's variance is of the order of the others'
        assert var[late] > 0.1 * np.median(np.delete(var, late))
        if pred.has_log_prob:
            assert np.isfinite(pred.log_prob(np.asarray(pit.returns[t + 1])))
        paths = gen.simulate(pit, t, 20, 8, np.random.default_rng(1))
        assert paths.shape == (8, 20, pit.N) and np.isfinite(paths).all()
        assert paths[:, :, late].std() > 0.1 * np.median(paths.std(axis=(0, 1)))
    gen.save(tmp_path / "g.fgz")
    back = type(gen).load(tmp_path / "g.fgz")
    assert back.pooled_assets_ == gen.pooled_assets_  # type: ignore[attr-defined]
    t = _day_before_listing(pit)
    np.testing.assert_allclose(back.predict(pit, t).cov(), gen.predict(pit, t).cov(), rtol=1e-12)


def test_pooled_rules(fitted: dict[str, ReturnGenerator], pit: ReturnPanel) -> None:
    assets = list(pit.assets)
    late, new30 = assets.index("LATE"), assets.index("NEW30")
    base = [assets.index(a) for a in BASE]
    # Gaussian: the late asset's train variance is the mean of the others' own train variances
    g = fitted["gaussian"]
    t1 = SPLIT.bounds(pit.dates)["train"][1]
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        own = np.nanvar(np.asarray(pit.returns)[:t1], axis=0)  # LATE: all NaN
    assert g.pooled_assets_ == ("LATE",)  # NEW30 has its 30 own days
    assert g.train_var_[late] == pytest.approx(np.mean(np.delete(own, late)))
    pred = g.predict(pit, _day_before_listing(pit))
    assert pred.mean()[late] == 0.0 and pred.cov()[late, late] == pytest.approx(g.train_var_[late])
    corr = pred.cov() / np.sqrt(np.outer(np.diag(pred.cov()), np.diag(pred.cov())))
    assert corr[late, base].mean() > 0.2  # an average asset, not an independent (diversifying) one
    # GARCH: both late assets pooled; NEW30's unconditional variance is its own train variance
    gar = fitted["garch"]
    assert set(gar.pooled_assets_) == {"LATE", "NEW30"}
    assert gar.alpha_[late] == pytest.approx(np.median(gar.alpha_[base]))
    assert gar.h0_[new30] == pytest.approx(own[new30])
    assert gar.h0_[late] == pytest.approx(np.mean(gar.h0_[base]))
    assert not gar.converged_[late]
    # PPCA train mode: the late asset loads like the average fitted asset
    pp = fitted["ppca_train"]
    np.testing.assert_allclose(pp.W_[late], np.delete(pp.W_, late, axis=0).mean(axis=0))
    assert pp.mu_[late] == 0.0
    # bootstrap: LATE is filled from donors on every pool day, NEW30 keeps its own days
    bs = fitted["bootstrap"]
    assert set(bs.pooled_assets_) == {"LATE", "NEW30"}
    assert bs.pool_.shape[0] == t1  # every train day (the base assets trade every day)
    donors = {(d, x) for d in range(t1) for x in bs.pool_[d, base]}
    assert all((d, bs.pool_[d, late]) in donors for d in range(t1))
    r = np.asarray(pit.returns)[:t1]
    have = np.isfinite(r[:, new30])
    np.testing.assert_array_equal(bs.pool_[have, new30], r[have, new30])


# ----------------------------------------------------------------------------- the others are untouched
MATCH = {
    # name -> days on which the other assets' predictions must equal the panel without LATE
    "gaussian": "both",  # pairwise-complete covariances: LATE never enters the others' entries
    "ledoit_wolf": "before",  # after listing LATE rightly enters the shrinkage target
    "garch": "both",  # per-asset fits and pairwise copula correlations
    "ppca_train": "both",  # LATE is left out of the ECM fit
    "bootstrap": "both",  # the pool days are chosen by the established assets only
    # ppca_rolling is left out on purpose: its eigen-decomposition takes in LATE as an average
    # asset, which rightly moves the others' loadings a little
}


@pytest.mark.parametrize("name", list(MATCH))
def test_other_assets_unchanged_by_a_late_listing(name: str, frame: pd.DataFrame, fitted: dict[str, ReturnGenerator]) -> None:
    with_late = _panel(frame, new30=False)
    without = _panel(frame, late=False, new30=False)
    a = FACTORIES[name]().fit(with_late, SPLIT, progress=False, rng=np.random.default_rng(0))
    b = FACTORIES[name]().fit(without, SPLIT, progress=False, rng=np.random.default_rng(0))
    days = [_day_before_listing(with_late)] + ([_test_day(with_late)] if MATCH[name] == "both" else [])
    k = len(BASE)
    for t in days:
        pa, pb = a.predict(with_late, t), b.predict(without, t)
        np.testing.assert_allclose(pa.mean()[:k], pb.mean(), rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(pa.cov()[:k, :k], pb.cov(), rtol=1e-9, atol=1e-15)
        x = np.asarray(with_late.returns[t + 1])
        np.testing.assert_allclose(pa.marginal_cdf(x[None])[0, :k], pb.marginal_cdf(x[None, :k])[0], rtol=1e-9)


def test_ledoit_wolf_ignores_an_absent_asset() -> None:
    """The LW target (mean variance) and intensity count only the assets in the window."""
    rng = np.random.default_rng(4)
    X = rng.standard_t(5, size=(2, 40, 4)) * 0.01
    Xa = np.concatenate([X, np.full((2, 40, 1), np.nan)], axis=2)
    Xa[1, 20:, 4] = 0.01 * rng.normal(size=20)  # window 1: the asset is present (not "absent")
    for mean in ("zero", "sample"):
        _, S = window_moments(X, mean=mean, cov="ledoit_wolf", fallback_var=np.ones(4))
        _, Sa = window_moments(Xa, mean=mean, cov="ledoit_wolf", fallback_var=np.ones(5))
        np.testing.assert_allclose(Sa[0, :4, :4], S[0], rtol=1e-10)
        assert Sa[0, 4, 4] == pytest.approx(1.0)
        assert not np.allclose(Sa[1, :4, :4], S[1], rtol=1e-6)  # present: it counts


def test_average_asset_corr_is_psd_and_typical() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        K = int(rng.integers(2, 9))
        A = rng.normal(size=(K, K + 2))
        C = A @ A.T + rng.uniform(0, 3) * np.ones((K, K))
        sd = np.sqrt(np.diag(C))
        P = C / np.outer(sd, sd)
        full = np.zeros((K + 2, K + 2))
        full[:K, :K] = P
        present = np.r_[np.ones(K, bool), False, False]
        R = average_asset_corr(full, present)
        assert np.linalg.eigvalsh(R).min() > -1e-10
        np.testing.assert_array_equal(R[:K, :K], P)
        assert np.allclose(np.diag(R), 1.0)
        rho = (P.sum() - K) / (K * (K - 1))
        if rho >= 0:  # the mean correlation with the others is their mean pairwise correlation
            assert R[K, :K].mean() == pytest.approx(rho, abs=1e-12)
            assert R[K, K + 1] == pytest.approx(R[K, :K].mean() ** 2 * K**2 / P.sum())

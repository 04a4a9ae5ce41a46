"""Point-in-time features: no look-ahead, three implementations agree, validity, scaling."""

from __future__ import annotations

import json

import hypothesis.extra.numpy as hnp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factorgym.data import ReturnPanel
from factorgym.errors import DataValidationError
from factorgym.features import (
    FeatureConfig,
    FeatureScaler,
    RollingFeatures,
    compute_features,
    window_features,
)

SMALL = FeatureConfig(vol_windows=(2, 4), mom_windows=(2, 3), market=True)  # warm-up 4 days
SMALL_EXOG = FeatureConfig(vol_windows=(2, 4), mom_windows=(2, 3), market=True, exog=("IDX",))
ASSETS = ("A", "B", "C", "D", "E")

returns_el = st.floats(-0.5, 0.5, allow_nan=False, allow_infinity=False, width=64)


def _panel(r: np.ndarray, mask: np.ndarray, exog: np.ndarray | None = None) -> ReturnPanel:
    T, N = r.shape
    dates = pd.bdate_range("2020-01-01", periods=T)
    ex = None if exog is None else pd.DataFrame({"IDX": exog}, index=dates)
    return ReturnPanel(dates, ASSETS[:N], np.where(mask, r, np.nan), mask, exog=ex)


def _random_panel(T: int, N: int, seed: int, p_missing: float = 0.1) -> ReturnPanel:  # noqa: N803
    rng = np.random.default_rng(seed)
    r = rng.standard_t(4, (T, N)) * 0.015
    mask = rng.random((T, N)) >= p_missing
    if p_missing > 0:
        mask[rng.integers(0, T, 2), :] = False  # whole-market gaps too
    return _panel(np.clip(r, -0.5, 0.5), mask)


@st.composite
def two_histories(draw: st.DrawFn) -> tuple[ReturnPanel, ReturnPanel, int]:
    """Two panels that agree on days ``<= t`` and are arbitrary (values and mask) after."""
    T = draw(st.integers(5, 24))
    N = draw(st.integers(1, 4))
    r1 = draw(hnp.arrays(np.float64, (T, N), elements=returns_el))
    r2 = draw(hnp.arrays(np.float64, (T, N), elements=returns_el))
    m1 = draw(hnp.arrays(np.bool_, (T, N)))
    m2 = draw(hnp.arrays(np.bool_, (T, N)))
    e1 = draw(hnp.arrays(np.float64, (T,), elements=returns_el))
    e2 = draw(hnp.arrays(np.float64, (T,), elements=returns_el))
    t = draw(st.integers(0, T - 1))
    r2[: t + 1], m2[: t + 1], e2[: t + 1] = r1[: t + 1], m1[: t + 1], e1[: t + 1]
    return _panel(r1, m1, e1), _panel(r2, m2, e2), t


# ---------------------------------------------------------------------------- no look-ahead
@settings(max_examples=60, deadline=None)
@given(two_histories())
def test_compute_features_has_no_lookahead(case: tuple[ReturnPanel, ReturnPanel, int]) -> None:
    a, b, t = case
    xa, va = compute_features(a, SMALL_EXOG)
    xb, vb = compute_features(b, SMALL_EXOG)
    np.testing.assert_array_equal(xa[: t + 1], xb[: t + 1])  # NaNs compare equal
    np.testing.assert_array_equal(va[: t + 1], vb[: t + 1])


@settings(max_examples=40, deadline=None)
@given(two_histories())
def test_rolling_features_have_no_lookahead(case: tuple[ReturnPanel, ReturnPanel, int]) -> None:
    a, b, t = case
    W = SMALL.warmup
    if a.T < W:
        return
    ra, rb = RollingFeatures(a.returns[:W], SMALL), RollingFeatures(b.returns[:W], SMALL)
    for day in range(W - 1, min(t, a.T - 1) + 1):
        if day >= W:
            ra.push(a.returns[day][None])
            rb.push(b.returns[day][None])
        np.testing.assert_array_equal(ra.features(), rb.features())


def test_lookahead_property_is_not_vacuous() -> None:
    """Changing day t+1 does change features on day t+1 (so the property above can fail)."""
    p = _random_panel(30, 3, seed=1, p_missing=0.0)
    r = p.filled()
    r[20, 1] += 0.05
    x0, _ = compute_features(p, SMALL)
    x1, _ = compute_features(p.with_returns(r), SMALL)
    np.testing.assert_array_equal(x0[:20], x1[:20])
    assert not np.allclose(x0[20:24, 1], x1[20:24, 1])


# ---------------------------------------------------------------------------- definitions
def test_definitions_against_pandas() -> None:
    p = _random_panel(80, 3, seed=2, p_missing=0.0)
    cfg = FeatureConfig(vol_windows=(5, 10), mom_windows=(3, 7), market=True)
    X, valid = compute_features(p, cfg)
    df = p.to_frame()
    expected = [df.rolling(w).std(ddof=1) for w in cfg.vol_windows]
    expected += [np.log1p(df).shift(1).rolling(w).sum() for w in cfg.mom_windows]
    expected.append(pd.DataFrame(np.repeat(df.mean(axis=1).to_numpy()[:, None], 3, axis=1)))
    assert cfg.names == ["vol_5", "vol_10", "mom_3", "mom_7", "mkt"]
    for k, e in enumerate(expected):
        np.testing.assert_allclose(X[valid][:, k], e.to_numpy()[valid], rtol=1e-10, atol=1e-13)
    assert valid[cfg.warmup - 1 :].all() and not valid[: cfg.warmup - 1].any()


def test_exog_features_and_errors() -> None:
    p = _random_panel(10, 2, seed=3, p_missing=0.0)
    with pytest.raises(DataValidationError, match="has none"):
        compute_features(p, SMALL_EXOG)
    q = _panel(p.filled(), p.mask, np.arange(10) * 1e-3)
    X, valid = compute_features(q, SMALL_EXOG)
    np.testing.assert_array_equal(X[valid][:, -1], np.broadcast_to(np.arange(10)[:, None] * 1e-3, (10, 2))[valid])
    with pytest.raises(DataValidationError, match="not in .*: OTHER"):
        compute_features(q, FeatureConfig(exog=("OTHER",)))
    with pytest.raises(DataValidationError, match="exogenous"):
        window_features(np.zeros((10, 2)), SMALL_EXOG)


# ---------------------------------------------------------------------------- agreement
def _assert_same_features(a: np.ndarray, b: np.ndarray, cfg: FeatureConfig, tol: float) -> None:
    """Equal within ``tol``; volatility columns are compared as variances: the rolling
    implementation's variance carries an absolute error of about eps * (window sum of r^2),
    which the square root divides by the volatility, so a window of near-identical returns
    (volatility 1e-7) can differ by 1e-12 in volatility but only by 1e-18 in variance."""
    vol = np.array([name.startswith("vol_") for name in cfg.names])
    a, b = np.array(a, dtype=float), np.array(b, dtype=float)
    a[..., vol], b[..., vol] = a[..., vol] ** 2, b[..., vol] ** 2
    np.testing.assert_allclose(a, b, rtol=0, atol=tol, equal_nan=True)


def _check_agreement(p: ReturnPanel, cfg: FeatureConfig, tol: float = 1e-12) -> None:
    X, valid = compute_features(p, cfg)
    W = cfg.warmup
    assert not valid[: W - 1].any()
    roll = RollingFeatures(p.returns[:W], cfg, n_paths=2)
    for t in range(W - 1, p.T):
        if t >= W:
            roll.push(np.broadcast_to(p.returns[t], (2, p.N)))
        win = window_features(p.returns[t - W + 1 : t + 1], cfg)
        rf = roll.features()
        np.testing.assert_array_equal(np.isnan(win), ~np.broadcast_to(valid[t][:, None], win.shape))
        _assert_same_features(win, X[t], cfg, tol)
        _assert_same_features(rf[0], X[t], cfg, tol)
        np.testing.assert_array_equal(rf[0], rf[1])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.sampled_from([0.0, 0.05, 0.3]))
def test_three_implementations_agree_on_random_panels(seed: int, n: int, p_missing: float) -> None:
    _check_agreement(_random_panel(40, n, seed, p_missing), SMALL)


def test_three_implementations_agree_with_default_windows() -> None:
    cfg = FeatureConfig()
    _check_agreement(_random_panel(cfg.warmup + 60, 5, seed=4, p_missing=0.02), cfg)


def test_window_features_batched_paths() -> None:
    rng = np.random.default_rng(5)
    windows = rng.normal(0, 0.02, (3, 2, SMALL.warmup, 4))  # (P, B, W, N)
    windows[1, 0, 2, 3] = np.nan
    out = window_features(windows, SMALL)
    assert out.shape == (3, 2, 4, SMALL.n_features)
    for i in range(3):
        for j in range(2):
            np.testing.assert_array_equal(out[i, j], window_features(windows[i, j], SMALL))
    assert np.isnan(out[1, 0, 3]).all() and not np.isnan(out[1, 0, :3]).any()


def test_rolling_features_paths_diverge_and_validate() -> None:
    hist = np.random.default_rng(6).normal(0, 0.01, (SMALL.warmup + 3, 2))
    roll = RollingFeatures(hist, SMALL, length=6, n_paths=3)
    assert roll.window.shape == (3, 6, 2) and roll.n_paths == 3
    roll.push(np.array([[0.01, 0.02], [0.0, 0.0], [-0.03, 0.01]]))
    f = roll.features()
    assert f.shape == (3, 2, SMALL.n_features) and not np.allclose(f[0], f[2])
    np.testing.assert_array_equal(roll.lookback(2)[:, -1], [[0.01, 0.02], [0.0, 0.0], [-0.03, 0.01]])
    with pytest.raises(DataValidationError, match="expected"):
        roll.push(np.zeros((2, 2)))
    with pytest.raises(DataValidationError, match="shorter"):
        RollingFeatures(hist[:2], SMALL)
    with pytest.raises(DataValidationError, match="shorter than the feature warm-up"):
        window_features(hist[:2], SMALL)


# ---------------------------------------------------------------------------- validity
@settings(max_examples=40, deadline=None)
@given(st.data())
def test_features_are_nan_exactly_where_history_is_incomplete(data: st.DataObject) -> None:
    T, N = data.draw(st.integers(1, 20)), data.draw(st.integers(1, 3))
    mask = data.draw(hnp.arrays(np.bool_, (T, N)))
    r = np.random.default_rng(0).normal(0, 0.01, (T, N))
    X, valid = compute_features(_panel(r, mask), SMALL)
    W = SMALL.warmup
    expected = np.array(
        [[t >= W - 1 and bool(mask[t - W + 1 : t + 1, i].all()) for i in range(N)] for t in range(T)], dtype=bool
    ).reshape(T, N)
    np.testing.assert_array_equal(valid, expected)
    assert np.isnan(X[~valid]).all() and np.isfinite(X[valid]).all()


# ---------------------------------------------------------------------------- scaler
def test_scaler_fitted_on_train_rows_ignores_later_data() -> None:
    a = _random_panel(120, 3, seed=7)
    later = _random_panel(120, 3, seed=8, p_missing=0.4)
    split = 70
    r = np.vstack([a.filled(np.nan)[:split], later.filled(np.nan)[split:] * 3])
    b = _panel(r, ~np.isnan(r))
    fits = []
    for p in (a, b):
        X, valid = compute_features(p, SMALL)
        fits.append(FeatureScaler().fit(X[:split], valid[:split]))
    np.testing.assert_array_equal(fits[0].mean_, fits[1].mean_)
    np.testing.assert_array_equal(fits[0].scale_, fits[1].scale_)
    X, valid = compute_features(a, SMALL)
    train = X[:split][valid[:split]]
    np.testing.assert_allclose(fits[0].mean_, train.mean(axis=0), rtol=1e-12)
    z = fits[0].transform(train)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-12)
    full = FeatureScaler().fit(X, valid)  # fitting on everything would differ
    assert not np.allclose(full.mean_, fits[0].mean_)


def test_scaler_round_trip_and_errors() -> None:
    X, valid = compute_features(_random_panel(40, 2, seed=9), SMALL)
    s = FeatureScaler().fit(X, valid)
    t = FeatureScaler.from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_array_equal(s.transform(X), t.transform(X))
    with pytest.raises(DataValidationError, match="no valid feature rows"):
        FeatureScaler().fit(X[:2], valid[:2])


def test_constant_feature_has_unit_scale() -> None:
    X = np.ones((5, 2, 1))
    s = FeatureScaler().fit(X, np.ones((5, 2), dtype=bool))
    assert s.scale_[0] == 1.0 and np.all(s.transform(X) == 0.0)


# ---------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "cfg",
    [FeatureConfig(), SMALL, SMALL_EXOG, FeatureConfig(vol_windows=(), mom_windows=(5,), market=False)],
)
def test_feature_config_round_trip(cfg: FeatureConfig) -> None:
    back = FeatureConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.names == cfg.names and back.warmup == cfg.warmup


def test_feature_config_names_and_warmup() -> None:
    cfg = FeatureConfig()
    assert cfg.names == ["vol_21", "vol_63", "mom_21", "mom_126", "mom_252", "mkt"]
    assert cfg.warmup == 253 and cfg.n_features == 6
    assert SMALL_EXOG.names[-1] == "exog:IDX"
    with pytest.raises(DataValidationError, match="windows must be >= 2 days, got 1"):
        FeatureConfig(vol_windows=(1,))

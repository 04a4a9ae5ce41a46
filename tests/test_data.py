"""ReturnPanel validation and views, Split, the embedded sp500 data and synthetic panels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, stats

from factorgym.data import (
    MAX_ABS_DAILY_RETURN,
    SP500_SECTORS,
    ReturnPanel,
    Split,
    load_dataset,
    synthetic_factor_panel,
)
from factorgym.errors import DataValidationError

DATES = pd.bdate_range("2021-01-04", periods=6)  # Mon 2021-01-04 .. Mon 2021-01-11
ASSETS = ("AAA", "BBB", "CCC")


def _returns(T: int = 6, N: int = 3, seed: int = 0) -> np.ndarray:  # noqa: N803
    return np.random.default_rng(seed).normal(0.0, 0.01, (T, N))


def _panel(r: np.ndarray | None = None, mask: np.ndarray | None = None, **kw: object) -> ReturnPanel:
    r = _returns() if r is None else r
    mask = np.ones(r.shape, dtype=bool) if mask is None else mask
    return ReturnPanel(DATES[: r.shape[0]], ASSETS[: r.shape[1]], r, mask, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sp500() -> ReturnPanel:
    return load_dataset("sp500")


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("row", "col", "value", "pattern"),
    [
        (2, 1, np.nan, r"NaN returns at available cells 2021-01-06/BBB"),
        (3, 0, np.inf, r"infinite returns at 2021-01-07/AAA"),
        (4, 2, -np.inf, r"infinite returns at 2021-01-08/CCC"),
        (1, 2, -1.0, r"<= -100% at 2021-01-05/CCC"),
        (4, 1, 1.5, r"> \+100% at 2021-01-08/BBB"),
    ],
)
def test_bad_cell_is_rejected_naming_date_and_asset(row: int, col: int, value: float, pattern: str) -> None:
    r = _returns()
    r[row, col] = value
    with pytest.raises(DataValidationError, match=pattern):
        _panel(r)


def test_return_bounds_are_inclusive_of_plus_100_exclusive_of_minus_100() -> None:
    r = _returns()
    r[0, 0] = MAX_ABS_DAILY_RETURN
    r[1, 1] = -0.999
    p = _panel(r)
    assert p.returns[0, 0] == MAX_ABS_DAILY_RETURN


def test_many_bad_cells_are_counted() -> None:
    r = _returns()
    r[:, :] = 2.0
    with pytest.raises(DataValidationError, match=r"\(\+13 more\)"):
        _panel(r)


def test_duplicate_dates_named() -> None:
    dates = DATES[[0, 1, 2, 2, 3, 4]]
    with pytest.raises(DataValidationError, match="duplicate dates: 2021-01-06"):
        ReturnPanel(dates, ASSETS, _returns(), np.ones((6, 3), bool))


def test_unsorted_dates_named() -> None:
    dates = DATES[[0, 1, 3, 2, 4, 5]]
    with pytest.raises(DataValidationError, match="2021-01-07 is followed by 2021-01-06"):
        ReturnPanel(dates, ASSETS, _returns(), np.ones((6, 3), bool))


def test_missing_dates_rejected() -> None:
    dates = pd.DatetimeIndex([*DATES[:5], pd.NaT])
    with pytest.raises(DataValidationError, match="NaT"):
        ReturnPanel(dates, ASSETS, _returns(), np.ones((6, 3), bool))


def test_duplicate_and_empty_asset_names() -> None:
    with pytest.raises(DataValidationError, match="duplicate asset names: AAA"):
        ReturnPanel(DATES, ("AAA", "BBB", "AAA"), _returns(), np.ones((6, 3), bool))
    with pytest.raises(DataValidationError, match="empty asset name"):
        ReturnPanel(DATES, ("AAA", " ", "CCC"), _returns(), np.ones((6, 3), bool))


def test_shape_mismatches() -> None:
    with pytest.raises(DataValidationError, match="does not match 6 dates x 2 assets"):
        ReturnPanel(DATES, ASSETS[:2], _returns(), np.ones((6, 3), bool))
    with pytest.raises(DataValidationError, match="mask"):
        ReturnPanel(DATES, ASSETS, _returns(), np.ones((6, 2), bool))


def test_static_must_cover_every_asset() -> None:
    static = pd.DataFrame({"sector": ["x", "y"]}, index=["AAA", "BBB"])
    with pytest.raises(DataValidationError, match="static attributes missing for assets: CCC"):
        _panel(static=static)


def test_exog_must_cover_every_date() -> None:
    exog = pd.DataFrame({"IDX": np.zeros(5)}, index=DATES.delete(3))
    with pytest.raises(DataValidationError, match="exogenous series missing or non-finite on 2021-01-07"):
        _panel(exog=exog)


# ---------------------------------------------------------------------------- immutability
def test_arrays_are_read_only_copies() -> None:
    r = _returns()
    p = _panel(r)
    assert not p.returns.flags.writeable and not p.mask.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        p.returns[0, 0] = 0.5
    with pytest.raises(ValueError, match="read-only"):
        p.mask[0, 0] = False
    r[0, 0] = 0.5  # the caller's array is not shared
    assert p.returns[0, 0] != 0.5
    with pytest.raises(AttributeError):
        p.name = "other"  # type: ignore[misc]


# ---------------------------------------------------------------------------- constructors
def _prices() -> pd.DataFrame:
    return pd.DataFrame(
        {"AAA": [100.0, 110.0, 99.0, 99.0], "BBB": [50.0, np.nan, 55.0, 60.5]},
        index=pd.DatetimeIndex(["2021-01-04", "2021-01-05", "2021-01-06", "2021-01-07"]),
    )


def test_from_prices_returns_by_hand() -> None:
    p = ReturnPanel.from_prices(_prices())
    assert list(p.dates.strftime("%Y-%m-%d")) == ["2021-01-05", "2021-01-06", "2021-01-07"]
    np.testing.assert_allclose(p.returns[:, 0], [0.1, -0.1, 0.0], rtol=0, atol=1e-15)
    # a missing price masks both returns that need it; the next pair gives 60.5/55 - 1
    np.testing.assert_array_equal(p.mask[:, 1], [False, False, True])
    assert p.returns[2, 1] == pytest.approx(0.1, abs=1e-15)


def test_absent_is_not_zero() -> None:
    p = ReturnPanel.from_prices(_prices())
    assert p.mask[2, 0] and p.returns[2, 0] == 0.0  # a genuine zero return is available
    assert not p.mask[0, 1] and np.isnan(p.returns[0, 1])  # absence is NaN + mask False
    assert np.isnan(p.to_frame().iloc[0, 1]) and np.isnan(p.log_returns()[0, 1])
    filled = p.filled(0.0)
    assert filled[0, 1] == 0.0 and filled.flags.writeable and not p.mask[0, 1]


def test_mask_is_authoritative() -> None:
    r = _returns()
    mask = np.ones_like(r, dtype=bool)
    mask[2, 1] = False
    p = _panel(r, mask)
    assert np.isnan(p.returns[2, 1])
    assert np.isnan(p.to_frame().iloc[2, 1])


def test_from_prices_rejects_bad_prices() -> None:
    bad = _prices()
    bad.iloc[2, 1] = 0.0
    with pytest.raises(DataValidationError, match="non-positive prices at 2021-01-06/BBB"):
        ReturnPanel.from_prices(bad)
    bad = _prices().astype(object)
    bad.iloc[1, 0] = "abc"
    with pytest.raises(DataValidationError, match="column 'AAA' has non-numeric cells: 2021-01-05='abc'"):
        ReturnPanel.from_prices(bad)
    bad = _prices()
    bad.iloc[3, 0] = np.inf
    with pytest.raises(DataValidationError, match="infinite prices at 2021-01-07/AAA"):
        ReturnPanel.from_prices(bad)
    with pytest.raises(DataValidationError, match="at least two dates"):
        ReturnPanel.from_prices(_prices().iloc[:1])
    jump = _prices()
    jump.iloc[2, 0] = 300.0  # 99 -> 300 is +173%
    with pytest.raises(DataValidationError, match=r"> \+100% at 2021-01-06/AAA"):
        ReturnPanel.from_prices(jump)


def test_from_returns_mask_and_empty_cells() -> None:
    df = pd.DataFrame(_returns(), index=DATES, columns=list(ASSETS))
    df.iloc[1, 2] = np.nan
    p = ReturnPanel.from_returns(df)
    assert not p.mask[1, 2] and p.mask.sum() == 17
    with pytest.raises(DataValidationError, match="NaN returns at available cells 2021-01-05/CCC"):
        ReturnPanel.from_returns(df, mask=np.ones((6, 3), bool))


# ---------------------------------------------------------------------------- views
def test_iloc_loc_and_index_of() -> None:
    exog = pd.DataFrame({"IDX": np.arange(6) * 1e-3}, index=DATES)
    static = pd.DataFrame({"sector": ["s1", "s2", "s3"]}, index=list(ASSETS))
    p = _panel(exog=exog, static=static)
    sub = p.iloc(1, 4)
    assert sub.dates.equals(DATES[1:4])
    np.testing.assert_array_equal(sub.returns, p.returns[1:4])
    np.testing.assert_array_equal(sub.exog["IDX"].to_numpy(), [1e-3, 2e-3, 3e-3])
    assert sub.static is not None and sub.static.equals(p.static)
    # loc is inclusive at both ends and accepts non-trading days
    assert p.loc("2021-01-05", "2021-01-07").dates.equals(DATES[1:4])
    assert p.loc("2021-01-09", None).dates.equals(DATES[5:])  # Saturday -> next Monday
    assert p.loc(None, "2021-01-05").T == 2
    assert p.index_of("2021-01-06") == 2
    assert p.index_of("2021-01-10") == 4  # Sunday -> Friday's row
    with pytest.raises(DataValidationError, match="2021-01-01 is before the first date 2021-01-04"):
        p.index_of("2021-01-01")
    with pytest.raises(DataValidationError, match="empty row range"):
        p.iloc(3, 3)
    with pytest.raises(DataValidationError, match="empty row range"):
        p.loc("2021-02-01", "2021-03-01")


def test_select_assets_reorders_everything() -> None:
    static = pd.DataFrame({"sector": ["s1", "s2", "s3"]}, index=list(ASSETS))
    mask = np.ones((6, 3), dtype=bool)
    mask[0, 2] = False
    p = _panel(mask=mask, static=static)
    q = p.select_assets(["CCC", "AAA"])
    assert q.assets == ("CCC", "AAA")
    np.testing.assert_array_equal(q.returns, p.returns[:, [2, 0]])
    np.testing.assert_array_equal(q.mask, p.mask[:, [2, 0]])
    assert list(q.static["sector"]) == ["s3", "s1"]
    with pytest.raises(DataValidationError, match="unknown assets: ZZZ"):
        p.select_assets(["AAA", "ZZZ"])


def test_with_returns_validates_and_keeps_attributes() -> None:
    static = pd.DataFrame({"sector": ["s1", "s2", "s3"]}, index=list(ASSETS))
    p = _panel(static=static)
    new = _returns(seed=1)
    q = p.with_returns(new)
    np.testing.assert_array_equal(q.returns, new)
    assert q.dates.equals(p.dates) and q.assets == p.assets and q.static.equals(p.static)
    new[3, 1] = -1.2
    with pytest.raises(DataValidationError, match="2021-01-07/BBB"):
        p.with_returns(new)


def test_require_history() -> None:
    p = _panel()
    p.require_history(5)
    with pytest.raises(DataValidationError, match="6 days, too few for .* of 6 days"):
        p.require_history(6)


# ---------------------------------------------------------------------------- splits
def test_sp500_split_bounds(sp500: ReturnPanel) -> None:
    b = Split().bounds(sp500.dates)
    assert b["train"][0] == 0 and b["train"][1] == b["val"][0] and b["val"][1] == b["test"][0]
    assert b["test"][1] == sp500.T
    d = sp500.dates
    assert d[b["train"][1] - 1] == pd.Timestamp("2013-12-31")
    assert d[b["val"][0]].year == 2014 and d[b["val"][1] - 1] == pd.Timestamp("2018-12-31")
    assert d[b["test"][0]].year == 2019
    test = Split().part(sp500, "test")
    assert test.dates[0] == d[b["test"][0]] and test.dates[-1] == d[-1]


def test_split_errors() -> None:
    with pytest.raises(DataValidationError, match="must precede"):
        Split(train_end="2019-01-01", val_end="2018-01-01")
    p = _panel()
    with pytest.raises(DataValidationError, match="unknown split part 'holdout'"):
        Split().part(p, "holdout")
    with pytest.raises(DataValidationError, match="split part 'train' is empty"):
        Split().part(p, "train")  # the 2021 panel starts after train_end


def test_split_by_fraction() -> None:
    dates = pd.bdate_range("2020-01-01", periods=100)
    s = Split.by_fraction(dates, 0.6, 0.2)
    b = s.bounds(dates)
    assert b == {"train": (0, 60), "val": (60, 80), "test": (80, 100)}


# ---------------------------------------------------------------------------- sp500
def test_load_sp500(sp500: ReturnPanel) -> None:
    assert sp500.N == 20 and set(sp500.assets) == set(SP500_SECTORS)
    assert sp500.dates[0] == pd.Timestamp("1990-01-03") and sp500.dates[-1] == pd.Timestamp("2022-12-28")
    assert sp500.mask.all() and np.isfinite(sp500.returns).all()
    assert sp500.static is not None
    assert dict(sp500.static["sector"]) == SP500_SECTORS
    assert sp500.exog is not None and list(sp500.exog.columns) == ["SP500"]
    assert np.isfinite(sp500.exog.to_numpy()).all() and sp500.exog.index.equals(sp500.dates)


def test_sp500_returns_match_the_source_prices(sp500: ReturnPanel) -> None:
    from skfolio.datasets import load_sp500_dataset

    prices = load_sp500_dataset()
    expected = prices["MSFT"].to_numpy()[1:] / prices["MSFT"].to_numpy()[:-1] - 1.0
    np.testing.assert_allclose(sp500.returns[:, sp500.assets.index("MSFT")], expected, rtol=0, atol=1e-15)


def test_unknown_dataset() -> None:
    with pytest.raises(DataValidationError, match="unknown dataset 'nasdaq'; embedded datasets: sp500"):
        load_dataset("nasdaq")


# ---------------------------------------------------------------------------- synthetic truth
def test_synthetic_is_reproducible() -> None:
    a = synthetic_factor_panel(T=40, N=5, F=2, seed=7, n_is_samples=64)
    b = synthetic_factor_panel(T=40, N=5, F=2, seed=7, n_is_samples=64)
    c = synthetic_factor_panel(T=40, N=5, F=2, seed=8, n_is_samples=64)
    np.testing.assert_array_equal(a.panel.returns, b.panel.returns)
    np.testing.assert_array_equal(a.log_density, b.log_density)
    assert not np.allclose(a.panel.returns, c.panel.returns)
    assert a.panel.T == 40 and a.panel.N == 5 and a.beta.shape == (5, 2) and a.log_density.shape == (40,)


def test_synthetic_rejects_infinite_variance() -> None:
    with pytest.raises(DataValidationError, match="exceed 2"):
        synthetic_factor_panel(T=10, nu=2.0)


@pytest.mark.parametrize("time_varying_vol", [False, True])
def test_synthetic_covariance_matches_sample(time_varying_vol: bool) -> None:
    """Second moments of the standardised returns agree with ``covariance(t) / v_t^2``.

    ``x_t = (r_t - alpha) / v_t = beta z_t + eps_t`` is i.i.d. with mean zero, so the
    uncentred sample second moment estimates ``covariance(t) / v_t^2`` for every t. The
    tolerance is 5 standard errors per element, estimated from the sample itself
    (``sd(x_i x_j) / sqrt(T)``); nu = 10 keeps the fourth moments that this needs finite.
    """
    sp = synthetic_factor_panel(T=6000, N=4, F=2, nu=10.0, seed=11, time_varying_vol=time_varying_vol, n_is_samples=8)
    T = sp.panel.T
    if time_varying_vol:
        assert sp.vol[0] == 1.0 and sp.vol.std() > 0.05
    else:
        np.testing.assert_array_equal(sp.vol, 1.0)
    x = (sp.panel.returns - sp.alpha) / sp.vol[:, None]
    prods = x[:, :, None] * x[:, None, :]
    sample = prods.mean(axis=0)
    se = prods.std(axis=0, ddof=1) / np.sqrt(T)
    for t in (0, T // 2, T - 1):
        target = sp.covariance(t) / sp.vol[t] ** 2
        np.testing.assert_allclose(target, sp.covariance(0) / sp.vol[0] ** 2, rtol=1e-12)
        assert np.all(np.abs(sample - target) <= 5 * se), (sample, target, se)


def _quadrature_logpdf(sp: object, r: np.ndarray, t: int) -> float:
    """``log p(r_t)`` for one factor by adaptive quadrature over z (scipy.stats densities)."""
    v, a, b, s = sp.vol[t], sp.alpha, sp.beta[:, 0], sp.sigma  # type: ignore[attr-defined]

    def logf(z: float) -> float:
        return float(
            stats.t.logpdf(z, sp.nu_z, scale=sp.s_z[0])  # type: ignore[attr-defined]
            + stats.t.logpdf(r, sp.nu_x, loc=a + v * b * z, scale=v * s).sum()  # type: ignore[attr-defined]
        )

    z0 = optimize.minimize_scalar(lambda z: -logf(z), bounds=(-0.5, 0.5), method="bounded", options={"xatol": 1e-12}).x
    c = logf(z0)

    def f(z: float) -> float:
        return float(np.exp(logf(z) - c))

    lo = integrate.quad(f, -np.inf, z0, epsabs=0, epsrel=1e-10, limit=200)[0]
    hi = integrate.quad(f, z0, np.inf, epsabs=0, epsrel=1e-10, limit=200)[0]
    return c + float(np.log(lo + hi))


@pytest.mark.parametrize("time_varying_vol", [False, True])
def test_true_log_density_matches_quadrature(time_varying_vol: bool) -> None:
    """The importance-sampled density agrees with 1-D quadrature within its own Monte Carlo error.

    The Monte Carlo standard deviation is estimated from ``k`` independent estimates
    (different seeds); their mean must lie within 5 standard errors of the quadrature, and
    the stored ``log_density`` (4x the samples of one estimate) within 5 of those sds.
    """
    sp = synthetic_factor_panel(T=12, N=3, F=1, nu=5.0, seed=3, time_varying_vol=time_varying_vol)
    k = 8
    days = (0, 7, 11)
    for t in days:
        realised = sp.panel.returns[t]
        candidate = realised + np.array([0.03, -0.02, 0.01])
        for r, stored in ((realised, sp.log_density[t]), (candidate, None)):
            exact = _quadrature_logpdf(sp, r, t)
            est = np.array([sp.true_log_density(r, t, n_samples=1024, seed=s)[0] for s in range(k)])
            sd = est.std(ddof=1)
            assert abs(est.mean() - exact) <= 5 * sd / np.sqrt(k), (t, est, exact)
            if stored is not None:
                assert abs(stored - exact) <= 5 * sd, (t, stored, exact, sd)
    if time_varying_vol:  # the density on a day uses that day's scale
        assert not np.allclose(sp.vol[list(days)], 1.0)


def test_sp500_caveats_state_survivorship_with_its_figures() -> None:
    from factorgym.data import dataset_caveats, load_dataset

    panel = load_dataset("sp500")
    lines = dataset_caveats(panel)
    assert lines[0].startswith("Survivorship") and "price index" in lines[1]
    test = panel.dates > pd.Timestamp("2018-12-31")
    ew = panel.returns[test].mean(axis=1)
    assert f"{np.prod(1 + ew) ** (252 / len(ew)) - 1:.1%}/yr in test" in lines[0]
    assert dataset_caveats(synthetic_factor_panel(T=50, N=3).panel) == []

"""Tests of factorgym.generators.evaluation with the small Gaussian test generator."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers_generators import GaussianPredictive, GaussianTestGenerator, gaussian_panel
from scipy import stats

from factorgym import metrics as M
from factorgym.data import ReturnPanel, Split, synthetic_factor_panel
from factorgym.errors import DataValidationError
from factorgym.generators.base import Predictive, SamplePredictive
from factorgym.generators.evaluation import (
    GeneratorReport,
    evaluate_generator,
    reports_table,
    save_reports,
)
from factorgym.report.tables import to_markdown

T, N, TRAIN, VAL = 420, 4, 200, 240  # 180 test days


def _split(panel: ReturnPanel, train: int = TRAIN, val: int = VAL) -> Split:
    return Split(str(panel.dates[train - 1].date()), str(panel.dates[val - 1].date()))


def _evaluate(gen: GaussianTestGenerator, panel: ReturnPanel, split: Split, seed: int = 0, **kw: object) -> GeneratorReport:
    opts: dict = {"n_samples": 128, "sim_paths": 0, "progress": False, "energy_samples": 64}
    opts.update(kw)
    return evaluate_generator(gen, panel, split, rng=np.random.default_rng(seed), **opts)


@pytest.fixture(scope="module")
def data() -> tuple[ReturnPanel, np.ndarray, np.ndarray]:
    return gaussian_panel(T, N, seed=11)


# ====================================================================== the test generator itself


def test_helper_generator_is_consistent(tmp_path: Path, data: tuple[ReturnPanel, np.ndarray, np.ndarray]) -> None:
    panel, mean, cov = data
    split = _split(panel)
    gen = GaussianTestGenerator(var_scale=2.0, lookback=3, mean_weight=0.5).fit(panel, split)
    pred = gen.predict(panel, VAL - 1)
    x = panel.returns[VAL]
    assert float(pred.log_prob(x)) == pytest.approx(stats.multivariate_normal(pred.mean(), pred.cov()).logpdf(x), rel=1e-12)
    np.testing.assert_allclose(pred.cov(), 2.0 * np.cov(panel.returns[:TRAIN], rowvar=False))
    np.testing.assert_allclose(pred.mean(), 0.5 * panel.returns[:TRAIN].mean(0) + 0.5 * panel.returns[VAL - 3 : VAL].mean(0))
    # one stream per path: path 0 does not depend on how many paths run beside it
    a = gen.simulate(panel, VAL - 1, 5, 2, np.random.default_rng(1))
    b = gen.simulate(panel, VAL - 1, 5, 4, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b[:2])
    gen.save(tmp_path / "g.zip")
    back = GaussianTestGenerator.load(tmp_path / "g.zip")
    assert back.get_params() == gen.get_params() and back.assets_ == gen.assets_
    np.testing.assert_allclose(back.predict(panel, VAL - 1).cov(), pred.cov(), rtol=1e-12)


# ====================================================================== NLL


@pytest.mark.parametrize("how", ["pooled", "per_asset"])
def test_nll_equals_direct_scipy_computation(data: tuple[ReturnPanel, np.ndarray, np.ndarray], how: str) -> None:
    panel, _, _ = data
    split = _split(panel)
    gen = GaussianTestGenerator().fit(panel, split)
    rep = _evaluate(gen, panel, split, nll_scale=how)
    train = panel.returns[:TRAIN]
    # pooled: one std of all train returns (NeuralFactors footnote 3); per_asset: each its own
    s = np.full(N, train.std(ddof=1)) if how == "pooled" else train.std(axis=0, ddof=1)
    mu = train.mean(axis=0)
    cov = np.cov(train, rowvar=False)
    test = panel.returns[VAL:]
    # density of the scaled returns r / s under the scaled model: no Jacobian by hand
    joint = stats.multivariate_normal(mu / s, cov / np.outer(s, s)).logpdf(test / s)
    ind = stats.norm.logpdf(test / s, mu / s, np.sqrt(np.diag(cov)) / s)
    assert rep.scalars["nll_joint"] == pytest.approx(-joint.mean() / N, rel=1e-10)
    assert rep.scalars["nll_ind"] == pytest.approx(-ind.mean(), rel=1e-10)
    np.testing.assert_allclose(rep.per_day["nll_joint"].to_numpy(), -joint / N, rtol=1e-10)
    assert rep.dates[0] == panel.dates[VAL] and len(rep.dates) == T - VAL
    assert "exact" in rep.notes["nll"]


def test_nll_is_invariant_to_rescaling_each_asset(data: tuple[ReturnPanel, np.ndarray, np.ndarray]) -> None:
    panel, _, _ = data
    split = _split(panel)
    c = np.array([3.0, 0.5, 1.0, 2.0])  # per-asset: a single global std would not undo this
    scaled = panel.with_returns(panel.returns * c)
    base = _evaluate(GaussianTestGenerator().fit(panel, split), panel, split, nll_scale="per_asset")
    resc = _evaluate(GaussianTestGenerator().fit(scaled, split), scaled, split, nll_scale="per_asset")
    for key in ("nll_joint", "nll_ind", "crps", "energy_score", "cal_uni", "cov_mse", "box_m", "cov_mse_outer"):
        assert resc.scalars[key] == pytest.approx(base.scalars[key], rel=1e-8), key
    # the equal-weight portfolio itself changes when assets are rescaled differently
    assert resc.scalars["cal_port"] != pytest.approx(base.scalars["cal_port"], rel=1e-8)
    # without the train-std scaling the NLL would move by mean(log c) per asset
    assert abs(np.mean(np.log(c))) > 0.1
    # the pooled scale undoes a common rescaling, and only that
    pooled = _evaluate(GaussianTestGenerator().fit(panel, split), panel, split)
    common = panel.with_returns(panel.returns * 3.0)
    pooled3 = _evaluate(GaussianTestGenerator().fit(common, split), common, split)
    assert pooled3.scalars["nll_joint"] == pytest.approx(pooled.scalars["nll_joint"], rel=1e-8)
    pooled_c = _evaluate(GaussianTestGenerator().fit(scaled, split), scaled, split)
    assert pooled_c.scalars["nll_joint"] != pytest.approx(pooled.scalars["nll_joint"], rel=1e-3)


# ====================================================================== calibration and VaR


def test_calibration_small_when_correct_and_large_when_variance_x4(data: tuple[ReturnPanel, np.ndarray, np.ndarray]) -> None:
    panel, mean, cov = data
    split = _split(panel)
    good = _evaluate(GaussianTestGenerator.from_moments(mean, cov, panel.assets), panel, split)
    bad = _evaluate(GaussianTestGenerator.from_moments(mean, cov, panel.assets, var_scale=4.0), panel, split)
    p = M.calibration_levels()
    n_days = T - VAL
    noise = np.sum(p * (1 - p)) / n_days  # expected calibration error of a calibrated model
    theory_bad = np.sum((p - stats.norm.cdf(2 * stats.norm.ppf(p))) ** 2)  # PIT = Phi(Z / 2)
    assert good.scalars["cal_uni"] < 4 * noise
    assert good.scalars["cal_port"] < 4 * noise
    assert bad.scalars["cal_uni"] > 0.5 * theory_bad
    assert bad.scalars["cal_port"] > 0.5 * theory_bad
    assert bad.scalars["cal_uni"] > 5 * good.scalars["cal_uni"]
    assert good.calibration_per_asset.shape == (N,)
    assert (good.days_per_asset == n_days).all()
    # the per-asset values are the eq. 12 errors of the stored PIT columns
    np.testing.assert_allclose(good.calibration_per_asset.to_numpy(), M.calibration_error(good.pit))


def test_var_backtests_reject_a_badly_scaled_model(data: tuple[ReturnPanel, np.ndarray, np.ndarray]) -> None:
    panel, mean, cov = data
    split = _split(panel)
    good = _evaluate(GaussianTestGenerator.from_moments(mean, cov, panel.assets), panel, split, n_samples=400)
    narrow = _evaluate(GaussianTestGenerator.from_moments(mean, cov, panel.assets, var_scale=0.25), panel, split, n_samples=400)
    assert narrow.scalars["var95_rate"] > 0.15
    assert narrow.scalars["var95_pof_p"] < 1e-6
    assert narrow.scalars["var95_cc_p"] < 1e-6
    assert narrow.scalars["var99_pof_p"] < 1e-6
    assert good.scalars["var95_pof_p"] > 1e-3
    # hits are realised portfolio losses beyond the sampled VaR
    pd_ = good.per_day
    np.testing.assert_array_equal(pd_["hit_95"].to_numpy(), -pd_["port_return"].to_numpy() > pd_["var_95"].to_numpy())
    np.testing.assert_allclose(pd_["port_return"].to_numpy(), panel.returns[VAL:].mean(axis=1))


def test_covariance_metrics_detect_wrong_covariance(data: tuple[ReturnPanel, np.ndarray, np.ndarray]) -> None:
    panel, mean, cov = data
    split = _split(panel)
    good = _evaluate(GaussianTestGenerator.from_moments(mean, cov, panel.assets), panel, split)
    diag = _evaluate(GaussianTestGenerator.from_moments(mean, np.diag(np.diag(cov)), panel.assets), panel, split)
    wide = _evaluate(GaussianTestGenerator.from_moments(mean, cov, panel.assets, var_scale=2.0), panel, split)
    assert good.scalars["box_m_pvalue"] > 1e-3
    assert wide.scalars["box_m_pvalue"] < 1e-6
    # whitened covariance is about I / 2: MSE about (1/2)^2 * N / N^2
    assert wide.scalars["cov_mse"] == pytest.approx(0.25 / N, rel=0.3)
    assert diag.scalars["cov_mse"] > 2 * good.scalars["cov_mse"]
    assert good.whitened.shape == (T - VAL, N) and good.cov_assets == panel.assets
    # whitened returns are the symmetric-root whitening of realised returns
    lam, v = np.linalg.eigh(cov)
    z = (panel.returns[VAL:] - mean) @ (v @ np.diag(lam**-0.5) @ v.T)
    np.testing.assert_allclose(good.whitened, z, rtol=1e-9)


# ====================================================================== timing / no look-ahead


def test_evaluation_never_reads_rows_after_the_predicted_day(data: tuple[ReturnPanel, np.ndarray, np.ndarray]) -> None:
    panel, _, _ = data
    split = _split(panel)
    gen = GaussianTestGenerator(lookback=5, mean_weight=0.5).fit(panel, split)
    t = VAL + 60  # rows after t become absurd
    absurd = np.array(panel.returns, copy=True)
    absurd[t + 1 :] = np.where(np.arange(N) % 2 == 0, 0.9, -0.9)
    other = panel.with_returns(absurd)
    a = _evaluate(gen, panel, split, seed=3)
    b = _evaluate(gen, other, split, seed=3)
    upto = a.dates <= panel.dates[t]
    assert upto.sum() == t - VAL + 1
    pd.testing.assert_frame_equal(a.per_day[upto], b.per_day[upto])
    np.testing.assert_array_equal(a.pit[upto], b.pit[upto])
    np.testing.assert_array_equal(a.whitened[upto], b.whitened[upto])
    # positive control: the changed rows do change later days
    assert not np.allclose(a.per_day["nll_joint"][~upto], b.per_day["nll_joint"][~upto])


def test_first_prediction_conditions_on_rows_before_the_part(data: tuple[ReturnPanel, np.ndarray, np.ndarray]) -> None:
    panel, _, _ = data
    split = _split(panel)
    gen = GaussianTestGenerator(lookback=5, mean_weight=0.5).fit(panel, split)
    rep = _evaluate(gen, panel, split, nll_scale="per_asset")
    pred = gen.predict_window(panel.returns[VAL - 5 : VAL])  # last five validation rows
    s = panel.returns[:TRAIN].std(axis=0, ddof=1)
    expected = -(float(pred.log_prob(panel.returns[VAL])) + np.log(s).sum()) / N
    assert rep.per_day["nll_joint"].iloc[0] == pytest.approx(expected, rel=1e-12)


def test_days_without_history_are_skipped(data: tuple[ReturnPanel, np.ndarray, np.ndarray]) -> None:
    panel, _, _ = data
    split = _split(panel)
    gen = GaussianTestGenerator(lookback=5).fit(panel, split)
    rep = _evaluate(gen, panel, split, part="train")
    assert rep.dates[0] == panel.dates[5] and "skipped" in rep.notes["history"]


# ====================================================================== missing data and fallbacks


def test_missing_cells_are_excluded_not_filled(data: tuple[ReturnPanel, np.ndarray, np.ndarray]) -> None:
    panel, mean, cov = data
    split = _split(panel)
    r = np.array(panel.returns, copy=True)
    mask = np.ones_like(r, dtype=bool)
    gone = [VAL + 3, VAL + 10, VAL + 11]
    mask[gone, 2] = False
    r[~mask] = np.nan
    holes = panel.with_returns(r, mask)
    rep = _evaluate(GaussianTestGenerator.from_moments(mean, cov, panel.assets), holes, split, nll_scale="per_asset")
    assert rep.scalars["n_days_joint"] == T - VAL - 3
    assert "every asset trades" in rep.notes["nll_joint"]
    assert np.isnan(rep.per_day["nll_joint"].iloc[3]) and np.isfinite(rep.per_day["nll_ind"].iloc[3])
    assert np.isnan(rep.pit[3, 2]) and rep.days_per_asset.iloc[2] == T - VAL - 3
    assert rep.cov_assets == tuple(a for k, a in enumerate(panel.assets) if k != 2)
    assert rep.per_day["port_return"].iloc[3] == pytest.approx(np.mean(panel.returns[VAL + 3, [0, 1, 3]]))
    # NLL_ind of a day with a missing asset averages over the available ones
    s = panel.returns[:TRAIN].std(axis=0, ddof=1)
    lp = stats.norm.logpdf(panel.returns[VAL + 3], mean, np.sqrt(np.diag(cov))) + np.log(s)
    assert rep.per_day["nll_ind"].iloc[3] == pytest.approx(-lp[[0, 1, 3]].mean(), rel=1e-10)


def test_a_row_where_nothing_trades_is_not_scored(data: tuple[ReturnPanel, np.ndarray, np.ndarray]) -> None:
    panel, mean, cov = data
    split = _split(panel)
    r = np.array(panel.returns, copy=True)
    mask = np.ones_like(r, dtype=bool)
    mask[VAL + 7] = False
    r[VAL + 7] = np.nan
    holiday = panel.with_returns(r, mask)
    gen = GaussianTestGenerator.from_moments(mean, cov, panel.assets)
    rep = _evaluate(gen, holiday, split, progress=True)
    full = _evaluate(gen, panel, split)
    assert rep.per_day.iloc[7][["nll_ind", "crps", "port_return", "port_pit"]].isna().all()
    assert not rep.per_day["hit_95"].iloc[7]
    assert rep.var_backtests["95"].n == T - VAL - 1 and rep.cov_assets == ()
    # every other day is scored exactly as without the holiday (one random stream per day)
    keep = np.arange(T - VAL) != 7
    np.testing.assert_array_equal(rep.per_day["crps"].to_numpy()[keep], full.per_day["crps"].to_numpy()[keep])
    assert math.isnan(rep.scalars["box_m"]) and rep.notes["cov"].startswith("unavailable")


class _SampleOnlyGenerator(GaussianTestGenerator):
    """The Gaussian model exposed only through samples (no log density)."""

    def predict_windows(self, windows: np.ndarray) -> list[Predictive]:
        out: list[Predictive] = []
        for p in super().predict_windows(windows):
            assert isinstance(p, GaussianPredictive)
            out.append(SamplePredictive(p.sample, p.n_assets, n_moment_samples=500))
        return out


def test_sample_only_generator_reports_no_nll(data: tuple[ReturnPanel, np.ndarray, np.ndarray]) -> None:
    panel, mean, cov = data
    split = _split(panel)
    gen = _SampleOnlyGenerator.from_moments(mean, cov, panel.assets)
    rep = _evaluate(gen, panel, split, name="sampler")
    assert math.isnan(rep.scalars["nll_joint"]) and math.isnan(rep.scalars["nll_ind"])
    assert rep.notes["nll"].startswith("unavailable")
    assert "samples" in rep.notes["cov"]
    exact = _evaluate(GaussianTestGenerator.from_moments(mean, cov, panel.assets), panel, split)
    both = reports_table([exact, rep])
    assert np.isfinite(both.loc["test_gaussian", "NLL joint"]) and np.isnan(both.loc["sampler", "NLL joint"])
    md = to_markdown(both)
    assert md.count("N/A") >= 2  # both NLL cells of the sample-only row
    assert rep.scalars["cal_uni"] < 0.5 and np.isfinite(rep.scalars["crps"])


def test_gaussian_model_is_worse_than_the_true_student_t_model() -> None:
    # the same units as the panel's exact log density: a Gaussian fit to Student-T(4) factor
    # data must be worse than the truth by a few hundredths of a nat per asset-day
    syn = synthetic_factor_panel(T=1000, N=5, F=2, nu=4.0, seed=2, n_is_samples=512)
    panel = syn.panel
    split = _split(panel, 400, 500)
    rep = _evaluate(GaussianTestGenerator().fit(panel, split), panel, split, n_samples=64, nll_scale="per_asset")
    s = panel.returns[:400].std(axis=0, ddof=1)
    true_nll = -(syn.log_density[500:] + np.log(s).sum()) / panel.N
    diff = rep.per_day["nll_joint"].to_numpy() - true_nll
    assert 3 * diff.std(ddof=1) / math.sqrt(len(diff)) < diff.mean() < 0.3


# ====================================================================== simulation, tables, files, errors


def test_stylized_facts_of_simulated_paths(data: tuple[ReturnPanel, np.ndarray, np.ndarray]) -> None:
    panel, mean, cov = data
    split = _split(panel)
    gen = GaussianTestGenerator.from_moments(mean, cov, panel.assets)
    a = _evaluate(gen, panel, split, sim_paths=8, sim_horizon=120, seed=4)
    b = _evaluate(gen, panel, split, sim_paths=8, sim_horizon=120, seed=4)
    assert a.stylized is not None and a.stylized.simulated.acf.shape == (8, 10)
    assert {f"sf_{k}" for k in ("kurtosis", "acf", "abs_acf", "leverage", "corr")} <= set(a.scalars)
    assert a.scalars == b.scalars
    sims = gen.simulate(panel, VAL - 1, 120, 8, np.random.default_rng(4).spawn(2)[0])
    direct = M.compare_stylized_facts(sims, panel.returns[VAL : VAL + 120])
    assert a.stylized.distances == pytest.approx(direct.distances)
    d = json.loads(json.dumps(a.to_dict(), allow_nan=False))
    assert d["stylized_facts"]["distances"]["corr"] == pytest.approx(a.scalars["sf_corr"])
    assert len(d["stylized_facts"]["simulated_mean"]["abs_acf"]) == 10
    assert a.summary()["sf_corr"] == a.scalars["sf_corr"]


def test_tables_markdown_and_saved_files(tmp_path: Path, data: tuple[ReturnPanel, np.ndarray, np.ndarray]) -> None:
    panel, mean, cov = data
    split = _split(panel)
    good = _evaluate(GaussianTestGenerator.from_moments(mean, cov, panel.assets), panel, split, name="true")
    bad = _evaluate(GaussianTestGenerator.from_moments(mean, cov, panel.assets, var_scale=4), panel, split, name="x4 var")
    table = reports_table([good, bad])
    assert list(table.index) == ["true", "x4 var"]
    assert table.loc["x4 var", "Cal. Uni."] == bad.scalars["cal_uni"]
    md = to_markdown(table)
    lines = md.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith("| model") and set(lines[1]) <= set("|-: ")
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    paths = save_reports([good, bad], tmp_path / "out")
    back = pd.read_csv(paths["csv"], index_col=0)
    np.testing.assert_allclose(back["NLL joint"].to_numpy(), table["NLL joint"].to_numpy(), rtol=1e-12)
    js = json.loads(paths["json"].read_text())
    assert [r["name"] for r in js] == ["true", "x4 var"]
    assert js[0]["scalars"]["cal_uni"] == pytest.approx(good.scalars["cal_uni"])
    assert paths["per_day:x4_var_test"].is_file()
    assert not list((tmp_path / "out").glob(".*.tmp"))
    with pytest.raises(DataValidationError, match="distinct"):
        save_reports([good, good], tmp_path / "dup")


def test_bad_arguments_raise_clear_errors(data: tuple[ReturnPanel, np.ndarray, np.ndarray]) -> None:
    panel, mean, cov = data
    split = _split(panel)
    gen = GaussianTestGenerator.from_moments(mean, cov, panel.assets)
    with pytest.raises(DataValidationError, match="part"):
        _evaluate(gen, panel, split, part="holdout")
    with pytest.raises(DataValidationError, match="n_samples"):
        _evaluate(gen, panel, split, n_samples=1)
    other = GaussianTestGenerator.from_moments(mean, cov, ("W", "X", "Y", "Z"))
    with pytest.raises(DataValidationError, match="differ"):
        _evaluate(other, panel, split)
    with pytest.raises(DataValidationError, match="not fitted"):
        _evaluate(GaussianTestGenerator(), panel, split)


def test_day_stride_scores_every_kth_day_with_the_same_values(data: tuple[ReturnPanel, np.ndarray, np.ndarray]) -> None:
    panel, _, _ = data
    split = _split(panel)
    gen = GaussianTestGenerator().fit(panel, split)
    full = _evaluate(gen, panel, split)
    sub = _evaluate(gen, panel, split, day_stride=7)
    assert list(sub.dates) == list(full.dates[::7])
    assert sub.scalars["n_days"] == len(full.dates[::7]) and "every 7th day" in sub.notes["days"]
    # closed-form quantities of a day do not depend on which other days are evaluated
    for col in ("nll_joint", "nll_ind"):
        np.testing.assert_allclose(sub.per_day[col].to_numpy(), full.per_day[col].to_numpy()[::7], rtol=1e-12)
    np.testing.assert_allclose(sub.pit, full.pit[::7], rtol=1e-12)
    with pytest.raises(DataValidationError, match="day_stride"):
        _evaluate(gen, panel, split, day_stride=0)


# ====================================================================== inference: HAC errors, Diebold-Mariano


def test_nll_standard_errors_are_newey_west_and_wider_under_volatility_clusters(
    data: tuple[ReturnPanel, np.ndarray, np.ndarray],
) -> None:
    """A constant-variance model on returns whose volatility comes in 20-day regimes has
    serially dependent daily NLL: its Newey-West error exceeds the iid one."""
    panel, mean, cov = data
    split = _split(panel)
    vol = np.repeat(np.random.default_rng(3).choice([0.5, 2.0], size=T // 20 + 1), 20)[:T]
    clustered = ReturnPanel(panel.dates, panel.assets, panel.returns * vol[:, None], panel.mask, name="clustered")
    rep = _evaluate(GaussianTestGenerator.from_moments(mean, cov, panel.assets), clustered, split)
    for key in ("nll_joint", "nll_ind"):
        nw = M.newey_west_mean(rep.per_day[key].to_numpy())
        assert rep.scalars[f"{key}_se"] == pytest.approx(nw.std_error, rel=1e-12)
        assert rep.scalars[f"{key}_se_iid"] == pytest.approx(rep.per_day[key].std(ddof=1) / math.sqrt(len(rep.dates)), rel=1e-12)
        assert rep.scalars[f"{key}_se"] > 1.5 * rep.scalars[f"{key}_se_iid"]
    assert "Newey-West" in rep.notes["nll_se"]
    table = reports_table(rep)
    assert table.loc["test_gaussian", "NLL joint s.e."] == rep.scalars["nll_joint_se"]


def test_diebold_mariano_table_pairs_models_on_common_days(
    tmp_path: Path, data: tuple[ReturnPanel, np.ndarray, np.ndarray],
) -> None:
    from factorgym.generators.evaluation import DM_COLUMNS, diebold_mariano_table

    panel, mean, cov = data
    split = _split(panel)
    good = _evaluate(GaussianTestGenerator.from_moments(mean, cov, panel.assets), panel, split, name="true")
    close = _evaluate(GaussianTestGenerator.from_moments(mean, cov, panel.assets, var_scale=1.05), panel, split, name="x1.05 var")
    bad = _evaluate(GaussianTestGenerator.from_moments(mean, cov, panel.assets, var_scale=4), panel, split, name="x4 var")
    sub = _evaluate(GaussianTestGenerator.from_moments(mean, cov, panel.assets), panel, split, name="every 3rd", day_stride=3)
    dm = diebold_mariano_table([good, close, bad, sub])
    assert list(dm.columns) == list(DM_COLUMNS)
    row = dm[(dm["metric"] == "nll_joint") & (dm["model_a"] == "true") & (dm["model_b"] == "x4 var")].iloc[0]
    t = M.diebold_mariano(good.per_day["nll_joint"].to_numpy(), bad.per_day["nll_joint"].to_numpy())
    assert row["mean_diff"] == pytest.approx(t.estimate) and row["pvalue"] == pytest.approx(t.pvalue)
    assert row["mean_diff"] < 0 and row["pvalue"] < 1e-6  # the true model is clearly better
    near = dm[(dm["metric"] == "nll_joint") & (dm["model_b"] == "x1.05 var")].iloc[0]
    assert near["pvalue"] > row["pvalue"]
    strided = dm[(dm["metric"] == "nll_joint") & (dm["model_b"] == "every 3rd") & (dm["model_a"] == "true")].iloc[0]
    assert strided["days"] == len(sub.dates) and strided["mean_diff"] == pytest.approx(0.0, abs=1e-12)  # same model, common days
    assert set(dm["metric"]) == {"nll_joint", "nll_ind", "crps", "energy_score"}
    paths = save_reports([good, bad], tmp_path / "out")
    back = pd.read_csv(paths["dm_csv"])
    assert len(back) == 4 and paths["dm_markdown"].read_text().startswith("|")


# ====================================================================== thread pools (issue 16)


class _ThreadRecordingGenerator(GaussianTestGenerator):
    """Records the thread counts of the BLAS/OpenMP pools and of torch while it predicts."""

    seen: list[tuple[int, int]]

    def predict_windows(self, windows: np.ndarray) -> list[Predictive]:
        import torch
        from threadpoolctl import threadpool_info

        self.seen.append((max(p["num_threads"] for p in threadpool_info()), torch.get_num_threads()))
        return super().predict_windows(windows)


def test_evaluation_limits_the_thread_pools_and_restores_them(data: tuple[ReturnPanel, np.ndarray, np.ndarray]) -> None:
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    panel, _, _ = data
    split = _split(panel)
    gen = _ThreadRecordingGenerator().fit(panel, split)
    prev_torch = torch.get_num_threads()
    with threadpool_limits(limits=2):  # two threads in every pool, whatever the machine has
        torch.set_num_threads(2)
        try:
            before = sorted({p["num_threads"] for p in threadpool_info()})
            gen.seen = []
            limited = _evaluate(gen, panel, split)
            assert set(gen.seen) == {(1, 1)}  # the default: one thread in every pool
            assert sorted({p["num_threads"] for p in threadpool_info()}) == before
            assert torch.get_num_threads() == 2
            gen.seen = []
            as_is = _evaluate(gen, panel, split, num_threads=None)
            assert set(gen.seen) == {(2, 2)}
            gen.seen = []
            _evaluate(gen, panel, split, num_threads=2)
            assert set(gen.seen) == {(2, 2)}
        finally:
            torch.set_num_threads(prev_torch)
    # the scores do not depend on the thread count
    pd.testing.assert_frame_equal(limited.per_day, as_is.per_day)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(DataValidationError, match="num_threads"):
            _evaluate(gen, panel, split, num_threads=bad)

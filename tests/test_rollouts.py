"""Rollout diagnostics (issue 13 item 1): each statistic on generators with a known answer,
batching invariance, determinism, absent assets, the files, the report section and the CLI flag.

Known answers come from two test-only generators that see the synthetic panel itself:
``_TruthGenerator`` simulates the true data-generating process of a panel with GARCH-like
factor volatility (so multi-step calibration is exact, up to the noise floor), optionally
scaled down (a deliberately too-narrow model); ``_ReplayGenerator`` "simulates" exactly the
days that followed (so every simulated statistic equals the realised one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from factorgym.data import ReturnPanel, Split
from factorgym.data.synthetic import SyntheticFactorPanel, synthetic_factor_panel
from factorgym.errors import DataValidationError
from factorgym.generators.base import PathSimulator, Predictive, ReturnGenerator
from factorgym.generators.evaluation import (
    ROLLOUT_COLUMNS,
    ROLLOUT_METRICS,
    add_rollouts_section,
    calibration_floor,
    calibration_null,
    evaluation_page,
    rollout_diagnostics,
    rollouts_table,
    save_rollouts,
)
from factorgym.generators.evaluation.rollout_scores import pearson, spearman
from factorgym.metrics import calibration_levels

GARCH = (0.08, 0.90)
CHUNK = 16  # draws per path per refill (any value gives the same law)


# ----------------------------------------------------------------------------- test generators
class _TruthSimulator(PathSimulator):
    """The synthetic model rolled forward: each path's volatility follows the GARCH-like
    recursion on its own factor shocks, starting from the true ``v_{c+1}`` of its context
    (or from the unconditional 1 when ``blind``). Each path draws ``CHUNK`` days of shocks at
    a time from its own stream, so its path does not depend on the other paths."""

    def __init__(self, syn: SyntheticFactorPanel, v0: np.ndarray, rngs: Sequence[np.random.Generator], scale: float) -> None:
        self.syn, self.v, self.rngs, self.scale = syn, np.asarray(v0, dtype=np.float64).copy(), list(rngs), scale
        self._k = CHUNK

    @property
    def n_paths(self) -> int:
        return len(self.rngs)

    @property
    def n_assets(self) -> int:
        return len(self.syn.sigma)

    def step(self) -> np.ndarray:
        s = self.syn
        if self._k == CHUNK:
            f = len(s.s_z)
            d = np.stack([np.concatenate([r.standard_t(s.nu_z, size=(CHUNK, f)), r.standard_t(s.nu_x, size=(CHUNK, len(s.sigma)))], axis=1)
                          for r in self.rngs])  # fmt: skip
            self._z, self._e, self._k = d[:, :, :f] * s.s_z, d[:, :, f:] * s.sigma, 0
        z, e = self._z[:, self._k], self._e[:, self._k]
        self._k += 1
        out = s.alpha + self.scale * self.v[:, None] * (z @ s.beta.T + e)
        u = z[:, 0] / (s.s_z[0] * math.sqrt(s.nu_z / (s.nu_z - 2)))
        a, b = GARCH
        self.v = np.sqrt((1 - a - b) + a * (self.v * u) ** 2 + b * self.v**2)
        return out

    def reset_paths(self, idx: np.ndarray, windows: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        raise NotImplementedError


class _PanelLookup(ReturnGenerator):
    """Finds each window's context day in the panel by its last row (test-only)."""

    kind: ClassVar[str] = "lookup_test"

    def __init__(self, panel: ReturnPanel) -> None:
        self.panel = panel
        self.assets_ = tuple(panel.assets)
        r = np.nan_to_num(np.asarray(panel.returns), nan=-9.0)
        self._row = {r[t].tobytes(): t for t in range(panel.T)}

    @property
    def min_history(self) -> int:
        return 3

    def context(self, windows: np.ndarray) -> np.ndarray:
        w = np.asarray(windows)
        w = w if w.ndim == 3 else w[None]
        assert w.shape[1] == self.min_history
        return np.array([self._row[np.nan_to_num(x[-1], nan=-9.0).tobytes()] for x in w])

    def fit(self, panel: ReturnPanel, split: Split, **kw: Any) -> _PanelLookup:
        return self

    def predict_window(self, window: np.ndarray) -> Predictive:
        raise NotImplementedError

    def save(self, path: str | Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, path: str | Path) -> _PanelLookup:
        raise NotImplementedError


class _TruthGenerator(_PanelLookup):
    kind: ClassVar[str] = "truth_test"

    def __init__(self, syn: SyntheticFactorPanel, scale: float = 1.0, blind: bool = False) -> None:
        super().__init__(syn.panel)
        self.syn, self.scale, self.blind = syn, scale, blind

    def simulator_window(self, window: np.ndarray, rngs: Sequence[np.random.Generator]) -> PathSimulator:
        t = self.context(window)
        return _TruthSimulator(self.syn, np.ones(len(t)) if self.blind else self.syn.vol[t + 1], rngs, self.scale)


class _ReplaySimulator(PathSimulator):
    def __init__(self, returns: np.ndarray, t: np.ndarray) -> None:
        self.r, self.t = np.nan_to_num(returns), t.copy()

    @property
    def n_paths(self) -> int:
        return len(self.t)

    @property
    def n_assets(self) -> int:
        return self.r.shape[1]

    def step(self) -> np.ndarray:
        self.t += 1
        return self.r[np.minimum(self.t, len(self.r) - 1)]

    def reset_paths(self, idx: np.ndarray, windows: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        raise NotImplementedError


class _ReplayGenerator(_PanelLookup):
    """Every path is exactly what followed (a perfect, degenerate forecast)."""

    kind: ClassVar[str] = "replay_test"

    def simulator_window(self, window: np.ndarray, rngs: Sequence[np.random.Generator]) -> PathSimulator:
        t = self.context(window)
        return _ReplaySimulator(np.asarray(self.panel.returns), t)


class _DriftSimulator(PathSimulator):
    def __init__(self, mean: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        self.mean, self.rngs = mean, list(rngs)

    @property
    def n_paths(self) -> int:
        return len(self.rngs)

    @property
    def n_assets(self) -> int:
        return len(self.mean)

    def step(self) -> np.ndarray:
        return np.array([self.mean + 0.001 * r.standard_normal(len(self.mean)) for r in self.rngs])

    def reset_paths(self, idx: np.ndarray, windows: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        raise NotImplementedError


class _DriftGenerator(_PanelLookup):
    """i.i.d. normal days around a fixed mean vector (memorised or zero)."""

    kind: ClassVar[str] = "drift_test"

    def __init__(self, panel: ReturnPanel, mean: np.ndarray) -> None:
        super().__init__(panel)
        self.mean = mean

    def simulator_window(self, window: np.ndarray, rngs: Sequence[np.random.Generator]) -> PathSimulator:
        return _DriftSimulator(self.mean, rngs)


# ----------------------------------------------------------------------------- fixtures
SPLIT = Split("2003-12-31", "2004-12-31")


@pytest.fixture(scope="module")
def syn() -> SyntheticFactorPanel:
    # 2000-01-03 + 2400 business days: train to 2003, val 2004, test 2005..2009-03 (~1,100 days)
    return synthetic_factor_panel(T=2400, N=6, F=2, seed=4, time_varying_vol=True, garch=GARCH, n_is_samples=16)


def _roll(gen: ReturnGenerator, panel: ReturnPanel, seed: int = 0, **kw: Any) -> Any:
    kw = {"horizons": (5, 21), "n_paths": 40, "every": 6, "progress": False, "floor_reps": 500, **kw}
    return rollout_diagnostics(gen, panel, SPLIT, "test", rng=np.random.default_rng(seed), **kw)


@pytest.fixture(scope="module")
def truth(syn: SyntheticFactorPanel) -> Any:
    return _roll(_TruthGenerator(syn), syn.panel, name="truth")


@pytest.fixture(scope="module")
def narrow(syn: SyntheticFactorPanel) -> Any:
    return _roll(_TruthGenerator(syn, scale=0.5), syn.panel, name="narrow")


def _cheap(syn: SyntheticFactorPanel, seed: int = 0, **kw: Any) -> Any:
    return _roll(_TruthGenerator(syn), syn.panel, seed, **{"every": 20, "n_paths": 20, "floor_reps": 50, **kw})


# ----------------------------------------------------------------------------- known answers
def test_true_model_is_calibrated_and_tracks_volatility(truth: Any) -> None:
    for h in (5, 21):
        s = truth.scalars[h]
        assert s["n_contexts"] > 170
        # the true law: calibration error within its spread under calibration, bands cover ~90%
        assert s["cal_pvalue"] > 0.01 and s["cal_error"] < s["cal_floor_p95"], s
        assert 0.83 <= s["coverage90"] <= 0.97, (h, s["coverage90"])
        assert s["exceed05"] <= 0.09 and s["exceed01"] <= 0.03, s
        # the volatility regime is known at each context: simulated vol ranks with realised vol
        assert s["vol_spearman"] > 0.25 and s["vol_spearman_stock"] > 0.25, s
        assert s["vol_sim"] == pytest.approx(s["vol_real"], rel=0.1)
        # the same law: the same stylized facts, up to noise
        assert s["corr_sim"] == pytest.approx(s["corr_real"], abs=0.05)
        assert s["kurt_sim"] == pytest.approx(s["kurt_real"], abs=0.25)


def test_regime_blind_model_does_not_track_volatility(syn: SyntheticFactorPanel) -> None:
    blind = _roll(_TruthGenerator(syn, blind=True), syn.panel, horizons=(21,), every=10)
    s = blind.scalars[21]
    assert abs(s["vol_spearman"]) < 0.2 and abs(s["vol_spearman_stock"]) < 0.2, s


def test_too_narrow_model_fails_coverage_and_calibration(narrow: Any, truth: Any) -> None:
    for h in (5, 21):
        s = narrow.scalars[h]
        assert s["coverage90"] < 0.7, s["coverage90"]
        assert s["cal_error"] > s["cal_floor_p95"] and s["cal_pvalue"] < 0.05
        assert s["exceed01"] > 0.02 and s["exceed05"] > 0.1
        assert s["vol_sim"] < 0.6 * s["vol_real"]
        # the timing of the regime is still right: rank correlation does not see the level
        assert s["vol_spearman"] == pytest.approx(truth.scalars[h]["vol_spearman"], abs=0.05)


def test_replay_of_what_followed_matches_every_realised_statistic(syn: SyntheticFactorPanel) -> None:
    rep = _roll(_ReplayGenerator(syn.panel), syn.panel, n_paths=4, every=10)
    for h in (5, 21):
        s, ctx = rep.scalars[h], rep.contexts[h]
        np.testing.assert_allclose(ctx["sim_median"], ctx["real_return"], rtol=1e-12)
        np.testing.assert_allclose(ctx["sim_vol"], ctx["real_vol"], rtol=1e-12)
        assert s["vol_spearman"] == pytest.approx(1.0) and s["vol_spearman_stock"] == pytest.approx(1.0)
        for fact in ("kurt", "abs_acf", "leverage", "corr"):
            assert s[f"{fact}_sim"] == pytest.approx(s[f"{fact}_real"], abs=1e-12), fact
        assert s["drift_fwd_corr"] == pytest.approx(1.0)
        assert (ctx["sim_q01"] == ctx["real_return"]).all() and (ctx["sim_q95"] == ctx["real_return"]).all()
        # every path ties with the realised value: the randomised PIT is the context's uniform draw
        assert ctx["pit"].between(0, 1).all() and ctx["pit"].nunique() == len(ctx)


def test_realised_side_is_the_equal_weight_compounded_return(syn: SyntheticFactorPanel, truth: Any) -> None:
    r = np.asarray(syn.panel.returns)
    ctx = truth.contexts[21]
    c = int(syn.panel.dates.get_loc(ctx.index[7]))
    expected = np.prod(1 + r[c + 1 : c + 22].mean(axis=1)) - 1
    assert ctx["real_return"].iloc[7] == pytest.approx(expected, rel=1e-12)
    assert ctx["real_vol"].iloc[7] == pytest.approx(np.sqrt(np.mean(r[c + 1 : c + 22].mean(axis=1) ** 2)), rel=1e-12)


def test_drift_memorisation(syn: SyntheticFactorPanel) -> None:
    panel = syn.panel
    a = SPLIT.bounds(panel.dates)["train"][1]
    train_mean = np.asarray(panel.returns)[:a].mean(axis=0)
    memo = _roll(_DriftGenerator(panel, train_mean), panel, n_paths=10, every=20, horizons=(21,))
    assert memo.scalars[21]["drift_train_corr"] > 0.95
    np.testing.assert_allclose(memo.drift[21]["train_mean"], train_mean)
    shuffled = _roll(_DriftGenerator(panel, train_mean[::-1].copy()), panel, n_paths=10, every=20, horizons=(21,))
    assert shuffled.scalars[21]["drift_train_corr"] == pytest.approx(pearson(train_mean[::-1], train_mean), abs=0.05)


def test_calibration_floor_matches_theory_without_overlap_and_rises_with_it() -> None:
    p = calibration_levels()
    iid = float(np.sum(p * (1 - p)) / 80)
    assert calibration_floor(80, 21, 21) == pytest.approx(iid, rel=0.05)
    assert calibration_floor(80, 5, 21) > 1.5 * iid
    null = calibration_null(80, 21, 21)
    # n * error is the Cramer-von Mises statistic (x 100 levels): 95th percentile 0.461
    assert np.quantile(null, 0.95) * 80 / 100 == pytest.approx(0.461, rel=0.1)
    np.testing.assert_array_equal(null, calibration_null(80, 21, 21))  # seeded


def test_rank_and_linear_correlations() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert math.isnan(spearman(x[:2], x[:2])) and math.isnan(pearson(np.ones(4), x[:4]))
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- invariances
def test_same_numbers_in_one_batch_or_many_and_for_any_horizon_set(syn: SyntheticFactorPanel) -> None:
    one = _cheap(syn, batch_paths=10_000)  # every context in one simulator
    many = _cheap(syn, batch_paths=20)  # one context per simulator
    assert one.scalars[21]["n_contexts"] > 40
    # the paths and every per-context figure are identical; the stylized facts, computed for
    # many paths at once, may differ in the last bits (numpy's summation order)
    facts = [c for c in one.table().columns if c.endswith(("_sim", "_real"))]
    pd.testing.assert_frame_equal(many.table().drop(columns=facts), one.table().drop(columns=facts), check_exact=True)
    pd.testing.assert_frame_equal(many.table()[facts], one.table()[facts], rtol=1e-12, atol=1e-15)
    for h in (5, 21):
        pd.testing.assert_frame_equal(many.contexts[h], one.contexts[h], check_exact=True)
    only21 = _cheap(syn, horizons=(21,), batch_paths=140)
    pd.testing.assert_frame_equal(only21.contexts[21], one.contexts[21], check_exact=True)
    assert only21.scalars[21]["cal_error"] == one.scalars[21]["cal_error"]
    assert only21.scalars[21]["drift_train_corr"] == one.scalars[21]["drift_train_corr"]


def test_deterministic_and_seed_dependent(syn: SyntheticFactorPanel, truth: Any) -> None:
    a, b = _cheap(syn), _cheap(syn)
    pd.testing.assert_frame_equal(a.table(), b.table(), check_exact=True)
    other = _cheap(syn, seed=1)
    assert not np.allclose(other.contexts[21]["sim_median"], a.contexts[21]["sim_median"])


def test_contexts_stay_inside_the_part(syn: SyntheticFactorPanel, truth: Any) -> None:
    dates = syn.panel.dates
    i0, i1 = SPLIT.bounds(dates)["test"]
    for h in (5, 21):
        rows = np.array([dates.get_loc(d) for d in truth.contexts[h].index])
        assert rows.min() == i0 - 1 and (rows + h <= i1 - 1).all()
        assert (np.diff(rows) == 6).all()
    assert len(truth.contexts[5]) > len(truth.contexts[21])
    val = rollout_diagnostics(_TruthGenerator(syn), syn.panel, SPLIT, "val", rng=np.random.default_rng(0),
                              horizons=(21,), n_paths=10, every=20, progress=False, floor_reps=50)  # fmt: skip
    vi0, vi1 = SPLIT.bounds(dates)["val"]
    vrows = np.array([dates.get_loc(d) for d in val.contexts[21].index])
    assert vrows.min() == vi0 - 1 and (vrows + 21 <= vi1 - 1).all()  # never reads the test rows


def test_absent_assets_leave_the_portfolio(syn: SyntheticFactorPanel) -> None:
    p = syn.panel
    mask = np.ones((p.T, p.N), dtype=bool)
    i0 = SPLIT.bounds(p.dates)["test"][0]
    mask[i0 + 100 :, 0] = False  # asset 0 delists 100 days into the test
    mask[: i0 + 300, 1] = False  # asset 1 lists 300 days into it
    panel = ReturnPanel(p.dates, p.assets, np.asarray(p.returns), mask, static=p.static, name="holes")
    rep = _roll(_ReplayGenerator(panel), panel, n_paths=2, horizons=(21,))
    ctx = rep.contexts[21]
    rows = np.array([p.dates.get_loc(d) for d in ctx.index])
    alive = mask[rows]
    in_window = np.array([mask[c + 1 : c + 22].any(axis=0) for c in rows])
    assert (ctx["n_assets"].to_numpy() == (alive & in_window).sum(axis=1)).all()
    r = np.asarray(panel.returns)
    k = int(np.nonzero((rows > i0 + 90) & (rows < i0 + 100))[0][0])  # asset 0 dies inside this window
    c = rows[k]
    days = r[c + 1 : c + 22][:, alive[k]]
    expected = np.prod(1 + np.nanmean(days, axis=1)) - 1
    assert ctx["real_return"].iloc[k] == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(ctx["sim_median"], ctx["real_return"], rtol=1e-12)
    assert np.isfinite(rep.scalars[21]["vol_spearman_stock"])


def test_bad_settings_are_refused(syn: SyntheticFactorPanel) -> None:
    gen = _TruthGenerator(syn)
    with pytest.raises(DataValidationError, match="horizons"):
        _roll(gen, syn.panel, horizons=(0,))
    with pytest.raises(DataValidationError, match="n_paths"):
        _roll(gen, syn.panel, n_paths=1)
    with pytest.raises(DataValidationError, match="followed by 5000 days"):
        _roll(gen, syn.panel, horizons=(5000,))
    with pytest.raises(TypeError, match="paths"):
        _roll(gen, syn.panel, paths=3)


# ----------------------------------------------------------------------------- files, report, CLI
def test_files_and_report_section(truth: Any, narrow: Any, tmp_path: Path) -> None:
    paths = save_rollouts([truth, narrow], tmp_path)
    table = pd.read_csv(paths["csv"], index_col=0)
    assert list(table.index) == ["truth", "truth", "narrow", "narrow"] and list(table["H"]) == [5, 21, 5, 21]
    assert table.loc["truth", "Cal. error"].tolist() == pytest.approx([truth.scalars[h]["cal_error"] for h in (5, 21)])
    assert "### H = 21 days" in paths["markdown"].read_text()
    assert (tmp_path / "rollouts" / "narrow_test_h5.csv").is_file()
    assert tuple(ROLLOUT_COLUMNS) == ROLLOUT_METRICS
    assert rollouts_table([truth, narrow], 5).shape[0] == 2

    from factorgym.report import Report

    rep = Report("t")
    assert add_rollouts_section(rep, tmp_path) and rep.n_tables == 4 and rep.n_figures == 4
    assert not add_rollouts_section(Report("t"), tmp_path / "nothing")
    page = evaluation_page(tmp_path).to_html()
    assert 'id="rollouts"' in page and "Cal. floor" in page


def test_cli_rollouts_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from factorgym.app import cli
    from factorgym.generators.runs import RunSpec, fit_run
    from factorgym.io import write_panel

    syn = synthetic_factor_panel(T=1600, N=4, F=1, seed=5, n_is_samples=16)
    data = tmp_path / "panel.csv"
    write_panel(syn.panel, data)
    spec = RunSpec(kind="ledoit_wolf", dataset=str(data), train_end="2003-12-31", val_end="2004-12-31", params={"window": 63})
    fit_run(spec, tmp_path / "run", progress=False)
    common = ["evaluate-generators", str(tmp_path / "run"), "--n-samples", "50", "--sim-paths", "0", "--day-stride", "5"]
    assert cli.main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "plain" / "rollouts.csv").exists() and not (tmp_path / "plain" / "report.html").exists()
    code = cli.main([*common, "--out", str(tmp_path / "ev"), "--rollouts", "--horizons", "5,21", "--rollout-paths", "20", "--rollout-every", "25"])
    out, _ = capsys.readouterr()
    assert code == 0 and "Rollouts" in out and "H = 21 days" in out
    table = pd.read_csv(tmp_path / "ev" / "rollouts.csv", index_col=0)
    assert list(table["H"]) == [5, 21] and (table["Contexts"] > 5).all()
    html = (tmp_path / "ev" / "report.html").read_text()
    assert 'id="rollouts"' in html and 'id="one-day-ahead"' in html
    # the one-day files are the same with or without --rollouts
    assert (tmp_path / "ev" / "generator_reports.csv").read_text() == (tmp_path / "plain" / "generator_reports.csv").read_text()
    assert cli.main([*common, "--out", str(tmp_path / "bad"), "--rollouts", "--horizons", "5,x"]) == 2

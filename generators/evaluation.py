"""Evaluate a fitted return generator in the spirit of NeuralFactors, tables 4-6.

:func:`evaluate_generator` walks through the days of one split part and, for each day
``t+1``, asks the generator for its predictive distribution given the rows up to ``t``
(windows are cut from the *full* panel, so the first test day conditions on the last
validation rows). It uses only the generator interface: ``predict_windows`` in batches,
``Predictive.sample`` / ``mean`` / ``cov`` / ``marginal_cdf`` always, and ``log_prob`` /
``marginal_log_prob`` only where ``has_log_prob`` says a density exists.

Metrics (per day, then aggregated). "Scaled" returns are divided by ``s_i``: by default
(``nll_scale="pooled"``) one number for every asset, the standard deviation of all train
returns pooled across assets and days (``ddof=1``) -- NeuralFactors footnote 3 divides by
0.02672357, "approximately the standard deviation of returns across our training period" --
so figures compare with the paper's; ``nll_scale="per_asset"`` divides each asset by its
own train std instead (a stricter scale: on sp500 test it adds ~0.116 nats/asset/day):

``nll_joint``  eq. 10: ``-(log p(r_{t+1}) + sum_i log s_i) / N``, i.e. the NLL of the scaled
               returns in nats per asset, averaged over days on which every asset trades.
``nll_ind``    eq. 11: ``-mean_i (log p_i(r_{i,t+1}) + log s_i)`` over available assets,
               averaged over days.
``cov_mse``    section 5.2.2: whiten the realised returns by the predicted moments
               (``z = Sigma_t^{-1/2} (r_{t+1} - mu_t)``, :func:`factorgym.metrics.whiten`),
               then ``mean((Cov(z) - I)^2)`` with ``Cov`` the sample covariance over the days.
               Restricted to the assets trading on every evaluated day.
``box_m``      Box-corrected LR statistic of ``Cov(z) = I`` (:func:`factorgym.metrics.box_m_identity`),
               with ``box_m_pvalue`` and the per-observation ``box_m_divergence``.
``cov_mse_outer``  a noisier proxy without whitening: mean over days of
               ``mean_ij (Sigma_t - e e')_ij^2`` with ``e = r_{t+1} - mu_t``, on scaled returns.
``cal_uni``    eq. 12 calibration error of each asset's PIT values ``F_i(r_i)``
               (``marginal_cdf``), averaged over assets weighted by their days available.
``cal_port``   eq. 12 for the equal-weight portfolio of the available assets, PIT from
               ``n_samples`` joint samples (randomised, exactly uniform when calibrated).
``var{95,99}_*``  the portfolio's VaR is the empirical quantile of its sampled returns;
               a hit is a realised loss above it; Kupiec / Christoffersen tests
               (:func:`factorgym.metrics.var_backtest`).
``crps``       fair CRPS of each asset's scaled return from the samples, mean over assets.
``energy_score``  fair energy score of the scaled return vector of the available assets,
               from the first ``energy_samples`` samples.
``sf_*``       stylized-fact distances of ``sim_paths`` simulated paths of ``sim_horizon``
               days (``generator.simulate`` from the day before the period) to the real
               period's first ``sim_horizon`` days (:func:`factorgym.metrics.compare_stylized_facts`).

Random draws of day ``d`` come from their own stream (``rng`` spawns one per day), so a
day's values depend only on the data up to that day, the generator and ``rng``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from factorgym import metrics as M
from factorgym.artifacts import atomic_write_text
from factorgym.data import ReturnPanel, Split
from factorgym.errors import DataValidationError
from factorgym.generators.base import ReturnGenerator, check_context

__all__ = ["GeneratorReport", "TABLE_COLUMNS", "evaluate_generator", "reports_table", "save_reports", "to_markdown"]

#: Scalar keys of :attr:`GeneratorReport.scalars` and their column titles in :func:`reports_table`.
TABLE_COLUMNS: dict[str, str] = {
    "nll_ind": "NLL ind",
    "nll_joint": "NLL joint",
    "cov_mse": "Cov MSE",
    "box_m": "Box's M",
    "box_m_divergence": "Box div.",
    "cov_mse_outer": "Cov MSE (outer)",
    "cal_uni": "Cal. Uni.",
    "cal_port": "Cal. Port.",
    "var95_rate": "VaR95 rate",
    "var95_pof_p": "Kupiec95 p",
    "var95_ind_p": "Ind95 p",
    "var95_cc_p": "CC95 p",
    "var99_rate": "VaR99 rate",
    "var99_pof_p": "Kupiec99 p",
    "var99_ind_p": "Ind99 p",
    "var99_cc_p": "CC99 p",
    "crps": "CRPS",
    "energy_score": "Energy",
    "sf_kurtosis": "SF kurt.",
    "sf_acf": "SF ACF",
    "sf_abs_acf": "SF |r| ACF",
    "sf_leverage": "SF lev.",
    "sf_corr": "SF corr.",
}


@dataclass
class GeneratorReport:
    """Evaluation of one generator on one split part.

    Attributes
    ----------
    name : str
        Label of the generator (rows of :func:`reports_table`).
    part : str
        ``"train"``, ``"val"`` or ``"test"``.
    dates : pandas.DatetimeIndex of shape (D,)
        The predicted days.
    assets : tuple of str, length N
    scalars : dict of str to float
        Aggregated metrics (keys of :data:`TABLE_COLUMNS` plus ``n_days``,
        ``n_days_joint``, ``box_m_dof`` ...); NaN where not computable.
    notes : dict of str to str
        How each metric group was obtained (exact / estimate / unavailable and why).
    calibration_per_asset : pandas.Series of shape (N,)
        Calibration error of each asset (NaN for an asset never available).
    days_per_asset : pandas.Series of shape (N,)
        Evaluated days on which each asset traded (the weights of ``cal_uni``).
    per_day : pandas.DataFrame of shape (D, *)
        Per-day values indexed by ``dates``: ``n_assets``, ``nll_joint``, ``nll_ind``,
        ``crps``, ``energy_score``, ``cov_mse_outer``, ``port_return``, ``port_pit``,
        ``var_95``, ``hit_95``, ``var_99``, ``hit_99`` (VaR as positive loss fractions).
    pit : ndarray of shape (D, N)
        Per-asset PIT values (NaN where unavailable).
    whitened : ndarray of shape (D, K)
        Whitened realised returns of the ``K`` assets in ``cov_assets``.
    cov_assets : tuple of str, length K
        Assets available on every evaluated day (the covariance universe).
    var_backtests : dict of str to VaRBacktest
        Keyed by ``"95"``, ``"99"``.
    stylized : StylizedFactsComparison or None
        Simulated vs real stylized facts (None when ``sim_paths == 0``).
    config : dict
        Evaluation settings.
    """

    name: str
    part: str
    dates: pd.DatetimeIndex
    assets: tuple[str, ...]
    scalars: dict[str, float]
    notes: dict[str, str]
    calibration_per_asset: pd.Series
    days_per_asset: pd.Series
    per_day: pd.DataFrame
    pit: np.ndarray
    whitened: np.ndarray
    cov_assets: tuple[str, ...]
    var_backtests: dict[str, M.VaRBacktest] = field(default_factory=dict)
    stylized: M.StylizedFactsComparison | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> pd.Series:
        """The scalars as a Series (in :data:`TABLE_COLUMNS` order first)."""
        keys = [k for k in TABLE_COLUMNS if k in self.scalars] + [k for k in self.scalars if k not in TABLE_COLUMNS]
        return pd.Series({k: self.scalars[k] for k in keys}, name=self.name, dtype=float)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (non-finite numbers become ``None``)."""
        out: dict[str, Any] = {
            "name": self.name,
            "part": self.part,
            "start": str(self.dates[0].date()),
            "end": str(self.dates[-1].date()),
            "assets": list(self.assets),
            "scalars": dict(self.scalars),
            "notes": dict(self.notes),
            "calibration_per_asset": {str(k): float(v) for k, v in self.calibration_per_asset.items()},
            "days_per_asset": {str(k): int(v) for k, v in self.days_per_asset.items()},
            "cov_assets": list(self.cov_assets),
            "var_backtests": {k: v.to_dict() for k, v in self.var_backtests.items()},
            "config": dict(self.config),
        }
        if self.stylized is not None:
            out["stylized_facts"] = {
                "distances": dict(self.stylized.distances),
                "real": _facts_dict(self.stylized.real, mean_over_paths=False),
                "simulated_mean": _facts_dict(self.stylized.simulated, mean_over_paths=True),
            }
        return _jsonable(out)


def _facts_dict(f: M.StylizedFacts, *, mean_over_paths: bool) -> dict[str, Any]:
    def agg(a: np.ndarray) -> Any:
        a = np.asarray(a)
        return (np.nanmean(a, axis=0) if mean_over_paths else a).tolist()

    return {"kurtosis": agg(f.kurtosis), "acf": agg(f.acf), "abs_acf": agg(f.abs_acf), "leverage": agg(f.leverage)}


def _jsonable(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


# ====================================================================== evaluation


def _level_key(level: float) -> str:
    """``0.95 -> "95"``, ``0.975 -> "97.5"`` (names of the VaR columns)."""
    return f"{level * 100:g}"


def _train_scale(panel: ReturnPanel, split: Split, how: str = "pooled") -> np.ndarray:
    """Train-period scale ``(N,)``: pooled std of all train returns, or each asset's own."""
    if how not in ("pooled", "per_asset"):
        raise DataValidationError(f"nll_scale must be 'pooled' or 'per_asset', got {how!r}")
    _, a = split.bounds(panel.dates)["train"]
    train = np.asarray(panel.returns[:a])
    mask = np.asarray(panel.mask[:a])
    n = mask.sum(axis=0)
    bad = [panel.assets[j] for j in np.nonzero(n < 2)[0]]
    if bad:
        raise DataValidationError(f"assets with fewer than 2 train days (no train std for NLL scaling): {', '.join(bad[:5])}")
    if how == "pooled":
        s = np.full(panel.N, np.std(train[mask], ddof=1))
    else:
        s = np.array([np.std(train[mask[:, j], j], ddof=1) for j in range(panel.N)])
    if (s <= 0).any():
        raise DataValidationError(f"assets with constant train returns: {', '.join(np.asarray(panel.assets)[s <= 0][:5])}")
    return s


def _progress(enabled: bool, total: int, label: str) -> Any:
    """A rich progress bar (or a no-op) used as a context manager with ``.advance(n)``."""

    class _Null:
        def __enter__(self) -> _Null:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def advance(self, n: int) -> None:
            return None

    if not enabled:
        return _Null()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    class _Bar:
        def __enter__(self) -> _Bar:
            self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True)
            self._p.__enter__()
            self._task = self._p.add_task(label, total=total)
            return self

        def __exit__(self, *exc: object) -> None:
            self._p.__exit__(*exc)  # type: ignore[arg-type]

        def advance(self, n: int) -> None:
            self._p.advance(self._task, n)

    return _Bar()


def evaluate_generator(
    generator: ReturnGenerator,
    panel: ReturnPanel,
    split: Split,
    part: str = "test",
    *,
    n_samples: int = 1000,
    rng: np.random.Generator,
    sim_paths: int = 100,
    sim_horizon: int = 252,
    progress: bool = True,
    name: str | None = None,
    batch_size: int = 64,
    energy_samples: int = 256,
    var_levels: tuple[float, ...] = (0.95, 0.99),
    whitening: Literal["symmetric", "cholesky"] = "symmetric",
    max_lag: int = 10,
    nll_scale: Literal["pooled", "per_asset"] = "pooled",
    day_stride: int = 1,
) -> GeneratorReport:
    """Evaluate ``generator``'s one-day-ahead predictions on ``split``'s ``part`` of ``panel``.

    See the module docstring for every metric's definition.

    Parameters
    ----------
    generator : ReturnGenerator
        Fitted on ``panel.assets`` (in that order).
    panel : ReturnPanel
        The full panel; windows for day ``d`` are rows ``d - min_history .. d - 1``.
    split : Split
        Defines the part evaluated and the train rows whose std scales the returns.
    nll_scale : {"pooled", "per_asset"}
        How returns are scaled for NLL, CRPS and energy score (module docstring).
    part : {"test", "val", "train"}
    n_samples : int
        Joint samples per day (portfolio PIT and VaR, CRPS, energy score). At least 2; the
        99% VaR needs a few hundred to be meaningful.
    rng : numpy.random.Generator
        Source of every random draw (one child stream per day, one for the simulation).
    sim_paths : int
        Simulated paths for the stylized facts (0 skips them).
    sim_horizon : int
        Days per simulated path (capped at the length of the part).
    progress : bool
        Show a progress bar on the terminal.
    name : str, optional
        Label of the report; ``generator.kind`` by default.
    batch_size : int
        Days per ``predict_windows`` call.
    energy_samples : int
        Samples used for the energy score (memory ``O(energy_samples^2 N)`` per day).
    var_levels : tuple of float
        VaR confidence levels of the portfolio backtests.
    whitening : {"symmetric", "cholesky"}
        See :func:`factorgym.metrics.whiten`.
    max_lag : int
        Largest lag of the stylized-fact ACFs.
    day_stride : int
        Evaluate every ``day_stride``-th day of the part only (1: every day). For generators
        whose predictions are expensive (a diffusion model samples every day); the days kept
        still span the whole part, the report's ``n_days`` and notes say how many, and the
        VaR independence test then tests independence of hits ``day_stride`` days apart.

    Returns
    -------
    GeneratorReport

    Raises
    ------
    DataValidationError
        Unknown or empty part, assets that differ from the generator's, too little history,
        or a generator that returns malformed predictions.
    """
    if n_samples < 2:
        raise DataValidationError(f"n_samples must be at least 2, got {n_samples}")
    if int(day_stride) != day_stride or day_stride < 1:
        raise DataValidationError(f"day_stride must be a positive integer, got {day_stride!r}")
    if batch_size < 1 or energy_samples < 2 or sim_paths < 0 or sim_horizon < 1:
        raise DataValidationError("batch_size >= 1, energy_samples >= 2, sim_paths >= 0 and sim_horizon >= 1 are required")
    levels = tuple(M._check_level(v, "var level") for v in var_levels)
    bounds = split.bounds(panel.dates)
    if part not in bounds:
        raise DataValidationError(f"unknown split part {part!r}; expected train, val or test")
    i0, i1 = bounds[part]
    if i1 <= i0:
        raise DataValidationError(f"split part {part!r} of {panel.name} is empty")
    assets = getattr(generator, "assets_", None)
    if assets is None:
        raise DataValidationError(f"{type(generator).__name__} is not fitted (no assets_)")
    if tuple(assets) != tuple(panel.assets):
        raise DataValidationError(
            f"panel assets {list(panel.assets)[:5]}... differ from the generator's {list(assets)[:5]}..."
        )
    hist = int(generator.min_history)
    first = max(i0, hist, 1)
    if first >= i1:
        raise DataValidationError(
            f"no day of {part!r} has the {hist} days of history {type(generator).__name__} needs"
        )
    check_context(panel, first - 1, hist, tuple(assets))
    days = np.arange(first, i1)[:: int(day_stride)]
    n_days, n = len(days), panel.N
    label = name or getattr(generator, "kind", type(generator).__name__)

    scale = _train_scale(panel, split, nll_scale)
    log_scale = np.log(scale)
    returns = np.asarray(panel.returns)
    mask = np.asarray(panel.mask)
    cov_idx = np.nonzero(mask[days].all(axis=0))[0]

    sim_rng, day_parent = rng.spawn(2)
    day_rngs = day_parent.spawn(n_days)

    nll_joint = np.full(n_days, np.nan)
    nll_ind = np.full(n_days, np.nan)
    crps = np.full(n_days, np.nan)
    energy = np.full(n_days, np.nan)
    cov_outer = np.full(n_days, np.nan)
    port_ret = np.full(n_days, np.nan)
    port_pit = np.full(n_days, np.nan)
    var = {lv: np.full(n_days, np.nan) for lv in levels}
    pit = np.full((n_days, n), np.nan)
    mu_k = np.empty((n_days, len(cov_idx)))
    cov_k = np.empty((n_days, len(cov_idx), len(cov_idx)))
    flags: set[tuple[bool, bool]] = set()
    exact_moments = True  # mean/cov exact (e.g. NeuralFactors: closed-form moments, estimated density)
    has_marginal_lp = True

    with _progress(progress, n_days, f"evaluating {label} on {part}") as bar:
        for b0 in range(0, n_days, batch_size):
            batch = days[b0 : b0 + batch_size]
            windows = np.stack([returns[d - hist : d] for d in batch])
            preds = generator.predict_windows(windows)
            if len(preds) != len(batch):
                raise DataValidationError(f"predict_windows returned {len(preds)} predictions for {len(batch)} windows")
            for j, (d, pred) in enumerate(zip(batch, preds, strict=True)):
                i = b0 + j
                rng_d = day_rngs[i]
                flags.add((bool(pred.has_closed_form), bool(pred.has_log_prob)))
                exact_moments &= bool(getattr(pred, "has_exact_moments", pred.has_closed_form))
                m = mask[d]
                if not m.any():  # nothing trades (e.g. a holiday row): no realised value to score
                    continue
                y = returns[d]
                yf = np.where(m, y, 0.0)
                samples = np.asarray(pred.sample(n_samples, rng_d), dtype=np.float64)
                if samples.shape != (n_samples, n) or not np.isfinite(samples[:, m]).all():
                    raise DataValidationError(
                        f"{label} returned malformed samples on {panel.dates[d].date()} "
                        f"(shape {samples.shape}, expected {(n_samples, n)}, or non-finite values)"
                    )
                # densities
                if pred.has_log_prob:
                    if m.all():
                        lp = float(np.asarray(pred.log_prob(y)))
                        nll_joint[i] = -(lp + log_scale.sum()) / n
                    if has_marginal_lp:
                        try:
                            mlp = np.asarray(pred.marginal_log_prob(yf), dtype=np.float64)
                        except NotImplementedError:
                            has_marginal_lp = False
                        else:
                            nll_ind[i] = -np.mean((mlp + log_scale)[m])
                # calibration
                pit[i] = np.where(m, np.asarray(pred.marginal_cdf(yf), dtype=np.float64), np.nan)
                port_s = samples[:, m].mean(axis=1)
                port_ret[i] = y[m].mean()
                port_pit[i] = M.portfolio_pit(samples, np.where(m, y, np.nan), rng=rng_d)
                for lv in levels:
                    var[lv][i] = M.historical_var(port_s, lv)
                # scoring rules on scaled returns
                ys = y[m] / scale[m]
                xs = samples[:, m] / scale[m]
                crps[i] = float(np.mean(M.crps_ensemble(ys, xs)))
                energy[i] = M.energy_score(ys, xs[:energy_samples])
                # moments
                mu = np.asarray(pred.mean(), dtype=np.float64)
                cov = np.asarray(pred.cov(), dtype=np.float64)
                mu_k[i] = mu[cov_idx]
                cov_k[i] = cov[np.ix_(cov_idx, cov_idx)]
                e = (y[m] - mu[m]) / scale[m]
                cov_s = cov[np.ix_(m, m)] / np.outer(scale[m], scale[m])
                cov_outer[i] = M.covariance_mse(cov_s, np.outer(e, e))
            bar.advance(len(batch))

    if len(flags) > 1:
        raise DataValidationError(f"{label}'s predictives disagree on has_closed_form/has_log_prob across days: {flags}")
    closed_form, has_lp = flags.pop()
    notes: dict[str, str] = {}
    scalars: dict[str, float] = {"n_days": float(n_days)}
    if day_stride > 1:
        notes["days"] = f"every {int(day_stride)}th day of {part!r} ({n_days} days), not every day"

    # ------------------------------------------------------------------ NLL
    if not has_lp:
        notes["nll"] = "unavailable: the predictive has no log density (has_log_prob=False)"
    else:
        kind = (
            "exact closed-form log density"
            if closed_form
            else "estimate from the generator's log_prob (has_closed_form=False, e.g. an importance-sampled bound)"
        )
        notes["nll"] = f"{kind}; nats per asset per day on returns / train std ({nll_scale}; NeuralFactors eq. 10-11, footnote 3)"
        if not has_marginal_lp:
            notes["nll_ind"] = "unavailable: the predictive has no marginal log density"
    n_joint = int(np.sum(~np.isnan(nll_joint)))
    scalars["n_days_joint"] = float(n_joint)
    if has_lp and n_joint < n_days:
        notes["nll_joint"] = f"averaged over the {n_joint} of {n_days} days on which every asset trades"
    scalars["nll_joint"] = float(np.nanmean(nll_joint)) if n_joint else math.nan
    scalars["nll_ind"] = float(np.nanmean(nll_ind)) if np.isfinite(nll_ind).any() else math.nan

    # ------------------------------------------------------------------ covariance
    moments = "closed form" if closed_form or exact_moments else "estimated from the predictive's samples"
    whitened = np.empty((n_days, 0))
    scalars.update(cov_mse=math.nan, box_m=math.nan, box_m_pvalue=math.nan, box_m_divergence=math.nan, box_m_dof=math.nan)
    if len(cov_idx) < 1 or n_days - 1 < len(cov_idx):
        notes["cov"] = f"unavailable: {len(cov_idx)} assets trade on all {n_days} days (need 1..{n_days - 1})"
    else:
        whitened = M.whiten(returns[np.ix_(days, cov_idx)], mu_k, cov_k, method=whitening)
        s_w = np.cov(whitened, rowvar=False, ddof=1).reshape(len(cov_idx), len(cov_idx))
        bm = M.box_m_identity(whitened)
        scalars.update(
            cov_mse=float(M.covariance_mse(s_w, np.eye(len(cov_idx)))),
            box_m=bm.statistic,
            box_m_pvalue=bm.pvalue,
            box_m_divergence=bm.divergence,
            box_m_dof=float(bm.dof),
        )
        notes["cov"] = (
            f"{whitening} whitening by predicted mean/cov ({moments}) of the {len(cov_idx)} assets trading on "
            "every day; MSE and Box's M of the whitened sample covariance against I"
        )
    scalars["cov_mse_outer"] = float(np.nanmean(cov_outer))

    # ------------------------------------------------------------------ calibration and VaR
    per_asset = np.asarray(M.calibration_error(pit))
    days_asset = np.sum(~np.isnan(pit), axis=0)
    ok = days_asset > 0
    scalars["cal_uni"] = float(np.average(per_asset[ok], weights=days_asset[ok])) if ok.any() else math.nan
    scalars["cal_port"] = float(M.calibration_error(port_pit))
    notes["cal_uni"] = f"PIT from marginal_cdf ({'exact' if closed_form else 'sample estimate'}); eq. 12, 100 levels j/101"
    notes["cal_port"] = f"equal-weight portfolio of available assets; randomised PIT from {n_samples} samples per day"
    backtests: dict[str, M.VaRBacktest] = {}
    hits: dict[float, np.ndarray] = {}
    scored = np.isfinite(port_ret)
    for lv in levels:
        key = _level_key(lv)
        hits[lv] = -port_ret > var[lv]
        if scored.sum() < 2:
            continue
        bt = M.var_backtest(hits[lv][scored], lv)
        backtests[key] = bt
        scalars[f"var{key}_rate"] = bt.observed_rate
        scalars[f"var{key}_pof_p"] = bt.pof.pvalue
        scalars[f"var{key}_ind_p"] = bt.independence.pvalue
        scalars[f"var{key}_cc_p"] = bt.conditional_coverage.pvalue
    notes["var"] = (
        f"equal-weight portfolio VaR = empirical quantile of {n_samples} sampled portfolio returns; "
        "hit = realised loss > VaR; Kupiec POF, Christoffersen independence and conditional coverage"
    )

    # ------------------------------------------------------------------ scoring rules
    scalars["crps"] = float(np.nanmean(crps))
    scalars["energy_score"] = float(np.nanmean(energy))
    notes["scores"] = (
        f"fair CRPS (mean over assets, {n_samples} samples) and fair energy score "
        f"({min(energy_samples, n_samples)} samples) on returns / train std"
    )

    # ------------------------------------------------------------------ stylized facts
    stylized = None
    if sim_paths > 0:
        horizon = min(sim_horizon, i1 - first)
        real = returns[first : first + horizon]
        cols = np.nonzero(mask[first : first + horizon].all(axis=0))[0]
        if horizon <= max_lag + 1 or len(cols) < 2:
            notes["stylized"] = f"unavailable: {horizon} days / {len(cols)} fully available assets are too few"
        else:
            sims = generator.simulate(panel, first - 1, horizon, sim_paths, sim_rng)
            if sims.shape != (sim_paths, horizon, n) or not np.isfinite(sims[:, :, cols]).all():
                raise DataValidationError(f"{label}.simulate returned malformed paths (shape {sims.shape})")
            stylized = M.compare_stylized_facts(sims[:, :, cols], real[:, cols], max_lag)
            for k, v in stylized.distances.items():
                scalars[f"sf_{k}"] = v
            notes["stylized"] = (
                f"{sim_paths} simulated paths of {horizon} days from {panel.dates[first - 1].date()} vs the real "
                f"{panel.dates[first].date()}..{panel.dates[first + horizon - 1].date()} ({len(cols)} assets, lags 1..{max_lag})"
            )
    if first > i0:
        notes["history"] = f"the first {first - i0} days of {part!r} lack {hist} days of history and were skipped"

    per_day_cols: dict[str, np.ndarray] = {
        "n_assets": mask[days].sum(axis=1),
        "nll_joint": nll_joint,
        "nll_ind": nll_ind,
        "crps": crps,
        "energy_score": energy,
        "cov_mse_outer": cov_outer,
        "port_return": port_ret,
        "port_pit": port_pit,
    }
    for lv in levels:
        key = _level_key(lv)
        per_day_cols[f"var_{key}"] = var[lv]
        per_day_cols[f"hit_{key}"] = hits[lv]
    dates = panel.dates[days]
    return GeneratorReport(
        name=label,
        part=part,
        dates=dates,
        assets=tuple(panel.assets),
        scalars=scalars,
        notes=notes,
        calibration_per_asset=pd.Series(per_asset, index=list(panel.assets), name="calibration_error"),
        days_per_asset=pd.Series(days_asset, index=list(panel.assets), name="days"),
        per_day=pd.DataFrame(per_day_cols, index=dates),
        pit=pit,
        whitened=whitened,
        cov_assets=tuple(panel.assets[k] for k in cov_idx),
        var_backtests=backtests,
        stylized=stylized,
        config={
            "panel": panel.name,
            "split": {"train_end": split.train_end, "val_end": split.val_end},
            "n_samples": n_samples,
            "energy_samples": min(energy_samples, n_samples),
            "sim_paths": sim_paths,
            "sim_horizon": sim_horizon,
            "var_levels": list(levels),
            "whitening": whitening,
            "max_lag": max_lag,
            "min_history": hist,
            "generator": type(generator).__name__,
            "generator_params": generator.get_params(),
        },
    )


# ====================================================================== tables and files


def reports_table(reports: GeneratorReport | list[GeneratorReport]) -> pd.DataFrame:
    """One row per report (index: name) with ``part``, ``days`` and the metric columns.

    Columns follow :data:`TABLE_COLUMNS` (titles as in NeuralFactors tables 4-6 where they
    exist); NaN marks a metric the generator cannot provide.
    """
    reps = [reports] if isinstance(reports, GeneratorReport) else list(reports)
    if not reps:
        raise DataValidationError("no reports to tabulate")
    rows = []
    for r in reps:
        row: dict[str, Any] = {"part": r.part, "days": int(r.scalars.get("n_days", len(r.dates)))}
        row.update({title: r.scalars.get(key, math.nan) for key, title in TABLE_COLUMNS.items()})
        rows.append(row)
    df = pd.DataFrame(rows, index=pd.Index([r.name for r in reps], name="model"))
    keep = ["part", "days"] + [c for c in TABLE_COLUMNS.values() if df[c].notna().any()]
    return df[keep]


def _fmt_cell(v: Any, floatfmt: str) -> str:
    if v is None or (isinstance(v, float | np.floating) and math.isnan(v)):
        return "N/A"
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return format(float(v), floatfmt)
    return str(v).replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub-flavoured markdown table of ``df`` (index as first column; NaN as ``N/A``).

    Parameters
    ----------
    df : pandas.DataFrame
    floatfmt : str
        Format spec for floats (``format(x, floatfmt)``).

    Returns
    -------
    str
        Ends with a newline.
    """
    header = [str(df.index.name or "")] + [str(c) for c in df.columns]
    rows = [[_fmt_cell(idx, floatfmt)] + [_fmt_cell(v, floatfmt) for v in row] for idx, row in zip(df.index, df.itertuples(index=False), strict=True)]
    numeric = [False] + [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    widths = [max(len(h), 3, *(len(r[j]) for r in rows)) for j, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=True)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if num else (":" + "-" * (w + 1)) for w, num in zip(widths, numeric, strict=True)) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)]) + "\n"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "report"


def save_reports(reports: GeneratorReport | list[GeneratorReport], out_dir: str | Path) -> dict[str, Path]:
    """Write the comparison table and every report's details atomically into ``out_dir``.

    Files: ``generator_reports.csv`` and ``.md`` (:func:`reports_table`),
    ``generator_reports.json`` (every report's :meth:`GeneratorReport.to_dict`), and
    ``per_day/<name>_<part>.csv`` (the per-day values, for plots).

    Returns
    -------
    dict of str to Path
        The written files by role (``csv``, ``markdown``, ``json``, ``per_day:<name>_<part>``).
    """
    reps = [reports] if isinstance(reports, GeneratorReport) else list(reports)
    keys = [f"{_slug(r.name)}_{r.part}" for r in reps]
    if len(set(keys)) != len(keys):
        raise DataValidationError(f"reports need distinct (name, part) to be saved side by side: {keys}")
    out = Path(out_dir)
    table = reports_table(reps)
    paths = {
        "csv": out / "generator_reports.csv",
        "markdown": out / "generator_reports.md",
        "json": out / "generator_reports.json",
    }
    atomic_write_text(paths["csv"], table.to_csv())
    atomic_write_text(paths["markdown"], to_markdown(table))
    atomic_write_text(
        paths["json"], json.dumps([r.to_dict() for r in reps], indent=2, allow_nan=False, default=str) + "\n"
    )
    for key, r in zip(keys, reps, strict=True):
        p = out / "per_day" / f"{key}.csv"
        df = r.per_day.copy()
        df.index.name = "date"
        atomic_write_text(p, df.to_csv())
        paths[f"per_day:{key}"] = p
    return paths

"""The scores of :func:`~factorgym.generators.evaluation.evaluate_generator`, one group each.

Per day, ``score_*`` functions fill row ``i`` of a :class:`DayScores` from the day's
predictive, its joint samples and the realised returns; after the last day,
``summarise_*`` functions aggregate them into the report's ``scalars`` and ``notes`` (dicts
filled in place, in the order the report lists them). Definitions: the package docstring.

Shapes: ``D`` evaluated days, ``N`` assets, ``K`` assets trading on every evaluated day,
``S`` samples per day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from factorgym import metrics as M
from factorgym.generators.base import Predictive

__all__ = [
    "DayScores",
    "level_key",
    "score_calibration",
    "score_likelihood",
    "score_moments",
    "score_rules",
    "score_var",
    "summarise_calibration",
    "summarise_covariance",
    "summarise_likelihood",
    "summarise_rules",
    "summarise_var",
]


def level_key(level: float) -> str:
    """``0.95 -> "95"``, ``0.975 -> "97.5"`` (names of the VaR columns)."""
    return f"{level * 100:g}"


@dataclass
class DayScores:
    """Per-day values of the evaluation (row ``i``: the ``i``-th evaluated day; NaN: not scored).

    Attributes
    ----------
    nll_joint, nll_ind, crps, energy, cov_outer, port_ret, port_pit : ndarray (D,)
    var : dict of float to ndarray (D,)
        Portfolio VaR (positive loss fraction) per level.
    pit : ndarray (D, N)
    mu_k : ndarray (D, K)
    cov_k : ndarray (D, K, K)
        Predicted moments of the ``K`` covariance assets.
    flags : set of (bool, bool)
        ``(has_closed_form, has_log_prob)`` of the predictives seen.
    exact_moments : bool
        Every predictive's mean and covariance were exact.
    has_marginal_lp : bool
        False once a predictive had no marginal log density.
    """

    nll_joint: np.ndarray
    nll_ind: np.ndarray
    crps: np.ndarray
    energy: np.ndarray
    cov_outer: np.ndarray
    port_ret: np.ndarray
    port_pit: np.ndarray
    var: dict[float, np.ndarray]
    pit: np.ndarray
    mu_k: np.ndarray
    cov_k: np.ndarray
    flags: set[tuple[bool, bool]]
    exact_moments: bool = True
    has_marginal_lp: bool = True

    @classmethod
    def empty(cls, n_days: int, n_assets: int, levels: tuple[float, ...], n_cov: int) -> DayScores:
        """All-NaN values for ``n_days`` days (moments uninitialised)."""

        def nan() -> np.ndarray:
            return np.full(n_days, np.nan)

        return cls(
            nll_joint=nan(), nll_ind=nan(), crps=nan(), energy=nan(), cov_outer=nan(), port_ret=nan(),
            port_pit=nan(), var={lv: nan() for lv in levels}, pit=np.full((n_days, n_assets), np.nan),
            mu_k=np.empty((n_days, n_cov)), cov_k=np.empty((n_days, n_cov, n_cov)), flags=set(),
        )  # fmt: skip

    def note_predictive(self, pred: Predictive) -> None:
        """Record what kind of predictive the day had (closed form, density, exact moments)."""
        self.flags.add((bool(pred.has_closed_form), bool(pred.has_log_prob)))
        self.exact_moments &= bool(pred.has_closed_form or pred.has_exact_moments)


# ---------------------------------------------------------------------- per day
def score_likelihood(
    s: DayScores, i: int, pred: Predictive, y: np.ndarray, m: np.ndarray, log_scale: np.ndarray
) -> None:
    """Joint NLL (every asset trades) and mean marginal NLL of the scaled returns ``y`` ``(N,)``."""
    if not pred.has_log_prob:
        return
    n = y.shape[0]
    if m.all():
        lp = float(np.asarray(pred.log_prob(y)))
        s.nll_joint[i] = -(lp + log_scale.sum()) / n
    if s.has_marginal_lp:
        try:
            mlp = np.asarray(pred.marginal_log_prob(np.where(m, y, 0.0)), dtype=np.float64)
        except NotImplementedError:
            s.has_marginal_lp = False
        else:
            s.nll_ind[i] = -np.mean((mlp + log_scale)[m])


def score_calibration(
    s: DayScores, i: int, pred: Predictive, y: np.ndarray, m: np.ndarray, samples: np.ndarray, rng: np.random.Generator
) -> None:
    """Per-asset PIT values and the equal-weight portfolio's return and randomised PIT."""
    s.pit[i] = np.where(m, np.asarray(pred.marginal_cdf(np.where(m, y, 0.0)), dtype=np.float64), np.nan)
    s.port_ret[i] = y[m].mean()
    s.port_pit[i] = M.portfolio_pit(samples, np.where(m, y, np.nan), rng=rng)


def score_var(s: DayScores, i: int, samples: np.ndarray, m: np.ndarray) -> None:
    """The portfolio's VaR at every level: empirical quantiles of its sampled returns."""
    port_s = samples[:, m].mean(axis=1)
    for lv, out in s.var.items():
        out[i] = M.historical_var(port_s, lv)


def score_rules(
    s: DayScores, i: int, y: np.ndarray, samples: np.ndarray, m: np.ndarray, scale: np.ndarray, energy_samples: int
) -> None:
    """Fair CRPS (mean over assets) and fair energy score of the scaled returns."""
    ys = y[m] / scale[m]
    xs = samples[:, m] / scale[m]
    s.crps[i] = float(np.mean(M.crps_ensemble(ys, xs)))
    s.energy[i] = M.energy_score(ys, xs[:energy_samples])


def score_moments(
    s: DayScores, i: int, pred: Predictive, y: np.ndarray, m: np.ndarray, scale: np.ndarray, cov_idx: np.ndarray
) -> None:
    """Keep the predicted moments of the covariance assets; score the outer-product proxy."""
    mu = np.asarray(pred.mean(), dtype=np.float64)
    cov = np.asarray(pred.cov(), dtype=np.float64)
    s.mu_k[i] = mu[cov_idx]
    s.cov_k[i] = cov[np.ix_(cov_idx, cov_idx)]
    e = (y[m] - mu[m]) / scale[m]
    cov_s = cov[np.ix_(m, m)] / np.outer(scale[m], scale[m])
    s.cov_outer[i] = M.covariance_mse(cov_s, np.outer(e, e))


# ---------------------------------------------------------------------- summaries
def summarise_likelihood(
    s: DayScores, closed_form: bool, has_lp: bool, nll_scale: str, scalars: dict[str, float], notes: dict[str, str]
) -> None:
    """``nll_joint`` (days on which every asset trades) and ``nll_ind``, with their notes, and
    the standard errors of both means: ``*_se`` Newey-West (HAC, :func:`factorgym.metrics.newey_west_mean`),
    ``*_se_iid`` assuming independent days."""
    n_days = len(s.nll_joint)
    if not has_lp:
        notes["nll"] = "unavailable: the predictive has no log density (has_log_prob=False)"
    else:
        kind = (
            "exact closed-form log density"
            if closed_form
            else "estimate from the generator's log_prob (has_closed_form=False, e.g. an importance-sampled bound)"
        )
        notes["nll"] = f"{kind}; nats per asset per day on returns / train std ({nll_scale}; NeuralFactors eq. 10-11, footnote 3)"
        if not s.has_marginal_lp:
            notes["nll_ind"] = "unavailable: the predictive has no marginal log density"
    n_joint = int(np.sum(~np.isnan(s.nll_joint)))
    scalars["n_days_joint"] = float(n_joint)
    if has_lp and n_joint < n_days:
        notes["nll_joint"] = f"averaged over the {n_joint} of {n_days} days on which every asset trades"
    scalars["nll_joint"] = float(np.nanmean(s.nll_joint)) if n_joint else math.nan
    scalars["nll_ind"] = float(np.nanmean(s.nll_ind)) if np.isfinite(s.nll_ind).any() else math.nan
    lags = []
    for key, per_day in (("nll_joint", s.nll_joint), ("nll_ind", s.nll_ind)):
        m = M.newey_west_mean(per_day)
        scalars[f"{key}_se"], scalars[f"{key}_se_iid"] = m.std_error, m.iid_std_error
        if math.isfinite(m.bandwidth):
            lags.append(f"{key} {m.bandwidth:.1f}")
    if lags:
        notes["nll_se"] = (
            "standard errors of the mean NLL: Newey-West (Bartlett kernel, automatic bandwidth "
            f"{', '.join(lags)} days), robust to the serial dependence of daily NLL; *_se_iid assume independent days"
        )


def summarise_covariance(
    s: DayScores,
    realised: np.ndarray,
    whitening: str,
    moments: str,
    scalars: dict[str, float],
    notes: dict[str, str],
) -> np.ndarray:
    """Whiten the realised returns ``(D, K)`` of the covariance assets; MSE and Box's M of
    their sample covariance against ``I``. Returns the whitened returns ``(D, K)`` (``(D, 0)``
    when not computable); ``moments`` says how the predicted moments were obtained."""
    n_days, k = realised.shape
    whitened = np.empty((n_days, 0))
    scalars.update(cov_mse=math.nan, box_m=math.nan, box_m_pvalue=math.nan, box_m_divergence=math.nan, box_m_dof=math.nan)
    if k < 1 or n_days - 1 < k:
        notes["cov"] = f"unavailable: {k} assets trade on all {n_days} days (need 1..{n_days - 1})"
    else:
        whitened = M.whiten(realised, s.mu_k, s.cov_k, method=whitening)
        s_w = np.cov(whitened, rowvar=False, ddof=1).reshape(k, k)
        bm = M.box_m_identity(whitened)
        scalars.update(
            cov_mse=float(M.covariance_mse(s_w, np.eye(k))),
            box_m=bm.statistic,
            box_m_pvalue=bm.pvalue,
            box_m_divergence=bm.divergence,
            box_m_dof=float(bm.dof),
        )
        notes["cov"] = (
            f"{whitening} whitening by predicted mean/cov ({moments}) of the {k} assets trading on "
            "every day; MSE and Box's M of the whitened sample covariance against I"
        )
    scalars["cov_mse_outer"] = float(np.nanmean(s.cov_outer))
    return whitened


def summarise_calibration(
    s: DayScores, closed_form: bool, n_samples: int, scalars: dict[str, float], notes: dict[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """``cal_uni`` and ``cal_port``; returns each asset's calibration error and days ``(N,)``."""
    per_asset = np.asarray(M.calibration_error(s.pit))
    days_asset = np.sum(~np.isnan(s.pit), axis=0)
    ok = days_asset > 0
    scalars["cal_uni"] = float(np.average(per_asset[ok], weights=days_asset[ok])) if ok.any() else math.nan
    scalars["cal_port"] = float(M.calibration_error(s.port_pit))
    notes["cal_uni"] = f"PIT from marginal_cdf ({'exact' if closed_form else 'sample estimate'}); eq. 12, 100 levels j/101"
    notes["cal_port"] = f"equal-weight portfolio of available assets; randomised PIT from {n_samples} samples per day"
    return per_asset, days_asset


def summarise_var(
    s: DayScores, n_samples: int, scalars: dict[str, float], notes: dict[str, str]
) -> tuple[dict[str, M.VaRBacktest], dict[float, np.ndarray]]:
    """Kupiec / Christoffersen backtests of the portfolio VaR hits; returns them by level key
    and the hits ``(D,)`` by level."""
    backtests: dict[str, M.VaRBacktest] = {}
    hits: dict[float, np.ndarray] = {}
    scored = np.isfinite(s.port_ret)
    for lv, var in s.var.items():
        key = level_key(lv)
        hits[lv] = -s.port_ret > var
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
    return backtests, hits


def summarise_rules(
    s: DayScores, n_samples: int, energy_samples: int, scalars: dict[str, float], notes: dict[str, str]
) -> None:
    """Mean CRPS and energy score over the days."""
    scalars["crps"] = float(np.nanmean(s.crps))
    scalars["energy_score"] = float(np.nanmean(s.energy))
    notes["scores"] = (
        f"fair CRPS (mean over assets, {n_samples} samples) and fair energy score "
        f"({min(energy_samples, n_samples)} samples) on returns / train std"
    )

"""The statistics of :func:`~factorgym.generators.evaluation.rollout_diagnostics`, one
context at a time, and their summary per horizon (definitions: the
:mod:`~factorgym.generators.evaluation.rollouts` docstring).

Shapes: ``M`` paths per context, ``H`` days, ``N`` assets, ``K`` assets trading on every day
of a window, ``C`` contexts of a horizon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from factorgym import metrics as M
from factorgym.errors import DataValidationError

__all__ = [
    "CONTEXT_COLUMNS",
    "HorizonScores",
    "calibration_floor",
    "calibration_null",
    "iid_floor",
    "pearson",
    "quiet",
    "score_context",
    "score_facts",
    "spearman",
    "summarise_horizon",
]

#: Columns of the per-context tables (:attr:`~factorgym.generators.evaluation.RolloutReport.contexts`).
CONTEXT_COLUMNS: tuple[str, ...] = (
    "n_assets", "real_return", "sim_median", "sim_q01", "sim_q05", "sim_q95", "pit", "real_vol", "sim_vol", "sim_vol_mean",
)  # fmt: skip

#: Fewest contexts for a stock's own volatility rank correlation.
MIN_STOCK_CONTEXTS = 5


# ----------------------------------------------------------------------------- statistics
def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of the pairs where both are finite (NaN below 3 pairs or
    for a constant side)."""
    from scipy.stats import rankdata

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return math.nan
    return pearson(rankdata(a[ok]), rankdata(b[ok]))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the pairs where both are finite (NaN below 3 pairs or for a
    constant side)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return math.nan
    x, y = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    den = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / den if den > 0 else math.nan


def calibration_floor(n: int, spacing: int, horizon: int, *, reps: int = 2000, seed: int = 0) -> float:
    """Expected :func:`~factorgym.metrics.calibration_error` of a perfectly calibrated
    forecaster of ``horizon``-day sums on ``n`` contexts ``spacing`` days apart: the mean of
    :func:`calibration_null`. With ``spacing >= horizon`` the windows do not overlap and the
    value is ``sum_j p_j (1 - p_j) / n`` up to simulation noise; with overlap the PITs of
    neighbouring contexts are dependent and the floor is higher. NaN for ``n == 0``.
    """
    return float(np.mean(calibration_null(n, spacing, horizon, reps=reps, seed=seed))) if n else math.nan


def calibration_null(n: int, spacing: int, horizon: int, *, reps: int = 2000, seed: int = 0) -> np.ndarray:
    """:func:`~factorgym.metrics.calibration_error` of a perfectly calibrated forecaster, in
    ``reps`` simulated repetitions: its distribution under calibration.

    Each repetition draws i.i.d. standard normal daily shocks, takes the PIT of each of the
    ``n`` windows' ``horizon``-day sums (windows starting ``spacing`` days apart) under their
    true law ``N(0, horizon)``, and the calibration error of those PITs. Seeded, so
    deterministic. Volatility clustering in real data makes overlapping windows' PITs more
    dependent than here; without overlap the PITs of a true model are independent anyway.

    Parameters
    ----------
    n, spacing, horizon : int
        Contexts (at least 1), days between them, days per window.
    reps : int
    seed : int

    Returns
    -------
    ndarray of shape (reps,)
    """
    from scipy.special import ndtr

    if n < 1:
        raise DataValidationError(f"need at least one context, got {n}")
    length = (n - 1) * spacing + horizon
    z = np.random.default_rng(seed).standard_normal((reps, length))
    c = np.concatenate([np.zeros((reps, 1)), np.cumsum(z, axis=1)], axis=1)
    starts = np.arange(n) * spacing
    sums = c[:, starts + horizon] - c[:, starts]  # (reps, n)
    pit = ndtr(sums / math.sqrt(horizon))
    return np.asarray(M.calibration_error(pit.T), dtype=np.float64).reshape(reps)


def iid_floor(n: int) -> float:
    p = M.calibration_levels()
    return float(np.sum(p * (1 - p)) / n) if n else math.nan


# ----------------------------------------------------------------------------- one context
@dataclass
class HorizonScores:
    """Per-horizon accumulators, filled context by context."""

    rows: list[dict[str, float]] = field(default_factory=list)
    dates: list[pd.Timestamp] = field(default_factory=list)
    stock_real: list[np.ndarray] = field(default_factory=list)  # (N,) per context
    stock_sim: list[np.ndarray] = field(default_factory=list)
    facts: list[np.ndarray] = field(default_factory=list)  # (8,) per context
    sim_sum: np.ndarray | None = None
    sim_n: np.ndarray | None = None
    real_sum: np.ndarray | None = None
    real_n: np.ndarray | None = None

    def add_drift(self, sim: np.ndarray, real: np.ndarray, m: np.ndarray) -> None:
        n_paths = sim.shape[0]
        s = np.where(m, sim, 0.0).sum(axis=(0, 1))
        r = np.where(m, real, 0.0).sum(axis=0)
        k = m.sum(axis=0).astype(np.float64)
        if self.sim_sum is None:
            self.sim_sum, self.sim_n, self.real_sum, self.real_n = s, n_paths * k, r, k.copy()
        else:
            self.sim_sum += s
            self.sim_n += n_paths * k  # type: ignore[operator]
            self.real_sum += r  # type: ignore[operator]
            self.real_n += k  # type: ignore[operator]


def _mean_offdiag(c: np.ndarray) -> np.ndarray:
    k = c.shape[-1]
    off = ~np.eye(k, dtype=bool)
    return np.nanmean(c[..., off], axis=-1)


def _facts(sim: np.ndarray, real: np.ndarray, max_lag: int) -> np.ndarray:
    """Stylized facts of ``B`` contexts with the same assets at once: ``sim`` (B, M, H, K)
    simulated, ``real`` (B, H, K) realised. Returns (B, 8): ``[kurt, abs_acf, leverage,
    corr]`` of the simulated paths (mean over paths), then of the real window (each path and
    window is measured on its own, so grouping contexts changes nothing)."""
    b, m, h, k = sim.shape
    lag = min(max_lag, h - 2)
    fs, fr = M.stylized_facts(sim.reshape(b * m, h, k), lag), M.stylized_facts(real, lag)
    with np.errstate(invalid="ignore"), quiet():
        s = [fs.kurtosis, np.nanmean(fs.abs_acf, axis=-1), np.nanmean(fs.leverage, axis=-1), _mean_offdiag(fs.corr)]
        s = [np.nanmean(v.reshape(b, m), axis=1) for v in s]
        r = [fr.kurtosis, np.nanmean(fr.abs_acf, axis=-1), np.nanmean(fr.leverage, axis=-1), _mean_offdiag(fr.corr)]
    return np.column_stack(s + r).astype(np.float64)


def score_facts(acc: HorizonScores, sims: list[np.ndarray], reals: list[np.ndarray], avails: list[np.ndarray], max_lag: int) -> None:
    """Stylized facts of a batch's contexts of one horizon, grouped by the stocks trading on
    every day of the window (at least 2 needed; the window at least 3 days)."""
    groups: dict[bytes, list[int]] = {}
    for i, a in enumerate(avails):
        full = a.all(axis=0)
        if full.sum() >= 2 and a.shape[0] >= 3:
            groups.setdefault(full.tobytes(), []).append(i)
    for idx in groups.values():
        full = avails[idx[0]].all(axis=0)
        sim = np.stack([sims[i][:, :, full] for i in idx])
        real = np.stack([reals[i][:, full] for i in idx])
        acc.facts.extend(_facts(sim, real, max_lag))


class quiet:
    """Silence "mean of empty slice" warnings (NaN is the intended answer)."""

    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._w.__exit__(*exc)


def score_context(acc: HorizonScores, sim: np.ndarray, real: np.ndarray, avail: np.ndarray, u: float, date: pd.Timestamp) -> None:
    """Fill ``acc`` from one context: ``sim`` (M, H, N) simulated, ``real`` (H, N) realised
    (NaN where absent), ``avail`` (H, N) the portfolio's assets each day, ``u`` the PIT's
    uniform draw."""
    n_alive = avail.sum(axis=1)
    w = np.where(avail, 1.0 / np.maximum(n_alive, 1)[:, None], 0.0)  # (H, N)
    real_d = np.sum(np.where(avail, real, 0.0) * w, axis=1)  # (H,)
    sim_d = np.sum(np.where(avail, sim, 0.0) * w, axis=2)  # (M, H)
    real_r = float(np.prod(1.0 + real_d) - 1.0)
    sim_r = np.prod(1.0 + sim_d, axis=1) - 1.0  # (M,)
    k, e = int(np.sum(sim_r < real_r)), int(np.sum(sim_r == real_r))
    pit = (k + u * (e + 1)) / (len(sim_r) + 1)  # metrics.pit_from_samples with this context's U
    q01, q05, q50, q95 = np.quantile(sim_r, [0.01, 0.05, 0.5, 0.95])
    real_vol = math.sqrt(float(np.mean(real_d**2)))
    path_vol = np.sqrt(np.mean(sim_d**2, axis=1))
    acc.rows.append({
        "n_assets": float(avail.any(axis=0).sum()), "real_return": real_r, "sim_median": float(q50), "sim_q01": float(q01),
        "sim_q05": float(q05), "sim_q95": float(q95), "pit": pit, "real_vol": real_vol, "sim_vol": float(np.median(path_vol)),
        "sim_vol_mean": float(np.mean(path_vol)),
    })  # fmt: skip
    acc.dates.append(date)
    full = avail.all(axis=0)  # stocks trading on every day of the window
    rv = np.where(full, np.sqrt(np.mean(np.where(avail, real, 0.0) ** 2, axis=0)), np.nan)
    sv = np.where(full, np.median(np.sqrt(np.mean(np.where(avail, sim, 0.0) ** 2, axis=1)), axis=0), np.nan)
    acc.stock_real.append(rv)
    acc.stock_sim.append(sv)
    acc.add_drift(sim, real, avail)


def summarise_horizon(acc: HorizonScores, h: int, every: int, reps: int, train_mean: np.ndarray) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    ctx = pd.DataFrame(acc.rows, index=pd.DatetimeIndex(acc.dates, name="context"), columns=list(CONTEXT_COLUMNS))
    n = len(ctx)
    out: dict[str, float] = {"n_contexts": float(n)}
    out["vol_spearman"] = spearman(ctx["sim_vol"].to_numpy(), ctx["real_vol"].to_numpy())
    sr, ss = np.array(acc.stock_real), np.array(acc.stock_sim)
    per_stock = [spearman(ss[:, j], sr[:, j]) for j in range(sr.shape[1]) if np.isfinite(sr[:, j]).sum() >= MIN_STOCK_CONTEXTS]
    with quiet():
        out["vol_spearman_stock"] = float(np.nanmean(per_stock)) if per_stock else math.nan
    out["vol_sim"], out["vol_real"] = float(ctx["sim_vol_mean"].mean()), float(ctx["real_vol"].mean())
    out["cal_error"] = err = float(M.calibration_error(ctx["pit"].to_numpy()))
    null = calibration_null(n, every, h, reps=reps)
    out["cal_floor"], out["cal_floor_p95"] = float(np.mean(null)), float(np.quantile(null, 0.95))
    out["cal_pvalue"] = float((1 + np.sum(null >= err)) / (reps + 1))
    out["cal_floor_iid"] = iid_floor(n)
    u = ctx["pit"].to_numpy()
    out["coverage90"] = float(np.mean((u >= 0.05) & (u <= 0.95)))
    out["exceed01"] = float(np.mean(u < 0.01))
    out["exceed05"] = float(np.mean(u < 0.05))
    facts = np.array(acc.facts) if acc.facts else np.full((1, 8), np.nan)
    with quiet():
        f = np.nanmean(facts, axis=0)
    for i, key in enumerate(("kurt", "abs_acf", "leverage", "corr")):
        out[f"{key}_sim"], out[f"{key}_real"] = float(f[i]), float(f[4 + i])
    with np.errstate(invalid="ignore", divide="ignore"):
        sim_mean = acc.sim_sum / acc.sim_n  # type: ignore[operator]
        fwd_mean = acc.real_sum / acc.real_n  # type: ignore[operator]
    out["drift_train_corr"] = pearson(sim_mean, train_mean)
    out["drift_fwd_corr"] = pearson(sim_mean, fwd_mean)
    drift = pd.DataFrame({"train_mean": train_mean, "sim_mean": sim_mean, "fwd_mean": fwd_mean})
    return out, ctx, drift

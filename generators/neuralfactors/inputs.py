"""Model inputs of NeuralFactors: scaled returns, point-in-time features, availability flags.

One day's input for asset ``i`` is ``{r_{i,u} || X_{i,u}}`` (paper section 3.5) with

* ``y = r / s_i``: the simple return divided by the asset's **train-period** standard
  deviation ``s_i`` (the targets use the same scaling, so the model works on returns of
  unit scale; every density is mapped back with the Jacobian ``-sum_i log s_i``);
* ``X``: the shared features of :mod:`factorgym.features` standardised by a
  :class:`~factorgym.features.FeatureScaler` fitted on the train rows only;
* two flags: return missing, features invalid (missing values are then fed as 0);
* ``M``: the day's market state (:func:`factorgym.features.market_state_features`, the same
  for every asset), standardised by a scaler fitted on the train rows, and its own invalid
  flag (when ``config.market_state`` is set).

The features are computed three ways that agree to floating-point precision (tested):
:func:`factorgym.features.compute_features` on a panel (training), :func:`batched_features`
on a batch of windows (prediction), and :class:`IncrementalFeatures`, which pushes one
simulated day at a time with running sums (simulation; O(1) per day and asset). The market
state is computed by one function everywhere (:func:`~factorgym.features.market_state_features`):
on the panel in training, on each window in prediction, and in simulation on the daily
statistics of the path's last ``warmup`` days, real then simulated, kept by
:class:`MarketStateTracker`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from factorgym.errors import DataValidationError
from factorgym.features import (
    FeatureConfig,
    FeatureScaler,
    MarketStateConfig,
    market_daily_stats,
    market_state_features,
)
from factorgym.generators.neuralfactors.config import NeuralFactorsConfig

__all__ = ["InputSpec", "IncrementalFeatures", "MarketStateTracker", "batched_features", "train_scale"]


def train_scale(returns: np.ndarray) -> np.ndarray:
    """Per-asset standard deviation (ddof=1) of the available train returns ``(T, N)`` -> ``(N,)``.

    Assets with fewer than 2 train returns (or zero variance) get the median of the others.
    """
    r = np.asarray(returns, dtype=np.float64)
    n = np.sum(~np.isnan(r), axis=0)
    s = np.full(r.shape[1], np.nan)
    ok = n >= 2
    s[ok] = np.nanstd(r[:, ok], axis=0, ddof=1)
    s[~(s > 0)] = np.nan
    if np.all(np.isnan(s)):
        raise DataValidationError("no asset has at least two train returns to set its scale")
    return np.where(np.isnan(s), np.nanmedian(s), s)


def _trailing_sum(x: np.ndarray, w: int, offset: int = 0) -> np.ndarray:
    """``out[..., t, :] = sum(x[..., t-offset-w+1 .. t-offset, :])`` along axis -2 (NaN if short)."""
    T = x.shape[-2]  # noqa: N806
    zero = np.zeros((*x.shape[:-2], 1, x.shape[-1]))
    c = np.concatenate([zero, np.cumsum(x, axis=-2)], axis=-2)
    out = np.full(x.shape, np.nan)
    end = np.arange(T) - offset
    ok = end - w + 1 >= 0
    out[..., ok, :] = c[..., end[ok] + 1, :] - c[..., end[ok] - w + 1, :]
    return out


def batched_features(windows: np.ndarray, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~factorgym.features.compute_features` on every day of a batch of windows.

    Parameters
    ----------
    windows : ndarray of shape (..., T, N)
        Simple returns, NaN where unavailable.
    config : FeatureConfig
        Without exogenous series.

    Returns
    -------
    X : ndarray of shape (..., T, N, K)
        NaN where invalid.
    valid : ndarray of shape (..., T, N), bool
    """
    avail = ~np.isnan(windows)
    r = np.where(avail, windows, 0.0)
    m = avail.astype(np.float64)
    cols: list[np.ndarray] = []
    valid = avail.copy()
    for w in config.vol_windows:
        ok = _trailing_sum(m, w) == w
        s1, s2 = _trailing_sum(r, w), _trailing_sum(r * r, w)
        with np.errstate(invalid="ignore"):
            var = (s2 - s1 * s1 / w) / (w - 1)
        cols.append(np.where(ok, np.sqrt(np.maximum(var, 0.0)), np.nan))
        valid &= ok
    if config.mom_windows:
        lr = np.log1p(r)
        for w in config.mom_windows:
            ok = _trailing_sum(m, w, offset=1) == w
            cols.append(np.where(ok, _trailing_sum(lr, w, offset=1), np.nan))
            valid &= ok
    if config.market:
        cnt = m.sum(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            mkt = np.where(cnt > 0, r.sum(axis=-1, keepdims=True) / cnt, np.nan)
        cols.append(np.broadcast_to(mkt, r.shape))
    X = np.stack(cols, axis=-1) if cols else np.zeros((*r.shape, 0))  # noqa: N806
    return np.where(valid[..., None], X, np.nan), valid


class IncrementalFeatures:
    """Features of ``P`` simulated paths updated one day at a time with running sums.

    Gives the same values as :func:`batched_features` / ``compute_features`` on the
    paths' histories (to float64 rounding): windowed sums are updated by adding the
    entering day and subtracting the leaving one, and recomputed exactly from the buffer
    every ``refresh_every`` days so rounding cannot accumulate.

    Parameters
    ----------
    history : ndarray of shape (P, W, N)
        Returns up to the current day (``W >= config.warmup``), NaN where unavailable.
    config : FeatureConfig
    refresh_every : int
    """

    def __init__(self, history: np.ndarray, config: FeatureConfig, refresh_every: int = 512) -> None:
        self.config = config
        self.L = config.warmup
        h = np.asarray(history, dtype=np.float64)
        if h.ndim != 3 or h.shape[1] < self.L:
            raise DataValidationError(f"history must be (P, W>={self.L}, N), got {h.shape}")
        self.refresh_every = refresh_every
        P, _, N = h.shape  # noqa: N806
        self.buf = np.zeros((P, self.L, N))  # filled returns, ring buffer
        self.lbuf = np.zeros((P, self.L, N))  # log1p of filled returns
        self.avail = np.zeros((P, self.L, N))  # 1.0 where available
        self.pos = self.L - 1  # slot of the newest day
        self.since_refresh = 0
        self.reset(np.arange(P), h)

    @property
    def n_paths(self) -> int:
        """Number of paths ``P``."""
        return int(self.buf.shape[0])

    def reset(self, idx: np.ndarray, history: np.ndarray) -> None:
        """Restart paths ``idx`` ``(k,)`` from ``history`` ``(k, W, N)``; the ring is realigned."""
        h = np.asarray(history, dtype=np.float64)[:, -self.L :]
        # chronological day c (0 = oldest) lives in slot (pos + 1 + c) % L
        order = (self.pos + 1 + np.arange(self.L)) % self.L
        a = ~np.isnan(h)
        r = np.where(a, h, 0.0)
        self.buf[idx[:, None], order[None, :]] = r
        self.lbuf[idx[:, None], order[None, :]] = np.log1p(r)
        self.avail[idx[:, None], order[None, :]] = a
        self._refresh()

    def _chrono(self, arr: np.ndarray, days: int, offset: int = 0) -> np.ndarray:
        """The ``days`` days ending ``offset`` days before the newest, ``(P, days, N)``."""
        slots = (self.pos - offset - np.arange(days)[::-1]) % self.L
        return arr[:, slots]

    def _refresh(self) -> None:
        """Recompute every running sum exactly from the ring buffer."""
        cfg = self.config
        self.vol = {
            w: [self._chrono(self.buf, w).sum(1), (self._chrono(self.buf, w) ** 2).sum(1), self._chrono(self.avail, w).sum(1)]
            for w in cfg.vol_windows
        }
        self.mom = {w: [self._chrono(self.lbuf, w, 1).sum(1), self._chrono(self.avail, w, 1).sum(1)] for w in cfg.mom_windows}
        self.since_refresh = 0

    def push(self, r: np.ndarray) -> None:
        """Append one day ``(P, N)`` of returns (NaN = unavailable)."""
        a = ~np.isnan(r)
        rf = np.where(a, r, 0.0)
        prev = self.pos
        new = (self.pos + 1) % self.L
        for w, (s1, s2, n) in self.vol.items():  # window t-w+1..t: drop t-w
            old = (new - w) % self.L
            s1 += rf - self.buf[:, old]
            s2 += rf * rf - self.buf[:, old] ** 2
            n += a - self.avail[:, old]
        for w, (sl, n) in self.mom.items():  # window t-w..t-1: add t-1, drop t-1-w
            old = (prev - w) % self.L
            sl += self.lbuf[:, prev] - self.lbuf[:, old]
            n += self.avail[:, prev] - self.avail[:, old]
        self.buf[:, new] = rf
        self.lbuf[:, new] = np.log1p(rf)
        self.avail[:, new] = a
        self.pos = new
        self.since_refresh += 1
        if self.since_refresh >= self.refresh_every:
            self._refresh()

    def features(self) -> tuple[np.ndarray, np.ndarray]:
        """Features ``(P, N, K)`` (NaN where invalid) and validity ``(P, N)`` of the newest day."""
        cfg = self.config
        cols = []
        valid = self.avail[:, self.pos] > 0
        for w, (s1, s2, n) in self.vol.items():
            ok = n > w - 0.5
            var = (s2 - s1 * s1 / w) / (w - 1)
            cols.append(np.sqrt(np.maximum(var, 0.0)))
            valid = valid & ok
        for w, (sl, n) in self.mom.items():
            cols.append(sl.copy())
            valid = valid & (n > w - 0.5)
        if cfg.market:
            a = self.avail[:, self.pos]
            cnt = a.sum(-1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                mkt = np.where(cnt > 0, self.buf[:, self.pos].sum(-1, keepdims=True) / cnt, np.nan)
            cols.append(np.broadcast_to(mkt, a.shape))
        X = np.stack(cols, axis=-1)  # noqa: N806
        return np.where(valid[..., None], X, np.nan), valid


class MarketStateTracker:
    """The market state of ``P`` paths, pushed one day at a time.

    Keeps the daily statistics (:func:`~factorgym.features.market_daily_stats`) of each path's
    last ``config.warmup`` days and evaluates :func:`~factorgym.features.market_state_features`
    on them: the same function on the same days as for a real panel.

    Parameters
    ----------
    history : ndarray of shape (P, W, N)
        Returns up to the current day (``W >= config.warmup``), NaN where unavailable.
    config : MarketStateConfig
    """

    def __init__(self, history: np.ndarray, config: MarketStateConfig) -> None:
        self.config = config
        self.L = config.warmup
        h = np.asarray(history, dtype=np.float64)
        if h.ndim != 3 or h.shape[1] < self.L:
            raise DataValidationError(f"history must be (P, W>={self.L}, N), got {h.shape}")
        self.stats = market_daily_stats(h[:, -self.L :])  # (P, L, 2), oldest first

    def reset(self, idx: np.ndarray, history: np.ndarray) -> None:
        """Restart paths ``idx`` ``(k,)`` from ``history`` ``(k, W, N)``."""
        self.stats[idx] = market_daily_stats(np.asarray(history, dtype=np.float64)[:, -self.L :])

    def push(self, r: np.ndarray) -> None:
        """Append one day ``(P, N)`` of returns (NaN = unavailable)."""
        self.stats[:, :-1] = self.stats[:, 1:]
        self.stats[:, -1] = market_daily_stats(r[:, None, :])[:, 0]

    def features(self) -> tuple[np.ndarray, np.ndarray]:
        """Market state ``(P, K)`` (NaN where invalid) and validity ``(P,)`` of the newest day."""
        M, valid = market_state_features(None, self.config, stats=self.stats)  # type: ignore[arg-type]  # noqa: N806
        return M[:, -1], valid[:, -1]


@dataclass
class InputSpec:
    """Everything that maps returns to model inputs (saved with the model).

    Attributes
    ----------
    config : NeuralFactorsConfig
    scale : ndarray of shape (N,)
        Train-period standard deviation ``s_i`` of each asset's simple returns.
    feature_scaler : FeatureScaler or None
        Fitted on train rows (``None`` when ``config.use_features`` is False).
    market_scaler : FeatureScaler or None
        Fitted on the train days' market state (``None`` when ``config.market_state`` is None).
    """

    config: NeuralFactorsConfig
    scale: np.ndarray
    feature_scaler: FeatureScaler | None
    market_scaler: FeatureScaler | None = None

    def assemble(
        self,
        returns: np.ndarray,
        X: np.ndarray | None,  # noqa: N803
        valid: np.ndarray | None,
        M: np.ndarray | None = None,  # noqa: N803
        m_valid: np.ndarray | None = None,
    ) -> np.ndarray:
        """Model inputs ``(..., N, D)`` float32 from returns ``(..., N)``, features ``(..., N, K)``
        and the market state ``(..., K_m)`` with its validity ``(...)``."""
        miss = np.isnan(returns)
        y = np.where(miss, 0.0, returns) / self.scale
        parts = [y[..., None], miss[..., None].astype(np.float64)]
        if self.config.use_features:
            assert X is not None and valid is not None and self.feature_scaler is not None
            xs = np.where(valid[..., None], self.feature_scaler.transform(np.nan_to_num(X)), 0.0)
            parts += [xs, (~valid)[..., None].astype(np.float64)]
        if self.config.market_state is not None:
            assert M is not None and m_valid is not None and self.market_scaler is not None
            ms = np.where(m_valid[..., None], self.market_scaler.transform(np.nan_to_num(M)), 0.0)  # (..., K_m)
            ms = np.concatenate([ms, (~m_valid)[..., None].astype(np.float64)], axis=-1)
            parts.append(np.broadcast_to(ms[..., None, :], (*returns.shape, ms.shape[-1])))
        return np.concatenate(parts, axis=-1).astype(np.float32)

    def market_inputs(self, windows: np.ndarray, n_days: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Market state ``(..., n_days, K_m)`` and validity of the last ``n_days`` days of ``windows`` ``(..., W, N)``."""
        ms = self.config.market_state
        if ms is None:
            return None, None
        W = windows.shape[-2]  # noqa: N806
        start = max(0, W - n_days - ms.warmup + 1)
        M, ok = market_state_features(windows[..., start:, :], ms)  # noqa: N806
        return M[..., -n_days:, :], ok[..., -n_days:]

    def window_inputs(self, windows: np.ndarray, n_days: int) -> np.ndarray:
        """Inputs of the last ``n_days`` days of windows ``(..., W, N)`` -> ``(..., n_days, N, D)``."""
        W = windows.shape[-2]  # noqa: N806
        M, m_ok = self.market_inputs(windows, n_days)  # noqa: N806
        if self.config.use_features:
            start = max(0, W - n_days - self.config.features.warmup + 1)
            X, valid = batched_features(windows[..., start:, :], self.config.features)  # noqa: N806
            return self.assemble(windows[..., W - n_days :, :], X[..., -n_days:, :, :], valid[..., -n_days:, :], M, m_ok)
        return self.assemble(windows[..., W - n_days :, :], None, None, M, m_ok)

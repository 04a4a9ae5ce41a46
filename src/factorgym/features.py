"""Point-in-time per-asset features computed from return history only.

Every feature of day ``t`` uses returns of days ``<= t`` and nothing later. The same
definitions are computed two ways that agree to floating-point precision (tested):

* :func:`compute_features` over a whole :class:`~factorgym.data.ReturnPanel` (vectorised,
  for training and evaluation on real data);
* :func:`window_features` on a trailing window of returns, and :class:`RollingFeatures`,
  which keeps that window for many simulated paths at once and pushes one day at a time,
  so generators can recompute features from their own simulated returns.

Features (per asset ``i``, day ``t``), in this order:

``vol_w``   standard deviation (ddof=1) of the last ``w`` simple returns, for ``w`` in
            ``vol_windows``;
``mom_w``   sum of log returns over days ``t-w .. t-1`` (the last day skipped), for ``w`` in
            ``mom_windows``;
``mkt``     equal-weight mean return of the available assets on day ``t``;
``exog:c``  the exogenous series ``c`` on day ``t`` (real data only; not simulated).

A feature is *valid* only when the asset traded on every day its windows cover; invalid
cells are ``NaN``. The raw lookback window of returns that sequence models read is not a
feature here: models take it from the returns directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from factorgym.data import ReturnPanel
from factorgym.errors import DataValidationError

__all__ = [
    "FeatureConfig",
    "FeatureScaler",
    "MarketStateConfig",
    "RollingFeatures",
    "compute_features",
    "market_daily_stats",
    "market_state_features",
    "window_features",
]


@dataclass(frozen=True)
class FeatureConfig:
    """Which point-in-time features to compute (see the module docstring)."""

    vol_windows: tuple[int, ...] = (21, 63)
    mom_windows: tuple[int, ...] = (21, 126, 252)
    market: bool = True
    exog: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for w in (*self.vol_windows, *self.mom_windows):
            if int(w) < 2:
                raise DataValidationError(f"feature windows must be >= 2 days, got {w}")

    @property
    def warmup(self) -> int:
        """Days of history a feature needs: the trailing window length of the longest one."""
        need = [1]
        need += [int(w) for w in self.vol_windows]
        need += [int(w) + 1 for w in self.mom_windows]
        return max(need)

    @property
    def names(self) -> list[str]:
        """Feature names in column order."""
        out = [f"vol_{w}" for w in self.vol_windows] + [f"mom_{w}" for w in self.mom_windows]
        if self.market:
            out.append("mkt")
        out += [f"exog:{c}" for c in self.exog]
        return out

    @property
    def n_features(self) -> int:
        """Number of features ``K``."""
        return len(self.names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (saved in checkpoints)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _trailing_sum(x: np.ndarray, w: int, offset: int = 0) -> np.ndarray:
    """``out[t] = sum(x[t-offset-w+1 .. t-offset])`` along axis 0; NaN where not enough rows."""
    T = x.shape[0]
    c = np.concatenate([np.zeros((1, *x.shape[1:])), np.cumsum(x, axis=0)], axis=0)
    out = np.full(x.shape, np.nan)
    end = np.arange(T) - offset  # inclusive end row
    ok = end - w + 1 >= 0
    out[ok] = c[end[ok] + 1] - c[end[ok] - w + 1]
    return out


def compute_features(
    panel: ReturnPanel, config: FeatureConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Features of every asset on every day of ``panel``.

    Returns
    -------
    X : ndarray of shape (T, N, K)
        Features in :attr:`FeatureConfig.names` order; NaN where invalid.
    valid : ndarray of shape (T, N), bool
        True where every feature of the cell is defined (full history available).
    """
    cfg = config or FeatureConfig()
    r = panel.filled(0.0)
    m = panel.mask.astype(np.float64)
    lr = np.log1p(r)
    T, N = r.shape
    cols: list[np.ndarray] = []
    valid = panel.mask.copy()
    for w in cfg.vol_windows:
        n_ok = _trailing_sum(m, w)
        s1 = _trailing_sum(r, w)
        s2 = _trailing_sum(r * r, w)
        with np.errstate(invalid="ignore"):
            var = (s2 - s1 * s1 / w) / (w - 1)
        v = np.sqrt(np.maximum(var, 0.0))
        ok = n_ok == w
        cols.append(np.where(ok, v, np.nan))
        valid &= ok
    for w in cfg.mom_windows:
        n_ok = _trailing_sum(m, w, offset=1)
        s = _trailing_sum(lr, w, offset=1)
        ok = n_ok == w
        cols.append(np.where(ok, s, np.nan))
        valid &= ok
    if cfg.market:
        cnt = m.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            mkt = np.where(cnt > 0, r.sum(axis=1, keepdims=True) / cnt, np.nan)
        cols.append(np.broadcast_to(mkt, (T, N)))
    if cfg.exog:
        if panel.exog is None:
            raise DataValidationError(f"features ask for exogenous series {cfg.exog} but {panel.name} has none")
        missing = [c for c in cfg.exog if c not in panel.exog.columns]
        if missing:
            raise DataValidationError(f"exogenous series not in {panel.name}: {', '.join(missing)}")
        for c in cfg.exog:
            cols.append(np.broadcast_to(panel.exog[c].to_numpy(dtype=np.float64)[:, None], (T, N)))
    X = np.stack(cols, axis=-1) if cols else np.zeros((T, N, 0))
    X = np.where(valid[..., None], X, np.nan)
    return X, valid


def window_features(
    window: np.ndarray,
    config: FeatureConfig | None = None,
    window_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Features on the **last** day of a trailing window of simple returns.

    Parameters
    ----------
    window : ndarray of shape (..., W, N)
        Returns of the last ``W >= config.warmup`` days, oldest first (NaN or masked cells
        are unavailable).
    config : FeatureConfig
        Must not request exogenous series (they are not simulated).
    window_mask : ndarray of shape (..., W, N), bool, optional

    Returns
    -------
    ndarray of shape (..., N, K)
        Every feature of an asset is NaN unless the asset traded on the last day and on
        every day any of its windows covers (the ``valid`` mask of :func:`compute_features`).
    """
    cfg = config or FeatureConfig()
    if cfg.exog:
        raise DataValidationError("window_features cannot compute exogenous features on simulated paths")
    W = window.shape[-2]
    if W < cfg.warmup:
        raise DataValidationError(f"window of {W} days is shorter than the feature warm-up {cfg.warmup}")
    avail = ~np.isnan(window) if window_mask is None else (window_mask & ~np.isnan(window))
    r = np.where(avail, window, 0.0)
    cols = []
    valid = avail[..., -1, :].copy()  # as in compute_features: a cell is valid only if every feature is
    for w in cfg.vol_windows:
        x = r[..., W - w :, :]
        ok = avail[..., W - w :, :].all(axis=-2)
        cols.append(x.std(axis=-2, ddof=1))
        valid &= ok
    for w in cfg.mom_windows:
        x = np.log1p(r[..., W - 1 - w : W - 1, :])
        ok = avail[..., W - 1 - w : W - 1, :].all(axis=-2)
        cols.append(x.sum(axis=-2))
        valid &= ok
    if cfg.market:
        last = r[..., -1, :]
        cnt = avail[..., -1, :].sum(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            mkt = np.where(cnt > 0, last.sum(axis=-1, keepdims=True) / cnt, np.nan)
        cols.append(np.broadcast_to(mkt, last.shape))
    X = np.stack(cols, axis=-1) if cols else np.zeros((*window.shape[:-2], window.shape[-1], 0))
    return np.where(valid[..., None], X, np.nan)


class RollingFeatures:
    """A trailing return buffer for ``P`` simulated paths that is pushed one day at a time.

    Parameters
    ----------
    history : ndarray of shape (W, N) or (P, W, N)
        Real (or simulated) returns up to and including the current day, oldest first.
        Only the last ``length`` days are kept.
    config : FeatureConfig
    length : int, optional
        Buffer length; at least ``config.warmup`` and the lookback a model needs.
    n_paths : int, optional
        Broadcast a 2-D ``history`` to this many paths.

    Attributes
    ----------
    window : ndarray of shape (P, length, N)
        The buffer (read it, do not write it).
    """

    def __init__(
        self,
        history: np.ndarray,
        config: FeatureConfig | None = None,
        length: int | None = None,
        n_paths: int | None = None,
    ) -> None:
        self.config = config or FeatureConfig()
        length = max(self.config.warmup, int(length or 0))
        h = np.asarray(history, dtype=np.float64)
        if h.ndim == 2:
            h = np.broadcast_to(h, (n_paths or 1, *h.shape))
        if h.shape[-2] < length:
            raise DataValidationError(f"history of {h.shape[-2]} days is shorter than the {length} days needed")
        self.length = length
        self.window = np.array(h[:, -length:, :], dtype=np.float64)

    @property
    def n_paths(self) -> int:
        """Number of paths ``P``."""
        return int(self.window.shape[0])

    def push(self, returns: np.ndarray) -> None:
        """Append one day of returns ``(P, N)``, dropping the oldest day."""
        r = np.asarray(returns, dtype=np.float64)
        if r.shape != (self.window.shape[0], self.window.shape[2]):
            raise DataValidationError(f"pushed returns have shape {r.shape}, expected {(self.window.shape[0], self.window.shape[2])}")
        self.window[:, :-1] = self.window[:, 1:]
        self.window[:, -1] = r

    def features(self) -> np.ndarray:
        """Features of the current (last) day, shape ``(P, N, K)``."""
        return window_features(self.window[:, -self.config.warmup :, :], self.config)

    def lookback(self, lookback: int) -> np.ndarray:
        """The last ``lookback`` days of returns, shape ``(P, lookback, N)``."""
        return self.window[:, -lookback:, :]


class FeatureScaler:
    """Per-feature standardisation fitted on the training split only.

    ``fit`` computes the mean and standard deviation of each feature over the valid cells
    it is given (pass the train rows); ``transform`` applies them anywhere.

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (K,)
    """

    def fit(self, X: np.ndarray, valid: np.ndarray) -> FeatureScaler:
        """Fit on features ``X`` ``(T, N, K)`` where ``valid`` ``(T, N)`` is True."""
        if not valid.any():
            raise DataValidationError("no valid feature rows to fit the scaler on (history too short?)")
        flat = X[valid]
        self.mean_ = flat.mean(axis=0)
        sd = flat.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardise ``X`` of shape ``(..., K)``."""
        return (X - self.mean_) / self.scale_

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-serialisable form (saved in checkpoints)."""
        return {"mean": self.mean_.tolist(), "scale": self.scale_.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> FeatureScaler:
        """Inverse of :meth:`to_dict`."""
        s = cls()
        s.mean_ = np.asarray(d["mean"], dtype=np.float64)
        s.scale_ = np.asarray(d["scale"], dtype=np.float64)
        return s


# ---------------------------------------------------------------------- market state
@dataclass(frozen=True)
class MarketStateConfig:
    """Point-in-time market-state features of day ``t``, shared by every asset.

    All come from the returns alone, through two daily statistics of the cross-section
    (:func:`market_daily_stats`): the equal-weight mean return ``m_u`` of the available
    assets and their cross-sectional standard deviation ``d_u`` (ddof=0, at least 2 assets).
    In this order:

    ``mvol_w``  log of the root mean square of ``m`` over days ``t-w+1 .. t`` (realised
                volatility of the equal-weight portfolio), for ``w`` in ``vol_windows``;
    ``mdd_w``   drawdown of the equal-weight index from its running peak over the last
                ``w`` days: ``log P_t - max_{t-w < u <= t} log P_u`` with ``log P`` the
                cumulated ``log(1 + m)`` (``<= 0``; 0 disables);
    ``disp_w``  log of the mean of ``d`` over the last ``w`` days, for ``w`` in
                ``dispersion_windows``.

    A day's market state is valid when ``m`` (and ``d`` for the dispersion) is defined on
    every day its windows cover.
    """

    vol_windows: tuple[int, ...] = (5, 21, 63)
    drawdown_window: int = 126
    dispersion_windows: tuple[int, ...] = (5, 21)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vol_windows", tuple(int(w) for w in self.vol_windows))
        object.__setattr__(self, "dispersion_windows", tuple(int(w) for w in self.dispersion_windows))
        for w in (*self.vol_windows, *self.dispersion_windows):
            if w < 1:
                raise DataValidationError(f"market-state windows must be >= 1 day, got {w}")
        if int(self.drawdown_window) < 0 or int(self.drawdown_window) == 1:
            raise DataValidationError(f"drawdown_window must be 0 (off) or >= 2 days, got {self.drawdown_window}")
        if not self.names:
            raise DataValidationError("MarketStateConfig selects no feature; use None to disable the market state")

    @property
    def warmup(self) -> int:
        """Days of history the market state of one day needs."""
        return max([1, *self.vol_windows, int(self.drawdown_window), *self.dispersion_windows])

    @property
    def names(self) -> list[str]:
        """Feature names in column order."""
        out = [f"mvol_{w}" for w in self.vol_windows]
        if self.drawdown_window:
            out.append(f"mdd_{self.drawdown_window}")
        return out + [f"disp_{w}" for w in self.dispersion_windows]

    @property
    def n_features(self) -> int:
        """Number of market-state features."""
        return len(self.names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (saved in checkpoints)."""
        return {"vol_windows": list(self.vol_windows), "drawdown_window": int(self.drawdown_window),
                "dispersion_windows": list(self.dispersion_windows)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MarketStateConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def market_daily_stats(returns: np.ndarray) -> np.ndarray:
    """Equal-weight mean and cross-sectional std (ddof=0) of each day: ``(..., T, N)`` -> ``(..., T, 2)``.

    NaN cells are unavailable; the mean is NaN on a day without assets, the std on a day
    with fewer than 2.
    """
    r = np.asarray(returns, dtype=np.float64)
    avail = ~np.isnan(r)
    x = np.where(avail, r, 0.0)
    cnt = avail.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = x.sum(axis=-1) / cnt
        var = np.where(avail, (x - mean[..., None]) ** 2, 0.0).sum(axis=-1) / cnt
    mean = np.where(cnt > 0, mean, np.nan)
    sd = np.where(cnt > 1, np.sqrt(np.maximum(var, 0.0)), np.nan)
    return np.stack([mean, sd], axis=-1)


def _trailing_mean_last(x: np.ndarray, w: int) -> np.ndarray:
    """Trailing mean of ``x`` ``(..., T)`` over ``w`` days at every day (NaN where short or undefined)."""
    T = x.shape[-1]
    ok = ~np.isnan(x)
    xf = np.where(ok, x, 0.0)
    zero = np.zeros((*x.shape[:-1], 1))
    c = np.concatenate([zero, np.cumsum(xf, axis=-1)], axis=-1)
    n = np.concatenate([zero, np.cumsum(ok, axis=-1)], axis=-1)
    out = np.full(x.shape, np.nan)
    if T >= w:
        s = c[..., w:] - c[..., :-w]
        full = (n[..., w:] - n[..., :-w]) == w
        out[..., w - 1 :] = np.where(full, s / w, np.nan)
    return out


def market_state_features(
    returns: np.ndarray, config: MarketStateConfig, *, stats: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Market-state features of every day of ``returns`` ``(..., T, N)`` (see :class:`MarketStateConfig`).

    Day ``t`` uses rows ``<= t`` only. ``stats`` ``(..., T, 2)``: the output of
    :func:`market_daily_stats` if already computed (``returns`` is then ignored and may be
    None); a simulator keeps them for its last ``config.warmup`` days and calls this on them.

    Returns
    -------
    M : ndarray of shape (..., T, K)
        NaN where invalid.
    valid : ndarray of shape (..., T), bool
    """
    st = market_daily_stats(returns) if stats is None else np.asarray(stats, dtype=np.float64)
    m, d = st[..., 0], st[..., 1]
    cols: list[np.ndarray] = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for w in config.vol_windows:
            cols.append(0.5 * np.log(_trailing_mean_last(m * m, w) + 1e-12))
        w = int(config.drawdown_window)
        if w:
            lp = np.cumsum(np.log1p(np.where(np.isnan(m), 0.0, m)), axis=-1)  # (..., T)
            T = lp.shape[-1]
            dd = np.full(lp.shape, np.nan)
            if T >= w:
                peak = np.lib.stride_tricks.sliding_window_view(lp, w, axis=-1).max(axis=-1)  # (..., T-w+1)
                dd[..., w - 1 :] = lp[..., w - 1 :] - peak
            ok = _trailing_mean_last(np.where(np.isnan(m), np.nan, 0.0), w)  # 0 where all w days defined
            cols.append(np.where(np.isnan(ok), np.nan, dd))
        for w in config.dispersion_windows:
            cols.append(np.log(_trailing_mean_last(d, w) + 1e-12))
    M = np.stack(cols, axis=-1)
    valid = ~np.isnan(M).any(axis=-1)
    return np.where(valid[..., None], M, np.nan), valid

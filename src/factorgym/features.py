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

__all__ = ["FeatureConfig", "FeatureScaler", "RollingFeatures", "compute_features", "window_features"]


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

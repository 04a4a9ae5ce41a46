"""Per-asset factor vectors, day-level context and return scales, from trailing windows only.

One implementation serves training (sliding windows over a panel) and prediction /
simulation (the generator's own windows), so the two agree exactly.

For the last day ``t`` of a window ``(..., W, N)`` of simple returns:

Asset factors (one column each, then standardised **cross-sectionally** over the present
assets of the day and clipped at ``+-winsor``, as in Gao, He & He)
    ``log vol_w`` for each ``features.vol_windows`` (log of the shared ``vol_w`` feature),
    ``mom_w`` for each ``features.mom_windows`` (shared feature),
    ``ret_1``   the last day's log return,
    ``beta``    the beta of the asset's log returns on the equal-weight market over
                ``stat_window`` days,
    ``pc_k``    (``n_pc > 0``) loadings on the top ``n_pc`` eigenvectors of the trailing
                ``stat_window``-day correlation matrix of the present assets, sign-fixed so
                the loadings sum to >= 0 (training additionally flips signs at random).

Day context (``market_context``; shared by every token of the day, so equivariance holds)
    the cross-sectional mean of each ``log vol_w``, ``mom_w`` and ``ret_1`` column before
    standardisation, and the shared equal-weight market return ``mkt`` (when
    ``features.market``). The generator standardises these over time with train-split
    statistics.

Return scale
    ``s_t`` = trailing std (ddof=1) of log returns over ``scale_window`` days, floored at
    ``scale_floor`` (used when ``scale == "trailing"``).

An asset is *present* on ``t`` when every factor and the scale are defined (it traded on
every day its windows cover).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from factorgym.errors import DataValidationError
from factorgym.features import window_features
from factorgym.generators.diffusion.config import DiffusionConfig

__all__ = ["Factors", "factor_names", "window_factors", "panel_factors"]


@dataclass
class Factors:
    """Factor inputs of a batch of days.

    Attributes
    ----------
    assets : ndarray of shape (..., N, Ka)
        Cross-sectionally standardised and winsorised asset factors (NaN where absent).
    context : ndarray of shape (..., Kc)
        Raw day context (not yet standardised over time); ``Kc = 0`` without context.
    present : ndarray of shape (..., N), bool
    scale : ndarray of shape (..., N)
        Trailing log-return std (NaN where absent).
    """

    assets: np.ndarray
    context: np.ndarray
    present: np.ndarray
    scale: np.ndarray


def factor_names(config: DiffusionConfig) -> tuple[list[str], list[str]]:
    """Names of the asset-factor columns and of the context columns, in order."""
    fc = config.features
    base = [f"log_vol_{w}" for w in fc.vol_windows] + [f"mom_{w}" for w in fc.mom_windows] + ["ret_1"]
    assets = base + [f"beta_{config.stat_window}"] + [f"pc{k + 1}_{config.stat_window}" for k in range(config.n_pc)]
    context: list[str] = []
    if config.market_context:
        context = [f"xs_mean:{n}" for n in base] + (["mkt"] if fc.market else [])
    return assets, context


def _xs_standardise(f: np.ndarray, present: np.ndarray, clip: float) -> np.ndarray:
    """Z-score each column of ``f`` ``(..., N, K)`` over present assets, clip, NaN elsewhere."""
    w = present[..., None].astype(np.float64)  # (..., N, 1)
    n = w.sum(axis=-2, keepdims=True)  # (..., 1, 1)
    fz = np.where(present[..., None], f, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = fz.sum(axis=-2, keepdims=True) / n
        var = (((fz - mu) * w) ** 2).sum(axis=-2, keepdims=True) / n
        sd = np.sqrt(var)
        z = np.where(sd > 1e-12, (fz - mu) / np.where(sd > 1e-12, sd, 1.0), 0.0)
    z = np.clip(z, -clip, clip)
    return np.where(present[..., None], z, np.nan)


def _pc_loadings(lr: np.ndarray, ok: np.ndarray, k: int) -> np.ndarray:
    """Top-``k`` eigenvector loadings of the correlation of ``lr`` ``(..., L, N)`` -> ``(..., N, k)``.

    Assets with ``ok == False`` get zero rows/columns (so zero loadings on the top
    components); signs are fixed so each loading vector sums to >= 0.
    """
    x = np.where(ok[..., None, :], lr, 0.0)
    x = x - x.mean(axis=-2, keepdims=True)
    sd = np.sqrt((x * x).sum(axis=-2, keepdims=True))  # (..., 1, N)
    xs = np.where(sd > 1e-12, x / np.where(sd > 1e-12, sd, 1.0), 0.0)
    corr = np.swapaxes(xs, -1, -2) @ xs  # (..., N, N)
    _, vecs = np.linalg.eigh(corr)  # ascending eigenvalues
    top = vecs[..., :, ::-1][..., :, :k]  # (..., N, k)
    sign = np.where(top.sum(axis=-2, keepdims=True) < 0, -1.0, 1.0)
    return top * sign


def window_factors(window: np.ndarray, config: DiffusionConfig) -> Factors:
    """Factors of the last day of ``window`` ``(..., W, N)`` (simple returns, NaN = absent).

    Only the last ``config.min_history`` rows are read.
    """
    window = np.asarray(window, dtype=np.float64)
    L = config.min_history
    if window.ndim < 2 or window.shape[-2] < L:
        raise DataValidationError(
            f"a history window needs shape (..., W >= {L}, N), got {window.shape}"
        )
    w = window[..., -L:, :]  # (..., L, N)
    fc = config.features
    feats = window_features(w, fc)  # (..., N, Kf): vol_*, mom_*, [mkt]
    n_vol, n_mom = len(fc.vol_windows), len(fc.mom_windows)
    vol = np.log(np.maximum(feats[..., :n_vol], 1e-8))  # (..., N, n_vol)
    mom = feats[..., n_vol : n_vol + n_mom]  # (..., N, n_mom)
    avail = ~np.isnan(w)  # (..., L, N)
    lr = np.log1p(np.where(avail, w, 0.0))  # (..., L, N)
    ret1 = np.where(avail[..., -1, :], lr[..., -1, :], np.nan)[..., None]  # (..., N, 1)

    # beta on the equal-weight market over stat_window days
    sw = config.stat_window
    lr_s, av_s = lr[..., -sw:, :], avail[..., -sw:, :]  # (..., sw, N)
    ok_s = av_s.all(axis=-2)  # (..., N)
    cnt = av_s.sum(axis=-1, keepdims=True)  # (..., sw, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mkt = lr_s.sum(axis=-1, keepdims=True) / cnt  # (..., sw, 1)
    mc = mkt - mkt.mean(axis=-2, keepdims=True)
    rc = lr_s - lr_s.mean(axis=-2, keepdims=True)
    var_m = (mc * mc).sum(axis=-2)  # (..., 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = (rc * mc).sum(axis=-2) / var_m  # (..., N)
    beta = np.where(ok_s & (var_m > 1e-16), beta, np.nan)[..., None]  # (..., N, 1)

    # trailing scale of log returns
    cw = config.scale_window
    lr_c, ok_c = lr[..., -cw:, :], avail[..., -cw:, :].all(axis=-2)
    scale = np.maximum(lr_c.std(axis=-2, ddof=1), config.scale_floor)
    scale = np.where(ok_c, scale, np.nan)  # (..., N)

    cols = [vol, mom, ret1, beta]
    if config.n_pc:
        cols.append(_pc_loadings(lr_s, ok_s, config.n_pc))
    raw = np.concatenate(cols, axis=-1)  # (..., N, Ka)
    present = np.isfinite(raw).all(axis=-1) & np.isfinite(scale)  # (..., N)
    assets = _xs_standardise(raw, present, config.winsor)

    if config.market_context:
        nb = n_vol + n_mom + 1
        pw = present[..., None]
        npres = pw.sum(axis=-2)  # (..., 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ctx = np.where(pw, raw[..., :nb], 0.0).sum(axis=-2) / npres  # (..., nb)
        if fc.market:  # equal-weight simple return of the assets trading on the last day
            last = w[..., -1, :]
            n_last = avail[..., -1, :].sum(axis=-1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                mkt_t = np.where(avail[..., -1, :], last, 0.0).sum(axis=-1, keepdims=True) / n_last
            ctx = np.concatenate([ctx, mkt_t], axis=-1)
        # a day without present assets has no context
        ctx = np.where(npres > 0, ctx, np.nan)
    else:
        ctx = np.zeros((*w.shape[:-2], 0))
    return Factors(assets=assets, context=ctx, present=present, scale=np.where(present, scale, np.nan))


def panel_factors(returns: np.ndarray, config: DiffusionConfig, chunk: int = 256) -> Factors:
    """:func:`window_factors` for every day of a ``(T, N)`` return matrix.

    Days ``t < min_history - 1`` (too little history) have no present asset.
    """
    returns = np.asarray(returns, dtype=np.float64)
    T, N = returns.shape
    L = config.min_history
    _, ctx_names = factor_names(config)
    ka = len(factor_names(config)[0])
    out = Factors(
        assets=np.full((T, N, ka), np.nan),
        context=np.full((T, len(ctx_names)), np.nan),
        present=np.zeros((T, N), dtype=bool),
        scale=np.full((T, N), np.nan),
    )
    if T < L:
        return out
    views = sliding_window_view(returns, L, axis=0)  # (T - L + 1, N, L), no copy
    for s in range(0, views.shape[0], chunk):
        v = np.swapaxes(views[s : s + chunk], -1, -2)  # (c, L, N)
        f = window_factors(v, config)
        rows = slice(L - 1 + s, L - 1 + s + v.shape[0])
        out.assets[rows], out.context[rows] = f.assets, f.context
        out.present[rows], out.scale[rows] = f.present, f.scale
    return out

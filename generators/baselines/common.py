"""Shared machinery of the classical baseline generators.

Helpers (no stable API) used by the modules of :mod:`factorgym.generators.baselines`:
window validation, masked rolling covariance estimators (sample
and Ledoit-Wolf, batched over windows), per-path random streams, validation scoring and
artifact plumbing.

Shapes: ``B`` windows (or paths), ``W`` days per window, ``N`` assets, ``D`` days.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from factorgym.data import MAX_ABS_DAILY_RETURN, ReturnPanel, Split
from factorgym.errors import CheckpointError, DataValidationError, FactorGymError, NotFittedError
from factorgym.generators.baselines.pooling import average_asset_cov

__all__ = ["NotFittedError"]

#: Simulated simple returns are kept inside the range a :class:`ReturnPanel` accepts.
SIM_RETURN_FLOOR = -0.99
SIM_RETURN_CAP = MAX_ABS_DAILY_RETURN


# ---------------------------------------------------------------------------- checks
def check_fitted(obj: Any, attr: str = "assets_") -> None:
    """Raise :class:`NotFittedError` unless ``obj`` has the fitted attribute ``attr``."""
    if not hasattr(obj, attr):
        raise NotFittedError(f"this {type(obj).__name__} is not fitted yet; call fit() or load()")


def as_window(window: np.ndarray, min_history: int, n_assets: int) -> np.ndarray:
    """Validate one history window ``(W, N)`` and return its last ``min_history`` rows.

    ``NaN`` marks an unavailable cell; infinities are rejected.
    """
    w = np.asarray(window, dtype=np.float64)
    if w.ndim != 2:
        raise DataValidationError(f"a window must be 2-D (W, N); got shape {w.shape}")
    return _check_rows(w, min_history, n_assets)[-min_history:]


def as_windows(windows: np.ndarray, min_history: int, n_assets: int) -> np.ndarray:
    """Validate a batch of windows ``(B, W, N)``; returns the last ``min_history`` rows of each."""
    w = np.asarray(windows, dtype=np.float64)
    if w.ndim != 3:
        raise DataValidationError(f"windows must be 3-D (B, W, N); got shape {w.shape}")
    return _check_rows(w, min_history, n_assets)[:, -min_history:]


def _check_rows(w: np.ndarray, min_history: int, n_assets: int) -> np.ndarray:
    if w.shape[-1] != n_assets:
        raise DataValidationError(
            f"window has {w.shape[-1]} assets; the generator was fitted on {n_assets}"
        )
    if w.shape[-2] < min_history:
        raise DataValidationError(
            f"window has {w.shape[-2]} days; this generator needs at least {min_history}"
        )
    if np.isinf(w).any():
        raise DataValidationError("window contains infinite returns (use NaN for unavailable cells)")
    return w


def path_windows(window: np.ndarray, n_paths: int, min_history: int, n_assets: int) -> np.ndarray:
    """Starting windows for ``n_paths`` paths from a shared ``(W, N)`` or per-path ``(P, W, N)``."""
    w = np.asarray(window, dtype=np.float64)
    if n_paths < 1:
        raise DataValidationError("need at least one random stream (one per path)")
    if w.ndim == 2:
        return np.repeat(as_window(w, min_history, n_assets)[None], n_paths, axis=0)
    if w.ndim == 3:
        if w.shape[0] != n_paths:
            raise DataValidationError(f"{w.shape[0]} windows given for {n_paths} random streams")
        return np.array(as_windows(w, min_history, n_assets), copy=True)
    raise DataValidationError(f"window must be (W, N) or (P, W, N); got shape {w.shape}")


def check_reset(idx: np.ndarray, windows: np.ndarray, rngs: Sequence[np.random.Generator], n_paths: int) -> np.ndarray:
    """Validate :meth:`PathSimulator.reset_paths` arguments; returns ``idx`` as int array."""
    idx = np.asarray(idx, dtype=np.int64).reshape(-1)
    if len(rngs) != len(idx):
        raise DataValidationError(f"{len(idx)} paths to reset but {len(rngs)} random streams")
    if np.asarray(windows).ndim != 3 or np.asarray(windows).shape[0] != len(idx):
        raise DataValidationError(
            f"reset windows must have shape ({len(idx)}, W, N); got {np.asarray(windows).shape}"
        )
    if ((idx < 0) | (idx >= n_paths)).any():
        raise DataValidationError(f"path indices must lie in [0, {n_paths})")
    if len(np.unique(idx)) != len(idx):
        raise DataValidationError("duplicate path indices in reset_paths")
    return idx


def flat_returns(r: np.ndarray, n_assets: int) -> np.ndarray:
    """Returns ``r`` ``(..., N)`` as float rows ``(M, N)``; raises unless ``N == n_assets``."""
    r = np.asarray(r, dtype=np.float64)
    if r.shape[-1] != n_assets:
        raise DataValidationError(f"r has {r.shape[-1]} assets, expected {n_assets}")
    return r.reshape(-1, n_assets)


def availability_groups(flat: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Rows of ``flat`` ``(M, N)`` grouped by which assets are available (finite).

    Yields ``(rows, pattern)``: row indices ``(k,)`` and the availability ``(N,)`` of bools
    they share, for a density that marginalises absent assets one pattern at a time.
    """
    patterns, inverse = np.unique(np.isfinite(flat), axis=0, return_inverse=True)
    for j, pat in enumerate(patterns):
        yield np.nonzero(inverse.reshape(-1) == j)[0], pat


def rowwise_matvec(A: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``A[p] @ x[p]`` for ``A`` ``(P or 1, N, M)`` and ``x`` ``(P, M)`` -> ``(P, N)``.

    Computed elementwise so that each path's result is bit-identical whatever the number of
    paths (BLAS picks different kernels for different batch sizes).
    """
    return (A * x[:, None, :]).sum(axis=-1)


def clip_simulated(r: np.ndarray) -> tuple[np.ndarray, int]:
    """Keep simulated simple returns in ``[-0.99, 1.0]``; returns the array and the clip count."""
    bad = int(np.count_nonzero((r < SIM_RETURN_FLOOR) | (r > SIM_RETURN_CAP)))
    if bad:
        r = np.clip(r, SIM_RETURN_FLOOR, SIM_RETURN_CAP)
    return r, bad


# ---------------------------------------------------------------------------- covariances
def window_moments(
    X: np.ndarray,
    *,
    mean: str,
    cov: str,
    fallback_var: np.ndarray,
    absent: str = "independent",
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance estimated from each of ``B`` windows ``X`` ``(B, W, N)``.

    Parameters
    ----------
    X : ndarray (B, W, N)
        Returns, ``NaN`` where unavailable.
    mean : {"zero", "sample"}
        Zero mean, or each asset's mean over its available days.
    cov : {"sample", "ledoit_wolf"}
        ``"sample"``: the sample covariance (``ddof=1`` with a sample mean, the second moment
        ``X'X / W`` with a zero mean). ``"ledoit_wolf"``: scikit-learn's Ledoit-Wolf
        estimator (``(1 - d) S + d mu I``, ``S`` the ``1/W`` empirical covariance, ``mu =
        tr(S)/N``, ``d`` the Ledoit-Wolf intensity), reimplemented batched and checked
        against :class:`sklearn.covariance.LedoitWolf` in the tests.
    fallback_var : ndarray (N,)
        Variance used for an asset with fewer than 2 observations in a window (its mean is
        then 0).
    absent : {"independent", "average"}
        Correlations of such an asset: 0 (``"independent"``), or those of an "average
        asset" of the window (:func:`~factorgym.generators.baselines.pooling.average_asset_corr`: its mean correlation with the
        assets present is their mean pairwise correlation).

    Returns
    -------
    mu : ndarray (B, N)
    C : ndarray (B, N, N)

    Notes
    -----
    Complete windows give the textbook estimators exactly. With unavailable cells each
    entry uses the days on which both assets are available (pairwise-complete), the matrix
    is projected back to positive definite (eigenvalues floored at ``1e-10 * mean``), and
    the Ledoit-Wolf intensity is computed on the mean-imputed deviations. The Ledoit-Wolf
    target (mean variance) and intensity count only the assets with at least 2 observations
    in the window, so an absent asset never enters them as a zero variance: the other
    assets' estimate is the one the window would give without it.
    """
    X = np.asarray(X, dtype=np.float64)
    B, W, N = X.shape
    M = np.isfinite(X)
    complete = bool(M.all())
    X0 = np.where(M, X, 0.0)
    n_i = M.sum(axis=1)  # (B, N)
    if mean == "sample":
        mu = X0.sum(axis=1) / np.maximum(n_i, 1)
    else:
        mu = np.zeros((B, N))
    D = np.where(M, X0 - mu[:, None, :], 0.0)
    ddof = 1 if (mean == "sample" and cov == "sample") else 0
    DtD = np.matmul(D.transpose(0, 2, 1), D)
    if complete:
        S = DtD / (W - ddof)
    else:
        Mf = M.astype(np.float64)
        n_ij = np.matmul(Mf.transpose(0, 2, 1), Mf)
        S = DtD / np.maximum(n_ij - ddof, 1.0)
    few = n_i < 2
    if cov == "ledoit_wolf":
        if complete or not few.any():
            d = _lw_intensity(D, W)
            mu_tr = np.trace(S, axis1=1, axis2=2) / N
        else:  # absent assets (zero columns of D) are left out of the target and the intensity
            n_eff = np.maximum((~few).sum(axis=1), 1)
            d = _lw_intensity(np.where(few[:, None, :], 0.0, D), W, n_eff)
            mu_tr = np.where(few, 0.0, np.diagonal(S, axis1=1, axis2=2)).sum(axis=1) / n_eff
        S = (1.0 - d)[:, None, None] * S
        S[:, np.arange(N), np.arange(N)] += (d * mu_tr)[:, None]
    elif cov != "sample":
        raise DataValidationError(f"cov must be 'sample' or 'ledoit_wolf'; got {cov!r}")
    if absent not in ("independent", "average"):
        raise DataValidationError(f"absent must be 'independent' or 'average'; got {absent!r}")
    if not complete:
        if few.any():
            b, i = np.nonzero(few)
            S[b, i, :] = 0.0
            S[b, :, i] = 0.0
            S[b, i, i] = np.asarray(fallback_var, dtype=np.float64)[i]
            mu[b, i] = 0.0
        S = _psd_floor(S)
        if absent == "average" and few.any():
            S = average_asset_cov(S, ~few)
    return mu, S


def _lw_intensity(D: np.ndarray, n: int, n_assets: np.ndarray | None = None) -> np.ndarray:
    """Ledoit-Wolf shrinkage intensity of deviations ``D`` ``(B, n, N)`` -> ``(B,)``.

    Same formula as :func:`sklearn.covariance.ledoit_wolf_shrinkage` (unblocked).
    ``n_assets`` ``(B,)``: the number of assets that count in each window (default ``N``);
    the others must have all-zero columns in ``D``, which then add nothing to the sums.
    """
    B, _, N = D.shape
    if n_assets is not None:
        Nb = np.asarray(n_assets, dtype=np.float64)
        if (Nb <= 1).all():
            return np.zeros(B)
        N = np.maximum(Nb, 1.0)  # type: ignore[assignment]
    elif N == 1:
        return np.zeros(B)
    X2 = D * D
    emp_trace = X2.sum(axis=1) / n  # (B, N)
    mu = emp_trace.sum(axis=1) / N
    delta_ = (np.matmul(D.transpose(0, 2, 1), D) ** 2).sum(axis=(1, 2)) / n**2
    beta_ = np.matmul(X2.transpose(0, 2, 1), X2).sum(axis=(1, 2))
    beta = (beta_ / n - delta_) / (N * n)
    delta = (delta_ - 2.0 * mu * emp_trace.sum(axis=1) + N * mu**2) / N
    beta = np.minimum(beta, delta)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(beta == 0, 0.0, beta / delta)
    if n_assets is not None:
        out = np.where(Nb > 1, out, 0.0)
    return out


def _psd_floor(S: np.ndarray, rel: float = 1e-10) -> np.ndarray:
    """Project symmetric matrices ``(B, N, N)`` to positive definite by flooring eigenvalues."""
    S = 0.5 * (S + S.transpose(0, 2, 1))
    lam, U = np.linalg.eigh(S)
    floor = rel * np.maximum(np.abs(lam).mean(axis=1, keepdims=True), 1e-300)
    if (lam >= floor).all():
        return S
    lam = np.maximum(lam, floor)
    return np.matmul(U * lam[:, None, :], U.transpose(0, 2, 1))


def safe_cholesky(C: np.ndarray) -> np.ndarray:
    """Cholesky factors of ``(..., N, N)`` matrices, adding a tiny ridge only if needed."""
    try:
        return np.linalg.cholesky(C)
    except np.linalg.LinAlgError:
        N = C.shape[-1]
        scale = np.trace(C, axis1=-2, axis2=-1)[..., None, None] / N
        for jitter in (1e-12, 1e-10, 1e-8, 1e-6):
            try:
                return np.linalg.cholesky(C + jitter * scale * np.eye(N))
            except np.linalg.LinAlgError:
                continue
        raise FactorGymError("covariance matrix is not positive definite") from None


# ---------------------------------------------------------------------------- random streams
class PathStreams:
    """Random draws for ``P`` paths, each path drawing blocks from its own generator.

    Path ``p``'s draws depend only on ``rngs[p]`` (always refilled ``block`` draws at a
    time), so a path reproduces exactly alone or among any number of other paths.

    Parameters
    ----------
    rngs : sequence of numpy.random.Generator, length P
    draw : callable ``(rng, block) -> tuple of arrays``, each with leading dimension ``block``
    block : int
    """

    def __init__(
        self,
        rngs: Sequence[np.random.Generator],
        draw: Callable[[np.random.Generator, int], tuple[np.ndarray, ...]],
        block: int = 64,
    ) -> None:
        for r in rngs:
            if not isinstance(r, np.random.Generator):
                raise DataValidationError(
                    f"rngs must be numpy.random.Generator objects (one per path); got {type(r).__name__}"
                )
        self._draw = draw
        self._block = int(block)
        self._rngs = list(rngs)
        first = [draw(r, self._block) for r in self._rngs]
        self._bufs = [np.stack([f[j] for f in first]) for j in range(len(first[0]))]
        self._cur = np.zeros(len(self._rngs), dtype=np.int64)
        self._rows = np.arange(len(self._rngs))

    def _refill(self, p: int) -> None:
        fresh = self._draw(self._rngs[p], self._block)
        for buf, f in zip(self._bufs, fresh, strict=True):
            buf[p] = f
        self._cur[p] = 0

    def next(self) -> tuple[np.ndarray, ...]:
        """One draw per path: a tuple of arrays with leading dimension ``P``."""
        for p in np.nonzero(self._cur >= self._block)[0]:
            self._refill(int(p))
        out = tuple(b[self._rows, self._cur] for b in self._bufs)
        self._cur += 1
        return out

    def reset(self, idx: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        """Give paths ``idx`` new generators (their pending draws are discarded)."""
        for p, r in zip(idx, rngs, strict=True):
            if not isinstance(r, np.random.Generator):
                raise DataValidationError("rngs must be numpy.random.Generator objects")
            self._rngs[int(p)] = r
            self._refill(int(p))


# ---------------------------------------------------------------------------- evaluation
def split_rows(panel: ReturnPanel, split: Split) -> tuple[tuple[int, int], tuple[int, int]]:
    """Row ranges of the train and validation parts; raises if train is empty."""
    b = split.bounds(panel.dates)
    if b["train"][1] <= b["train"][0]:
        raise DataValidationError(
            f"the train part of {panel.name} is empty (train_end={split.train_end}, "
            f"first date {panel.dates[0].date()})"
        )
    return b["train"], b["val"]


def windows_before(returns: np.ndarray, days: np.ndarray, length: int) -> np.ndarray:
    """History windows ``(D, length, N)`` ending the day before each of ``days`` (a view)."""
    view = sliding_window_view(returns, length, axis=0)  # (T-length+1, N, length)
    return view[np.asarray(days) - length].transpose(0, 2, 1)


def per_asset_nll(logp: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``-log p / N_t`` per day from joint log densities ``(D,)`` and returns ``(D, N)``."""
    n = np.isfinite(r).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, -logp / np.maximum(n, 1), np.nan)


def require_val_rows(val: tuple[int, int], what: str) -> None:
    """Raise a clear error when a validation-based choice has no validation days."""
    if val[1] <= val[0]:
        raise DataValidationError(
            f"choosing {what} on validation needs validation days, and the split's validation "
            "part is empty; pass a fixed value instead"
        )


# ---------------------------------------------------------------------------- artifacts
def config_hash(obj: Any) -> str:
    """A short stable hash of a JSON-serialisable object (for checkpoint keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def data_fingerprint(x: np.ndarray) -> str:
    """A short hash of an array's bytes (NaN-safe)."""
    a = np.ascontiguousarray(np.nan_to_num(np.asarray(x, dtype=np.float64), nan=-9.0e9))
    return hashlib.sha256(a.tobytes()).hexdigest()[:16]


def load_checked(
    path: str | Path, kind: str | tuple[str, ...], required_arrays: Sequence[str], required_meta: Sequence[str]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read an artifact of ``kind`` and check it holds the named arrays and meta keys."""
    from factorgym.artifacts import read_artifact

    kinds = (kind,) if isinstance(kind, str) else kind
    meta, arrays, _ = read_artifact(path)
    if meta.get("kind") not in kinds:
        raise CheckpointError(f"{path} holds a {meta.get('kind')!r}, expected {' or '.join(map(repr, kinds))}")
    missing = [a for a in required_arrays if a not in arrays] + [m for m in required_meta if m not in meta]
    if missing:
        raise CheckpointError(f"{path} is incomplete: missing {', '.join(missing)}")
    return meta, arrays


def check_shape(path: str | Path, name: str, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Raise :class:`CheckpointError` unless ``a`` has ``shape`` and finite values."""
    if a.shape != shape:
        raise CheckpointError(f"{path}: array {name!r} has shape {a.shape}, expected {shape}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise CheckpointError(f"{path}: array {name!r} has non-finite values")
    return a


def progress_printer(enabled: bool) -> Callable[[str], None]:
    """A one-line status printer on stderr (rich) when ``enabled``, else a no-op."""
    if not enabled:
        return lambda msg: None
    from rich.console import Console

    console = Console(stderr=True)
    return lambda msg: console.print(f"[dim]{msg}[/dim]")

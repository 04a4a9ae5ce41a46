"""The Model Confidence Set (Hansen, Lunde & Nason 2011) of models scored on the same days,
by :class:`arch.bootstrap.MCS`: :func:`model_confidence_set`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from factorgym.errors import DataValidationError
from factorgym.metrics._common import check_level

__all__ = ["model_confidence_set"]


def model_confidence_set(
    losses: ArrayLike | pd.DataFrame,
    *,
    size: float = 0.10,
    reps: int = 1000,
    block_size: int | None = None,
    method: Literal["R", "max"] = "R",
    seed: int | np.random.SeedSequence | np.random.Generator = 0,
    names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Model Confidence Set (Hansen, Lunde & Nason 2011) of models scored on the same days,
    by :class:`arch.bootstrap.MCS` (stationary bootstrap).

    The set contains the best model (lowest expected loss) with probability ``1 - size``;
    a model's MCS p-value is the largest ``size`` at which it is still in the set. Models
    with identical losses are scored once and share the result.

    Parameters
    ----------
    losses : array_like of shape (T, K) or DataFrame
        Per-period losses (lower is better), e.g. negative returns.
    size : float
        ``0.10`` for the 90% set.
    reps : int
        Bootstrap resamples.
    block_size : int, optional
        Mean block length (default :class:`arch.bootstrap.MCS`'s ``sqrt(T)``).
    method : {"R", "max"}
        The elimination statistic (``"R"``: range of pairwise t-statistics).
    seed : int, SeedSequence or Generator
    names : sequence of str, optional
        Model labels (default: the DataFrame's columns or ``0..K-1``).

    Returns
    -------
    DataFrame
        Index: model (input order); columns ``pvalue`` and ``included`` (bool, at ``size``).
    """
    from arch.bootstrap import MCS

    labels = list(names) if names is not None else (list(losses.columns) if isinstance(losses, pd.DataFrame) else None)
    x = np.asarray(losses, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or not np.isfinite(x).all():
        raise DataValidationError(f"losses must be a finite (T, K) array with T >= 2, got shape {x.shape}")
    labels = labels if labels is not None else list(range(x.shape[1]))
    if len(labels) != x.shape[1] or len(set(labels)) != len(labels):
        raise DataValidationError(f"need {x.shape[1]} distinct model names, got {labels}")
    check_level(size, "size")
    if int(reps) < 1:
        raise DataValidationError(f"reps must be at least 1, got {reps}")
    # identical models (e.g. two agents that both stay in cash) have loss differences without
    # variance, which the MCS statistics divide by: score one of each group, copy to the rest
    first = [next(i for i in range(j + 1) if np.array_equal(x[:, i], x[:, j])) for j in range(x.shape[1])]
    unique = sorted(set(first))
    if len(unique) == 1:
        p_u, in_u = np.ones(1), np.ones(1, dtype=bool)
    else:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        cols = [str(j) for j in unique]
        mcs = MCS(pd.DataFrame(x[:, unique], columns=cols), size=size, reps=int(reps), block_size=block_size, method=method, seed=rng)
        mcs.compute()
        p_u = mcs.pvalues["Pvalue"].reindex(cols).to_numpy(dtype=np.float64)
        in_u = np.isin(cols, list(mcs.included))
    pos = {j: k for k, j in enumerate(unique)}
    return pd.DataFrame(
        {"pvalue": [p_u[pos[f]] for f in first], "included": [bool(in_u[pos[f]]) for f in first]},
        index=pd.Index(labels, name="model"),
    )

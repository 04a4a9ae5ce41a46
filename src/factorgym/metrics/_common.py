"""Array checks and numeric helpers shared by the :mod:`factorgym.metrics` modules."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from factorgym.errors import DataValidationError

__all__ = ["as_series", "as_simple_returns", "check_ensemble", "check_level", "safe_ratio", "to_scalar"]


def as_series(x: ArrayLike, name: str = "returns", *, allow_2d: bool = True) -> np.ndarray:
    """A finite float64 array of shape ``(T,)`` or ``(T, K)`` with ``T >= 1``."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim not in ((1, 2) if allow_2d else (1,)):
        want = "(T,) or (T, K)" if allow_2d else "(T,)"
        raise DataValidationError(f"{name} must have shape {want}, got {a.shape}")
    if a.shape[0] == 0:
        raise DataValidationError(f"{name} is empty")
    bad = ~np.isfinite(a)
    if bad.any():
        first = np.argwhere(bad)[0]
        raise DataValidationError(f"{name} contains NaN/inf (first at index {tuple(int(i) for i in first)})")
    return a


def as_simple_returns(x: ArrayLike, name: str = "returns", *, allow_2d: bool = True) -> np.ndarray:
    """:func:`as_series` whose values are simple returns (none below -100%)."""
    a = as_series(x, name, allow_2d=allow_2d)
    if (a < -1.0).any():
        raise DataValidationError(f"{name} has simple returns below -100% (are these log returns or percentages?)")
    return a


def to_scalar(x: np.ndarray | float) -> float | np.ndarray:
    """Unwrap 0-d arrays to Python floats; keep arrays."""
    arr = np.asarray(x, dtype=np.float64)
    return float(arr) if arr.ndim == 0 else arr


def safe_ratio(num: np.ndarray | float, den: np.ndarray | float) -> float | np.ndarray:
    """``num / den`` with ``+-inf`` for a zero denominator and NaN for ``0/0`` (no warnings)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.sign(num) * np.inf)
        out = np.where((den == 0) & (num == 0), np.nan, out)
        out = np.where(np.isnan(den) | np.isnan(num), np.nan, out)
    return to_scalar(out)


def check_level(level: float, name: str = "level") -> float:
    """``level`` as a float, checked to lie strictly between 0 and 1.

    Parameters
    ----------
    level : float
        A confidence or probability level, e.g. 0.95.
    name : str
        What to call it in the error message.

    Returns
    -------
    float

    Raises
    ------
    DataValidationError
        When ``level`` is not in the open interval (0, 1).
    """
    level = float(level)
    if not 0.0 < level < 1.0:
        raise DataValidationError(f"{name} must lie strictly between 0 and 1, got {level}")
    return level


def check_ensemble(x: np.ndarray, y: np.ndarray, min_samples: int, too_few: str, *, vector: bool = False) -> None:
    """Check that samples ``x`` of shape ``(S, *y.shape)`` hold at least ``min_samples`` members.

    Parameters
    ----------
    x : ndarray of shape (S, ...)
        Ensemble members along the first axis.
    y : ndarray of shape (...)
        The observed values.
    min_samples : int
        Smallest accepted ``S``.
    too_few : str
        The error message when ``S < min_samples``.
    vector : bool
        Whether ``y`` must have at least one axis (the variables of a multivariate forecast).

    Raises
    ------
    DataValidationError
    """
    if (y.ndim if vector else x.ndim) < 1 or x.shape[1:] != y.shape:
        raise DataValidationError(f"samples {x.shape} must have shape (S, *observed.shape) with observed {y.shape}")
    if x.shape[0] < min_samples:
        raise DataValidationError(too_few)

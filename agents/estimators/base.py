"""The view an optimizer agent receives, the base class of its sources, and the checks.

* :class:`Estimate` - a view of the next day's returns (mean, covariance and/or scenarios).
* :class:`ReturnSource` - the base class: turns an observation window into an
  :class:`Estimate`.
* :func:`check_window` - an observation window as a float64 ``(W, N)`` array, or a clear
  error; :func:`check_estimate` - an :class:`Estimate` checked and restricted to the
  investable assets before an optimizer uses it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from factorgym.errors import DataValidationError

__all__ = ["Estimate", "ReturnSource", "check_estimate", "check_window"]


@dataclass(frozen=True)
class Estimate:
    """A view of the next day's simple returns of ``N`` assets.

    Attributes
    ----------
    mean : ndarray of shape (N,)
        Expected returns.
    cov : ndarray of shape (N, N) or None
        Covariance (when requested).
    scenarios : ndarray of shape (S, N) or None
        Equally likely scenarios (when requested).
    exact : bool
        True when ``mean``/``cov`` are a model's closed form rather than sample estimates.
    available : ndarray of shape (N,), bool, or None
        The assets the source could estimate (``None``: all). The entries of the others are
        NaN and the optimizers keep them at zero weight.
    """

    mean: np.ndarray
    cov: np.ndarray | None = None
    scenarios: np.ndarray | None = None
    exact: bool = False
    available: np.ndarray | None = None


class ReturnSource(BaseEstimator, ABC):
    """Base class: turns an observation window into an :class:`Estimate` for day ``t+1``.

    Estimator style (scikit-learn / skfolio): ``__init__`` stores its parameters unchanged;
    ``get_params`` / ``set_params`` / ``clone`` work.
    """

    #: True when :meth:`estimate` draws random numbers (from the ``rng`` passed in).
    uses_rng: ClassVar[bool] = False

    @property
    @abstractmethod
    def min_window(self) -> int:
        """Days of history an estimate needs."""

    def prefetch(self, windows: np.ndarray) -> None:  # noqa: B027 - optional hook, no-op by default
        """Prepare the views of a batch of windows ``(B, W, N)`` in one call (optional).

        Called by the agents before they act on a batch of environments; sources whose
        per-window work batches well (a generator's network pass) override it. Never
        changes what :meth:`estimate` returns.
        """

    def validate(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Raise :class:`~factorgym.errors.DataValidationError` on a bad parameter (also done
        by every :meth:`estimate`)."""

    @abstractmethod
    def estimate(
        self,
        window: np.ndarray,
        rng: np.random.Generator | None = None,
        *,
        cov: bool = True,
        scenarios: bool = False,
    ) -> Estimate:
        """The view of the day after ``window``.

        Parameters
        ----------
        window : ndarray of shape (W, N)
            Simple returns, oldest first, ending at day ``t``.
        rng : numpy.random.Generator, optional
            Required when :attr:`uses_rng`.
        cov, scenarios : bool
            Whether the covariance and/or scenarios are needed (the mean always is).
        """


# ----------------------------------------------------------------------------- checks
def check_window(window: Any, min_rows: int = 1, what: str = "observation window", *, allow_missing: bool = False) -> np.ndarray:
    """``window`` as a float64 ``(W, N)`` array with ``W >= min_rows``, or raise.

    Every value must be finite; with ``allow_missing``, NaN marks a missing cell (an asset
    absent that day: not yet listed, delisted or halted) and only infinities are rejected.
    """
    w = np.asarray(window, dtype=np.float64)
    if w.ndim != 2:
        raise DataValidationError(f"the {what} must have shape (window, N), got {w.shape}")
    if w.shape[0] < min_rows:
        raise DataValidationError(f"the {what} has {w.shape[0]} days; {min_rows} are needed")
    bad = np.isinf(w) if allow_missing else ~np.isfinite(w)
    if bad.any():
        rows, cols = np.nonzero(bad)
        v = w[rows[0], cols[0]]
        raise DataValidationError(
            f"the {what} has {'inf' if allow_missing else 'NaN/inf'} returns (first {v} at row {rows[0]}, asset {cols[0]})"
            + ("" if allow_missing else "; every asset must be observed on every day of it")
        )
    return w


def check_estimate(est: Estimate, n: int, *, cov: bool, scenarios: bool, alive: np.ndarray | None = None) -> tuple[Estimate, np.ndarray]:
    """Check an :class:`Estimate` handed to an optimizer and restrict it to the investable assets.

    Parameters
    ----------
    est : Estimate
    n : int
        Number of assets ``N``.
    cov, scenarios : bool
        Whether the optimizer needs a covariance / scenarios.
    alive : ndarray of shape (N,), bool, optional
        Assets that trade on the decision day (default: all).

    Returns
    -------
    estimate : Estimate
        ``est`` with the entries of non-investable assets replaced by neutral finite values
        (zero mean, zero covariance row and column with a positive diagonal, zero scenario
        column): the optimizer pins their weights to zero, so these values never matter.
    investable : ndarray of shape (N,), bool
        ``alive`` and available to the source (``est.available``).

    Raises
    ------
    DataValidationError
        Naming the bad input: a mean, covariance or scenario matrix of the wrong shape, with
        NaN/inf for an asset the source says it estimated, or a covariance that is not
        symmetric.
    """
    mean = np.asarray(est.mean, dtype=np.float64)
    if mean.shape != (n,):
        raise DataValidationError(f"the expected returns (mean) have shape {mean.shape}, expected ({n},)")
    avail = np.ones(n, dtype=bool) if est.available is None else np.asarray(est.available, dtype=bool)
    if avail.shape != (n,):
        raise DataValidationError(f"the estimate's availability mask has shape {avail.shape}, expected ({n},)")
    live = avail if alive is None else avail & np.asarray(alive, dtype=bool)
    _finite("expected returns (mean)", mean[avail], np.nonzero(avail)[0])
    c = None
    if cov:
        if est.cov is None:
            raise DataValidationError("this optimizer needs a covariance, and the source gave none")
        c = np.asarray(est.cov, dtype=np.float64)
        if c.shape != (n, n):
            raise DataValidationError(f"the covariance matrix has shape {c.shape}, expected ({n}, {n})")
        sub = c[np.ix_(avail, avail)]
        if not np.isfinite(sub).all():
            i, j = np.argwhere(~np.isfinite(sub))[0]
            a = np.nonzero(avail)[0]
            raise DataValidationError(f"the covariance matrix has a non-finite entry {sub[i, j]} at ({a[i]}, {a[j]})")
        scale = float(np.abs(sub).max(initial=0.0))
        asym = float(np.abs(sub - sub.T).max(initial=0.0))
        if asym > 1e-8 * max(scale, 1e-300):
            raise DataValidationError(f"the covariance matrix is not symmetric (max |C - C'| = {asym:.3g}, max |C| = {scale:.3g})")
    sc = None
    if scenarios:
        if est.scenarios is None:
            raise DataValidationError("this optimizer needs scenarios, and the source gave none")
        sc = np.asarray(est.scenarios, dtype=np.float64)
        if sc.ndim != 2 or sc.shape[1] != n or sc.shape[0] < 1:
            raise DataValidationError(f"the scenario matrix has shape {sc.shape}, expected (S >= 1, {n})")
        sub = sc[:, avail]
        if not np.isfinite(sub).all():
            i, j = np.argwhere(~np.isfinite(sub))[0]
            raise DataValidationError(
                f"the scenario matrix has a non-finite return {sub[i, j]} (scenario {i}, asset {np.nonzero(avail)[0][j]})"
            )
    if live.all():
        return est, live
    out = ~live
    mean = mean.copy()
    mean[out] = 0.0
    if c is not None:
        c = c.copy()
        c[out, :] = 0.0
        c[:, out] = 0.0
        d = np.diagonal(c)[live]
        c[out, out] = float(d.mean()) if d.size and d.mean() > 0 else 1e-4
    if sc is not None:
        sc = sc.copy()
        sc[:, out] = 0.0
    return Estimate(mean=mean, cov=c, scenarios=sc, exact=est.exact, available=est.available), live


def _finite(what: str, values: np.ndarray, index: np.ndarray) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        k = int(np.argmax(bad))
        raise DataValidationError(f"the {what} has a non-finite value {values[k]} for asset {index[k]}")

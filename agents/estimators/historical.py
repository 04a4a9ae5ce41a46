"""Sources that need no model: classical estimators on the observed window, and fixed views.

* :class:`HistoricalSource` - sample or James-Stein mean, sample or Ledoit-Wolf covariance
  on the last ``window`` observed days; the scenarios are the observed days themselves
  (historical simulation).
* :class:`StaticSource` - fixed arrays (tests, benchmarks, user-supplied views).

The estimator functions (:func:`sample_mean`, :func:`james_stein_mean`,
:func:`sample_covariance`, :func:`ledoit_wolf_covariance`) are pure and usable directly.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.covariance import LedoitWolf

from factorgym.agents.estimators.base import Estimate, ReturnSource, check_window
from factorgym.errors import DataValidationError

__all__ = [
    "HistoricalSource",
    "StaticSource",
    "james_stein_mean",
    "ledoit_wolf_covariance",
    "sample_covariance",
    "sample_mean",
]


def sample_mean(x: np.ndarray) -> np.ndarray:
    """Column means of ``x`` ``(T, N)`` -> ``(N,)``."""
    return np.asarray(x, dtype=np.float64).mean(axis=0)


def sample_covariance(x: np.ndarray) -> np.ndarray:
    """Unbiased sample covariance (``ddof=1``) of ``x`` ``(T, N)`` -> ``(N, N)``."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] < 2:
        raise DataValidationError(f"a sample covariance needs at least 2 observations, got {x.shape[0]}")
    return np.atleast_2d(np.cov(x, rowvar=False, ddof=1))


def ledoit_wolf_covariance(x: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf (2004) shrinkage covariance of ``x`` ``(T, N)`` -> ``(N, N)``.

    scikit-learn's :class:`sklearn.covariance.LedoitWolf` (shrinkage towards a scaled
    identity; the sample part uses ``ddof=0`` as in the paper).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] < 2:
        raise DataValidationError(f"a Ledoit-Wolf covariance needs at least 2 observations, got {x.shape[0]}")
    # store_precision=False: the (pseudo-)inverse is an N x N eigendecomposition (O(N^3)) the
    # callers never use; it was 80% of a mean-variance day at N = 100
    return np.asarray(LedoitWolf(store_precision=False, assume_centered=False).fit(x).covariance_, dtype=np.float64)


def james_stein_mean(x: np.ndarray, cov: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Positive-part James-Stein shrinkage of the sample mean towards the grand mean.

    With sample mean ``m`` (``(N,)``), grand mean ``g = mean(m)``, covariance ``C`` (the
    unbiased sample covariance by default) and ``T`` observations, the intensity is::

        b = (trace(C) - 2 * max_eig(C)) / (T * ||m - g||^2),   clipped to [0, 1]

    and the estimate ``(1 - b) m + b g``. This is skfolio's ``ShrunkMu(JAMES_STEIN)``
    formula (Jorion's form of James & Stein 1961), clipped to ``[0, 1]``: the unclipped
    intensity can exceed 1 (over-shrinking past the target) or be negative (``N < 3`` or one
    dominant eigenvalue), neither of which is a shrinkage.

    Parameters
    ----------
    x : ndarray of shape (T, N)
    cov : ndarray of shape (N, N), optional

    Returns
    -------
    mean : ndarray of shape (N,)
    intensity : float
        ``b`` in ``[0, 1]``.
    """
    x = np.asarray(x, dtype=np.float64)
    t = x.shape[0]
    m = x.mean(axis=0)
    c = sample_covariance(x) if cov is None else np.asarray(cov, dtype=np.float64)
    g = float(m.mean())
    dev = float(np.sum((m - g) ** 2))
    if dev <= 0.0:
        return m, 0.0
    eig = np.linalg.eigvalsh(c)
    b = float(np.clip((eig.sum() - 2.0 * eig.max()) / (t * dev), 0.0, 1.0))
    return (1.0 - b) * m + b * g, b


# ----------------------------------------------------------------------------- sources
class HistoricalSource(ReturnSource):
    """Classical estimators on the last ``window`` observed days.

    Parameters
    ----------
    window : int or None
        Estimation window in days; ``None`` uses the whole observation window.
    mean : {"sample", "james_stein", "zero"}
        Mean estimator (:func:`sample_mean`, :func:`james_stein_mean`, or zeros).
    covariance : {"ledoit_wolf", "sample"}
        Covariance estimator (:func:`ledoit_wolf_covariance`, :func:`sample_covariance`).

    Notes
    -----
    Scenarios (for mean-CVaR) are the ``window`` observed return vectors themselves
    (historical simulation); the mean-CVaR objective's expected-return term uses ``mean``
    (so ``mean="zero"`` turns a mean-CVaR agent into a cost-aware minimum-CVaR one).

    Missing data (NaN cells: an asset not yet listed, delisted or halted) is never read as a
    return: an asset enters the estimate only when it is observed on every day of the
    estimation window, and the estimators then run on those assets' columns alone (the
    others are marked unavailable in :attr:`Estimate.available` and get zero weight). So a
    late listing is estimated, and can be bought, once it has ``window`` days of history.
    """

    def __init__(
        self,
        window: int | None = None,
        mean: Literal["sample", "james_stein", "zero"] = "sample",
        covariance: Literal["ledoit_wolf", "sample"] = "ledoit_wolf",
    ) -> None:
        self.window = window
        self.mean = mean
        self.covariance = covariance

    @property
    def min_window(self) -> int:
        return 2 if self.window is None else int(self.window)

    def validate(self) -> None:
        if self.window is not None and (int(self.window) != self.window or self.window < 2):
            raise DataValidationError(f"window must be an integer >= 2 or None, got {self.window!r}")
        if self.mean not in ("sample", "james_stein", "zero"):
            raise DataValidationError(f"mean must be 'sample', 'james_stein' or 'zero', got {self.mean!r}")
        if self.covariance not in ("ledoit_wolf", "sample"):
            raise DataValidationError(f"covariance must be 'ledoit_wolf' or 'sample', got {self.covariance!r}")

    def estimate(
        self,
        window: np.ndarray,
        rng: np.random.Generator | None = None,
        *,
        cov: bool = True,
        scenarios: bool = False,
    ) -> Estimate:
        self.validate()
        x = check_window(window, self.min_window, allow_missing=True)
        if self.window is not None:
            x = x[-int(self.window) :]
        avail = np.isfinite(x).all(axis=0)
        if avail.all():
            return self._estimate(x, cov, scenarios)
        n = x.shape[1]
        sub = self._estimate(x[:, avail], cov, scenarios) if avail.any() else None
        mu = np.full(n, np.nan)
        c = np.full((n, n), np.nan) if cov else None
        sc = np.where(avail, x, np.nan) if scenarios else None
        if sub is not None:
            mu[avail] = sub.mean
            if c is not None:
                c[np.ix_(avail, avail)] = sub.cov
        return Estimate(mean=mu, cov=c, scenarios=sc, exact=False, available=avail)

    def _estimate(self, x: np.ndarray, cov: bool, scenarios: bool) -> Estimate:
        """The estimators on a complete window ``(W, K)``."""
        if self.mean == "sample":
            mu = sample_mean(x)
        elif self.mean == "james_stein":
            mu, _ = james_stein_mean(x)
        else:
            mu = np.zeros(x.shape[1])
        c = None
        if cov:
            c = ledoit_wolf_covariance(x) if self.covariance == "ledoit_wolf" else sample_covariance(x)
        return Estimate(mean=mu, cov=c, scenarios=x.copy() if scenarios else None, exact=False)


class StaticSource(ReturnSource):
    """The same fixed view every day (tests, benchmarks, user-supplied views).

    Parameters
    ----------
    mean : ndarray of shape (N,), optional
        Defaults to the scenarios' mean.
    cov : ndarray of shape (N, N), optional
        Defaults to the scenarios' sample covariance.
    scenarios : ndarray of shape (S, N), optional
    """

    def __init__(
        self,
        mean: np.ndarray | None = None,
        cov: np.ndarray | None = None,
        scenarios: np.ndarray | None = None,
    ) -> None:
        self.mean = mean
        self.cov = cov
        self.scenarios = scenarios

    @property
    def min_window(self) -> int:
        return 0

    def estimate(
        self,
        window: np.ndarray,
        rng: np.random.Generator | None = None,
        *,
        cov: bool = True,
        scenarios: bool = False,
    ) -> Estimate:
        sc = None if self.scenarios is None else check_window(self.scenarios, 1, "scenario matrix")
        if self.mean is not None:
            mu = np.asarray(self.mean, dtype=np.float64)
        elif sc is not None:
            mu = sc.mean(axis=0)
        else:
            raise DataValidationError("StaticSource needs a mean or scenarios")
        c = None
        if cov:
            if self.cov is not None:
                c = np.asarray(self.cov, dtype=np.float64)
            elif sc is not None:
                c = sample_covariance(sc)
            else:
                raise DataValidationError("this optimizer needs a covariance: give StaticSource a cov or scenarios")
        if scenarios and sc is None:
            raise DataValidationError("this optimizer needs scenarios: give StaticSource a scenario matrix")
        n = mu.shape[0]
        if (c is not None and c.shape != (n, n)) or (sc is not None and sc.shape[1] != n):
            raise DataValidationError(
                f"StaticSource shapes disagree: mean {mu.shape}, covariance {None if c is None else c.shape}, "
                f"scenario matrix {None if sc is None else sc.shape}"
            )
        return Estimate(mean=mu, cov=c, scenarios=sc if scenarios else None, exact=True)

"""Where an optimizer agent's view of day ``t+1`` comes from.

A *source* turns the observation window (``(W, N)`` simple returns, oldest first, ending at
day ``t``) into an :class:`Estimate` of the next day's returns: a mean vector, a covariance
matrix and/or an ``(S, N)`` scenario matrix, whatever the optimizer asks for.

* :class:`GeneratorSource` - a trained generator's predictive distribution
  (``ReturnGenerator.predict_window``): closed-form mean/covariance when the predictive has
  them (``has_closed_form``), otherwise moments of its samples; scenarios are
  ``n_scenarios`` draws (the diffusion paper uses 500) from the agent's own
  ``numpy.random.Generator``.
* :class:`HistoricalSource` - classical estimators on the last ``window`` observed days:
  sample or James-Stein mean, sample or Ledoit-Wolf covariance; the scenarios are the
  observed days themselves (historical simulation).
* :class:`StaticSource` - fixed arrays (tests, benchmarks, user-supplied views).

The estimator functions (:func:`sample_mean`, :func:`james_stein_mean`,
:func:`sample_covariance`, :func:`ledoit_wolf_covariance`) are pure and usable directly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.covariance import LedoitWolf

from factorgym.errors import DataValidationError

if TYPE_CHECKING:
    from factorgym.generators.base import ReturnGenerator

__all__ = [
    "Estimate",
    "ReturnSource",
    "GeneratorSource",
    "HistoricalSource",
    "StaticSource",
    "sample_mean",
    "james_stein_mean",
    "sample_covariance",
    "ledoit_wolf_covariance",
    "check_window",
]


# ----------------------------------------------------------------------------- estimators
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
    return np.asarray(LedoitWolf(assume_centered=False).fit(x).covariance_, dtype=np.float64)


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


def check_window(window: Any, min_rows: int = 1, what: str = "observation window") -> np.ndarray:
    """``window`` as a finite float64 ``(W, N)`` array with ``W >= min_rows``, or raise."""
    w = np.asarray(window, dtype=np.float64)
    if w.ndim != 2:
        raise DataValidationError(f"the {what} must have shape (window, N), got {w.shape}")
    if w.shape[0] < min_rows:
        raise DataValidationError(f"the {what} has {w.shape[0]} days; {min_rows} are needed")
    if not np.isfinite(w).all():
        rows, cols = np.nonzero(~np.isfinite(w))
        raise DataValidationError(
            f"the {what} has NaN/inf returns (first at row {rows[0]}, asset {cols[0]}); "
            "the optimizer agents need every asset observed on every day of the window"
        )
    return w


# ----------------------------------------------------------------------------- estimates
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
    """

    mean: np.ndarray
    cov: np.ndarray | None = None
    scenarios: np.ndarray | None = None
    exact: bool = False


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

    def _validate(self) -> None:
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
        self._validate()
        x = check_window(window, self.min_window)
        if self.window is not None:
            x = x[-int(self.window) :]
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


class GeneratorSource(ReturnSource):
    """A trained generator's predictive distribution of day ``t+1``.

    Parameters
    ----------
    generator : ReturnGenerator
        Anything with ``predict_window(window) -> Predictive`` and ``min_history``.
    n_scenarios : int
        Draws per day (for scenarios, and for moments when they are sample-based). The
        diffusion paper uses 500.
    moments : {"auto", "closed_form", "samples"}
        ``"auto"``: the predictive's exact mean/covariance when ``has_closed_form``,
        otherwise the moments of this day's ``n_scenarios`` draws (the same draws the
        scenarios are, so a mean-CVaR agent's mean and scenarios agree). ``"closed_form"``
        raises when the predictive has none; ``"samples"`` always uses the draws.

    Notes
    -----
    Draws come only from the ``rng`` the agent passes in (the agent owns and seeds it), so
    the same seed gives the same scenarios and weights.
    """

    uses_rng: ClassVar[bool] = True

    def __init__(
        self,
        generator: ReturnGenerator,
        n_scenarios: int = 500,
        moments: Literal["auto", "closed_form", "samples"] = "auto",
    ) -> None:
        self.generator = generator
        self.n_scenarios = n_scenarios
        self.moments = moments

    @property
    def min_window(self) -> int:
        return int(self.generator.min_history)

    def estimate(
        self,
        window: np.ndarray,
        rng: np.random.Generator | None = None,
        *,
        cov: bool = True,
        scenarios: bool = False,
    ) -> Estimate:
        if self.moments not in ("auto", "closed_form", "samples"):
            raise DataValidationError(f"moments must be 'auto', 'closed_form' or 'samples', got {self.moments!r}")
        if int(self.n_scenarios) != self.n_scenarios or self.n_scenarios < 2:
            raise DataValidationError(f"n_scenarios must be an integer >= 2, got {self.n_scenarios!r}")
        if rng is None:
            raise DataValidationError("GeneratorSource.estimate needs the agent's numpy.random.Generator")
        x = check_window(window, self.min_window, "observation window (generator context)")
        pred = self.generator.predict_window(x)
        closed = bool(pred.has_closed_form)
        if self.moments == "closed_form" and not closed:
            raise DataValidationError(
                f"{type(pred).__name__} has no closed-form moments; use moments='auto' or 'samples'"
            )
        use_closed = closed and self.moments != "samples"
        draws = None
        if scenarios or not use_closed:
            draws = np.asarray(pred.sample(int(self.n_scenarios), rng), dtype=np.float64)
            if draws.shape != (int(self.n_scenarios), x.shape[1]) or not np.isfinite(draws).all():
                raise DataValidationError(
                    f"{type(pred).__name__}.sample returned shape {draws.shape} or non-finite values; "
                    f"expected ({self.n_scenarios}, {x.shape[1]}) finite"
                )
        if use_closed:
            mu = np.asarray(pred.mean(), dtype=np.float64)
            c = np.asarray(pred.cov(), dtype=np.float64) if cov else None
        else:
            assert draws is not None
            mu = draws.mean(axis=0)
            c = sample_covariance(draws) if cov else None
        return Estimate(mean=mu, cov=c, scenarios=draws if scenarios else None, exact=use_closed)


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
                f"StaticSource shapes disagree: mean {mu.shape}, cov {None if c is None else c.shape}, "
                f"scenarios {None if sc is None else sc.shape}"
            )
        return Estimate(mean=mu, cov=c, scenarios=sc if scenarios else None, exact=True)

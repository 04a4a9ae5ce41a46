"""Where an optimizer agent's view of day ``t+1`` comes from.

A *source* turns the observation window (``(W, N)`` simple returns, oldest first, ending at
day ``t``) into an :class:`Estimate` of the next day's returns: a mean vector, a covariance
matrix and/or an ``(S, N)`` scenario matrix, whatever the optimizer asks for.

* :class:`GeneratorSource` - a trained generator's predictive distribution
  (``ReturnGenerator.predict_window``): the predictive's exact mean/covariance whenever it
  has them (``has_closed_form`` or ``has_exact_moments``), otherwise moments of its samples;
  scenarios are
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

import hashlib
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.covariance import LedoitWolf

from factorgym.errors import DataValidationError

if TYPE_CHECKING:
    from factorgym.generators.base import Predictive, ReturnGenerator

__all__ = [
    "Estimate",
    "ReturnSource",
    "GeneratorSource",
    "PredictionCache",
    "HistoricalSource",
    "StaticSource",
    "sample_mean",
    "james_stein_mean",
    "sample_covariance",
    "ledoit_wolf_covariance",
    "check_window",
    "check_estimate",
    "exact_moments",
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


class PredictionCache:
    """A generator's predictives memoised by the exact context window (least recently used).

    A trained generator's prediction is a pure function of the window it is given, so agents
    that see the same windows - a mean-variance and a mean-CVaR agent on the same real or
    synthetic paths - can share one network pass per window, and windows that arrive
    together (the paths of a vector env) are predicted in one batched
    :meth:`~factorgym.generators.base.ReturnGenerator.predict_windows` call. Random draws
    are not cached: each agent samples from the shared predictive with its own stream, so
    results are identical with and without the cache.

    The key is a digest of the window's shape and float64 bytes, so a window that differs
    in any bit (for example one more day of history) is a different entry. Do not refit the
    generator while a cache refers to it.

    Parameters
    ----------
    generator : ReturnGenerator
        A fitted generator.
    maxsize : int
        Entries kept (the oldest unused entry is dropped first).

    Attributes
    ----------
    hits, misses : int
        Lookups answered from the cache / by the generator.
    """

    def __init__(self, generator: ReturnGenerator, maxsize: int = 4096) -> None:
        if int(maxsize) != maxsize or maxsize < 1:
            raise DataValidationError(f"maxsize must be a positive integer, got {maxsize!r}")
        self.generator = generator
        self.maxsize = int(maxsize)
        self.hits = 0
        self.misses = 0
        self._store: OrderedDict[bytes, Predictive] = OrderedDict()

    def __len__(self) -> int:
        return len(self._store)

    def __repr__(self) -> str:
        return f"PredictionCache({type(self.generator).__name__}, {len(self)}/{self.maxsize}, hits={self.hits}, misses={self.misses})"

    @staticmethod
    def key(window: np.ndarray) -> bytes:
        """Digest of a float64 window ``(W, N)`` (shape included)."""
        x = np.ascontiguousarray(window, dtype=np.float64)
        h = hashlib.blake2b(repr(x.shape).encode(), digest_size=16)
        h.update(x.tobytes())
        return h.digest()

    def _put(self, k: bytes, pred: Predictive) -> None:
        self._store[k] = pred
        self._store.move_to_end(k)
        while len(self._store) > self.maxsize:
            self._store.popitem(last=False)

    def get(self, window: np.ndarray) -> Predictive:
        """The generator's predictive for ``window`` ``(W, N)``."""
        k = self.key(window)
        pred = self._store.get(k)
        if pred is not None:
            self.hits += 1
            self._store.move_to_end(k)
            return pred
        self.misses += 1
        pred = self.generator.predict_window(np.asarray(window, dtype=np.float64))
        self._put(k, pred)
        return pred

    def prefetch(self, windows: np.ndarray) -> None:
        """Predict the windows ``(B, W, N)`` not yet cached, in one batched call."""
        w = np.asarray(windows, dtype=np.float64)
        if w.ndim != 3 or w.shape[0] == 0:
            return
        keys = [self.key(x) for x in w]
        idx: list[int] = []
        new: set[bytes] = set()
        for i, k in enumerate(keys):
            if k not in self._store and k not in new:
                new.add(k)
                idx.append(i)
        if not idx:
            return
        preds = self.generator.predict_windows(w[idx])
        if len(preds) != len(idx):
            raise DataValidationError(f"predict_windows returned {len(preds)} predictions for {len(idx)} windows")
        for i, pred in zip(idx, preds, strict=True):
            self._put(keys[i], pred)


def exact_moments(pred: Predictive) -> bool:
    """True when ``pred.mean()`` / ``pred.cov()`` are exact (``has_closed_form`` or
    ``has_exact_moments``), so a source must use them rather than moments of draws."""
    return bool(getattr(pred, "has_closed_form", False) or getattr(pred, "has_exact_moments", False))


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
        ``"auto"``: the predictive's exact mean/covariance whenever it has them
        (``has_closed_form`` or ``has_exact_moments``: e.g. NeuralFactors, whose density is
        estimated but whose moments are closed form), otherwise the moments of this day's
        ``n_scenarios`` draws (the same draws the scenarios are). Exact moments make a
        mean-variance agent's weights independent of its seed (no Monte-Carlo noise in
        ``mu`` and ``Sigma``). ``"closed_form"`` raises when the predictive has no exact
        moments; ``"samples"`` always uses the draws.
    draws : {"own", "shared"}
        ``"own"`` (default): the scenarios are ``n_scenarios`` fresh draws from the agent's
        stream. ``"shared"``: the first ``n_scenarios`` rows of the predictive's fixed draw
        (``Predictive.samples``, a sample-based predictive's ``n_moment_samples`` draws,
        made once per window with a fixed seed), so every agent on the same window sees the
        same scenarios - the diffusion paper's setup, where one set of generated scenarios
        feeds both the mean-variance and the mean-CVaR optimiser - and, with a shared
        :class:`PredictionCache`, the sampler runs once per window instead of once per agent.
    cache : PredictionCache, optional
        Memo of the generator's predictives, shared by the sources that use the same
        generator (its ``generator`` must be this one). Without one, every window is
        predicted afresh.

    Notes
    -----
    With ``draws="own"``, draws come only from the ``rng`` the agent passes in (the agent
    owns and seeds it), so the same seed gives the same scenarios and weights.
    """

    uses_rng: ClassVar[bool] = True

    def __init__(
        self,
        generator: ReturnGenerator,
        n_scenarios: int = 500,
        moments: Literal["auto", "closed_form", "samples"] = "auto",
        draws: Literal["own", "shared"] = "own",
        cache: PredictionCache | None = None,
    ) -> None:
        self.generator = generator
        self.n_scenarios = n_scenarios
        self.moments = moments
        self.draws = draws
        self.cache = cache

    def _cache(self) -> PredictionCache | None:
        c = self.cache
        if c is not None and c.generator is not self.generator:
            raise DataValidationError("GeneratorSource.cache belongs to another generator")
        return c

    def prefetch(self, windows: np.ndarray) -> None:
        """Batch-predict ``windows`` ``(B, W, N)`` into the cache (no-op without one)."""
        c = self._cache()
        w = np.asarray(windows, dtype=np.float64)
        if c is None or w.ndim != 3 or w.shape[1] < self.min_window:
            return
        ok = np.isfinite(w).all(axis=(1, 2))  # bad windows are left to estimate()'s clear error
        if ok.any():
            c.prefetch(w[ok])

    @property
    def min_window(self) -> int:
        return int(self.generator.min_history)

    def validate(self) -> None:
        if self.moments not in ("auto", "closed_form", "samples"):
            raise DataValidationError(f"moments must be 'auto', 'closed_form' or 'samples', got {self.moments!r}")
        if int(self.n_scenarios) != self.n_scenarios or self.n_scenarios < 2:
            raise DataValidationError(f"n_scenarios must be an integer >= 2, got {self.n_scenarios!r}")
        if self.draws not in ("own", "shared"):
            raise DataValidationError(f"draws must be 'own' or 'shared', got {self.draws!r}")

    def estimate(
        self,
        window: np.ndarray,
        rng: np.random.Generator | None = None,
        *,
        cov: bool = True,
        scenarios: bool = False,
    ) -> Estimate:
        self.validate()
        if rng is None and self.draws == "own":
            raise DataValidationError("GeneratorSource.estimate needs the agent's numpy.random.Generator")
        # NaN cells (absent assets) go to the generator as missing; the agent keeps assets
        # absent on the decision day at zero weight
        x = check_window(window, self.min_window, "observation window (generator context)", allow_missing=True)
        c = self._cache()
        pred = c.get(x) if c is not None else self.generator.predict_window(x)
        closed = exact_moments(pred)
        if self.moments == "closed_form" and not closed:
            raise DataValidationError(
                f"{type(pred).__name__} has no exact (closed-form) moments; use moments='auto' or 'samples'"
            )
        use_closed = closed and self.moments != "samples"
        draws = None
        if scenarios or not use_closed:
            draws = self._draws(pred, rng)
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


    def _draws(self, pred: Predictive, rng: np.random.Generator | None) -> np.ndarray:
        n = int(self.n_scenarios)
        if self.draws == "own":
            assert rng is not None
            return np.asarray(pred.sample(n, rng), dtype=np.float64)
        fixed = getattr(pred, "samples", None)
        if fixed is None:
            raise DataValidationError(
                f"draws='shared' needs a predictive with a fixed draw (.samples); {type(pred).__name__} has none "
                "(closed-form predictives: use draws='own')"
            )
        fixed = np.asarray(fixed, dtype=np.float64)
        if fixed.shape[0] < n:
            raise DataValidationError(
                f"draws='shared' with n_scenarios={n}, but the predictive's fixed draw has {fixed.shape[0]} rows "
                "(raise the generator's n_moment_samples or lower n_scenarios)"
            )
        return fixed[:n]


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

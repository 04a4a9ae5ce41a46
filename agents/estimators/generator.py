"""A trained generator's predictive distribution as an optimizer agent's view.

* :class:`GeneratorSource` - ``ReturnGenerator.predict_window``'s predictive: its exact
  mean/covariance whenever it has them (:func:`exact_moments`), otherwise moments of its
  samples; scenarios are ``n_scenarios`` draws from the agent's own
  ``numpy.random.Generator`` (or the predictive's fixed draw, shared by agents).
* :class:`PredictionCache` - predictives memoised by window, shared by the sources of one
  generator (one network pass per window for all agents).
* Own draws are memoised by (generator, window, stream state, n) in a
  :class:`~factorgym.agents.estimators.draw_memo.ScenarioMemo`, so an agent replayed from
  the same seed (a backtest's cost multiples and lags) does not sample the same day twice;
  the results are bit-identical.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

from factorgym.agents.estimators.base import Estimate, ReturnSource, check_window
from factorgym.agents.estimators.draw_memo import ScenarioMemo, process_memo
from factorgym.agents.estimators.historical import sample_covariance
from factorgym.errors import DataValidationError

if TYPE_CHECKING:
    from factorgym.generators.base import Predictive, ReturnGenerator

__all__ = ["GeneratorSource", "PredictionCache", "exact_moments"]


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
    reuse_draws : bool
        With ``draws="own"``: take a day's draws from ``memo`` when the same generator,
        window, stream state and ``n_scenarios`` were drawn before (a replay of the agent
        from the same seed), and leave the stream where that draw left it. Identical
        results either way; ``False`` always samples.
    memo : ScenarioMemo, optional
        Where draws are kept (default: the process's,
        :func:`~factorgym.agents.estimators.draw_memo.process_memo`).

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
        reuse_draws: bool = True,
        memo: ScenarioMemo | None = None,
    ) -> None:
        self.generator = generator
        self.n_scenarios = n_scenarios
        self.moments = moments
        self.draws = draws
        self.cache = cache
        self.reuse_draws = reuse_draws
        self.memo = memo

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
            draws = self._draws(pred, rng, x)
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


    def _draws(self, pred: Predictive, rng: np.random.Generator | None, window: np.ndarray) -> np.ndarray:
        n = int(self.n_scenarios)
        if self.draws == "own":
            assert rng is not None
            if not self.reuse_draws:
                return np.asarray(pred.sample(n, rng), dtype=np.float64)
            memo = self.memo if self.memo is not None else process_memo()
            return memo.draw(self.generator, window, rng, n, pred.sample)
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

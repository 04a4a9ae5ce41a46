"""The interface every return generator implements.

Timing contract: ``predict(panel, t)`` and ``simulator(panel, t, ...)`` may use rows
``0..t`` of ``panel`` (information up to the close of day ``t``) and describe day ``t+1``
onward. Nothing at or after row ``t+1`` is read; tests change those rows and check.

Randomness comes only from the ``numpy.random.Generator`` passed in; torch models derive a
``torch.Generator`` from it (:func:`torch_generator`). No global RNG state is touched.

Shapes: ``N`` assets, ``P`` paths, ``H`` horizon days, ``S`` samples.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy import stats

from factorgym.data import ReturnPanel, Split
from factorgym.errors import CheckpointError, DataValidationError

__all__ = [
    "Predictive",
    "SamplePredictive",
    "FactorPredictive",
    "PathSimulator",
    "ReturnGenerator",
    "register_generator",
    "generator_class",
    "load_generator",
    "check_context",
    "artifact_errors",
    "torch_generator",
    "torch_threads",
    "compute_threads",
    "student_t_marginals",
    "BUILTIN_GENERATORS",
]

#: Built-in generator kinds and the modules that register them (imported on demand, so that
#: importing this module - and the environments - never imports torch).
BUILTIN_GENERATORS: dict[str, str] = {
    "neuralfactors": "factorgym.generators.neuralfactors",
    "diffusion": "factorgym.generators.diffusion",
    "gaussian": "factorgym.generators.baselines.gaussian",
    "ledoit_wolf": "factorgym.generators.baselines.gaussian",
    "ppca": "factorgym.generators.baselines.ppca.generator",
    "garch": "factorgym.generators.baselines.garch",
    "bootstrap": "factorgym.generators.baselines.bootstrap",
}


class Predictive(ABC):
    """The distribution of the next day's simple returns of ``N`` assets.

    ``sample`` is always available; the closed forms (``mean``, ``cov``, ``log_prob``,
    ``marginal_cdf``, ``marginal_ppf``) are exact where ``has_closed_form`` says so and
    sample-based otherwise.
    """

    #: True when mean/cov/log_prob/marginals are exact rather than estimated from samples.
    has_closed_form: ClassVar[bool] = False
    #: True when :meth:`log_prob` is available (exactly, or as a labelled estimate).
    has_log_prob: ClassVar[bool] = False
    #: True when ``mean``/``cov`` are exact even though ``has_closed_form`` is False (e.g. a
    #: factor model whose density is estimated but whose moments are closed form).
    has_exact_moments: ClassVar[bool] = False

    @property
    @abstractmethod
    def n_assets(self) -> int:
        """Number of assets ``N``."""

    @abstractmethod
    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` joint draws of next-day returns, shape ``(n, N)``."""

    @abstractmethod
    def mean(self) -> np.ndarray:
        """Mean vector, shape ``(N,)``."""

    @abstractmethod
    def cov(self) -> np.ndarray:
        """Covariance matrix, shape ``(N, N)``."""

    def log_prob(self, r: np.ndarray) -> np.ndarray:
        """Joint log density (nats) of returns ``r`` ``(..., N)`` -> ``(...)``."""
        raise NotImplementedError(f"{type(self).__name__} has no joint log density")

    def marginal_log_prob(self, r: np.ndarray) -> np.ndarray:
        """Per-asset marginal log densities of ``r`` ``(..., N)`` -> ``(..., N)``."""
        raise NotImplementedError(f"{type(self).__name__} has no marginal log density")

    @abstractmethod
    def marginal_cdf(self, r: np.ndarray) -> np.ndarray:
        """Per-asset marginal CDF at ``r`` ``(..., N)`` -> ``(..., N)`` (for calibration)."""

    @abstractmethod
    def marginal_ppf(self, q: np.ndarray) -> np.ndarray:
        """Per-asset marginal quantiles at levels ``q`` ``(Q,)`` -> ``(Q, N)`` (for VaR)."""


class SamplePredictive(Predictive):
    """A predictive distribution known only through a sampler.

    Moments and marginals are estimated from ``n_moment_samples`` draws made once with a
    fixed seed (so they are deterministic), and are labelled as estimates.

    Parameters
    ----------
    sampler : callable ``(n, rng) -> ndarray (n, N)``
    n_assets : int
    n_moment_samples : int
    seed : int
        Seed of the internal draw used for moments/marginals.
    samples : ndarray (n_moment_samples, N), optional
        That draw, when the caller already made it (it is then not redrawn).
    """

    def __init__(
        self,
        sampler: Callable[[int, np.random.Generator], np.ndarray],
        n_assets: int,
        n_moment_samples: int = 2000,
        seed: int = 0,
        samples: np.ndarray | None = None,
    ) -> None:
        self._sampler = sampler
        self._n = n_assets
        self._m = n_moment_samples
        self._seed = seed
        self._cache: np.ndarray | None = samples

    @property
    def n_assets(self) -> int:
        return self._n

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        out = np.asarray(self._sampler(n, rng), dtype=np.float64)
        if out.shape != (n, self._n):
            raise RuntimeError(f"sampler returned shape {out.shape}, expected {(n, self._n)}")
        return out

    @property
    def samples(self) -> np.ndarray:
        """The fixed draw ``(n_moment_samples, N)`` behind the moment estimates."""
        if self._cache is None:
            self._cache = self.sample(self._m, np.random.default_rng(self._seed))
        return self._cache

    def mean(self) -> np.ndarray:
        return self.samples.mean(axis=0)

    def cov(self) -> np.ndarray:
        return np.cov(self.samples, rowvar=False).reshape(self._n, self._n)

    def marginal_cdf(self, r: np.ndarray) -> np.ndarray:
        s = np.sort(self.samples, axis=0)
        r = np.asarray(r, dtype=np.float64)
        flat = r.reshape(-1, self._n)
        out = np.empty_like(flat)
        for j in range(self._n):
            out[:, j] = np.searchsorted(s[:, j], flat[:, j], side="right") / s.shape[0]
        return out.reshape(r.shape)

    def marginal_ppf(self, q: np.ndarray) -> np.ndarray:
        return np.quantile(self.samples, np.asarray(q, dtype=np.float64), axis=0)


class FactorPredictive(Predictive):
    """A predictive of a latent factor model ``r = alpha + beta z + eps`` with ``F`` factors.

    Stress scenarios condition on its factors (:mod:`factorgym.generators.stress`).
    """

    #: Factor exposures ``(N, F)``.
    beta: np.ndarray

    @abstractmethod
    def factor_cov(self) -> np.ndarray:
        """Covariance of the factor returns ``(F, F)``."""

    @abstractmethod
    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws of the factor returns ``(n, F)``."""

    @abstractmethod
    def sample_given_factors(self, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Returns ``(n, N)`` given factor returns ``z`` ``(n, F)``."""


class PathSimulator(ABC):
    """Rolls ``P`` paths forward one day at a time on the generator's own samples.

    Each path owns its random stream (``rngs[p]``), so path ``p``'s trajectory depends only
    on its starting window and its stream, never on how many other paths are simulated
    beside it: a batched environment reproduces the scalar environment exactly.

    Each :meth:`step` samples the next day for every path, appends the sample to that path's
    history and recomputes its features (the paper's multi-day sampling).
    """

    @property
    @abstractmethod
    def n_paths(self) -> int:
        """Number of paths ``P``."""

    @property
    @abstractmethod
    def n_assets(self) -> int:
        """Number of assets ``N``."""

    @abstractmethod
    def step(self) -> np.ndarray:
        """Sample the next day for every path and advance; returns ``(P, N)`` simple returns."""

    @abstractmethod
    def reset_paths(
        self, idx: np.ndarray, windows: np.ndarray, rngs: Sequence[np.random.Generator]
    ) -> None:
        """Restart paths ``idx`` (``(k,)``) from new history ``windows`` ``(k, W, N)`` and streams."""

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``(P, N)`` and covariance ``(P, N, N)`` of the next step (for observations)."""
        raise NotImplementedError(f"{type(self).__name__} does not expose predicted moments")

    def moments_diag(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance ``(P, N)`` of the next step (the diagonal of :meth:`moments`).

        Simulators with a cheaper route than the full ``(P, N, N)`` covariance override it.
        """
        mean, cov = self.moments()
        return mean, np.diagonal(cov, axis1=-2, axis2=-1)


_REGISTRY: dict[str, type[ReturnGenerator]] = {}


def register_generator(cls: type[ReturnGenerator]) -> type[ReturnGenerator]:
    """Class decorator: make a generator loadable by :func:`load_generator` and the CLI."""
    _REGISTRY[cls.kind] = cls
    return cls


def generator_class(kind: str) -> type[ReturnGenerator]:
    """The registered generator class called ``kind``."""
    import importlib

    if kind not in _REGISTRY and kind in BUILTIN_GENERATORS:
        importlib.import_module(BUILTIN_GENERATORS[kind])
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise DataValidationError(
            f"unknown generator {kind!r}; known: {', '.join(sorted(set(BUILTIN_GENERATORS) | set(_REGISTRY)))}"
        ) from None


def load_generator(path: str | Path) -> ReturnGenerator:
    """Load any saved generator artifact, dispatching on the kind recorded inside it."""
    from factorgym.artifacts import read_artifact

    meta, _, _ = read_artifact(path)
    kind = meta.get("kind")
    if not isinstance(kind, str):
        raise CheckpointError(f"{path} does not record a generator kind")
    return generator_class(kind).load(path)


def check_context(panel: ReturnPanel, t: int, min_history: int, assets: tuple[str, ...] | None = None) -> None:
    """Validate that ``t`` is a row of ``panel`` with at least ``min_history`` rows up to it."""
    if not 0 <= t < panel.T:
        raise DataValidationError(f"context day index {t} is outside {panel.name} (T={panel.T})")
    if t + 1 < min_history:
        raise DataValidationError(
            f"context at {panel.dates[t].date()} has {t + 1} days of history; this generator needs {min_history}"
        )
    if assets is not None and tuple(panel.assets) != tuple(assets):
        raise DataValidationError(
            f"panel assets {list(panel.assets)[:5]}... differ from the assets the generator was fitted on {list(assets)[:5]}..."
        )


class ReturnGenerator(ABC):
    """A fitted generative model of the next day's cross-section of returns.

    Estimator style: ``__init__`` stores parameters only; :meth:`fit` learns and returns
    ``self``; fitted attributes end in ``_`` (``assets_`` at least).
    """

    #: Registry name, used by the CLI and in saved artifacts.
    kind: ClassVar[str] = "base"

    assets_: tuple[str, ...]

    @property
    @abstractmethod
    def min_history(self) -> int:
        """Days of history (rows up to and including ``t``) a prediction needs."""

    @abstractmethod
    def fit(
        self,
        panel: ReturnPanel,
        split: Split,
        *,
        out_dir: str | Path | None = None,
        progress: bool = True,
        rng: np.random.Generator | None = None,
    ) -> ReturnGenerator:
        """Fit on ``split``'s train rows, select on its validation rows; returns ``self``.

        With ``out_dir``, long fits write resumable checkpoints there and resume from them.
        """

    @abstractmethod
    def predict_window(self, window: np.ndarray) -> Predictive:
        """Distribution of the day after a history ``window`` ``(W, N)`` (oldest first).

        ``W >= min_history``; only the last ``min_history`` rows are used. ``NaN`` marks an
        unavailable cell.
        """

    def predict_windows(self, windows: np.ndarray) -> list[Predictive]:
        """:meth:`predict_window` for a batch ``(D, W, N)``; generators override to batch."""
        return [self.predict_window(w) for w in windows]

    @abstractmethod
    def simulator_window(
        self, window: np.ndarray, rngs: Sequence[np.random.Generator]
    ) -> PathSimulator:
        """Paths started after a history ``window`` (``(W, N)`` shared, or ``(P, W, N)``).

        One path per stream in ``rngs``.
        """

    def predict(self, panel: ReturnPanel, t: int) -> Predictive:
        """Distribution of day ``t+1`` returns given rows ``0..t`` of ``panel``."""
        check_context(panel, t, self.min_history, self.assets_)
        return self.predict_window(np.asarray(panel.returns[t + 1 - self.min_history : t + 1]))

    def simulator(
        self, panel: ReturnPanel, t: int, n_paths: int, rng: np.random.Generator
    ) -> PathSimulator:
        """``n_paths`` paths starting after day ``t`` of ``panel`` (rows ``0..t`` as history).

        Path streams are spawned from ``rng``.
        """
        check_context(panel, t, self.min_history, self.assets_)
        window = np.asarray(panel.returns[t + 1 - self.min_history : t + 1])
        return self.simulator_window(window, rng.spawn(n_paths))

    def simulate(
        self,
        panel: ReturnPanel,
        t: int,
        horizon: int,
        n_paths: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Multi-day paths of simple returns, shape ``(n_paths, horizon, N)``."""
        sim = self.simulator(panel, t, n_paths, rng)
        out = np.empty((n_paths, horizon, sim.n_assets))
        for h in range(horizon):
            out[:, h] = sim.step()
        return out

    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write one atomic artifact (config, weights, normalisation, schema, version)."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path) -> ReturnGenerator:
        """Read an artifact written by :meth:`save`; corrupt/incompatible -> CheckpointError."""

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (skfolio/scikit-learn style)."""
        return {}

    def artifact_meta(self, **extra: Any) -> dict[str, Any]:
        """The metadata a saved artifact starts with: ``kind``, ``config`` (:meth:`get_params`)
        and ``assets``, followed by the ``extra`` keys in order."""
        return {"kind": self.kind, "config": self.get_params(), "assets": list(self.assets_), **extra}


@contextmanager
def artifact_errors(path: str | Path, kind: str) -> Iterator[None]:
    """Report a malformed field met while reading an artifact as a :class:`CheckpointError`.

    Wraps the ``TypeError`` / ``ValueError`` / ``KeyError`` that parsing a damaged
    ``meta`` or ``arrays`` raises (``CheckpointError`` itself passes through unchanged).
    """
    try:
        yield
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: invalid {kind} artifact: {exc}") from exc


def torch_generator(rng: np.random.Generator, device: str = "cpu") -> Any:
    """A ``torch.Generator`` seeded from ``rng`` (advances ``rng`` by one draw)."""
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(int(rng.integers(0, 2**63 - 1)))
    return g


@contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Run with ``n`` torch intra-op threads (``None``: unchanged), restoring the setting
    after; yields the number of threads in effect."""
    import torch

    if n is not None and int(n) < 1:
        raise DataValidationError(f"torch_threads must be at least 1 or None, got {n}")
    prev = torch.get_num_threads()
    torch.set_num_threads(prev if n is None else int(n))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(prev)


@contextmanager
def compute_threads(n: int | None) -> Iterator[int | None]:
    """Run with at most ``n`` threads in every compute pool, restoring them after; yields ``n``.

    Limits the BLAS (OpenBLAS/MKL) and OpenMP pools loaded in the process (through
    ``threadpoolctl``) and, when torch is already imported, torch's intra-op threads. ``None``
    changes nothing.

    Why 1 is the library's default around its per-day loops: their matrices are small
    (tens of assets), so a second thread gains little on an idle machine, while the pools'
    threads spin-wait for one another; with one other busy process on a 2-core machine that
    made the diffusion model's evaluation 3.1 times slower than on the quiet machine against
    unchanged with one thread (``benchmarks/results/load.md``).
    """
    if n is None:
        yield None
        return
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise DataValidationError(f"num_threads must be a positive integer or None, got {n!r}")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(n)):
        if "torch" in sys.modules:  # never import torch here: the environments run without it
            with torch_threads(int(n)):
                yield int(n)
        else:
            yield int(n)


def student_t_marginals(loc: np.ndarray, scale: np.ndarray, df: np.ndarray) -> Any:
    """A frozen scipy Student-T over assets (helper for closed-form marginals)."""
    return stats.t(df=df, loc=loc, scale=scale)

"""Rollout diagnostics: multi-day paths of a generator held against what actually followed.

:func:`rollout_diagnostics` takes many real contexts (every ``every``-th day of a split part),
rolls ``n_paths`` paths of ``H`` days forward from each on the generator's own samples
(:meth:`~factorgym.generators.base.ReturnGenerator.simulator_window`, the way the
environments and the stress scenarios use it) and compares them with the ``H`` real days that
followed. Per horizon ``H``:

``vol_spearman``        Spearman rank correlation across contexts between the simulated
                        (median over paths) and the realised ``H``-day volatility of the
                        equal-weight portfolio. Volatility is ``sqrt(mean_t r_t^2)`` of the
                        daily portfolio returns (realised volatility, not demeaned).
``vol_spearman_stock``  the same per stock (its own returns), averaged over the stocks with
                        at least 5 contexts.
``vol_sim``, ``vol_real``  mean over contexts of the simulated (mean over paths) and realised
                        daily volatility of the portfolio: the level, where the correlation is
                        the timing (equal in expectation for the true model).
``cal_error``           :func:`factorgym.metrics.calibration_error` (NeuralFactors eq. 12, 100
                        levels) of the PIT of the realised ``H``-day compounded portfolio
                        return within its ``n_paths`` simulated values (randomised PIT,
                        exactly uniform when the paths come from the true law).
``cal_floor``           the expected ``cal_error`` of a perfectly calibrated forecaster on the
                        same number of contexts, ``every`` days apart with ``H``-day windows
                        (so overlapping when ``H > every``): computed by simulation (i.i.d.
                        daily shocks, :func:`~factorgym.generators.evaluation.calibration_floor`, seeded, 2,000 repetitions).
                        Overlapping windows make neighbouring PITs dependent and the floor
                        higher than ``cal_floor_iid = sum_j p_j (1 - p_j) / n``, the value for
                        independent PITs. The statistic is skewed and noisy (a Cramer-von Mises
                        statistic): a calibrated model exceeds its floor often.
``cal_floor_p95``, ``cal_pvalue``  the 95th percentile of ``cal_error`` under calibration (the
                        same simulation; about 2.8 times the floor for independent PITs) and
                        the share of calibrated repetitions at least as large as the observed
                        error: below 0.05, miscalibration is unlikely to be luck.
``coverage90``          share of contexts whose realised return lies inside the central 90%
                        band of the simulated returns: PIT in ``[0.05, 0.95]``.
``exceed01``, ``exceed05``  share of contexts whose realised return falls below the simulated
                        1% / 5% quantile: PIT below 0.01 / 0.05. Read through the randomised
                        PIT, the three rates are exactly 0.90, 0.01 and 0.05 in expectation
                        for the true model whatever ``n_paths`` (the empirical quantiles of
                        ``M`` paths would cover only about ``(0.9 M - 1) / (M + 1)``); they
                        agree with "below the simulated quantile" up to ``1 / (M + 1)``.
``kurt_*``, ``abs_acf_*``, ``leverage_*``, ``corr_*``  stylized facts
                        (:func:`factorgym.metrics.stylized_facts`) of every simulated path
                        (``_sim``, mean over paths and contexts) and of the real window
                        (``_real``, mean over contexts), on the assets trading on every day
                        of the window: excess kurtosis, ACF of ``|r|`` and leverage
                        ``corr(r_t, r_{t+k}^2)`` averaged over lags ``1..min(max_lag, H-2)``,
                        and the average pairwise correlation.
``drift_train_corr``, ``drift_fwd_corr``  Pearson correlation across assets of each asset's
                        simulated mean daily return (over paths, days and contexts) with its
                        training-period mean and with its realised mean over the same days:
                        a model that memorised each stock's training drift scores high on the
                        first and gains nothing on the second.

The portfolio: on each day of a window, equal weights over the assets that trade on the
context day and on that day (the same weights for the simulated and the realised returns),
rebalanced daily; a context where no asset trades is skipped.

Contexts: context ``c`` is the last history row; the paths describe days ``c+1..c+H``. The
first forecast days are ``first, first + every, ...`` with ``first`` the first day of the part
that has ``min_history`` days of history; a context enters horizon ``H`` when its ``H`` days
lie inside the part (for the test part, inside the panel; for validation, the test rows stay
unseen). Every context is simulated once, up to the longest horizon it enters, and every
horizon is computed from the same paths.

Modules: here the settings, the record and the driver; the statistics in
:mod:`~factorgym.generators.evaluation.rollout_scores`; tables, files and the report section
in :mod:`~factorgym.generators.evaluation.rollout_report`.

Randomness: ``rng`` spawns one stream per context of the grid (whether or not it is
simulated), and each context's stream one per path and one for its PIT, so a context's
figures depend only on the data, the generator and ``rng``: not on the horizons asked for,
nor on how many contexts share a simulator (``batch_paths``). Same seed, same contexts and
streams for every generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from factorgym.data import ReturnPanel, Split
from factorgym.errors import DataValidationError
from factorgym.generators.base import ReturnGenerator, check_context, compute_threads
from factorgym.generators.evaluation.evaluate import with_settings
from factorgym.generators.evaluation.rollout_scores import (
    CONTEXT_COLUMNS,
    HorizonScores,
    quiet,
    score_context,
    score_facts,
    summarise_horizon,
)
from factorgym.progress import Progress

__all__ = [
    "ROLLOUT_METRICS",
    "RolloutOptions",
    "RolloutReport",
    "rollout_diagnostics",
]

#: Scalar keys of one horizon of :attr:`RolloutReport.scalars`, in table order.
ROLLOUT_METRICS: tuple[str, ...] = (
    "n_contexts",
    "vol_spearman",
    "vol_spearman_stock",
    "vol_sim",
    "vol_real",
    "cal_error",
    "cal_floor",
    "cal_floor_p95",
    "cal_pvalue",
    "cal_floor_iid",
    "coverage90",
    "exceed01",
    "exceed05",
    "kurt_sim",
    "kurt_real",
    "abs_acf_sim",
    "abs_acf_real",
    "leverage_sim",
    "leverage_real",
    "corr_sim",
    "corr_real",
    "drift_train_corr",
    "drift_fwd_corr",
)

@dataclass(frozen=True)
class RolloutOptions:
    """Settings of :func:`rollout_diagnostics` (each also accepted as a keyword argument).

    Attributes
    ----------
    horizons : tuple of int
        Path lengths ``H`` in days (each at least 1).
    n_paths : int
        Simulated paths per context ``M`` (at least 2; the 1% quantile needs about 100).
    every : int
        Days between consecutive contexts.
    batch_paths : int
        Paths per simulator: ``max(1, batch_paths // n_paths)`` contexts are simulated
        together. Bounds memory (the windows are ``(P, min_history, N)``); the figures do not
        depend on it.
    max_lag : int
        Largest lag of the stylized-fact ACFs (capped at ``H - 2`` per horizon).
    floor_reps : int
        Repetitions of the simulated calibration noise floor.
    progress : bool
        Show a progress display.
    name : str, optional
        Label of the report (``generator.kind`` by default).
    num_threads : int or None
        Threads of the compute pools while simulating
        (:func:`~factorgym.generators.base.compute_threads`; 1 by default, as the evaluation).
    """

    horizons: tuple[int, ...] = (5, 21, 63)
    n_paths: int = 100
    every: int = 10
    batch_paths: int = 2000
    max_lag: int = 10
    floor_reps: int = 2000
    progress: bool = True
    name: str | None = None
    num_threads: int | None = 1

    def checked_horizons(self) -> tuple[int, ...]:
        """Validate the settings; returns the horizons sorted and without repeats."""
        hs = tuple(self.horizons)
        if not hs or any(isinstance(h, bool) or int(h) != h or h < 1 for h in hs):
            raise DataValidationError(f"horizons must be positive integers, got {self.horizons!r}")
        for key in ("n_paths", "every", "batch_paths", "max_lag", "floor_reps"):
            v = getattr(self, key)
            lo = 2 if key == "n_paths" else 1
            if isinstance(v, bool) or int(v) != v or v < lo:
                raise DataValidationError(f"{key} must be an integer >= {lo}, got {v!r}")
        return tuple(sorted({int(h) for h in hs}))


@dataclass
class RolloutReport:
    """Rollout diagnostics of one generator on one split part.

    Attributes
    ----------
    name : str
    part : str
    horizons : tuple of int, length K
    scalars : dict of int to dict of str to float
        Per horizon, the :data:`ROLLOUT_METRICS` (NaN where not computable).
    contexts : dict of int to pandas.DataFrame
        Per horizon, one row per context (index: the context date, the last history day) with
        :data:`CONTEXT_COLUMNS`: assets in the portfolio, realised and simulated ``H``-day
        portfolio returns (median, 1%, 5%, 95% quantiles), PIT, realised and simulated
        (median and mean over paths) daily volatility.
    drift : dict of int to pandas.DataFrame
        Per horizon, one row per asset: ``train_mean``, ``sim_mean``, ``fwd_mean`` (mean daily
        returns; NaN for an asset never in a window).
    notes : dict of str to str
    config : dict
    """

    name: str
    part: str
    horizons: tuple[int, ...]
    scalars: dict[int, dict[str, float]]
    contexts: dict[int, pd.DataFrame]
    drift: dict[int, pd.DataFrame]
    notes: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per horizon (index ``H``), columns :data:`ROLLOUT_METRICS`."""
        rows = [{k: self.scalars[h].get(k, math.nan) for k in ROLLOUT_METRICS} for h in self.horizons]
        return pd.DataFrame(rows, index=pd.Index(list(self.horizons), name="H"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (scalars, drift per asset, notes, settings)."""
        from factorgym.jsonable import jsonable

        out = {
            "name": self.name,
            "part": self.part,
            "horizons": list(self.horizons),
            "scalars": {str(h): dict(self.scalars[h]) for h in self.horizons},
            "drift": {str(h): {c: self.drift[h][c].to_dict() for c in self.drift[h].columns} for h in self.horizons},
            "notes": dict(self.notes),
            "config": dict(self.config),
        }
        return jsonable(out, inf="null", other="str")


# ----------------------------------------------------------------------------- contexts
@dataclass(frozen=True)
class _Grid:
    """The contexts of a part: rows ``ctx`` (last history day), their stream indices in the
    grid, and per horizon which of them enter."""

    i0: int
    i1: int
    hist: int
    ctx: np.ndarray  # (C,) context rows of the whole grid
    enters: dict[int, np.ndarray]  # H -> (C,) bool
    longest: np.ndarray  # (C,) longest horizon each context enters (0: none)


def _grid(generator: ReturnGenerator, panel: ReturnPanel, split: Split, part: str, every: int, horizons: tuple[int, ...]) -> _Grid:
    bounds = split.bounds(panel.dates)
    if part not in bounds:
        raise DataValidationError(f"unknown split part {part!r}; expected train, val or test")
    i0, i1 = bounds[part]
    if i1 <= i0:
        raise DataValidationError(f"split part {part!r} of {panel.name} is empty")
    assets = getattr(generator, "assets_", None)
    if assets is None:
        raise DataValidationError(f"{type(generator).__name__} is not fitted (no assets_)")
    if tuple(assets) != tuple(panel.assets):
        raise DataValidationError(f"panel assets {list(panel.assets)[:5]}... differ from the generator's {list(assets)[:5]}...")
    hist = int(generator.min_history)
    first = max(i0, hist, 1)
    if first >= i1:
        raise DataValidationError(f"no day of {part!r} has the {hist} days of history {type(generator).__name__} needs")
    check_context(panel, first - 1, hist, tuple(assets))
    days = np.arange(first, i1, every)
    enters = {h: days + h <= i1 for h in horizons}
    if not any(e.any() for e in enters.values()):
        raise DataValidationError(
            f"no context of {part!r} ({i1 - first} days with history) is followed by {min(horizons)} days inside it"
        )
    longest = np.zeros(len(days), dtype=np.int64)
    for h in horizons:
        longest[enters[h]] = h
    return _Grid(i0, i1, hist, days - 1, enters, longest)


# ----------------------------------------------------------------------------- driver
def rollout_diagnostics(
    generator: ReturnGenerator,
    panel: ReturnPanel,
    split: Split,
    part: str = "test",
    *,
    rng: np.random.Generator,
    options: RolloutOptions | None = None,
    **settings: Any,
) -> RolloutReport:
    """Roll ``generator`` forward from many real contexts of ``part`` and compare the paths
    with what followed (definitions: the module docstring).

    Parameters
    ----------
    generator : ReturnGenerator
        Fitted on ``panel.assets`` (in that order).
    panel : ReturnPanel
        The full panel (``T`` days, ``N`` assets); a context's window is its last
        ``min_history`` rows, NaN where an asset is absent.
    split : Split
        The part's rows, and the train rows of the drift comparison.
    part : {"test", "val", "train"}
    rng : numpy.random.Generator
        Source of every draw (one child stream per context of the grid).
    options : RolloutOptions, optional
    **settings
        Fields of :class:`RolloutOptions` (``horizons=(5, 21)``, ``n_paths=200`` ...).

    Returns
    -------
    RolloutReport
        ``scalars[H]`` per horizon, ``contexts[H]`` of shape ``(C_H, 9)``, ``drift[H]`` of
        shape ``(N, 3)``.

    Raises
    ------
    DataValidationError
        Bad settings, an unknown or empty part, a part with no context followed by the
        shortest horizon inside it, assets that differ from the generator's, or a simulator
        that returns malformed paths.
    TypeError
        A keyword that is not a field of :class:`RolloutOptions`.
    """
    opts = with_settings(options if options is not None else RolloutOptions(), settings, "rollout_diagnostics")
    horizons = opts.checked_horizons()
    with compute_threads(opts.num_threads):
        return _run(generator, panel, split, part, rng, opts, horizons)


def _run(
    generator: ReturnGenerator, panel: ReturnPanel, split: Split, part: str, rng: np.random.Generator,
    opts: RolloutOptions, horizons: tuple[int, ...],
) -> RolloutReport:  # fmt: skip
    g = _grid(generator, panel, split, part, int(opts.every), horizons)
    returns, mask = np.asarray(panel.returns, dtype=np.float64), np.asarray(panel.mask, dtype=bool)
    label = opts.name or generator.kind
    n_paths, n_assets = int(opts.n_paths), panel.N
    streams = rng.spawn(len(g.ctx))
    todo = np.nonzero(g.longest > 0)[0]
    per_batch = max(1, int(opts.batch_paths) // n_paths)
    accs = {h: HorizonScores() for h in horizons}
    with Progress(len(todo), f"rollouts of {label} on {part}", enabled=opts.progress, transient=True) as bar:
        for b0 in range(0, len(todo), per_batch):
            batch = todo[b0 : b0 + per_batch]
            kids = [streams[k].spawn(2) for k in batch]  # paths, PIT
            path_rngs = [r for paths, _ in kids for r in paths.spawn(n_paths)]
            us = [float(pit.random()) for _, pit in kids]
            windows = np.repeat(np.stack([returns[g.ctx[k] - g.hist + 1 : g.ctx[k] + 1] for k in batch]), n_paths, axis=0)
            steps = int(g.longest[batch].max())
            sim = generator.simulator_window(windows, path_rngs)
            paths = np.empty((len(path_rngs), steps, n_assets))
            for s in range(steps):
                paths[:, s] = sim.step()
            paths = paths.reshape(len(batch), n_paths, steps, n_assets)
            for h in horizons:
                sims, reals, avails = [], [], []
                for j, k in enumerate(batch):
                    c = int(g.ctx[k])
                    avail = mask[c + 1 : c + 1 + h] & mask[c]
                    if not g.enters[h][k] or not avail.any():
                        continue
                    if not np.isfinite(paths[j, :, :h][:, avail]).all():
                        raise DataValidationError(
                            f"{label}'s simulator returned non-finite returns for assets trading after {panel.dates[c].date()}"
                        )
                    sims.append(paths[j, :, :h])
                    reals.append(returns[c + 1 : c + 1 + h])
                    avails.append(avail)
                    score_context(accs[h], sims[-1], reals[-1], avail, us[j], panel.dates[c])
                score_facts(accs[h], sims, reals, avails, int(opts.max_lag))
            bar.advance(len(batch))

    a = split.bounds(panel.dates)["train"][1]
    with quiet():
        train_mean = np.nanmean(np.where(mask[:a], returns[:a], np.nan), axis=0)
    scalars, contexts, drift = {}, {}, {}
    for h in horizons:
        if not accs[h].rows:
            scalars[h] = {"n_contexts": 0.0}
            contexts[h] = pd.DataFrame(columns=list(CONTEXT_COLUMNS), index=pd.DatetimeIndex([], name="context"))
            drift[h] = pd.DataFrame(index=list(panel.assets), columns=["train_mean", "sim_mean", "fwd_mean"], dtype=float)
            continue
        scalars[h], contexts[h], drift[h] = summarise_horizon(accs[h], h, int(opts.every), int(opts.floor_reps), train_mean)
        drift[h].index = list(panel.assets)
    counts = ", ".join(f"H={h}: {int(scalars[h]['n_contexts'])}" for h in horizons)
    notes = {
        "contexts": f"every {int(opts.every)}th day of {part!r} from {panel.dates[g.ctx[0]].date()}; a context enters horizon H "
        f"when its H days lie inside {part!r} ({counts})",
        "paths": f"{n_paths} paths per context from {type(generator).__name__}.simulator_window, one stream each",
        "portfolio": "equal weights over the assets trading on the context day and on each day of the window, rebalanced daily",
        "cal_floor": "expected cal_error of a calibrated forecaster on the same number of contexts and overlap "
        f"(simulated, {int(opts.floor_reps)} repetitions); cal_floor_iid assumes independent PITs",
    }
    config = {
        "panel": panel.name, "split": {"train_end": split.train_end, "val_end": split.val_end}, "part": part,
        "horizons": list(horizons), "n_paths": n_paths, "every": int(opts.every), "max_lag": int(opts.max_lag),
        "floor_reps": int(opts.floor_reps), "min_history": g.hist, "generator": type(generator).__name__,
        "generator_params": generator.get_params(),
    }  # fmt: skip
    return RolloutReport(label, part, horizons, scalars, contexts, drift, notes, config)

""":func:`evaluate_generator`: one-day-ahead scores of a fitted generator on one split part.

The metrics are defined in the docstring of :mod:`factorgym.generators.evaluation`; the
scores themselves are in :mod:`~factorgym.generators.evaluation.scoring`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from factorgym import metrics as M
from factorgym.data import ReturnPanel, Split
from factorgym.errors import DataValidationError
from factorgym.generators.base import ReturnGenerator, check_context, compute_threads
from factorgym.generators.evaluation.report import GeneratorReport
from factorgym.generators.evaluation.scoring import (
    DayScores,
    level_key,
    score_calibration,
    score_likelihood,
    score_moments,
    score_rules,
    score_var,
    summarise_calibration,
    summarise_covariance,
    summarise_likelihood,
    summarise_rules,
    summarise_var,
)
from factorgym.progress import Progress

__all__ = ["EvaluationDays", "EvaluationOptions", "evaluate_generator", "evaluation_days", "train_scale"]


@dataclass(frozen=True)
class EvaluationOptions:
    """Settings of :func:`evaluate_generator` (each also accepted as a keyword argument).

    Attributes
    ----------
    n_samples : int
        Joint samples per day (portfolio PIT and VaR, CRPS, energy score). At least 2; the
        99% VaR needs a few hundred to be meaningful.
    sim_paths : int
        Simulated paths for the stylized facts (0 skips them).
    sim_horizon : int
        Days per simulated path (capped at the length of the part).
    progress : bool
        Show a progress display (:class:`factorgym.progress.Progress`).
    name : str, optional
        Label of the report; ``generator.kind`` by default.
    batch_size : int
        Days per ``predict_windows`` call.
    energy_samples : int
        Samples used for the energy score (memory ``O(energy_samples^2 N)`` per day).
    var_levels : tuple of float
        VaR confidence levels of the portfolio backtests.
    whitening : {"symmetric", "cholesky"}
        See :func:`factorgym.metrics.whiten`.
    max_lag : int
        Largest lag of the stylized-fact ACFs.
    nll_scale : {"pooled", "per_asset"}
        How returns are scaled for NLL, CRPS and energy score (package docstring).
    day_stride : int
        Evaluate every ``day_stride``-th day of the part only (1: every day). For generators
        whose predictions are expensive (a diffusion model samples every day); the days kept
        still span the whole part, the report's ``n_days`` and notes say how many, and the
        VaR independence test then tests independence of hits ``day_stride`` days apart.
    num_threads : int or None
        Threads of the BLAS, OpenMP and torch pools while the generator is evaluated
        (:func:`~factorgym.generators.base.compute_threads`; restored afterwards; ``None``
        leaves them as they are). 1 by default: the per-day work is small, a second thread
        gains nothing on an idle 2-core machine and made the diffusion model's evaluation 3.1
        times slower with one other busy process (``benchmarks/results/load.md``). The
        scores do not depend on it.
    """

    n_samples: int = 1000
    sim_paths: int = 100
    sim_horizon: int = 252
    progress: bool = True
    name: str | None = None
    batch_size: int = 64
    energy_samples: int = 256
    var_levels: tuple[float, ...] = (0.95, 0.99)
    whitening: Literal["symmetric", "cholesky"] = "symmetric"
    max_lag: int = 10
    nll_scale: Literal["pooled", "per_asset"] = "pooled"
    day_stride: int = 1
    num_threads: int | None = 1

    def checked_levels(self) -> tuple[float, ...]:
        """Validate the numeric settings; returns the VaR levels as floats."""
        if self.n_samples < 2:
            raise DataValidationError(f"n_samples must be at least 2, got {self.n_samples}")
        if int(self.day_stride) != self.day_stride or self.day_stride < 1:
            raise DataValidationError(f"day_stride must be a positive integer, got {self.day_stride!r}")
        if self.num_threads is not None and (isinstance(self.num_threads, bool) or int(self.num_threads) != self.num_threads or self.num_threads < 1):
            raise DataValidationError(f"num_threads must be a positive integer or None, got {self.num_threads!r}")
        if self.batch_size < 1 or self.energy_samples < 2 or self.sim_paths < 0 or self.sim_horizon < 1:
            raise DataValidationError("batch_size >= 1, energy_samples >= 2, sim_paths >= 0 and sim_horizon >= 1 are required")
        return tuple(M.check_level(v, "var level") for v in self.var_levels)


@dataclass(frozen=True)
class EvaluationDays:
    """The days an evaluation scores and what every day's scores need.

    Attributes
    ----------
    part : str
    i0, i1 : int
        Rows ``[i0, i1)`` of the part.
    first : int
        First scored row (later than ``i0`` when the part starts without enough history).
    hist : int
        ``min_history`` of the generator.
    days : ndarray (D,)
        Scored rows (every ``day_stride``-th from ``first``).
    label : str
    scale : ndarray (N,)
        Train scale of the returns (:func:`train_scale`).
    cov_idx : ndarray (K,)
        Assets trading on every scored day (the covariance universe).
    """

    part: str
    i0: int
    i1: int
    first: int
    hist: int
    days: np.ndarray
    label: str
    scale: np.ndarray
    cov_idx: np.ndarray


def train_scale(panel: ReturnPanel, split: Split, how: str = "pooled") -> np.ndarray:
    """Train-period scale ``(N,)``: pooled std of all train returns, or each asset's own."""
    if how not in ("pooled", "per_asset"):
        raise DataValidationError(f"nll_scale must be 'pooled' or 'per_asset', got {how!r}")
    _, a = split.bounds(panel.dates)["train"]
    train = np.asarray(panel.returns[:a])
    mask = np.asarray(panel.mask[:a])
    n = mask.sum(axis=0)
    bad = [panel.assets[j] for j in np.nonzero(n < 2)[0]]
    if bad:
        raise DataValidationError(f"assets with fewer than 2 train days (no train std for NLL scaling): {', '.join(bad[:5])}")
    if how == "pooled":
        s = np.full(panel.N, np.std(train[mask], ddof=1))
    else:
        s = np.array([np.std(train[mask[:, j], j], ddof=1) for j in range(panel.N)])
    if (s <= 0).any():
        raise DataValidationError(f"assets with constant train returns: {', '.join(np.asarray(panel.assets)[s <= 0][:5])}")
    return s


def evaluation_days(
    generator: ReturnGenerator, panel: ReturnPanel, split: Split, part: str, opts: EvaluationOptions
) -> EvaluationDays:
    """Check the generator against the panel and collect the days of ``part`` it can be scored on."""
    bounds = split.bounds(panel.dates)
    if part not in bounds:
        raise DataValidationError(f"unknown split part {part!r}; expected train, val or test")
    i0, i1 = bounds[part]
    if i1 <= i0:
        raise DataValidationError(f"split part {part!r} of {panel.name} is empty")
    assets = getattr(generator, "assets_", None)  # the fitted attribute; absent before fit
    if assets is None:
        raise DataValidationError(f"{type(generator).__name__} is not fitted (no assets_)")
    if tuple(assets) != tuple(panel.assets):
        raise DataValidationError(
            f"panel assets {list(panel.assets)[:5]}... differ from the generator's {list(assets)[:5]}..."
        )
    hist = int(generator.min_history)
    first = max(i0, hist, 1)
    if first >= i1:
        raise DataValidationError(
            f"no day of {part!r} has the {hist} days of history {type(generator).__name__} needs"
        )
    check_context(panel, first - 1, hist, tuple(assets))
    days = np.arange(first, i1)[:: int(opts.day_stride)]
    scale = train_scale(panel, split, opts.nll_scale)
    cov_idx = np.nonzero(np.asarray(panel.mask)[days].all(axis=0))[0]
    label = opts.name or generator.kind
    return EvaluationDays(part, i0, i1, first, hist, days, label, scale, cov_idx)


def _score_days(
    generator: ReturnGenerator, panel: ReturnPanel, ev: EvaluationDays, opts: EvaluationOptions,
    levels: tuple[float, ...], day_rngs: list[np.random.Generator],
) -> DayScores:  # fmt: skip
    """Predict every evaluated day in batches and score it against the realised returns."""
    returns, mask = np.asarray(panel.returns), np.asarray(panel.mask)
    n_days, n, n_samples = len(ev.days), panel.N, opts.n_samples
    log_scale = np.log(ev.scale)
    s = DayScores.empty(n_days, n, levels, len(ev.cov_idx))
    with Progress(n_days, f"evaluating {ev.label} on {ev.part}", enabled=opts.progress, transient=True) as bar:
        for b0 in range(0, n_days, opts.batch_size):
            batch = ev.days[b0 : b0 + opts.batch_size]
            preds = generator.predict_windows(np.stack([returns[d - ev.hist : d] for d in batch]))
            if len(preds) != len(batch):
                raise DataValidationError(f"predict_windows returned {len(preds)} predictions for {len(batch)} windows")
            for j, (d, pred) in enumerate(zip(batch, preds, strict=True)):
                i = b0 + j
                s.note_predictive(pred)
                m = mask[d]
                if not m.any():  # nothing trades (e.g. a holiday row): no realised value to score
                    continue
                y = returns[d]
                samples = np.asarray(pred.sample(n_samples, day_rngs[i]), dtype=np.float64)
                if samples.shape != (n_samples, n) or not np.isfinite(samples[:, m]).all():
                    raise DataValidationError(
                        f"{ev.label} returned malformed samples on {panel.dates[d].date()} "
                        f"(shape {samples.shape}, expected {(n_samples, n)}, or non-finite values)"
                    )
                score_likelihood(s, i, pred, y, m, log_scale)
                score_calibration(s, i, pred, y, m, samples, day_rngs[i])
                score_var(s, i, samples, m)
                score_rules(s, i, y, samples, m, ev.scale, opts.energy_samples)
                score_moments(s, i, pred, y, m, ev.scale, ev.cov_idx)
            bar.advance(len(batch))
    return s


def score_stylized_facts(
    generator: ReturnGenerator, panel: ReturnPanel, ev: EvaluationDays, opts: EvaluationOptions,
    rng: np.random.Generator, scalars: dict[str, float], notes: dict[str, str],
) -> M.StylizedFactsComparison | None:  # fmt: skip
    """Stylized facts of ``sim_paths`` paths simulated from the day before the part against
    the real part's first ``sim_horizon`` days (None when skipped or not computable)."""
    if opts.sim_paths <= 0:
        return None
    first, n_paths, max_lag = ev.first, opts.sim_paths, opts.max_lag
    horizon = min(opts.sim_horizon, ev.i1 - first)
    real = np.asarray(panel.returns)[first : first + horizon]
    cols = np.nonzero(np.asarray(panel.mask)[first : first + horizon].all(axis=0))[0]
    if horizon <= max_lag + 1 or len(cols) < 2:
        notes["stylized"] = f"unavailable: {horizon} days / {len(cols)} fully available assets are too few"
        return None
    sims = generator.simulate(panel, first - 1, horizon, n_paths, rng)
    if sims.shape != (n_paths, horizon, panel.N) or not np.isfinite(sims[:, :, cols]).all():
        raise DataValidationError(f"{ev.label}.simulate returned malformed paths (shape {sims.shape})")
    stylized = M.compare_stylized_facts(sims[:, :, cols], real[:, cols], max_lag)
    for k, v in stylized.distances.items():
        scalars[f"sf_{k}"] = v
    notes["stylized"] = (
        f"{n_paths} simulated paths of {horizon} days from {panel.dates[first - 1].date()} vs the real "
        f"{panel.dates[first].date()}..{panel.dates[first + horizon - 1].date()} ({len(cols)} assets, lags 1..{max_lag})"
    )
    return stylized


def evaluate_generator(
    generator: ReturnGenerator,
    panel: ReturnPanel,
    split: Split,
    part: str = "test",
    *,
    rng: np.random.Generator,
    options: EvaluationOptions | None = None,
    **settings: Any,
) -> GeneratorReport:
    """Evaluate ``generator``'s one-day-ahead predictions on ``split``'s ``part`` of ``panel``.

    See the package docstring for every metric's definition.

    Parameters
    ----------
    generator : ReturnGenerator
        Fitted on ``panel.assets`` (in that order).
    panel : ReturnPanel
        The full panel; windows for day ``d`` are rows ``d - min_history .. d - 1``.
    split : Split
        Defines the part evaluated and the train rows whose std scales the returns.
    part : {"test", "val", "train"}
    rng : numpy.random.Generator
        Source of every random draw (one child stream per day, one for the simulation).
    options : EvaluationOptions, optional
        The settings (defaults: ``EvaluationOptions()``).
    **settings
        Fields of :class:`EvaluationOptions` (``n_samples=500``, ``sim_paths=0`` ...),
        overriding ``options``.

    Returns
    -------
    GeneratorReport

    Raises
    ------
    DataValidationError
        Unknown or empty part, assets that differ from the generator's, too little history,
        or a generator that returns malformed predictions.
    TypeError
        A keyword that is not a field of :class:`EvaluationOptions`.
    """
    opts = with_settings(options if options is not None else EvaluationOptions(), settings, "evaluate_generator")
    levels = opts.checked_levels()
    with compute_threads(opts.num_threads):
        return _evaluate(generator, panel, split, part, rng, opts, levels)


def with_settings(options: Any, settings: dict[str, Any], caller: str) -> Any:
    """``options`` (a dataclass) with the keyword ``settings`` replaced; a keyword that is not
    one of its fields is a :class:`TypeError` naming it, as for any Python function."""
    if not settings:
        return options
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(options)})
    if unknown:
        raise TypeError(f"{caller}() got unexpected keyword arguments: {', '.join(unknown)}")
    return dataclasses.replace(options, **settings)


def _evaluate(
    generator: ReturnGenerator, panel: ReturnPanel, split: Split, part: str, rng: np.random.Generator,
    opts: EvaluationOptions, levels: tuple[float, ...],
) -> GeneratorReport:  # fmt: skip
    """:func:`evaluate_generator` once the settings are checked (inside the thread limit)."""
    ev = evaluation_days(generator, panel, split, part, opts)
    n_days = len(ev.days)
    sim_rng, day_parent = rng.spawn(2)
    s = _score_days(generator, panel, ev, opts, levels, day_parent.spawn(n_days))

    if len(s.flags) > 1:
        raise DataValidationError(f"{ev.label}'s predictives disagree on has_closed_form/has_log_prob across days: {s.flags}")
    closed_form, has_lp = s.flags.pop()
    notes: dict[str, str] = {}
    scalars: dict[str, float] = {"n_days": float(n_days)}
    if opts.day_stride > 1:
        notes["days"] = f"every {int(opts.day_stride)}th day of {part!r} ({n_days} days), not every day"
    summarise_likelihood(s, closed_form, has_lp, opts.nll_scale, scalars, notes)
    moments = "closed form" if closed_form or s.exact_moments else "estimated from the predictive's samples"
    realised = np.asarray(panel.returns)[np.ix_(ev.days, ev.cov_idx)]
    whitened = summarise_covariance(s, realised, opts.whitening, moments, scalars, notes)
    per_asset, days_asset = summarise_calibration(s, closed_form, opts.n_samples, scalars, notes)
    backtests, hits = summarise_var(s, opts.n_samples, scalars, notes)
    summarise_rules(s, opts.n_samples, opts.energy_samples, scalars, notes)
    stylized = score_stylized_facts(generator, panel, ev, opts, sim_rng, scalars, notes)
    if ev.first > ev.i0:
        notes["history"] = f"the first {ev.first - ev.i0} days of {part!r} lack {ev.hist} days of history and were skipped"
    return _report(generator, panel, split, ev, opts, levels, s, scalars, notes, whitened, per_asset, days_asset, backtests, hits, stylized)


def _report(
    generator: ReturnGenerator, panel: ReturnPanel, split: Split, ev: EvaluationDays, opts: EvaluationOptions,
    levels: tuple[float, ...], s: DayScores, scalars: dict[str, float], notes: dict[str, str], whitened: np.ndarray,
    per_asset: np.ndarray, days_asset: np.ndarray, backtests: dict[str, M.VaRBacktest], hits: dict[float, np.ndarray],
    stylized: M.StylizedFactsComparison | None,
) -> GeneratorReport:  # fmt: skip
    """Assemble the :class:`GeneratorReport` (per-day table, settings) from the scores."""
    per_day_cols: dict[str, np.ndarray] = {
        "n_assets": np.asarray(panel.mask)[ev.days].sum(axis=1),
        "nll_joint": s.nll_joint,
        "nll_ind": s.nll_ind,
        "crps": s.crps,
        "energy_score": s.energy,
        "cov_mse_outer": s.cov_outer,
        "port_return": s.port_ret,
        "port_pit": s.port_pit,
    }
    for lv in levels:
        key = level_key(lv)
        per_day_cols[f"var_{key}"] = s.var[lv]
        per_day_cols[f"hit_{key}"] = hits[lv]
    dates = panel.dates[ev.days]
    return GeneratorReport(
        name=ev.label,
        part=ev.part,
        dates=dates,
        assets=tuple(panel.assets),
        scalars=scalars,
        notes=notes,
        calibration_per_asset=pd.Series(per_asset, index=list(panel.assets), name="calibration_error"),
        days_per_asset=pd.Series(days_asset, index=list(panel.assets), name="days"),
        per_day=pd.DataFrame(per_day_cols, index=dates),
        pit=s.pit,
        whitened=whitened,
        cov_assets=tuple(panel.assets[k] for k in ev.cov_idx),
        var_backtests=backtests,
        stylized=stylized,
        config={
            "panel": panel.name,
            "split": {"train_end": split.train_end, "val_end": split.val_end},
            "n_samples": opts.n_samples,
            "energy_samples": min(opts.energy_samples, opts.n_samples),
            "sim_paths": opts.sim_paths,
            "sim_horizon": opts.sim_horizon,
            "var_levels": list(levels),
            "whitening": opts.whitening,
            "max_lag": opts.max_lag,
            "nll_scale": opts.nll_scale,
            "day_stride": int(opts.day_stride),
            "min_history": ev.hist,
            "generator": type(generator).__name__,
            "generator_params": generator.get_params(),
        },
    )

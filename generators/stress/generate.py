"""Generation of the scenario kinds (``factor_shock``, ``vol_regime``, ``crisis``, ``replay``).

Shapes: ``S`` scenarios, ``H`` days, ``N`` assets, ``F`` factors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from factorgym.data import ReturnPanel
from factorgym.errors import DataValidationError
from factorgym.generators.base import FactorPredictive, ReturnGenerator
from factorgym.generators.stress.io import ScenarioSet, read_scenarios
from factorgym.generators.stress.spec import NAMED_WINDOWS, StressSpec

__all__ = ["factor_shock", "generate", "market_factor", "regenerate", "vol_regime"]


def market_factor(beta: np.ndarray) -> tuple[int, float]:
    """Index of the factor most like the market and its orientation sign.

    The factor with the largest absolute equal-weight exposure ``mean_i beta_if``; the sign
    makes a negative factor value a fall of the equal-weight portfolio.
    """
    ew = np.asarray(beta, dtype=np.float64).mean(axis=0)
    f = int(np.argmax(np.abs(ew)))
    return f, float(np.sign(ew[f]) or 1.0)


def _context(panel: ReturnPanel, date: str, min_history: int) -> tuple[int, np.ndarray]:
    """Row of the context ``date`` and the history window ``(min_history, N)`` ending there."""
    if pd.Timestamp(date) > panel.dates[-1]:
        raise DataValidationError(
            f"context date {date} is after the last day of {panel.name} ({panel.dates[-1].date()}); "
            "the scenarios need real history up to it"
        )
    t = panel.index_of(date)
    if t + 1 < min_history:
        raise DataValidationError(f"context {date} has {t + 1} days of history; the generator needs {min_history}")
    return t, np.asarray(panel.returns[t + 1 - min_history : t + 1])


def factor_shock(gen: ReturnGenerator, window: np.ndarray, spec: StressSpec, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """``factor_shock`` paths ``(S, 1, N)`` and their diagnostics (see the package docstring)."""
    pred = gen.predict_window(window)
    S = spec.n_scenarios  # noqa: N806
    if isinstance(pred, FactorPredictive):
        f, sign = market_factor(pred.beta)
        sd = float(np.sqrt(np.diag(pred.factor_cov())[f]))
        info: dict[str, Any] = {"method": "latent factor", "factor": f, "factor_sd": sd}
        if spec.shift_sd is not None:
            z = pred.sample_factors(S, rng)
            z[:, f] += sign * spec.shift_sd * sd
            info["shift"] = sign * spec.shift_sd * sd
        else:
            q = float(spec.quantile)
            n_draw = int(np.ceil(S / q * 1.5)) + 100
            z = pred.sample_factors(n_draw, rng)
            oriented = sign * z[:, f]
            thr = float(np.quantile(oriented, q))
            keep = np.nonzero(oriented <= thr)[0]
            while keep.size < S:  # top up (rare): draw more until enough fall below the threshold
                extra = pred.sample_factors(n_draw, rng)
                z = np.concatenate([z, extra])
                keep = np.nonzero(sign * z[:, f] <= thr)[0]
            z = z[keep[:S]]
            info["threshold"] = sign * thr
        return pred.sample_given_factors(z, rng)[:, None, :], info
    if spec.shift_sd is not None:
        raise DataValidationError(
            f"shift_sd needs a generator with latent factors (NeuralFactors); {type(gen).__name__} has none — use quantile"
        )
    q = float(spec.quantile)
    n_draw = int(np.ceil(S / q * 1.5)) + 100
    draws = pred.sample(n_draw, rng)
    ew = draws.mean(axis=1)
    thr = float(np.quantile(ew, q))
    keep = np.nonzero(ew <= thr)[0][:S]
    if keep.size < S:
        raise DataValidationError("too few scenarios below the threshold; raise n_scenarios or quantile")
    return draws[keep][:, None, :], {"method": "filter on equal-weight return", "threshold": thr}


def vol_regime(gen: ReturnGenerator, window: np.ndarray, spec: StressSpec, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """``vol_regime`` paths ``(S, H, N)`` and their diagnostics (see the package docstring)."""
    s = float(spec.vol_scale)
    if spec.horizon == 1:
        pred = gen.predict_window(window)
        mu = pred.mean()
        r0 = pred.sample(spec.n_scenarios, rng)
        return (mu + s * (r0 - mu))[:, None, :], {"method": "scaled predictive dispersion", "vol_scale": s}
    # multi-day: scale each simulated day's deviation from that day's predictive mean
    sim = gen.simulator_window(window, rng.spawn(spec.n_scenarios))
    out = np.empty((spec.n_scenarios, spec.horizon, window.shape[1]))
    for h in range(spec.horizon):
        try:
            mu, _ = sim.moments()
        except NotImplementedError:
            mu = None
        r0 = sim.step()
        if mu is None:
            mu = r0.mean(axis=0, keepdims=True)
        out[:, h] = np.maximum(mu + s * (r0 - mu), -0.99)
    return out, {"method": "scaled dispersion around each day's predictive mean (paths roll on unscaled samples)", "vol_scale": s}


def generate(spec: StressSpec, *, generator: ReturnGenerator | None = None, panel: ReturnPanel | None = None) -> ScenarioSet:
    """Generate the scenario set described by ``spec``.

    ``generator`` / ``panel`` may be passed to avoid reloading (they must be the ones the
    spec names); otherwise they are loaded from ``spec.run`` / ``spec.dataset``.
    """
    from factorgym.generators.runs import load_run
    from factorgym.io import load_source

    panel = panel if panel is not None else load_source(spec.dataset)
    rng = np.random.default_rng(spec.seed)
    if spec.kind == "replay":
        a, b = NAMED_WINDOWS[str(spec.window)]
        part = panel.loc(a, b)
        return ScenarioSet(spec, panel.assets, part.filled(0.0)[None], str(part.dates[0].date()), {"days": part.T})
    if generator is None:
        generator, _, _ = load_run(str(spec.run))
    t, window = _context(panel, str(spec.date), generator.min_history)
    ctx = str(panel.dates[t].date())
    if spec.kind == "factor_shock":
        paths, info = factor_shock(generator, window, spec, rng)
    elif spec.kind == "vol_regime":
        paths, info = vol_regime(generator, window, spec, rng)
    else:  # crisis
        paths = generator.simulate(panel, t, spec.horizon, spec.n_scenarios, rng)
        info = {"method": "rolled forward on own samples"}
    return ScenarioSet(spec, tuple(panel.assets), np.asarray(paths, dtype=np.float64), ctx, info)


def regenerate(path: str | Path) -> ScenarioSet:
    """Re-create a saved scenario set from its stored specification."""
    return generate(read_scenarios(path).spec)

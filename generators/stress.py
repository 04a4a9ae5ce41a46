"""Synthetic stress scenarios from any trained generator.

A :class:`StressSpec` fully specifies a scenario set (generator run, dataset, context date,
shock, horizon, count, seed); :func:`generate` turns it into a :class:`ScenarioSet` of
simple-return paths ``(S, H, N)``, and :func:`regenerate` re-creates the identical set from
a saved file's specification. Kinds:

``factor_shock``
    Market-level shock on the next day. For a generator whose predictive exposes its
    latent factors (NeuralFactors: ``sample_factors`` / ``sample_given_factors``) the
    factor most like the market (largest absolute equal-weight exposure ``mean_i beta_if``,
    oriented so that a negative value is a market fall) is conditioned: either below its
    ``quantile`` (rejection sampling from the prior) or shifted by ``shift_sd`` of its
    standard deviation; stock returns are then sampled given the factors. For other
    generators the same market-level criterion is applied to the equal-weight return of
    their samples (filtering below its ``quantile``; ``shift_sd`` is not available).
``vol_regime``
    The predicted dispersion scaled by ``vol_scale``: ``r = mu + s (r0 - mu)`` around the
    predictive mean, applied to ``H``-day paths day by day.
``crisis``
    Paths rolled forward on the generator's own samples from the real history ending at
    ``date`` (e.g. 2008-09-12, 2020-02-19); :func:`realised_comparison` reports how much
    probability the generator gave to what actually followed.
``replay``
    The real returns of a named window (:data:`NAMED_WINDOWS`) as the single reference path.

Every set is saved as Parquet (long format: scenario, day, asset, return) with the JSON
specification in the file's metadata and in a ``.spec.json`` sidecar.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from factorgym.artifacts import atomic_write_bytes, atomic_write_text
from factorgym.data import ReturnPanel
from factorgym.errors import CheckpointError, DataValidationError

__all__ = [
    "NAMED_WINDOWS",
    "ScenarioReplay",
    "ScenarioSet",
    "StressSpec",
    "generate",
    "loss_summary",
    "market_factor",
    "portfolio_path_returns",
    "read_scenarios",
    "realised_comparison",
    "regenerate",
]

#: Named historical stress windows (inclusive dates) for ``replay`` and crisis contexts.
NAMED_WINDOWS: dict[str, tuple[str, str]] = {
    "gfc-2008": ("2008-09-15", "2009-03-09"),
    "covid-2020": ("2020-02-20", "2020-03-23"),
}

KINDS = ("factor_shock", "vol_regime", "crisis", "replay")


@dataclass(frozen=True)
class StressSpec:
    """Everything needed to regenerate a scenario set exactly.

    Parameters
    ----------
    kind : {"factor_shock", "vol_regime", "crisis", "replay"}
    run : str or None
        Generator run folder (or artifact); None only for ``replay``.
    dataset : str
        Embedded dataset name or data file the context comes from.
    date : str or None
        Last real day of the conditioning history (a non-trading date means the last
        trading day before it). For ``replay``: unused.
    window : str or None
        A :data:`NAMED_WINDOWS` key for ``replay``.
    horizon : int
        Days per scenario path (``factor_shock`` is one day).
    n_scenarios : int
    seed : int
    quantile : float or None
        ``factor_shock``: keep scenarios whose market factor (or equal-weight return) is
        below this quantile of its predictive distribution.
    shift_sd : float or None
        ``factor_shock`` (latent-factor generators only): shift the market factor by this
        many standard deviations instead (negative = market down).
    vol_scale : float
        ``vol_regime``: dispersion multiplier.
    """

    kind: str
    run: str | None = None
    dataset: str = "sp500"
    date: str | None = None
    window: str | None = None
    horizon: int = 1
    n_scenarios: int = 2000
    seed: int = 0
    quantile: float | None = 0.01
    shift_sd: float | None = None
    vol_scale: float = 2.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DataValidationError(f"unknown stress kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.kind != "replay" and self.run is None:
            raise DataValidationError(f"stress kind {self.kind!r} needs a generator run")
        if self.kind == "replay" and self.window not in NAMED_WINDOWS:
            raise DataValidationError(
                f"replay needs a named window, one of {', '.join(NAMED_WINDOWS)}; got {self.window!r}"
            )
        if self.kind != "replay" and self.date is None:
            raise DataValidationError(f"stress kind {self.kind!r} needs a context date")
        if self.horizon < 1 or self.n_scenarios < 1:
            raise DataValidationError("horizon and n_scenarios must be >= 1")
        if self.kind == "factor_shock":
            if (self.quantile is None) == (self.shift_sd is None):
                raise DataValidationError("factor_shock needs exactly one of quantile and shift_sd")
            if self.quantile is not None and not 0 < self.quantile < 1:
                raise DataValidationError(f"quantile must be in (0, 1), got {self.quantile}")
        if self.kind == "vol_regime" and not self.vol_scale > 0:
            raise DataValidationError(f"vol_scale must be positive, got {self.vol_scale}")

    def to_json(self) -> str:
        """Canonical JSON form."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StressSpec:
        """Inverse of :meth:`to_json`."""
        return cls(**json.loads(text))


@dataclass(frozen=True, eq=False)
class ScenarioSet:
    """Scenario paths with their specification.

    Attributes
    ----------
    spec : StressSpec
    assets : tuple of str, length N
    paths : ndarray of shape (S, H, N)
        Simple daily returns.
    context_date : str or None
        The last real day the scenarios condition on (first day of the window for replay).
    info : dict
        Diagnostics (e.g. the market-factor threshold, acceptance rate).
    """

    spec: StressSpec
    assets: tuple[str, ...]
    paths: np.ndarray
    context_date: str | None
    info: dict[str, Any]

    def to_frame(self) -> pd.DataFrame:
        """Long format: columns scenario, day, asset, return."""
        S, H, N = self.paths.shape  # noqa: N806
        return pd.DataFrame(
            {
                "scenario": np.repeat(np.arange(S), H * N),
                "day": np.tile(np.repeat(np.arange(1, H + 1), N), S),
                "asset": np.tile(np.asarray(self.assets, dtype=object), S * H),
                "return": self.paths.reshape(-1),
            }
        )

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (Parquet, spec in its metadata) and ``path.spec.json`` atomically."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        meta = {"spec": self.spec.to_json(), "context_date": self.context_date or "", "info": json.dumps(self.info, default=str)}
        table = pa.Table.from_pandas(self.to_frame(), preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **{f"factorgym.{k}": v for k, v in meta.items()}})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        atomic_write_bytes(path, sink.getvalue().to_pybytes())
        atomic_write_text(path.with_name(path.name + ".spec.json"), json.dumps(json.loads(self.spec.to_json()), indent=2))
        return path


def read_scenarios(path: str | Path) -> ScenarioSet:
    """Read a scenario set written by :meth:`ScenarioSet.save`."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no scenario file at {path}")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise CheckpointError(f"{path} is not a readable Parquet scenario file: {exc}") from exc
    md = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    if "factorgym.spec" not in md:
        raise CheckpointError(f"{path} has no factorgym stress specification in its metadata")
    spec = StressSpec.from_json(md["factorgym.spec"])
    df = table.to_pandas()
    S, H = int(df["scenario"].max()) + 1, int(df["day"].max())  # noqa: N806
    assets = tuple(pd.unique(df["asset"]))
    paths = df["return"].to_numpy(dtype=np.float64).reshape(S, H, len(assets))
    return ScenarioSet(spec, assets, paths, md.get("factorgym.context_date") or None, json.loads(md.get("factorgym.info", "{}")))


# ------------------------------------------------------------------------------- generation
def market_factor(beta: np.ndarray) -> tuple[int, float]:
    """Index of the factor most like the market and its orientation sign.

    The factor with the largest absolute equal-weight exposure ``mean_i beta_if``; the sign
    makes a negative factor value a fall of the equal-weight portfolio.
    """
    ew = np.asarray(beta, dtype=np.float64).mean(axis=0)
    f = int(np.argmax(np.abs(ew)))
    return f, float(np.sign(ew[f]) or 1.0)


def _context(panel: ReturnPanel, date: str, min_history: int) -> tuple[int, np.ndarray]:
    t = panel.index_of(date)
    if t + 1 < min_history:
        raise DataValidationError(f"context {date} has {t + 1} days of history; the generator needs {min_history}")
    return t, np.asarray(panel.returns[t + 1 - min_history : t + 1])


def _factor_shock(gen: Any, window: np.ndarray, spec: StressSpec, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    pred = gen.predict_window(window)
    S = spec.n_scenarios  # noqa: N806
    if hasattr(pred, "sample_factors") and hasattr(pred, "sample_given_factors") and hasattr(pred, "beta"):
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


def _vol_regime(gen: Any, window: np.ndarray, spec: StressSpec, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
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


def generate(spec: StressSpec, *, generator: Any | None = None, panel: ReturnPanel | None = None) -> ScenarioSet:
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
        paths, info = _factor_shock(generator, window, spec, rng)
    elif spec.kind == "vol_regime":
        paths, info = _vol_regime(generator, window, spec, rng)
    else:  # crisis
        paths = generator.simulate(panel, t, spec.horizon, spec.n_scenarios, rng)
        info = {"method": "rolled forward on own samples"}
    return ScenarioSet(spec, tuple(panel.assets), np.asarray(paths, dtype=np.float64), ctx, info)


def regenerate(path: str | Path) -> ScenarioSet:
    """Re-create a saved scenario set from its stored specification."""
    return generate(read_scenarios(path).spec)


# ------------------------------------------------------------------------------- analysis
def portfolio_path_returns(paths: np.ndarray, weights: np.ndarray, rebalance: bool = True) -> np.ndarray:
    """Cumulative simple return of a portfolio over each scenario path.

    Parameters
    ----------
    paths : ndarray of shape (S, H, N)
    weights : ndarray of shape (N,)
        Risky weights (cash ``1 - sum``, earning nothing).
    rebalance : bool
        True: back to ``weights`` every day (costless constant mix); False: buy and hold.

    Returns
    -------
    ndarray of shape (S,)
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (paths.shape[-1],):
        raise DataValidationError(f"weights have shape {w.shape}, expected ({paths.shape[-1]},)")
    if rebalance:
        return np.prod(1.0 + paths @ w, axis=1) - 1.0
    growth = np.prod(1.0 + paths, axis=1)  # (S, N)
    return growth @ w + (1.0 - w.sum()) - 1.0


def loss_summary(returns: np.ndarray, levels: tuple[float, ...] = (0.95, 0.99)) -> dict[str, float]:
    """VaR and expected shortfall (positive losses) of scenario returns ``(S,)``.

    ``VaR_a`` is the empirical ``a``-quantile of the loss ``-R``; ``ES_a`` the mean loss at
    or beyond it.
    """
    from factorgym.metrics import historical_cvar, historical_var

    r = np.asarray(returns, dtype=np.float64)
    out: dict[str, float] = {"mean_return": float(r.mean()), "worst": float(-r.min()), "n": float(r.size)}
    for a in levels:
        out[f"VaR{int(round(a * 100))}"] = float(historical_var(r, a))
        out[f"ES{int(round(a * 100))}"] = float(historical_cvar(r, a))
    return out


def realised_comparison(scenarios: ScenarioSet, panel: ReturnPanel, weights: np.ndarray | None = None) -> dict[str, float]:
    """How much probability a crisis scenario set gave to what actually followed.

    Compares the portfolio (default: equal weight, daily rebalanced) over the real days after
    the context date with the scenario distribution: the realised cumulative return, the
    realised maximum drawdown, and the fraction of scenarios at least as bad on each.
    """
    from factorgym.metrics import max_drawdown

    S, H, N = scenarios.paths.shape  # noqa: N806
    w = np.full(N, 1.0 / N) if weights is None else np.asarray(weights, dtype=np.float64)
    t = panel.index_of(str(scenarios.context_date))
    real = panel.filled(0.0)[t + 1 : t + 1 + H]
    if real.shape[0] < H:
        raise DataValidationError(f"only {real.shape[0]} real days follow {scenarios.context_date}; horizon is {H}")
    real_daily = real @ w
    real_cum = float(np.prod(1 + real_daily) - 1)
    real_dd = float(max_drawdown(real_daily))
    sim_daily = scenarios.paths @ w  # (S, H)
    sim_cum = np.prod(1 + sim_daily, axis=1) - 1
    sim_dd = np.asarray(max_drawdown(sim_daily.T))  # (S,)
    return {
        "realised_return": real_cum,
        "realised_max_drawdown": real_dd,
        "prob_return_at_most_realised": float(np.mean(sim_cum <= real_cum)),
        "prob_drawdown_at_least_realised": float(np.mean(sim_dd >= real_dd)),
        "sim_median_return": float(np.median(sim_cum)),
        "sim_5pct_return": float(np.quantile(sim_cum, 0.05)),
        "sim_median_max_drawdown": float(np.median(sim_dd)),
        "sim_95pct_max_drawdown": float(np.quantile(sim_dd, 0.95)),
    }


# ------------------------------------------------------------------------------- agents
class ScenarioReplay:
    """A scenario set dressed as a generator, so an environment can replay it to an agent.

    ``simulator_window`` returns a simulator whose path ``p`` steps through scenario ``p``
    day by day (the windows and random streams it is given are ignored: the paths are
    fixed). Used by :func:`factorgym.app.backtest.stress_agents` to run saved agents
    through stress paths with the environment's accounting and costs.
    """

    kind = "scenario_replay"

    def __init__(self, scenarios: ScenarioSet) -> None:
        self.scenarios = scenarios
        self.assets_ = tuple(scenarios.assets)

    @property
    def min_history(self) -> int:
        return 1

    def simulator_window(self, window: np.ndarray, rngs: Any) -> _ReplaySimulator:
        if len(rngs) != self.scenarios.paths.shape[0]:
            raise DataValidationError(
                f"replaying {self.scenarios.paths.shape[0]} scenarios needs as many paths, got {len(rngs)}"
            )
        return _ReplaySimulator(self.scenarios.paths)


class _ReplaySimulator:
    def __init__(self, paths: np.ndarray) -> None:
        self.paths = np.asarray(paths, dtype=np.float64)
        self.day = np.zeros(self.paths.shape[0], dtype=np.int64)

    @property
    def n_paths(self) -> int:
        return int(self.paths.shape[0])

    @property
    def n_assets(self) -> int:
        return int(self.paths.shape[2])

    def step(self) -> np.ndarray:
        H = self.paths.shape[1]  # noqa: N806
        if (self.day >= H).any():
            raise DataValidationError(f"scenario paths have {H} days; the episode asked for more")
        r = self.paths[np.arange(self.n_paths), self.day]
        self.day += 1
        return r

    def reset_paths(self, idx: np.ndarray, windows: np.ndarray, rngs: Any) -> None:
        self.day[np.asarray(idx, dtype=np.int64)] = 0

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError("replayed scenarios have no predicted moments")

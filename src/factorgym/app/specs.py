"""The one spec grammar of factorgym: how text on a command line becomes typed values.

Library code below the app floor takes typed objects and plain dicts; only this module
parses strings. Python callers can skip the text and build the typed values directly
(:meth:`AgentSpec.of`, :class:`~factorgym.agents.rl.MarketSpec`, a weight array).

Agent specs
-----------
``KIND[:ARG][,KEY=VALUE]...`` (values are JSON where they parse, else strings), parsed by
:func:`parse_agent_spec` into an :class:`AgentSpec` and built by
:func:`factorgym.app.agent_factory.agent_from_spec`::

    equal_weight                    1/N, rebalanced daily
    buy_and_hold                    1/N bought once (cost self-financed), then held
    mv:ESTIMATOR | mv:RUN           cost-aware mean-variance (MeanVariance)
    minvar:ESTIMATOR | minvar:RUN   cost-aware minimum variance
    cvar:ESTIMATOR | cvar:RUN       cost-aware mean-CVaR (MeanCVaR) on scenarios
    sb3:PATH                        a saved RL agent (factorgym.agents.rl.load_agent)

The optimizers are fully invested (``sum(w) = 1``, long-only within the run's constraints)
unless ``invested=false``, like 1/N and like the diffusion paper's portfolios: with daily
return scales a risk aversion such as the paper's gamma = 100 otherwise keeps almost all
wealth in cash, and the comparison with 1/N would be about leverage, not about the view.

``ESTIMATOR`` is ``sample`` (sample mean and covariance), ``ledoit_wolf`` (sample mean,
Ledoit-Wolf covariance) or ``james_stein`` (James-Stein mean, Ledoit-Wolf covariance); for
``cvar`` the scenarios are the window's observed days (historical simulation;
``historical`` is an alias of ``ledoit_wolf`` there). Any other ``ARG`` is a generator run
folder or artifact (:func:`factorgym.generators.runs.load_run`): the agent then uses the
generator's predictive distribution (:class:`~factorgym.agents.estimators.GeneratorSource`);
write ``./NAME`` for a run folder that is named like an estimator.

Keys: ``label`` (display name), ``seed``; optimizers: ``window`` (days observed and used for
estimation; default 252 for estimators, the generator's ``min_history`` for runs),
``gamma`` (mv/minvar risk aversion, default 100), ``alpha`` (cvar level, 0.95),
``risk_aversion`` (cvar, 1.0), ``n_scenarios`` (runs, 500), ``draws`` (runs: ``own``, or
``shared`` to use the predictive's fixed draw, the same scenarios for every agent on the
run; see :class:`~factorgym.agents.estimators.GeneratorSource`), ``mean`` / ``cov``
(override the estimator's), ``cost_aware`` (true), ``invested`` (fully invested: ``budget =
(1, 1)`` within the run's constraints; default true; ``false`` lets the agent hold cash);
sb3: ``deterministic`` (true), ``predictor=RUN`` (the generator behind a ``moments``
observation on the real path), ``model`` (``best``: the model selected on the validation
period, the default when training kept one; ``final``: the last one). Examples::

    mv:ledoit_wolf,gamma=50,window=126     cvar:runs/neuralfactors,n_scenarios=200
    minvar:sample,label=minvar-1y          sb3:runs/ppo_lw/agent.zip
    cvar:runs/neuralfactors,draws=shared,label=cvar:nf

From Python, ``AgentSpec.of("cvar", run_dir, draws="shared", label="cvar:nf")`` is the same
spec without the text round trip.

Parameters
----------
``key=value`` pairs with JSON values where they parse, else strings (:func:`parse_params`):
generator overrides (``factorgym fit --set n_factors=8``), stable-baselines3 keywords
(``train-agent --set 'policy_kwargs={"net_arch": [64, 64]}'``) and environment options
(``train-agent --env temperature=0.5``)::

    hidden=64 -> {"hidden": 64}        sequence_model=lstm -> {"sequence_model": "lstm"}

Market sources
--------------
Where an RL agent trains (:func:`market_source`): ``historical`` (replay of the train rows)
or the path of a generator run folder (or artifact) written by ``factorgym fit``; it becomes
the ``source`` of a :class:`~factorgym.agents.rl.MarketSpec`.

Portfolio weights
-----------------
A constant-mix portfolio of ``factorgym stress --portfolio`` (:func:`read_weights`):
``equal`` (1/N), a JSON file ``{"AAPL": 0.5, "XOM": 0.5}`` or a CSV file with columns
``asset,weight``. Assets not named get 0; cash is ``1 - sum(w)``.

Datasets
--------
An embedded dataset name (``sp500``) or the path of a CSV/Parquet file (``.csv``,
``.csv.gz``, ``.parquet``), resolved by :func:`factorgym.io.read_source` (one reader for
every command; file-layout options apply to files only).

Units
-----
The Python API takes costs as fractions of the traded value and rates per period (daily);
only the command line takes basis points and annual rates, and converts them
(:func:`bps_to_fraction`, :func:`annual_to_daily`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from factorgym.errors import DataValidationError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "AGENT_KINDS",
    "ESTIMATORS",
    "HISTORICAL",
    "AgentSpec",
    "Portfolio",
    "annual_to_daily",
    "bps_to_fraction",
    "market_label",
    "market_source",
    "parse_agent_spec",
    "parse_params",
    "read_weights",
]

#: Periods per year of the daily data (for :func:`annual_to_daily`).
PERIODS_PER_YEAR = 252


# =========================================================================== units
def bps_to_fraction(bps: float) -> float:
    """Basis points -> fraction (``7.5`` -> ``7.5e-4``)."""
    return float(bps) * 1e-4


def annual_to_daily(rate: float, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """Annual rate -> the per-period rate that compounds to it: ``(1 + rate)^(1/P) - 1``."""
    return float((1.0 + float(rate)) ** (1.0 / periods_per_year) - 1.0)


# =========================================================================== key=value
def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_params(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``["hidden=64", "sequence_model=lstm"]`` -> ``{"hidden": 64, "sequence_model": "lstm"}``."""
    out: dict[str, Any] = {}
    for p in pairs or []:
        if "=" not in p:
            raise DataValidationError(f"parameter {p!r} must look like key=value")
        k, v = p.split("=", 1)
        out[k.strip()] = _json_or_text(v)
    return out


# =========================================================================== agent specs
#: Agent kinds of the spec grammar.
AGENT_KINDS: tuple[str, ...] = ("equal_weight", "buy_and_hold", "mv", "minvar", "cvar", "sb3")

#: Classical estimator name -> (mean estimator, covariance estimator).
ESTIMATORS: dict[str, tuple[str, str]] = {
    "sample": ("sample", "sample"),
    "ledoit_wolf": ("sample", "ledoit_wolf"),
    "james_stein": ("james_stein", "ledoit_wolf"),
    "historical": ("sample", "ledoit_wolf"),
}

#: Options each kind accepts.
AGENT_KEYS: dict[str, frozenset[str]] = {
    "equal_weight": frozenset({"label", "seed"}),
    "buy_and_hold": frozenset({"label", "seed"}),
    "mv": frozenset({"label", "seed", "window", "gamma", "mean", "cov", "cost_aware", "invested", "n_scenarios", "draws"}),
    "minvar": frozenset({"label", "seed", "window", "gamma", "cov", "cost_aware", "invested", "n_scenarios", "draws"}),
    "cvar": frozenset({"label", "seed", "window", "alpha", "risk_aversion", "mean", "cost_aware", "invested", "n_scenarios", "draws"}),
    "sb3": frozenset({"label", "seed", "deterministic", "predictor", "model"}),
}

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _check_head(kind: str, arg: str | None, text: str) -> None:
    if kind not in AGENT_KINDS:
        raise DataValidationError(f"unknown agent kind {kind!r} in {text!r}; expected one of {', '.join(AGENT_KINDS)}")
    if kind in ("equal_weight", "buy_and_hold") and arg:
        raise DataValidationError(f"{kind} takes no argument, got {text!r}")
    if kind in ("mv", "minvar", "cvar", "sb3") and not arg:
        hint = "a path" if kind == "sb3" else f"an estimator ({', '.join(ESTIMATORS)}) or a generator run folder"
        raise DataValidationError(f"{kind} needs {hint}: {kind}:ARG, got {text!r}")


def _check_key(kind: str, key: str, text: str) -> None:
    if key not in AGENT_KEYS[kind]:
        raise DataValidationError(f"unknown option {key!r} for {kind} in {text!r}; accepted: {', '.join(sorted(AGENT_KEYS[kind]))}")


@dataclass(frozen=True)
class AgentSpec:
    """A parsed agent spec ``KIND[:ARG][,KEY=VALUE]...`` (see the module docstring).

    Attributes
    ----------
    kind : str
    arg : str or None
    options : dict
        Parsed ``KEY=VALUE`` pairs (JSON values where they parse).
    text : str
        The spec as written (for specs built with :meth:`of`, its canonical text).
    """

    kind: str
    arg: str | None
    options: dict[str, Any]
    text: str

    @classmethod
    def of(cls, kind: str, arg: str | Path | None = None, **options: Any) -> AgentSpec:
        """The spec of ``kind`` on ``arg`` with ``options``, validated like parsed text.

        ``AgentSpec.of("mv", "runs/nf", label="mv:nf")`` equals
        ``parse_agent_spec("mv:runs/nf,label=mv:nf")``.
        """
        kind = str(kind).strip().lower().replace("-", "_")
        arg_v = None if arg is None else str(arg)
        parts = [kind if arg_v is None else f"{kind}:{arg_v}"]
        parts += [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in options.items()]
        text = ",".join(parts)
        _check_head(kind, arg_v, text)
        for k in options:
            _check_key(kind, k, text)
        return cls(kind, arg_v, dict(options), text)

    @property
    def uses_run(self) -> bool:
        """True when ``arg`` names a generator run (not a classical estimator)."""
        return self.kind in ("mv", "minvar", "cvar") and self.arg is not None and self.arg not in ESTIMATORS

    @property
    def label(self) -> str:
        """The display name: ``label=`` if given, else the spec without options
        (generator runs as ``KIND:gen:RUN_NAME``)."""
        if "label" in self.options:
            return str(self.options["label"])
        if self.arg is None:
            return self.kind
        if self.uses_run:
            return f"{self.kind}:gen:{Path(self.arg).name or self.arg}"
        if self.kind == "sb3":
            p = Path(self.arg)
            return f"sb3:{p.stem if p.suffix else p.name}"
        return f"{self.kind}:{self.arg}"

    def option(self, key: str, cast: Callable[[Any], Any], default: Any) -> Any:
        """Option ``key`` converted with ``cast`` (``bool`` also reads true/false/1/0/yes/no),
        or ``default`` when absent.

        Raises
        ------
        DataValidationError
            When the value does not convert.
        """
        if key not in self.options:
            return default
        v = self.options[key]
        try:
            if cast is bool:
                if isinstance(v, bool):
                    return v
                if str(v).lower() in _TRUE:
                    return True
                if str(v).lower() in _FALSE:
                    return False
                raise ValueError(v)
            return cast(v)
        except (TypeError, ValueError):
            raise DataValidationError(f"option {key}={v!r} of {self.text!r} is not a valid {getattr(cast, '__name__', cast)}") from None


def parse_agent_spec(text: str) -> AgentSpec:
    """Parse ``KIND[:ARG][,KEY=VALUE]...`` (see the module docstring).

    Raises
    ------
    DataValidationError
        For an unknown kind or key, a missing or superfluous argument, or a malformed pair.
    """
    s = str(text).strip()
    if not s:
        raise DataValidationError("empty agent spec")
    head, *pairs = s.split(",")
    kind, sep, arg = head.partition(":")
    kind = kind.strip().lower().replace("-", "_")
    arg_v: str | None = arg.strip() if sep else None
    _check_head(kind, arg_v, s)
    options: dict[str, Any] = {}
    for p in pairs:
        key, eq, val = p.partition("=")
        key = key.strip()
        if not eq or not key:
            raise DataValidationError(f"agent option {p!r} in {s!r} must look like key=value")
        _check_key(kind, key, s)
        options[key] = _json_or_text(val.strip())
    return AgentSpec(kind, arg_v, options, s)


# =========================================================================== market sources
#: The market source that replays the train rows.
HISTORICAL = "historical"


def market_source(text: str | Path) -> str:
    """A market source: ``"historical"``, a generator run folder or a scenario bank folder
    (``factorgym simulate``), as a string.

    Raises
    ------
    DataValidationError
        For an empty source.
    """
    s = str(text).strip()
    if not s:
        raise DataValidationError(f"a market is {HISTORICAL}, a generator run folder or a bank folder, got an empty string")
    return s


def market_label(source: str | Path) -> str:
    """Short name of a market source: ``historical`` or the run folder's name."""
    s = market_source(source)
    return HISTORICAL if s == HISTORICAL else Path(s).name


# =========================================================================== portfolio weights
class Portfolio(NamedTuple):
    """A constant-mix portfolio read from a spec."""

    label: str
    #: (N,) weights in the order of the assets asked for (cash is ``1 - sum``)
    weights: np.ndarray


def read_weights(spec: str | None, assets: Sequence[str]) -> Portfolio:
    """``None``/``equal``: 1/N; else a JSON file ``{asset: weight}`` or a CSV with columns
    ``asset,weight`` (assets not named get 0; cash is ``1 - sum``).

    Raises
    ------
    DataValidationError
        For unknown assets, missing columns or non-finite weights.
    """
    import numpy as np
    import pandas as pd

    n = len(assets)
    if spec is None or spec == "equal":
        return Portfolio("1/N", np.full(n, 1.0 / n))
    path = Path(spec)
    if not path.is_file():
        raise DataValidationError(f"portfolio {spec!r} is neither 'equal' nor an existing JSON or CSV weight file")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataValidationError(f"{path} is not valid JSON ({exc}); write weights as {{\"AAPL\": 0.5, ...}}") from None
        if not isinstance(data, dict) or not data:
            raise DataValidationError(f"{path} must hold a non-empty JSON object {{asset: weight}}, got {type(data).__name__}")
        bad = {k: v for k, v in data.items() if isinstance(v, bool) or not isinstance(v, int | float)}
        if bad:
            raise DataValidationError(f"{path} has weights that are not numbers: {dict(list(bad.items())[:3])}")
        raw = {str(k): float(v) for k, v in data.items()}
    else:
        try:
            df = pd.read_csv(path)
        except (ValueError, UnicodeDecodeError) as exc:  # pandas' parser errors are ValueErrors
            raise DataValidationError(f"{path} is not a readable CSV weight file: {exc}") from None
        if not {"asset", "weight"} <= set(df.columns):
            raise DataValidationError(f"{path} needs columns asset,weight; it has {list(df.columns)}")
        assets_col = df["asset"].astype(str)
        dup = sorted(set(assets_col[assets_col.duplicated()]))
        if dup:
            raise DataValidationError(f"{path} names assets more than once: {dup[:5]}")
        weights = pd.to_numeric(df["weight"], errors="coerce")
        if weights.isna().any():
            i = int(np.flatnonzero(weights.isna().to_numpy())[0])
            raise DataValidationError(f"{path} has a weight that is not a number: {assets_col.iloc[i]}={df['weight'].iloc[i]!r}")
        raw = dict(zip(assets_col, weights.astype(float), strict=True))
    unknown = sorted(set(raw) - set(assets))
    if unknown:
        raise DataValidationError(f"{path} names assets the scenarios do not hold: {unknown[:5]}")
    w = np.array([raw.get(a, 0.0) for a in assets])
    if not np.isfinite(w).all():
        raise DataValidationError(f"{path} has non-finite weights: {[a for a, x in zip(assets, w, strict=True) if not np.isfinite(x)][:5]}")
    return Portfolio(path.stem, w)

"""Where an agent trains: :class:`MarketSpec` (plain, JSON-able data) and the markets it
resolves to, :class:`Markets` (training market and real held-out markets)."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from factorgym.data import ReturnPanel, Split
from factorgym.envs.markets import GenerativeMarket, HistoricalMarket, Market
from factorgym.envs.markets.bank import BankMarket
from factorgym.envs.markets.mixture import AnchoredMarket, MixtureMarket
from factorgym.errors import DataValidationError, FactorGymError
from factorgym.features import FeatureConfig, FeatureScaler, compute_features
from factorgym.io import is_dataset_name, load_source, same_source
from factorgym.jsonable import jsonable

if TYPE_CHECKING:
    from factorgym.generators.banks import Bank
    from factorgym.generators.base import ReturnGenerator

__all__ = ["IN_MEMORY", "MarketSpec", "Markets", "fit_train_scaler"]


#: Prefix of the market description of in-memory data (cannot be rebuilt from it).
IN_MEMORY = "in-memory:"


@dataclass(frozen=True)
class MarketSpec:
    """Where an agent trains, as plain, JSON-able data.

    Parameters
    ----------
    source : str
        ``"historical"`` (replay of the train rows) or the path of a generator run folder
        (or a bare generator artifact) written by ``factorgym fit``.
    dataset : str, optional
        Embedded dataset name or CSV/Parquet path. Default: the run's dataset for a
        generator, ``"sp500"`` for ``"historical"``.
    train_end, val_end : str, optional
        The split (inclusive ends). Default: the run's split for a generator (an explicit
        value that differs raises: the agent's validation period must not overlap the rows
        the generator was fitted or selected on), else :class:`~factorgym.data.Split`'s.
    horizon : int
        Steps per training episode (default 252, one trading year).
    mixture : sequence of (source, weight), optional
        A mixture market (:class:`~factorgym.envs.markets.mixture.MixtureMarket`): each
        training episode draws its market from these sources (``"historical"`` or generator
        run folders, all on this dataset and split) with these weights, and records the
        source in ``info["market_source"]``. ``source`` is then ``"mixture"`` (set for you).
        Pairs may also be given as ``{"source": ..., "weight": ...}`` mappings.
    anchor_every : int, optional
        Generator markets (alone or in a mixture) restart their simulated paths from real
        history every ``anchor_every`` days
        (:class:`~factorgym.envs.markets.mixture.AnchoredMarket`); default never.
    """

    source: str = "historical"
    dataset: str | None = None
    train_end: str | None = None
    val_end: str | None = None
    horizon: int = 252
    mixture: tuple[tuple[str, float], ...] | None = None
    anchor_every: int | None = None

    def __post_init__(self) -> None:
        from factorgym.data.validation import parse_iso_date

        if self.mixture is not None:
            object.__setattr__(self, "mixture", _mixture_pairs(self.mixture))
            if self.source not in ("historical", "mixture"):
                raise FactorGymError(f"a mixture market takes its sources from mixture=, not source={self.source!r}")
            object.__setattr__(self, "source", "mixture")
        elif self.source == "mixture":
            raise FactorGymError("source 'mixture' needs mixture=[(source, weight), ...]")
        ae = self.anchor_every
        if ae is not None and (isinstance(ae, bool) or not isinstance(ae, numbers.Integral) or int(ae) < 1):
            raise FactorGymError(f"anchor_every must be a whole number of days >= 1, got {ae!r}")

        if isinstance(self.horizon, bool) or not isinstance(self.horizon, numbers.Integral) or int(self.horizon) < 1:
            raise FactorGymError(f"horizon must be at least 1 step, got {self.horizon!r}")
        for name in ("train_end", "val_end"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, parse_iso_date(getattr(self, name), name))
        if self.train_end is not None and self.val_end is not None and self.train_end >= self.val_end:
            raise FactorGymError(f"train_end {self.train_end} must precede val_end {self.val_end}")
        object.__setattr__(self, "horizon", int(self.horizon))
        object.__setattr__(self, "source", str(self.source))

    @property
    def is_historical(self) -> bool:
        """True for training on replayed train rows."""
        return self.source == "historical"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``mixture`` and ``anchor_every`` only when set)."""
        d: dict[str, Any] = {"source": self.source, "dataset": self.dataset, "train_end": self.train_end,
                             "val_end": self.val_end, "horizon": self.horizon}  # fmt: skip
        if self.mixture is not None:
            d["mixture"] = [[s, w] for s, w in self.mixture]
        if self.anchor_every is not None:
            d["anchor_every"] = int(self.anchor_every)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MarketSpec:
        """Inverse of :meth:`to_dict`."""
        keys = ("source", "dataset", "train_end", "val_end", "horizon", "mixture", "anchor_every")
        return cls(**{k: d[k] for k in keys if k in d})

    def build(self, panel: ReturnPanel | None = None) -> Markets:
        """Load the data (and the generator) and build the markets.

        Parameters
        ----------
        panel : ReturnPanel, optional
            The dataset's panel, if already loaded (it must be the dataset named here).
        """
        from factorgym.generators.banks import is_bank
        from factorgym.generators.runs import load_run

        if self.mixture is not None:
            return self._build_mixture(panel)
        if self.anchor_every is not None and self.is_historical:
            raise FactorGymError("anchor_every applies to generator markets, not to historical replay")
        if self.source.startswith(IN_MEMORY) or (panel is None and str(self.dataset or "").startswith(IN_MEMORY)):
            raise FactorGymError(
                f"this agent was trained on an {self.source} market, which cannot be rebuilt from its "
                "description; build the markets yourself with Markets.from_objects(panel, split, generator)"
            )
        generator: ReturnGenerator | None = None
        run_info: dict[str, Any] = {}
        dataset, train_end, val_end = self.dataset, self.train_end, self.val_end
        source = self.source
        bank: Bank | None = None
        if not self.is_historical and is_bank(Path(self.source).expanduser()):
            bank, spec = self._read_bank()
            source = str(bank.path.resolve())
            generator = load_run(Path(bank.spec.run))[0] if bank.spec.run else None
            run_info = {"bank": bank.path.name, "generator": bank.spec.generator_kind, "run_spec": spec,
                        "split_checked": True}  # fmt: skip
            name = f"bank {bank.path.name}"
        elif not self.is_historical:
            run_path = Path(self.source).expanduser()
            generator, record, name = load_run(run_path)
            source = str(run_path.resolve())
            spec = (record or {}).get("spec") or {}
            # a bare artifact has no run.json: its split cannot be checked (recorded as such)
            run_info = {"run": name, "generator": type(generator).kind, "run_spec": spec,
                        "split_checked": record is not None}  # fmt: skip
        if not self.is_historical:
            for label, mine, theirs in (("train_end", train_end, spec.get("train_end")),
                                        ("val_end", val_end, spec.get("val_end"))):  # fmt: skip
                if mine is not None and theirs is not None and pd.Timestamp(mine) != pd.Timestamp(theirs):
                    raise DataValidationError(
                        f"{label}={mine} differs from the {theirs} the generator run {name!r} was fitted with; "
                        "the agent must use the generator's split so that its validation period never "
                        "overlaps the generator's training or selection rows (omit the split to use the run's)"
                    )
            run_dataset = spec.get("dataset")
            if dataset is not None and run_dataset is not None and not same_source(dataset, run_dataset):
                raise DataValidationError(
                    f"dataset {dataset!r} differs from the dataset {run_dataset!r} the generator run was fitted on"
                )
            dataset = dataset or run_dataset
            train_end = train_end or spec.get("train_end")
            val_end = val_end or spec.get("val_end")
        dataset = dataset or "sp500"
        if not is_dataset_name(dataset):
            dataset = str(Path(dataset).expanduser().resolve())
        split = Split(train_end or Split.train_end, val_end or Split.val_end)
        if panel is None:
            panel = load_source(dataset)
        resolved = replace(self, source=source, dataset=dataset, train_end=split.train_end, val_end=split.val_end)
        return Markets(resolved, panel, split, generator, run_info, bank=bank)

    def _read_bank(self) -> tuple[Bank, dict[str, Any]]:
        """The bank named by ``source`` and its data/split as a run-like spec; a bank whose
        paths start after the train rows is refused (they would replay validation history)."""
        from factorgym.generators.banks import read_bank

        bank = read_bank(Path(self.source).expanduser())
        if self.anchor_every is not None:
            raise FactorGymError("anchor_every applies to live generator markets, not to a bank of stored paths")
        bs = bank.spec
        if bs.context_dates:
            last_context = max(pd.Timestamp(d) for d in bs.context_dates)
            if last_context > pd.Timestamp(bs.train_end):
                raise DataValidationError(
                    f"bank {bank.path} has paths starting on {last_context.date()}, after its train_end {bs.train_end}: "
                    "an agent trained on it would see its own validation period (simulate with --contexts every:K:train)"
                )
        return bank, {"dataset": bs.dataset, "train_end": bs.train_end, "val_end": bs.val_end}

    def _build_mixture(self, panel: ReturnPanel | None) -> Markets:
        """The markets of a mixture: each source built on this dataset and split."""
        assert self.mixture is not None
        parts: list[Markets] = []
        for src, _ in self.mixture:
            one = MarketSpec(src, dataset=self.dataset, train_end=self.train_end, val_end=self.val_end,
                             horizon=self.horizon, anchor_every=self.anchor_every)  # fmt: skip
            parts.append(one.build(panel if panel is not None else (parts[0].panel if parts else None)))
        first = parts[0]
        for m in parts[1:]:
            if m.split != first.split or m.spec.dataset != first.spec.dataset:
                raise DataValidationError(
                    f"mixture sources disagree on the data: {m.spec.source} uses {m.spec.dataset} split "
                    f"{m.split}, {first.spec.source} {first.spec.dataset} split {first.split}"
                )
        resolved = replace(self, mixture=tuple((m.spec.source, w) for m, (_, w) in zip(parts, self.mixture, strict=True)),
                           dataset=first.spec.dataset, train_end=first.split.train_end, val_end=first.split.val_end)  # fmt: skip
        info = {"components": [m.describe() for m in parts]}
        return Markets(resolved, first.panel, first.split, None, info, components=parts)


@dataclass
class Markets:
    """The resolved markets of one :class:`MarketSpec`: training and held-out real markets.

    Every market is built over the *whole* panel with day bounds (``first_day``/``last_day``),
    so that all of them have the same observation keys; a market never reads a row after its
    ``last_day`` (historical) or after an episode's start day (generative).

    Attributes
    ----------
    spec : MarketSpec
        The resolved specification (absolute paths, explicit split).
    panel : ReturnPanel
        The whole dataset.
    split : Split
    generator : ReturnGenerator or None
        The generator of a generative market.
    info : dict
        Run name, generator kind and run specification (generative markets).
    """

    spec: MarketSpec
    panel: ReturnPanel
    split: Split
    generator: ReturnGenerator | None = None
    info: dict[str, Any] = field(default_factory=dict)
    #: the markets of a mixture's sources (``spec.mixture``), in order
    components: list[Markets] | None = None
    #: the scenario bank a bank market replays (then ``generator`` is its run's, for predictions)
    bank: Bank | None = None

    @classmethod
    def from_objects(
        cls,
        panel: ReturnPanel,
        split: Split,
        generator: ReturnGenerator | None = None,
        horizon: int = 252,
    ) -> Markets:
        """Markets over an in-memory panel and (optionally) an in-memory fitted generator.

        An agent trained on these records the market as ``"in-memory:..."``; it loads and
        backtests like any other, but its market cannot be rebuilt from ``agent.json`` alone.
        """
        src = "historical" if generator is None else f"{IN_MEMORY}{type(generator).kind}"
        spec = MarketSpec(src, dataset=f"{IN_MEMORY}{panel.name}", train_end=split.train_end,
                          val_end=split.val_end, horizon=horizon)  # fmt: skip
        info = {} if generator is None else {"generator": type(generator).kind, "run": None}
        return cls(spec, panel, split, generator, info)

    @classmethod
    def mixture_of(cls, parts: list[Markets], weights: list[float] | tuple[float, ...]) -> Markets:
        """A mixture of already built markets (e.g. :meth:`from_objects` ones) on one panel and split."""
        if not parts:
            raise FactorGymError("a mixture needs at least one source")
        first = parts[0]
        for m in parts[1:]:
            if m.panel is not first.panel or m.split != first.split:
                raise DataValidationError("mixture sources must share one panel and split")
        if len(list(weights)) != len(parts):
            raise FactorGymError(f"{len(list(weights))} mixture weights for {len(parts)} sources")
        spec = MarketSpec("mixture", dataset=first.spec.dataset, train_end=first.split.train_end, val_end=first.split.val_end,
                          horizon=first.spec.horizon, mixture=tuple((m.spec.source, float(w)) for m, w in zip(parts, weights, strict=True)))  # fmt: skip
        return cls(spec, first.panel, first.split, None, {"components": [m.describe() for m in parts]}, components=list(parts))

    def rows(self, part: str) -> tuple[int, int]:
        """Inclusive panel rows ``(first, last)`` of ``"train"``, ``"val"`` or ``"test"``."""
        bounds = self.split.bounds(self.panel.dates)
        if part not in bounds:
            raise DataValidationError(f"unknown split part {part!r}; expected train, val or test")
        i0, i1 = bounds[part]
        if i1 <= i0:
            raise DataValidationError(
                f"split part {part!r} of {self.panel.name} is empty (train_end={self.split.train_end}, "
                f"val_end={self.split.val_end})"
            )
        return i0, i1 - 1

    @property
    def train(self) -> Market:
        """The training market: random start days inside the train rows, ``spec.horizon`` steps."""
        if self.components is not None:
            assert self.spec.mixture is not None
            names = [_component_name(m) for m in self.components]
            names = [n if names.count(n) == 1 else f"{n}-{i}" for i, n in enumerate(names)]
            return MixtureMarket([m.train for m in self.components], [w for _, w in self.spec.mixture], names)
        _, last = self.rows("train")
        h = self.spec.horizon
        if self.bank is not None:
            return BankMarket(self.bank, self.panel, horizon=min(h, self.bank.spec.horizon))
        if self.generator is None:
            return HistoricalMarket(self.panel, horizon=h, random_start=True, last_day=last)
        if self.spec.anchor_every is not None:
            return AnchoredMarket(self.generator, self.panel, anchor_every=int(self.spec.anchor_every), horizon=h,
                                  random_start=True, last_day=last)  # fmt: skip
        return GenerativeMarket(self.generator, self.panel, horizon=h, random_start=True, last_day=last)

    def heldout(self, part: str = "val", horizon: int | None = None) -> HistoricalMarket:
        """Real history of ``part`` (``"val"``, ``"test"`` or ``"train"``) as a market.

        Episodes start on days of ``part`` (observation windows may reach back before it,
        which is past information) and never earn a return after its last day. ``horizon``
        ``None`` runs each episode to the end of ``part``. The generator, when there is one,
        is the predictor of ``"moments"`` observations.
        """
        first, last = self.rows(part)
        return HistoricalMarket(
            self.panel, horizon=horizon, random_start=False, first_day=first, last_day=last, predictor=self.generator
        )

    def describe(self) -> dict[str, Any]:
        """JSON form: the specification (:meth:`MarketSpec.from_dict` reads it back) plus the
        kind, generator run details and the train rows."""
        d = self.spec.to_dict()
        d["kind"] = ("mixture" if self.components is not None else "bank" if self.bank is not None
                     else "historical" if self.generator is None else "generative")  # fmt: skip
        d.update(self.info)
        d["train_rows"] = list(self.rows("train"))
        return jsonable(d)


def _component_name(m: Markets) -> str:
    if m.bank is not None:
        return f"bank:{m.bank.path.name}"
    if m.generator is None:
        return "historical"
    return str(m.info.get("run") or type(m.generator).kind)


def _mixture_pairs(value: Any) -> tuple[tuple[str, float], ...]:
    """``mixture`` as ``((source, weight), ...)``, or a :class:`FactorGymError` naming the bad entry."""
    import math

    if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__iter__"):
        raise FactorGymError(f"mixture must be a list of (source, weight) pairs, got {value!r}")
    out = []
    for item in value:
        if isinstance(item, Mapping):
            src, w = item.get("source"), item.get("weight", 1.0)
        elif isinstance(item, list | tuple) and len(item) == 2:
            src, w = item
        else:
            raise FactorGymError(f"mixture entry {item!r} must be (source, weight) or {{'source': ..., 'weight': ...}}")
        if not isinstance(src, str) or not src or src == "mixture":
            raise FactorGymError(f"mixture source {src!r} must be 'historical' or a generator run folder")
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(float(w)) or float(w) < 0:
            raise FactorGymError(f"mixture weight {w!r} of {src!r} must be a finite number >= 0")
        out.append((src, float(w)))
    if not out or sum(w for _, w in out) <= 0:
        raise FactorGymError(f"mixture needs at least one source with a positive weight, got {value!r}")
    return tuple(out)


def fit_train_scaler(markets: Markets, features: FeatureConfig) -> FeatureScaler:
    """The feature scaler fitted on the train rows (saved with the agent, used everywhere)."""
    X, valid = compute_features(markets.panel, features)
    _, last = markets.rows("train")
    try:
        return FeatureScaler().fit(X[: last + 1], valid[: last + 1])
    except DataValidationError:
        raise DataValidationError(f"no complete feature rows in the train split of {markets.panel.name}") from None

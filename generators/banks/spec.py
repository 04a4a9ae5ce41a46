"""What a scenario bank is: its contexts (where each path starts), its per-path seeds and the
specification that regenerates it exactly.

Seeding (the rule that makes bank path ``i`` the live market's path ``i``)
--------------------------------------------------------------------------
Path ``i`` of a bank with seed ``s`` has the *episode seed*
``e_i = default_rng(s + i).integers(0, 2**63 - 1)``: the first episode seed that path ``i`` of a
``VecPortfolioEnv`` seeded with ``s`` (or a ``PortfolioEnv`` reset with ``seed=s + i``) draws.
Its two streams are spawned from it exactly as the environments do
(:func:`factorgym.envs.engine.episode_streams`): ``SeedSequence(e_i).spawn(2)`` -> the start
stream (draws a random context) and the path stream (handed to the generator's simulator).
So a path depends only on ``(s, i)``, its context and the generator, never on which worker or
shard generates it, and the live ``GenerativeMarket`` episode with seed ``e_i`` and the same
start is the same path (``tests/test_banks.py`` checks both).

Contexts
--------
``contexts`` says where paths start (the last real day of their conditioning history):

- a list of dates (or panel rows), or one string ``"2015-01-02,2016-01-04"``: path ``i``
  starts at context ``i mod C`` (round robin);
- ``"every:K"`` / ``"every:K:PART"``: every ``K``-th trading day of the panel (or of its
  ``train``, ``val`` or ``test`` part), from the first day with enough history; round robin;
- ``"random"`` / ``"random:PART"``: each path draws its start uniformly from the allowed days
  with its start stream, exactly as ``GenerativeMarket(random_start=True)`` with ``first_day`` /
  ``last_day`` at that range does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from factorgym.data import ReturnPanel, Split
from factorgym.errors import DataValidationError
from factorgym.jsonable import jsonable

__all__ = [
    "BANK_FORMAT",
    "BankSpec",
    "ContextPlan",
    "episode_seeds",
    "panel_sha256",
    "path_streams",
    "plan_contexts",
]

#: Version of the bank folder layout (``bank.json`` ``format``).
BANK_FORMAT = 1
_INT63 = np.iinfo(np.int64).max
_PARTS = ("train", "val", "test")


def episode_seeds(seed: int, start: int, stop: int) -> np.ndarray:
    """Episode seeds of global paths ``start .. stop - 1`` of a bank seeded with ``seed``
    (int64; see the module docstring)."""
    return np.array(
        [int(np.random.default_rng(int(seed) + i).integers(0, _INT63)) for i in range(int(start), int(stop))],
        dtype=np.int64,
    )


def path_streams(episode_seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """``(start_rng, path_rng)`` of an episode seed: the environments' rule
    (:func:`factorgym.envs.engine.episode_streams`), restated here because generators do not
    import envs; a test checks that the two agree."""
    start_ss, path_ss = np.random.SeedSequence(int(episode_seed)).spawn(2)
    return np.random.default_rng(start_ss), np.random.default_rng(path_ss)


def panel_sha256(panel: ReturnPanel) -> str:
    """SHA-256 of a panel's dates, assets and returns (NaN where absent): the data a bank was
    generated from, to check that a replay or a regeneration uses the same data."""
    h = hashlib.sha256()
    h.update(np.asarray(panel.dates.values.astype("datetime64[D]").astype(np.int64)).tobytes())
    h.update(json.dumps(list(panel.assets)).encode())
    h.update(np.ascontiguousarray(np.asarray(panel.returns, dtype=np.float64)).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class ContextPlan:
    """Resolved contexts: ``kind`` ``"fixed"`` (``rows``, assigned round robin) or ``"random"``
    (drawn per path from ``lo .. hi``). ``first_row`` is the start of the allowed range before
    the history needed is counted (a ``GenerativeMarket``'s ``first_day``)."""

    kind: str
    rows: tuple[int, ...]
    lo: int
    hi: int
    first_row: int
    text: str

    def rows_for(self, seeds: np.ndarray, start: int) -> np.ndarray:
        """Context rows of the paths ``start ..`` with episode seeds ``seeds``."""
        if self.kind == "random":
            return np.array([int(path_streams(int(e))[0].integers(self.lo, self.hi + 1)) for e in seeds], dtype=np.int64)
        idx = (np.arange(len(seeds)) + int(start)) % len(self.rows)
        return np.asarray(self.rows, dtype=np.int64)[idx]


def _part_rows(panel: ReturnPanel, split: Split, part: str | None) -> tuple[int, int]:
    if part is None:
        return 0, panel.T - 1
    if part not in _PARTS:
        raise DataValidationError(f"unknown split part {part!r} in contexts; expected train, val or test")
    a, b = split.bounds(panel.dates)[part]
    if b <= a:
        raise DataValidationError(f"split part {part!r} is empty for {panel.name}")
    return a, b - 1


def _row_of(panel: ReturnPanel, value: Any) -> int:
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        row = int(value)
        if not 0 <= row < panel.T:
            raise DataValidationError(f"context row {row} is outside {panel.name} (rows 0..{panel.T - 1})")
        return row
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise DataValidationError(f"context {value!r} is not a date such as 2015-01-02 or a panel row (contexts are dates, every:K[:PART] or random[:PART])") from None
    if pd.isna(ts) or ts < panel.dates[0] or ts > panel.dates[-1]:
        raise DataValidationError(
            f"context {value!r} is outside {panel.name}, which runs {panel.dates[0].date()}..{panel.dates[-1].date()}"
        )
    return int(panel.dates.searchsorted(ts, side="right")) - 1  # the last trading day on or before it


def plan_contexts(contexts: Any, panel: ReturnPanel, split: Split, min_history: int) -> ContextPlan:
    """Resolve ``contexts`` (see the module docstring) on ``panel``.

    Raises
    ------
    DataValidationError
        Naming the bad context, a part without a day that has ``min_history`` days of history,
        or an empty list.
    """
    need = int(min_history) - 1  # the first row with enough history
    if isinstance(contexts, str) and (contexts.startswith("random") or contexts.startswith("every")):
        bits = contexts.split(":")
        if bits[0] == "random" and len(bits) <= 2:
            part = bits[1] if len(bits) == 2 else None
            first, last = _part_rows(panel, split, part)
            lo = max(first, need)
            if lo > last:
                raise DataValidationError(f"contexts {contexts!r}: no day of it has the {min_history} days of history it needs")
            return ContextPlan("random", (), lo, last, first, contexts)
        if bits[0] == "every" and len(bits) in (2, 3):
            try:
                k = int(bits[1])
            except ValueError:
                k = 0
            if k < 1:
                raise DataValidationError(f"contexts {contexts!r}: K in every:K must be a whole number >= 1")
            first, last = _part_rows(panel, split, bits[2] if len(bits) == 3 else None)
            lo = max(first, need)
            rows = tuple(range(lo, last + 1, k))
            if not rows:
                raise DataValidationError(f"contexts {contexts!r}: no day of it has the {min_history} days of history it needs")
            return ContextPlan("fixed", rows, lo, last, first, contexts)
        raise DataValidationError(
            f"contexts {contexts!r} is not understood; give dates (2015-01-02,2016-01-04), every:K[:PART] or random[:PART]"
        )
    items = [c.strip() for c in contexts.split(",") if c.strip()] if isinstance(contexts, str) else list(contexts)
    if not items:
        raise DataValidationError("contexts is empty; give at least one date, every:K[:PART] or random[:PART]")
    rows = tuple(_row_of(panel, c) for c in items)
    short = [r for r in rows if r < need]
    if short:
        raise DataValidationError(
            f"context {panel.dates[short[0]].date()} has {short[0] + 1} days of history; the bank needs {min_history}"
        )
    text = ",".join(str(panel.dates[r].date()) for r in rows)
    return ContextPlan("fixed", rows, min(rows), max(rows), 0, text)


@dataclass(frozen=True)
class BankSpec:
    """Everything that regenerates a bank exactly (``bank.json``, written last).

    ``run`` is the generator run folder (``None`` when a generator object was passed: the
    bank then cannot be regenerated from its spec alone), ``run_sha256`` the SHA-256 of its
    model; ``dataset`` the data source (a name or a file) and ``panel_sha256`` the data's hash;
    ``episode_seeds`` / ``context_rows`` / ``context_dates`` one entry per path; ``shards`` one
    ``{"file", "paths": [start, stop], "sha256"}`` per shard.
    """

    generator_kind: str
    min_history: int
    history: int
    run: str | None
    run_sha256: str | None
    dataset: str | None
    panel_name: str
    panel_sha256: str
    assets: tuple[str, ...]
    train_end: str
    val_end: str
    contexts: str
    context_kind: str
    first_row: int
    start_range: tuple[int, int]
    n_paths: int
    horizon: int
    seed: int
    shard_size: int
    episode_seeds: tuple[int, ...] = field(repr=False)
    context_rows: tuple[int, ...] = field(repr=False)
    context_dates: tuple[str, ...] = field(repr=False)
    shards: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    library_version: str = ""
    layout: str = "long"
    format: int = BANK_FORMAT

    def to_json(self) -> str:
        return json.dumps(jsonable(asdict(self)), indent=1)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BankSpec:
        d = dict(d)
        for k in ("assets", "episode_seeds", "context_rows", "context_dates", "shards", "start_range"):
            d[k] = tuple(d[k])
        return cls(**d)

    @property
    def split(self) -> Split:
        return Split(self.train_end, self.val_end)

    def shard_bounds(self) -> list[tuple[int, int]]:
        """``(start, stop)`` global path indices of each shard."""
        return [(a, min(a + self.shard_size, self.n_paths)) for a in range(0, self.n_paths, self.shard_size)]


def check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < 1:
        raise DataValidationError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)

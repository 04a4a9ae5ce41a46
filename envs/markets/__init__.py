"""Market sources: where a portfolio environment's daily returns come from.

Two sources sit behind one interface and produce observations and infos of identical
shapes and keys, so an agent can tell them apart only by the numbers:

* :class:`HistoricalMarket` replays a real :class:`~factorgym.data.ReturnPanel` (a split),
  from a random or fixed start date, for a fixed horizon or to the end of the panel.
* :class:`GenerativeMarket` conditions a trained :class:`~factorgym.generators.base.ReturnGenerator`
  on real history up to a (random or fixed) start date, then rolls forward on the generator's
  own samples through its :class:`~factorgym.generators.base.PathSimulator`.

A ``Market`` is configuration and may back several environments; :meth:`Market.open` creates
the batched per-environment state (:class:`MarketPaths`) for ``P`` paths. Everything at step
time is numpy (torch generators run inside their own ``PathSimulator``).

Timing
------
A path that starts at row ``t0`` of the panel has observed rows ``<= t0`` (the close of day
``t0``); its ``k``-th step reveals the returns of day ``t0 + k``. A historical path never reads a
row after ``last_day``; a generative path never reads a real row after its start row ``t0``.

Missing data
------------
Where the panel marks an asset absent, the observed return is ``0.0`` and the observation
gains a ``"mask"`` key (1.0 available, 0.0 absent) - only for panels with missing cells. In
the accounting an absent asset earns ``0.0`` that day (its price is carried forward).
Simulated days are complete (mask all ones).
"""

from factorgym.envs.markets.base import Market, MarketPaths, ObservationConfig, StartSpec
from factorgym.envs.markets.generative import GenerativeMarket, GenerativePaths
from factorgym.envs.markets.historical import HistoricalMarket, HistoricalPaths

__all__ = [
    "GenerativeMarket",
    "GenerativePaths",
    "HistoricalMarket",
    "HistoricalPaths",
    "Market",
    "MarketPaths",
    "ObservationConfig",
    "StartSpec",
]

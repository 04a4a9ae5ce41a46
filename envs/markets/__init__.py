"""Market sources: where a portfolio environment's daily returns come from.

The sources sit behind one interface and produce observations and infos of identical
shapes and keys, so an agent can tell them apart only by the numbers:

* :class:`HistoricalMarket` replays a real :class:`~factorgym.data.ReturnPanel` (a split),
  from a random or fixed start date, for a fixed horizon or to the end of the panel.
* :class:`BankMarket` replays a scenario bank (paths a generator simulated ahead of time,
  :mod:`factorgym.generators.banks`) with the live generative market's observations and
  infos: bank path ``i`` is the live market's path ``i`` for the same seeds.
* :class:`MixtureMarket` draws each episode's market from a weighted set of markets
  (``info["market_source"]``); :class:`AnchoredMarket` restarts generated paths from real
  history every ``K`` days.
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

Trading follows the same mask (:meth:`MarketPaths.tradable`): an asset trades at the close
of a day on which it is present; on a day it is absent (not yet listed, a gap) it cannot be
bought or shorted further, only reduced towards zero at its last price, and a position in
it is otherwise kept (carried at its last price, earning 0). An asset that is absent on
every later row of the panel *delists* on its last present day: a position in it is settled
into cash at that day's close price, at no cost (:meth:`MarketPaths.delisted`; the
settlement shows in the next observation's weights, as a delisting is public when it
happens). A generative path's only real day is its start day; simulated assets never delist.
"""

from factorgym.envs.markets.bank import BankMarket, BankPaths
from factorgym.envs.markets.base import Market, MarketPaths, ObservationConfig, StartSpec
from factorgym.envs.markets.generative import GenerativeMarket, GenerativePaths
from factorgym.envs.markets.historical import HistoricalMarket, HistoricalPaths
from factorgym.envs.markets.mixture import AnchoredMarket, MixtureMarket

__all__ = [
    "AnchoredMarket",
    "BankMarket",
    "BankPaths",
    "MixtureMarket",
    "GenerativeMarket",
    "GenerativePaths",
    "HistoricalMarket",
    "HistoricalPaths",
    "Market",
    "MarketPaths",
    "ObservationConfig",
    "StartSpec",
]

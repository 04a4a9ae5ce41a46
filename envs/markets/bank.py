"""A scenario bank replayed as a market: :class:`BankMarket` and its batched paths.

A bank (:func:`factorgym.generators.banks.simulate_bank`) holds a generator's paths simulated
ahead of time. Replaying one costs an index into an array per day, so a generated market runs
about as fast as historical replay, while its observations, infos and accounting are those of
the live :class:`~factorgym.envs.markets.generative.GenerativeMarket`: the same real history
up to the start day, the same simulated days after it.

Which bank path an episode gets
-------------------------------
An episode is a function of its episode seed (the environments' rule), and so is its bank
path:

* an episode whose seed is bank path ``i``'s episode seed (and whose ``start``, if one is
  given, is that path's context) replays path ``i``. The first episode of path ``i`` of a
  ``VecPortfolioEnv`` seeded with the bank's seed is such an episode, so that env sees bank
  path ``i`` -- exactly what it would see on the live market (``tests/test_banks.py``);
  ``reset(options={"episode_seed": e_i})`` replays path ``i`` too;
* any other episode (the auto-resets of training) draws a bank path uniformly with its start
  stream, among the paths that start at its ``start`` when one is given. Paths repeat once
  an agent has seen more episodes than the bank has paths: refresh the bank (a new seed)
  between training phases (:meth:`BankMarket.refresh`, then ``env.reset()``).

Not observable from a bank: ``moments`` (a bank stores no predictions) and exogenous features
(not simulated); both raise when the market is opened.
"""

from __future__ import annotations

import datetime as _dt
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from factorgym.data import ReturnPanel
from factorgym.envs.markets.base import (
    Market,
    ObservationConfig,
    StartSpec,
)
from factorgym.envs.markets.generative import RingPaths, RingWindows
from factorgym.errors import DataValidationError
from factorgym.features import FeatureScaler, compute_features

if TYPE_CHECKING:
    from factorgym.generators.banks import Bank

__all__ = ["BankMarket", "BankPaths"]


def _stream_key(rng: np.random.Generator) -> tuple[Any, ...]:
    """A fresh stream's identity: its bit generator's state (equal states, equal draws)."""
    st = rng.bit_generator.state
    return (st["bit_generator"], repr(st["state"]))


class BankMarket(Market):
    """A scenario bank replayed inside ``PortfolioEnv`` / ``VecPortfolioEnv``.

    Parameters
    ----------
    bank : Bank or path
        A bank folder (or a :class:`~factorgym.generators.banks.Bank`).
    panel : ReturnPanel, optional
        The real history the bank's paths start from. Default: the bank's dataset, loaded; a
        panel given or loaded is checked against the bank's data hash.
    horizon : int, optional
        Steps per episode, at most the bank's horizon (default: the bank's).
    start : date, str or int, optional
        Only replay paths that start at this day (one of the bank's contexts).
    """

    def __init__(self, bank: Bank | str | os.PathLike[str], panel: ReturnPanel | None = None, *,
                 horizon: int | None = None, start: StartSpec = None) -> None:  # fmt: skip
        from factorgym.generators.banks import Bank, read_bank
        from factorgym.generators.banks.spec import panel_sha256

        self.bank = bank if isinstance(bank, Bank) else read_bank(bank)
        spec = self.bank.spec
        if panel is None:
            if spec.dataset is None:
                raise DataValidationError(f"bank {self.bank.path} was made from a panel in memory; pass that panel")
            from factorgym.io import load_source

            panel = load_source(spec.dataset)
        if not isinstance(panel, ReturnPanel):
            raise DataValidationError(f"panel must be a ReturnPanel, got {type(panel).__name__}")
        if panel_sha256(panel) != spec.panel_sha256:
            raise DataValidationError(
                f"panel {panel.name} is not the data bank {self.bank.path} was made from ({spec.panel_name}; the hashes differ)"
            )
        self.panel = panel
        h = spec.horizon if horizon is None else int(horizon)
        if not 1 <= h <= spec.horizon:
            raise DataValidationError(f"horizon must be 1..{spec.horizon} (the bank's), got {horizon}")
        self.horizon = h
        self.start = start
        #: bumped by :meth:`refresh`
        self.generation = 0
        if start is not None:
            row = self._row(start)
            if row not in set(spec.context_rows):
                raise DataValidationError(f"bank {self.bank.path} has no path starting at {panel.dates[row].date()}")

    def refresh(self, bank: Bank | str | os.PathLike[str]) -> None:
        """Replay another bank from now on (e.g. one with a new seed between training phases).

        It must hold the same assets on the same data and at least this market's horizon. An
        environment already opened on this market switches at its next full ``reset()`` (every
        path at once; the auto-resets of single paths keep the old bank until then).
        """
        from factorgym.generators.banks import Bank, read_bank

        new = bank if isinstance(bank, Bank) else read_bank(bank)
        if new.spec.panel_sha256 != self.bank.spec.panel_sha256 or new.spec.assets != self.bank.spec.assets:
            raise DataValidationError(f"bank {new.path} was made on other data than bank {self.bank.path}")
        if new.spec.horizon < self.horizon:
            raise DataValidationError(f"bank {new.path} has horizon {new.spec.horizon}, this market steps {self.horizon}")
        self.bank = new
        self.generation += 1

    def open(self, n_paths: int, obs: ObservationConfig) -> BankPaths:
        return BankPaths(self, n_paths, obs)

    def __repr__(self) -> str:
        s = self.bank.spec
        return (
            f"BankMarket({s.generator_kind}, {str(self.bank.path)!r}, {s.n_paths} paths, N={self.n_assets}, "
            f"contexts {s.contexts!r}, horizon={self.horizon})"
        )


class BankPaths(RingPaths):
    def __init__(self, market: BankMarket, n_paths: int, obs: ObservationConfig) -> None:
        super().__init__(market, n_paths, obs, market.start, False)
        self.bmarket = market
        spec = market.bank.spec
        if obs.moments is not None:
            raise DataValidationError("a bank market cannot observe moments (a bank stores no predictions); set moments=None")
        if obs.features is not None and obs.features.exog:
            raise DataValidationError(
                "a bank market cannot observe exogenous features (they are not simulated); drop exog from the FeatureConfig"
            )
        self._L = obs.history_needed
        self._load(market.bank)
        # the live market's first allowed start (GenerativePaths: its feature scaler is fitted up to it)
        self._lo = max(int(spec.first_row), self._L - 1, int(spec.min_history) - 1)
        self._ring = RingWindows(self.n_paths, self._L, self.n_assets, self.has_mask)
        self._scaler: FeatureScaler | None = None
        if obs.features is not None:
            X, valid = compute_features(self.panel, obs.features)
            self._scaler = self._fit_scaler(X, valid, self._lo)
        self._bank_idx = np.zeros(self.n_paths, dtype=np.int64)
        self._day = np.zeros(self.n_paths, dtype=np.int64)
        self.horizons[:] = market.horizon

    def _load(self, bank: Bank) -> None:
        from factorgym.generators.banks.spec import path_streams

        self._generation = self.bmarket.generation
        self._R = bank.returns  # (B, H, N), read once and shared by every env of the market
        self._ctx = bank.context_rows
        if int(self._ctx.min()) < self._L - 1:
            raise DataValidationError(
                f"bank path starting {self.panel.dates[int(self._ctx.min())].date()} has {int(self._ctx.min()) + 1} days of "
                f"history; this observation needs {self._L} (make the bank with history={self._L}, "
                f"`factorgym simulate --history {self._L}`)"
            )
        self._by_key = {_stream_key(path_streams(int(e))[1]): i for i, e in enumerate(bank.spec.episode_seeds)}

    def start_range(self) -> tuple[int, int]:
        return int(self._ctx.min()), int(self._ctx.max())

    def _pick(self, start_rng: np.random.Generator, path_rng: np.random.Generator, start: StartSpec) -> int:
        spec = start if start is not None else self._fixed_start
        row = None if spec is None else self.market._row(spec)
        i = self._by_key.get(_stream_key(path_rng))
        if i is not None and (row is None or int(self._ctx[i]) == row):
            return i
        cands = np.arange(len(self._ctx)) if row is None else np.flatnonzero(self._ctx == row)
        if cands.size == 0:
            days = sorted({str(self.panel.dates[r].date()) for r in self._ctx.tolist()})
            raise DataValidationError(
                f"the bank has no path starting at {self.panel.dates[row].date()}; its contexts are {', '.join(days[:5])}"
                + (" ..." if len(days) > 5 else "")
            )
        return int(cands[int(start_rng.integers(cands.size))])

    def reset(self, idx, start_rngs, path_rngs, starts) -> None:  # type: ignore[override]
        idx = np.asarray(idx, dtype=np.int64)
        if self.bmarket.generation != self._generation and len(np.unique(idx)) == self.n_paths:
            self._load(self.bmarket.bank)  # refreshed: switch at a full reset
        picks = np.array([self._pick(start_rngs[j], path_rngs[j], starts[j]) for j in range(len(idx))], dtype=np.int64)
        rows = self._ctx[picks]
        R = self.panel.returns  # noqa: N806
        hist = np.stack([R[t - self._L + 1 : t + 1] for t in rows.tolist()])  # NaN where absent
        avail = ~np.isnan(hist)
        self._ring.write(idx, np.where(avail, hist, 0.0), avail.astype(np.float64) if self.has_mask else None)
        self.start_rows[idx] = rows
        self.horizons[idx] = self.bmarket.horizon
        self._bank_idx[idx] = picks
        self._day[idx] = 0

    def step(self) -> np.ndarray:
        r = self._R[self._bank_idx, self._day]
        self._ring.push(r)
        self._day += 1
        return r

    def moments(self, idx=None) -> np.ndarray:  # type: ignore[override]
        raise DataValidationError("a bank market cannot observe moments")

    def dates(self) -> list[_dt.date | None]:
        starts = self.start_dates()
        return [d if k == 0 else None for d, k in zip(starts, self._day.tolist(), strict=True)]

    def bank_paths(self) -> np.ndarray:
        """The bank path each env path is replaying ``(P,)``."""
        return self._bank_idx.copy()

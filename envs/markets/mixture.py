"""Training markets made of other markets: :class:`MixtureMarket` (each episode draws its
source from a weighted set, e.g. replay of the train split and several generator runs) and
:class:`AnchoredMarket` (a generative market re-anchored on real history every ``K`` days).

Both are training markets; evaluation on real data uses a plain
:class:`~factorgym.envs.markets.HistoricalMarket`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence

import numpy as np

from factorgym.envs.markets.base import Market, MarketPaths, ObservationConfig, StartSpec
from factorgym.envs.markets.generative import GenerativeMarket, GenerativePaths
from factorgym.errors import DataValidationError, FactorGymError

__all__ = ["AnchoredMarket", "AnchoredPaths", "MixtureMarket", "MixturePaths"]


def _child_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, np.iinfo(np.int64).max))


class MixtureMarket(Market):
    """Each episode of each path draws its market from ``sources`` with probabilities ``weights``.

    The draw is the first number taken from the episode's start stream, so it is a function
    of the episode seed; the chosen source then starts its episode from streams spawned from
    that seed too. The source's name is reported in ``info["market_source"]``.

    Parameters
    ----------
    sources : sequence of Market
        Markets over the same assets in the same order, each with the same fixed ``horizon``
        (steps per episode; a historical market run to its end has none).
    weights : sequence of float, optional
        Non-negative, not all zero (normalised); default equal.
    names : sequence of str, optional
        One per source (default ``"historical"`` / the generator's kind, numbered when repeated).

    Notes
    -----
    Every source keeps ``P`` paths and steps them all every day (the paths of the sources
    not drawn are restarted with each episode and their returns discarded), so a step costs
    the sum of the sources' step costs.
    """

    def __init__(self, sources: Sequence[Market], weights: Sequence[float] | None = None, names: Sequence[str] | None = None) -> None:
        srcs = list(sources)
        if not srcs:
            raise FactorGymError("a mixture market needs at least one source market")
        for i, m in enumerate(srcs):
            if not isinstance(m, Market):
                raise FactorGymError(f"mixture source {i} is a {type(m).__name__}, not a Market")
            if tuple(m.assets) != tuple(srcs[0].assets):
                raise DataValidationError(f"mixture source {i} ({m!r}) has other assets than source 0 ({srcs[0]!r})")
            if m.horizon is None or int(m.horizon) != int(srcs[0].horizon or 0):
                raise DataValidationError(
                    f"mixture sources need one fixed horizon: source {i} has {m.horizon}, source 0 {srcs[0].horizon}"
                )
        w = np.ones(len(srcs)) if weights is None else np.asarray(list(weights), dtype=np.float64)
        if w.shape != (len(srcs),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise FactorGymError(f"mixture weights must be {len(srcs)} non-negative numbers, not all zero; got {weights!r}")
        self.sources = srcs
        self.weights = w / w.sum()
        self.names = [str(n) for n in names] if names is not None else _default_names(srcs)
        if len(self.names) != len(srcs):
            raise FactorGymError(f"{len(self.names)} names for {len(srcs)} mixture sources")
        self.panel = srcs[0].panel
        self.horizon = int(srcs[0].horizon)  # type: ignore[arg-type]

    @property
    def has_missing(self) -> bool:
        return any(m.has_missing for m in self.sources)

    def open(self, n_paths: int, obs: ObservationConfig) -> MixturePaths:
        return MixturePaths(self, n_paths, obs)

    def __repr__(self) -> str:
        parts = ", ".join(f"{n} {w:.2f}" for n, w in zip(self.names, self.weights, strict=True))
        return f"MixtureMarket({parts}; horizon={self.horizon})"


def _default_names(srcs: Sequence[Market]) -> list[str]:
    base = [type(m.generator).__name__ if isinstance(m, GenerativeMarket) else "historical" for m in srcs]  # type: ignore[attr-defined]
    out = []
    for i, b in enumerate(base):
        out.append(b if base.count(b) == 1 else f"{b}-{base[:i + 1].count(b)}")
    return out


class MixturePaths(MarketPaths):
    """The paths of a :class:`MixtureMarket`: every source's paths, one chosen per path."""

    def __init__(self, market: MixtureMarket, n_paths: int, obs: ObservationConfig) -> None:
        super().__init__(market, n_paths, obs, None, True)
        self.mmarket = market
        self.has_mask = market.has_missing
        self.subs = [m.open(n_paths, obs) for m in market.sources]
        self.choice = np.zeros(self.n_paths, dtype=np.int64)
        self._cum = np.cumsum(market.weights)
        self.horizons[:] = market.horizon

    def start_range(self) -> tuple[int, int]:
        return self.subs[0].start_range()

    def path_sources(self) -> list[str]:
        """The source name of each path's current episode."""
        names = self.mmarket.names
        return [names[k] for k in self.choice.tolist()]

    def reset(self, idx, start_rngs, path_rngs, starts) -> None:  # type: ignore[override]
        from factorgym.envs.engine import episode_streams

        idx = np.asarray(idx, dtype=np.int64)
        K = len(self.subs)
        seeds = []
        for j in range(len(idx)):
            u = float(start_rngs[j].random())
            self.choice[idx[j]] = min(int(np.searchsorted(self._cum, u, side="right")), K - 1)
            seeds.append(_child_seed(start_rngs[j]))
        for k, sub in enumerate(self.subs):
            streams = [episode_streams(int(np.random.SeedSequence(s, spawn_key=(k,)).generate_state(1)[0])) for s in seeds]
            sub.reset(idx, [s[0] for s in streams], [s[1] for s in streams], list(starts))
        self.horizons[idx] = self.mmarket.horizon
        self.start_rows[idx] = self._pick("start_rows")[idx]

    def _pick(self, attr: str) -> np.ndarray:
        stacked = np.stack([getattr(s, attr) for s in self.subs])
        return stacked[self.choice, np.arange(self.n_paths)]

    def _gather(self, method: str, idx: np.ndarray | None, **kw: object) -> np.ndarray:
        sel = np.arange(self.n_paths) if idx is None else np.asarray(idx, dtype=np.int64)
        ch = self.choice[sel]
        out: np.ndarray | None = None
        for k, sub in enumerate(self.subs):
            rows = np.flatnonzero(ch == k)
            if rows.size == 0:
                continue
            part = getattr(sub, method)(sel[rows], **kw)
            if out is None:
                out = np.zeros((len(sel), *part.shape[1:]), dtype=part.dtype)
            out[rows] = part
        assert out is not None
        return out

    def step(self) -> np.ndarray:
        rs = np.stack([sub.step() for sub in self.subs])
        return rs[self.choice, np.arange(self.n_paths)]

    def _flags(self, method: str) -> np.ndarray | None:
        got = [getattr(sub, method)() for sub in self.subs]
        if all(g is None for g in got):
            return None
        default = method == "tradable"
        full = np.stack([np.full((self.n_paths, self.n_assets), default) if g is None else g for g in got])
        return full[self.choice, np.arange(self.n_paths)]

    def tradable(self) -> np.ndarray | None:
        return self._flags("tradable")

    def delisted(self) -> np.ndarray | None:
        return self._flags("delisted")

    def returns_window(self, idx=None) -> np.ndarray:  # type: ignore[override]
        return self._gather("returns_window", idx)

    def mask_window(self, idx=None) -> np.ndarray:  # type: ignore[override]
        return self._gather("mask_window", idx)

    def features(self, idx=None) -> np.ndarray:  # type: ignore[override]
        return self._gather("features", idx)

    def moments(self, idx=None) -> np.ndarray:  # type: ignore[override]
        return self._gather("moments", idx)

    def dates(self) -> list[_dt.date | None]:
        all_dates = [s.dates() for s in self.subs]
        return [all_dates[k][p] for p, k in enumerate(self.choice.tolist())]


class AnchoredMarket(GenerativeMarket):
    """A generative market re-anchored on real history every ``anchor_every`` days.

    An episode starts like :class:`GenerativeMarket`'s (the generator conditioned on real
    history up to the start day ``t0``); after every ``anchor_every`` simulated days the
    path is restarted from the *real* history up to the same calendar day ``t0 + k``: that
    day earns the real return of ``t0 + k``, the observation window becomes real again and
    the generator is conditioned on it. The
    generators were validated one step ahead, so this keeps simulated paths from drifting
    far from the real market's states. No real row after ``t0 + k`` is read at day ``k``
    (the past of the day the agent decides on), and starts are limited so that
    ``t0 + horizon`` stays within ``last_day``.

    Parameters
    ----------
    generator, panel, horizon, random_start, first_day, last_day, start
        As for :class:`GenerativeMarket`.
    anchor_every : int
        ``K`` >= 1 days between re-anchorings.
    """

    def __init__(
        self,
        generator: object,
        panel: object,
        *,
        anchor_every: int,
        start: StartSpec = None,
        horizon: int = 252,
        random_start: bool = True,
        first_day: StartSpec = None,
        last_day: StartSpec = None,
    ) -> None:
        if isinstance(anchor_every, bool) or not isinstance(anchor_every, int | np.integer) or anchor_every < 1:
            raise FactorGymError(f"anchor_every must be a whole number of days >= 1, got {anchor_every!r}")
        super().__init__(generator, panel, start=start, horizon=horizon, random_start=random_start,  # type: ignore[arg-type]
                         first_day=first_day, last_day=last_day)  # fmt: skip
        self.anchor_every = int(anchor_every)

    def open(self, n_paths: int, obs: ObservationConfig) -> AnchoredPaths:
        return AnchoredPaths(self, n_paths, obs)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", anchor_every={self.anchor_every})"


class AnchoredPaths(GenerativePaths):
    """Paths of an :class:`AnchoredMarket` (uses :class:`GenerativePaths`' ring buffer and
    simulator; restarts them on real windows every ``K`` days)."""

    def __init__(self, market: AnchoredMarket, n_paths: int, obs: ObservationConfig) -> None:
        super().__init__(market, n_paths, obs)
        self.K = market.anchor_every
        self._hi = market.last_row - market.horizon  # the calendar of an episode stays inside last_day
        if self._hi < self._lo:
            raise DataValidationError(f"{self.panel.name} has no start day with {market.horizon} real days after it")
        self._anchor_rngs: list[np.random.Generator | None] = [None] * self.n_paths

    def reset(self, idx, start_rngs, path_rngs, starts) -> None:  # type: ignore[override]
        super().reset(idx, start_rngs, path_rngs, starts)
        for j, p in enumerate(np.asarray(idx).tolist()):
            self._anchor_rngs[p] = np.random.default_rng(_child_seed(start_rngs[j]))

    def step(self) -> np.ndarray:
        r = super().step()
        due = np.flatnonzero(self._day % self.K == 0)
        if due.size:
            r = r.copy()
            r[due] = self._anchor(due)
        return r

    def _anchor(self, idx: np.ndarray) -> np.ndarray:
        """Restart paths ``idx`` from the real history up to their current calendar day
        ``t0 + k``; returns that day's real returns ``(k, N)`` (0.0 where absent), which the
        paths earn instead of the simulated ones (what is earned is what is then observed)."""
        R = self.panel.returns
        rows = (self.start_rows[idx] + self._day[idx]).tolist()
        hist = np.stack([R[t - self._L + 1 : t + 1] for t in rows])
        avail = ~np.isnan(hist)
        self._ring.write(idx, np.where(avail, hist, 0.0), avail.astype(np.float64) if self.has_mask else None)
        windows = np.stack([R[t - self._mh + 1 : t + 1] for t in rows])
        rngs = [self._anchor_rngs[p] for p in idx.tolist()]
        assert self._sim is not None
        self._sim.reset_paths(idx, windows, rngs)
        return np.where(avail[:, -1], hist[:, -1], 0.0)

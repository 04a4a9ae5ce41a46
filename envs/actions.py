"""Portfolio constraints, action spaces and the maps from actions to target weights.

Everything here is pure numpy and batched: a weight array has shape ``(..., N)`` (risky
assets; the cash weight is ``1 - sum(w)``), a simplex point has shape ``(..., N + 1)`` with
cash last. :class:`Constraints` and the feasibility checks live in the core module
:mod:`factorgym.constraints` (shared with the optimizer agents, so that they solve exactly
the problem the environment enforces) and are re-exported here.

Action modes
------------
``"weights"``
    The action *is* the target risky weight vector ``w`` (shape ``(N,)``, float64). It is
    validated, never altered: a vector that violates any configured constraint by more than
    ``Constraints.tol`` (default :data:`FEASIBILITY_TOL` = 1e-8, absolute) raises
    :class:`InfeasibleActionError`. This is the mode for optimizer agents.
``"softmax"``
    ``N + 1`` logits in ``[-1, 1]`` (cash last): ``x = softmax(a / temperature)``, then the
    Euclidean projection of ``x`` onto the capped simplex when box caps or budget bounds bind.
``"simplex"``
    ``N + 1`` numbers in ``[-1, 1]`` (cash last): the Euclidean projection onto the (capped)
    simplex ``{x : sum(x) = 1, lo <= x <= hi}``.
``"residual"``
    ``N + 1`` numbers ``a`` in ``[-1, 1]`` (cash last) read as a bounded tilt around a base
    portfolio ``b`` (``base_weights``, default ``1/N`` fully invested; cash ``1 - sum(b)``
    last): ``x = b + residual_scale * (a - mean(a)) / 2``, so ``sum(x) = 1`` and no entry
    moves by more than ``residual_scale``; when ``x`` leaves the (capped) simplex it is
    projected onto it. The zero action (any constant action) is the base portfolio exactly:
    "do no harm" is where an untrained policy starts.
``"long_short"``
    ``N`` numbers ``a`` in ``[-1, 1]``: ``w = L * a / max(1, ||a||_1)`` (``L`` the gross
    leverage cap, so every gross exposure in ``[0, L]`` is reachable), then clipped to the
    box caps (clipping towards zero never increases gross exposure). Cash is ``1 - sum(w)``
    and may be negative (borrowing).

In every mapped mode (all but ``"weights"``) two optional trading rules then act on the
mapped target ``w`` from the drifted weights ``w_d`` (both off by default):

* partial adjustment, ``trade_rate`` ``k`` in ``(0, 1]``: ``w = w_d + k (w - w_d)``, so the
  book moves a fraction ``k`` of the way to the policy's target each day (the held book is
  an exponential average of the targets; noise in the targets trades ``k`` times less);
* a no-trade band, ``no_trade_band`` ``b >= 0``: when ``sum|w - w_d| < b`` the drifted book
  is kept (no trade, no cost that day).

Then a turnover cap ``sum|w - w_drifted| <= kappa`` is enforced by moving from the drifted
weights only part of the way towards the mapped target:
``w = w_d + (w - w_d) * min(1, kappa / ||w - w_d||_1)``. Each constraint here is convex,
so the result satisfies every constraint that both the drifted portfolio and the mapped
target satisfy; when drift itself has left the drifted portfolio outside a cap, the
capped move reduces the violation without necessarily removing it in one step.

Absent assets: on a day an asset does not trade, its target may only lie between 0 and its
drifted weight (:meth:`ActionMapper.limit_absent`, :func:`limit_absent`); the engine refuses
a ``"weights"`` action that breaks this and repairs a mapped one before the turnover cap.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from gymnasium import spaces

from factorgym.constraints import (
    FEASIBILITY_TOL,
    Constraints,
    InfeasibleActionError,
    check_feasible,
    feasibility_violations,
    project_box_sum,
)
from factorgym.errors import ActionError, InfeasibleError

__all__ = [
    "ACTION_MODES",
    "FEASIBILITY_TOL",
    "ActionMapper",
    "ActionMode",
    "Constraints",
    "InfeasibleActionError",
    "WeightsSpace",
    "cap_turnover",
    "check_feasible",
    "check_trading_rules",
    "limit_absent",
    "feasibility_violations",
    "project_box_sum",
    "project_simplex",
    "scale_gross",
    "softmax",
    "validate_actions",
]

ActionMode = Literal["weights", "softmax", "simplex", "long_short", "residual"]
#: The supported action modes.
ACTION_MODES: tuple[str, ...] = ("weights", "softmax", "simplex", "long_short", "residual")


# --------------------------------------------------------------------------- maps
def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` over the last axis (numerically stable)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def project_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row of ``v`` ``(..., M)`` onto the probability simplex."""
    v = np.asarray(v, dtype=np.float64)
    m = v.shape[-1]
    return project_box_sum(v, np.zeros(m), np.ones(m), 1.0)


def scale_gross(a: np.ndarray, max_gross: float) -> np.ndarray:
    """``max_gross * a / max(1, ||a||_1)`` row-wise: gross exposure in ``[0, max_gross]``."""
    a = np.asarray(a, dtype=np.float64)
    g = np.abs(a).sum(axis=-1, keepdims=True)
    return a * (max_gross / np.maximum(g, 1.0))


def cap_turnover(w: np.ndarray, w_drifted: np.ndarray, max_turnover: float) -> np.ndarray:
    """Move from ``w_drifted`` towards ``w`` by at most ``max_turnover`` in L1 (row-wise)."""
    d = w - w_drifted
    to = np.abs(d).sum(axis=-1, keepdims=True)
    scale = np.minimum(1.0, max_turnover / np.maximum(to, 1e-300))
    return np.where(to > max_turnover, w_drifted + d * scale, w)


def check_trading_rules(trade_rate: Any, no_trade_band: Any, mode: str) -> tuple[float, float]:
    """``(trade_rate, no_trade_band)`` as floats, or :class:`ActionError` naming the bad one:
    ``trade_rate`` in ``(0, 1]``, ``no_trade_band`` finite and ``>= 0``, and both at their
    defaults (1, 0) in the ``"weights"`` mode, whose action is the traded book."""
    out = []
    for name, v, ok, what in (("trade_rate", trade_rate, lambda x: 0 < x <= 1, "a number in (0, 1]"),
                              ("no_trade_band", no_trade_band, lambda x: 0 <= x < math.inf, "a finite number >= 0")):  # fmt: skip
        if isinstance(v, bool) or not isinstance(v, int | float | np.floating | np.integer) or not ok(v):
            raise ActionError(f"{name} must be {what}, got {v!r}")
        out.append(float(v))
    if mode == "weights" and (out[0] != 1.0 or out[1] != 0.0):
        raise ActionError("trade_rate and no_trade_band apply to the mapped action modes, not 'weights' (whose action is the traded book)")
    return out[0], out[1]


def validate_actions(actions: Any, shape: tuple[int, ...], low: np.ndarray, high: np.ndarray, tol: float) -> np.ndarray:
    """Return ``actions`` as float64 of ``shape`` or raise :class:`ActionError`.

    Rejects (never repairs) wrong shapes, NaN/inf entries and entries outside
    ``[low - tol, high + tol]`` (``low``/``high`` broadcast against the last axis).
    """
    try:
        a = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ActionError(f"action is not numeric: {exc}") from None
    if a.shape != shape:
        raise ActionError(f"action has shape {a.shape}, expected {shape}")
    # fast path: one min and one max (NaN fails both comparisons)
    if low.ndim == 0:
        if a.min() >= low - tol and a.max() <= high + tol:
            return a
    elif (a >= low - tol).all() and (a <= high + tol).all():
        return a
    if not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0].tolist()
        raise ActionError(f"action contains NaN or inf (first at index {bad})")
    lo_b = np.broadcast_to(low, a.shape)
    hi_b = np.broadcast_to(high, a.shape)
    idx = tuple(np.argwhere((a < lo_b - tol) | (a > hi_b + tol))[0])
    raise ActionError(
        f"action entry {list(map(int, idx))} = {a[idx]:.6g} is outside the action space "
        f"[{lo_b[idx]:.6g}, {hi_b[idx]:.6g}]"
    )


class WeightsSpace(spaces.Box):
    """The ``"weights"`` action space: a Box of per-asset bounds whose samples are feasible.

    ``sample()`` returns a portfolio satisfying every static constraint (box, long-only,
    gross leverage, budget; not the state-dependent turnover cap), so random-action tests
    and ``check_env`` exercise valid trades. ``contains`` checks the same constraints.
    """

    def __init__(self, constraints: Constraints, n_assets: int) -> None:
        lo, hi = constraints.bounds(n_assets)
        super().__init__(low=lo, high=hi, shape=(n_assets,), dtype=np.float64)
        self.constraints = constraints
        self._center = constraints.feasible_point(n_assets)
        self._simplex = constraints.simplex_bounds(n_assets) if constraints.long_only else None

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        if mask is not None or probability is not None:
            raise NotImplementedError("WeightsSpace.sample does not support masks")
        n = self.shape[0]
        c = self.constraints
        if self._simplex is not None:
            x = self.np_random.dirichlet(np.ones(n + 1))
            return project_box_sum(x, *self._simplex, 1.0)[:n]
        # long/short: a uniform point of the box, pulled towards a feasible centre just far
        # enough to meet the budget (linear) and gross-leverage (convex) constraints
        x = self.np_random.uniform(self.low, self.high)
        d = x - self._center
        lam = 1.0
        s0, sd = float(self._center.sum()), float(d.sum())
        if sd > 0:
            lam = min(lam, (c.budget[1] - s0) / sd)
        elif sd < 0:
            lam = min(lam, (c.budget[0] - s0) / sd)
        lam = max(lam, 0.0)
        if np.abs(self._center + lam * d).sum() > c.max_gross_leverage:
            a, b = 0.0, lam
            for _ in range(60):
                m = 0.5 * (a + b)
                a, b = (m, b) if np.abs(self._center + m * d).sum() <= c.max_gross_leverage else (a, m)
            lam = a
        return self._center + lam * d

    def contains(self, x: Any) -> bool:
        if not super().contains(x):
            return False
        return not feasibility_violations(np.asarray(x, dtype=np.float64), None, self.constraints)

    def __repr__(self) -> str:
        return f"WeightsSpace(n_assets={self.shape[0]}, {self.constraints!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WeightsSpace) and super().__eq__(other) and self.constraints == other.constraints

    __hash__ = None  # type: ignore[assignment]


def limit_absent(w: np.ndarray, w_drifted: np.ndarray, tradable: np.ndarray, constraints: Constraints) -> np.ndarray:
    """Targets ``(P, N)`` with no new exposure in the assets that are not ``tradable`` ``(P, N)``.

    Such an asset's target is kept between 0 and its drifted weight (it may be sold at its
    last price, never bought or shorted further). With long-only ``constraints`` each row
    that breaks this is projected (Euclidean, :func:`project_box_sum`) onto the capped simplex
    whose bound for such an asset is its drifted weight (within its box), cash last: the
    excess mass is spread over the other assets and cash within their bounds. When that set
    is empty (e.g. a fully invested budget and nothing else left to buy), or for long/short
    books, the entries are clipped into ``[min(0, w_d), max(0, w_d)]`` and the excess goes to
    cash (clipping towards zero never raises gross exposure; a budget tighter than the gross
    cap may then be missed).
    """
    w = np.array(w, dtype=np.float64)
    wd = np.asarray(w_drifted, dtype=np.float64)
    absent = ~np.asarray(tradable, dtype=bool)
    lo_a, hi_a = np.minimum(wd, 0.0), np.maximum(wd, 0.0)
    rows = np.flatnonzero((absent & ((w > hi_a) | (w < lo_a))).any(axis=1))
    n = w.shape[1]
    simplex = constraints.simplex_bounds(n) if constraints.long_only else None
    for p in rows.tolist():
        a = absent[p]
        if simplex is not None:
            lo, hi = simplex
            hi = hi.copy()
            hi[:n] = np.where(a, np.maximum(lo[:n], np.minimum(hi[:n], hi_a[p])), hi[:n])
            if lo.sum() <= 1.0 <= hi.sum():
                x = np.append(w[p], 1.0 - w[p].sum())
                w[p] = project_box_sum(x, lo, hi, 1.0)[:n]
                continue
        w[p] = np.where(a, np.clip(w[p], lo_a[p], hi_a[p]), w[p])
    return w


class ActionMapper:
    """Maps a batch of actions to target risky weights for one action mode.

    Parameters
    ----------
    mode : {"weights", "softmax", "simplex", "long_short"}
    n_assets : int
    constraints : Constraints
        ``"softmax"``/``"simplex"`` need ``long_only=True``; ``"long_short"`` needs
        ``long_only=False``, box bounds with ``lo <= 0 <= hi`` and a budget implied by the gross
        cap (use ``"weights"`` for other constraint sets).
    temperature : float
        Softmax temperature (``"softmax"`` only). With logits in ``[-1, 1]`` the largest
        reachable weight ratio between two entries is ``exp(2 / temperature)``; the default
        0.25 lets any single entry (cash included) reach more than 99% of 21 entries.
    residual_scale, base_weights
        ``"residual"`` only (see the module docstring).
    trade_rate : float
        Mapped modes: the fraction of the way from the drifted book to the mapped target
        traded each day, in ``(0, 1]`` (default 1: all the way).
    no_trade_band : float
        Mapped modes: an L1 distance ``>= 0`` between target and drifted book below which
        nothing is traded (default 0: off).

    Attributes
    ----------
    action_space : gymnasium.spaces.Box
        Shape ``(N,)`` for ``"weights"`` and ``"long_short"``, ``(N + 1,)`` otherwise; float64 for
        ``"weights"``, float32 in ``[-1, 1]`` otherwise.
    """

    def __init__(
        self,
        mode: str,
        n_assets: int,
        constraints: Constraints,
        temperature: float = 0.25,
        residual_scale: float = 0.1,
        base_weights: Any = None,
        trade_rate: float = 1.0,
        no_trade_band: float = 0.0,
    ) -> None:
        if mode not in ACTION_MODES:
            raise ActionError(f"unknown action_mode {mode!r}; expected one of {', '.join(ACTION_MODES)}")
        if not temperature > 0:
            raise ActionError(f"softmax temperature must be positive, got {temperature}")
        self.trade_rate, self.no_trade_band = check_trading_rules(trade_rate, no_trade_band, mode)
        self.mode = mode
        self.n_assets = n = int(n_assets)
        self.constraints = c = constraints
        self.temperature = float(temperature)
        self._simplex: tuple[np.ndarray, np.ndarray] | None = None
        self._project = False
        if mode == "weights":
            self.action_space: spaces.Box = WeightsSpace(c, n)
        elif mode in ("softmax", "simplex", "residual"):
            if not c.long_only:
                raise InfeasibleError(f"action_mode {mode!r} produces long-only portfolios; use long_only=True constraints")
            self._simplex = c.simplex_bounds(n)
            lo, hi = self._simplex
            self._project = mode == "simplex" or bool((lo > 0).any() or (hi < 1).any())
            self.action_space = spaces.Box(-1.0, 1.0, shape=(n + 1,), dtype=np.float32)
            if mode == "residual":
                self._init_residual(residual_scale, base_weights)
        else:
            if c.long_only:
                raise InfeasibleError("action_mode 'long_short' needs long_only=False constraints (Constraints.long_short())")
            lo, hi = c.bounds(n)
            if (lo > 0).any() or (hi < 0).any():
                raise InfeasibleError("action_mode 'long_short' needs box bounds with lo <= 0 <= hi")
            lev = c.max_gross_leverage
            if c.budget[0] > -lev or c.budget[1] < lev:
                raise InfeasibleError(
                    "action_mode 'long_short' enforces gross leverage and box caps only; the budget "
                    f"{c.budget} is tighter than the gross cap {lev}: use action_mode='weights'"
                )
            self._box = (lo, hi)
            self.action_space = spaces.Box(-1.0, 1.0, shape=(n,), dtype=np.float32)
        low = np.asarray(self.action_space.low, dtype=np.float64)
        high = np.asarray(self.action_space.high, dtype=np.float64)
        if mode == "weights":  # bounds are constraints there: check_feasible names the violation
            low, high = np.full_like(low, -np.inf), np.full_like(high, np.inf)
        uniform = bool((low == low[0]).all() and (high == high[0]).all())
        # scalar bounds enable the one-min-one-max fast path of validate_actions
        self.low = np.asarray(low[0]) if uniform else low
        self.high = np.asarray(high[0]) if uniform else high

    def _init_residual(self, scale: float, base_weights: Any) -> None:
        n = self.n_assets
        if not 0 < float(scale) <= 1:
            raise ActionError(f"residual_scale must be in (0, 1], got {scale}")
        self.residual_scale = float(scale)
        b = np.full(n, 1.0 / n) if base_weights is None else np.asarray(base_weights, dtype=np.float64)
        if b.shape != (n,):
            raise ActionError(f"base_weights must be {n} weights (one per asset), got shape {b.shape}")
        cash = 1.0 - b.sum()
        base = np.append(b, 0.0 if abs(cash) < 1e-12 else cash)  # 1/N: cash exactly 0, not a rounding error
        lo, hi = self._simplex  # type: ignore[misc]
        tol = self.constraints.tol
        if (base < lo - tol).any() or (base > hi + tol).any():
            j = int(np.argmax((base < lo - tol) | (base > hi + tol)))
            what = "cash" if j == n else f"asset {j}"
            raise InfeasibleError(
                f"base_weights put {base[j]:.6g} in {what}, outside its bounds [{lo[j]:.6g}, {hi[j]:.6g}] under the constraints"
            )
        #: the base portfolio with cash last ``(N + 1,)``
        self.base = base

    def residual(self, actions: np.ndarray) -> np.ndarray:
        """Simplex points ``(P, N + 1)`` of residual actions ``(P, N + 1)`` (before projection)."""
        a = np.asarray(actions, dtype=np.float64)
        return self.base + (0.5 * self.residual_scale) * (a - a.mean(axis=-1, keepdims=True))

    @property
    def action_dim(self) -> int:
        """Length of one action vector."""
        return int(self.action_space.shape[0])

    def validate(self, actions: Any, n_paths: int | None = None) -> np.ndarray:
        """Float64 actions of shape ``(n_paths, D)`` (or ``(D,)`` when ``n_paths`` is None)."""
        shape = (self.action_dim,) if n_paths is None else (n_paths, self.action_dim)
        return validate_actions(actions, shape, self.low, self.high, self.constraints.tol)

    def __call__(self, actions: np.ndarray, w_drifted: np.ndarray) -> np.ndarray:
        """Target weights ``(P, N)`` from validated actions ``(P, D)`` and drifted weights ``(P, N)``.

        :meth:`target` then (mapped modes) :meth:`cap`. Raises :class:`InfeasibleActionError`
        in ``"weights"`` mode when the action violates a constraint.
        """
        w = self.target(actions, w_drifted)
        return w if self.mode == "weights" else self.cap(w, w_drifted)

    def target(self, actions: np.ndarray, w_drifted: np.ndarray | None = None) -> np.ndarray:
        """The static part of the map: target weights ``(P, N)`` before the turnover cap.

        In ``"weights"`` mode the action is checked against every constraint (the turnover
        cap too when ``w_drifted`` is given) and returned unaltered.
        """
        c = self.constraints
        n = self.n_assets
        if self.mode == "weights":
            check_feasible(actions, w_drifted, c)
            return actions
        if self.mode == "softmax":
            x = softmax(actions, self.temperature)
            if self._project:
                x = project_box_sum(x, *self._simplex, 1.0)  # type: ignore[misc]
            return x[:, :n]
        if self.mode == "simplex":
            return project_box_sum(actions, *self._simplex, 1.0)[:, :n]  # type: ignore[misc]
        if self.mode == "residual":
            x = self.residual(actions)
            lo, hi = self._simplex  # type: ignore[misc]
            out = (x < lo).any(axis=-1) | (x > hi).any(axis=-1)
            if out.any():  # only the rows that left the simplex: the others stay exact
                x[out] = project_box_sum(x[out], lo, hi, 1.0)
            return x[:, :n]
        return np.clip(scale_gross(actions, c.max_gross_leverage), *self._box)

    def cap(self, w: np.ndarray, w_drifted: np.ndarray) -> np.ndarray:
        """The traded book ``(P, N)`` from targets ``w`` and drifted weights ``w_drifted``:
        partial adjustment (``trade_rate``), the no-trade band, then the turnover cap (if any,
        :func:`cap_turnover`). Each step is a convex combination of ``w`` and ``w_drifted``."""
        if self.trade_rate != 1.0:
            w = w_drifted + self.trade_rate * (w - w_drifted)
        if self.no_trade_band > 0.0:
            small = np.abs(w - w_drifted).sum(axis=-1, keepdims=True) < self.no_trade_band
            w = np.where(small, w_drifted, w)
        kappa = self.constraints.max_turnover
        return w if kappa is None else cap_turnover(w, w_drifted, kappa)

    def limit_absent(self, w: np.ndarray, w_drifted: np.ndarray, tradable: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(w', bad)``: targets ``(P, N)`` that open no new exposure in untradable assets.

        An asset that does not trade on the day of the trade (``tradable`` False) can only be
        reduced towards zero: its target must lie between 0 and its drifted weight. ``bad``
        ``(P, N)`` marks the entries of ``w`` that break this (``None`` when none does, and
        ``w`` is then returned as it is). The repair (see :func:`limit_absent`): long-only
        books are projected onto the capped simplex with each such asset capped at its drifted
        weight, so its excess mass goes to the other assets and cash alike; long/short books
        are clipped towards zero (the excess goes to cash).
        """
        lo = np.minimum(w_drifted, 0.0)
        hi = np.maximum(w_drifted, 0.0)
        bad = ~tradable & ((w > hi) | (w < lo))
        if not bad.any():
            return w, None
        return limit_absent(w, w_drifted, tradable, self.constraints), bad

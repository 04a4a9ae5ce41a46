"""Portfolio constraints, action spaces and the maps from actions to target weights.

Everything here is pure numpy and batched: a weight array has shape ``(..., N)`` (risky
assets; the cash weight is ``1 - sum(w)``), a simplex point has shape ``(..., N + 1)`` with
cash last. Optimizer agents import :class:`Constraints` and :func:`check_feasible` from here
so that they solve exactly the problem the environment enforces.

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
``"long_short"``
    ``N`` numbers ``a`` in ``[-1, 1]``: ``w = L * a / max(1, ||a||_1)`` (``L`` the gross
    leverage cap, so every gross exposure in ``[0, L]`` is reachable), then clipped to the
    box caps (clipping towards zero never increases gross exposure). Cash is ``1 - sum(w)``
    and may be negative (borrowing).

In every mapped mode (all but ``"weights"``) a turnover cap ``sum|w - w_drifted| <= kappa``
is then enforced by moving from the drifted weights only part of the way towards the mapped
target: ``w = w_d + (w - w_d) * min(1, kappa / ||w - w_d||_1)``. Each constraint here is
convex, so the result satisfies every constraint that both the drifted portfolio and the
mapped target satisfy; when drift itself has left the drifted portfolio outside a cap, the
capped move reduces the violation without necessarily removing it in one step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from gymnasium import spaces

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
    "feasibility_violations",
    "project_box_sum",
    "project_simplex",
    "scale_gross",
    "softmax",
    "validate_actions",
]

#: Absolute tolerance of every feasibility check (weights, sums, leverage, turnover).
FEASIBILITY_TOL = 1e-8

ActionMode = Literal["weights", "softmax", "simplex", "long_short"]
#: The supported action modes.
ACTION_MODES: tuple[str, ...] = ("weights", "softmax", "simplex", "long_short")


class InfeasibleActionError(ActionError, InfeasibleError):
    """A ``"weights"`` action violates the configured constraints (both an ActionError and
    an InfeasibleError, so either ``except`` clause catches it)."""


def _bound_tuple(v: float | Sequence[float] | np.ndarray) -> float | tuple[float, ...]:
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 0:
        return float(a)
    if a.ndim != 1:
        raise InfeasibleError(f"box bounds must be scalars or 1-D sequences, got shape {a.shape}")
    return tuple(float(x) for x in a)


@dataclass(frozen=True)
class Constraints:
    """The constraint set on target risky weights ``w`` (shape ``(N,)``; cash ``1 - sum(w)``).

    Parameters
    ----------
    long_only : bool
        ``w >= 0``.
    max_gross_leverage : float
        ``sum(|w|) <= max_gross_leverage``.
    budget : (float, float)
        Bounds on the net risky exposure ``sum(w)`` (so cash lies in ``[1 - hi, 1 - lo]``).
        ``(0, 1)``: invested up to 100% with no borrowing (the default); ``(1, 1)``: fully
        invested; ``(-inf, inf)``: no budget constraint (long/short, cash is the residual).
    box : (lo, hi) or None
        Per-asset bounds ``lo <= w_i <= hi``; each a scalar or a sequence of length ``N``.
    max_turnover : float or None
        ``sum(|w - w_drifted|) <= max_turnover`` (one-way turnover per rebalance).
    tol : float
        Absolute tolerance of the checks (default :data:`FEASIBILITY_TOL`).

    Notes
    -----
    Under the environment's accounting the day's cost is paid from cash, so a portfolio
    that is fully invested (``sum(w) = 1``) drifts to a slightly negative cash weight (minus
    the cost, a few bps). The budget applies to the *target* weights an agent chooses.
    """

    long_only: bool = True
    max_gross_leverage: float = 1.0
    budget: tuple[float, float] = (0.0, 1.0)
    box: tuple[Any, Any] | None = None
    max_turnover: float | None = None
    tol: float = FEASIBILITY_TOL

    def __post_init__(self) -> None:
        lev = float(self.max_gross_leverage)
        if not lev > 0 or not math.isfinite(lev):
            raise InfeasibleError(f"max_gross_leverage must be positive and finite, got {self.max_gross_leverage}")
        lo, hi = (float(self.budget[0]), float(self.budget[1]))
        if math.isnan(lo) or math.isnan(hi) or lo > hi:
            raise InfeasibleError(f"budget bounds must satisfy lo <= hi, got {self.budget}")
        if self.long_only and hi < 0:
            raise InfeasibleError(f"a long-only portfolio cannot have net exposure <= {hi}")
        box = self.box
        if box is not None:
            if len(box) != 2:
                raise InfeasibleError(f"box must be a (lo, hi) pair, got {box!r}")
            box = (_bound_tuple(box[0]), _bound_tuple(box[1]))
            blo, bhi = (np.asarray(b, dtype=np.float64) for b in box)
            try:
                bad = bool(np.isnan(blo).any() or np.isnan(bhi).any() or (blo > bhi).any())
            except ValueError:
                raise InfeasibleError(f"box bounds have different lengths: {self.box!r}") from None
            if bad:
                raise InfeasibleError(f"box bounds must satisfy lo <= hi, got {self.box!r}")
        if self.max_turnover is not None and not float(self.max_turnover) > 0:
            raise InfeasibleError(f"max_turnover must be positive, got {self.max_turnover}")
        if not float(self.tol) >= 0:
            raise InfeasibleError(f"tol must be non-negative, got {self.tol}")
        object.__setattr__(self, "max_gross_leverage", lev)
        object.__setattr__(self, "budget", (lo, hi))
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "max_turnover", None if self.max_turnover is None else float(self.max_turnover))
        object.__setattr__(self, "tol", float(self.tol))

    @classmethod
    def long_short(
        cls,
        max_gross_leverage: float = 2.0,
        *,
        budget: tuple[float, float] = (-math.inf, math.inf),
        box: tuple[Any, Any] | None = None,
        max_turnover: float | None = None,
        tol: float = FEASIBILITY_TOL,
    ) -> Constraints:
        """A long/short constraint set (no budget constraint by default)."""
        return cls(False, max_gross_leverage, budget, box, max_turnover, tol)

    def bounds(self, n_assets: int) -> tuple[np.ndarray, np.ndarray]:
        """Effective per-asset bounds ``(lo, hi)``, each of shape ``(n_assets,)``.

        Combines the box, long-only (``lo >= 0``) and the gross cap (``|w_i| <= L``).
        """
        lev = self.max_gross_leverage
        lo = np.full(n_assets, -lev)
        hi = np.full(n_assets, lev)
        if self.box is not None:
            try:
                blo = np.broadcast_to(np.asarray(self.box[0], dtype=np.float64), (n_assets,))
                bhi = np.broadcast_to(np.asarray(self.box[1], dtype=np.float64), (n_assets,))
            except ValueError:
                raise InfeasibleError(f"box bounds {self.box!r} do not match {n_assets} assets") from None
            lo = np.maximum(lo, blo)
            hi = np.minimum(hi, bhi)
        if self.long_only:
            lo = np.maximum(lo, 0.0)
        if (lo > hi).any():
            raise InfeasibleError(f"per-asset bounds are empty for assets {np.nonzero(lo > hi)[0].tolist()}")
        return lo, hi

    def feasible_point(self, n_assets: int) -> np.ndarray:
        """A portfolio ``(n_assets,)`` satisfying every static constraint (no turnover cap).

        Raises
        ------
        InfeasibleError
            When the constraints admit no portfolio at all.
        """
        lo, hi = self.bounds(n_assets)
        b_lo, b_hi = self.budget
        # the net exposure closest to that of the smallest-norm point of the box
        target = float(np.clip(np.clip(0.0, lo, hi).sum(), b_lo, b_hi))
        target = float(np.clip(target, lo.sum(), hi.sum()))
        w = project_box_sum(np.zeros(n_assets), lo, hi, target)
        bad = feasibility_violations(w, None, self)
        if bad:
            raise InfeasibleError(f"the constraints admit no portfolio of {n_assets} assets: {bad[0]}")
        return w

    def simplex_bounds(self, n_assets: int) -> tuple[np.ndarray, np.ndarray]:
        """Bounds ``(lo, hi)`` of shape ``(N + 1,)`` on the simplex point (cash last).

        Only for long-only constraints (the simplex-based modes).
        """
        if not self.long_only:
            raise InfeasibleError("simplex bounds need long-only constraints")
        lo, hi = self.bounds(n_assets)
        hi = np.minimum(hi, 1.0)
        net_hi = min(self.budget[1], self.max_gross_leverage, 1.0)
        net_lo = max(self.budget[0], 0.0)
        lo_all = np.append(lo, 1.0 - net_hi)
        hi_all = np.append(hi, 1.0 - net_lo)
        if lo_all.sum() > 1.0 + self.tol or hi_all.sum() < 1.0 - self.tol or net_lo > net_hi:
            raise InfeasibleError(
                f"no long-only portfolio satisfies box {self.box!r} with budget {self.budget} "
                f"and gross leverage {self.max_gross_leverage}"
            )
        return lo_all, hi_all


# --------------------------------------------------------------------------- checks
def _violation_masks(
    w: np.ndarray, w_drifted: np.ndarray | None, c: Constraints
) -> list[tuple[np.ndarray, str, np.ndarray]]:
    """``(bad (P,), description, amount (P,))`` for each constraint; ``w`` is ``(P, N)``."""
    tol = c.tol
    n = w.shape[-1]
    out: list[tuple[np.ndarray, str, np.ndarray]] = []
    if c.long_only:
        amt = -w.min(axis=-1)
        out.append((amt > tol, "long-only: negative weight", amt))
    if c.box is not None:
        blo = np.broadcast_to(np.asarray(c.box[0], dtype=np.float64), (n,))
        bhi = np.broadcast_to(np.asarray(c.box[1], dtype=np.float64), (n,))
        amt = np.maximum((blo - w).max(axis=-1), (w - bhi).max(axis=-1))
        out.append((amt > tol, f"box caps [{c.box[0]}, {c.box[1]}]", amt))
    gross = np.abs(w).sum(axis=-1)
    out.append((gross > c.max_gross_leverage + tol, f"gross leverage sum|w| <= {c.max_gross_leverage}", gross))
    net = w.sum(axis=-1)
    b_lo, b_hi = c.budget
    out.append(((net < b_lo - tol) | (net > b_hi + tol), f"budget {b_lo} <= sum(w) <= {b_hi}", net))
    if c.max_turnover is not None and w_drifted is not None:
        to = np.abs(w - w_drifted).sum(axis=-1)
        out.append((to > c.max_turnover + tol, f"turnover sum|w - w_drifted| <= {c.max_turnover}", to))
    return out


def feasibility_violations(w: np.ndarray, w_drifted: np.ndarray | None, constraints: Constraints) -> list[str]:
    """Human-readable violated constraints of one portfolio ``w`` ``(N,)`` (empty if feasible)."""
    w2 = np.atleast_2d(np.asarray(w, dtype=np.float64))
    wd2 = None if w_drifted is None else np.atleast_2d(np.asarray(w_drifted, dtype=np.float64))
    if not np.isfinite(w2).all():
        return ["weights contain NaN or inf"]
    return [
        f"{desc} (value {float(amt[0]):.6g})"
        for bad, desc, amt in _violation_masks(w2, wd2, constraints)
        if bool(bad[0])
    ]


def check_feasible(w: np.ndarray, w_drifted: np.ndarray | None, constraints: Constraints) -> None:
    """Raise :class:`InfeasibleActionError` unless every ``w`` satisfies ``constraints``.

    Parameters
    ----------
    w : ndarray of shape (N,) or (P, N)
        Target risky weights.
    w_drifted : ndarray of the same shape, or None
        Current drifted weights (for the turnover cap; ``None`` skips it).
    constraints : Constraints
        Checked with absolute tolerance ``constraints.tol``.
    """
    w = np.asarray(w, dtype=np.float64)
    w2 = np.atleast_2d(w)
    wd2 = None if w_drifted is None else np.atleast_2d(np.asarray(w_drifted, dtype=np.float64))
    if not np.isfinite(w2).all():
        raise ActionError("target weights contain NaN or inf")
    checks = _violation_masks(w2, wd2, constraints)
    any_bad = np.logical_or.reduce([bad for bad, _, _ in checks])
    if any_bad.any():
        p = int(np.argmax(any_bad))
        where = f" (path {p})" if w.ndim == 2 else ""
        what = "; ".join(f"{desc} (value {float(amt[p]):.10g})" for bad, desc, amt in checks if bad[p])
        raise InfeasibleActionError(f"infeasible target weights{where}: violates {what}; tolerance {constraints.tol:g}")


# --------------------------------------------------------------------------- maps
def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` over the last axis (numerically stable)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def project_box_sum(v: np.ndarray, lo: np.ndarray, hi: np.ndarray, total: float = 1.0) -> np.ndarray:
    """Euclidean projection of each row of ``v`` onto ``{x : lo <= x <= hi, sum(x) = total}``.

    The projection is ``x = clip(v - tau, lo, hi)`` with the scalar ``tau`` that makes the row
    sum to ``total``; ``tau`` is found exactly from the sorted breakpoints of the piecewise
    linear map ``tau -> sum(clip(v - tau, lo, hi))`` (O(M log M) per row, no iteration).

    Parameters
    ----------
    v : ndarray of shape (..., M)
    lo, hi : ndarray of shape (M,)
        Finite bounds with ``sum(lo) <= total <= sum(hi)``.
    total : float

    Returns
    -------
    ndarray of shape (..., M)
    """
    v = np.asarray(v, dtype=np.float64)
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise InfeasibleError("project_box_sum needs finite bounds")
    if lo.sum() > total + FEASIBILITY_TOL or hi.sum() < total - FEASIBILITY_TOL:
        raise InfeasibleError(f"no point in the box sums to {total} (box sums [{lo.sum()}, {hi.sum()}])")
    shape = v.shape
    m = shape[-1]
    x = v.reshape(-1, m)
    # breakpoints: at v - hi a coordinate leaves its upper bound (slope -1 more), at v - lo
    # it reaches its lower bound (slope back up by 1)
    bp = np.concatenate([x - hi, x - lo], axis=1)  # (B, 2M)
    delta = np.concatenate([np.ones_like(x), -np.ones_like(x)], axis=1)
    order = np.argsort(bp, axis=1, kind="stable")
    b = np.take_along_axis(bp, order, axis=1)
    slope = np.cumsum(np.take_along_axis(delta, order, axis=1), axis=1)  # free coords right of b_k
    g0 = hi.sum()
    # g(b_k) for k = 0..2M-1: g(b_0) = sum(hi); g decreases by slope_{k-1} * (b_k - b_{k-1})
    g = g0 - np.concatenate(
        [np.zeros((x.shape[0], 1)), np.cumsum(slope[:, :-1] * np.diff(b, axis=1), axis=1)], axis=1
    )
    # first k with g(b_k) <= total; tau lies in [b_{k-1}, b_k]
    below = g <= total
    # none below: total is sum(lo) up to rounding, so tau is at (or past) the last breakpoint
    k = np.where(below.any(axis=1), np.argmax(below, axis=1), b.shape[1] - 1)
    k = np.maximum(k, 1)
    rows = np.arange(x.shape[0])
    b0, b1 = b[rows, k - 1], b[rows, k]
    g0k, g1k = g[rows, k - 1], g[rows, k]
    dg = g0k - g1k
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(dg > 0, (g0k - total) / dg, 0.0)
    tau = b0 + np.clip(frac, 0.0, 1.0) * (b1 - b0)
    out = np.clip(x - tau[:, None], lo, hi)
    return out.reshape(shape)


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

    Attributes
    ----------
    action_space : gymnasium.spaces.Box
        Shape ``(N,)`` for ``"weights"`` and ``"long_short"``, ``(N + 1,)`` otherwise; float64 for
        ``"weights"``, float32 in ``[-1, 1]`` otherwise.
    """

    def __init__(self, mode: str, n_assets: int, constraints: Constraints, temperature: float = 0.25) -> None:
        if mode not in ACTION_MODES:
            raise ActionError(f"unknown action_mode {mode!r}; expected one of {', '.join(ACTION_MODES)}")
        if not temperature > 0:
            raise ActionError(f"softmax temperature must be positive, got {temperature}")
        self.mode = mode
        self.n_assets = n = int(n_assets)
        self.constraints = c = constraints
        self.temperature = float(temperature)
        self._simplex: tuple[np.ndarray, np.ndarray] | None = None
        self._project = False
        if mode == "weights":
            self.action_space: spaces.Box = WeightsSpace(c, n)
        elif mode in ("softmax", "simplex"):
            if not c.long_only:
                raise InfeasibleError(f"action_mode {mode!r} produces long-only portfolios; use long_only=True constraints")
            self._simplex = c.simplex_bounds(n)
            lo, hi = self._simplex
            self._project = mode == "simplex" or bool((lo > 0).any() or (hi < 1).any())
            self.action_space = spaces.Box(-1.0, 1.0, shape=(n + 1,), dtype=np.float32)
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

        Raises :class:`InfeasibleActionError` in ``"weights"`` mode when the action violates
        a constraint.
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
            w = x[:, :n]
        elif self.mode == "simplex":
            w = project_box_sum(actions, *self._simplex, 1.0)[:, :n]  # type: ignore[misc]
        else:
            w = np.clip(scale_gross(actions, c.max_gross_leverage), *self._box)
        if c.max_turnover is not None:
            w = cap_turnover(w, w_drifted, c.max_turnover)
        return w

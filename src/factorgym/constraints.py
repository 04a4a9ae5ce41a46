"""The constraint set on portfolio weights, shared by the environments and the optimizers.

:class:`Constraints` is what an environment enforces on an agent's target risky weights
(shape ``(..., N)``; the cash weight is ``1 - sum(w)``) and what the optimizer agents solve
under, so that both see exactly one problem; :func:`check_feasible` and
:func:`feasibility_violations` are the one feasibility check (absolute tolerance
:data:`FEASIBILITY_TOL`), and :func:`project_box_sum` the exact box-and-sum projection both
use. Pure numpy; part of the core floor (it imports only :mod:`factorgym.errors`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from factorgym.errors import ActionError, InfeasibleError
from factorgym.jsonable import jsonable, numbers_from_json

__all__ = [
    "FEASIBILITY_TOL",
    "Constraints",
    "InfeasibleActionError",
    "check_feasible",
    "feasibility_violations",
    "max_violation",
    "project_box_sum",
]

#: Absolute tolerance of every feasibility check (weights, sums, leverage, turnover).
FEASIBILITY_TOL = 1e-8


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

    def to_dict(self) -> dict[str, Any]:
        """JSON form (infinite budget bounds tagged; :meth:`from_dict` reads it back)."""
        return jsonable({
            "long_only": self.long_only, "max_gross_leverage": self.max_gross_leverage,
            "budget": list(self.budget), "box": None if self.box is None else list(self.box),
            "max_turnover": self.max_turnover, "tol": self.tol,
        })  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Constraints:
        """Inverse of :meth:`to_dict`."""
        d = numbers_from_json(dict(d))
        box = d.get("box")
        return cls(
            long_only=bool(d["long_only"]),
            max_gross_leverage=float(d["max_gross_leverage"]),
            budget=(float(d["budget"][0]), float(d["budget"][1])),
            box=None if box is None else (box[0], box[1]),
            max_turnover=None if d.get("max_turnover") is None else float(d["max_turnover"]),
            tol=float(d["tol"]),
        )

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


def max_violation(w: np.ndarray, w_drifted: np.ndarray | None, constraints: Constraints) -> float:
    """Largest absolute violation of any constraint by one portfolio ``w`` ``(N,)`` (0 when feasible).

    The turnover cap is checked only when ``w_drifted`` ``(N,)`` is given.
    """
    w = np.asarray(w, dtype=np.float64)
    c = constraints
    lo, hi = c.bounds(w.shape[0])
    v = max(0.0, float((lo - w).max()), float((w - hi).max()))
    s = float(w.sum())
    v = max(v, c.budget[0] - s, s - c.budget[1])
    v = max(v, float(np.abs(w).sum()) - c.max_gross_leverage)
    if c.max_turnover is not None and w_drifted is not None:
        v = max(v, float(np.abs(w - w_drifted).sum()) - c.max_turnover)
    return v


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

"""Feasibility of optimizer solutions: the constraint set in solver form, polishing,
the least-turnover feasible portfolio and the diagnosis of infeasible days.

Solver output is within the solvers' own tolerances (about 1e-9) while the environment
rejects targets that violate a constraint by more than ``Constraints.tol`` (1e-8), so every
solution goes through :func:`polish` and is then verified with the environment's own check
(:func:`factorgym.constraints.feasibility_violations`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
from scipy.optimize import linprog

from factorgym.agents.solvers import SolverError
from factorgym.constraints import (
    Constraints,
    feasibility_violations,
    max_violation,
    project_box_sum,
)
from factorgym.errors import InfeasibleError

__all__ = [
    "POLISH_LIMIT",
    "Feasible",
    "MinTurnover",
    "Polished",
    "diagnose_infeasibility",
    "min_turnover_portfolio",
    "polish",
]

#: Raw constraint violations up to this are repaired by :func:`polish`; larger ones are a
#: solver failure.
POLISH_LIMIT = 1e-6


@dataclass(frozen=True)
class Feasible:
    """The constraint set in solver form for ``N`` assets (:meth:`of` builds it from a ``Constraints``)."""

    lower: np.ndarray
    upper: np.ndarray
    budget: tuple[float, float]
    gross: float | None
    turnover: float | None

    @classmethod
    def of(cls, c: Constraints, n: int) -> Feasible:
        lo, hi = c.bounds(n)
        b_lo, b_hi = c.budget
        gross: float | None = None
        if c.long_only:
            b_hi = min(b_hi, c.max_gross_leverage)  # sum|w| = sum(w)
        elif c.max_gross_leverage < np.maximum(np.abs(lo), np.abs(hi)).sum() - 1e-12:
            gross = c.max_gross_leverage
        return cls(lo, hi, (b_lo, b_hi), gross, c.max_turnover)

    def trade_bound(self, wd: np.ndarray) -> float:
        """A valid bound on every ``|w_i - w_d_i|`` (keeps unpriced trade variables bounded)."""
        return float(np.maximum(np.abs(self.lower), np.abs(self.upper)).max() + np.abs(wd).max() + 1.0)


class Polished(NamedTuple):
    """A polished solution (see :func:`polish`)."""

    weights: np.ndarray
    """Feasible target weights ``(N,)``."""
    change: float
    """``max|w_out - w_in|``."""


class MinTurnover(NamedTuple):
    """The least-turnover feasible portfolio (see :func:`min_turnover_portfolio`)."""

    weights: np.ndarray
    """Target weights ``(N,)``."""
    turnover: float
    """``sum|w - w_drifted|``."""


def polish(w: np.ndarray, w_drifted: np.ndarray, constraints: Constraints, fixed_zero: np.ndarray | None = None) -> Polished:
    """Repair a solver's tiny constraint violations, then verify feasibility.

    Steps: clip to the per-asset bounds; if ``sum(w)`` is outside the budget, the Euclidean
    projection onto ``{lo <= w <= hi, sum(w) = nearest budget bound}``; if ``sum|w|`` exceeds
    the gross cap, scale ``w`` down; if the turnover exceeds its cap, move back towards
    ``w_drifted`` along the trade. Finally the environment's own check.

    Parameters
    ----------
    w : ndarray of shape (N,)
        Solver output.
    w_drifted : ndarray of shape (N,)
    constraints : Constraints
    fixed_zero : ndarray of shape (N,), bool, optional
        Assets whose weight must stay exactly zero (not investable today); the repairs move
        only the others.

    Returns
    -------
    Polished
        ``weights`` ``(N,)``, a feasible portfolio (within ``constraints.tol``), and
        ``change``, ``max|w_out - w_in|``.

    Raises
    ------
    SolverError
        When the raw violation exceeds :data:`POLISH_LIMIT`, or the repaired point still
        fails the environment's check.
    """
    w_in = np.asarray(w, dtype=np.float64)
    n = w_in.shape[0]
    if not np.isfinite(w_in).all():
        raise SolverError("solver returned non-finite weights")
    raw = max_violation(w_in, w_drifted, constraints)
    if raw > POLISH_LIMIT:
        raise SolverError(f"solver solution violates the constraints by {raw:.3g} (> {POLISH_LIMIT:g})")
    f = Feasible.of(constraints, n)
    lo, hi = f.lower, f.upper
    if fixed_zero is not None:
        lo, hi = np.where(fixed_zero, 0.0, lo), np.where(fixed_zero, 0.0, hi)
    out = np.clip(w_in, lo, hi)
    s = out.sum()
    if s < f.budget[0] or s > f.budget[1]:
        out = project_box_sum(out, lo, hi, float(np.clip(s, *f.budget)))
    if not constraints.long_only:
        g = np.abs(out).sum()
        if g > constraints.max_gross_leverage:
            out = out * (constraints.max_gross_leverage / g)
    if constraints.max_turnover is not None:
        d = out - w_drifted
        to = np.abs(d).sum()
        if to > constraints.max_turnover:
            out = w_drifted + d * (constraints.max_turnover / to)
    bad = feasibility_violations(out, w_drifted, constraints)
    if bad:
        raise SolverError(f"solution still infeasible after polishing: {bad[0]}")
    return Polished(out, float(np.abs(out - w_in).max()))


def min_turnover_portfolio(constraints: Constraints, w_drifted: np.ndarray) -> MinTurnover:
    """The feasible portfolio (ignoring the turnover cap) closest to ``w_drifted`` in L1.

    A small LP (scipy's HiGHS): ``min sum|w - w_d|`` over the static constraints.

    Returns
    -------
    MinTurnover
        ``weights`` ``(N,)`` and ``turnover``, ``sum|w - w_drifted|``: the least turnover
        that reaches the constraint set.

    Raises
    ------
    InfeasibleError
        When the static constraints admit no portfolio.
    """
    wd = np.asarray(w_drifted, dtype=np.float64)
    n = wd.shape[0]
    constraints.feasible_point(n)  # raises InfeasibleError naming the conflict
    f = Feasible.of(constraints, n)
    # x = [w, u, v, t]; w - u + v = wd; min 1'u + 1'v
    use_t = f.gross is not None
    nx = 4 * n if use_t else 3 * n
    cost = np.zeros(nx)
    cost[n : 3 * n] = 1.0
    eye = np.eye(n)
    a_eq = np.zeros((n, nx))
    a_eq[:, :n] = eye
    a_eq[:, n : 2 * n] = -eye
    a_eq[:, 2 * n : 3 * n] = eye
    rows, rhs = [], []
    if np.isfinite(f.budget[1]):
        r = np.zeros(nx)
        r[:n] = 1.0
        rows.append(r)
        rhs.append(f.budget[1])
    if np.isfinite(f.budget[0]):
        r = np.zeros(nx)
        r[:n] = -1.0
        rows.append(r)
        rhs.append(-f.budget[0])
    if use_t:
        blk = np.zeros((2 * n, nx))
        blk[:n, :n] = eye
        blk[:n, 3 * n :] = -eye
        blk[n:, :n] = -eye
        blk[n:, 3 * n :] = -eye
        rows.extend(blk)
        rhs.extend([0.0] * (2 * n))
        r = np.zeros(nx)
        r[3 * n :] = 1.0
        rows.append(r)
        rhs.append(float(f.gross))  # type: ignore[arg-type]
    bounds = [(float(lo), float(hi)) for lo, hi in zip(f.lower, f.upper, strict=True)] + [(0.0, None)] * (nx - n)
    res = linprog(
        cost,
        A_ub=np.array(rows) if rows else None,
        b_ub=np.array(rhs) if rhs else None,
        A_eq=a_eq,
        b_eq=wd,
        bounds=bounds,
        method="highs",
    )
    if res.status != 0:
        raise InfeasibleError(f"the constraints admit no portfolio of {n} assets ({res.message})")
    w = np.asarray(res.x[:n])
    try:
        w = polish(w, w, replace(constraints, max_turnover=None)).weights
    except SolverError as exc:
        raise InfeasibleError(f"could not find a feasible portfolio: {exc}") from None
    return MinTurnover(w, float(np.abs(w - wd).sum()))


def diagnose_infeasibility(constraints: Constraints, w_drifted: np.ndarray) -> str | None:
    """A message naming why no target is feasible today, or ``None`` if one is."""
    try:
        to = min_turnover_portfolio(constraints, w_drifted).turnover
    except InfeasibleError as exc:
        return str(exc)
    if constraints.max_turnover is not None and to > constraints.max_turnover + constraints.tol:
        return (
            f"the turnover cap {constraints.max_turnover:g} cannot be met: reaching the constraint set "
            f"(budget {constraints.budget}, box {constraints.box}, gross leverage "
            f"{constraints.max_gross_leverage:g}) from the drifted weights (sum {float(np.sum(w_drifted)):.6g}) "
            f"needs a turnover of at least {to:.6g}"
        )
    return None

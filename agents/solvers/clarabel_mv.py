"""The mean-variance QP solved directly by CLARABEL (no cvxpy): :class:`ClarabelMVSolver`.

The problem (with the square-root impact term as power cones) is assembled each day as
sparse arrays and passed to CLARABEL; the constraint set is that of
:class:`~factorgym.agents.solvers.cvar_lp.CVaRProblem`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import clarabel
import numpy as np
import scipy.sparse as sp

from factorgym.agents.solvers.errors import SolverError

__all__ = ["ClarabelMVSolver", "MVProblem", "MVSolution"]


@dataclass(frozen=True)
class MVProblem:
    """Data of one mean-variance rebalancing QP; ``N`` assets.

    ``max mu'w - (gamma/2) ||F'w||^2 - c(w)`` with ``F F' = Sigma`` and
    ``c = buy'u + sell'v + impact'(u + v)^1.5`` on trades ``w - w_d = u - v``, over the same
    constraint set as :class:`CVaRProblem`.

    Parameters
    ----------
    mean : ndarray of shape (N,)
        Expected excess returns (zeros for minimum variance).
    factor : ndarray of shape (N, N)
        ``F`` with ``F F' = Sigma``.
    w_drifted, buy, sell, impact, lower, upper : ndarray of shape (N,)
    gamma : float
    budget, max_gross_leverage, max_turnover
        As in :class:`CVaRProblem`.
    """

    mean: np.ndarray
    factor: np.ndarray
    w_drifted: np.ndarray
    buy: np.ndarray
    sell: np.ndarray
    impact: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    gamma: float = 100.0
    budget: tuple[float, float] = (1.0, 1.0)
    max_gross_leverage: float | None = None
    max_turnover: float | None = None


@dataclass(frozen=True)
class MVSolution:
    """The solved QP.

    Attributes
    ----------
    weights, buys, sells : ndarray of shape (N,)
    planned_cost : float
        ``buy'u + sell'v + impact'y`` with ``y >= (u + v)^1.5`` the solver's epigraph
        variables: the cost term as the solver sees it.
    objective : float
        ``mu'w - (gamma/2) w'Sigma w - cost`` at the solution.
    iterations : int
    solve_time : float
        Seconds in CLARABEL (excluding assembly).
    """

    weights: np.ndarray
    buys: np.ndarray
    sells: np.ndarray
    planned_cost: float
    objective: float
    iterations: int
    solve_time: float


class _Rows:
    """Accumulates constraint rows in COO form; ``add`` takes row indices local to the block."""

    def __init__(self) -> None:
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.b: list[np.ndarray] = []
        self.n = 0

    def add(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, rhs: Any) -> None:
        rhs = np.atleast_1d(np.asarray(rhs, dtype=np.float64))
        self.r.append(self.n + rows)
        self.c.append(cols)
        self.v.append(vals)
        self.b.append(rhs)
        self.n += rhs.shape[0]

    def matrix(self, n_cols: int) -> tuple[sp.csc_matrix, np.ndarray]:
        a = sp.csc_matrix(
            (np.concatenate(self.v), (np.concatenate(self.r), np.concatenate(self.c))), shape=(self.n, n_cols)
        )
        return a, np.concatenate(self.b)


class ClarabelMVSolver:
    """Solve :class:`MVProblem` with CLARABEL directly.

    Variables ``x = [w, u, v, (t), (y), (r)]`` (``t >= |w|`` for a gross cap on long/short books,
    ``y_i >= (u_i + v_i)^1.5`` as 3-d power cones ``(y_i, 1, u_i + v_i)`` with exponent 2/3
    when there is impact; ``r = F'w`` in the factor form). The objective is multiplied by
    ``k = 1 / (|mu|_max + gamma/2 mean(diag Sigma))`` so that daily-return objectives (~1e-4)
    are of order one and the absolute gap tolerance pins the weights down.

    Parameters
    ----------
    tolerance : float
        CLARABEL's gap and feasibility tolerances.
    max_iter : int
    time_limit : float or None
    risk_form : {"factor", "dense"}
        ``"factor"``: the risk as ``||r||^2`` with ``r = F'w`` as extra variables (a
        triangular ``F'`` block in the constraints, diagonal ``P``); ``"dense"``: ``P`` holds
        ``Sigma`` itself (upper triangle). Measured (shared CPU, provisional) at N = 20 /
        200 / 500: about 1.3 ms / 0.2-0.3 s / 1.3-1.4 s for either form, the factor form
        taking fewer iterations; the dense form is the default. A low-rank ``F`` (a factor
        model's ``B``) makes the factor form much cheaper; the agents pass a square factor.

    Notes
    -----
    Why not cvxpy with Parameters: at N = 20 a DPP re-solve spends most of its time in
    cvxpy's parameter application, and since the covariance factor is an ``N x N``
    Parameter, that step grows like ``N^3`` (about 1 s per solve at N = 200). Assembling
    the QP here costs ``O(N^2)``.
    """

    def __init__(
        self,
        tolerance: float = 1e-9,
        max_iter: int = 200,
        time_limit: float | None = None,
        risk_form: Literal["factor", "dense"] = "dense",
    ) -> None:
        if risk_form not in ("factor", "dense"):
            raise ValueError(f"risk_form must be 'factor' or 'dense', got {risk_form!r}")
        self.risk_form = risk_form
        self.tolerance = float(tolerance)
        self.max_iter = int(max_iter)
        self.time_limit = time_limit

    def solve(self, problem: MVProblem) -> MVSolution:
        """Solve ``problem``.

        Raises
        ------
        SolverError
            Unless CLARABEL reports ``Solved`` (an infeasibility certificate sets
            ``maybe_infeasible``).
        """
        # Long (~110 lines) on purpose: one assembly of the QP's column layout (w, u, v, t, y,
        # risk rows) and its cone blocks, which must be read together to be checked.
        p = problem
        n = p.mean.shape[0]
        f = np.asarray(p.factor, dtype=np.float64)
        scale = float(np.abs(p.mean).max(initial=0.0) + 0.5 * p.gamma * np.mean(np.sum(f * f, axis=1)))
        k = 1.0 / scale if scale > 0 and np.isfinite(scale) else 1.0
        use_t = p.max_gross_leverage is not None
        use_y = bool(np.any(p.impact > 0))
        iw, iu, iv = np.arange(n), n + np.arange(n), 2 * n + np.arange(n)
        nx = 3 * n
        it = iy = np.arange(0)
        if use_t:
            it = nx + np.arange(n)
            nx += n
        if use_y:
            iy = nx + np.arange(n)
            nx += n
        factor_form = self.risk_form == "factor"
        if factor_form:
            ir = nx + np.arange(f.shape[1])
            nx += f.shape[1]
            pmat = sp.csc_matrix((np.full(ir.shape[0], k * p.gamma), (ir, ir)), shape=(nx, nx))
        else:
            # (1/2) x'Px with P upper triangular: the w block only
            sigma = f @ f.T
            ti, tj = np.triu_indices(n)
            pmat = sp.csc_matrix((k * p.gamma * sigma[ti, tj], (ti, tj)), shape=(nx, nx))
        q = np.zeros(nx)
        q[iw] = -k * p.mean
        q[iu] = k * p.buy
        q[iv] = k * p.sell
        if use_y:
            q[iy] = k * p.impact

        # constraints A x + s = b, s in (zero cone, nonnegative cone, power cones), in COO
        a_rows = _Rows()
        ones = np.ones(n)
        ar = np.arange(n)
        # zero cone: trades w - u + v = w_d; budget equality
        a_rows.add(np.tile(ar, 3), np.concatenate([iw, iu, iv]), np.concatenate([ones, -ones, ones]), p.w_drifted)
        b_lo, b_hi = p.budget
        if b_lo == b_hi:
            a_rows.add(np.zeros(n, dtype=np.int64), iw, ones, [b_lo])
        if factor_form:  # r = F'w: rows j = sum_i F_ij w_i - r_j
            fi, fj = np.nonzero(f)
            m = ir.shape[0]
            a_rows.add(
                np.concatenate([fj, np.arange(m)]), np.concatenate([iw[fi], ir]), np.concatenate([f[fi, fj], -np.ones(m)]), np.zeros(m)
            )
        n_zero = a_rows.n
        # nonnegative cone (b - A x >= 0): bounds, trade signs, budget range, gross, turnover
        a_rows.add(ar, iw, -ones, -p.lower)
        a_rows.add(ar, iw, ones, p.upper)
        a_rows.add(ar, iu, -ones, np.zeros(n))
        a_rows.add(ar, iv, -ones, np.zeros(n))
        free = np.nonzero((p.buy + p.sell + p.impact) <= 0)[0]
        if free.size:  # keep unpriced trade variables bounded (see CVaRProblem)
            bound = float(np.maximum(np.abs(p.lower), np.abs(p.upper)).max() + np.abs(p.w_drifted).max() + 1.0)
            m = free.size
            a_rows.add(np.arange(m), iu[free], np.ones(m), np.full(m, bound))
            a_rows.add(np.arange(m), iv[free], np.ones(m), np.full(m, bound))
        if b_lo != b_hi:
            if np.isfinite(b_hi):
                a_rows.add(np.zeros(n, dtype=np.int64), iw, ones, [b_hi])
            if np.isfinite(b_lo):
                a_rows.add(np.zeros(n, dtype=np.int64), iw, -ones, [-b_lo])
        if use_t:
            a_rows.add(np.tile(ar, 2), np.concatenate([iw, it]), np.concatenate([ones, -ones]), np.zeros(n))
            a_rows.add(np.tile(ar, 2), np.concatenate([iw, it]), np.concatenate([-ones, -ones]), np.zeros(n))
            a_rows.add(np.zeros(n, dtype=np.int64), it, ones, [float(p.max_gross_leverage)])  # type: ignore[arg-type]
        if p.max_turnover is not None:
            a_rows.add(np.zeros(2 * n, dtype=np.int64), np.concatenate([iu, iv]), np.ones(2 * n), [float(p.max_turnover)])
        n_nonneg = a_rows.n - n_zero
        if use_y:  # power cones (y_i, 1, u_i + v_i): s = b - A x
            r3 = 3 * ar
            a_rows.add(
                np.concatenate([r3, r3 + 2, r3 + 2]), np.concatenate([iy, iu, iv]), -np.ones(3 * n), np.tile([0.0, 1.0, 0.0], n)
            )
        amat, bvec = a_rows.matrix(nx)
        cones = [clarabel.ZeroConeT(n_zero), clarabel.NonnegativeConeT(n_nonneg)]
        cones += [clarabel.PowerConeT(2.0 / 3.0) for _ in range(n if use_y else 0)]

        settings = clarabel.DefaultSettings()
        settings.verbose = False
        settings.tol_gap_abs = self.tolerance
        settings.tol_gap_rel = self.tolerance
        settings.tol_feas = self.tolerance
        settings.max_iter = self.max_iter
        if self.time_limit is not None:
            settings.time_limit = float(self.time_limit)
        t0 = time.perf_counter()
        try:
            sol = clarabel.DefaultSolver(pmat, q, amat, bvec, cones, settings).solve()
        except Exception as exc:  # the Rust core raises plain exceptions on bad data
            raise SolverError(f"CLARABEL failed on the mean-variance QP: {exc}") from None
        elapsed = time.perf_counter() - t0
        status = str(sol.status)
        if status != "Solved":
            raise SolverError(
                f"CLARABEL returned {status} on the mean-variance QP",
                maybe_infeasible="Infeasible" in status,
            )
        x = np.asarray(sol.x, dtype=np.float64)
        if not np.isfinite(x).all():
            raise SolverError("CLARABEL returned a non-finite solution")
        w, u, v = x[iw], x[iu], x[iv]
        cost = float(p.buy @ u + p.sell @ v + (p.impact @ x[iy] if use_y else 0.0))
        objective = float(p.mean @ w - 0.5 * p.gamma * np.sum((f.T @ w) ** 2) - cost)
        return MVSolution(
            weights=w.copy(),
            buys=u.copy(),
            sells=v.copy(),
            planned_cost=cost,
            objective=objective,
            iterations=int(sol.iterations),
            solve_time=elapsed,
        )

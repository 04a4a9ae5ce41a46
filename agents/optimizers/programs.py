"""The cvxpy formulations of the rebalancing problems (the fallbacks of the direct solvers).

* :class:`MVProgram`: the mean-variance problem built once with Parameters (DPP) and
  re-solved; :func:`mv_cvxpy_once` the same with constant data (large ``N``).
* :func:`cvar_cvxpy`: the mean-CVaR problem (Rockafellar-Uryasev).
* The shared pieces: trade variables, the cost model and the constraint set on them, and
  one solve with options and status checks.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import cvxpy as cp
import numpy as np

from factorgym.agents.optimizers.feasibility import Feasible
from factorgym.agents.solvers import CVaRProblem, MVProblem, SolverError, silence_highs_banner
from factorgym.costs import CostModel

__all__ = [
    "CVX_OPTIONS",
    "DPP_MAX_ASSETS",
    "MVProgram",
    "ProgramSolution",
    "cvar_cvxpy",
    "cvx_constraints",
    "cvx_cost",
    "cvx_solve",
    "cvx_trades",
    "mv_cvxpy_once",
    "objective_scale",
]


class ProgramSolution(NamedTuple):
    """The solution of a cvxpy program."""

    weights: np.ndarray
    """Target weights ``(N,)`` (before polishing)."""
    planned_cost: float
    """The cost term at the solution, from the trade variables."""


def cvx_trades(n: int) -> tuple[cp.Variable, cp.Variable, cp.Variable]:
    """Variables ``(w, u, v)``: weights ``(N,)``, buys and sells ``(N,)`` (``w - w_d = u - v``)."""
    return cp.Variable(n, name="w"), cp.Variable(n, nonneg=True, name="buy"), cp.Variable(n, nonneg=True, name="sell")


def cvx_cost(u: cp.Variable, v: cp.Variable, cm: CostModel, n: int) -> cp.Expression:
    """The cost model on trade variables ``u``, ``v`` (``w - w_d = u - v``)."""
    b, s, k = cm.rates(n)
    cost = b @ u + s @ v
    if not cm.is_linear:
        cost = cost + k @ cp.power(u + v, 1.5)
    return cost


def cvx_constraints(
    w: cp.Variable, u: cp.Variable, v: cp.Variable, wd: Any, f: Feasible, trade_bound: Any
) -> list[cp.Constraint]:
    """The constraint set ``f`` on weights ``w`` traded from ``wd`` through buys ``u`` and sells ``v``."""
    # the trade bound is implied at any sensible solution; it keeps (u, v) bounded when an
    # asset's trades are free (zero rates), where interior-point solvers would drift
    cons: list[cp.Constraint] = [w - u + v == wd, w >= f.lower, w <= f.upper, u <= trade_bound, v <= trade_bound]
    b_lo, b_hi = f.budget
    if b_lo == b_hi:
        cons.append(cp.sum(w) == b_lo)
    else:
        if np.isfinite(b_lo):
            cons.append(cp.sum(w) >= b_lo)
        if np.isfinite(b_hi):
            cons.append(cp.sum(w) <= b_hi)
    if f.gross is not None:
        cons.append(cp.norm1(w) <= f.gross)
    if f.turnover is not None:
        cons.append(cp.sum(u) + cp.sum(v) <= f.turnover)
    return cons


CVX_OPTIONS: dict[str, dict[str, Any]] = {
    "CLARABEL": {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-8},
    "HIGHS": {},
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000},
    "OSQP": {"eps_abs": 1e-10, "eps_rel": 1e-10, "max_iter": 200_000, "polish": True},
}


def cvx_solve(problem: cp.Problem, solver: str) -> None:
    """Solve with the cvxpy ``solver`` (options from :data:`CVX_OPTIONS`); raise :class:`SolverError` unless optimal.

    Solvers run silently (cvxpy's ``verbose=False``; HiGHS' banner is consumed first).
    """
    if solver == "HIGHS":
        silence_highs_banner()
    try:
        problem.solve(solver=solver, verbose=False, **CVX_OPTIONS.get(solver, {}))
    except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
        raise SolverError(f"cvxpy/{solver} failed: {exc}") from None
    status = problem.status
    if status != cp.OPTIMAL:
        raise SolverError(
            f"cvxpy/{solver} returned status {status!r}",
            maybe_infeasible=status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE, cp.UNBOUNDED, cp.UNBOUNDED_INACCURATE),
        )


class MVProgram:
    """A cvxpy mean-variance problem built once with Parameters, re-solved without recompiling.

    The risk enters as ``sum_squares(G' w)`` with ``G = sqrt(gamma / 2) F`` a Parameter and
    ``F F' = Sigma`` (:func:`~factorgym.agents.optimizers.mean_variance.covariance_factor`): that is DPP, so cvxpy compiles once and
    each solve only refills the parameters. (``quad_form(w, psd_wrap(P))`` with a Parameter
    ``P``, and ``gamma * risk`` with a Parameter ``gamma``, are not DPP in cvxpy 1.9: they
    recompile on every solve; a ``Parameter(PSD=True)`` eigendecomposes on assignment.)
    """

    def __init__(self, n: int, f: Feasible, cm: CostModel, cost_aware: bool) -> None:
        self.w, self.u, self.v = cvx_trades(n)
        self.mu = cp.Parameter(n, name="mu")
        self.factor = cp.Parameter((n, n), name="risk_factor")
        self.wd = cp.Parameter(n, name="w_drifted")
        self.trade_bound = cp.Parameter(nonneg=True, name="trade_bound")
        self.f = f
        self.rates = [np.asarray(r, dtype=np.float64) for r in cm.rates(n)]
        # cost rates are Parameters too, so the whole objective can be rescaled per solve
        self.buy = cp.Parameter(n, nonneg=True, name="buy")
        self.sell = cp.Parameter(n, nonneg=True, name="sell")
        self.cost = self.buy @ self.u + self.sell @ self.v
        self.impact: cp.Parameter | None = None
        if not cm.is_linear:
            self.impact = cp.Parameter(n, nonneg=True, name="impact")
            self.cost = self.cost + self.impact @ cp.power(self.u + self.v, 1.5)
        obj = self.mu @ self.w - cp.sum_squares(self.factor.T @ self.w)
        if cost_aware:
            obj = obj - self.cost
        self.problem = cp.Problem(
            cp.Maximize(obj), cvx_constraints(self.w, self.u, self.v, self.wd, f, self.trade_bound)
        )

    def solve(self, p: MVProblem, solver: str) -> ProgramSolution:
        """Fill the parameters from ``p`` and solve with the cvxpy ``solver``.

        The objective is multiplied by ``k = 1 / (|mu|_max + gamma/2 mean(diag Sigma))``
        (through the parameters), which brings daily-return objectives (~1e-4) to order one:
        the solvers' absolute gap tolerances then pin the weights down to ~1e-7 instead of
        ~1e-5 on a flat optimum.

        Returns
        -------
        ProgramSolution
            The weights ``(N,)`` and the cost term at the solution, from the trade variables
            (unscaled).
        """
        k = objective_scale(p)
        self.mu.value = k * p.mean
        self.factor.value = math.sqrt(0.5 * p.gamma * k) * p.factor
        self.wd.value = p.w_drifted
        self.trade_bound.value = self.f.trade_bound(p.w_drifted)
        self.buy.value = k * p.buy
        self.sell.value = k * p.sell
        if self.impact is not None:
            self.impact.value = k * p.impact
        cvx_solve(self.problem, solver)
        w = self.w.value
        if w is None:
            raise SolverError(f"cvxpy/{solver} returned no solution")
        return ProgramSolution(np.asarray(w, dtype=np.float64), float(self.cost.value) / k)


def objective_scale(p: MVProblem) -> float:
    """``1 / (|mu|_max + gamma/2 mean(diag Sigma))`` (1 when that is not positive)."""
    scale = float(np.abs(p.mean).max(initial=0.0) + 0.5 * p.gamma * np.mean(np.sum(p.factor * p.factor, axis=1)))
    return 1.0 / scale if scale > 0 and np.isfinite(scale) else 1.0


def mv_cvxpy_once(p: MVProblem, f: Feasible, solver: str) -> ProgramSolution:
    """The same problem as :class:`MVProgram` with constant data (built for one solve)."""
    n = p.mean.shape[0]
    k = objective_scale(p)
    w, u, v = cvx_trades(n)
    cost = p.buy @ u + p.sell @ v
    if np.any(p.impact > 0):
        cost = cost + p.impact @ cp.power(u + v, 1.5)
    obj = k * (p.mean @ w) - cp.sum_squares(math.sqrt(0.5 * p.gamma * k) * p.factor.T @ w) - k * cost
    prob = cp.Problem(cp.Maximize(obj), cvx_constraints(w, u, v, p.w_drifted, f, f.trade_bound(p.w_drifted)))
    cvx_solve(prob, solver)
    if w.value is None:
        raise SolverError(f"cvxpy/{solver} returned no solution")
    return ProgramSolution(np.asarray(w.value, dtype=np.float64), float(cost.value))


#: Largest N for which the cvxpy mean-variance path uses a Parameter (DPP) problem: above
#: it, cvxpy's parameter application (cubic in N for an N x N factor) costs more than
#: rebuilding with constant data.
DPP_MAX_ASSETS = 64


def cvar_cvxpy(p: CVaRProblem, cm: CostModel, solver: str) -> ProgramSolution:
    """The mean-CVaR problem ``p`` in cvxpy, solved with the cvxpy ``solver`` (e.g. ``"CLARABEL"``).

    Parameters
    ----------
    p : CVaRProblem
        The day's data (excess scenarios ``(S, N)``, mean ``(N,)``, constraints).
    cm : CostModel
        The costs of the objective (zero rates when the agent ignores costs).
    solver : str
        A cvxpy solver name.
    """
    n, s_ = p.n_assets, p.n_scenarios
    a, lam = p.weights_ar()
    w, u, v = cvx_trades(n)
    cost = cvx_cost(u, v, cm, n)
    zeta = cp.Variable(name="var")
    z = cp.Variable(s_, nonneg=True, name="excess_loss")
    f = Feasible(p.lower, p.upper, p.budget, p.max_gross_leverage, p.max_turnover)
    cons = cvx_constraints(w, u, v, p.w_drifted, f, f.trade_bound(p.w_drifted))
    cons.append(p.scenarios @ w + zeta + z >= 0)
    if p.objective == "min_risk" and p.target_return is not None:
        cons.append(p.mean @ w - cost >= p.target_return)
    k = lam / ((1.0 - p.alpha) * s_)
    obj = -a * (p.mean @ w) + (a + lam) * cost + lam * zeta + k * cp.sum(z)
    prob = cp.Problem(cp.Minimize(obj), cons)
    cvx_solve(prob, solver)
    if w.value is None:
        raise SolverError(f"cvxpy/{solver} returned no solution")
    return ProgramSolution(np.asarray(w.value, dtype=np.float64), float(cost.value))

"""The mean-CVaR LP solved in its dual form by HiGHS (no cvxpy): :class:`HighsCVaRSolver`.

The problem, its primal and dual LPs and how the dual is built each day are described in
:mod:`~factorgym.agents.solvers.cvar_lp` (:class:`CVaRProblem`); HiGHS' console output is
handled by :mod:`~factorgym.agents.solvers.highs_output`. :class:`SolverError` (the failure
of any direct or cvxpy solver path), :class:`CVaRProblem`, :func:`quiet_highs` and
:func:`silence_highs_banner` are importable from here too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import highspy
import numpy as np

from factorgym.agents.solvers.cvar_lp import CVaRProblem, _dual_lp, _small_lp
from factorgym.agents.solvers.errors import SolverError
from factorgym.agents.solvers.highs_output import quiet_highs, silence_highs_banner

__all__ = ["CVaRProblem", "CVaRSolution", "HighsCVaRSolver", "SolverError", "quiet_highs", "silence_highs_banner"]

_INF = highspy.kHighsInf


@dataclass(frozen=True)
class CVaRSolution:
    """The solved LP: weights, trades and what the optimizer planned.

    Attributes
    ----------
    weights : ndarray of shape (N,)
    buys, sells : ndarray of shape (N,)
        The LP's trade variables ``u``, ``v`` (``weights - w_drifted = buys - sells``).
    var : float
        The LP's ``zeta``: the alpha-VaR of the scenario excess loss (before costs).
    planned_cost : float
        ``buy'u + sell'v``, the cost term as the LP sees it.
    objective : float
        Optimal value of the primal minimisation.
    status : str
    iterations : int
        Simplex or IPM iterations.
    method : str
        ``"simplex"`` or ``"ipm"``.
    solve_time : float
        Seconds in HiGHS ``run`` (excluding building the arrays).
    """

    weights: np.ndarray
    buys: np.ndarray
    sells: np.ndarray
    var: float
    planned_cost: float
    objective: float
    status: str
    iterations: int
    method: str
    solve_time: float


class HighsCVaRSolver:
    """Solve :class:`CVaRProblem` instances with HiGHS on the dual LP.

    Parameters
    ----------
    method : {"auto", "simplex", "ipm"}
        ``"auto"`` is the simplex (measured faster on this LP at every size benchmarked, up
        to 5,000 x 500); ``"ipm"`` is HiGHS' interior point with crossover (so the solution
        is still a vertex).
    tolerance : float
        HiGHS primal and dual feasibility tolerance. The primal weights are the duals of
        the dual LP, so the dual feasibility tolerance bounds their constraint violations.
    time_limit : float or None
        Seconds per solve.
    presolve : bool
        HiGHS presolve; off by default (on this LP it costs more than it saves).

    Notes
    -----
    No warm start: each day's scenarios are new, and a stale basis was measured to slow
    the simplex down. One ``highspy.Highs`` instance and the large LP buffers are reused
    across solves.

    The ``threads`` option is left at HiGHS' default (0: use the process-wide scheduler as
    it is). HiGHS keeps one global thread pool per process; an instance that asks for a
    different number of threads than the pool already has refuses to run (status "Not Set"),
    so asking for ``threads=1`` made every solve fail once anything else in the process had
    used HiGHS first (issue 15). The simplex and IPX paths used here are serial, so the
    weights are the same whatever the pool's size (tested in a fresh process and after
    other HiGHS use).
    """

    def __init__(
        self,
        method: Literal["auto", "simplex", "ipm"] = "auto",
        tolerance: float = 1e-9,
        time_limit: float | None = None,
        presolve: bool = False,
    ) -> None:
        if method not in ("auto", "simplex", "ipm"):
            raise ValueError(f"method must be 'auto', 'simplex' or 'ipm', got {method!r}")
        self.method = method
        self.tolerance = float(tolerance)
        self.time_limit = time_limit
        self.presolve = presolve
        self._highs: highspy.Highs | None = None
        self._buffers: dict[str, np.ndarray] = {}

    def _instance(self) -> highspy.Highs:
        if self._highs is None:
            h = quiet_highs()
            h.setOptionValue("random_seed", 0)
            self._highs = h
        return self._highs

    def choose_method(self, n_scenarios: int, n_assets: int) -> str:
        """The method ``"auto"`` picks for a problem of this size."""
        return "simplex" if self.method == "auto" else self.method

    def solve(self, problem: CVaRProblem) -> CVaRSolution:
        """Solve ``problem``.

        Raises
        ------
        SolverError
            When HiGHS does not report an optimal solution (including an unbounded dual,
            which means an infeasible primal; callers diagnose the constraint set).
        """
        p = problem
        n = p.n_assets
        method = self.choose_method(p.n_scenarios, n)
        small = _small_lp(p)
        lp = _dual_lp(p, small, self._buffers)
        h = self._instance()
        h.clearModel()
        h.setOptionValue("solver", method)
        h.setOptionValue("presolve", "on" if self.presolve else "off")
        h.setOptionValue("primal_feasibility_tolerance", self.tolerance)
        h.setOptionValue("dual_feasibility_tolerance", self.tolerance)
        h.setOptionValue("time_limit", float(self.time_limit) if self.time_limit is not None else _INF)
        lp.pass_to(h)
        t0 = time.perf_counter()
        h.run()
        elapsed = time.perf_counter() - t0
        status = h.getModelStatus()
        info = h.getInfo()
        iters = int(info.simplex_iteration_count if method == "simplex" else info.ipm_iteration_count)
        if status != highspy.HighsModelStatus.kOptimal:
            # an unbounded (or unbounded-or-infeasible) dual means an infeasible primal
            maybe_infeasible = status in (
                highspy.HighsModelStatus.kUnbounded,
                highspy.HighsModelStatus.kUnboundedOrInfeasible,
                highspy.HighsModelStatus.kInfeasible,
            )
            raise SolverError(
                f"HiGHS ({method}) returned {h.modelStatusToString(status)} on the dual of the mean-CVaR LP",
                maybe_infeasible=maybe_infeasible,
            )
        x = -np.asarray(h.getSolution().row_dual, dtype=np.float64)
        if not np.isfinite(x).all():
            raise SolverError(f"HiGHS ({method}) returned a non-finite solution")
        w = x[:n]
        u = x[n + 1 : 2 * n + 1]
        v = x[2 * n + 1 : 3 * n + 1]
        return CVaRSolution(
            weights=w.copy(),
            buys=u.copy(),
            sells=v.copy(),
            var=float(x[n]),
            planned_cost=float(p.buy @ u + p.sell @ v),
            objective=-float(info.objective_function_value),
            status="optimal",
            iterations=iters,
            method=method,
            solve_time=elapsed,
        )

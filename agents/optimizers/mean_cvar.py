"""The cost-aware mean-CVaR agent on scenarios (Rockafellar-Uryasev): :class:`MeanCVaR`.

The dual LP in HiGHS (:class:`~factorgym.agents.solvers.HighsCVaRSolver`) first for linear
costs, the cvxpy formulation (:func:`~factorgym.agents.optimizers.programs.cvar_cvxpy`)
otherwise and as the fallback.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np

from factorgym.agents.estimators import Estimate, ReturnSource
from factorgym.agents.optimizers.base import OptimizerAgent, RawSolution
from factorgym.agents.optimizers.programs import cvar_cvxpy
from factorgym.agents.solvers import CVaRProblem, HighsCVaRSolver
from factorgym.constraints import Constraints
from factorgym.costs import CostModel
from factorgym.errors import DataValidationError

__all__ = ["MeanCVaR", "empirical_cvar"]


def empirical_cvar(losses: np.ndarray, alpha: float) -> float:
    """Rockafellar-Uryasev CVaR of equally likely ``losses`` ``(S,)`` at level ``alpha``.

    ``min_z z + mean((losses - z)^+) / (1 - alpha)``: the mean of the worst ``(1 - alpha) S``
    losses, the boundary one weighted fractionally (the LP's value exactly).
    """
    x = np.sort(np.asarray(losses, dtype=np.float64))[::-1]
    s = x.shape[0]
    k = (1.0 - alpha) * s
    m = int(math.floor(k))
    tail = x[:m].sum()
    if m < s:
        tail += (k - m) * x[m]
    return float(tail / k)


class MeanCVaR(OptimizerAgent):
    """Cost-aware mean-CVaR agent on scenarios (Rockafellar-Uryasev).

    Parameters
    ----------
    source : ReturnSource
        Needs scenarios (generator draws, historical days, or a fixed matrix) and a mean.
    alpha : float
        CVaR confidence level (0.95: the mean loss over the worst 5% of scenarios).
    objective : {"utility", "min_risk"}
        ``"utility"``: ``max mu'w - c - l * CVaR(loss + c)``; ``"min_risk"``:
        ``min CVaR(loss + c)`` subject to ``rf + mu'w - c >= target_return`` when a target
        is given.
    risk_aversion : float
        ``l`` (``"utility"`` only). skfolio's ``MeanRisk(objective_function=MAXIMIZE_UTILITY,
        risk_aversion=l)`` solves the same problem.
    target_return : float or None
        Daily target for the expected net return (``"min_risk"`` only).
    constraints, cost_model, risk_free, cost_aware, seed
        See :class:`OptimizerAgent`.
    solver : {"auto", "highs", "cvxpy-clarabel", "cvxpy-highs", "cvxpy-scs"}
        ``"highs"``: the direct dual-LP solver (:class:`HighsCVaRSolver`; linear costs
        only); ``"cvxpy-*"``: the cvxpy formulation of the same problem with that solver.
        ``"auto"`` is highs then cvxpy-clarabel, or with impact costs (power cones)
        cvxpy-clarabel then cvxpy-scs.
    highs_method : {"auto", "simplex", "ipm"}
        HiGHS algorithm for ``solver="highs"`` (``"auto"``: the simplex).

    Notes
    -----
    The expected-return term uses the source's mean (for scenario sources, the scenario
    mean); the CVaR uses the scenarios. Costs stay out of the scenario rows (CVaR is
    translation invariant), which keeps the LP at ``S + O(N)`` rows.
    """

    solvers: ClassVar[tuple[str, ...]] = ("highs", "cvxpy-clarabel", "cvxpy-highs", "cvxpy-scs")
    _needs_cov: ClassVar[bool] = False
    _needs_scenarios: ClassVar[bool] = True

    def __init__(
        self,
        source: ReturnSource,
        alpha: float = 0.95,
        *,
        objective: Literal["utility", "min_risk"] = "utility",
        risk_aversion: float = 1.0,
        target_return: float | None = None,
        constraints: Constraints | None = None,
        cost_model: CostModel | None = None,
        risk_free: float = 0.0,
        cost_aware: bool = True,
        solver: str = "auto",
        highs_method: Literal["auto", "simplex", "ipm"] = "auto",
        seed: int | None = None,
    ) -> None:
        super().__init__(
            source,
            constraints=constraints,
            cost_model=cost_model,
            risk_free=risk_free,
            cost_aware=cost_aware,
            solver=solver,
            seed=seed,
        )
        self.alpha = alpha
        self.objective = objective
        self.risk_aversion = risk_aversion
        self.target_return = target_return
        self.highs_method = highs_method

    def validate(self) -> None:
        super().validate()
        if not 0.0 < float(self.alpha) < 1.0:
            raise DataValidationError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.objective not in ("utility", "min_risk"):
            raise DataValidationError(f"objective must be 'utility' or 'min_risk', got {self.objective!r}")
        if not (math.isfinite(float(self.risk_aversion)) and self.risk_aversion >= 0):
            raise DataValidationError(f"risk_aversion must be finite and >= 0, got {self.risk_aversion}")
        if self.target_return is not None:
            if self.objective != "min_risk":
                raise DataValidationError("target_return needs objective='min_risk'")
            if not math.isfinite(float(self.target_return)):
                raise DataValidationError(f"target_return must be finite, got {self.target_return}")
        if self._has_impact and self.solver == "highs":
            raise DataValidationError("solver='highs' solves linear costs only; the cost model has impact: use 'cvxpy-clarabel'")

    def _solver_order(self) -> list[str]:
        default = ["cvxpy-clarabel", "cvxpy-scs"] if self._has_impact else ["highs", "cvxpy-clarabel"]
        if self.solver == "auto":
            return default
        return [self.solver] + [s for s in default if s != self.solver]

    def _problem(self, est: Estimate, wd: np.ndarray) -> CVaRProblem:
        n = wd.shape[0]
        assert est.scenarios is not None
        f = self._feasible(n)
        b, s, _ = self._trade_rates(n)
        target = None if self.target_return is None else float(self.target_return) - self.risk_free
        rf = float(self.risk_free)
        return CVaRProblem(
            scenarios=est.scenarios - rf if rf != 0.0 else est.scenarios,  # no 20 MB copy at rf = 0
            mean=est.mean - self.risk_free,
            w_drifted=wd,
            buy=b,
            sell=s,
            lower=f.lower,
            upper=f.upper,
            budget=f.budget,
            max_gross_leverage=f.gross,
            max_turnover=f.turnover,
            alpha=float(self.alpha),
            objective=self.objective,
            risk_aversion=float(self.risk_aversion),
            target_return=target,
        )

    def _solve_with(self, solver: str, est: Estimate, wd: np.ndarray) -> RawSolution:
        p = self._problem(est, wd)
        if solver == "highs":
            hs = self.__dict__.get("_highs")
            if hs is None or hs.method != self.highs_method:
                hs = self.__dict__["_highs"] = HighsCVaRSolver(method=self.highs_method)
            sol = hs.solve(p)
            return RawSolution(sol.weights, sol.planned_cost, "highs", {"method": sol.method, "iterations": sol.iterations})
        return self._solve_cvxpy(p, solver)

    def _solve_cvxpy(self, p: CVaRProblem, solver: str) -> RawSolution:
        """The cvxpy formulation (``solver`` like ``"cvxpy-clarabel"``)."""
        sol = cvar_cvxpy(p, self._objective_costs, solver.split("-", 1)[1].upper())
        return RawSolution(sol.weights, sol.planned_cost, solver)

    def _risk(self, est: Estimate, w: np.ndarray, cost: float) -> float:
        assert est.scenarios is not None
        loss = -(est.scenarios @ w + (1.0 - w.sum()) * self.risk_free) + cost
        return empirical_cvar(loss, float(self.alpha))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_highs", None)  # a highspy.Highs instance does not pickle
        return state

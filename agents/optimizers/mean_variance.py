"""Cost-aware mean-variance agents: :class:`MeanVariance` and :class:`MinVariance`.

The direct QP (:class:`~factorgym.agents.solvers.ClarabelMVSolver`) first, the cvxpy
formulation (:mod:`~factorgym.agents.optimizers.programs`) as the fallback.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from factorgym.agents.estimators import Estimate, ReturnSource
from factorgym.agents.optimizers.base import OptimizerAgent, RawSolution
from factorgym.agents.optimizers.feasibility import Feasible
from factorgym.agents.optimizers.programs import DPP_MAX_ASSETS, MVProgram, mv_cvxpy_once
from factorgym.agents.solvers import ClarabelMVSolver, MVProblem
from factorgym.constraints import Constraints
from factorgym.costs import CostModel
from factorgym.errors import DataValidationError

__all__ = ["MeanVariance", "MinVariance", "covariance_factor"]


def covariance_factor(cov: np.ndarray) -> np.ndarray:
    """A square factor ``F`` ``(N, N)`` with ``F F' = cov``, so ``w' cov w = ||F' w||^2``.

    The Cholesky factor when ``cov`` (symmetrised) is positive definite; otherwise
    ``V sqrt(max(lambda, 0))`` from its eigendecomposition (a singular sample covariance,
    e.g. fewer days than assets, is fine; negative eigenvalues at rounding level, down to
    ``-1e-8`` times the largest, are clipped).

    Raises
    ------
    DataValidationError
        When ``cov`` is not a finite square matrix, or not positive semidefinite (an
        eigenvalue below ``-1e-8`` times the largest), naming the smallest eigenvalue.
    """
    c = np.asarray(cov, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise DataValidationError(f"the covariance matrix must be square, got shape {c.shape}")
    if not np.isfinite(c).all():
        i, j = np.argwhere(~np.isfinite(c))[0]
        raise DataValidationError(f"the covariance matrix has a non-finite entry {c[i, j]} at ({i}, {j})")
    c = 0.5 * (c + c.T)
    try:
        return np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        lam, vec = np.linalg.eigh(c)
        top = float(np.abs(lam).max(initial=0.0))
        if lam.size and lam[0] < -1e-8 * top:
            raise DataValidationError(
                f"the covariance matrix is not positive semidefinite: smallest eigenvalue {lam[0]:.6g} "
                f"(largest {lam[-1]:.6g})"
            ) from None
        return vec * np.sqrt(np.maximum(lam, 0.0))


class MeanVariance(OptimizerAgent):
    """Cost-aware mean-variance agent: ``max mu'w - c(w) - (gamma/2) w'Sigma w``.

    Parameters
    ----------
    source : ReturnSource
        Needs a mean and a covariance.
    gamma : float
        Risk aversion (NeuralFactors eq. 13's ``lambda``; the diffusion paper uses 100).
        Without costs and with only a budget ``1'w = 1`` the solution is
        ``Sigma^-1 (mu - eta 1) / gamma``.
    constraints, cost_model, risk_free, cost_aware, seed
        See :class:`OptimizerAgent`.
    solver : {"auto", "clarabel", "cvxpy-clarabel", "cvxpy-highs", "cvxpy-osqp", "cvxpy-scs"}
        First solver to try. ``"clarabel"``: the direct QP (:class:`ClarabelMVSolver`);
        ``"cvxpy-*"``: the cvxpy formulation with that solver. ``"auto"`` is the direct
        QP, then cvxpy with HiGHS (linear costs) or SCS (impact costs: power cones, which
        HiGHS cannot solve) as the fallback.

    Notes
    -----
    The direct QP is assembled from sparse arrays each day (``O(N^2)``) and handed to
    CLARABEL. The cvxpy fallback is built once with Parameters and re-solved for
    ``N <= DPP_MAX_ASSETS``, rebuilt with constants above (see
    ``benchmarks/bench_optimizers.py`` for the three timings).
    """

    solvers: ClassVar[tuple[str, ...]] = ("clarabel", "cvxpy-clarabel", "cvxpy-highs", "cvxpy-osqp", "cvxpy-scs")
    _use_mean: ClassVar[bool] = True

    def __init__(
        self,
        source: ReturnSource,
        gamma: float = 100.0,
        *,
        constraints: Constraints | None = None,
        cost_model: CostModel | None = None,
        risk_free: float = 0.0,
        cost_aware: bool = True,
        solver: str = "auto",
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
        self.gamma = gamma

    def validate(self) -> None:
        super().validate()
        if not (math.isfinite(float(self.gamma)) and self.gamma > 0):
            raise DataValidationError(f"gamma must be positive and finite, got {self.gamma}")
        if self._has_impact and self.solver == "cvxpy-highs":
            raise DataValidationError("HiGHS cannot solve the power-cone impact cost; use 'clarabel' or 'cvxpy-scs'")

    def _solver_order(self) -> list[str]:
        default = ["clarabel", "cvxpy-scs"] if self._has_impact else ["clarabel", "cvxpy-highs"]
        if self.solver == "auto":
            return default
        return [self.solver] + [s for s in default if s != self.solver]

    def _program(self, n: int) -> MVProgram:
        rates = tuple(np.concatenate(self.cost_model_.rates(n)).tolist())
        key = (n, self.constraints_, rates, bool(self.cost_aware))
        cache: dict[Any, MVProgram] = self.__dict__.setdefault("_programs", {})
        prog = cache.get(key)
        if prog is None:
            cache.clear()
            prog = cache[key] = MVProgram(n, Feasible.of(self.constraints_, n), self._objective_costs, bool(self.cost_aware))
        return prog

    def _mv_problem(self, est: Estimate, wd: np.ndarray) -> MVProblem:
        n = wd.shape[0]
        assert est.cov is not None
        f = self._feasible(n)
        b, s, k = self._trade_rates(n)
        return MVProblem(
            mean=(est.mean - self.risk_free) if self._use_mean else np.zeros(n),
            factor=covariance_factor(est.cov),
            w_drifted=wd,
            buy=b,
            sell=s,
            impact=k,
            lower=f.lower,
            upper=f.upper,
            gamma=float(self.gamma),
            budget=f.budget,
            max_gross_leverage=f.gross,
            max_turnover=f.turnover,
        )

    def _solve_with(self, solver: str, est: Estimate, wd: np.ndarray) -> RawSolution:
        p = self._mv_problem(est, wd)
        if solver == "clarabel":
            sol = ClarabelMVSolver().solve(p)
            return RawSolution(sol.weights, sol.planned_cost, solver, {"iterations": sol.iterations})
        name = solver.split("-", 1)[1].upper()
        n = wd.shape[0]
        if n <= DPP_MAX_ASSETS and self.__dict__.get("_absent") is None:
            sol = self._program(n).solve(p, name)
        else:  # large N, or assets pinned at zero today (the compiled program has the static bounds)
            sol = mv_cvxpy_once(p, self._feasible(n), name)
        return RawSolution(sol.weights, sol.planned_cost, solver)

    def _risk(self, est: Estimate, w: np.ndarray, cost: float) -> float:
        assert est.cov is not None
        return float(w @ est.cov @ w)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_programs", None)  # cvxpy problems are rebuilt on demand
        return state


class MinVariance(MeanVariance):
    """Cost-aware minimum-variance agent: ``min (gamma/2) w'Sigma w + c(w)``.

    The mean is ignored (taken as the cash rate), so ``gamma`` only trades variance against
    costs. Without costs and with only a budget ``1'w = 1`` the solution is
    ``Sigma^-1 1 / (1'Sigma^-1 1)``.

    Note: the cash leg has no variance, so with a budget that allows cash (the environment's
    default ``(0, 1)``) the minimum-variance portfolio is all cash; use
    ``Constraints(budget=(1, 1))`` for a fully invested one.
    """

    _use_mean: ClassVar[bool] = False
    _needs_cov: ClassVar[bool] = True

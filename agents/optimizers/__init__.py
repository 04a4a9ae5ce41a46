"""Cost-aware optimizer agents: mean-variance, minimum-variance and mean-CVaR.

Each day the agent turns the observation into a view of day ``t+1`` (a
:class:`~factorgym.agents.estimators.ReturnSource`), solves a one-period problem against
the current *drifted* weights ``w_d`` and returns the target risky weights (the
environment's ``"weights"`` action mode). Net return of the day, as the environment books
it::

    R = w'r + (1 - 1'w) rf - c(w, w_d),      c = the environment's CostModel.cost

Objectives (``mu``, ``r`` in excess of the cash rate ``rf``; ``c`` the cost model's cost,
asymmetric proportional plus optional ``impact * |dw|^1.5`` square-root impact):

``MeanVariance``  ``max  mu'w - c(w) - (gamma / 2) w' Sigma w``   (NeuralFactors eq. 13
                  with ``gamma = lambda``; the diffusion paper's ``gamma = 100``)
``MinVariance``   ``min  (gamma / 2) w' Sigma w + c(w)``  (``gamma`` only trades risk
                  against costs)
``MeanCVaR``      ``max  mu'w - c(w) - l * CVaR_alpha(-r'w + c(w))``   (``objective="utility"``)
                  or ``min CVaR_alpha(-r'w + c(w))`` s.t. ``mu'w - c(w) >= target``
                  (``objective="min_risk"``), Rockafellar-Uryasev on equally likely scenarios.

Costs are charged against the drifted weights, so holding still is free and the optimizer
trades only where the expected gain beats the cost (the diffusion paper's cost-aware
formulation); ``cost_aware=False`` drops them from the objective (an ablation).

Constraints are the environment's own :class:`factorgym.constraints.Constraints` (per-asset
box, long-only or long/short with gross leverage ``sum|w| <= L``, budget bounds on ``1'w``,
turnover cap ``sum|w - w_d| <= kappa``), so the agent solves exactly the problem the
environment enforces. Note: NeuralFactors' long/short ``||w||_1 = L`` is not convex; the
cap ``||w||_1 <= L`` is its convex relaxation (it binds whenever more exposure pays).

Solvers and fallbacks
---------------------
Mean-CVaR with linear costs is solved by :class:`~factorgym.agents.solvers.HighsCVaRSolver`
(the LP's dual form in HiGHS, no cvxpy); with impact costs, or as the fallback, by the cvxpy
formulation with CLARABEL (SCS after it when there is impact). Mean-variance is assembled as
a sparse QP and passed to CLARABEL directly
(:class:`~factorgym.agents.solvers.ClarabelMVSolver`); its fallback is the cvxpy
formulation (built once with Parameters and re-solved for ``N <= 64``) with HiGHS' QP
solver, or SCS when there is impact. When every solver fails the agent holds the drifted
weights (or, if drift has carried them outside the constraint set, moves to the feasible
portfolio with the least turnover); each fallback is logged (warning) on the
``factorgym.agents.optimizers`` logger and counted in ``n_fallbacks_`` / ``n_holds_``.

A constraint set with no feasible portfolio raises
:class:`~factorgym.errors.InfeasibleError` (naming the constraint), never a fallback.

Feasibility: the environment rejects targets that violate a constraint by more than
``Constraints.tol`` (1e-8). Solver output is within the solvers' own tolerances (about 1e-9),
so every solution goes through :func:`~factorgym.agents.optimizers.feasibility.polish` - clip to the per-asset bounds, move the sum
into the budget with the exact box-and-sum projection, scale into the gross and turnover
caps - and is then *verified* with the environment's own
:func:`~factorgym.constraints.feasibility_violations`; raw violations above 1e-6 are treated
as a solver failure rather than repaired.

Layout
------
:mod:`~factorgym.agents.optimizers.base` (:class:`OptimizerAgent`, :class:`Decision`),
:mod:`~factorgym.agents.optimizers.mean_variance` (:class:`MeanVariance`,
:class:`MinVariance`), :mod:`~factorgym.agents.optimizers.mean_cvar` (:class:`MeanCVaR`),
:mod:`~factorgym.agents.optimizers.feasibility` (polishing, least-turnover portfolio,
diagnosis) and :mod:`~factorgym.agents.optimizers.programs` (the cvxpy formulations).
"""

from __future__ import annotations

from factorgym.agents.optimizers.base import Decision, OptimizerAgent, RawSolution
from factorgym.agents.optimizers.feasibility import (
    POLISH_LIMIT,
    Feasible,
    MinTurnover,
    Polished,
    diagnose_infeasibility,
    min_turnover_portfolio,
    polish,
)
from factorgym.agents.optimizers.mean_cvar import MeanCVaR, empirical_cvar
from factorgym.agents.optimizers.mean_variance import MeanVariance, MinVariance, covariance_factor
from factorgym.agents.optimizers.programs import (
    DPP_MAX_ASSETS,
    MVProgram,
    ProgramSolution,
    mv_cvxpy_once,
)
from factorgym.agents.solvers import SolverError

__all__ = [
    "DPP_MAX_ASSETS",
    "POLISH_LIMIT",
    "Decision",
    "Feasible",
    "MVProgram",
    "MeanCVaR",
    "MeanVariance",
    "MinTurnover",
    "MinVariance",
    "OptimizerAgent",
    "Polished",
    "ProgramSolution",
    "RawSolution",
    "SolverError",
    "covariance_factor",
    "diagnose_infeasibility",
    "empirical_cvar",
    "min_turnover_portfolio",
    "mv_cvxpy_once",
    "polish",
]

"""Direct solver paths (no cvxpy) for the daily rebalancing problems.

* :mod:`~factorgym.agents.solvers.highs_cvar`: the mean-CVaR LP in its dual form by HiGHS
  (:class:`HighsCVaRSolver`), and :class:`SolverError`.
* :mod:`~factorgym.agents.solvers.clarabel_mv`: the mean-variance QP by CLARABEL
  (:class:`ClarabelMVSolver`).
"""

from __future__ import annotations

from factorgym.agents.solvers.clarabel_mv import ClarabelMVSolver, MVProblem, MVSolution
from factorgym.agents.solvers.highs_cvar import (
    CVaRProblem,
    CVaRSolution,
    HighsCVaRSolver,
    SolverError,
    quiet_highs,
    silence_highs_banner,
)

__all__ = [
    "CVaRProblem",
    "CVaRSolution",
    "ClarabelMVSolver",
    "HighsCVaRSolver",
    "MVProblem",
    "MVSolution",
    "SolverError",
    "quiet_highs",
    "silence_highs_banner",
]

"""Direct solver paths (no cvxpy) for the daily rebalancing problems.

* :mod:`~factorgym.agents.solvers.highs_cvar`: the mean-CVaR LP in its dual form by HiGHS
  (:class:`HighsCVaRSolver`).
* :mod:`~factorgym.agents.solvers.cvar_lp`: that LP (:class:`CVaRProblem`) and its dual as
  the arrays HiGHS takes.
* :mod:`~factorgym.agents.solvers.highs_output`: HiGHS' banner and console output
  (:func:`silence_highs_banner`, :func:`quiet_highs`).
* :mod:`~factorgym.agents.solvers.errors`: :class:`SolverError`, the failure of any direct or
  cvxpy solver path.
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

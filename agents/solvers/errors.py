"""The failure of any direct or cvxpy solver path: :class:`SolverError`."""

from __future__ import annotations

from factorgym.errors import FactorGymError

__all__ = ["SolverError"]


class SolverError(FactorGymError, RuntimeError):
    """A numerical solver failed (status not optimal, or a solution that is not feasible).

    Attributes
    ----------
    maybe_infeasible : bool
        True when the solver's status says the problem may have no feasible point; callers
        then check the constraint set itself before treating it as a numerical failure.
    """

    def __init__(self, message: str, *, maybe_infeasible: bool = False) -> None:
        super().__init__(message)
        self.maybe_infeasible = maybe_infeasible

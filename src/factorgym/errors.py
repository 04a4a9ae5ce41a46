"""Exception types raised by factorgym for bad user input.

Every error a user can cause (bad data, bad actions, bad checkpoints, infeasible
constraints) derives from :class:`FactorGymError`, so the CLI can turn it into one clear
line and exit status 2 without a traceback.
"""

from __future__ import annotations


class FactorGymError(Exception):
    """Base class of all user-facing factorgym errors."""


class DataValidationError(FactorGymError, ValueError):
    """Input data is malformed: NaN/inf, unsorted or duplicate dates, bad prices..."""


class CheckpointError(FactorGymError):
    """A saved artifact is missing, corrupt or incompatible with this library version."""


class ActionError(FactorGymError, ValueError):
    """An environment action has the wrong shape, contains NaN/inf or is infeasible."""


class InfeasibleError(FactorGymError):
    """An optimisation problem or weight constraint set has no feasible solution."""


class NotFittedError(FactorGymError, AttributeError):
    """A generator or estimator was used before ``fit`` (or ``load``)."""

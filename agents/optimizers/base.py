"""The base class of the optimizer agents (:class:`OptimizerAgent`) and their daily
:class:`Decision`: estimate a view of day ``t+1``, try the solvers in order, polish and
verify the solution, fall back to holding when every solver fails.
"""

from __future__ import annotations

import logging
import math
import time
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from factorgym.agents.estimators import Estimate, ReturnSource, check_estimate
from factorgym.agents.optimizers.feasibility import (
    Feasible,
    diagnose_infeasibility,
    min_turnover_portfolio,
    polish,
)
from factorgym.agents.protocol import Agent
from factorgym.agents.solvers import SolverError
from factorgym.constraints import Constraints, feasibility_violations
from factorgym.costs import CostModel
from factorgym.errors import DataValidationError, InfeasibleError

__all__ = ["Decision", "OptimizerAgent", "RawSolution"]

#: Fallbacks are logged (warnings) here, under the package's name.
logger = logging.getLogger("factorgym.agents.optimizers")


@dataclass(frozen=True)
class Decision:
    """What an optimizer agent decided on one day, and what it planned.

    Attributes
    ----------
    weights : ndarray of shape (N,)
        Target risky weights (the action).
    w_drifted : ndarray of shape (N,)
        The drifted risky weights it traded from.
    planned_cost : float
        The cost term of the objective at the solution, from the solver's own trade
        variables (``buy'u + sell'v + impact'(u + v)^1.5``); 0 when the objective ignores
        costs (``cost_aware=False``) or when the agent held.
    cost : float
        ``CostModel.cost(weights, w_drifted)``: what the environment will charge.
    expected_return : float
        Planned net return of the day, ``rf + mu'w - cost`` (``mu`` in excess of ``rf``).
    risk : float
        Planned variance of the portfolio return (mean-variance agents) or CVaR of the net
        loss (mean-CVaR agents) at the target weights.
    solver : str
        The solver that produced the weights, ``"hold"`` for the last resort.
    fallback : bool
        True when the first solver failed.
    solve_time : float
        Seconds spent solving (all attempts, estimation excluded).
    polish_change : float
        ``max|w_polished - w_solver|``.
    message : str
        The failures met, if any.
    """

    weights: np.ndarray
    w_drifted: np.ndarray
    planned_cost: float
    cost: float
    expected_return: float
    risk: float
    solver: str
    fallback: bool = False
    solve_time: float = 0.0
    polish_change: float = 0.0
    message: str = ""


@dataclass


@dataclass
class RawSolution:
    """One solver's output before polishing (``solver``: its name; ``extra``: its details)."""

    weights: np.ndarray
    planned_cost: float
    solver: str
    extra: dict[str, Any] = field(default_factory=dict)


class OptimizerAgent(Agent):
    """Base class of the optimizer agents (see the module docstring).

    Parameters
    ----------
    source : ReturnSource
        Where the view of day ``t+1`` comes from.
    constraints : Constraints, optional
        The environment's constraint set (default ``Constraints()``, the environment's
        default: long-only, invested up to 100%, no borrowing).
    cost_model : CostModel, optional
        The environment's cost model (default ``CostModel()``: 7.5 bps buys, 12.5 bps sells).
    risk_free : float
        Per-period (daily) simple return of the cash leg, as booked by the environment.
    cost_aware : bool
        Put the costs in the objective (default); ``False`` ignores them when optimising.
    solver : str
        ``"auto"`` or a solver name (see the subclasses); the other solvers follow as
        fallbacks.
    seed : int or None
        Seed of the agent's random streams (used by sources that sample).

    Attributes
    ----------
    n_solves_ : int
        Decisions taken since the last :meth:`reset`.
    n_fallbacks_ : int
        Decisions where the first solver failed (then a fallback solver or a hold was used).
    n_holds_ : int
        Decisions where every solver failed and the agent held.
    last_decision_ : Decision or None
    """

    #: Solver names this agent accepts.
    solvers: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        source: ReturnSource,
        *,
        constraints: Constraints | None = None,
        cost_model: CostModel | None = None,
        risk_free: float = 0.0,
        cost_aware: bool = True,
        solver: str = "auto",
        seed: int | None = None,
    ) -> None:
        self.source = source
        self.constraints = constraints
        self.cost_model = cost_model
        self.risk_free = risk_free
        self.cost_aware = cost_aware
        self.solver = solver
        self.seed = seed

    # ------------------------------------------------------------------ properties
    @property
    def constraints_(self) -> Constraints:
        """The constraint set in use."""
        return self.constraints if self.constraints is not None else Constraints()

    @property
    def cost_model_(self) -> CostModel:
        """The cost model in use."""
        return self.cost_model if self.cost_model is not None else CostModel()

    def reset(self, seed: int | None = None) -> None:
        """Start afresh: restart the random streams (from ``seed`` when given), zero the
        counters and drop compiled problems (so a replay is bit-for-bit identical)."""
        super().reset(seed)
        for key in ("_programs", "_highs"):
            self.__dict__.pop(key, None)
        self.n_solves_ = 0
        self.n_fallbacks_ = 0
        self.n_holds_ = 0
        self.last_decision_: Decision | None = None

    def _counters(self) -> None:
        if not hasattr(self, "n_solves_"):
            self.n_solves_ = 0
            self.n_fallbacks_ = 0
            self.n_holds_ = 0
            self.last_decision_ = None

    # ------------------------------------------------------------------ acting
    def _prefetch(self, returns: np.ndarray) -> None:
        if isinstance(self.source, ReturnSource):
            self.source.prefetch(returns)

    def act(self, returns: np.ndarray, weights: np.ndarray, env_index: int = 0) -> np.ndarray:
        """Target risky weights ``(N,)``; see :meth:`optimize`."""
        w = np.asarray(weights, dtype=np.float64)
        return self.optimize(returns, w[:-1], env_index=env_index).weights

    def optimize(self, returns: np.ndarray, w_drifted: np.ndarray, *, env_index: int = 0) -> Decision:
        """Estimate the view of day ``t+1`` from ``returns`` and solve against ``w_drifted``.

        Parameters
        ----------
        returns : ndarray of shape (W, N)
            Observed simple returns, oldest first, ending at day ``t``.
        w_drifted : ndarray of shape (N,)
            Current drifted risky weights.
        env_index : int
            Selects the random stream.

        Returns
        -------
        Decision

        Raises
        ------
        InfeasibleError
            When no target satisfies the constraints (e.g. a turnover cap too tight to
            reach the budget from the drifted weights).
        """
        self._counters()
        self.validate()
        wd = np.asarray(w_drifted, dtype=np.float64)
        if wd.ndim != 1 or wd.shape[0] < 1:
            raise DataValidationError(f"the drifted weights must be a vector of shape (N,), got shape {wd.shape}")
        if not np.isfinite(wd).all():
            i = int(np.argmax(~np.isfinite(wd)))
            raise DataValidationError(f"the drifted weights contain a non-finite value {wd[i]} (asset {i})")
        n = wd.shape[0]
        x = np.asarray(returns, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != n:
            raise DataValidationError(f"returns {x.shape} and drifted weights {wd.shape} disagree")
        self._check_static(n)
        # an asset whose return is missing (NaN) on the decision day does not trade: weight 0
        alive = np.isfinite(x[-1]) if x.shape[0] else np.ones(n, dtype=bool)
        rng = self._rng(env_index) if self.source.uses_rng else None
        est = self.source.estimate(x, rng, cov=self._needs_cov, scenarios=self._needs_scenarios)
        est, investable = check_estimate(est, n, cov=self._needs_cov, scenarios=self._needs_scenarios, alive=alive)
        decision = self._decide(est, wd, None if investable.all() else ~investable)
        self.n_solves_ += 1
        self.last_decision_ = decision
        return decision

    def _check_static(self, n: int) -> None:
        """Raise InfeasibleError when the constraints admit no portfolio of ``n`` assets."""
        key = (n, self.constraints_)
        if self.__dict__.get("_static_ok") != key:
            self.constraints_.feasible_point(n)
            self.__dict__["_static_ok"] = key

    def _decide(self, est: Estimate, wd: np.ndarray, absent: np.ndarray | None = None) -> Decision:
        """Solve; ``absent`` ``(N,)`` marks assets held at zero weight (not investable today)."""
        c = self.constraints_
        errors: list[str] = []
        t0 = time.perf_counter()
        order = self._solver_order()
        self._absent = absent
        for i, name in enumerate(order):
            try:
                raw = self._solve_with(name, est, wd)
                w_raw = raw.weights if absent is None else np.where(absent, 0.0, raw.weights)
                polished = polish(w_raw, wd, c, fixed_zero=absent)
            except SolverError as exc:
                if exc.maybe_infeasible:
                    why = diagnose_infeasibility(c, wd)
                    if why is not None:
                        raise InfeasibleError(f"{type(self).__name__}: {why}") from None
                errors.append(f"{name}: {exc}")
                if i == 0:
                    self.n_fallbacks_ += 1
                nxt = order[i + 1] if i + 1 < len(order) else "holding the drifted weights"
                logger.warning("%s: solver %s failed (%s); falling back to %s", type(self).__name__, name, exc, nxt)
                continue
            return self._decision(
                est, wd, polished.weights, raw, fallback=i > 0, t=time.perf_counter() - t0, change=polished.change, msg="; ".join(errors)
            )
        # every solver failed: hold (or the least-turnover feasible portfolio)
        self.n_holds_ += 1
        w = wd.copy() if absent is None else np.where(absent, 0.0, wd)
        if absent is not None and feasibility_violations(w, wd, c):
            w = wd.copy()
        if feasibility_violations(w, wd, c):
            w = min_turnover_portfolio(c, wd).weights
            if feasibility_violations(w, wd, c):
                raise InfeasibleError(f"{type(self).__name__}: {diagnose_infeasibility(c, wd) or 'no feasible target'}")
        raw = RawSolution(w, 0.0, "hold")
        return self._decision(est, wd, w, raw, fallback=True, t=time.perf_counter() - t0, change=0.0, msg="; ".join(errors))

    def _decision(
        self, est: Estimate, wd: np.ndarray, w: np.ndarray, raw: RawSolution, *, fallback: bool, t: float, change: float, msg: str
    ) -> Decision:
        cost = float(self.cost_model_.cost(w, wd))
        mu_ex = est.mean - self.risk_free
        return Decision(
            weights=w,
            w_drifted=wd.copy(),
            planned_cost=raw.planned_cost if self.cost_aware else 0.0,
            cost=cost,
            expected_return=float(self.risk_free + mu_ex @ w - cost),
            risk=self._risk(est, w, cost),
            solver=raw.solver,
            fallback=fallback,
            solve_time=t,
            polish_change=change,
            message=msg,
        )

    # ------------------------------------------------------------------ subclass hooks
    _needs_cov: ClassVar[bool] = True
    _needs_scenarios: ClassVar[bool] = False

    def validate(self) -> None:
        """Raise :class:`~factorgym.errors.DataValidationError` on a bad parameter (also done
        before every decision)."""
        if not isinstance(self.source, ReturnSource):
            raise DataValidationError(f"source must be a ReturnSource, got {type(self.source).__name__}")
        if self.constraints is not None and not isinstance(self.constraints, Constraints):
            raise DataValidationError("constraints must be a factorgym.constraints.Constraints")
        if self.cost_model is not None and not isinstance(self.cost_model, CostModel):
            raise DataValidationError("cost_model must be a factorgym.costs.CostModel")
        if not math.isfinite(float(self.risk_free)) or self.risk_free <= -1:
            raise DataValidationError(f"risk_free must be a finite per-period rate > -1, got {self.risk_free}")
        if self.solver != "auto" and self.solver not in self.solvers:
            raise DataValidationError(
                f"{type(self).__name__} solver must be 'auto' or one of {', '.join(self.solvers)}, got {self.solver!r}"
            )

    def _feasible(self, n: int) -> Feasible:
        """The constraint set in solver form, with today's non-investable assets pinned at 0."""
        f = Feasible.of(self.constraints_, n)
        absent = self.__dict__.get("_absent")
        if absent is None:
            return f
        lo, hi = f.lower.copy(), f.upper.copy()
        lo[absent] = 0.0
        hi[absent] = 0.0
        return Feasible(lo, hi, f.budget, f.gross, f.turnover)

    @property
    def _has_impact(self) -> bool:
        return self.cost_aware and not self.cost_model_.is_linear

    @property
    def _objective_costs(self) -> CostModel:
        """The cost model of the objective: the agent's, or zero rates when not cost-aware."""
        return self.cost_model_ if self.cost_aware else CostModel(0.0, 0.0, 0.0)

    def _trade_rates(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Buy, sell and impact rates ``(N,)`` of the objective (zeros when not cost-aware)."""
        if not self.cost_aware:
            return np.zeros(n), np.zeros(n), np.zeros(n)
        b, s, k = (np.array(r) for r in self.cost_model_.rates(n))
        return b, s, k

    @abstractmethod
    def _solver_order(self) -> list[str]:
        """Solvers to try, first choice first."""

    @abstractmethod
    def _solve_with(self, solver: str, est: Estimate, wd: np.ndarray) -> RawSolution:
        """Solve with one solver; raise SolverError on failure."""

    @abstractmethod
    def _risk(self, est: Estimate, w: np.ndarray, cost: float) -> float:
        """The planned risk of ``w``."""

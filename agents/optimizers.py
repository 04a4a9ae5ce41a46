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

Constraints are the environment's own :class:`factorgym.envs.actions.Constraints` (per-asset
box, long-only or long/short with gross leverage ``sum|w| <= L``, budget bounds on ``1'w``,
turnover cap ``sum|w - w_d| <= kappa``), so the agent solves exactly the problem the
environment enforces. Note: NeuralFactors' long/short ``||w||_1 = L`` is not convex; the
cap ``||w||_1 <= L`` is its convex relaxation (it binds whenever more exposure pays).

Solvers and fallbacks
---------------------
Mean-CVaR with linear costs is solved by :class:`~factorgym.agents.cvar_solver.HighsCVaRSolver`
(the LP's dual form in HiGHS, no cvxpy); with impact costs, or as the fallback, by the cvxpy
formulation with CLARABEL (SCS after it when there is impact). Mean-variance is assembled as
a sparse QP and passed to CLARABEL directly
(:class:`~factorgym.agents.cvar_solver.ClarabelMVSolver`); its fallback is the cvxpy
formulation (built once with Parameters and re-solved for ``N <= 64``) with HiGHS' QP
solver, or SCS when there is impact. When every solver fails the agent holds the drifted
weights (or, if drift has carried them outside the constraint set, moves to the feasible
portfolio with the least turnover); each fallback is logged (warning) on the
``factorgym.agents.optimizers`` logger and counted in ``n_fallbacks_`` / ``n_holds_``.

A constraint set with no feasible portfolio raises
:class:`~factorgym.errors.InfeasibleError` (naming the constraint), never a fallback.

Feasibility: the environment rejects targets that violate a constraint by more than
``Constraints.tol`` (1e-8). Solver output is within the solvers' own tolerances (about 1e-9),
so every solution goes through :func:`polish` - clip to the per-asset bounds, move the sum
into the budget with the exact box-and-sum projection, scale into the gross and turnover
caps - and is then *verified* with the environment's own
:func:`~factorgym.envs.actions.feasibility_violations`; raw violations above 1e-6 are treated
as a solver failure rather than repaired.
"""

from __future__ import annotations

import logging
import math
import time
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import cvxpy as cp
import numpy as np
from scipy.optimize import linprog

from factorgym.agents.cvar_solver import (
    ClarabelMVSolver,
    CVaRProblem,
    HighsCVaRSolver,
    MVProblem,
    SolverError,
)
from factorgym.agents.estimators import Estimate, ReturnSource
from factorgym.agents.protocol import Agent
from factorgym.costs import CostModel
from factorgym.envs.actions import Constraints, feasibility_violations, project_box_sum
from factorgym.errors import DataValidationError, InfeasibleError

__all__ = [
    "Decision",
    "OptimizerAgent",
    "MeanVariance",
    "MinVariance",
    "MeanCVaR",
    "SolverError",
    "polish",
    "min_turnover_portfolio",
    "empirical_cvar",
    "covariance_factor",
]

logger = logging.getLogger(__name__)

#: Raw constraint violations up to this are repaired by :func:`polish`; larger ones are a
#: solver failure.
POLISH_LIMIT = 1e-6


# ============================================================================ helpers
@dataclass(frozen=True)
class _Feasible:
    """The constraint set in solver form for ``N`` assets."""

    lower: np.ndarray
    upper: np.ndarray
    budget: tuple[float, float]
    gross: float | None
    turnover: float | None

    @classmethod
    def of(cls, c: Constraints, n: int) -> _Feasible:
        lo, hi = c.bounds(n)
        b_lo, b_hi = c.budget
        gross: float | None = None
        if c.long_only:
            b_hi = min(b_hi, c.max_gross_leverage)  # sum|w| = sum(w)
        elif c.max_gross_leverage < np.maximum(np.abs(lo), np.abs(hi)).sum() - 1e-12:
            gross = c.max_gross_leverage
        return cls(lo, hi, (b_lo, b_hi), gross, c.max_turnover)

    def trade_bound(self, wd: np.ndarray) -> float:
        """A valid bound on every ``|w_i - w_d_i|`` (keeps unpriced trade variables bounded)."""
        return float(np.maximum(np.abs(self.lower), np.abs(self.upper)).max() + np.abs(wd).max() + 1.0)


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


def polish(w: np.ndarray, w_drifted: np.ndarray, constraints: Constraints) -> tuple[np.ndarray, float]:
    """Repair a solver's tiny constraint violations, then verify feasibility.

    Steps: clip to the per-asset bounds; if ``sum(w)`` is outside the budget, the Euclidean
    projection onto ``{lo <= w <= hi, sum(w) = nearest budget bound}``; if ``sum|w|`` exceeds
    the gross cap, scale ``w`` down; if the turnover exceeds its cap, move back towards
    ``w_drifted`` along the trade. Finally the environment's own check.

    Parameters
    ----------
    w : ndarray of shape (N,)
        Solver output.
    w_drifted : ndarray of shape (N,)
    constraints : Constraints

    Returns
    -------
    w : ndarray of shape (N,)
        A feasible portfolio (within ``constraints.tol``).
    change : float
        ``max|w_out - w_in|``.

    Raises
    ------
    SolverError
        When the raw violation exceeds :data:`POLISH_LIMIT`, or the repaired point still
        fails the environment's check.
    """
    w_in = np.asarray(w, dtype=np.float64)
    n = w_in.shape[0]
    if not np.isfinite(w_in).all():
        raise SolverError("solver returned non-finite weights")
    raw = _violation(w_in, w_drifted, constraints)
    if raw > POLISH_LIMIT:
        raise SolverError(f"solver solution violates the constraints by {raw:.3g} (> {POLISH_LIMIT:g})")
    f = _Feasible.of(constraints, n)
    out = np.clip(w_in, f.lower, f.upper)
    s = out.sum()
    if s < f.budget[0] or s > f.budget[1]:
        out = project_box_sum(out, f.lower, f.upper, float(np.clip(s, *f.budget)))
    if not constraints.long_only:
        g = np.abs(out).sum()
        if g > constraints.max_gross_leverage:
            out = out * (constraints.max_gross_leverage / g)
    if constraints.max_turnover is not None:
        d = out - w_drifted
        to = np.abs(d).sum()
        if to > constraints.max_turnover:
            out = w_drifted + d * (constraints.max_turnover / to)
    bad = feasibility_violations(out, w_drifted, constraints)
    if bad:
        raise SolverError(f"solution still infeasible after polishing: {bad[0]}")
    return out, float(np.abs(out - w_in).max())


def _violation(w: np.ndarray, wd: np.ndarray, c: Constraints) -> float:
    """Largest absolute violation of any constraint by ``w`` (0 when feasible)."""
    n = w.shape[0]
    lo, hi = c.bounds(n)
    v = max(0.0, float((lo - w).max()), float((w - hi).max()))
    s = float(w.sum())
    v = max(v, c.budget[0] - s, s - c.budget[1])
    v = max(v, float(np.abs(w).sum()) - c.max_gross_leverage)
    if c.max_turnover is not None:
        v = max(v, float(np.abs(w - wd).sum()) - c.max_turnover)
    return v


def min_turnover_portfolio(constraints: Constraints, w_drifted: np.ndarray) -> tuple[np.ndarray, float]:
    """The feasible portfolio (ignoring the turnover cap) closest to ``w_drifted`` in L1.

    A small LP (scipy's HiGHS): ``min sum|w - w_d|`` over the static constraints.

    Returns
    -------
    w : ndarray of shape (N,)
    turnover : float
        ``sum|w - w_drifted|``, the least turnover that reaches the constraint set.

    Raises
    ------
    InfeasibleError
        When the static constraints admit no portfolio.
    """
    wd = np.asarray(w_drifted, dtype=np.float64)
    n = wd.shape[0]
    constraints.feasible_point(n)  # raises InfeasibleError naming the conflict
    f = _Feasible.of(constraints, n)
    # x = [w, u, v, t]; w - u + v = wd; min 1'u + 1'v
    use_t = f.gross is not None
    nx = 4 * n if use_t else 3 * n
    cost = np.zeros(nx)
    cost[n : 3 * n] = 1.0
    eye = np.eye(n)
    a_eq = np.zeros((n, nx))
    a_eq[:, :n] = eye
    a_eq[:, n : 2 * n] = -eye
    a_eq[:, 2 * n : 3 * n] = eye
    rows, rhs = [], []
    if np.isfinite(f.budget[1]):
        r = np.zeros(nx)
        r[:n] = 1.0
        rows.append(r)
        rhs.append(f.budget[1])
    if np.isfinite(f.budget[0]):
        r = np.zeros(nx)
        r[:n] = -1.0
        rows.append(r)
        rhs.append(-f.budget[0])
    if use_t:
        blk = np.zeros((2 * n, nx))
        blk[:n, :n] = eye
        blk[:n, 3 * n :] = -eye
        blk[n:, :n] = -eye
        blk[n:, 3 * n :] = -eye
        rows.extend(blk)
        rhs.extend([0.0] * (2 * n))
        r = np.zeros(nx)
        r[3 * n :] = 1.0
        rows.append(r)
        rhs.append(float(f.gross))  # type: ignore[arg-type]
    bounds = [(float(lo), float(hi)) for lo, hi in zip(f.lower, f.upper, strict=True)] + [(0.0, None)] * (nx - n)
    res = linprog(
        cost,
        A_ub=np.array(rows) if rows else None,
        b_ub=np.array(rhs) if rhs else None,
        A_eq=a_eq,
        b_eq=wd,
        bounds=bounds,
        method="highs",
    )
    if res.status != 0:
        raise InfeasibleError(f"the constraints admit no portfolio of {n} assets ({res.message})")
    w = np.asarray(res.x[:n])
    try:
        w, _ = polish(w, w, Constraints(**{**_constraint_kwargs(constraints), "max_turnover": None}))
    except SolverError as exc:
        raise InfeasibleError(f"could not find a feasible portfolio: {exc}") from None
    return w, float(np.abs(w - wd).sum())


def _constraint_kwargs(c: Constraints) -> dict[str, Any]:
    return {
        "long_only": c.long_only,
        "max_gross_leverage": c.max_gross_leverage,
        "budget": c.budget,
        "box": c.box,
        "max_turnover": c.max_turnover,
        "tol": c.tol,
    }


def diagnose_infeasibility(constraints: Constraints, w_drifted: np.ndarray) -> str | None:
    """A message naming why no target is feasible today, or ``None`` if one is."""
    try:
        _, to = min_turnover_portfolio(constraints, w_drifted)
    except InfeasibleError as exc:
        return str(exc)
    if constraints.max_turnover is not None and to > constraints.max_turnover + constraints.tol:
        return (
            f"the turnover cap {constraints.max_turnover:g} cannot be met: reaching the constraint set "
            f"(budget {constraints.budget}, box {constraints.box}, gross leverage "
            f"{constraints.max_gross_leverage:g}) from the drifted weights (sum {float(np.sum(w_drifted)):.6g}) "
            f"needs a turnover of at least {to:.6g}"
        )
    return None


# ============================================================================ decisions
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
class _Raw:
    """One solver's output before polishing."""

    weights: np.ndarray
    planned_cost: float
    solver: str
    extra: dict[str, Any] = field(default_factory=dict)


# ============================================================================ base class
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
        self._validate_params()
        wd = np.asarray(w_drifted, dtype=np.float64)
        n = wd.shape[0]
        x = np.asarray(returns, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != n:
            raise DataValidationError(f"returns {x.shape} and drifted weights {wd.shape} disagree")
        self._check_static(n)
        rng = self._rng(env_index) if self.source.uses_rng else None
        est = self.source.estimate(x, rng, cov=self._needs_cov, scenarios=self._needs_scenarios)
        if est.mean.shape != (n,):
            raise DataValidationError(f"the source's mean has shape {est.mean.shape}, expected ({n},)")
        decision = self._decide(est, wd)
        self.n_solves_ += 1
        self.last_decision_ = decision
        return decision

    def _check_static(self, n: int) -> None:
        """Raise InfeasibleError when the constraints admit no portfolio of ``n`` assets."""
        key = (n, self.constraints_)
        if self.__dict__.get("_static_ok") != key:
            self.constraints_.feasible_point(n)
            self.__dict__["_static_ok"] = key

    def _decide(self, est: Estimate, wd: np.ndarray) -> Decision:
        c = self.constraints_
        errors: list[str] = []
        t0 = time.perf_counter()
        order = self._solver_order()
        for i, name in enumerate(order):
            try:
                raw = self._solve_with(name, est, wd)
                w, change = polish(raw.weights, wd, c)
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
            return self._decision(est, wd, w, raw, fallback=i > 0, t=time.perf_counter() - t0, change=change, msg="; ".join(errors))
        # every solver failed: hold (or the least-turnover feasible portfolio)
        self.n_holds_ += 1
        w = wd.copy()
        if feasibility_violations(w, wd, c):
            w, _ = min_turnover_portfolio(c, wd)
            if feasibility_violations(w, wd, c):
                raise InfeasibleError(f"{type(self).__name__}: {diagnose_infeasibility(c, wd) or 'no feasible target'}")
        raw = _Raw(w, 0.0, "hold")
        return self._decision(est, wd, w, raw, fallback=True, t=time.perf_counter() - t0, change=0.0, msg="; ".join(errors))

    def _decision(
        self, est: Estimate, wd: np.ndarray, w: np.ndarray, raw: _Raw, *, fallback: bool, t: float, change: float, msg: str
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

    def _validate_params(self) -> None:
        if not isinstance(self.source, ReturnSource):
            raise DataValidationError(f"source must be a ReturnSource, got {type(self.source).__name__}")
        if self.constraints is not None and not isinstance(self.constraints, Constraints):
            raise DataValidationError("constraints must be a factorgym.envs.actions.Constraints")
        if self.cost_model is not None and not isinstance(self.cost_model, CostModel):
            raise DataValidationError("cost_model must be a factorgym.costs.CostModel")
        if not math.isfinite(float(self.risk_free)) or self.risk_free <= -1:
            raise DataValidationError(f"risk_free must be a finite per-period rate > -1, got {self.risk_free}")
        if self.solver != "auto" and self.solver not in self.solvers:
            raise DataValidationError(
                f"{type(self).__name__} solver must be 'auto' or one of {', '.join(self.solvers)}, got {self.solver!r}"
            )

    @property
    def _has_impact(self) -> bool:
        return self.cost_aware and not self.cost_model_.is_linear

    @abstractmethod
    def _solver_order(self) -> list[str]:
        """Solvers to try, first choice first."""

    @abstractmethod
    def _solve_with(self, solver: str, est: Estimate, wd: np.ndarray) -> _Raw:
        """Solve with one solver; raise SolverError on failure."""

    @abstractmethod
    def _risk(self, est: Estimate, w: np.ndarray, cost: float) -> float:
        """The planned risk of ``w``."""


# ============================================================================ cvxpy pieces
def _cvx_trades(n: int) -> tuple[cp.Variable, cp.Variable, cp.Variable]:
    return cp.Variable(n, name="w"), cp.Variable(n, nonneg=True, name="buy"), cp.Variable(n, nonneg=True, name="sell")


def _cvx_cost(u: cp.Variable, v: cp.Variable, cm: CostModel, n: int) -> cp.Expression:
    """The cost model on trade variables ``u``, ``v`` (``w - w_d = u - v``)."""
    b, s, k = cm.rates(n)
    cost = b @ u + s @ v
    if not cm.is_linear:
        cost = cost + k @ cp.power(u + v, 1.5)
    return cost


def _cvx_constraints(
    w: cp.Variable, u: cp.Variable, v: cp.Variable, wd: Any, f: _Feasible, trade_bound: Any
) -> list[cp.Constraint]:
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


_CVX_OPTIONS: dict[str, dict[str, Any]] = {
    "CLARABEL": {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-8},
    "HIGHS": {},
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000},
    "OSQP": {"eps_abs": 1e-10, "eps_rel": 1e-10, "max_iter": 200_000, "polish": True},
}


def _cvx_solve(problem: cp.Problem, solver: str) -> None:
    try:
        problem.solve(solver=solver, **_CVX_OPTIONS.get(solver, {}))
    except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
        raise SolverError(f"cvxpy/{solver} failed: {exc}") from None
    status = problem.status
    if status != cp.OPTIMAL:
        raise SolverError(
            f"cvxpy/{solver} returned status {status!r}",
            maybe_infeasible=status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE, cp.UNBOUNDED, cp.UNBOUNDED_INACCURATE),
        )


# ============================================================================ mean-variance
def covariance_factor(cov: np.ndarray) -> np.ndarray:
    """A square factor ``F`` ``(N, N)`` with ``F F' = cov``, so ``w' cov w = ||F' w||^2``.

    The Cholesky factor when ``cov`` (symmetrised) is positive definite; otherwise
    ``V sqrt(max(lambda, 0))`` from its eigendecomposition (a singular sample covariance,
    e.g. fewer days than assets, is fine; tiny negative eigenvalues are clipped).
    """
    c = np.asarray(cov, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or not np.isfinite(c).all():
        raise DataValidationError(f"covariance must be a finite square matrix, got shape {c.shape}")
    c = 0.5 * (c + c.T)
    try:
        return np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        lam, vec = np.linalg.eigh(c)
        return vec * np.sqrt(np.maximum(lam, 0.0))


class _MVProgram:
    """A cvxpy mean-variance problem built once with Parameters, re-solved without recompiling.

    The risk enters as ``sum_squares(G' w)`` with ``G = sqrt(gamma / 2) F`` a Parameter and
    ``F F' = Sigma`` (:func:`covariance_factor`): that is DPP, so cvxpy compiles once and
    each solve only refills the parameters. (``quad_form(w, psd_wrap(P))`` with a Parameter
    ``P``, and ``gamma * risk`` with a Parameter ``gamma``, are not DPP in cvxpy 1.9: they
    recompile on every solve; a ``Parameter(PSD=True)`` eigendecomposes on assignment.)
    """

    def __init__(self, n: int, f: _Feasible, cm: CostModel, cost_aware: bool) -> None:
        self.w, self.u, self.v = _cvx_trades(n)
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
            cp.Maximize(obj), _cvx_constraints(self.w, self.u, self.v, self.wd, f, self.trade_bound)
        )

    def solve(self, p: MVProblem, solver: str) -> tuple[np.ndarray, float]:
        """Fill the parameters from ``p`` and solve with the cvxpy ``solver``.

        The objective is multiplied by ``k = 1 / (|mu|_max + gamma/2 mean(diag Sigma))``
        (through the parameters), which brings daily-return objectives (~1e-4) to order one:
        the solvers' absolute gap tolerances then pin the weights down to ~1e-7 instead of
        ~1e-5 on a flat optimum.

        Returns
        -------
        weights : ndarray of shape (N,)
        planned_cost : float
            The cost term at the solution, from the trade variables (unscaled).
        """
        k = _objective_scale(p)
        self.mu.value = k * p.mean
        self.factor.value = math.sqrt(0.5 * p.gamma * k) * p.factor
        self.wd.value = p.w_drifted
        self.trade_bound.value = self.f.trade_bound(p.w_drifted)
        self.buy.value = k * p.buy
        self.sell.value = k * p.sell
        if self.impact is not None:
            self.impact.value = k * p.impact
        _cvx_solve(self.problem, solver)
        w = self.w.value
        if w is None:
            raise SolverError(f"cvxpy/{solver} returned no solution")
        return np.asarray(w, dtype=np.float64), float(self.cost.value) / k


def _objective_scale(p: MVProblem) -> float:
    """``1 / (|mu|_max + gamma/2 mean(diag Sigma))`` (1 when that is not positive)."""
    scale = float(np.abs(p.mean).max(initial=0.0) + 0.5 * p.gamma * np.mean(np.sum(p.factor * p.factor, axis=1)))
    return 1.0 / scale if scale > 0 and np.isfinite(scale) else 1.0


def _mv_cvxpy_once(p: MVProblem, f: _Feasible, solver: str) -> tuple[np.ndarray, float]:
    """The same problem as :class:`_MVProgram` with constant data (built for one solve)."""
    n = p.mean.shape[0]
    k = _objective_scale(p)
    w, u, v = _cvx_trades(n)
    cost = p.buy @ u + p.sell @ v
    if np.any(p.impact > 0):
        cost = cost + p.impact @ cp.power(u + v, 1.5)
    obj = k * (p.mean @ w) - cp.sum_squares(math.sqrt(0.5 * p.gamma * k) * p.factor.T @ w) - k * cost
    prob = cp.Problem(cp.Maximize(obj), _cvx_constraints(w, u, v, p.w_drifted, f, f.trade_bound(p.w_drifted)))
    _cvx_solve(prob, solver)
    if w.value is None:
        raise SolverError(f"cvxpy/{solver} returned no solution")
    return np.asarray(w.value, dtype=np.float64), float(cost.value)


#: Largest N for which the cvxpy mean-variance path uses a Parameter (DPP) problem: above
#: it, cvxpy's parameter application (cubic in N for an N x N factor) costs more than
#: rebuilding with constant data.
DPP_MAX_ASSETS = 64


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

    def _validate_params(self) -> None:
        super()._validate_params()
        if not (math.isfinite(float(self.gamma)) and self.gamma > 0):
            raise DataValidationError(f"gamma must be positive and finite, got {self.gamma}")
        if self._has_impact and self.solver == "cvxpy-highs":
            raise DataValidationError("HiGHS cannot solve the power-cone impact cost; use 'clarabel' or 'cvxpy-scs'")

    def _solver_order(self) -> list[str]:
        default = ["clarabel", "cvxpy-scs"] if self._has_impact else ["clarabel", "cvxpy-highs"]
        if self.solver == "auto":
            return default
        return [self.solver] + [s for s in default if s != self.solver]

    def _program(self, n: int) -> _MVProgram:
        rates = tuple(np.concatenate(self.cost_model_.rates(n)).tolist())
        key = (n, self.constraints_, rates, bool(self.cost_aware))
        cache: dict[Any, _MVProgram] = self.__dict__.setdefault("_programs", {})
        prog = cache.get(key)
        if prog is None:
            cache.clear()
            cm = self.cost_model_ if self.cost_aware else CostModel(0.0, 0.0, 0.0)
            prog = cache[key] = _MVProgram(n, _Feasible.of(self.constraints_, n), cm, bool(self.cost_aware))
        return prog

    def _mv_problem(self, est: Estimate, wd: np.ndarray) -> MVProblem:
        n = wd.shape[0]
        assert est.cov is not None
        f = _Feasible.of(self.constraints_, n)
        b, s, k = (np.array(r) for r in self.cost_model_.rates(n))
        if not self.cost_aware:
            b, s, k = np.zeros(n), np.zeros(n), np.zeros(n)
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

    def _solve_with(self, solver: str, est: Estimate, wd: np.ndarray) -> _Raw:
        p = self._mv_problem(est, wd)
        if solver == "clarabel":
            sol = ClarabelMVSolver().solve(p)
            return _Raw(sol.weights, sol.planned_cost, solver, {"iterations": sol.iterations})
        name = solver.split("-", 1)[1].upper()
        n = wd.shape[0]
        if n <= DPP_MAX_ASSETS:
            w, cost = self._program(n).solve(p, name)
        else:
            w, cost = _mv_cvxpy_once(p, _Feasible.of(self.constraints_, n), name)
        return _Raw(w, cost, solver)

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


# ============================================================================ mean-CVaR
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

    def _validate_params(self) -> None:
        super()._validate_params()
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
        f = _Feasible.of(self.constraints_, n)
        b, s, _ = self.cost_model_.rates(n)
        if not self.cost_aware:
            b, s = np.zeros(n), np.zeros(n)
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

    def _solve_with(self, solver: str, est: Estimate, wd: np.ndarray) -> _Raw:
        p = self._problem(est, wd)
        if solver == "highs":
            hs = self.__dict__.get("_highs")
            if hs is None or hs.method != self.highs_method:
                hs = self.__dict__["_highs"] = HighsCVaRSolver(method=self.highs_method)
            sol = hs.solve(p)
            return _Raw(sol.weights, sol.planned_cost, "highs", {"method": sol.method, "iterations": sol.iterations})
        return self._solve_cvxpy(p, solver)

    def _solve_cvxpy(self, p: CVaRProblem, solver: str) -> _Raw:
        """The cvxpy formulation (``solver`` like ``"cvxpy-clarabel"``)."""
        name = solver.split("-", 1)[1].upper()
        n, s_ = p.n_assets, p.n_scenarios
        a, lam = p.weights_ar()
        w, u, v = _cvx_trades(n)
        cm = self.cost_model_ if self.cost_aware else CostModel(0.0, 0.0, 0.0)
        cost = _cvx_cost(u, v, cm, n)
        zeta = cp.Variable(name="var")
        z = cp.Variable(s_, nonneg=True, name="excess_loss")
        f = _Feasible(p.lower, p.upper, p.budget, p.max_gross_leverage, p.max_turnover)
        cons = _cvx_constraints(w, u, v, p.w_drifted, f, f.trade_bound(p.w_drifted))
        cons.append(p.scenarios @ w + zeta + z >= 0)
        if p.objective == "min_risk" and p.target_return is not None:
            cons.append(p.mean @ w - cost >= p.target_return)
        k = lam / ((1.0 - p.alpha) * s_)
        obj = -a * (p.mean @ w) + (a + lam) * cost + lam * zeta + k * cp.sum(z)
        prob = cp.Problem(cp.Minimize(obj), cons)
        _cvx_solve(prob, name)
        if w.value is None:
            raise SolverError(f"cvxpy/{name} returned no solution")
        return _Raw(np.asarray(w.value, dtype=np.float64), float(cost.value), solver)

    def _risk(self, est: Estimate, w: np.ndarray, cost: float) -> float:
        assert est.scenarios is not None
        loss = -(est.scenarios @ w + (1.0 - w.sum()) * self.risk_free) + cost
        return empirical_cvar(loss, float(self.alpha))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_highs", None)  # a highspy.Highs instance does not pickle
        return state

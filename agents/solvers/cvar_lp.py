"""The mean-CVaR rebalancing LP (:class:`CVaRProblem`) and its dual as HiGHS arrays.

The problem (Rockafellar & Uryasev 2000, with the diffusion paper's cost-aware formulation)
for ``S`` equally likely scenarios ``r_s`` (rows of ``R``, excess returns over the cash
rate), expected excess returns ``mu``, drifted weights ``w_d`` and linear costs
``c(w) = buy'(w - w_d)^+ + sell'(w - w_d)^-`` is, with ``loss_s = -r_s'w``::

    utility  (a = 1, l = risk_aversion):  max  mu'w - c(w) - l * CVaR_alpha(loss + c(w))
    min_risk (a = 0, l = 1):              min  CVaR_alpha(loss + c(w))
                                          s.t. mu'w - c(w) >= target      (optional)

over the constraint set of :class:`factorgym.constraints.Constraints` (per-asset bounds,
budget, gross leverage, turnover). Costs are deterministic, so by translation invariance
``CVaR(loss + c) = CVaR(loss) + c``: the cost enters the objective once (with weight
``a + l``) and never the ``S`` scenario rows. This is the same optimum as skfolio's
``MeanRisk(risk_measure=CVAR)``, which puts the cost into every scenario row.

Primal LP (variables ``w`` (N), ``zeta`` (VaR), buys ``u`` (N), sells ``v`` (N), optional
``t >= |w|`` (N) for the gross-leverage cap, and scenario excess losses ``z`` (S))::

    min  -a mu'w + (a + l)(buy'u + sell'v) + l zeta + k 1'z        k = l / ((1 - alpha) S)
    s.t. R w + zeta 1 + z >= 0,  z >= 0                            (S rows)
         w - u + v = w_d,  lo <= w <= hi,  u, v >= 0
         budget_lo <= 1'w <= budget_hi,  1'u + 1'v <= max_turnover
         t - w >= 0, t + w >= 0, 1't <= L                          (long/short only)
         mu'w - buy'u - sell'v >= target                            (min_risk with target)

Its dual has one row per small primal variable (``3N + 1``, or ``4N + 1``) and one column
``p_s in [0, k]`` per scenario, so the simplex basis is ``O(N)`` instead of ``O(S + N)``:
in a prototype at 1,000 x 20 HiGHS' simplex took about a quarter of the time on the dual
form that it took on the primal, and on this form the simplex beat HiGHS' interior point at
both 1,000 x 20 and 5,000 x 500 (``benchmarks/bench_optimizers.py``). The primal weights are the row
duals of the dual LP, exact at the optimal basis (a vertex).

Each daily problem has new scenarios, so the LP is rebuilt every day: the small blocks with
scipy.sparse, the dense scenario block written in place into index/value buffers kept from
the previous solve of the same size, and the arrays handed to HiGHS through its numpy
``passModel`` overload (setting ``HighsLp`` fields instead converts element by element,
about 1 s at 5,000 x 500). No warm start: a stale basis was measured to slow the simplex.

:class:`~factorgym.agents.solvers.highs_cvar.HighsCVaRSolver` builds and solves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import highspy
import numpy as np
import scipy.sparse as sp

from factorgym.agents.solvers.errors import SolverError

__all__ = ["CVaRProblem"]

_INF = highspy.kHighsInf


@dataclass(frozen=True)
class CVaRProblem:
    """Data of one mean-CVaR rebalancing LP; ``N`` assets, ``S`` scenarios.

    Parameters
    ----------
    scenarios : ndarray of shape (S, N)
        Equally likely scenario returns, in excess of the cash rate.
    mean : ndarray of shape (N,)
        Expected excess returns.
    w_drifted : ndarray of shape (N,)
        Current drifted risky weights (the costs are charged on ``w - w_drifted``).
    buy, sell : ndarray of shape (N,)
        Proportional cost rates.
    lower, upper : ndarray of shape (N,)
        Finite per-asset bounds.
    budget : (float, float)
        Bounds on ``sum(w)`` (``-inf``/``inf`` for none).
    max_gross_leverage : float or None
        ``sum|w| <= L`` (``None``: not needed, e.g. long-only where the budget covers it).
    max_turnover : float or None
        ``sum|w - w_drifted| <= max_turnover``.
    alpha : float
        CVaR confidence level in (0, 1) (0.95: the mean of the worst 5% of losses).
    objective : {"utility", "min_risk"}
    risk_aversion : float
        ``l`` of the utility objective (ignored for ``min_risk``).
    target_return : float or None
        ``min_risk`` only: lower bound on the expected excess return net of costs.
    """

    scenarios: np.ndarray
    mean: np.ndarray
    w_drifted: np.ndarray
    buy: np.ndarray
    sell: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    budget: tuple[float, float] = (1.0, 1.0)
    max_gross_leverage: float | None = None
    max_turnover: float | None = None
    alpha: float = 0.95
    objective: Literal["utility", "min_risk"] = "utility"
    risk_aversion: float = 1.0
    target_return: float | None = None

    @property
    def n_assets(self) -> int:
        """``N``."""
        return int(self.scenarios.shape[1])

    @property
    def n_scenarios(self) -> int:
        """``S``."""
        return int(self.scenarios.shape[0])

    def weights_ar(self) -> tuple[float, float]:
        """``(a, l)``: weights of the mean and of the CVaR in the objective."""
        if self.objective == "utility":
            return 1.0, float(self.risk_aversion)
        return 0.0, 1.0


@dataclass
class _SmallLP:
    """The primal without the scenario block: ``l_r <= A x <= u_r``, ``l_c <= x <= u_c``."""

    cost: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    a: sp.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray


def _small_lp(p: CVaRProblem) -> _SmallLP:
    """Build the small part of the primal (layout ``[w, zeta, u, v, (t)]``)."""
    n = p.n_assets
    a_w, lam = p.weights_ar()
    use_t = p.max_gross_leverage is not None
    nx = 3 * n + 1 + (n if use_t else 0)
    iw = np.arange(n)
    iz = n
    iu = n + 1 + np.arange(n)
    iv = 2 * n + 1 + np.arange(n)
    it = 3 * n + 1 + np.arange(n)

    cost = np.zeros(nx)
    cost[iw] = -a_w * p.mean
    cost[iz] = lam
    cost[iu] = (a_w + lam) * p.buy
    cost[iv] = (a_w + lam) * p.sell
    col_lo = np.zeros(nx)
    col_hi = np.full(nx, _INF)
    col_lo[iw] = p.lower
    col_hi[iw] = p.upper
    col_lo[iz] = -_INF
    # an asset with zero buy and sell rates leaves (u_j, v_j) free along u_j - v_j = const:
    # bound them (a valid bound on |w_j - w_d_j|) so the LP keeps a bounded optimal face
    free = (p.buy + p.sell) <= 0
    if free.any():
        bound = float(np.maximum(np.abs(p.lower), np.abs(p.upper)).max() + np.abs(p.w_drifted).max() + 1.0)
        col_hi[iu[free]] = bound
        col_hi[iv[free]] = bound

    r_idx: list[np.ndarray] = []
    c_idx: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    row_lo: list[np.ndarray] = []
    row_hi: list[np.ndarray] = []
    n_rows = 0

    def block(rows: np.ndarray, cols: np.ndarray, v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """Append rows ``n_rows + rows`` (``rows`` local indices) with bounds ``lo``, ``hi``."""
        nonlocal n_rows
        r_idx.append(n_rows + rows)
        c_idx.append(cols)
        vals.append(v)
        row_lo.append(np.atleast_1d(np.asarray(lo, dtype=np.float64)))
        row_hi.append(np.atleast_1d(np.asarray(hi, dtype=np.float64)))
        n_rows += row_lo[-1].shape[0]

    ones = np.ones(n)
    zeros_n = np.zeros(n, dtype=np.int64)
    # trades: w - u + v = w_d
    block(
        np.concatenate([iw, iw, iw]),
        np.concatenate([iw, iu, iv]),
        np.concatenate([ones, -ones, ones]),
        p.w_drifted,
        p.w_drifted,
    )
    b_lo, b_hi = p.budget
    if np.isfinite(b_lo) or np.isfinite(b_hi):
        block(zeros_n, iw, ones, np.array(b_lo if np.isfinite(b_lo) else -_INF), np.array(b_hi if np.isfinite(b_hi) else _INF))
    if use_t:
        # t_j - w_j >= 0 (rows 0..N-1), t_j + w_j >= 0 (rows N..2N-1), sum(t) <= L (row 2N)
        block(
            np.concatenate([iw, iw, n + iw, n + iw, np.full(n, 2 * n)]),
            np.concatenate([it, iw, it, iw, it]),
            np.concatenate([ones, -ones, ones, ones, ones]),
            np.concatenate([np.zeros(2 * n), [-_INF]]),
            np.concatenate([np.full(2 * n, _INF), [float(p.max_gross_leverage)]]),  # type: ignore[arg-type]
        )
    if p.max_turnover is not None:
        block(np.zeros(2 * n, dtype=np.int64), np.concatenate([iu, iv]), np.ones(2 * n), np.array(-_INF), np.array(float(p.max_turnover)))
    if p.objective == "min_risk" and p.target_return is not None:
        block(
            np.zeros(3 * n, dtype=np.int64),
            np.concatenate([iw, iu, iv]),
            np.concatenate([p.mean, -p.buy, -p.sell]),
            np.array(float(p.target_return)),
            np.array(_INF),
        )

    a = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(r_idx), np.concatenate(c_idx))), shape=(n_rows, nx)
    )
    a.sort_indices()
    return _SmallLP(cost, col_lo, col_hi, a, np.concatenate(row_lo), np.concatenate(row_hi))


def _dual_lp(p: CVaRProblem, small: _SmallLP, buffers: dict[str, np.ndarray] | None = None) -> _DualArrays:
    """The dual LP in HiGHS' column-wise form (minimisation of minus the dual objective).

    ``buffers`` (a dict kept by the caller) lets consecutive solves of the same size reuse
    the large index/value arrays: at 5,000 x 500 first-touching fresh 20 MB arrays costs more
    than filling them.

    Rows: one equality per small primal column ``j`` (``= cost_j``). Columns: the scenario
    multipliers ``p_s in [0, k]`` (entries ``R_s`` in the ``w`` rows and 1 in the ``zeta``
    row), then one or two multipliers per small primal row (free for equalities), then one or
    two per finite primal column bound.
    """
    s_, n = p.scenarios.shape
    _, lam = p.weights_ar()
    k = lam / ((1.0 - p.alpha) * s_)
    nx = small.cost.shape[0]

    # the small columns first (their arrays are short); the dense scenario block is then
    # written once, in place, into the final arrays
    nnz_p = s_ * (n + 1)
    starts: list[np.ndarray] = []
    index: list[np.ndarray] = []
    value: list[np.ndarray] = []
    col_cost: list[np.ndarray] = []
    col_lo: list[np.ndarray] = []
    col_hi: list[np.ndarray] = []
    nnz = nnz_p

    def add_cols(a_csr: sp.csr_matrix, sign: float, cost: np.ndarray, lo: float, hi: float) -> None:
        """Columns = rows of ``a_csr`` (times ``sign``), one per row."""
        nonlocal nnz
        m = a_csr.shape[0]
        if m == 0:
            return
        starts.append(nnz + a_csr.indptr[:-1])
        index.append(a_csr.indices.astype(np.int32))
        value.append(sign * a_csr.data)
        col_cost.append(cost)
        col_lo.append(np.full(m, lo))
        col_hi.append(np.full(m, hi))
        nnz += a_csr.nnz

    a = small.a
    eq = small.row_lo == small.row_hi
    has_lo = ~eq & np.isfinite(small.row_lo)
    has_hi = ~eq & np.isfinite(small.row_hi)
    # free multipliers of equality rows: cost -rhs; y+ for ">= lo": cost -lo; y- for "<= hi": cost +hi
    add_cols(a[eq], 1.0, -small.row_lo[eq], -_INF, _INF)
    add_cols(a[has_lo], 1.0, -small.row_lo[has_lo], 0.0, _INF)
    add_cols(a[has_hi], -1.0, small.row_hi[has_hi], 0.0, _INF)
    # column bounds: d+ for x >= lo (cost -lo), d- for x <= hi (cost +hi); fixed -> free
    fixed = small.col_lo == small.col_hi
    c_lo = ~fixed & np.isfinite(small.col_lo)
    c_hi = ~fixed & np.isfinite(small.col_hi)
    eye = sp.identity(nx, format="csr")
    add_cols(eye[fixed], 1.0, -small.col_lo[fixed], -_INF, _INF)
    add_cols(eye[c_lo], 1.0, -small.col_lo[c_lo], 0.0, _INF)
    add_cols(eye[c_hi], -1.0, small.col_hi[c_hi], 0.0, _INF)

    n_small = int(sum(c.shape[0] for c in col_cost))
    n_col = s_ + n_small
    # scenario columns p_s: rows 0..N-1 (w) hold R_s, row N (zeta) holds 1
    buf = {} if buffers is None else buffers
    if buf.get("key") != (s_, n, nnz):
        buf.clear()
        buf["key"] = (s_, n, nnz)  # type: ignore[assignment]
        buf["idx"] = np.empty(nnz, dtype=np.int32)
        buf["idx"][:nnz_p].reshape(s_, n + 1)[:] = np.arange(n + 1, dtype=np.int32)
        buf["val"] = np.empty(nnz)
    idx, val = buf["idx"], buf["val"]
    start = np.empty(n_col + 1, dtype=np.int32)
    start[:s_] = np.arange(0, nnz_p, n + 1, dtype=np.int32)
    if n_small:
        start[s_:n_col] = np.concatenate(starts)
    start[n_col] = nnz
    blk = val[:nnz_p].reshape(s_, n + 1)
    blk[:, :n] = p.scenarios
    blk[:, n] = 1.0
    if n_small:
        idx[nnz_p:] = np.concatenate(index)
        val[nnz_p:] = np.concatenate(value)

    return _DualArrays(
        n_col=int(n_col),
        n_row=int(nx),
        col_cost=np.concatenate([np.zeros(s_), *col_cost]),
        col_lower=np.concatenate([np.zeros(s_), *col_lo]),
        col_upper=np.concatenate([np.full(s_, k), *col_hi]),
        row_bound=small.cost,
        start=start,
        index=idx,
        value=val,
    )


@dataclass
class _DualArrays:
    """The dual LP as the arrays of ``Highs.passModel``'s array overload (column-wise)."""

    n_col: int
    n_row: int
    col_cost: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    row_bound: np.ndarray
    start: np.ndarray
    index: np.ndarray
    value: np.ndarray

    def pass_to(self, h: highspy.Highs) -> None:
        """Hand the model to ``h`` (numpy arrays go through without a per-element copy;
        setting ``HighsLp`` fields converts element by element, ~0.5 s at 5,000 x 500)."""
        status = h.passModel(
            self.n_col,
            self.n_row,
            int(self.start[-1]),
            int(highspy.MatrixFormat.kColwise),
            int(highspy.ObjSense.kMinimize),
            0.0,
            self.col_cost,
            self.col_lower,
            self.col_upper,
            self.row_bound,
            self.row_bound,
            self.start[:-1],
            self.index,
            self.value,
            np.zeros(self.n_col, dtype=np.int32),  # integrality: all continuous
        )
        if status == highspy.HighsStatus.kError:
            raise SolverError("HiGHS rejected the mean-CVaR LP")

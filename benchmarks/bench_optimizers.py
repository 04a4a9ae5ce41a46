# ruff: noqa: E402  (BLAS thread variables must be set before numpy is imported)
"""Benchmark the optimizer agents' daily solves against skfolio and against rebuilding.

1. Mean-CVaR with costs (the diffusion paper's asymmetric 7.5 / 12.5 bps, cost-aware
   against drifted weights), ``alpha = 0.95``, utility with ``risk_aversion = 1``,
   long-only and fully invested: ``MeanCVaR.optimize`` (direct HiGHS dual LP, including
   building the LP, polishing and the feasibility check) versus skfolio
   ``MeanRisk(risk_measure=CVAR, objective_function=MAXIMIZE_UTILITY)`` with the same costs
   (symmetric ``transaction_costs`` (b+s)/2 plus linear ``management_fees`` (b-s)/2, which
   is the same objective up to a constant) and, for reference, the agent's own plain cvxpy
   formulation (``solver="cvxpy-clarabel"``). Each repeat is a new day (new scenarios, new drifted
   weights); the solvers run interleaved on the same problem; medians over repeats.
2. Mean-variance at N = 20 and 200, gamma = 100: the agent's direct CLARABEL QP versus the
   cvxpy problem built once with Parameters and re-solved, versus the same cvxpy problem
   rebuilt from scratch each day.

Usage::

    python benchmarks/bench_optimizers.py                  # full run, writes results/optimizers.md
    python benchmarks/bench_optimizers.py --quick          # small repeats, prints only
"""

from __future__ import annotations

import os

# On a shared 2-core machine a multi-threaded BLAS spins against the other jobs (a 200 x 200
# Cholesky took 0.4 s instead of 1 ms): both sides run single-threaded unless set otherwise.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import cvxpy as cp
import highspy
import numpy as np
import skfolio
from skfolio import RiskMeasure
from skfolio.optimization import MeanRisk, ObjectiveFunction

from factorgym.agents.estimators import Estimate, StaticSource
from factorgym.agents.optimizers import MeanCVaR, MeanVariance, empirical_cvar
from factorgym.agents.optimizers.feasibility import Feasible as _Feasible
from factorgym.agents.optimizers.programs import MVProgram as _MVProgram
from factorgym.agents.optimizers.programs import mv_cvxpy_once as _mv_cvxpy_once
from factorgym.agents.solvers import ClarabelMVSolver, HighsCVaRSolver, MVProblem
from factorgym.constraints import Constraints
from factorgym.costs import CostModel

BUY, SELL = 7.5e-4, 12.5e-4
COSTS = CostModel(BUY, SELL)
FULL = Constraints(budget=(1.0, 1.0))
RESULTS = Path(__file__).parent / "results" / "optimizers.md"


def day(s: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One day's scenarios (Student-t, df 4, 1% daily vol, small drifts) and drifted weights."""
    drift = rng.normal(4e-4, 4e-4, n)
    scen = rng.standard_t(4, size=(s, n)) * 0.01 + drift
    return scen, rng.dirichlet(np.ones(n))


def timed(fn: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def cvar_utility(scen: np.ndarray, wd: np.ndarray, w: np.ndarray, lam: float = 1.0, alpha: float = 0.95) -> float:
    """The exact objective both solvers maximise (net of costs), for comparing solutions."""
    c = float(COSTS.cost(w, wd))
    return float(scen.mean(axis=0) @ w - c - lam * (empirical_cvar(-scen @ w, alpha) + c))


def bench_cvar(s: int, n: int, repeats: int, with_cvxpy: bool, seed: int = 0) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    t_ours, t_sk, t_cvx, dw, dw_cvx, gap = [], [], [], [], [], []
    method = HighsCVaRSolver().choose_method(s, n)
    for _ in range(repeats):
        scen, wd = day(s, n, rng)
        ours = MeanCVaR(StaticSource(scenarios=scen), constraints=FULL, cost_model=COSTS)
        sk = MeanRisk(
            risk_measure=RiskMeasure.CVAR,
            objective_function=ObjectiveFunction.MAXIMIZE_UTILITY,
            risk_aversion=1.0,
            cvar_beta=0.95,
            transaction_costs=(BUY + SELL) / 2,
            management_fees=(BUY - SELL) / 2,
            previous_weights=wd,
        )
        ta, wa = timed(lambda ours=ours, scen=scen, wd=wd: ours.optimize(scen[:2], wd).weights)
        tb, wb = timed(lambda sk=sk, scen=scen: sk.fit(scen).weights_)
        t_ours.append(ta)
        t_sk.append(tb)
        dw.append(float(np.abs(wa - wb).max()))
        gap.append(cvar_utility(scen, wd, wa) - cvar_utility(scen, wd, wb))
        if with_cvxpy:
            plain = MeanCVaR(StaticSource(scenarios=scen), constraints=FULL, cost_model=COSTS, solver="cvxpy-clarabel")
            tc, wc = timed(lambda plain=plain, scen=scen, wd=wd: plain.optimize(scen[:2], wd).weights)
            t_cvx.append(tc)
            dw_cvx.append(float(np.abs(wc - wb).max()))
    out: dict[str, object] = {
        "size": f"{s:,} x {n}",
        "repeats": repeats,
        "method": method,
        "ours": float(np.median(t_ours)),
        "skfolio": float(np.median(t_sk)),
        "ratio": float(np.median(np.array(t_ours) / np.array(t_sk))),
        "max_dw": float(max(dw)),
        "min_gain": float(min(gap)),
    }
    if with_cvxpy:
        out["cvxpy"] = float(np.median(t_cvx))
        out["cvxpy_ratio"] = float(np.median(np.array(t_cvx) / np.array(t_sk)))
        out["cvxpy_dw"] = float(max(dw_cvx))
    return out


def bench_methods(s: int, n: int, repeats: int, seed: int = 1) -> dict[str, float]:
    """HiGHS simplex vs IPM (with crossover) on the dual LP; also how far apart their weights are."""
    rng = np.random.default_rng(seed)
    times: dict[str, list[float]] = {"simplex": [], "ipm": []}
    dw = []
    for _ in range(repeats):
        scen, wd = day(s, n, rng)
        ws = []
        for m in times:
            agent = MeanCVaR(StaticSource(scenarios=scen), constraints=FULL, cost_model=COSTS, highs_method=m)  # type: ignore[arg-type]
            t, w = timed(lambda agent=agent, scen=scen, wd=wd: agent.optimize(scen[:2], wd).weights)
            times[m].append(t)
            ws.append(w)
        dw.append(float(np.abs(ws[0] - ws[1]).max()))
    return {**{m: float(np.median(v)) for m, v in times.items()}, "max_dw": float(max(dw))}


def bench_mv(n: int, repeats: int, gamma: float = 100.0, seed: int = 2) -> dict[str, float]:
    """One day's mean-variance solve three ways, on the same data (interleaved).

    ``direct``: ``MeanVariance``'s default path (QP assembled with scipy, CLARABEL called
    directly); ``param``: the cvxpy problem built once with Parameters and re-solved (DPP, no
    recompilation); ``rebuild``: the same cvxpy problem built from scratch with constant
    data. All three solve the same scaled problem with the same tolerances.
    """
    rng = np.random.default_rng(seed)
    days = []
    for _ in range(repeats + 1):
        x = rng.standard_t(5, size=(250, n)) * 0.01 + rng.normal(3e-4, 3e-4, n)
        days.append((x.mean(axis=0), np.cov(x, rowvar=False), rng.dirichlet(np.ones(n))))
    agent = MeanVariance(StaticSource(mean=days[0][0], cov=days[0][1]), gamma, constraints=FULL, cost_model=COSTS)
    feas = _Feasible.of(FULL, n)

    def problem(mu: np.ndarray, cov: np.ndarray, wd: np.ndarray) -> MVProblem:
        return agent._mv_problem(Estimate(mean=mu, cov=cov), wd)

    prog = _MVProgram(n, feas, COSTS, True)
    t_first, _ = timed(lambda: prog.solve(problem(*days[0]), "CLARABEL")[0])  # compiles
    direct = ClarabelMVSolver()
    times: dict[str, list[float]] = {"direct": [], "param": [], "rebuild": []}
    dw = []
    for mu, cov, wd in days[1:]:
        # each variant includes building its problem from (mu, cov, wd)
        ta, wa = timed(lambda mu=mu, cov=cov, wd=wd: direct.solve(problem(mu, cov, wd)).weights)
        tb, wb = timed(lambda mu=mu, cov=cov, wd=wd: prog.solve(problem(mu, cov, wd), "CLARABEL")[0])
        tc, wc = timed(lambda mu=mu, cov=cov, wd=wd: _mv_cvxpy_once(problem(mu, cov, wd), feas, "CLARABEL")[0])
        for k, t in zip(times, (ta, tb, tc), strict=True):
            times[k].append(t)
        dw.append(float(max(np.abs(wa - wb).max(), np.abs(wb - wc).max())))
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {
        "n": n,
        "first": t_first,
        **med,
        "param_speedup": float(np.median(np.array(times["rebuild"]) / np.array(times["param"]))),
        "direct_speedup": float(np.median(np.array(times["param"]) / np.array(times["direct"]))),
        "max_dw": float(max(dw)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few repeats, small sizes only, no file written")
    ap.add_argument("--small-repeats", type=int, default=15)
    ap.add_argument("--large-repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    started = time.strftime("%Y-%m-%d %H:%M")
    small = bench_cvar(1000, 20, 5 if args.quick else args.small_repeats, with_cvxpy=True)
    print(small, flush=True)
    large = None if args.quick else bench_cvar(5000, 500, args.large_repeats, with_cvxpy=False)
    print(large, flush=True)
    meth_small = bench_methods(1000, 20, 3 if args.quick else 7)
    print(meth_small, flush=True)
    meth_large = None if args.quick else bench_methods(5000, 500, 2)
    print(meth_large, flush=True)
    mv = bench_mv(20, 10 if args.quick else 40)
    print(mv, flush=True)
    mv_large = None if args.quick else bench_mv(200, 5)
    print(mv_large, flush=True)

    say("# Optimizer benchmarks")
    say()
    say(f"Run {started} with `python benchmarks/bench_optimizers.py"
        + (" --quick" if args.quick else f" --small-repeats {args.small_repeats} --large-repeats {args.large_repeats}") + "`.")
    say(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())} at the end. "
        "**The CPU was shared with other jobs while this ran: timings are provisional; the "
        "ratios (both sides measured interleaved in the same run) are the figures to read.**")
    say(f"BLAS threads: OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} (set to 1 by the script unless given).")
    say(f"Versions: numpy {np.__version__}, cvxpy {cp.__version__}, highspy {highspy.Highs().version()}, "
        f"skfolio {skfolio.__version__}.")
    say()
    say("## Mean-CVaR daily solve with costs vs skfolio `MeanRisk`")
    say()
    say("Same problem: alpha = 0.95, utility `mu'w - c - 1.0 * CVaR(loss + c)`, long-only, "
        "fully invested, 7.5 / 12.5 bps against random drifted weights; a new day (scenarios "
        "and drifted weights) each repeat. `max |dw|`: largest weight difference to skfolio "
        "over the repeats; `min gain`: smallest (ours - skfolio's) value of the exact objective "
        "(>= 0 means our solution is at least as good where the weights differ).")
    say()
    say("| size (S x N) | repeats | HiGHS method | ours (median s) | skfolio (median s) | ratio ours/skfolio | max abs dw | min gain | target |")
    say("|---|---|---|---|---|---|---|---|---|")
    for res, target in ((small, "<= 0.25"), (large, "<= 0.33")):
        if res is None:
            continue
        say(f"| {res['size']} | {res['repeats']} | {res['method']} | {res['ours']:.4g} | {res['skfolio']:.4g} | "
            f"**{res['ratio']:.3f}** | {res['max_dw']:.2e} | {res['min_gain']:.2e} | {target} |")
    say()
    say(f"Plain cvxpy formulation of the same LP (the agent's `solver=\"cvxpy-clarabel\"` path, cost kept "
        f"out of the scenario rows) at {small['size']}: median {small['cvxpy']:.4g} s, ratio to skfolio "
        f"{small['cvxpy_ratio']:.3f}, max abs dw {small['cvxpy_dw']:.2e}.")
    say()
    say("HiGHS algorithm on the dual LP (medians, whole `optimize` call): "
        f"1,000 x 20: simplex {meth_small['simplex']:.4g} s, IPM {meth_small['ipm']:.4g} s"
        + ("" if meth_large is None else f"; 5,000 x 500 (two solves): simplex {meth_large['simplex']:.4g} s, IPM {meth_large['ipm']:.4g} s")
        + ". `method=\"auto\"` is the simplex. The two algorithms' weights agree to "
        + f"{max(m['max_dw'] for m in (meth_small, meth_large) if m is not None):.1e} (both end at a vertex), "
        "so the differences to skfolio above are skfolio's interior-point tolerance: its "
        "solution is the worse one in its own objective on every day (`min gain` > 0).")
    say()
    say("## Mean-variance daily solve (gamma = 100, costs, long-only, fully invested)")
    say()
    say("Medians per solve, each including building its problem from the day's (mu, Sigma, w_d); "
        "same scaled problem and tolerances for all three.")
    say()
    say("| N | direct CLARABEL QP (`MeanVariance` default) | cvxpy, Parameters, re-solved | cvxpy, rebuilt each day | first Parameter solve (compile) | rebuild / Parameters | Parameters / direct | max abs dw |")
    say("|---|---|---|---|---|---|---|---|")
    for m in (mv, mv_large):
        if m is None:
            continue
        say(f"| {m['n']} | {m['direct']:.4g} | {m['param']:.4g} | {m['rebuild']:.4g} | {m['first']:.4g} | "
            f"**{m['param_speedup']:.1f}x** | **{m['direct_speedup']:.1f}x** | {m['max_dw']:.1e} |")
    say()
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

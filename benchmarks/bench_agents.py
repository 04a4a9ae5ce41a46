"""Agents on the real S&P 500 test path 2019-2022 after costs (figures in results/agents.md).

Usage::

    python benchmarks/bench_agents.py                    # fit (or reuse), train, backtest
    python benchmarks/bench_agents.py --ppo-steps 20000  # a shorter PPO run

Steps, each reused when its output already exists under ``--out``:

1. ``runs/neuralfactors`` and ``runs/diffusion``: the generators with their library default
   configs on the default split (train 1990-2013, validation 2014-2018). The diffusion run
   keeps ``n_moment_samples=500``: its agents use the predictive's fixed 500-scenario draw
   (``draws=shared``), so the mean-variance and mean-CVaR optimisers see the same generated
   scenarios, as in the diffusion paper.
2. ``ppo``: stable-baselines3 PPO trained in the NeuralFactors market (``train_agent``),
   validated on the real validation period.
3. ``backtest``: ``factorgym backtest`` with 7.5 bps buys / 12.5 bps sells on the real test
   path (``backtest_synthetic``: 16 synthetic NeuralFactors paths of 252 days for every agent
   but the diffusion-driven ones, which are too slow to run there on a CPU), for 1/N, sample and Ledoit-Wolf
   mean-variance (252-day window), NeuralFactors- and diffusion-driven mean-variance
   (gamma = 100, the diffusion paper's) and mean-CVaR (alpha = 0.95), and PPO. Every
   optimizer is fully invested and long-only (the spec default), as 1/N is: with daily
   returns a mean-CVaR objective with risk aversion 1 would otherwise sit in cash.

The table printed at the end (and written to ``--out/agents.md``) has each agent's Sharpe
ratio with its 95% stationary-bootstrap interval, and the paired bootstrap interval of
its Sharpe difference to 1/N.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import pandas as pd

from factorgym import __version__, load_dataset
from factorgym.agents.rl import train_agent
from factorgym.app.cli.backtest import backtest_cli
from factorgym.generators.runs import RunSpec, fit_run

ROOT = Path(__file__).resolve().parents[1]


def _load() -> str:
    la = os.getloadavg()
    return f"load average {la[0]:.1f} / {la[1]:.1f} / {la[2]:.1f} on {os.cpu_count()} CPUs"


def _md(df: pd.DataFrame, index: bool = False) -> str:
    """A pipe table (no optional dependency)."""
    d = df.reset_index() if index else df
    cols = [str(c) for c in d.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in d.itertuples(index=False)]
    return "\n".join(lines)


def real_table(s: pd.DataFrame) -> str:
    """The real-path table: Sharpe with its bootstrap interval, the paired difference to 1/N."""
    rows = []
    for name, r in s.iterrows():
        diff = "-"
        if pd.notna(r.get("sharpe_minus_ew_ci_lower")):
            diff = f"{r['sharpe_minus_ew']:+.2f} [{r['sharpe_minus_ew_ci_lower']:+.2f}, {r['sharpe_minus_ew_ci_upper']:+.2f}]"
        rows.append({
            "agent": name,
            "Sharpe [95% CI]": f"{r['sharpe']:.2f} [{r['sharpe_ci_lower']:.2f}, {r['sharpe_ci_upper']:.2f}]",
            "Sharpe - 1/N [95% CI]": diff,
            "ann. return": f"{r['annualised_return']:.1%}",
            "ann. vol": f"{r['annualised_volatility']:.1%}",
            "max DD": f"{r['max_drawdown']:.1%}",
            "turnover/yr": f"{r.get('annualised_turnover', 0.0):.1f}",
            "costs/yr": f"{r.get('annualised_costs', 0.0):.2%}",
        })
    return _md(pd.DataFrame(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "agents")
    ap.add_argument("--ppo-steps", type=int, default=200_000)
    ap.add_argument("--paths", type=int, default=16, help="synthetic NeuralFactors paths")
    ap.add_argument("--bootstrap-reps", type=int, default=2000)
    ap.add_argument("--no-diffusion", action="store_true", help="skip the diffusion-driven agents (slow on CPU)")
    ap.add_argument("--table-only", action="store_true", help="reprint the table from an earlier run's CSV")
    args = ap.parse_args()
    out: Path = args.out
    if args.table_only:
        print(real_table(pd.read_csv(out / "backtest" / "summary_real.csv", index_col=0)))
        return
    panel = load_dataset("sp500")
    print(f"# bench_agents  {time.strftime('%Y-%m-%d %H:%M')}  factorgym {__version__}, {platform.machine()}, {_load()}")
    t0 = time.perf_counter()
    runs = {}
    kinds = {"neuralfactors": {}} if args.no_diffusion else {"neuralfactors": {}, "diffusion": {"n_moment_samples": 500, "num_threads": 1}}
    for kind, params in kinds.items():
        t = time.perf_counter()
        _, rec = fit_run(RunSpec(kind=kind, dataset="sp500", seed=0, params=params), out / "runs" / kind, panel=panel, progress=True)
        runs[kind] = out / "runs" / kind
        print(f"  {kind}: fitted in {rec.get('fit_seconds')} s (this call {time.perf_counter() - t:.0f} s)")
    ppo_dir = out / "ppo"
    if not (ppo_dir / "agent.json").is_file():
        t = time.perf_counter()
        train_agent("ppo", str(runs["neuralfactors"]), out_dir=ppo_dir, total_timesteps=args.ppo_steps, n_envs=16, seed=0,
                    eval_freq=max(args.ppo_steps // 10, 1000), progress=True, overwrite=True)
        print(f"  PPO: {args.ppo_steps} steps in the NeuralFactors market in {time.perf_counter() - t:.0f} s")
    nf = runs["neuralfactors"]
    agents = [
        "equal_weight",
        "mv:sample,label=MV sample",
        "mv:ledoit_wolf,label=MV Ledoit-Wolf",
        f"mv:{nf},label=MV NeuralFactors",
        f"cvar:{nf},label=CVaR NeuralFactors",
    ]
    if "diffusion" in runs:
        d = runs["diffusion"]
        agents += [
            f"mv:{d},draws=shared,label=MV diffusion",
            f"cvar:{d},draws=shared,label=CVaR diffusion",
        ]
    agents.append(f"sb3:{ppo_dir},label=PPO (NeuralFactors market)")
    t = time.perf_counter()
    # real path: every agent. Synthetic NeuralFactors paths: every agent but the diffusion-driven
    # ones (they would sample 500 diffusion scenarios on each of paths x 252 simulated days).
    res = backtest_cli(agents, [], dataset="sp500", out=out / "backtest", n_paths=0, seed=0,
                       bootstrap_reps=args.bootstrap_reps, report=True, progress=True)
    print(f"  real-path backtest: {time.perf_counter() - t:.0f} s ({_load()})")
    t = time.perf_counter()
    syn_agents = [a for a in agents if "diffusion" not in a]
    syn = backtest_cli(syn_agents, [nf], dataset="sp500", out=out / "backtest_synthetic", n_paths=args.paths, horizon=252,
                       seed=0, bootstrap_reps=0, report=True, progress=True).synthetic_summary
    print(f"  synthetic-path backtest: {time.perf_counter() - t:.0f} s; total {time.perf_counter() - t0:.0f} s ({_load()})")
    table = real_table(res.summary)
    print(table)
    (out / "agents.md").write_text(table + "\n")
    if syn is not None and not syn.empty:
        print(_md(syn.round(4), index=True))
        (out / "synthetic.md").write_text(_md(syn.round(4), index=True) + "\n")


if __name__ == "__main__":
    main()

"""Scenario banks: env-steps/s of a bank market against historical replay and the live
generative market, and bank generation rate (path-days/s) with 1 and 2 Ray workers.

For each generator run (``--run``, repeatable: NeuralFactors and diffusion run folders can be
passed by path; default: a Ledoit-Wolf run fitted on sp500 into ``benchmarks/out/banks/lw``):

* **generation**: ``simulate_bank`` of ``--bank-paths`` paths x ``--horizon`` days
  (``contexts="random:train"``, shards of ``--shard-size`` paths), with ``workers=1`` (in this
  process) and ``workers=2`` (Ray tasks on a local Ray started beforehand, so Ray's start-up is
  reported apart). Each Ray figure is given twice: *cold* (the workers load the run and the data)
  and *warm* (a second bank on the same workers). The two banks' shards are checked identical.
* **env-steps/s**: ``VecPortfolioEnv`` with ``--envs`` paths (window 20, softmax actions, random
  actions, auto-reset) over ``HistoricalMarket`` (sp500, horizon ``--horizon``), the live
  ``GenerativeMarket`` (training days) and the ``BankMarket`` of the bank above, all in one run;
  best of ``--repeats`` blocks of at least ``--seconds`` each, wall clock and this process's CPU
  time.

Run (on a quiet machine; figures go to benchmarks/results/banks.md)::

    python benchmarks/bench_banks.py                                   # Ledoit-Wolf, ~1-2 min
    python benchmarks/bench_banks.py --run runs/neuralfactors --run runs/diffusion
    python benchmarks/bench_banks.py --quick                           # smoke check: tiny sizes
"""

from __future__ import annotations

import argparse
import filecmp
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _rate(fn: Callable[[], None], per_call: int, seconds: float, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` rates (units/s) over blocks of at least ``seconds``: (wall, CPU)."""
    best_wall = best_cpu = 0.0
    for _ in range(repeats):
        n = 0
        t, c = time.perf_counter(), time.process_time()
        while True:
            fn()
            n += 1
            if time.perf_counter() - t >= seconds:
                break
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        best_wall = max(best_wall, n * per_call / wall)
        best_cpu = max(best_cpu, n * per_call / max(cpu, 1e-9))
    return best_wall, best_cpu


def env_rate(market, n_envs: int, seconds: float, repeats: int) -> tuple[float, float]:
    from factorgym.envs.vec_env import VecPortfolioEnv

    vec = VecPortfolioEnv(market, n_envs, seed=0, window=20, action_mode="softmax")
    vec.reset()
    actions = np.random.default_rng(0).uniform(-1, 1, (64, n_envs, vec.action_space.shape[0])).astype(np.float32)
    i = iter(range(10**12))

    def step() -> None:
        vec.step(actions[next(i) % 64])

    for _ in range(5):
        step()
    return _rate(step, n_envs, seconds, repeats)


def _same_banks(a: Path, b: Path) -> bool:
    fa = sorted(p.relative_to(a) for p in a.rglob("*.parquet"))
    return fa == sorted(p.relative_to(b) for p in b.rglob("*.parquet")) and all(
        filecmp.cmp(a / f, b / f, shallow=False) for f in fa
    )


def bench_run(run: Path, args: argparse.Namespace, work: Path) -> list[str]:
    from factorgym.data import Split
    from factorgym.envs import GenerativeMarket, HistoricalMarket
    from factorgym.envs.markets.bank import BankMarket
    from factorgym.generators.banks import simulate_bank
    from factorgym.generators.runs import load_run
    from factorgym.io import load_source
    from factorgym.parallel import ray_session

    gen, record, name = load_run(run)
    panel = load_source((record or {}).get("spec", {}).get("dataset", "sp500"))
    P, H = args.bank_paths, args.horizon  # noqa: N806
    kw = {"n_paths": P, "horizon": H, "contexts": "random:train", "seed": 0, "shard_size": args.shard_size,
          "history": 20, "progress": False}  # fmt: skip
    lines = [f"\n## {gen.kind} ({run}), N = {panel.N}, min_history {gen.min_history}\n"]
    t = time.perf_counter()
    simulate_bank(run, out=work / f"{name}-w1", workers=1, **kw)
    gen_rows = [("1 (this process)", P * H / (time.perf_counter() - t))]
    t = time.perf_counter()
    with ray_session(num_cpus=2):
        ray_start = time.perf_counter() - t
        for label, out in (("2 Ray workers, cold", f"{name}-w2"), ("2 Ray workers, warm", f"{name}-w2b")):
            t = time.perf_counter()
            simulate_bank(run, out=work / out, workers=2, **kw)
            gen_rows.append((label, P * H / (time.perf_counter() - t)))
    same = _same_banks(work / f"{name}-w1", work / f"{name}-w2") and _same_banks(work / f"{name}-w1", work / f"{name}-w2b")
    lines.append(f"Bank generation, {P} paths x {H} days, shards of {args.shard_size} (local Ray start-up {ray_start:.1f} s, "
                 f"not counted; shards identical across worker counts: {same}):\n")  # fmt: skip
    lines.append("| workers | path-days/s |\n| --- | ---: |")
    lines += [f"| {k} | {v:,.0f} |" for k, v in gen_rows]
    train_end = Split().train_end
    markets = [
        ("historical replay", HistoricalMarket(panel, horizon=H)),
        (f"live {gen.kind} market", GenerativeMarket(gen, panel, horizon=H, last_day=train_end)),
        (f"{gen.kind} bank market ({P} paths)", BankMarket(work / f"{name}-w1", panel)),
    ]
    lines.append(f"\nEnv-steps/s, VecPortfolioEnv with {args.envs} paths (best of {args.repeats} blocks of >= {args.seconds:g} s):\n")
    lines.append("| market | wall clock | CPU time |\n| --- | ---: | ---: |")
    rates = {}
    for label, m in markets:
        wall, cpu = env_rate(m, args.envs, args.seconds, args.repeats)
        rates[label] = wall
        lines.append(f"| {label} | {wall:,.0f} | {cpu:,.0f} |")
    hist, bank = rates["historical replay"], rates[markets[2][0]]
    lines.append(f"\nBank market / historical replay (wall clock): {bank / hist:.2f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, action="append", help="generator run folder (repeatable; default: fit Ledoit-Wolf)")
    ap.add_argument("--envs", type=int, default=64, help="paths of the VecPortfolioEnv")
    ap.add_argument("--bank-paths", type=int, default=256)
    ap.add_argument("--horizon", type=int, default=252)
    ap.add_argument("--shard-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check that the script runs")
    ap.add_argument("--keep", type=Path, help="keep the banks in this folder (default: a temporary one)")
    args = ap.parse_args()
    if args.quick:
        args.bank_paths, args.horizon, args.shard_size, args.repeats, args.seconds = 8, 10, 4, 1, 0.2
        args.envs = min(args.envs, 8)
    runs = args.run
    if not runs:
        from factorgym.generators.runs import RunSpec, fit_run

        lw = ROOT / "benchmarks" / "out" / "banks" / "lw"
        fit_run(RunSpec(kind="ledoit_wolf", params={"window": 63}), lw, progress=False)
        runs = [lw]
    print(f"# bench_banks: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}, numpy {np.__version__}, python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}")  # fmt: skip
    print("# " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    with tempfile.TemporaryDirectory(prefix="bench_banks-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for run in runs:
            print("\n".join(bench_run(run, args, work)), flush=True)
    print(f"\n# load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

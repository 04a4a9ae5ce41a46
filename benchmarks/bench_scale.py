# ruff: noqa: E402  (thread variables must be set before numpy / torch are imported)
"""Universe size: the pipeline's costs at N = 20, 100, 500 assets (issue 17, item 3).

Per N, in a fresh subprocess (so that peak memory is that N's alone), on a synthetic factor
panel (``synthetic_factor_panel``, ``--days`` days, time-varying volatility) written to CSV
and read back through the CSV reader:

* **CSV read** time (``factorgym.io.read_panel``);
* **NeuralFactors training**: ``--steps`` steps (validation only at the last step); the step
  time is the median gap between consecutive step callbacks (validation excluded), and the
  fit's total wall time; **peak memory** is this process's maximum resident set size
  (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, CPU only: numpy and torch together;
  no GPU, so no ``torch.cuda`` figures) after the fit, and after the whole N;
* **simulation**: ``simulate_bank`` of ``--bank-paths`` paths x ``--horizon`` days (one
  worker): wall seconds per 1,000 path-days;
* **env-steps/s**: ``VecPortfolioEnv`` with ``--envs`` paths (window 20, softmax actions,
  random actions) on historical replay, on the live NeuralFactors market and on the bank;
* **MV solve**: ``mv:ledoit_wolf`` (252-day window: Ledoit-Wolf estimate + CLARABEL QP) per
  day; **CVaR solve**: ``MeanCVaR`` on 1,000 scenarios (drawn from the NeuralFactors
  predictive beforehand; HiGHS LP only) per day; medians over ``--days-solved`` days;
* **evaluation**: ``evaluate_generator`` of NeuralFactors and Ledoit-Wolf on the test part
  with ``day_stride=10``, 200 samples per day, 10 simulated one-year paths.

One thread everywhere (BLAS, torch). Run (figures go into benchmarks/results/scale.md)::

    python benchmarks/bench_scale.py                     # N = 20, 100, 500 (~15 min on 2 cores)
    python benchmarks/bench_scale.py --n 20 --quick      # smoke check
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _rate(fn, per_call: int, seconds: float) -> float:
    n, t = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if time.perf_counter() - t >= seconds:
            return n * per_call / (time.perf_counter() - t)


def env_rate(market, n_envs: int, seconds: float) -> float:
    from factorgym.envs.vec_env import VecPortfolioEnv

    vec = VecPortfolioEnv(market, n_envs, seed=0, window=20, action_mode="softmax")
    vec.reset()
    acts = np.random.default_rng(0).uniform(-1, 1, (16, n_envs, vec.action_space.shape[0])).astype(np.float32)
    i = iter(range(10**12))

    def step() -> None:
        vec.step(acts[next(i) % 16])

    for _ in range(3):
        step()
    return _rate(step, n_envs, seconds)


def one(n: int, args: argparse.Namespace, work: Path) -> dict[str, float]:
    import torch

    torch.set_num_threads(1)
    from factorgym.agents.estimators import StaticSource
    from factorgym.agents.optimizers import MeanCVaR
    from factorgym.app.agent_factory import agent_from_spec
    from factorgym.data import Split
    from factorgym.data.synthetic import synthetic_factor_panel
    from factorgym.envs import GenerativeMarket, HistoricalMarket
    from factorgym.envs.markets.bank import BankMarket
    from factorgym.generators.banks import simulate_bank
    from factorgym.generators.baselines import LedoitWolfGenerator
    from factorgym.generators.evaluation.evaluate import EvaluationOptions, evaluate_generator
    from factorgym.generators.neuralfactors import NeuralFactors
    from factorgym.io import read_panel, write_panel

    out: dict[str, float] = {"N": n}
    syn = synthetic_factor_panel(T=args.days, N=n, seed=0, time_varying_vol=True, n_is_samples=16)
    csv = work / f"panel{n}.csv"
    write_panel(syn.panel, csv)
    t = time.perf_counter()
    panel = read_panel(csv)
    out["csv_read_s"] = time.perf_counter() - t
    d = panel.dates
    split = Split(str(d[int(0.7 * len(d))].date()), str(d[int(0.85 * len(d))].date()))
    out["rss_before_fit_mb"] = _maxrss_mb()

    stamps: list[float] = []
    nf = NeuralFactors(max_steps=args.steps, val_every=args.steps, num_threads=1, inference_threads=1)
    t = time.perf_counter()
    nf.fit(panel, split, progress=False, callback=lambda s, logs: stamps.append(time.perf_counter()))
    out["nf_fit_s"] = time.perf_counter() - t
    gaps = np.diff(stamps[:-1])  # the last step includes the validation
    out["nf_step_s"] = float(np.median(gaps)) if len(gaps) else float("nan")
    out["rss_after_fit_mb"] = _maxrss_mb()
    art = work / f"nf{n}.zip"
    nf.save(art)

    lw = LedoitWolfGenerator(window=63).fit(panel, split)
    t = time.perf_counter()
    rng = np.random.default_rng(0)
    opts = EvaluationOptions(n_samples=200, sim_paths=10, progress=False, day_stride=10)
    evaluate_generator(nf, panel, split, "test", rng=rng, options=opts)
    out["eval_nf_s"] = time.perf_counter() - t
    t = time.perf_counter()
    evaluate_generator(lw, panel, split, "test", rng=rng, options=opts)
    out["eval_lw_s"] = time.perf_counter() - t

    P, H = args.bank_paths, args.horizon  # noqa: N806
    t = time.perf_counter()
    bank = simulate_bank(art, panel, n_paths=P, horizon=H, out=work / f"bank{n}", split=split, history=20,
                         shard_size=P, progress=False)  # fmt: skip
    out["sim_s_per_1k_path_days"] = (time.perf_counter() - t) / (P * H) * 1000

    out["env_replay"] = env_rate(HistoricalMarket(panel, horizon=H), args.envs, args.seconds)
    out["env_live_nf"] = env_rate(GenerativeMarket(nf, panel, horizon=H, last_day=split.train_end), args.envs, args.seconds)
    out["env_bank"] = env_rate(BankMarket(bank, panel), args.envs, args.seconds)

    R = np.asarray(panel.returns)  # noqa: N806
    days = np.linspace(max(300, nf.min_history), len(R) - 2, args.days_solved).astype(int)
    mv = agent_from_spec("mv:ledoit_wolf").agent.policy
    times = []
    for k in days:
        w = np.r_[np.full(n, 0.9 / n), 0.1]
        t = time.perf_counter()
        mv.act(R[k - 252 : k], w)
        times.append(time.perf_counter() - t)
    out["mv_solve_s"] = float(np.median(times[1:]))
    times = []
    for k in days:
        scen = nf.predict_window(R[k - nf.min_history : k]).sample(1000, np.random.default_rng(int(k)))
        cv = MeanCVaR(StaticSource(scenarios=scen), alpha=0.95, risk_aversion=1.0)
        w = np.r_[np.full(n, 0.9 / n), 0.1]
        t = time.perf_counter()
        cv.act(R[k - 2 : k], w)
        times.append(time.perf_counter() - t)
    out["cvar_solve_s"] = float(np.median(times))
    out["rss_end_mb"] = _maxrss_mb()
    return out


COLS = [
    ("N", "N", "{:.0f}"),
    ("csv_read_s", "CSV read (s)", "{:.2f}"),
    ("nf_step_s", "NF train step (s)", "{:.3f}"),
    ("nf_fit_s", "NF fit, {steps} steps incl. data + 1 validation (s)", "{:.1f}"),
    ("rss_after_fit_mb", "peak RSS after NF fit (MB)", "{:,.0f}"),
    ("sim_s_per_1k_path_days", "NF simulation (s per 1,000 path-days)", "{:.3f}"),
    ("env_replay", "replay env-steps/s", "{:,.0f}"),
    ("env_live_nf", "live NF env-steps/s", "{:,.0f}"),
    ("env_bank", "NF bank env-steps/s", "{:,.0f}"),
    ("mv_solve_s", "MV ledoit_wolf per day (ms)", "ms"),
    ("cvar_solve_s", "CVaR 1,000 scen. per day (ms)", "ms"),
    ("eval_nf_s", "evaluate NF (s)", "{:.1f}"),
    ("eval_lw_s", "evaluate LW (s)", "{:.1f}"),
    ("rss_end_mb", "peak RSS, whole N (MB)", "{:,.0f}"),
]


def table(rows: list[dict[str, float]], steps: int) -> str:
    head = [c[1].format(steps=steps) for c in COLS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(COLS)]
    for r in rows:
        cells = [f"{r[k] * 1000:,.1f}" if f == "ms" else f.format(r[k]) for k, _, f in COLS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, action="append", help="asset counts (default 20, 100, 500)")
    ap.add_argument("--days", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=10, help="NeuralFactors training steps")
    ap.add_argument("--bank-paths", type=int, default=64)
    ap.add_argument("--horizon", type=int, default=63)
    ap.add_argument("--envs", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--days-solved", type=int, default=6)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check that the script runs")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.days, args.steps, args.bank_paths, args.horizon, args.envs, args.seconds, args.days_solved = 700, 3, 8, 10, 8, 0.2, 3
    if args.one is not None:
        with tempfile.TemporaryDirectory(prefix="bench_scale-") as tmp:
            print("RESULT " + json.dumps(one(args.one, args, Path(tmp))), flush=True)
        return
    ns = args.n or [20, 100, 500]
    print(f"# bench_scale: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}, numpy {np.__version__}, python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")  # fmt: skip
    print("# " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), flush=True)
    rows = []
    for n in ns:
        cmd = [sys.executable, __file__, "--one", str(n), "--days", str(args.days), "--steps", str(args.steps),
               "--bank-paths", str(args.bank_paths), "--horizon", str(args.horizon), "--envs", str(args.envs),
               "--seconds", str(args.seconds), "--days-solved", str(args.days_solved)]  # fmt: skip
        t = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")]
        if res.returncode or not line:
            print(f"N={n} failed (rc {res.returncode}):\n{res.stderr[-3000:]}", flush=True)
            continue
        rows.append(json.loads(line[0][7:]))
        print(f"# N={n} done in {time.perf_counter() - t:.0f} s: {rows[-1]}", flush=True)
    print()
    print(table(rows, args.steps))
    print(f"\n# load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

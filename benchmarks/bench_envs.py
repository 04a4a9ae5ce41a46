"""Throughput of the portfolio environments (env-steps per second), 20 assets.

Measures, on the embedded sp500 panel (20 stocks, window 20, softmax actions, log reward):

* ``VecPortfolioEnv`` over a ``HistoricalMarket`` (64 and 256 paths);
* ``VecPortfolioEnv`` over a ``GenerativeMarket`` driven by the tests' Gaussian AR(1) generator
  (``tests/helpers_env.py``) and by the Ledoit-Wolf baseline (if importable);
* the scalar ``PortfolioEnv`` over both markets;
* a per-step breakdown at 64 paths: generator sampling vs the env's own work (action map,
  accounting, reward, observation, infos);
* optionally (``--neuralfactors``) NeuralFactors built with its default architecture and
  trained for only 2 steps (untrained weights: the speed does not depend on training);
* ``--parts nf``: only the market driven by a *trained* NeuralFactors artifact
  (``--nf-model``, default ``benchmarks/out/neuralfactors/nf_sp500.zip``): the simulator's
  ``PathSimulator.step`` and the full ``VecPortfolioEnv`` step at 64 paths, wall clock and
  process CPU time (median of ``--repeats`` blocks), with the load average.

Run::

    python benchmarks/bench_envs.py                  # ~1 minute
    python benchmarks/bench_envs.py --neuralfactors  # + ~2 minutes (fit of 2 steps, 315-day windows)
    python benchmarks/bench_envs.py --parts nf --repeats 7   # trained NeuralFactors market only

Figures are best-of-``--repeats`` wall-clock rates; on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test generator lives in tests/helpers_env.py


def _rate(fn: Callable[[], None], n_calls: int, per_call: int, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` rates of ``per_call * n_calls`` units: ``(wall clock, CPU time)``.

    On a shared machine the CPU-time rate (``time.process_time``: this process's own CPU
    seconds) is the better estimate of what an idle machine gives; both are reported.
    """
    best_wall = best_cpu = np.inf
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        for _ in range(n_calls):
            fn()
        best_wall = min(best_wall, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
    units = per_call * n_calls
    return units / best_wall, units / max(best_cpu, 1e-9)


def _time_per_call(fn: Callable[[], object], n_calls: int, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n_calls):
            fn()
        best = min(best, time.perf_counter() - t)
    return best / n_calls


def bench_vec(market, n_envs: int, steps: int, repeats: int, **kw) -> tuple[float, float]:
    from factorgym.envs.vec_env import VecPortfolioEnv

    vec = VecPortfolioEnv(market, n_envs, seed=0, window=20, **kw)
    vec.reset()
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (64, n_envs, vec.action_space.shape[0])).astype(np.float32)
    i = iter(range(10**12))

    def step() -> None:
        vec.step(actions[next(i) % 64])

    for _ in range(20):
        step()
    return _rate(step, steps, n_envs, repeats)


def bench_scalar(market, steps: int, repeats: int) -> tuple[float, float]:
    from factorgym.envs import PortfolioEnv

    env = PortfolioEnv(market, window=20)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (64, env.action_space.shape[0])).astype(np.float32)
    i = iter(range(10**12))

    def step() -> None:
        _, _, te, tr, _ = env.step(actions[next(i) % 64])
        if te or tr:
            env.reset()

    for _ in range(20):
        step()
    return _rate(step, steps, 1, repeats)


def breakdown(market, generator, n_envs: int, repeats: int) -> dict[str, float]:
    """Microseconds per vec step at ``n_envs`` paths, by component."""
    from factorgym.envs.accounting import settle_day
    from factorgym.envs.vec_env import VecPortfolioEnv

    vec = VecPortfolioEnv(market, n_envs, seed=0, window=20)
    vec.reset()
    eng = vec.engine
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (n_envs, eng.mapper.action_dim)).astype(np.float32)
    wd = eng.w_drifted.copy()
    r = rng.normal(0, 0.01, (n_envs, eng.n_assets))
    wealth = np.ones(n_envs)
    out: dict[str, float] = {}
    out["validate + map action"] = _time_per_call(lambda: eng.mapper(eng.mapper.validate(a, n_envs), wd), 500, repeats)
    w = eng.mapper(eng.mapper.validate(a, n_envs), wd)
    out["accounting (costs, wealth, drift)"] = _time_per_call(lambda: settle_day(wealth, w, wd, r, eng._cost_fn), 500, repeats)
    out["reward"] = _time_per_call(lambda: eng.reward_fn(r[:, 0], wealth), 500, repeats)
    out["observation"] = _time_per_call(eng.observe, 500, repeats)
    out["infos (64 dicts)" if n_envs == 64 else "infos"] = _time_per_call(eng.infos, 500, repeats)
    if generator is not None:
        window = np.asarray(market.panel.returns[-generator.min_history :])
        sim = generator.simulator_window(np.broadcast_to(window, (n_envs, *window.shape)).copy(), np.random.default_rng(0).spawn(n_envs))
        out["generator PathSimulator.step"] = _time_per_call(sim.step, 200, repeats)
    out["full vec step (wall clock)"] = 1.0 / bench_vec(market, n_envs, 300, repeats)[0] * n_envs
    return {k: v * 1e6 for k, v in out.items()}


def _median_times(fn: Callable[[], object], n_calls: int, repeats: int) -> tuple[float, float]:
    """Median over ``repeats`` blocks of ``n_calls`` calls: seconds per call ``(wall, CPU)``."""
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        for _ in range(n_calls):
            fn()
        wall.append((time.perf_counter() - t) / n_calls)
        cpu.append((time.process_time() - c) / n_calls)
    return float(np.median(wall)), float(np.median(cpu))


def bench_nf_trained(model_path: Path, n_envs: int, repeats: int) -> None:
    """A trained NeuralFactors market: simulator step and full vec step, wall and CPU, medians."""
    import os

    import torch

    from factorgym import Split, load_dataset
    from factorgym.envs import GenerativeMarket
    from factorgym.envs.vec_env import VecPortfolioEnv
    from factorgym.generators.base import load_generator

    gen = load_generator(model_path)
    panel = load_dataset("sp500")
    test = Split().part(panel, "test")
    market = GenerativeMarket(gen, test, horizon=252)
    print(f"NeuralFactors artifact {model_path} (min_history {gen.min_history}), torch {torch.__version__}, "
          f"torch threads {torch.get_num_threads()} (simulator: {getattr(gen.config, 'inference_threads', None)})")
    window = np.asarray(test.returns[-gen.min_history :])
    sim = gen.simulator_window(np.broadcast_to(window, (n_envs, *window.shape)).copy(), np.random.default_rng(0).spawn(n_envs))
    for _ in range(10):
        sim.step()
    load0 = os.getloadavg()
    s_wall, s_cpu = _median_times(sim.step, 40, repeats)
    vec = VecPortfolioEnv(market, n_envs, seed=0, window=20)
    vec.reset()
    actions = np.random.default_rng(0).uniform(-1, 1, (64, n_envs, vec.action_space.shape[0])).astype(np.float32)
    i = iter(range(10**12))

    def step() -> None:
        vec.step(actions[next(i) % 64])

    for _ in range(10):
        step()
    v_wall, v_cpu = _median_times(step, 40, repeats)
    load1 = os.getloadavg()
    print(f"\nTrained NeuralFactors market, {n_envs} paths (median of {repeats} blocks of 40 steps; "
          f"load average {load0[0]:.2f} -> {load1[0]:.2f}):\n")
    print("| quantity | wall clock | CPU time |\n| --- | ---: | ---: |")
    print(f"| `PathSimulator.step` (ms per day, all paths) | {s_wall * 1e3:.2f} | {s_cpu * 1e3:.2f} |")
    print(f"| full `VecPortfolioEnv.step` (ms) | {v_wall * 1e3:.2f} | {v_cpu * 1e3:.2f} |")
    print(f"| env-steps/s | {n_envs / v_wall:,.0f} | {n_envs / v_cpu:,.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--neuralfactors", action="store_true", help="also time NeuralFactors (tiny 2-step fit)")
    ap.add_argument("--parts", choices=("all", "nf"), default="all", help="nf: only the trained NeuralFactors market")
    ap.add_argument("--nf-model", type=Path, default=ROOT / "benchmarks" / "out" / "neuralfactors" / "nf_sp500.zip")
    args = ap.parse_args()
    if args.parts == "nf":
        bench_nf_trained(args.nf_model, 64, args.repeats)
        return
    from helpers_env import fitted_generator

    from factorgym import Split, load_dataset
    from factorgym.envs import GenerativeMarket, HistoricalMarket

    panel = load_dataset("sp500")
    split = Split()
    test = split.part(panel, "test")
    rows: list[tuple[str, str, tuple[float, float]]] = []
    hist = HistoricalMarket(panel, horizon=252)
    ar = fitted_generator(split.part(panel, "train"))
    gen_ar = GenerativeMarket(ar, panel, horizon=252)
    rep = args.repeats
    print(f"# bench_envs: {platform.processor() or platform.machine()}, numpy {np.__version__}, python {platform.python_version()}")
    rows.append(("historical", "VecPortfolioEnv, 64 paths", bench_vec(hist, 64, 1000, rep)))
    rows.append(("historical", "VecPortfolioEnv, 256 paths", bench_vec(hist, 256, 300, rep)))
    rows.append(("historical", "PortfolioEnv (scalar)", bench_scalar(hist, 3000, rep)))
    rows.append(("generative: Gaussian AR(1) test generator", "VecPortfolioEnv, 64 paths", bench_vec(gen_ar, 64, 500, rep)))
    rows.append(("generative: Gaussian AR(1) test generator", "PortfolioEnv (scalar)", bench_scalar(gen_ar, 2000, rep)))
    lw = None
    try:
        from factorgym.generators.baselines import LedoitWolfGenerator

        lw = LedoitWolfGenerator(window=63).fit(panel, split, progress=False)
        gen_lw = GenerativeMarket(lw, panel, horizon=252)
        rows.append(("generative: Ledoit-Wolf baseline (63 days)", "VecPortfolioEnv, 64 paths", bench_vec(gen_lw, 64, 200, rep)))
        rows.append(("generative: Ledoit-Wolf baseline (63 days)", "PortfolioEnv (scalar)", bench_scalar(gen_lw, 500, rep)))
    except ImportError as exc:  # pragma: no cover - baselines not installed
        print(f"(Ledoit-Wolf baseline unavailable: {exc})")
    nf_rows: dict[str, float] = {}
    if args.neuralfactors:
        from factorgym.generators.neuralfactors import NeuralFactors

        t = time.perf_counter()
        nf = NeuralFactors(max_steps=2, warmup_steps=1, val_every=1, checkpoint_every=10**6).fit(panel, split, progress=False)
        print(f"NeuralFactors: 2-step fit in {time.perf_counter() - t:.0f} s, min_history {nf.min_history}")
        gen_nf = GenerativeMarket(nf, test, horizon=252)
        rows.append(("generative: NeuralFactors (default size, untrained)", "VecPortfolioEnv, 64 paths", bench_vec(gen_nf, 64, 5, 1)))
        nf_rows = breakdown(gen_nf, nf, 64, 1)

    print("\n| market | environment | env-steps/s (wall clock) | env-steps/s (CPU time) |\n| --- | --- | ---: | ---: |")
    for m, e, (wall, cpu) in rows:
        print(f"| {m} | {e} | {wall:,.0f} | {cpu:,.0f} |")
    for name, market, gen in (("historical", hist, None), ("Gaussian AR(1) test generator", gen_ar, ar), ("Ledoit-Wolf baseline", GenerativeMarket(lw, panel, horizon=252) if lw else None, lw)):
        if market is None:
            continue
        b = breakdown(market, gen, 64, rep)
        print(f"\nPer vec step at 64 paths, {name} (microseconds; components timed in isolation):\n")
        print("| component | us |\n| --- | ---: |")
        for k, v in b.items():
            print(f"| {k} | {v:,.0f} |")
    if nf_rows:
        print("\nPer vec step at 64 paths, NeuralFactors (microseconds):\n")
        print("| component | us |\n| --- | ---: |")
        for k, v in nf_rows.items():
            print(f"| {k} | {v:,.0f} |")


if __name__ == "__main__":
    main()

"""PPO trained in a simulated market vs PPO trained on historical replay (CleanRL-style).

What it shows: the same PPO (same budget, network, environment and seed) trained twice,
once in a *generator market* (episodes start on random train-split days, conditioned on the
real history up to that day, then roll forward on the generator's own samples) and once on
*historical replay* (episodes replay random windows of the real train rows, 1990-2013 by
default). Both final policies, and 1/N under the same costs, are then run over the whole
real validation period (2014-2018) and the whole real test period (2019+); the table prints
log-wealth and Sharpe of each. No model selection happens here, so neither period is used
to pick anything.

One seed on a small budget is an anecdote, not evidence: PPO's result moves a lot from
seed to seed. Run several seeds (``--seeds 0 1 2 3 4``) and a real budget; the script then
prints the mean and standard deviation over seeds and the per-seed paired difference.

Usage::

    python examples/sim_vs_replay_ppo.py --total-timesteps 200000 --seeds 0 1 2
    python examples/sim_vs_replay_ppo.py --generator neuralfactors --total-timesteps 500000

Smoke convention (every script in ``examples/``): ``--smoke`` runs the whole script with a
tiny budget, writes only into a temporary folder and exits with status 0;
``tests/test_examples.py`` runs each example that way.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import factorgym as fg
from factorgym.agents.rl import MarketSpec, evaluate_policy_on

PARTS = ("val", "test")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generator", default="ledoit_wolf", help="generator kind fitted for the simulated market")
    p.add_argument("--dataset", default="sp500", help="embedded dataset name or CSV/Parquet path")
    p.add_argument("--out", default="runs/examples/sim_vs_replay", help="folder for the generator run and agents")
    p.add_argument("--total-timesteps", type=int, default=100_000)
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--horizon", type=int, default=252, help="days per training episode")
    p.add_argument("--window", type=int, default=20, help="days of returns the agent observes")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--smoke", action="store_true", help="tiny budget, temporary folder (tests/test_examples.py)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="factorgym-smoke-") if args.smoke else None
    out = Path(tmp.name) if tmp else Path(args.out)
    ppo = {"learning_rate": 3e-4, "n_steps": 256, "batch_size": 256, "n_epochs": 10, "policy_kwargs": {"net_arch": [64, 64]}}
    gen_params: dict = {}
    if args.smoke:
        args.total_timesteps, args.n_envs, args.horizon = 256, 2, 32
        ppo.update(n_steps=64, batch_size=64, n_epochs=1, policy_kwargs={"net_arch": [8, 8]})
        if args.generator == "neuralfactors":
            gen_params = {"max_steps": 20, "hidden": 16, "n_layers": 1, "k": 4, "warmup_steps": 5}

    # 1. the simulated market: a generator fitted on the train split (validation for its own selection)
    panel, _ = fg.read_source(args.dataset)
    run_dir = out / f"generator-{args.generator}"
    spec = fg.RunSpec(kind=args.generator, dataset=args.dataset, params=gen_params)
    fg.fit_run(spec, run_dir, panel=panel, progress=not args.smoke, replace=True)
    sources = {"simulated": str(run_dir), "replay": "historical"}

    # 2. PPO in each market, same budget and seed; 3. every final policy on the real val and test periods
    env = fg.EnvConfig(window=args.window, action_mode="softmax", reward="log")
    results: dict[tuple[str, int], dict[str, tuple[float, float]]] = {}
    for seed in args.seeds:
        for label, source in sources.items():
            agent = fg.train_agent(
                "ppo", MarketSpec(source, dataset=args.dataset, horizon=args.horizon).build(panel), out_dir=out / f"ppo-{label}-{seed}",
                total_timesteps=args.total_timesteps, n_envs=args.n_envs, seed=seed, env_kwargs=env, algo_kwargs=ppo,
                eval_freq=10**9, eval_episodes=1, overwrite=True,
            )  # fmt: skip
            markets = agent.markets
            results[(label, seed)] = {}
            for part in PARTS:
                e = evaluate_policy_on(agent.model, markets.heldout(part, horizon=None), env=agent.meta).episodes.iloc[0]
                results[(label, seed)][part] = (float(e.log_wealth), float(e.sharpe))
    ew_env = fg.EnvConfig(window=args.window, action_mode="weights")  # 1/N under the same costs
    ew = {}
    for part in PARTS:
        e = evaluate_policy_on(fg.EqualWeight(), markets.heldout(part, horizon=None), env=ew_env).episodes.iloc[0]
        ew[part] = (float(e.log_wealth), float(e.sharpe))
    results.update({("1/N", seed): ew for seed in args.seeds})

    # 4. the table: mean (and sd over seeds) of log-wealth and Sharpe on each real period
    n = len(args.seeds)

    def cell(label: str, part: str, i: int, digits: int) -> str:
        x = np.array([results[(label, s)][part][i] for s in args.seeds])
        return f"{x.mean():+.{digits}f}" + (f" +/-{x.std(ddof=1):.{digits}f}" if n > 1 else "")

    print(f"\nPPO, {args.total_timesteps:,} steps per run, seeds {args.seeds}; generator: {args.generator}")
    print(f"{'trained on':<12}" + "".join(f"{p + ' log-wealth':>22}{p + ' Sharpe':>16}" for p in PARTS))
    for label in (*sources, "1/N"):
        print(f"{label:<12}" + "".join(f"{cell(label, p, 0, 4):>22}{cell(label, p, 1, 2):>16}" for p in PARTS))
    diffs = [results[("simulated", s)]["test"][0] - results[("replay", s)]["test"][0] for s in args.seeds]
    print(f"\ntest log-wealth, simulated minus replay, per seed: {', '.join(f'{d:+.4f}' for d in diffs)}")
    if n < 5 or args.smoke:
        print(f"CAUTION: {n} seed(s) on a {args.total_timesteps:,}-step budget is not evidence that either market trains "
              "better. Run e.g. --seeds 0 1 2 3 4 --total-timesteps 200000 and look at the spread over seeds.")  # fmt: skip
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()

"""PPO trained in a generator market, selected and evaluated on real history (CleanRL-style).

What it does, top to bottom:

1. Gets a market simulator: loads a generator run folder (``--run runs/NAME``, written by
   ``factorgym fit``) or fits a quick baseline generator (``--generator ledoit_wolf``, a
   fraction of a second) on the train split (1990-2013 by default).
2. Trains stable-baselines3 PPO for ``--total-timesteps`` environment steps in that
   generator market: episodes start at random days of the train split, conditioned on the
   real history up to that day, and roll forward on the generator's own samples. Every
   ``--eval-freq`` steps the policy is evaluated on fixed episodes of the *real*
   validation period (2014-2018) and the best model is kept.
3. Evaluates the final and the best model deterministically over the whole real validation
   period, next to an equal-weight portfolio under the same costs, and in the generator
   market itself, and prints the synthetic-to-real gap.

The test period (2019+) is never touched here: report final numbers on it with the saved
agent (``factorgym.agents.rl.load_agent``) once you have made your choices on validation.

Usage::

    python examples/ppo_generator_market.py --total-timesteps 200000
    python examples/ppo_generator_market.py --run runs/neuralfactors --total-timesteps 1000000
    tensorboard --logdir runs/agents/ppo_example/tb

Smoke convention (every script in ``examples/``): ``--smoke`` runs the whole script with a
tiny budget, writes only into a temporary folder and exits with status 0;
``tests/test_examples.py`` runs each example that way.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from factorgym.agents.baselines import EqualWeight
from factorgym.agents.rl import (
    EnvConfig,
    MarketSpec,
    evaluate_policy_on,
    load_agent,
    policy_gap,
    train_agent,
)
from factorgym.generators.runs import RunSpec, fit_run


@dataclass
class Args:
    run: str | None = None
    """a generator run folder (factorgym fit); default: fit --generator now"""
    generator: str = "ledoit_wolf"
    """generator kind fitted when --run is not given (a fast baseline)"""
    dataset: str = "sp500"
    """dataset to fit the generator on (embedded name or CSV/Parquet path)"""
    out: str = "runs/agents/ppo_example"
    """agent folder (model.zip, agent.json, tb/, checkpoints/)"""
    total_timesteps: int = 200_000
    """environment steps to train for"""
    n_envs: int = 8
    """paths stepped together"""
    horizon: int = 252
    """days per training episode"""
    window: int = 20
    """days of returns the agent observes"""
    learning_rate: float = 3e-4
    n_steps: int = 256
    """PPO rollout length per path"""
    batch_size: int = 256
    n_epochs: int = 10
    net_arch: int = 64
    """hidden units of the two policy and value layers"""
    eval_freq: int = 20_000
    """environment steps between validation evaluations"""
    eval_episodes: int = 5
    seed: int = 0
    smoke: bool = False
    """tiny budget, temporary output folder (used by tests/test_examples.py)"""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in dataclasses.fields(Args):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            parser.add_argument(flag, action="store_true")
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            parser.add_argument(flag, type=kind, default=f.default)
    return Args(**vars(parser.parse_args()))


def main() -> None:
    args = parse_args()
    tmp = None
    if args.smoke:
        tmp = tempfile.TemporaryDirectory(prefix="factorgym-smoke-")
        args = dataclasses.replace(
            args, out=str(Path(tmp.name) / "agent"), total_timesteps=512, n_envs=2, horizon=32, n_steps=64,
            batch_size=64, n_epochs=2, net_arch=16, eval_freq=256, eval_episodes=2,
        )
    out = Path(args.out)

    # 1. the market simulator
    run = args.run
    if run is None:
        run = str(out.parent / f"{out.name}-generator")
        t0 = time.perf_counter()
        _, record = fit_run(RunSpec(kind=args.generator, dataset=args.dataset, seed=args.seed), run, progress=False)
        print(f"generator {args.generator}: {record['status']} in {time.perf_counter() - t0:.1f}s -> {run}")

    # 2. PPO in the generator market, validated on the real validation period
    env_config = EnvConfig(window=args.window, action_mode="softmax", reward="log")
    agent = train_agent(
        "ppo",
        MarketSpec(run, horizon=args.horizon),
        out_dir=out,
        total_timesteps=args.total_timesteps,
        n_envs=args.n_envs,
        seed=args.seed,
        env_kwargs=env_config,
        algo_kwargs={
            "learning_rate": args.learning_rate, "n_steps": args.n_steps, "batch_size": args.batch_size,
            "n_epochs": args.n_epochs, "policy_kwargs": {"net_arch": [args.net_arch, args.net_arch]},
        },
        eval_freq=args.eval_freq,
        eval_episodes=args.eval_episodes,
        progress=not args.smoke,
        overwrite=True,
    )
    rec = agent.meta.record
    print(f"trained {rec['num_timesteps']:,} steps in {rec['seconds']['learn']:.1f}s "
          f"({rec['train_steps_per_second']:,.0f} steps/s) -> {agent.path}")

    # 3. deterministic evaluation over the whole real validation period, and in the simulator
    markets = agent.markets
    real = markets.heldout("val", horizon=None)
    best, _ = load_agent(agent.path, which="best")
    baseline_env = dataclasses.replace(agent.meta.env, action_mode="weights")
    rows = {
        "PPO (final)": evaluate_policy_on(agent.model, real, env=agent.meta),
        "PPO (best on val)": evaluate_policy_on(best, real, env=agent.meta),
        "equal weight": evaluate_policy_on(EqualWeight(), real, env=baseline_env),
    }
    synthetic = evaluate_policy_on(agent.model, markets.train, n_episodes=4 if args.smoke else 64, seed=args.seed + 1,
                                   env=agent.meta)  # fmt: skip
    period = f"{real.panel.dates[real.first_row].date()}..{real.panel.dates[real.last_row].date()}"
    print(f"\nreal validation period {period} (the best model was selected on it: optimistic)")
    print(f"{'policy':<20}{'log-wealth':>12}{'ann. growth':>13}{'Sharpe':>9}{'max DD':>9}{'turnover/day':>14}")
    for name, res in rows.items():
        e = res.episodes.iloc[0]
        print(f"{name:<20}{e.log_wealth:>+12.4f}{e.ann_log_growth:>+13.4f}{e.sharpe:>+9.2f}"
              f"{e.max_drawdown:>9.1%}{e.mean_turnover:>14.4f}")  # fmt: skip
    gap = policy_gap(synthetic, rows["PPO (final)"])
    print(f"\nsynthetic-to-real gap of the final policy ({len(synthetic.episodes)} simulated "
          f"{args.horizon}-day episodes vs the real period): annual log growth "
          f"{gap['ann_log_growth_synthetic']:+.4f} vs {gap['ann_log_growth_real']:+.4f} "
          f"(gap {gap['ann_log_growth_gap']:+.4f}), Sharpe {gap['sharpe_synthetic']:+.2f} vs "
          f"{gap['sharpe_real']:+.2f} (gap {gap['sharpe_gap']:+.2f})")  # fmt: skip
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()

"""PPO with Ray RLlib on a factorgym market, evaluated on real history (CleanRL-style).

What it does, top to bottom:

1. Starts Ray: a local Ray by default, or the cluster at ``--address`` (``RAY_ADDRESS`` works
   too), and registers the factorgym env with RLlib (``factorgym.envs.rllib``). RLlib builds
   the env in every env runner from a plain ``env_config`` dict: the market (``historical``
   replay of the train split, or a generator run folder written by ``factorgym fit``) and
   any ``EnvConfig`` option. The observation is the env's ``Dict`` observation flattened
   (RLlib's default models take a flat ``Box``), so nothing needs wrapping.
2. Trains RLlib PPO for ``--iterations`` iterations with ``--env-runners`` env runners of
   ``--envs-per-runner`` envs each (episodes start on random days of the train split).
3. Runs the trained policy deterministically over the whole real validation period
   (2014-2018), next to a near-equal-weight policy (softmax logits +1 on every asset, -1 on
   cash) under the same costs.

The test period (2019+) is never touched here.

Usage::

    python examples/rllib_ppo.py --iterations 20
    python examples/rllib_ppo.py --market runs/neuralfactors --env-runners 8 --address auto

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

import numpy as np

from factorgym.envs.rllib import make_rllib_env, register_rllib_env


@dataclass
class Args:
    market: str = "historical"
    """'historical' (replay of the train split) or a generator run folder (factorgym fit)"""
    address: str | None = None
    """Ray cluster address ('auto' for the cluster this machine belongs to); default a local Ray"""
    iterations: int = 20
    """PPO training iterations"""
    env_runners: int = 1
    envs_per_runner: int = 4
    horizon: int = 252
    """days per training episode"""
    window: int = 20
    """days of returns the agent observes"""
    train_batch: int = 4000
    """environment steps per iteration"""
    minibatch: int = 500
    epochs: int = 5
    lr: float = 3e-4
    hidden: int = 64
    """units of the two hidden layers"""
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


def run_policy(env, act) -> tuple[float, float]:
    """Log-wealth and daily Sharpe (annualised) of ``act(obs) -> action`` over one episode of ``env``."""
    obs, _ = env.reset(seed=0)
    rets, done = [], False
    while not done:
        obs, _, term, trunc, info = env.step(act(obs))
        rets.append(info["net_return"])
        done = term or trunc
    r = np.asarray(rets)
    return float(np.log1p(r).sum()), float(r.mean() / r.std(ddof=1) * np.sqrt(252))


def main() -> None:
    args = parse_args()
    tmp = None
    if args.smoke:
        tmp = tempfile.TemporaryDirectory(prefix="factorgym-smoke-")
        args = dataclasses.replace(args, iterations=1, env_runners=1, envs_per_runner=2, horizon=32, window=10,
                                   train_batch=256, minibatch=64, epochs=1, hidden=16)  # fmt: skip
        # RLlib writes a log folder under ~/ray_results (a hard-coded default); keep it in the temp folder
        import ray.tune.trainable.trainable as trainable

        trainable.DEFAULT_STORAGE_PATH = tmp.name

    import ray
    import torch
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    # 1. Ray (local, or a cluster: --address auto / RAY_ADDRESS) and the env
    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=2 if args.smoke else None, include_dashboard=False, log_to_driver=False)
    name = register_rllib_env()
    env_config = {"market": args.market, "horizon": args.horizon, "window": args.window}

    # 2. PPO
    config = (
        PPOConfig()
        .environment(name, env_config=env_config)
        .env_runners(num_env_runners=args.env_runners, num_envs_per_env_runner=args.envs_per_runner)
        .training(train_batch_size_per_learner=args.train_batch, minibatch_size=args.minibatch,
                  num_epochs=args.epochs, lr=args.lr)  # fmt: skip
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[args.hidden, args.hidden]))
        .debugging(seed=args.seed)
    )
    algo = config.build_algo()
    t0 = time.perf_counter()
    for i in range(args.iterations):
        res = algo.train()
        runners = res["env_runners"]
        print(f"iteration {i + 1:>3}: {int(runners['num_env_steps_sampled_lifetime']):>8,} env steps, "
              f"episode return {runners.get('episode_return_mean', float('nan')):+.4f}")  # fmt: skip
    print(f"trained in {time.perf_counter() - t0:.1f}s on {args.env_runners} env runner(s) x {args.envs_per_runner} env(s)")

    # 3. deterministic evaluation over the real validation period (the Gaussian's mean action)
    module = algo.get_module()

    def ppo(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = module.forward_inference({"obs": torch.as_tensor(obs[None], dtype=torch.float32)})
        mean = out["action_dist_inputs"][0, : env.action_space.shape[0]].numpy()
        return np.clip(mean, -1.0, 1.0).astype(np.float32)

    env = make_rllib_env({**env_config, "part": "val", "horizon": None, "random_start": False})
    n = env.action_space.shape[0] - 1
    ew = np.r_[np.ones(n), -1.0].astype(np.float32)
    market = env.unwrapped.market
    d = market.panel.dates
    print(f"\nreal validation period {d[market.first_row].date()}..{d[market.last_row].date()}")
    print(f"{'policy':<22}{'log-wealth':>12}{'Sharpe':>9}")
    for label, act in (("PPO (RLlib)", ppo), ("near equal weight", lambda obs: ew)):
        lw, sharpe = run_policy(env, act)
        print(f"{label:<22}{lw:>+12.4f}{sharpe:>+9.2f}")
    algo.stop()
    ray.shutdown()
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()

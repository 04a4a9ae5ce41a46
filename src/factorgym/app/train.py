"""``factorgym train-agent``: train a stable-baselines3 agent in a market named on the
command line (``historical`` or a generator run folder) and print a summary."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from factorgym.agents.rl import ALGOS, MarketSpec, TrainedAgent, train_agent
from factorgym.app.specs import parse_params
from factorgym.costs import CostModel
from factorgym.errors import FactorGymError

__all__ = ["train_agent_cli"]


def train_agent_cli(
    algo: str,
    market: str = "historical",
    out: str | Path | None = None,
    timesteps: int = 100_000,
    seed: int = 0,
    n_envs: int = 8,
    dataset: str | None = None,
    train_end: str | None = None,
    val_end: str | None = None,
    horizon: int = 252,
    window: int = 20,
    action_mode: str = "softmax",
    reward: str = "log",
    buy_cost: float = 7.5e-4,
    sell_cost: float = 12.5e-4,
    eval_freq: int = 10_000,
    eval_episodes: int = 5,
    params: Sequence[str] | None = None,
    env_params: Sequence[str] | None = None,
    progress: bool = True,
    overwrite: bool = False,
    torch_threads: int | None = 1,
    echo: Callable[[str], None] = print,
) -> TrainedAgent:
    """Body of ``factorgym train-agent ALGO --market RUN_OR_historical --out DIR ...``.

    Plain arguments, so the CLI only declares options. ``params`` are SB3 keyword arguments
    and ``env_params`` further environment options, both as ``key=value`` with JSON values
    (``--set learning_rate=3e-4 --set 'policy_kwargs={"net_arch": [64, 64]}'``,
    ``--env temperature=0.5``). Prints a summary through ``echo``; user errors raise
    :class:`~factorgym.errors.FactorGymError` (the CLI turns them into exit status 2).
    """
    algo = str(algo).lower()
    if algo not in ALGOS:
        raise FactorGymError(f"unknown RL algorithm {algo!r}; expected one of {', '.join(ALGOS)}")
    env_kw: dict[str, Any] = {
        "window": window, "action_mode": action_mode, "reward": reward,
        "cost_model": CostModel(buy=buy_cost, sell=sell_cost),
    }  # fmt: skip
    extra = parse_params(list(env_params or []))
    clash = sorted(set(extra) & {"window", "action_mode", "reward"})
    if clash:
        raise FactorGymError(f"set {', '.join(clash)} with their own options, not --env")
    if "cost_model" in extra or "constraints" in extra or "features" in extra:
        for k in ("cost_model", "constraints", "features"):
            if k in extra and not isinstance(extra[k], Mapping | type(None)):
                raise FactorGymError(f"--env {k}= must be a JSON object")
    env_kw.update(extra)
    spec = MarketSpec(market, dataset=dataset, train_end=train_end, val_end=val_end, horizon=horizon)
    if out is None:
        tag = "historical" if spec.is_historical else Path(market).name
        out = Path("runs") / "agents" / f"{algo}-{tag}-s{seed}"
    agent = train_agent(
        algo, spec, out_dir=out, total_timesteps=timesteps, n_envs=n_envs, seed=seed, env_kwargs=env_kw,
        algo_kwargs=parse_params(list(params or [])), eval_freq=eval_freq, eval_episodes=eval_episodes,
        progress=progress, overwrite=overwrite, torch_threads=torch_threads,
    )
    r = agent.meta.record
    ev = r["evaluation"]
    lines = [
        f"{algo} on {r['market'].get('kind')} market ({Path(market).name if not spec.is_historical else 'historical'}): "
        f"{r['num_timesteps']:,} steps in {r['seconds']['learn']:.1f}s ({r['train_steps_per_second']:,.0f} steps/s)",
    ]
    if ev["best_timestep"] is not None:
        last = ev["last"]
        lines.append(
            f"validation ({len(ev['start_rows'])} x {ev['horizon']}-day episodes): final mean log-wealth "
            f"{last['mean_log_wealth']:+.4f}, best {ev['best_mean_log_wealth']:+.4f} at step {ev['best_timestep']:,}"
        )
    lines.append(f"saved -> {agent.path}  (tensorboard --logdir {agent.path / 'tb'})")
    for ln in lines:
        echo(ln)
    return agent

"""``factorgym train-agent``: train a stable-baselines3 agent in a market named on the
command line (``historical`` or a generator run folder) and print a summary.

The command line takes costs in basis points; :func:`train_agent_cli` takes them as
fractions of the value traded, like the rest of the Python API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from factorgym.app.cli.common import BuyBpsOpt, SellBpsOpt, app, echo_wide
from factorgym.errors import FactorGymError

if TYPE_CHECKING:
    from factorgym.agents.rl import TrainedAgent

__all__ = ["train_agent", "train_agent_cli"]

#: Environment options with their own command-line options (not settable with --env).
_OWN_OPTIONS = ("window", "action_mode", "reward")
#: Environment options whose --env value must be a JSON object.
_OBJECT_OPTIONS = ("cost_model", "constraints", "features", "randomization")


def _env_kwargs(window: int, action_mode: str, reward: str, buy_cost: float, sell_cost: float, env_params: Sequence[str]) -> dict[str, Any]:
    from factorgym.app.specs import parse_params
    from factorgym.costs import CostModel

    env_kw: dict[str, Any] = {
        "window": window, "action_mode": action_mode, "reward": reward,
        "cost_model": CostModel(buy=buy_cost, sell=sell_cost),
    }  # fmt: skip
    extra = parse_params(list(env_params))
    clash = sorted(set(extra) & set(_OWN_OPTIONS))
    if clash:
        raise FactorGymError(f"set {', '.join(clash)} with their own options, not --env")
    for k in _OBJECT_OPTIONS:
        if k in extra and not isinstance(extra[k], Mapping | type(None)):
            raise FactorGymError(f"--env {k}= must be a JSON object")
    env_kw.update(extra)
    return env_kw


def _mixture(texts: Sequence[str]) -> list[tuple[str, float]]:
    """``SOURCE=WEIGHT`` texts as (source, weight) pairs (the weight defaults to 1)."""
    pairs = []
    for text in texts:
        source, sep, weight = str(text).rpartition("=")
        if not sep:
            source, weight = str(text), "1"
        try:
            w = float(weight)
        except ValueError:
            raise FactorGymError(f"--mixture {text!r}: the weight after '=' must be a number") from None
        pairs.append((source.strip(), w))
    return pairs


def _summary(agent: TrainedAgent, algo: str, market: str) -> list[str]:
    from factorgym.app.specs import market_label

    r = agent.meta.record
    ev = r["evaluation"]
    lines = [
        f"{algo} on {r['market'].get('kind')} market ({market_label(market)}): "
        f"{r['num_timesteps']:,} steps in {r['seconds']['learn']:.1f}s ({r['train_steps_per_second']:,.0f} steps/s)",
    ]
    if ev["best_timestep"] is not None:
        last = ev["last"]
        lines.append(
            f"validation ({len(ev['start_rows'])} x {ev['horizon']}-day episodes): final mean log-wealth "
            f"{last['mean_log_wealth']:+.4f}, best {ev['best_mean_log_wealth']:+.4f} at step {ev['best_timestep']:,}"
        )
    lines.append(f"saved -> {agent.path}  (tensorboard --logdir {agent.path / 'tb'})")
    return lines


def train_agent_cli(
    algo: str,
    *,
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
    device: str = "cpu",
    normalize_obs: bool = False,
    normalize_reward: bool = False,
    eval_stride: int | None = None,
    mixture: Sequence[str] | None = None,
    anchor_every: int | None = None,
    echo: Callable[[str], None] = print,
) -> TrainedAgent:
    """Body of ``factorgym train-agent ALGO --market RUN_OR_historical --out DIR ...``.

    ``market`` is a market source (:func:`factorgym.app.specs.market_source`);
    ``buy_cost``/``sell_cost`` are **fractions** of the value traded (``7.5e-4`` = 7.5 bps).
    ``params`` are SB3 keyword arguments and ``env_params`` further environment options,
    both as ``key=value`` with JSON values (``--set learning_rate=3e-4 --set
    'policy_kwargs={"net_arch": [64, 64]}'``, ``--env temperature=0.5``). Prints a summary
    through ``echo``. ``mixture`` (``SOURCE=WEIGHT`` texts) trains in a
    :class:`~factorgym.envs.markets.mixture.MixtureMarket` of those sources instead of
    ``market``; ``anchor_every`` restarts generator paths from real history every K days.
    User errors raise :class:`~factorgym.errors.FactorGymError` (the CLI
    turns them into exit status 2).
    """
    from factorgym.agents.rl import ALGOS, MarketSpec
    from factorgym.agents.rl import train_agent as train
    from factorgym.app.specs import market_label, market_source, parse_params

    algo = str(algo).lower()
    if algo not in ALGOS:
        raise FactorGymError(f"unknown RL algorithm {algo!r}; expected one of {', '.join(ALGOS)}")
    env_kw = _env_kwargs(window, action_mode, reward, buy_cost, sell_cost, env_params or ())
    pairs = _mixture(mixture) if mixture else None
    spec = MarketSpec(
        "mixture" if pairs else market_source(market), dataset=dataset, train_end=train_end, val_end=val_end,
        horizon=horizon, mixture=pairs, anchor_every=anchor_every,
    )  # fmt: skip
    if out is None:
        out = Path("runs") / "agents" / f"{algo}-{market_label(market)}-s{seed}"
    agent = train(
        algo, spec, out_dir=out, total_timesteps=timesteps, n_envs=n_envs, seed=seed, env_kwargs=env_kw,
        algo_kwargs=parse_params(list(params or [])), eval_freq=eval_freq, eval_episodes=eval_episodes,
        progress=progress, overwrite=overwrite, torch_threads=torch_threads, device=device,
        normalize_obs=normalize_obs, normalize_reward=normalize_reward, eval_stride=eval_stride,
    )  # fmt: skip
    for ln in _summary(agent, algo, "+".join(src for src, _ in pairs) if pairs else market):
        echo(ln)
    return agent


@app.command("train-agent")
def train_agent(
    algo: Annotated[str, typer.Argument(help="ppo, sac, a2c or td3 (stable-baselines3).")],
    market: Annotated[str, typer.Option("--market", help="historical (train-split replay), a generator run folder or a scenario bank folder (factorgym simulate).")] = "historical",
    out: Annotated[Path | None, typer.Option(help="Agent folder (default runs/agents/ALGO-MARKET-sSEED).")] = None,
    timesteps: Annotated[int, typer.Option(help="Total environment steps.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Seed of the environments and the algorithm.")] = 0,
    n_envs: Annotated[int, typer.Option(help="Parallel paths in the batched env.")] = 8,
    dataset: Annotated[str | None, typer.Option(help="Dataset (default: the generator run's, or sp500).")] = None,
    train_end: Annotated[str | None, typer.Option(help="Last training date.")] = None,
    val_end: Annotated[str | None, typer.Option(help="Last validation date.")] = None,
    horizon: Annotated[int, typer.Option(help="Training episode length in days.")] = 252,
    window: Annotated[int, typer.Option(help="Days of returns in the observation.")] = 20,
    action_mode: Annotated[str, typer.Option(help="softmax, simplex, long_short or residual (a bounded tilt around 1/N or --env base_weights).")] = "softmax",
    reward: Annotated[str, typer.Option(help="log, differential_sharpe, mean_variance, drawdown or cvar.")] = "log",
    buy_bps: BuyBpsOpt = 7.5,
    sell_bps: SellBpsOpt = 12.5,
    eval_freq: Annotated[int, typer.Option(help="Steps between validation evaluations.")] = 10_000,
    eval_episodes: Annotated[int, typer.Option(help="Validation episodes per evaluation.")] = 5,
    params: Annotated[list[str] | None, typer.Option("--set", help="SB3 keyword argument key=value (JSON), repeatable.")] = None,
    env_params: Annotated[list[str] | None, typer.Option("--env", help="Further env option key=value (JSON), repeatable.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing agent folder.")] = False,
    device: Annotated[str, typer.Option(help="Torch device of the policy: cpu, auto or cuda.")] = "cpu",
    normalize_obs: Annotated[bool, typer.Option("--normalize-obs", help="Normalise observations (statistics saved with the model, frozen on real data).")] = False,
    normalize_reward: Annotated[bool, typer.Option("--normalize-reward", help="Scale rewards by a running return std during training.")] = False,
    eval_stride: Annotated[int | None, typer.Option(help="Validation episodes start every K days (rolling windows) instead of --eval-episodes spread starts.")] = None,
    mixture: Annotated[list[str] | None, typer.Option("--mixture", help="Train in a mixture market: SOURCE=WEIGHT (historical or a run folder), repeatable; replaces --market.")] = None,
    anchor_every: Annotated[int | None, typer.Option(help="Restart generator paths from real history every K days.")] = None,
) -> None:
    """Train a stable-baselines3 agent in a generator market or on historical replay, validating on real data."""
    from factorgym.app.specs import bps_to_fraction

    train_agent_cli(
        algo, market=market, out=out, timesteps=timesteps, seed=seed, n_envs=n_envs, dataset=dataset,
        train_end=train_end, val_end=val_end, horizon=horizon, window=window, action_mode=action_mode, reward=reward,
        buy_cost=bps_to_fraction(buy_bps), sell_cost=bps_to_fraction(sell_bps), eval_freq=eval_freq,
        eval_episodes=eval_episodes, params=params, env_params=env_params, progress=True, overwrite=overwrite,
        device=device, normalize_obs=normalize_obs, normalize_reward=normalize_reward, eval_stride=eval_stride,
        mixture=mixture, anchor_every=anchor_every, echo=echo_wide,
    )  # fmt: skip

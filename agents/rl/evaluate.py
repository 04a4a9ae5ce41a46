"""Running a policy over episodes of a market and scoring each: :func:`evaluate_policy_on`,
:class:`PolicyEvaluation`, the synthetic-to-real :func:`policy_gap` and the fixed
validation starts (:func:`evaluation_starts`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from gymnasium import spaces

from factorgym.agents.rl.persistence import AgentMeta
from factorgym.envs.config import EnvConfig
from factorgym.envs.markets import Market
from factorgym.envs.rollout import rollout
from factorgym.envs.vec_env import VecPortfolioEnv
from factorgym.errors import CheckpointError, FactorGymError
from factorgym.generators.base import torch_threads as torch_thread_limit

if TYPE_CHECKING:
    pass

__all__ = [
    "PERIODS_PER_YEAR", "PolicyEvaluation", "check_policy_spaces", "evaluate_policy_on", "evaluation_starts", "policy_gap",
    "rolling_starts", "score_rollout", "score_run",
]  # fmt: skip


#: Trading days a year (annualisation).
PERIODS_PER_YEAR = 252


def evaluation_starts(market: Market, config: EnvConfig | Mapping[str, Any] | None, n_episodes: int) -> list[int]:
    """``n_episodes`` start rows evenly spaced over ``market``'s allowed start range.

    The first episode starts on the first allowed day, the last as late as the market's
    horizon allows; duplicates (a range shorter than ``n_episodes``) are dropped. With
    ``n_episodes * horizon`` about the period's length, the episodes cover it end to end.
    """
    if int(n_episodes) < 1:
        raise FactorGymError(f"n_episodes must be at least 1, got {n_episodes}")
    cfg = EnvConfig.coerce(config)
    lo, hi = market.open(1, cfg.observation_config).start_range()
    return sorted({int(round(x)) for x in np.linspace(lo, hi, int(n_episodes))})


def rolling_starts(market: Market, config: EnvConfig | Mapping[str, Any] | None, stride: int) -> list[int]:
    """Start rows every ``stride`` days over ``market``'s allowed start range (rolling,
    overlapping windows when ``stride`` is shorter than the horizon): more validation
    episodes than disjoint ones, for checkpoint selection that can tell checkpoints apart.
    The last allowed start is always included."""
    if isinstance(stride, bool) or not isinstance(stride, int | np.integer) or stride < 1:
        raise FactorGymError(f"eval_stride must be a whole number of days >= 1, got {stride!r}")
    cfg = EnvConfig.coerce(config)
    lo, hi = market.open(1, cfg.observation_config).start_range()
    return sorted({*range(lo, hi + 1, int(stride)), hi})


@dataclass(frozen=True)
class PolicyEvaluation:
    """Per-episode results of a policy in a market (see :func:`evaluate_policy_on`).

    Attributes
    ----------
    episodes : pandas.DataFrame
        One row per episode: ``start_date``, ``episode_seed``, ``days``, ``log_wealth``
        (``log(W_T / W_0)``, after costs), ``ann_log_growth`` (``log_wealth * 252 / days``)
        and the fields of :func:`~factorgym.metrics.portfolio_metrics` over the episode's days
        (``sharpe``: annualised, in excess of the environment's daily cash rate;
        ``annualised_return``, ``max_drawdown``, ``mean_turnover``, ``total_costs``...).
    net_returns : tuple of ndarray
        Each episode's daily net returns ``R``.
    market : str
        The market's description.
    """

    episodes: pd.DataFrame
    net_returns: tuple[np.ndarray, ...]
    market: str

    @property
    def log_wealth(self) -> np.ndarray:
        """Per-episode log-wealth ``(n_episodes,)``."""
        return self.episodes["log_wealth"].to_numpy()

    @property
    def sharpe(self) -> np.ndarray:
        """Per-episode annualised Sharpe ratios ``(n_episodes,)`` (NaN: fewer than 2 days or no volatility)."""
        return self.episodes["sharpe"].to_numpy()

    def summary(self) -> dict[str, float]:
        """Means (and spreads) over episodes."""
        e = self.episodes
        lw = e["log_wealth"].to_numpy()
        return {
            "n_episodes": float(len(e)),
            "mean_days": float(e["days"].mean()),
            "mean_log_wealth": float(lw.mean()),
            "std_log_wealth": float(lw.std(ddof=1)) if len(lw) > 1 else float("nan"),
            "median_log_wealth": float(np.median(lw)),
            "mean_ann_log_growth": float(e["ann_log_growth"].mean()),
            "mean_sharpe": float(np.nanmean(e["sharpe"])) if e["sharpe"].notna().any() else float("nan"),
            "mean_max_drawdown": float(e["max_drawdown"].mean()),
            "mean_turnover": float(e["mean_turnover"].mean()),
            "mean_total_cost": float(e["total_costs"].mean()),
        }


def policy_gap(synthetic: PolicyEvaluation, real: PolicyEvaluation) -> dict[str, float]:
    """The synthetic-to-real gap of one policy: training-market minus real-market figures.

    Log-wealth is compared per year (``ann_log_growth``) because episode lengths may differ.

    Returns
    -------
    dict
        ``ann_log_growth_synthetic``, ``ann_log_growth_real``, ``ann_log_growth_gap``,
        ``sharpe_synthetic``, ``sharpe_real``, ``sharpe_gap`` (gap = synthetic - real; a large
        positive gap means the policy exploits the simulator more than it earns in reality).
    """
    s, r = synthetic.summary(), real.summary()
    return {
        "ann_log_growth_synthetic": s["mean_ann_log_growth"],
        "ann_log_growth_real": r["mean_ann_log_growth"],
        "ann_log_growth_gap": s["mean_ann_log_growth"] - r["mean_ann_log_growth"],
        "sharpe_synthetic": s["mean_sharpe"],
        "sharpe_real": r["mean_sharpe"],
        "sharpe_gap": s["mean_sharpe"] - r["mean_sharpe"],
    }


def check_policy_spaces(policy: Any, env: VecPortfolioEnv) -> None:
    """A policy that declares its spaces (SB3 models do) must match the environment's."""
    obs_space = getattr(policy, "observation_space", None)
    if isinstance(obs_space, spaces.Dict):
        mine = {k: tuple(v.shape) for k, v in obs_space.spaces.items()}  # type: ignore[union-attr]
        env_space = env.observation_space
        assert isinstance(env_space, spaces.Dict)
        theirs = {k: tuple(v.shape) for k, v in env_space.spaces.items()}  # type: ignore[union-attr]
        if mine != theirs:
            raise CheckpointError(
                f"the policy observes {mine} but this environment gives {theirs}: rebuild the environment "
                "with the agent's configuration (AgentMeta.env) on a market with the same assets"
            )
    act_space = getattr(policy, "action_space", None)
    if isinstance(act_space, spaces.Box) and tuple(act_space.shape) != tuple(env.action_space.shape):  # type: ignore[arg-type]
        raise CheckpointError(
            f"the policy acts in shape {act_space.shape} but this environment expects {env.action_space.shape} "
            "(different action mode or number of assets)"
        )


def score_rollout(
    policy: Any,
    env: VecPortfolioEnv,
    *,
    seed: int,
    starts: Sequence[int] | None,
    deterministic: bool,
) -> PolicyEvaluation:
    """One episode per path of ``env`` through :func:`~factorgym.envs.rollout.rollout`, each
    scored on its running days by :meth:`~factorgym.envs.rollout.PathRun.episode_metrics`
    (:func:`factorgym.metrics.portfolio_metrics`, Sharpe in excess of the environment's
    daily cash rate)."""
    run = rollout(
        policy, env, options=None if starts is None else [{"start": int(s)} for s in starts],
        seed=seed, deterministic=deterministic,
    )  # fmt: skip
    return score_run(run, env)


def score_run(run: Any, env: VecPortfolioEnv) -> PolicyEvaluation:
    """The :class:`PolicyEvaluation` of a finished :func:`~factorgym.envs.rollout.rollout` on ``env``."""
    final_wealth = run.final_wealth()
    risk_free = env.config.risk_free
    rows, rets = [], []
    for p in range(run.n_paths):
        k = int(run.alive[:, p].sum())
        stats = run.episode_metrics(p, periods_per_year=PERIODS_PER_YEAR, risk_free=risk_free)
        lw = float(np.log(max(final_wealth[p], 1e-12)))
        rows.append({
            "start_date": run.start_dates[p], "episode_seed": run.episode_seeds[p], "days": k,
            "log_wealth": lw, "ann_log_growth": lw * PERIODS_PER_YEAR / k,
            **{key: v for key, v in stats.items() if key not in ("n_periods", "terminal_wealth")},
        })  # fmt: skip
        rets.append(run.net_return[run.alive[:, p], p].copy())
    return PolicyEvaluation(pd.DataFrame(rows), tuple(rets), repr(env.engine.market))


def _start_row(market: Market, start: int | str | pd.Timestamp) -> int:
    if isinstance(start, int | np.integer):
        return int(start)
    return market.panel.index_of(pd.Timestamp(start))


def evaluate_policy_on(
    policy: Any,
    market: Market,
    n_episodes: int = 1,
    seed: int = 0,
    *,
    env: EnvConfig | Mapping[str, Any] | AgentMeta | None = None,
    starts: Sequence[int | str | pd.Timestamp] | None = None,
    deterministic: bool = True,
    batch_size: int = 64,
    torch_threads: int | None = 1,
) -> PolicyEvaluation:
    """Run ``policy`` over ``n_episodes`` episodes of ``market`` and score each.

    Parameters
    ----------
    policy : object with SB3's ``predict(obs, state, episode_start, deterministic)``
        An SB3 model, a :class:`TrainedAgent` or a :class:`~factorgym.agents.protocol.Agent`.
    market : Market
        E.g. ``Markets.train`` (the synthetic training market) or ``Markets.heldout("test")``.
    n_episodes : int
        Episodes to run (ignored when ``starts`` is given: one per start).
    seed : int
        Environment seed: episode ``j`` is the first episode of a path seeded ``seed + j``
        (its start day on random-start markets, its generator stream on generative ones).
    env : EnvConfig, mapping, AgentMeta or None
        The environment configuration; an :class:`AgentMeta` also checks that ``market``
        has the agent's assets, in order. Its domain randomisation, if any, is not applied
        (:meth:`~factorgym.envs.config.EnvConfig.for_evaluation`).
    starts : sequence of int (panel rows) or dates, optional
        Fixed start days, e.g. :func:`evaluation_starts`.
    deterministic : bool
        SB3's flag. ``False`` samples actions from torch's *global* RNG (SB3's behaviour).
    batch_size : int
        Episodes stepped together in one vectorised environment.
    torch_threads : int or None
        Torch intra-op threads during the run (restored afterwards; ``None``: unchanged).
        One is fastest for small policies (see :func:`train_agent`).

    Returns
    -------
    PolicyEvaluation
        Per-episode log-wealth, Sharpe ratio, drawdown, turnover and costs.
    """
    if isinstance(env, AgentMeta):
        env.check_market(market)
        cfg = env.env
    else:
        cfg = EnvConfig.coerce(env)
    cfg = cfg.for_evaluation()  # domain randomisation is for training only
    start_list = None if starts is None else [_start_row(market, s) for s in starts]
    total = len(start_list) if start_list is not None else int(n_episodes)
    if total < 1:
        raise FactorGymError(f"n_episodes must be at least 1, got {n_episodes}")
    if int(batch_size) < 1:
        raise FactorGymError(f"batch_size must be at least 1, got {batch_size}")
    parts = []
    venv: VecPortfolioEnv | None = None
    with torch_thread_limit(torch_threads):
        for j0 in range(0, total, int(batch_size)):
            k = min(int(batch_size), total - j0)
            if venv is None or venv.num_envs != k:
                venv = VecPortfolioEnv(market, k, config=cfg)
                check_policy_spaces(policy, venv)
            parts.append(score_rollout(policy, venv, seed=int(seed) + j0, deterministic=deterministic,
                                  starts=None if start_list is None else start_list[j0 : j0 + k]))  # fmt: skip
    return PolicyEvaluation(
        pd.concat([p.episodes for p in parts], ignore_index=True),
        tuple(r for p in parts for r in p.net_returns),
        parts[0].market,
    )

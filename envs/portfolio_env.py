"""The single-path Gymnasium portfolio environment, :class:`PortfolioEnv`.

It is the batched :class:`~factorgym.envs.engine.PortfolioEngine` with ``P = 1`` behind the
Gymnasium API; :class:`~factorgym.envs.vec_env.VecPortfolioEnv` is the same engine with
``P > 1``. Both take their options from one :class:`~factorgym.envs.config.EnvConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from factorgym.constraints import Constraints
from factorgym.costs import CostModel
from factorgym.envs.config import EnvConfig
from factorgym.envs.engine import (
    PortfolioEngine,
    check_reset_options,
    default_market,
    draw_episode_seed,
    episode_streams,
)
from factorgym.envs.markets import Market
from factorgym.errors import FactorGymError

__all__ = ["PortfolioEnv", "default_market", "draw_episode_seed", "episode_streams"]


class PortfolioEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """Daily rebalancing of a portfolio of ``N`` assets and cash under transaction costs.

    ## Description

    Each step is one trading day. At the close of day ``t`` the agent observes the returns
    up to and including day ``t`` and its current (drifted) weights, and chooses target
    weights; the portfolio is traded at that close, paying costs, and held over day ``t+1``,
    earning ``r_{t+1}``. The market is either real history (:class:`HistoricalMarket`) or a
    trained generator rolled forward on its own samples (:class:`GenerativeMarket`); the
    two give observations and infos of identical structure.

    **Timing.** The observation at day ``t`` uses information up to the close of ``t`` only;
    weights chosen at ``t`` earn ``r_{t+1}``; costs are charged on ``|w_target - w_drifted|``.

    **Execution lag** (``execution_lag=L``, default 0). The weights chosen at the close of
    ``t`` are traded at the close of ``t + L`` and first earn ``r_{t+L+1}``; over days
    ``t+1 .. t+L`` the book is the earlier decisions' (drifting). Costs are charged when the
    trade executes, on ``|w_target - w_drifted|`` with the drifted weights of that close; the
    turnover cap and the absent-asset rule below are applied there too (in ``"weights"`` mode
    a decision is checked against the static constraints when it is made, and turnover and
    absent assets are then capped/clipped at execution rather than refused). An episode keeps
    the market's horizon of steps: its first ``L`` days hold the starting book and its last
    ``L`` decisions never execute. The observation keys do not change; ``"weights"`` are the
    weights actually held.

    **Absent and delisted assets** (panels with missing cells; see
    :mod:`factorgym.envs.markets`). An asset absent on the day of a trade cannot be bought or
    shorted further, only reduced towards zero: ``"weights"`` mode (lag 0) refuses such a
    target with an :class:`~factorgym.errors.ActionError` naming the asset and the day; the
    mapped modes repair it (softmax/simplex: projection with the asset capped at its drifted
    weight, so the excess goes to the other assets and cash; long/short: clipped towards
    zero). A position in an asset that delists is settled into cash at its last close, at no
    cost; an asset that is absent for a while keeps its position (carried at its last price).

    **Accounting** (float64, per step; see :mod:`factorgym.envs.accounting`)::

        c       = cost_model.cost(w, w_d)                     (fraction of W_t, risky legs only)
        G       = 1 + w . r_{t+1} + (1 - sum(w)) * risk_free  (growth of the book held over t+1)
        1 + R   = (1 - c) * G                                 (cost settled pro rata at t)
        W_{t+1} = W_t * (1 + R),    W_0 = 1
        w_d'    = w * (1 + r_{t+1}) / G

    ## Action Space

    Set by ``action_mode`` (see :mod:`factorgym.envs.actions`):

    * ``"softmax"`` (default): ``Box(-1, 1, (N + 1,), float32)`` logits, cash last;
      ``softmax(a / temperature)``, projected onto the capped simplex when caps bind.
    * ``"simplex"``: ``Box(-1, 1, (N + 1,), float32)``, Euclidean projection onto the simplex.
    * ``"long_short"``: ``Box(-1, 1, (N,), float32)``; ``w = L a / max(1, ||a||_1)``, box-clipped.
    * ``"residual"``: ``Box(-1, 1, (N + 1,), float32)``, a tilt of at most ``residual_scale``
      per entry around ``base_weights`` (default ``1/N``); the zero action is the base.
    * ``"weights"``: ``WeightsSpace`` (a float64 ``Box`` of per-asset bounds whose samples are
      feasible): the target risky weights themselves, checked against ``constraints`` with
      absolute tolerance 1e-8 and never altered; an infeasible vector raises
      :class:`~factorgym.envs.actions.InfeasibleActionError`.

    A turnover cap (``constraints.max_turnover``) is enforced by projection in the mapped
    modes and checked in ``"weights"`` mode. In every mode an action of the wrong shape, with
    NaN/inf, or outside the space's bounds (by more than 1e-8) raises
    :class:`~factorgym.errors.ActionError` before any state changes.

    ## Observation Space

    A ``Dict`` of float64 ``Box`` es:

    * ``"returns"``: ``(window, N)``, the last ``window`` daily simple returns, oldest first,
      ending at day ``t`` (0.0 where an asset is absent).
    * ``"weights"``: ``(N + 1,)``, the current drifted weights, risky assets then cash last
      (cash may dip slightly below 0 by the day's cost when fully invested; long/short
      portfolios may hold negative cash).
    * ``"mask"`` (only for panels with missing cells): ``(window, N)``, 1.0 where available.
    * ``"features"`` (with ``features=FeatureConfig(...)``): ``(N, K)`` point-in-time features
      standardised by ``feature_scaler`` (0.0 where undefined).
    * ``"moments"`` (with ``moments="diag"`` or ``"cov"``): the generator's predicted
      next-day mean and volatility ``(2, N)``, or mean and covariance ``(N + 1, N)``.

    ## Rewards

    ``log(1 + R)`` by default; ``"differential_sharpe"``, ``"mean_variance"``, ``"drawdown"``
    and ``"cvar"`` are in :mod:`factorgym.envs.rewards`.

    ## Starting State

    Wealth 1.0, all cash (or ``initial_weights``), on a start day drawn from the market's
    allowed range with the episode's ``start_rng`` (or fixed by the market or by
    ``reset(options={"start": date})``).

    ## Episode End

    * ``terminated``: ruin (``info["ruined"]``), when wealth falls to ``ruin_threshold``
      (default 0.01, i.e. a 99% loss) or below. Ruin is absorbing: a day with ``1 + R <= 0``
      floors wealth at 0 (``R = -1``), liquidates the book (weights 0, all cash) and its log
      reward is floored at ``log(1e-12)``; the episode ends there (stepping again raises until
      ``reset()``), so wealth is never negative.
    * ``truncated``: the market's horizon is reached (a historical episode with
      ``horizon=None`` ends at the market's ``last_day``).

    ## Info

    ``wealth``, ``net_return`` (``R``), ``cost`` (``c``), ``turnover`` (``sum|w - w_d|``),
    ``step`` (days since the start), ``date`` (the current day's date on historical markets
    and on the real start day of generative ones, ``None`` on simulated days),
    ``start_date`` (the real start day), ``path_id`` (0 here; the path index in the vec env),
    ``episode_seed`` and ``ruined``. ``reset(options={"episode_seed": s})`` replays an episode exactly
    (given the same actions), in this environment or the vec env.

    ## Seeding

    ``reset(seed=s)`` seeds ``self.np_random``; each reset draws the episode seed from it
    (:func:`draw_episode_seed`), and the episode's start day and generator stream are spawned
    from that seed (:func:`episode_streams`). Stepping never consumes ``self.np_random``.

    ## Arguments

    * ``market``: a :class:`HistoricalMarket` or :class:`GenerativeMarket` (default: the sp500
      training split, random starts, 252-day episodes).
    * ``config``: an :class:`~factorgym.envs.config.EnvConfig` (or a mapping of its fields);
      the options below, given as keyword arguments, override its fields. An option that is
      not an ``EnvConfig`` field raises :class:`~factorgym.errors.FactorGymError`.
    * ``window``: days of returns observed (default 20; optimizers may use e.g. a
      generator's ``min_history``).
    * ``action_mode``, ``constraints``, ``temperature`` (softmax, default 0.25).
    * ``cost_model``: the shared :class:`~factorgym.costs.CostModel` (default 7.5 bps buys,
      12.5 bps sells, no impact).
    * ``reward``, ``reward_kwargs``; ``risk_free`` (daily cash rate, default 0);
      ``ruin_threshold``; ``features``, ``feature_scaler``, ``moments``; ``initial_weights``;
      ``execution_lag`` (days, default 0); ``turnover_penalty`` (reward shaping per unit of
      turnover, default 0); ``residual_scale``, ``base_weights`` (``"residual"`` mode);
      ``randomization`` (per-episode domain randomisation, :mod:`factorgym.envs.randomization`;
      its draws in ``info["randomization"]``); ``render_mode`` (``"ansi"``).

    ``reset(options=...)`` accepts ``"episode_seed"`` (a whole number ``>= 0``) and
    ``"start"`` (a date, the last trading day on or before it, or a panel row); any other
    value raises :class:`~factorgym.errors.DataValidationError` naming it and, for a start,
    the allowed range.

    ```python
    import gymnasium as gym
    import factorgym.envs  # registers factorgym/Portfolio-v0
    env = gym.make("factorgym/Portfolio-v0", window=20, action_mode="softmax")
    ```
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        market: Market | None = None,
        config: EnvConfig | Mapping[str, Any] | None = None,
        *,
        render_mode: str | None = None,
        **options: Any,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise FactorGymError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.engine = PortfolioEngine(market if market is not None else default_market(), 1, EnvConfig.merged(config, **options))
        self.observation_space = self.engine.observation_space
        self.action_space = self.engine.action_space
        self._last_info: dict[str, Any] | None = None

    # ------------------------------------------------------------------ properties
    @property
    def market(self) -> Market:
        """The market source."""
        return self.engine.market

    @property
    def assets(self) -> tuple[str, ...]:
        """Asset names (the order of weights and returns)."""
        return self.engine.market.assets

    @property
    def config(self) -> EnvConfig:
        """The environment's options."""
        return self.engine.config

    @property
    def constraints(self) -> Constraints:
        """The constraint set actions are mapped into or checked against."""
        return self.engine.constraints

    @property
    def cost_model(self) -> CostModel:
        """The transaction cost model."""
        return self.engine.cost_model

    @property
    def drifted_weights(self) -> np.ndarray:
        """Current drifted risky weights ``(N,)`` (a copy)."""
        return self.engine.w_drifted[0].copy()

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        options = {} if options is None else options
        check_reset_options(options)
        options = dict(options)
        ep_seed = options.get("episode_seed")
        if ep_seed is None:
            ep_seed = draw_episode_seed(self.np_random)
        self.engine.reset_paths(np.zeros(1, dtype=np.int64), [int(ep_seed)], [options.get("start")])
        obs = {k: v[0] for k, v in self.engine.observe().items()}
        info = self.engine.infos()[0]
        self._last_info = info
        return obs, info

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        a = self.engine.mapper.validate(action)
        reward, terminated, truncated = self.engine.step(a[None, :], validated=True)
        obs = {k: v[0] for k, v in self.engine.observe().items()}
        info = self.engine.infos()[0]
        self._last_info = info
        return obs, float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        info = self._last_info
        if info is None:
            return "PortfolioEnv: not reset"
        day = info["date"] if info["date"] is not None else f"{info['start_date']} +{info['step']}d (simulated)"
        w = self.engine.w_drifted[0]
        top = np.argsort(-np.abs(w))[:5]
        held = ", ".join(f"{self.assets[i]} {w[i]:+.1%}" for i in top if abs(w[i]) > 5e-4) or "-"
        return (
            f"{day}: wealth {info['wealth']:.4f}, net return {info['net_return']:+.4%}, "
            f"cost {info['cost']:.4%}, cash {1.0 - w.sum():.1%}, top: {held}"
        )

    def __repr__(self) -> str:
        return f"<PortfolioEnv {self.engine.market!r} mode={self.engine.mapper.mode} window={self.engine.obs_config.window}>"

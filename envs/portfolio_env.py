"""The portfolio environment: a batched engine and its single-path Gymnasium face.

:class:`PortfolioEngine` holds the state of ``P`` paths (market, book, reward) and steps them
together in numpy; :class:`PortfolioEnv` is that engine with ``P = 1`` behind the Gymnasium
API, and :class:`~factorgym.envs.vec_env.VecPortfolioEnv` is the same engine with ``P > 1``
behind stable-baselines3's ``VecEnv`` API. Sharing one engine and one seeding rule
(:func:`episode_streams`) is what makes the two produce identical trajectories.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from factorgym.costs import CostModel
from factorgym.data import ReturnPanel
from factorgym.envs.accounting import CostFunction, settle_day, with_cash
from factorgym.envs.actions import ActionMapper, Constraints
from factorgym.envs.markets import HistoricalMarket, Market, ObservationConfig, StartSpec
from factorgym.envs.rewards import Reward, make_reward
from factorgym.errors import ActionError, FactorGymError
from factorgym.features import FeatureConfig, FeatureScaler

__all__ = ["PortfolioEngine", "PortfolioEnv", "default_market", "draw_episode_seed", "episode_streams"]

#: Option keys accepted by ``reset(options=...)``.
RESET_OPTIONS = frozenset({"episode_seed", "start"})


def draw_episode_seed(rng: np.random.Generator) -> int:
    """The next episode seed of an environment (or of one vec-env path) from its ``np_random``."""
    return int(rng.integers(0, np.iinfo(np.int64).max))


def episode_streams(episode_seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """``(start_rng, path_rng)`` of an episode: two independent streams spawned from its seed.

    ``start_rng`` draws the start day; ``path_rng`` is the path's stream handed to the
    generator's ``PathSimulator``. An episode is a function of its seed (and the actions).
    """
    start_ss, path_ss = np.random.SeedSequence(int(episode_seed)).spawn(2)
    return np.random.default_rng(start_ss), np.random.default_rng(path_ss)


@functools.lru_cache(maxsize=1)
def _sp500_train() -> ReturnPanel:
    from factorgym.data import Split, load_dataset

    return Split().part(load_dataset("sp500"), "train")


def default_market() -> HistoricalMarket:
    """The market used when none is given: the sp500 training split (1990-2013), random
    starts, 252-day episodes (the immutable panel is loaded once per process)."""
    return HistoricalMarket(_sp500_train(), horizon=252)


class PortfolioEngine:
    """Batched state and dynamics of ``P`` portfolio paths (see :class:`PortfolioEnv`).

    Parameters are those of :class:`PortfolioEnv` plus ``n_paths``.
    """

    def __init__(
        self,
        market: Market,
        n_paths: int,
        *,
        window: int = 20,
        action_mode: str = "softmax",
        constraints: Constraints | None = None,
        cost_model: CostModel | None = None,
        reward: str | Reward = "log",
        reward_kwargs: dict[str, Any] | None = None,
        temperature: float = 0.25,
        risk_free: float = 0.0,
        ruin_threshold: float = 0.01,
        features: FeatureConfig | None = None,
        feature_scaler: FeatureScaler | None = None,
        moments: str | None = None,
        initial_weights: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        if not isinstance(market, Market):
            raise FactorGymError(f"market must be a HistoricalMarket or GenerativeMarket, got {type(market).__name__}")
        if int(n_paths) < 1:
            raise FactorGymError(f"n_paths must be at least 1, got {n_paths}")
        if not np.isfinite(risk_free) or risk_free <= -1:
            raise FactorGymError(f"risk_free must be a finite daily rate > -1, got {risk_free}")
        if not np.isfinite(ruin_threshold) or ruin_threshold < 0 or ruin_threshold >= 1:
            raise FactorGymError(f"ruin_threshold must be in [0, 1), got {ruin_threshold}")
        self.market = market
        self.n_paths = P = int(n_paths)
        self.n_assets = N = market.n_assets
        self.obs_config = ObservationConfig(int(window), features, feature_scaler, moments)  # type: ignore[arg-type]
        self.paths = market.open(P, self.obs_config)
        if constraints is None:
            constraints = Constraints.long_short() if action_mode == "long_short" else Constraints()
        self.constraints = constraints
        self.mapper = ActionMapper(action_mode, N, constraints, temperature)
        self.cost_model = cost_model if cost_model is not None else CostModel()
        if not isinstance(self.cost_model, CostModel):
            raise FactorGymError(f"cost_model must be a factorgym.costs.CostModel, got {type(self.cost_model).__name__}")
        self._cost_fn = CostFunction(self.cost_model, N)  # also validates per-asset rate shapes
        self.reward_fn = make_reward(reward, P, **(reward_kwargs or {}))
        self.risk_free = float(risk_free)
        self.ruin_threshold = float(ruin_threshold)
        if initial_weights is None:
            w0 = np.zeros(N)
        else:
            w0 = np.asarray(initial_weights, dtype=np.float64)
            if w0.shape != (N,) or not np.isfinite(w0).all():
                raise ActionError(f"initial_weights must be {N} finite numbers, got shape {w0.shape}")
        self.initial_weights = w0
        self.observation_space = self._make_observation_space()
        self.action_space = self.mapper.action_space
        # state
        self.wealth = np.ones(P)
        self.w_drifted = np.tile(w0, (P, 1))
        self.steps = np.zeros(P, dtype=np.int64)
        self.net_return = np.zeros(P)
        self.cost = np.zeros(P)
        self.turnover = np.zeros(P)
        self.episode_seeds: list[int] = [0] * P
        self._start_dates: list[Any] = [None] * P
        self.active = np.zeros(P, dtype=bool)

    # ------------------------------------------------------------------ spaces
    def _make_observation_space(self) -> spaces.Dict:
        N, W = self.n_assets, self.obs_config.window
        f64 = np.float64
        d: dict[str, spaces.Space] = {
            "returns": spaces.Box(-1.0, np.inf, shape=(W, N), dtype=f64),
            "weights": spaces.Box(-np.inf, np.inf, shape=(N + 1,), dtype=f64),
        }
        if self.paths.has_mask:
            d["mask"] = spaces.Box(0.0, 1.0, shape=(W, N), dtype=f64)
        if self.obs_config.features is not None:
            d["features"] = spaces.Box(-np.inf, np.inf, shape=(N, self.obs_config.features.n_features), dtype=f64)
        if self.obs_config.moments is not None:
            rows = 2 if self.obs_config.moments == "diag" else N + 1
            d["moments"] = spaces.Box(-np.inf, np.inf, shape=(rows, N), dtype=f64)
        return spaces.Dict(d)

    # ------------------------------------------------------------------ dynamics
    def reset_paths(self, idx: np.ndarray, episode_seeds: Sequence[int], starts: Sequence[StartSpec]) -> None:
        """Start new episodes for paths ``idx`` ``(k,)`` from their episode seeds."""
        idx = np.asarray(idx, dtype=np.int64)
        streams = [episode_streams(s) for s in episode_seeds]
        self.paths.reset(idx, [s[0] for s in streams], [s[1] for s in streams], list(starts))
        self.wealth[idx] = 1.0
        self.w_drifted[idx] = self.initial_weights
        self.steps[idx] = 0
        self.net_return[idx] = 0.0
        self.cost[idx] = 0.0
        self.turnover[idx] = 0.0
        for p, s, d in zip(idx.tolist(), episode_seeds, self.paths.start_dates(idx), strict=True):
            self.episode_seeds[p] = int(s)
            self._start_dates[p] = d
        self.reward_fn.reset(idx, self.wealth[idx])
        self.active[idx] = True

    def step(self, actions: Any, *, validated: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply actions ``(P, D)`` for one day -> ``(reward, terminated, truncated)``, each ``(P,)``.

        Invalid actions raise before any state changes.
        """
        if not self.active.all():
            p = int(np.argmin(self.active))
            raise FactorGymError(f"path {p} has no running episode: call reset() first (after it ended)")
        a = actions if validated else self.mapper.validate(actions, self.n_paths)
        w = self.mapper(a, self.w_drifted)
        r = self.paths.step()
        acc = settle_day(self.wealth, w, self.w_drifted, r, self._cost_fn, self.risk_free)
        self.wealth = acc.wealth
        self.w_drifted = acc.drifted
        self.net_return, self.cost, self.turnover = acc.net_return, acc.cost, acc.turnover
        reward = self.reward_fn(acc.net_return, acc.wealth)
        self.steps += 1
        terminated = acc.wealth <= self.ruin_threshold
        truncated = (self.steps >= self.paths.horizons) & ~terminated
        self.active &= ~(terminated | truncated)
        return reward, terminated, truncated

    # ------------------------------------------------------------------ outputs
    def observe(self, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Observations of paths ``idx`` (all by default), each array with a leading ``k`` axis."""
        paths = self.paths
        wd = self.w_drifted if idx is None else self.w_drifted[idx]
        obs = {"returns": paths.returns_window(idx), "weights": with_cash(wd)}
        if paths.has_mask:
            obs["mask"] = paths.mask_window(idx)
        if self.obs_config.features is not None:
            obs["features"] = paths.features(idx)
        if self.obs_config.moments is not None:
            obs["moments"] = paths.moments(idx)
        return obs

    def infos(self, idx: np.ndarray | None = None) -> list[dict[str, Any]]:
        """Info dicts of paths ``idx`` (see :class:`PortfolioEnv`, *Info*)."""
        sel: Any = slice(None) if idx is None else idx
        ids = range(self.n_paths) if idx is None else np.asarray(idx).tolist()
        dates = self.paths.dates()
        starts = self._start_dates
        return [
            {
                "wealth": w,
                "net_return": r,
                "cost": c,
                "turnover": to,
                "step": k,
                "date": dates[p],
                "start_date": starts[p],
                "path_id": p,
                "episode_seed": self.episode_seeds[p],
            }
            for p, w, r, c, to, k in zip(
                ids,
                self.wealth[sel].tolist(),
                self.net_return[sel].tolist(),
                self.cost[sel].tolist(),
                self.turnover[sel].tolist(),
                self.steps[sel].tolist(),
                strict=True,
            )
        ]


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

    * ``terminated``: ruin, when wealth falls to ``ruin_threshold`` (default 0.01, i.e. a 99%
      loss) or below. A day with ``1 + R <= 0`` liquidates the book (weights 0, all cash)
      and its log reward is floored at ``log(1e-12)``.
    * ``truncated``: the market's horizon is reached (a historical episode with
      ``horizon=None`` ends at the market's ``last_day``).

    ## Info

    ``wealth``, ``net_return`` (``R``), ``cost`` (``c``), ``turnover`` (``sum|w - w_d|``),
    ``step`` (days since the start), ``date`` (the current day's date on historical markets
    and on the real start day of generative ones, ``None`` on simulated days),
    ``start_date`` (the real start day), ``path_id`` (0 here; the path index in the vec env)
    and ``episode_seed``. ``reset(options={"episode_seed": s})`` replays an episode exactly
    (given the same actions), in this environment or the vec env.

    ## Seeding

    ``reset(seed=s)`` seeds ``self.np_random``; each reset draws the episode seed from it
    (:func:`draw_episode_seed`), and the episode's start day and generator stream are spawned
    from that seed (:func:`episode_streams`). Stepping never consumes ``self.np_random``.

    ## Arguments

    * ``market``: a :class:`HistoricalMarket` or :class:`GenerativeMarket` (default: the sp500
      training split, random starts, 252-day episodes).
    * ``window``: days of returns observed (default 20; optimizers may use e.g. a
      generator's ``min_history``).
    * ``action_mode``, ``constraints``, ``temperature`` (softmax, default 0.25).
    * ``cost_model``: the shared :class:`~factorgym.costs.CostModel` (default 7.5 bps buys,
      12.5 bps sells, no impact).
    * ``reward``, ``reward_kwargs``; ``risk_free`` (daily cash rate, default 0);
      ``ruin_threshold``; ``features``, ``feature_scaler``, ``moments``; ``initial_weights``;
      ``render_mode`` (``"ansi"``).

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
        *,
        window: int = 20,
        action_mode: str = "softmax",
        constraints: Constraints | None = None,
        cost_model: CostModel | None = None,
        reward: str | Reward = "log",
        reward_kwargs: dict[str, Any] | None = None,
        temperature: float = 0.25,
        risk_free: float = 0.0,
        ruin_threshold: float = 0.01,
        features: FeatureConfig | None = None,
        feature_scaler: FeatureScaler | None = None,
        moments: str | None = None,
        initial_weights: Sequence[float] | np.ndarray | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise FactorGymError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.engine = PortfolioEngine(
            market if market is not None else default_market(),
            1,
            window=window,
            action_mode=action_mode,
            constraints=constraints,
            cost_model=cost_model,
            reward=reward,
            reward_kwargs=reward_kwargs,
            temperature=temperature,
            risk_free=risk_free,
            ruin_threshold=ruin_threshold,
            features=features,
            feature_scaler=feature_scaler,
            moments=moments,
            initial_weights=initial_weights,
        )
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
        options = dict(options or {})
        unknown = set(options) - RESET_OPTIONS
        if unknown:
            raise FactorGymError(f"unknown reset options {sorted(unknown)}; accepted: {sorted(RESET_OPTIONS)}")
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

"""Backtest protocol: agents x markets under identical accounting (``factorgym backtest``).

Every agent - an optimizer, a baseline or a stable-baselines3 policy - is run through the
same :class:`~factorgym.envs.vec_env.VecPortfolioEnv` engine with the same
:class:`~factorgym.costs.CostModel`, :class:`~factorgym.envs.actions.Constraints` and cash
rate, so differences between agents are differences of decisions, never of bookkeeping.
Only what an agent *observes* and *how its action is read* differ (its observation
``window``, ``action_mode`` and, for RL policies, softmax temperature / features / moments).

Markets
-------
**Real held-out path.** One :class:`~factorgym.envs.markets.HistoricalMarket` episode that
starts on the last day before the test period (the split's ``val_end``; the first trade
earns the first test day's return) and runs to the end of the test period (``test_end``, or
the panel's last day). No random start. The market is built on the panel cut at the end of
the test period, so nothing after it can be read; observation windows reach back into the
validation period (past information).

**Synthetic paths.** For each generator, ``n_paths`` paths of a
:class:`~factorgym.envs.markets.GenerativeMarket` conditioned on the same real history (the
panel cut at the same start day), ``horizon`` days long (default: as long as the real
path). Path ``i`` has the fixed episode seed ``synthetic_episode_seeds(seed, n)[i]`` (it does
not depend on ``n``), so every agent sees the *same* paths; this is checked at run time
with a fingerprint of each path's returns (see ``path_hash`` in the per-path table).

Statistics
----------
* Real path: :func:`factorgym.metrics.portfolio_metrics` of each agent's daily net returns
  (after costs), with turnover and costs, terminal wealth and optimizer solve / fallback /
  hold counts; the market index (``benchmark`` exogenous column, the S&P 500 in ``sp500``)
  as a benchmark row scored the same way with zero turnover and costs.
* Stationary-bootstrap confidence intervals (:class:`arch.bootstrap.StationaryBootstrap`,
  percentile method, block length from :func:`arch.bootstrap.optimal_block_length` unless
  given) of the Sharpe ratio, annualised return and volatility on the real path, and of the
  Sharpe *difference* to 1/N on the same resampled days (a paired test). Each agent's draws
  are seeded from ``(seed, agent name)``, so an interval does not change when other agents
  are added to the run.
* Beside the bootstrap, on the real path (:func:`~factorgym.app.backtest.statistics.real_path_inference`,
  columns and their one-line meanings in ``INFERENCE_COLUMNS``): the Sharpe difference to 1/N
  with a HAC delta-method test (Ledoit & Wolf 2008), the probabilistic and deflated Sharpe
  ratios (Bailey & Lopez de Prado) with the number of trials counted from the run's agents,
  and Model Confidence Set membership (90%) of the agents on daily losses.
* Cost sensitivity (``BacktestConfig.cost_multipliers``, off by default): every agent re-run
  on the real path at multiples of the costs, with its break-even cost against 1/N
  (:mod:`~factorgym.app.backtest.sensitivity`, ``COST_COLUMNS``).
* Synthetic paths: per-path metrics, then per agent the median and 5-95% band of each,
  CVaR(95%) of terminal wealth (a positive loss: the mean of ``1 - W_T`` over the worst 5%
  of paths), the probability of ending below 1/N's wealth on the same path, ruined paths
  and fallback counts. 1/N (:class:`~factorgym.agents.baselines.EqualWeight`) is added to
  the run when absent.
* Synthetic-to-real gap: real value minus the synthetic median, and the real value's
  percentile in the synthetic distribution (mid-rank), for Sharpe, annualised return and
  maximum drawdown. For an agent trained in a simulator, a real value far below its
  synthetic band is the sim-to-real gap.

Agents are given as objects, or by spec (``mv:ledoit_wolf``, ``cvar:RUN,draws=shared``,
``sb3:DIR``...; the grammar is in :mod:`factorgym.app.specs`, the factory in
:mod:`factorgym.app.agent_factory`).

Modules
-------
``agent``       :class:`BacktestAgent` (policy + observation settings), :func:`sb3_agent`
``config``      :class:`BacktestConfig`, :func:`held_out_rows`, :func:`synthetic_episode_seeds`
``run``         :func:`run_agent` (one agent, one market) and :func:`backtest` (everything)
``statistics``  :func:`bootstrap_intervals`, block length, percentiles, :func:`real_path_inference`
``sensitivity`` the cost-sensitivity table and break-even costs
``tables``      the real-path, per-path, synthetic-summary and gap tables
``result``      :class:`BacktestResult`: views and files
``output``      the output folder, replaced as a whole (old or new result, never a mix)
``report``      the HTML report and the console summary
``experiment``  :func:`run_backtest`: a backtest by specs that writes its outputs
"""

from __future__ import annotations

from factorgym.app.backtest.agent import (
    DEFAULT_HISTORY_WINDOW,
    BacktestAgent,
    BuiltAgent,
    infer_window,
    sb3_agent,
)
from factorgym.app.backtest.config import BacktestConfig, held_out_rows, synthetic_episode_seeds
from factorgym.app.backtest.result import BacktestResult
from factorgym.app.backtest.run import backtest, run_agent
from factorgym.app.backtest.sensitivity import COST_COLUMNS
from factorgym.app.backtest.statistics import (
    INFERENCE_COLUMNS,
    bootstrap_intervals,
    real_path_inference,
)
from factorgym.app.backtest.tables import DIST_METRICS, GAP_METRICS
from factorgym.app.specs import AgentSpec, parse_agent_spec
from factorgym.envs.rollout import PathRun

__all__ = [
    "COST_COLUMNS",
    "DEFAULT_HISTORY_WINDOW",
    "DIST_METRICS",
    "GAP_METRICS",
    "INFERENCE_COLUMNS",
    "AgentSpec",
    "BacktestAgent",
    "BacktestConfig",
    "BacktestResult",
    "BuiltAgent",
    "PathRun",
    "backtest",
    "bootstrap_intervals",
    "held_out_rows",
    "infer_window",
    "parse_agent_spec",
    "real_path_inference",
    "run_agent",
    "sb3_agent",
    "synthetic_episode_seeds",
]

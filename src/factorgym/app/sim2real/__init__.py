"""Sim-to-real experiments (``factorgym sim2real``): does training in a generated market pay
off on real data? Arms (training markets and tools) x seeds, each trained with one budget
and evaluated on the real validation and test periods at execution lags 0 and 1 beside 1/N
and Ledoit-Wolf mean-variance, run in parallel on Ray, with seed statistics (IQM,
probability of improvement), day-level tests (HAC Sharpe difference, deflated Sharpe) and
learning curves.

``config``   :class:`Sim2RealConfig`, :class:`Arm`, :func:`load_config` (TOML / JSON)
``run``      :func:`run_sim2real` (one Ray task per run, resumable) and :func:`run_one`
``stats``    probability of improvement, IQM summaries, seed mixes, HAC and deflated Sharpe
``results``  :func:`summarize` -> :class:`Sim2RealResult` (tables and summary)
``report``   :func:`write_results` (tables, ``summary.json``, ``report.html``, replaced whole)
"""

from factorgym.app.sim2real.config import Arm, Sim2RealConfig, load_config
from factorgym.app.sim2real.results import Sim2RealResult, summarize
from factorgym.app.sim2real.run import count_trials, run_one, run_sim2real
from factorgym.app.sim2real.stats import improvement_interval, probability_of_improvement

__all__ = [
    "Arm",
    "Sim2RealConfig",
    "Sim2RealResult",
    "count_trials",
    "improvement_interval",
    "load_config",
    "probability_of_improvement",
    "run_one",
    "run_sim2real",
    "summarize",
]

"""Where an optimizer agent's view of day ``t+1`` comes from.

A *source* turns the observation window (``(W, N)`` simple returns, oldest first, ending at
day ``t``) into an :class:`Estimate` of the next day's returns: a mean vector, a covariance
matrix and/or an ``(S, N)`` scenario matrix, whatever the optimizer asks for.

* :class:`GeneratorSource` - a trained generator's predictive distribution
  (``ReturnGenerator.predict_window``): the predictive's exact mean/covariance whenever it
  has them (``has_closed_form`` or ``has_exact_moments``), otherwise moments of its samples;
  scenarios are
  ``n_scenarios`` draws (the diffusion paper uses 500) from the agent's own
  ``numpy.random.Generator``.
* :class:`HistoricalSource` - classical estimators on the last ``window`` observed days:
  sample or James-Stein mean, sample or Ledoit-Wolf covariance; the scenarios are the
  observed days themselves (historical simulation).
* :class:`StaticSource` - fixed arrays (tests, benchmarks, user-supplied views).

The estimator functions (:func:`sample_mean`, :func:`james_stein_mean`,
:func:`sample_covariance`, :func:`ledoit_wolf_covariance`) are pure and usable directly.

Modules: :mod:`~factorgym.agents.estimators.base` (:class:`Estimate`, :class:`ReturnSource`,
:func:`check_window`, :func:`check_estimate`), :mod:`~factorgym.agents.estimators.historical`
(the estimator functions, :class:`HistoricalSource`, :class:`StaticSource`),
:mod:`~factorgym.agents.estimators.generator` (:class:`GeneratorSource`,
:class:`PredictionCache`, :func:`exact_moments`), :mod:`~factorgym.agents.estimators.draw_memo`
(:class:`ScenarioMemo`, :func:`process_memo`, :func:`set_process_memo`,
:func:`generator_digest`: a bounded memo of scenario draws, so that re-runs of an agent with
the same stream - other cost multiples, other lags - reuse them, bit-identically). Every name
is importable from here.
"""

from __future__ import annotations

from factorgym.agents.estimators.base import Estimate, ReturnSource, check_estimate, check_window
from factorgym.agents.estimators.draw_memo import (
    ScenarioMemo,
    generator_digest,
    process_memo,
    set_process_memo,
)
from factorgym.agents.estimators.generator import GeneratorSource, PredictionCache, exact_moments
from factorgym.agents.estimators.historical import (
    HistoricalSource,
    StaticSource,
    james_stein_mean,
    ledoit_wolf_covariance,
    sample_covariance,
    sample_mean,
)

__all__ = [
    "Estimate",
    "ReturnSource",
    "GeneratorSource",
    "PredictionCache",
    "HistoricalSource",
    "StaticSource",
    "sample_mean",
    "james_stein_mean",
    "sample_covariance",
    "ledoit_wolf_covariance",
    "check_window",
    "check_estimate",
    "exact_moments",
    "ScenarioMemo",
    "generator_digest",
    "process_memo",
    "set_process_memo",
]

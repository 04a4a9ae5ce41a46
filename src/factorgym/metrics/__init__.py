"""Portfolio and distributional metrics as pure functions of numpy arrays.

Everything here is numpy/scipy (plus ``scoringrules`` for CRPS and the energy score); no
function keeps state, reads global RNG state or changes warning filters.

Modules
-------
:mod:`~factorgym.metrics.performance`
    Returns, volatility, Sharpe/Sortino/Calmar, drawdowns, VaR/CVaR, ``portfolio_metrics``.
:mod:`~factorgym.metrics.calibration`
    PIT values, calibration curves and the calibration error.
:mod:`~factorgym.metrics.covariance`
    Covariance MSE, whitening and Box's M test of whitened returns.
:mod:`~factorgym.metrics.var_tests`
    Kupiec, Christoffersen and conditional-coverage backtests of VaR forecasts.
:mod:`~factorgym.metrics.scoring`
    CRPS and energy score of sample ensembles.
:mod:`~factorgym.metrics.stylized`
    Kurtosis, ACFs, leverage effect, correlations and stylized-fact comparisons.
:mod:`~factorgym.metrics.hac`
    HAC (Newey-West) long-run covariance and standard errors, the Diebold-Mariano test.
:mod:`~factorgym.metrics.sharpe_tests`
    The Ledoit-Wolf Sharpe-difference test, probabilistic / deflated Sharpe ratios.
:mod:`~factorgym.metrics.mcs`
    The Model Confidence Set.
:mod:`~factorgym.metrics.iqm`
    The interquartile mean with its stratified-bootstrap interval.

Every public name of these modules is importable from :mod:`factorgym.metrics` itself.

Conventions
-----------
Portfolio metrics take **simple** daily net returns (after costs) ``r_t``; the first axis is
time, so a ``(T,)`` series or ``(T, K)`` columns (e.g. ``K`` strategies or simulated paths).

* Wealth ``W_t = prod_{s<=t} (1 + r_s)`` with ``W_0 = 1``.
* Annualisation uses ``P = periods_per_year`` (252): returns geometrically
  (``W_T^(P/T) - 1``), volatilities and ratios with ``sqrt(P)``.
* Standard deviations use ``ddof=1``; the downside deviation of the Sortino ratio uses all
  ``T`` observations (``ddof=0``, Sortino & Price 1994).
* The risk-free rate ``risk_free`` is a **per-period** rate (per day for daily data), as
  everywhere in the Python API; it is used as given. An annual rate ``R`` corresponds to
  ``(1 + R)^(1/P) - 1`` per period (only the command line converts annual figures).
* Risk measures are **positive losses**: VaR, CVaR and drawdowns are >= 0 when money is lost.
* Historical VaR/CVaR use the empirical distribution (Rockafellar & Uryasev 2002), the same
  convention as :mod:`skfolio.measures`: with ``k = (1 - level) T``, VaR is the
  ``(floor(k) + 1)``-th largest loss and CVaR is the mean of the worst ``k`` losses (the
  ``(floor(k)+1)``-th one weighted by ``k - floor(k)``).

Distributional metrics score predictive distributions against realised values:
calibration error from PIT values, whitened-covariance tests, VaR backtests, CRPS / energy
score from samples, and stylized facts of return paths.
"""

from __future__ import annotations

from factorgym.metrics._common import check_level
from factorgym.metrics.calibration import (
    DEFAULT_CALIBRATION_LEVELS,
    calibration_curve,
    calibration_error,
    calibration_levels,
    pit_from_samples,
    portfolio_pit,
)
from factorgym.metrics.covariance import BoxMResult, box_m_identity, covariance_mse, whiten
from factorgym.metrics.hac import (
    HACMean,
    LongRunCovariance,
    PairedTest,
    diebold_mariano,
    hac_long_run_covariance,
    newey_west_mean,
)
from factorgym.metrics.iqm import interquartile_mean, iqm_interval
from factorgym.metrics.mcs import model_confidence_set
from factorgym.metrics.performance import (
    accumulated_return,
    annualised_return,
    annualised_volatility,
    calmar_ratio,
    drawdown_series,
    historical_cvar,
    historical_var,
    hit_rate,
    max_drawdown,
    portfolio_metrics,
    sharpe_ratio,
    sortino_ratio,
)
from factorgym.metrics.scoring import crps_ensemble, energy_score
from factorgym.metrics.sharpe_tests import (
    DeflatedSharpe,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    sharpe_difference_test,
    sharpe_inference,
    sharpe_ratio_std_error,
)
from factorgym.metrics.stylized import (
    StylizedFacts,
    StylizedFactsComparison,
    acf,
    compare_stylized_facts,
    correlation_distance,
    correlation_matrix,
    excess_kurtosis,
    leverage_effect,
    stylized_facts,
)
from factorgym.metrics.var_tests import (
    LRTest,
    VaRBacktest,
    christoffersen_independence,
    kupiec_pof,
    var_backtest,
)

__all__ = [
    # performance
    "accumulated_return",
    "annualised_return",
    "annualised_volatility",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "drawdown_series",
    "max_drawdown",
    "historical_var",
    "historical_cvar",
    "hit_rate",
    "portfolio_metrics",
    # calibration
    "DEFAULT_CALIBRATION_LEVELS",
    "calibration_levels",
    "calibration_curve",
    "calibration_error",
    "pit_from_samples",
    "portfolio_pit",
    # covariance
    "BoxMResult",
    "covariance_mse",
    "whiten",
    "box_m_identity",
    # VaR backtests
    "LRTest",
    "VaRBacktest",
    "check_level",
    "kupiec_pof",
    "christoffersen_independence",
    "var_backtest",
    # scoring rules
    "crps_ensemble",
    "energy_score",
    # stylized facts
    "excess_kurtosis",
    "acf",
    "leverage_effect",
    "correlation_matrix",
    "correlation_distance",
    "StylizedFacts",
    "StylizedFactsComparison",
    "stylized_facts",
    "compare_stylized_facts",
    # inference under dependence and multiple testing
    "LongRunCovariance",
    "HACMean",
    "PairedTest",
    "DeflatedSharpe",
    "hac_long_run_covariance",
    "newey_west_mean",
    "diebold_mariano",
    "sharpe_difference_test",
    "sharpe_ratio_std_error",
    "probabilistic_sharpe_ratio",
    "expected_max_sharpe",
    "deflated_sharpe_ratio",
    "sharpe_inference",
    "model_confidence_set",
    "interquartile_mean",
    "iqm_interval",
]

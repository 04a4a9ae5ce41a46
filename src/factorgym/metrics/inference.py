"""Statistical inference for return series and forecast losses under serial dependence and
multiple testing (kept so that ``factorgym.metrics.inference`` still imports; the code is in):

* :mod:`~factorgym.metrics.hac`: HAC long-run covariance, Newey-West mean, Diebold-Mariano.
* :mod:`~factorgym.metrics.sharpe_tests`: the Ledoit-Wolf Sharpe-difference test, the
  probabilistic and deflated Sharpe ratios, the expected maximum Sharpe ratio.
* :mod:`~factorgym.metrics.mcs`: the Model Confidence Set.
* :mod:`~factorgym.metrics.iqm`: the interquartile mean and its stratified-bootstrap interval.
"""

from __future__ import annotations

from factorgym.metrics.hac import (
    HACMean,
    Kernel,  # noqa: F401 - a module-level name of the old module
    LongRunCovariance,
    PairedTest,
    diebold_mariano,
    hac_long_run_covariance,
    newey_west_mean,
)
from factorgym.metrics.iqm import interquartile_mean, iqm_interval
from factorgym.metrics.mcs import model_confidence_set
from factorgym.metrics.sharpe_tests import (
    EULER_GAMMA,  # noqa: F401 - a module-level name of the old module
    DeflatedSharpe,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    sharpe_difference_test,
    sharpe_inference,
    sharpe_ratio_std_error,
)

__all__ = [
    "DeflatedSharpe",
    "HACMean",
    "LongRunCovariance",
    "PairedTest",
    "deflated_sharpe_ratio",
    "diebold_mariano",
    "expected_max_sharpe",
    "hac_long_run_covariance",
    "interquartile_mean",
    "iqm_interval",
    "model_confidence_set",
    "newey_west_mean",
    "probabilistic_sharpe_ratio",
    "sharpe_difference_test",
    "sharpe_inference",
    "sharpe_ratio_std_error",
]

"""Evaluate a fitted return generator in the spirit of NeuralFactors, tables 4-6.

:func:`evaluate_generator` walks through the days of one split part and, for each day
``t+1``, asks the generator for its predictive distribution given the rows up to ``t``
(windows are cut from the *full* panel, so the first test day conditions on the last
validation rows). It uses only the generator interface: ``predict_windows`` in batches,
``Predictive.sample`` / ``mean`` / ``cov`` / ``marginal_cdf`` always, and ``log_prob`` /
``marginal_log_prob`` only where ``has_log_prob`` says a density exists.

Metrics (per day, then aggregated). "Scaled" returns are divided by ``s_i``: by default
(``nll_scale="pooled"``) one number for every asset, the standard deviation of all train
returns pooled across assets and days (``ddof=1``) -- NeuralFactors footnote 3 divides by
0.02672357, "approximately the standard deviation of returns across our training period" --
so figures compare with the paper's; ``nll_scale="per_asset"`` divides each asset by its
own train std instead (a stricter scale: on sp500 test it adds ~0.116 nats/asset/day):

``nll_joint``  eq. 10: ``-(log p(r_{t+1}) + sum_i log s_i) / N``, i.e. the NLL of the scaled
               returns in nats per asset, averaged over days on which every asset trades.
``nll_ind``    eq. 11: ``-mean_i (log p_i(r_{i,t+1}) + log s_i)`` over available assets,
               averaged over days.
``cov_mse``    section 5.2.2: whiten the realised returns by the predicted moments
               (``z = Sigma_t^{-1/2} (r_{t+1} - mu_t)``, :func:`factorgym.metrics.whiten`),
               then ``mean((Cov(z) - I)^2)`` with ``Cov`` the sample covariance over the days.
               Restricted to the assets trading on every evaluated day.
``box_m``      Box-corrected LR statistic of ``Cov(z) = I`` (:func:`factorgym.metrics.box_m_identity`),
               with ``box_m_pvalue`` and the per-observation ``box_m_divergence``.
``cov_mse_outer``  a noisier proxy without whitening: mean over days of
               ``mean_ij (Sigma_t - e e')_ij^2`` with ``e = r_{t+1} - mu_t``, on scaled returns.
``cal_uni``    eq. 12 calibration error of each asset's PIT values ``F_i(r_i)``
               (``marginal_cdf``), averaged over assets weighted by their days available.
``cal_port``   eq. 12 for the equal-weight portfolio of the available assets, PIT from
               ``n_samples`` joint samples (randomised, exactly uniform when calibrated).
``var{95,99}_*``  the portfolio's VaR is the empirical quantile of its sampled returns;
               a hit is a realised loss above it; Kupiec / Christoffersen tests
               (:func:`factorgym.metrics.var_backtest`).
``crps``       fair CRPS of each asset's scaled return from the samples, mean over assets.
``energy_score``  fair energy score of the scaled return vector of the available assets,
               from the first ``energy_samples`` samples.
``nll_*_se``   Newey-West (HAC, Bartlett kernel, automatic bandwidth) standard errors of
               the mean NLLs, robust to the serial dependence of daily NLL (volatility
               clusters); ``nll_*_se_iid`` (in ``scalars`` only) assume independent days.
``sf_*``       stylized-fact distances of ``sim_paths`` simulated paths of ``sim_horizon``
               days (``generator.simulate`` from the day before the period) to the real
               period's first ``sim_horizon`` days (:func:`factorgym.metrics.compare_stylized_facts`).

Between models, :func:`diebold_mariano_table` tests equal mean daily loss (NLL, CRPS,
energy score) pair by pair on common days with a HAC variance (Diebold & Mariano 1995);
:func:`save_reports` writes it as ``diebold_mariano.csv`` / ``.md``.

Random draws of day ``d`` come from their own stream (``rng`` spawns one per day), so a
day's values depend only on the data up to that day, the generator and ``rng``.

Multi-day rollouts: :func:`rollout_diagnostics` simulates paths of ``H`` days (5, 21, 63 by
default) from many real contexts of a part and holds them against what followed: volatility
timing, multi-step calibration against its noise floor, 90% band coverage, tail exceedances,
stylized facts over the same windows and drift memorisation (definitions in
:mod:`~factorgym.generators.evaluation.rollouts`); :func:`save_rollouts` writes its tables
beside the one-day files and :func:`add_rollouts_section` the report's "Rollouts" section.

Modules: ``evaluate`` (:class:`EvaluationOptions`, :func:`evaluate_generator`), ``scoring``
(the per-day scores and their summaries), ``report`` (:class:`GeneratorReport`, tables, files,
:func:`evaluation_page`), ``rollouts`` (:class:`RolloutOptions`, :func:`rollout_diagnostics`,
:class:`RolloutReport`), ``rollout_scores`` (the rollout statistics), ``rollout_report`` (the
rollout tables, files and report section).
"""

from factorgym.generators.evaluation.evaluate import EvaluationOptions, evaluate_generator
from factorgym.generators.evaluation.report import (
    DM_COLUMNS,
    DM_METRICS,
    TABLE_COLUMNS,
    GeneratorReport,
    diebold_mariano_table,
    evaluation_page,
    reports_table,
    save_reports,
)
from factorgym.generators.evaluation.rollout_report import (
    ROLLOUT_COLUMNS,
    add_rollouts_section,
    rollouts_markdown,
    rollouts_table,
    save_rollouts,
)
from factorgym.generators.evaluation.rollout_scores import calibration_floor, calibration_null
from factorgym.generators.evaluation.rollouts import (
    ROLLOUT_METRICS,
    RolloutOptions,
    RolloutReport,
    rollout_diagnostics,
)

__all__ = [
    "DM_COLUMNS",
    "DM_METRICS",
    "EvaluationOptions",
    "GeneratorReport",
    "ROLLOUT_COLUMNS",
    "ROLLOUT_METRICS",
    "RolloutOptions",
    "RolloutReport",
    "TABLE_COLUMNS",
    "add_rollouts_section",
    "calibration_floor",
    "calibration_null",
    "diebold_mariano_table",
    "evaluate_generator",
    "evaluation_page",
    "reports_table",
    "rollout_diagnostics",
    "rollouts_markdown",
    "rollouts_table",
    "save_reports",
    "save_rollouts",
]

"""Reinforcement-learning agents: stable-baselines3 trained in factorgym markets.

This module is a thin adapter between stable-baselines3 (SB3) and the portfolio
environments. It never implements an RL algorithm itself: PPO, A2C, SAC and TD3 are SB3's,
with SB3's ``MultiInputPolicy`` over the environment's Dict observation.

Protocol
--------
* **Where to train** (:class:`MarketSpec`): ``"historical"`` replays the *train* rows of a
  dataset from random start days; a generator **run folder** (``factorgym fit``) gives a
  :class:`~factorgym.envs.markets.GenerativeMarket` conditioned on real train-period history
  at random start days inside the train split and rolled forward on the generator's own
  samples. A generator run fixes the dataset and the split it was fitted with, so the
  agent's validation period can never overlap the generator's training data.
* **Model selection** happens on the *real validation period* only: every ``eval_freq``
  steps (at the next rollout boundary) and at the end, the deterministic policy is run
  over fixed, evenly spaced episodes of a
  :class:`~factorgym.envs.markets.HistoricalMarket` over the validation rows; the mean
  episode log-wealth is logged and the best model is kept (``best_model.zip``). The test
  rows are never read during training. Because validation is used for selection, report
  the selected model's numbers on the *test* period.
* **Seeds**: ``seed`` is passed to SB3 (``Algo(..., seed=seed)``) and to the environment.
  SB3 then calls its ``set_random_seed``, which **seeds the global RNGs of Python's
  ``random``, NumPy's legacy ``np.random`` and torch** (SB3 draws minibatch permutations and
  action noise from them); factorgym itself never touches global RNG state. Environment path
  ``i`` gets seed ``seed + i`` (SB3's convention, applied by SB3 through ``env.seed``). On
  CPU, with the same torch build and thread count, two trainings with the same seed give
  bit-identical policy parameters (tested); across machines, torch versions or thread
  counts floating-point reductions may differ.
* **Speed**: training and :func:`evaluate_policy_on` run torch single-threaded by default
  (``torch_threads=1``, restored afterwards): fastest for these small MLP policies and
  robust on shared machines.

Action modes and algorithms
---------------------------
Every algorithm here needs a ``Box`` action space with finite bounds. The mapped action
modes ``"softmax"``, ``"simplex"`` and ``"long_short"`` are ``Box(-1, 1)`` and work with all
four algorithms (PPO/A2C clip their Gaussian actions to the box; SAC/TD3 squash with tanh
and rescale). ``"weights"`` does **not** work with any of them: its Box holds only per-asset
bounds, while budget and leverage constraints are *checked*, so an RL action inside the Box
can still be infeasible and raise mid-training. Use ``"weights"`` for optimizer agents.

=============  =====  =====  =====  =====
action_mode    ppo    a2c    sac    td3
=============  =====  =====  =====  =====
softmax        yes    yes    yes    yes
simplex        yes    yes    yes    yes
long_short     yes    yes    yes    yes
residual       yes    yes    yes    yes
weights        no     no     no     no
=============  =====  =====  =====  =====

Agent folder
------------
``train_agent(..., out_dir=D)`` writes

``D/model.zip``           the final SB3 model (written atomically: temp file + ``os.replace``);
``D/best_model.zip``      the best model on the validation episodes (when evaluating);
``D/evaluations.json``    every validation evaluation (per-episode log-wealth and Sharpe);
``D/checkpoints/``        SB3 ``CheckpointCallback`` snapshots (SB3 writes these itself,
                          not atomically, during rollout collection: an on-policy snapshot
                          at step ``t`` predates the update on the rollout holding ``t``);
``D/tb/``                 TensorBoard logs (``tensorboard --logdir D/tb``): SB3's training
                          scalars, ``eval/*`` (validation) and ``market/episode_log_wealth``
                          (training-market episodes);
``D/.pending/``            a training in progress: everything above is written there and
                          swapped in when it finishes (:func:`~factorgym.agents.rl.persistence.commit_agent_folder`),
                          so ``D`` keeps the previous agent until then;
``D/agent.json``          the sidecar, written last: algorithm, environment configuration
                          (everything needed to rebuild identical observation and action
                          spaces), asset order, market, seeds, timesteps, versions and the
                          SHA-256 of the model files. Its presence marks a finished agent.

:func:`load_agent` reads the folder back; :func:`evaluate_policy_on` runs any policy with
SB3's ``predict`` signature (an SB3 model, a :class:`~factorgym.agents.protocol.Agent`) over
episodes of a market and returns per-episode log-wealth and Sharpe ratios, so that the gap
between the training market and real held-out data can be measured (:func:`policy_gap`).

Example
-------
>>> agent = train_agent("ppo", "runs/ledoit_wolf", out_dir="runs/agents/ppo",
...                     total_timesteps=200_000, env_kwargs={"window": 20})  # doctest: +SKIP
>>> model, meta = load_agent("runs/agents/ppo", which="best")               # doctest: +SKIP
>>> test = meta.market.build().heldout("test")       # real 2019+ history   # doctest: +SKIP
>>> evaluate_policy_on(model, test, env=meta).summary()                     # doctest: +SKIP

Training-market tools (issue 14)
--------------------------------
Mixture markets (``MarketSpec(mixture=[("historical", 1), (run, 1)])``) and anchored
generative rollouts (``anchor_every=K``); domain randomisation, a turnover penalty and
residual actions as environment options (``EnvConfig.randomization``, ``turnover_penalty``,
``action_mode="residual"``); observation/reward normalisation saved with the model
(``normalize_obs``, ``normalize_reward``; :mod:`~factorgym.agents.rl.normalize`); checkpoint
selection on rolling validation windows (``eval_stride``); the decomposition of every
evaluation's real-validation return against ``1/N`` into allocation, costs and
concentration (:mod:`~factorgym.agents.rl.diagnose`); the seed ensemble is
:class:`factorgym.agents.ensemble.SeedEnsemble`.

Layout
------
:mod:`~factorgym.agents.rl.markets` (:class:`MarketSpec`, :class:`Markets`),
:mod:`~factorgym.agents.rl.algos` (algorithms, compatibility, keyword arguments),
:mod:`~factorgym.agents.rl.train` (:func:`train_agent`),
:mod:`~factorgym.agents.rl.evaluate` (:func:`evaluate_policy_on`, :func:`policy_gap`),
:mod:`~factorgym.agents.rl.callbacks` (validation, progress),
:mod:`~factorgym.agents.rl.persistence` (the agent folder, :func:`load_agent`),
:mod:`~factorgym.agents.rl.normalize` (observation statistics saved with the model) and
:mod:`~factorgym.agents.rl.diagnose` (the return decomposition).
"""

from __future__ import annotations

from factorgym.agents.rl.algos import ALGOS, RL_ACTION_MODES, check_compatible
from factorgym.agents.rl.callbacks import TrainingProgress, ValidationCallback
from factorgym.agents.rl.diagnose import decompose, diagnose_checkpoints, diagnosis_frame
from factorgym.agents.rl.evaluate import (
    PolicyEvaluation,
    evaluate_policy_on,
    evaluation_starts,
    policy_gap,
    rolling_starts,
)
from factorgym.agents.rl.markets import Markets, MarketSpec
from factorgym.agents.rl.normalize import NormalizedPolicy, ObsNormalizer
from factorgym.agents.rl.persistence import AgentMeta, TrainedAgent, load_agent
from factorgym.agents.rl.train import train_agent
from factorgym.envs.config import EnvConfig

__all__ = [
    "ALGOS",
    "RL_ACTION_MODES",
    "AgentMeta",
    "EnvConfig",
    "MarketSpec",
    "Markets",
    "NormalizedPolicy",
    "ObsNormalizer",
    "PolicyEvaluation",
    "TrainedAgent",
    "TrainingProgress",
    "ValidationCallback",
    "check_compatible",
    "decompose",
    "diagnose_checkpoints",
    "diagnosis_frame",
    "evaluate_policy_on",
    "evaluation_starts",
    "load_agent",
    "policy_gap",
    "rolling_starts",
    "train_agent",
]

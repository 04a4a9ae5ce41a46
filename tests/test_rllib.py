"""Ray RLlib: the registered env builds from a plain ``env_config``, its flat observation is the
flattened ``Dict`` observation of :class:`PortfolioEnv` (the same information, no look-ahead),
and a tiny PPO trains on a local 2-CPU Ray."""

from __future__ import annotations

import math
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from factorgym.data import Split, load_dataset
from factorgym.envs import HistoricalMarket, PortfolioEnv
from factorgym.envs.rllib import (
    RLLIB_ENV_NAME,
    make_rllib_env,
    market_from_config,
    register_rllib_env,
)
from factorgym.errors import FactorGymError


def test_importing_envs_does_not_import_ray():
    code = "import sys, factorgym.envs, factorgym.envs.rllib; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_flat_observation_is_the_flattened_dict_observation():
    cfg = {"market": "historical", "part": "train", "horizon": 30, "window": 8, "moments": None}
    env = make_rllib_env(cfg)
    assert isinstance(env.observation_space, gym.spaces.Box) and env.observation_space.shape is not None
    assert len(env.observation_space.shape) == 1
    # the same env built by hand: the sp500 panel, train rows only, same options
    panel = load_dataset("sp500")
    _, train_stop = Split().bounds(panel.dates)["train"]
    ref = PortfolioEnv(HistoricalMarket(panel, horizon=30, last_day=train_stop - 1), window=8)
    assert isinstance(ref.observation_space, gym.spaces.Dict)
    flat, info = env.reset(seed=3)
    obs, info_ref = ref.reset(seed=3)
    assert info == info_ref
    np.testing.assert_array_equal(flat, gym.spaces.flatten(ref.observation_space, obs))
    # the same numbers, concatenated by key (the Dict space's sorted order): returns, then weights
    np.testing.assert_array_equal(flat, np.concatenate([obs["returns"].ravel(), obs["weights"]]))
    rng = np.random.default_rng(0)
    for _ in range(30):
        a = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        flat, r, term, trunc, info = env.step(a)
        obs, r_ref, term_ref, trunc_ref, info_ref = ref.step(a)
        np.testing.assert_array_equal(flat, gym.spaces.flatten(ref.observation_space, obs))
        assert (r, term, trunc) == (r_ref, term_ref, trunc_ref) and info == info_ref
        # never beyond the train split's last day
        assert info["date"] <= panel.dates[train_stop - 1].date()
        if term or trunc:
            break
    assert trunc


def test_heldout_part_starts_and_ends_inside_it():
    m = market_from_config({"part": "val", "horizon": None, "random_start": False})
    panel = load_dataset("sp500")
    v0, v1 = Split().bounds(panel.dates)["val"]
    assert (m.first_row, m.last_row) == (v0, v1 - 1)


@pytest.mark.parametrize(
    ("cfg", "needle"),
    [
        ({"windw": 5}, "windw"),
        ({"part": "later"}, "later"),
        ({"horizon": 0}, "horizon"),
        ({"market": "/no/such/run"}, "/no/such/run"),
        ({"window": 0}, "window"),
        ({"random_start": "yes"}, "random_start"),
    ],
)
def test_bad_env_config_names_the_value(cfg, needle):
    with pytest.raises(FactorGymError, match=needle):
        make_rllib_env(cfg)


@pytest.fixture
def local_ray(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.rllib")
    import ray.tune.trainable.trainable as trainable

    # an Algorithm makes its log folder under ~/ray_results (hard-coded); keep it in tmp_path
    monkeypatch.setattr(trainable, "DEFAULT_STORAGE_PATH", str(tmp_path))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_tiny_rllib_ppo_trains_on_a_local_ray(local_ray):
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    name = register_rllib_env()
    assert name == RLLIB_ENV_NAME
    config = (
        PPOConfig()
        .environment(name, env_config={"market": "historical", "horizon": 50, "window": 10})
        .env_runners(num_env_runners=1, num_envs_per_env_runner=2, rollout_fragment_length=100)
        .training(train_batch_size_per_learner=400, minibatch_size=100, num_epochs=2, lr=3e-4)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[32, 32]))
        .debugging(seed=0)
    )
    algo = config.build_algo()
    try:
        module = algo.get_module()
        before = {k: v.detach().clone() for k, v in module.state_dict().items()}
        results = [algo.train() for _ in range(2)]
        after = module.state_dict()
    finally:
        algo.stop()
    sampled = results[-1]["env_runners"]["num_env_steps_sampled_lifetime"]
    assert sampled >= 800
    assert results[-1]["env_runners"]["num_episodes_lifetime"] >= 1  # 50-day episodes ended
    ret = results[-1]["env_runners"]["episode_return_mean"]
    assert math.isfinite(ret)
    loss = results[-1]["learners"]["default_policy"]["total_loss"]
    assert math.isfinite(float(loss))
    assert any(not np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)  # it learned

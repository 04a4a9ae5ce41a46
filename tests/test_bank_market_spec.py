"""Agents train on a scenario bank folder wherever they take a generator run (MarketSpec)."""

import pytest

from factorgym.agents.rl import MarketSpec, train_agent
from factorgym.errors import FactorGymError
from factorgym.generators.banks import simulate_bank
from factorgym.generators.runs import RunSpec, fit_run


def test_bank_market_spec(tmp_path):
    run = tmp_path / "lw"
    fit_run(RunSpec(kind="ledoit_wolf", dataset="sp500", params={"window": 63}), run, progress=False)
    bank = tmp_path / "bank"
    simulate_bank(str(run), n_paths=8, horizon=40, contexts="every:250:train", seed=3, out=bank, progress=False)
    m = MarketSpec(str(bank), horizon=30).build()
    assert m.describe()["kind"] == "bank"
    assert type(m.train).__name__ == "BankMarket"
    bad = tmp_path / "badbank"
    simulate_bank(str(run), n_paths=4, horizon=10, contexts="every:250:val", seed=3, out=bad, progress=False)
    with pytest.raises(FactorGymError, match="after its train_end"):
        MarketSpec(str(bad)).build()
    agent = train_agent("ppo", MarketSpec(str(bank), horizon=30), out_dir=tmp_path / "ag", total_timesteps=256, n_envs=2, eval_freq=128, eval_episodes=1, algo_kwargs={"n_steps": 64, "batch_size": 64})
    assert agent.meta.record["market"]["kind"] == "bank"

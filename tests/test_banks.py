"""Scenario banks: written in shards with their spec, regenerable exactly, identical for any
number of Ray workers, and replayed by BankMarket exactly as the live generative market runs."""

from __future__ import annotations

import filecmp
import functools
import json
from pathlib import Path

import numpy as np
import pytest
from helpers_env import make_panel

from factorgym.data import Split
from factorgym.envs import GenerativeMarket, PortfolioEnv
from factorgym.envs.engine import episode_streams
from factorgym.envs.markets.bank import BankMarket
from factorgym.envs.vec_env import VecPortfolioEnv
from factorgym.errors import CheckpointError, DataValidationError, FactorGymError
from factorgym.features import FeatureConfig
from factorgym.generators.banks import (
    episode_seeds,
    path_streams,
    read_bank,
    regenerate_bank,
    simulate_bank,
)
from factorgym.generators.banks.spec import check_positive
from factorgym.generators.baselines import LedoitWolfGenerator
from factorgym.generators.runs import RunSpec, fit_run, load_run
from factorgym.parallel import map_tasks, ray_session


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("banks") / "lw"
    fit_run(RunSpec(kind="ledoit_wolf", params={"window": 63}), out, progress=False)
    return out


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _same_tree(a: Path, b: Path) -> bool:
    return _files(a) == _files(b) and all(filecmp.cmp(a / f, b / f, shallow=False) for f in _files(a))


def _same_infos(i0: list[dict], i1: list[dict]) -> None:
    for a, b in zip(i0, i1, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], dict):  # terminal_observation
                assert all(np.array_equal(a[k][q], b[k][q]) for q in a[k]), k
            elif isinstance(a[k], np.ndarray):
                assert np.array_equal(a[k], b[k]), k
            else:
                assert a[k] == b[k], (k, a[k], b[k])


# ---------------------------------------------------------------- seeding rule


def test_the_banks_seeding_rule_is_the_environments():
    for e in (0, 7, 2**62 + 5):
        for ours, env in zip(path_streams(e), episode_streams(e), strict=True):
            assert ours.bit_generator.state == env.bit_generator.state
    env = VecPortfolioEnv(HistoricalMarketForSeeds(), 4, seed=11)
    env.reset()
    assert [i["episode_seed"] for i in env.engine.infos()] == episode_seeds(11, 0, 4).tolist()
    assert episode_seeds(11, 2, 4).tolist() == episode_seeds(11, 0, 4).tolist()[2:]  # by global path index


def HistoricalMarketForSeeds():  # noqa: N802
    from factorgym.envs import HistoricalMarket

    return HistoricalMarket(make_panel(120, 3), horizon=5)


# ---------------------------------------------------------------- bank == live market


@pytest.mark.parametrize("features", [None, FeatureConfig()])
def test_bank_path_i_is_the_live_markets_path_i(run_dir, tmp_path, features):
    """A VecPortfolioEnv over the bank, seeded with the bank's seed, sees exactly what it sees on
    the live GenerativeMarket over the same start range: observations, rewards, infos."""
    P, H, seed = 5, 12, 21  # noqa: N806
    need = 1 if features is None else features.warmup
    out = simulate_bank(run_dir, n_paths=P, horizon=H, out=tmp_path / "bank", seed=seed, shard_size=2,
                        history=max(need, 20), progress=False)  # fmt: skip
    gen, _, _ = load_run(run_dir)
    bank = BankMarket(out)
    live = GenerativeMarket(gen, bank.panel, horizon=H, last_day=Split().train_end)
    envs = [VecPortfolioEnv(m, P, seed=seed, window=20, features=features, action_mode="softmax") for m in (live, bank)]
    obs = [e.reset() for e in envs]
    assert envs[1].engine.paths.bank_paths().tolist() == list(range(P))
    rng = np.random.default_rng(0)
    for t in range(H):
        for k in obs[0]:
            assert np.array_equal(obs[0][k], obs[1][k]), (t, k)
        a = rng.uniform(-1, 1, size=(P, envs[0].action_space.shape[-1])).astype(np.float32)
        outs = [e.step(a) for e in envs]
        obs = [o[0] for o in outs]
        assert np.array_equal(outs[0][1], outs[1][1]) and np.array_equal(outs[0][2], outs[1][2])
        _same_infos(outs[0][3], outs[1][3])
    assert outs[0][2].all()  # the whole episode was compared


def test_bank_replays_a_missing_data_panel_like_the_live_market(tmp_path):
    """Fixed contexts on a panel with absent cells (mask, tradable): PortfolioEnv reset with bank
    path i's episode seed and start replays path i, as on the live market."""
    panel = make_panel(400, 5, seed=2, missing=True)
    split = Split.by_fraction(panel.dates)
    gen = LedoitWolfGenerator(window=30).fit(panel, split, progress=False)
    ctx = [str(panel.dates[r].date()) for r in (60, 200, 205)]  # asset 0 is absent at row 60, asset 4 at 205
    simulate_bank(gen, panel, n_paths=4, horizon=6, out=tmp_path / "b", contexts=",".join(ctx), seed=5, progress=False)
    bank = read_bank(tmp_path / "b")
    assert bank.spec.run is None and bank.spec.context_dates == (ctx[0], ctx[1], ctx[2], ctx[0])
    markets = (GenerativeMarket(gen, panel, horizon=6), BankMarket(bank, panel))
    for i in range(4):
        opts = {"episode_seed": int(bank.episode_seeds[i]), "start": bank.spec.context_dates[i]}
        envs = [PortfolioEnv(m, window=10, action_mode="softmax") for m in markets]
        o = [e.reset(options=opts) for e in envs]
        assert "mask" in o[0][0] and all(np.array_equal(o[0][0][k], o[1][0][k]) for k in o[0][0])
        for _ in range(6):
            a = np.zeros(envs[0].action_space.shape, dtype=np.float32)
            s = [e.step(a) for e in envs]
            assert all(np.array_equal(s[0][0][k], s[1][0][k]) for k in s[0][0]) and s[0][1] == s[1][1]
            _same_infos([s[0][4]], [s[1][4]])
        r = [envs[0].engine.paths.returns_window()[0, -6:], bank.returns[i]]
        assert np.array_equal(*r)


def test_other_episodes_draw_bank_paths_by_their_seed(run_dir, tmp_path):
    simulate_bank(run_dir, n_paths=6, horizon=4, out=tmp_path / "b", contexts="every:500:train", seed=1, progress=False)
    market = BankMarket(tmp_path / "b")
    picks = []
    for s in (100, 101, 100):
        env = VecPortfolioEnv(market, 3, seed=s)
        env.reset()
        picks.append(env.engine.paths.bank_paths().tolist())
        r = env.engine.paths.step()
        assert np.array_equal(r, market.bank.returns[picks[-1], 0])
    assert picks[0] == picks[2] and picks[0] != list(range(3))  # a function of the episode seeds
    with pytest.raises(DataValidationError, match="no path starting at"):
        PortfolioEnv(market).reset(options={"start": "2005-06-01"})
    with pytest.raises(DataValidationError, match="moments"):
        VecPortfolioEnv(market, 2, moments="diag")
    with pytest.raises(DataValidationError, match="horizon"):
        BankMarket(tmp_path / "b", horizon=5)
    with pytest.raises(DataValidationError, match="not the data"):
        BankMarket(tmp_path / "b", make_panel(300, 20))


def test_refresh_switches_to_a_new_bank_at_the_next_full_reset(run_dir, tmp_path):
    kw = {"n_paths": 4, "horizon": 5, "contexts": "every:300:train", "progress": False}
    market = BankMarket(simulate_bank(run_dir, out=tmp_path / "a", seed=1, **kw))
    new = read_bank(simulate_bank(run_dir, out=tmp_path / "b", seed=2, **kw))
    env = VecPortfolioEnv(market, 2, seed=2)  # the new bank's seed: its paths 0 and 1 once refreshed
    env.reset()
    old = market.bank.returns
    market.refresh(new)
    env.engine.reset_paths(np.array([1]), [123], [None])  # a single path's auto-reset keeps the old bank
    assert np.array_equal(env.engine.paths.step()[1], old[env.engine.paths.bank_paths()[1], 0])
    env.seed(2)
    env.reset()
    assert env.engine.paths.bank_paths().tolist() == [0, 1]
    assert np.array_equal(env.engine.paths.step(), new.returns[[0, 1], 0])
    with pytest.raises(DataValidationError, match="horizon"):
        BankMarket(tmp_path / "a").refresh(read_bank(simulate_bank(run_dir, out=tmp_path / "c", n_paths=2, horizon=3, progress=False)))


# ---------------------------------------------------------------- files


def test_bank_files_spec_and_exact_regeneration(run_dir, tmp_path):
    out = simulate_bank(run_dir, n_paths=7, horizon=5, out=tmp_path / "b", contexts="every:250:train", seed=3,
                        shard_size=3, progress=False)  # fmt: skip
    spec = json.loads((out / "bank.json").read_text())
    assert [s["file"] for s in spec["shards"]] == [f"shards/part-0000{k}.parquet" for k in range(3)]
    assert spec["run_sha256"] == json.loads((run_dir / "run.json").read_text())["artifact_sha256"]
    assert len(spec["episode_seeds"]) == len(spec["context_dates"]) == 7
    import pandas as pd

    df = pd.read_parquet(out / "shards")  # a quant's way in
    assert list(df.columns[:3]) == ["path", "day", "context_date"] and len(df) == 7 * 5
    bank = read_bank(out)
    assert np.array_equal(df[list(bank.assets)].to_numpy().reshape(7, 5, -1), bank.returns)
    # numbers depend on the paths, not on the shard layout
    other = simulate_bank(run_dir, n_paths=7, horizon=5, out=tmp_path / "c", contexts="every:250:train", seed=3,
                          shard_size=7, progress=False)  # fmt: skip
    assert np.array_equal(read_bank(other).returns, bank.returns)
    again = regenerate_bank(out, tmp_path / "again", progress=False)
    assert _same_tree(out, again)
    (out / "shards" / "part-00001.parquet").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="SHA-256"):
        read_bank(out).returns  # noqa: B018


def test_a_failed_write_leaves_the_previous_bank(run_dir, tmp_path, monkeypatch):
    out = simulate_bank(run_dir, n_paths=4, horizon=3, out=tmp_path / "b", shard_size=2, progress=False)
    before = {f: (out / f).read_bytes() for f in _files(out)}
    import factorgym.generators.banks.write as write

    real = write.shard_task

    def dies_on_second(job, source):
        if job.index == 1:
            raise DataValidationError("simulated failure")
        return real(job, source)

    monkeypatch.setattr(write, "shard_task", dies_on_second)
    with pytest.raises(DataValidationError, match="simulated failure"):
        simulate_bank(run_dir, n_paths=4, horizon=3, out=out, shard_size=2, seed=9, progress=False)
    assert {f: (out / f).read_bytes() for f in _files(out)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no staging folder left
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(DataValidationError, match="not a bank"):
        simulate_bank(run_dir, n_paths=2, horizon=2, out=tmp_path / "x", progress=False)


@pytest.mark.parametrize(
    ("contexts", "match"),
    [("every:0", "every:K"), ("random:nope", "split part"), ("1980-01-02", "outside"), ("1990-01-05", "history"),
     ("sometimes", "not a date"), ("every:5:train:x", "not understood"), ("", "empty")],
)  # fmt: skip
def test_bad_contexts_name_the_value(run_dir, tmp_path, contexts, match):
    with pytest.raises(DataValidationError, match=match):
        simulate_bank(run_dir, n_paths=2, horizon=2, out=tmp_path / "b", contexts=contexts, progress=False)
    assert not (tmp_path / "b").exists()


def test_cli_simulate_and_regenerate(run_dir, tmp_path, capsys):
    from factorgym.app import cli

    assert cli.main([
        "simulate", str(run_dir), "--paths", "3", "--horizon", "4", "--out", str(tmp_path / "b"), "--contexts", "random:val",
    ]) == 0  # fmt: skip
    spec = read_bank(tmp_path / "b").spec
    assert spec.n_paths == 3 and spec.context_kind == "random"
    assert all("2014-01-01" <= d <= "2018-12-31" for d in spec.context_dates)
    assert cli.main(["simulate", "--from", str(tmp_path / "b"), "--out", str(tmp_path / "c")]) == 0
    assert _same_tree(tmp_path / "b", tmp_path / "c")
    assert cli.main(["simulate", str(run_dir), "--paths", "0", "--out", str(tmp_path / "d")]) == 2
    assert "n_paths must be" in capsys.readouterr().err


# ---------------------------------------------------------------- parallel


def _square_or_fail(x: int) -> int:
    if x < 0:
        raise DataValidationError(f"negative item {x}")
    return x * x


def test_map_tasks_sequential():
    seen = []
    assert map_tasks(_square_or_fail, [3, 1, 2], on_result=lambda i, r: seen.append((i, r))) == [9, 1, 4]
    assert seen == [(0, 9), (1, 1), (2, 4)]
    assert map_tasks(_square_or_fail, [3], keep=False) == []
    with pytest.raises(FactorGymError, match="workers"):
        map_tasks(_square_or_fail, [1], workers=0)


def test_two_ray_workers_write_the_same_bank_as_one(run_dir, tmp_path):
    """A local Ray with 2 CPUs: identical files for workers=1 and workers=2, results in order, a
    task's FactorGymError raised as itself; the session is shut down afterwards."""
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    kw = {"n_paths": 7, "horizon": 6, "shard_size": 2, "seed": 4, "contexts": "random:train", "progress": False}
    one = simulate_bank(run_dir, out=tmp_path / "one", workers=1, **kw)
    with ray_session(num_cpus=2):
        two = simulate_bank(run_dir, out=tmp_path / "two", workers=2, **kw)
        seen = []
        # Ray workers import functions by module: a library function here, not one of this file
        fn = functools.partial(check_positive, "item")
        assert map_tasks(fn, [5, 4, 3, 2], workers=2, on_result=lambda i, r: seen.append(i)) == [5, 4, 3, 2]
        assert seen == [0, 1, 2, 3]
        with pytest.raises(DataValidationError, match="item must be a whole number >= 1, got -1"):
            map_tasks(fn, [1, -1], workers=2)
        assert ray.is_initialized()
    assert not ray.is_initialized()
    assert _same_tree(one, two)

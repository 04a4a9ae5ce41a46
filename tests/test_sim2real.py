"""``factorgym sim2real``: the config is checked before any training, the statistics on known
inputs, and a tiny sweep (2 arms x 2 seeds on a small panel) gives the same numbers on a
local Ray with 2 CPUs as one after the other, resumes without retraining, and writes its
results folder whole."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from helpers_env import make_panel

from factorgym.app.cli import main
from factorgym.app.sim2real import Arm, Sim2RealConfig, load_config, run_sim2real
from factorgym.app.sim2real.config import FIXED_TRAIN_KEYS
from factorgym.app.sim2real.run import count_trials
from factorgym.app.sim2real.stats import (
    deflated_sharpe,
    improvement_interval,
    iqm_summary,
    probability_of_improvement,
    seed_mix_returns,
)
from factorgym.data import Split
from factorgym.errors import FactorGymError
from factorgym.generators.runs import RunSpec, fit_run
from factorgym.io import write_panel

TINY_PPO = {"n_steps": 64, "batch_size": 64, "n_epochs": 1, "policy_kwargs": {"net_arch": [16]}}


# =========================================================================== statistics
def test_probability_of_improvement_of_separated_samples_is_one_and_ties_count_half():
    lo, hi = np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.6, 0.7, 0.8])
    assert probability_of_improvement(hi, lo) == 1.0
    assert probability_of_improvement(lo, hi) == 0.0
    assert probability_of_improvement(lo, lo) == 0.5  # a sample against itself: 3 wins, 3 losses, 3 ties of 9
    assert probability_of_improvement([1.0, 2.0], [1.0]) == 0.75  # one tie (1/2 each) and one win
    est, a, b = improvement_interval(hi, lo, reps=500, seed=0)
    assert (est, a, b) == (1.0, 1.0, 1.0)  # every resample is separated too
    est, a, b = improvement_interval([0.0, 1.0, 2.0, 3.0], [1.5, 2.5], reps=500, seed=0)
    assert est == pytest.approx(3 / 8) and 0.0 <= a <= est <= b <= 1.0 and a < b


def test_iqm_summary_is_the_mean_of_the_middle_half():
    x = [1.0, 2.0, 3.0, 4.0, 100.0, -50.0, 2.5, 3.5]  # sorted: -50 1 2 2.5 3 3.5 4 100 -> middle four 2 2.5 3 3.5
    est, lo, hi = iqm_summary(x, reps=400, seed=1)
    assert est == pytest.approx(2.75)
    assert lo <= est <= hi
    assert math.isnan(iqm_summary(x, reps=0)[1])


def test_deflated_sharpe_falls_as_trials_grow_and_seed_mix_is_the_mean():
    rng = np.random.default_rng(0)
    r = 0.0008 + 0.01 * rng.standard_normal(750)
    trials = rng.normal(0.03, 0.02, 40)
    one, many = deflated_sharpe(r, n_trials=1, trial_sharpes=trials), deflated_sharpe(r, n_trials=40, trial_sharpes=trials)
    assert one["n_trials"] == 1 and many["n_trials"] == 40
    assert many["dsr"] < one["dsr"] and many["threshold"] > one["threshold"] == 0.0
    assert np.array_equal(seed_mix_returns([[1.0, 2.0], [3.0, 4.0]]), [2.0, 3.0])


# =========================================================================== config checks
def _arm(**kw):
    return Arm(**{"name": "replay", "market": "historical", "algo_kwargs": dict(TINY_PPO), **kw})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arms": (_arm(), _arm())}, "unique"),
        ({"seeds": (0, 0)}, "distinct"),
        ({"seeds": (-1,)}, "seed"),
        ({"lags": ()}, "lags"),
        ({"eval_freq": 10_000, "total_timesteps": 100}, "eval_freq"),
        ({"reference_arm": "nope"}, "reference_arm 'nope'"),
        ({"baselines": ("mv:ledoit_wolf",)}, "equal_weight"),
        ({"train_end": "2015-01-01", "val_end": "2014-01-01"}, "must precede"),
        ({"arms": (_arm(algo="dqn"),)}, "unknown algo 'dqn'"),
        ({"arms": (_arm(algo_kwargs={"n_stepz": 64}),)}, "n_stepz"),
        ({"arms": (_arm(algo_kwargs={"n_steps": "many"}),)}, "n_steps"),
        ({"arms": (_arm(env={"windoww": 5}),)}, "windoww"),
        ({"arms": (_arm(env={"window": 0}),)}, "window"),
        ({"arms": (_arm(train={"total_timesteps": 5}),)}, "total_timesteps"),
        ({"arms": (_arm(train={"not_a_keyword": 1}),)}, "not_a_keyword"),
        ({"arms": (_arm(market={"source": "historical", "val_end": "2020-01-01"}),)}, "val_end"),
    ],
)
def test_bad_settings_are_refused_naming_them(kwargs, message):
    base = {"arms": (_arm(),), "seeds": (0,), "total_timesteps": 256, "eval_freq": 128}
    with pytest.raises(FactorGymError, match=message):
        Sim2RealConfig(**{**base, **kwargs})


def test_bad_arm_names_are_refused():
    for name in ("", "a/b", "../up", "x" * 65):
        with pytest.raises(FactorGymError, match="arm name"):
            Arm(name=name)


def test_fixed_train_keys_are_the_experiments_own():
    assert {"total_timesteps", "seed", "eval_freq", "torch_threads", "checkpoint_freq"} <= FIXED_TRAIN_KEYS


def test_config_files_unknown_keys_and_syntax_errors(tmp_path):
    good = tmp_path / "ok.toml"
    good.write_text(
        'seeds = [0, 1]\ntotal_timesteps = 512\nbuy_bps = 10\n[validation]\neval_freq = 256\n'
        '[defaults]\nalgo_kwargs = { n_steps = 64 }\n[[arms]]\nname = "replay"\n'
        '[[arms]]\nname = "gen"\nmarket = "runs/g"\nalgo_kwargs = { batch_size = 32 }\n'
    )
    cfg = load_config(good)
    assert cfg.cost_model.buy == pytest.approx(1e-3) and cfg.eval_freq == 256 and cfg.reference_arm == "replay"
    assert dict(cfg.arm("gen").algo_kwargs) == {"n_steps": 64, "batch_size": 32}  # defaults merged under the arm's
    assert cfg.arm("gen").market == str((tmp_path / "runs" / "g").resolve())  # relative to the file
    for text, message in [
        ('seedz = [0]\n[[arms]]\nname = "a"\n', "seedz"),
        ('[validation]\neval_every = 3\n[[arms]]\nname = "a"\n', "eval_every"),
        ('[[arms]]\nname = "a"\nmarkett = "historical"\n', "markett"),
        ('[defaults]\nalgo_kwarg = {}\n[[arms]]\nname = "a"\n', "algo_kwarg"),
        ("seeds = [0\n", "not valid TOML"),
        ("seeds = [0]\n", "arms"),
        ('buy_bps = -1\n[[arms]]\nname = "a"\n', "buy_bps"),
    ]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(FactorGymError, match=message):
            load_config(bad)
    js = tmp_path / "c.json"
    js.write_text(json.dumps(cfg.to_dict()))
    assert load_config(js) == cfg  # the JSON form round-trips


# =========================================================================== the tiny sweep
@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim2real")
    panel = make_panel(T=600, N=4, seed=3)
    csv = root / "panel.csv"
    write_panel(panel, csv)
    split = Split.by_fraction(panel.dates)  # train 360 days, val 120, test 120
    fit_run(RunSpec(kind="ledoit_wolf", dataset=str(csv), train_end=split.train_end, val_end=split.val_end,
                    params={"window": 21}), root / "run", progress=False)  # fmt: skip
    cfg = Sim2RealConfig(
        arms=(_arm(name="replay"), _arm(name="lw", market=str(root / "run"), env={"temperature": 1.0}, compare_to="replay")),
        seeds=(0, 1), dataset=str(csv), train_end=split.train_end, val_end=split.val_end, total_timesteps=256,
        n_envs=2, horizon=32, eval_freq=128, eval_episodes=2, eval_horizon=32, curve_episodes=2, lags=(0, 1),
        bootstrap_reps=200, baselines=("equal_weight", "mv:ledoit_wolf,window=60"),
    )  # fmt: skip
    seq = run_sim2real(cfg, root / "seq", workers=1, progress=False)
    return SimpleNamespace(root=root, cfg=cfg, seq=seq, run=root / "run")


def _records(out):
    recs = {}
    for f in sorted(out.glob("runs/**/*.json")):
        d = json.loads(f.read_text())
        d.pop("timing", None)
        recs[str(f.relative_to(out))] = d
    return recs


def test_sweep_on_ray_with_two_cpus_equals_the_sequential_run(sweep):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        par = run_sim2real(sweep.cfg, sweep.root / "ray", workers=2, progress=False)
    finally:
        ray.shutdown()
    seq_recs, par_recs = _records(sweep.root / "seq"), _records(sweep.root / "ray")
    assert len(seq_recs) == 5 and seq_recs == par_recs  # every metric and daily return, to the last digit
    pd.testing.assert_frame_equal(sweep.seq.arms, par.arms, check_exact=True)
    pd.testing.assert_frame_equal(sweep.seq.curves, par.curves, check_exact=True)
    assert sweep.seq.summary == par.summary


def test_sweep_tables_cover_every_arm_seed_lag_and_curve(sweep):
    r = sweep.seq
    assert sorted(r.arms[["arm", "lag"]].itertuples(index=False, name=None)) == [("lw", 0), ("lw", 1), ("replay", 0), ("replay", 1)]
    assert len(r.runs) == 2 * 2 * 2 and set(r.baselines["baseline"]) == {"equal_weight", "mv:ledoit_wolf"}
    lw = r.arms.set_index(["arm", "lag"]).loc[("lw", 0)]
    assert 0.0 <= lw["poi_vs_reference"] <= 1.0 and lw["n_seeds"] == 2
    assert math.isnan(r.arms.set_index(["arm", "lag"]).loc[("replay", 0), "poi_vs_reference"])  # the reference itself
    # the paired comparison: lw is paired with replay, so both probabilities compare the same seeds
    assert lw["compare_to"] == "replay" and lw["poi_vs_pair"] == lw["poi_vs_reference"]
    assert math.isnan(r.arms.set_index(["arm", "lag"]).loc[("replay", 0), "poi_vs_pair"])
    with pytest.raises(FactorGymError, match="compare_to 'nope'"):
        replace(sweep.cfg, arms=(_arm(name="replay"), _arm(name="x", compare_to="nope")))
    with pytest.raises(FactorGymError, match="compare_to must name another arm"):
        _arm(name="x", compare_to="x")
    # learning curves: both curves for every run, the training-market one from the first (untrained) checkpoint
    c = r.curves
    assert set(c["curve"]) == {"validation", "train_market"}
    assert c.groupby(["arm", "seed", "curve"]).size().min() >= 2
    assert c[c["curve"] == "train_market"]["timesteps"].min() == 0
    # the real evaluation is a backtest on the real periods: 1/N's numbers are the same as `backtest`'s
    ew = r.baselines.set_index(["baseline", "lag"])
    assert ew.loc[("equal_weight", 0), "test_n_periods"] == 120 and ew.loc[("equal_weight", 0), "val_n_periods"] == 120


def test_deflated_sharpe_counts_every_trained_run_in_the_folder(sweep):
    out = sweep.root / "seq"
    assert count_trials(out) == 4 == sweep.seq.summary["n_trials"]
    assert set(sweep.seq.arms["n_trials"]) == {4.0}


def test_best_arm_is_chosen_on_validation_only(sweep):
    r = sweep.seq
    at = r.arms[r.arms["lag"] == 0].set_index("arm")
    assert r.summary["best_arm"] == "lw"  # the only non-reference arm
    assert r.summary["best"]["test_sharpe_iqm"] == at.loc["lw", "test_sharpe_iqm"]
    # with a second candidate, the one with the higher validation IQM wins whatever its test figures
    fake = replace(r.config, arms=(*r.config.arms, _arm(name="other")))
    from factorgym.app.sim2real.results import _summary

    arms = pd.concat([r.arms, r.arms[r.arms["arm"] == "lw"].assign(arm="other", val_sharpe_iqm=99.0, test_sharpe_iqm=-9.0)])
    s = _summary(fake, arms, r.curves, {"test": {"0": {"metrics": {"sharpe": 1.0}}}, "val": {"0": {"metrics": {"sharpe": 1.0}}}}, 6, 6)
    assert s["best_arm"] == "other" and s["best"]["test_sharpe_iqm"] == -9.0


def test_results_folder_and_report(sweep):
    res = sweep.root / "seq" / "results"
    names = {p.name for p in res.iterdir()}
    assert {"arms.csv", "arms.md", "runs.csv", "baselines.csv", "curves.csv", "summary.json", "report.html", "config.json"} <= names
    html = (res / "report.html").read_text()
    assert "Learning curves" in html and "training market" in html and "lw: real validation" in html
    assert "P(improvement) over paired arm" in html and "its pair with the same tools" in html
    assert not [p for p in res.parent.iterdir() if p.name.startswith(".results")]  # no staging folder left
    # the checkpoint diagnosis: every arm, and the split adds up (excess = allocation + costs)
    diag = pd.read_csv(res / "diagnosis.csv")
    assert set(diag["arm"]) == {a.name for a in sweep.cfg.arms} and (diag["n_seeds"] == len(sweep.cfg.seeds)).all()
    np.testing.assert_allclose(diag["excess_log_wealth"], diag["allocation"] + diag["costs"], atol=1e-12)
    assert "Diagnosis: allocation or costs?" in html


def test_rerun_resumes_without_retraining_and_a_changed_arm_is_refused(sweep):
    out = sweep.root / "seq"
    agent_json = out / "agents" / "lw" / "seed_0" / "agent.json"
    before = agent_json.stat().st_mtime_ns
    assert main([]) == 2  # the CLI is importable (help, usage error)
    cfg_file = sweep.root / "cfg.json"
    cfg_file.write_text(json.dumps(sweep.cfg.to_dict()))
    assert load_config(cfg_file) == sweep.cfg
    assert main(["sim2real", str(cfg_file), "--out", str(out), "--workers", "1", "--no-report"]) == 0
    assert agent_json.stat().st_mtime_ns == before  # reused, not retrained
    again = pd.read_csv(out / "results" / "arms.csv")
    pd.testing.assert_frame_equal(again, sweep.seq.arms.reset_index(drop=True), check_dtype=False)
    changed = replace(sweep.cfg, arms=(sweep.cfg.arms[0], replace(sweep.cfg.arms[1], env={"temperature": 0.5})))
    with pytest.raises(FactorGymError, match="other settings"):
        run_sim2real(changed, out, workers=1, progress=False)


def test_inputs_are_checked_before_any_training(sweep, tmp_path, capsys):
    missing = replace(sweep.cfg, arms=(sweep.cfg.arms[0], _arm(name="ghost", market=str(tmp_path / "no_run"))))
    with pytest.raises(FactorGymError, match="does not exist"):
        run_sim2real(missing, tmp_path / "x", workers=1, progress=False)
    assert not (tmp_path / "x").exists()
    other_split = replace(sweep.cfg, train_end="2001-06-29")
    with pytest.raises(FactorGymError, match="share the split"):
        run_sim2real(other_split, tmp_path / "y", workers=1, progress=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "precious.txt").write_text("keep")
    with pytest.raises(FactorGymError, match="not empty"):
        run_sim2real(sweep.cfg, tmp_path / "busy", workers=1, progress=False)
    bad = tmp_path / "bad.toml"
    bad.write_text('seeds = [0]\n[[arms]]\nname = "a"\nalgo = "dqn"\n')
    assert main(["sim2real", str(bad), "--out", str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dqn" in err[0]


def test_shipped_configs_are_valid_and_the_sweep_is_large_enough():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    small = load_config(root / "examples" / "sim2real_small.toml")
    assert all(small.policy_updates(a) >= 20 for a in small.arms)
    full = load_config(root / "benchmarks" / "sim2real_sp500.toml")
    assert len(full.arms) >= 8 and len(full.seeds) >= 5 and full.reference_arm == "replay"
    assert all(full.policy_updates(a) >= 20 for a in full.arms)  # equal budget, at least 20 PPO updates
    assert full.lags == (0, 1)


def test_mixture_arms_resolve_their_sources_and_each_is_checked(tmp_path):
    cfg_file = tmp_path / "cfg" / "mix.toml"
    cfg_file.parent.mkdir()
    cfg_file.write_text(
        'seeds = [0]\n[[arms]]\nname = "replay"\nmarket = "historical"\n'
        '[[arms]]\nname = "mix"\nmarket = { source = "mixture", mixture = [["historical", 2], ["runs/nf", 1]] }\n'
    )
    cfg = load_config(cfg_file)
    mix = cfg.arm("mix").market
    assert mix["source"] == "mixture"  # a keyword, not a path
    assert mix["mixture"][0][0] == "historical" and mix["mixture"][1][0] == str((cfg_file.parent / "runs" / "nf").resolve())
    with pytest.raises(FactorGymError, match="'mix'.*runs/nf does not exist"):
        run_sim2real(cfg, tmp_path / "out", workers=1, progress=False)
    assert not (tmp_path / "out").exists()

"""The main job end to end on tiny budgets: every stage runs, the report shows the figures
the library computed, and a second run reuses the finished stages."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd
import pytest

from factorgym.app.demo import DemoConfig, run_demo


def _tiny(out: Path) -> DemoConfig:
    return DemoConfig(
        out=str(out),
        generators={
            "neuralfactors": {"max_steps": 3, "hidden": 16, "n_layers": 1, "k": 2, "val_k": 2, "val_every": 3, "warmup_steps": 1},
            "ledoit_wolf": {},
        },
        eval_samples=16,
        eval_sim_paths=2,
        eval_overrides={"ledoit_wolf": {"day_stride": 50}, "neuralfactors": {"day_stride": 50}},
        ppo_timesteps=128,
        ppo_envs=2,
        ppo_kwargs={"n_steps": 64, "batch_size": 64, "n_epochs": 1},
        backtest_paths=2,
        backtest_horizon=5,
        bootstrap_reps=20,
        stress_scenarios=64,
        stress_horizon=3,
    )


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    run_demo(_tiny(out))
    return out


def test_every_stage_writes_its_outputs(demo_dir: Path) -> None:
    for rel in (
        "report.html",
        "generators/neuralfactors/generator.fgz",
        "evaluation/generator_reports.csv",
        "agents/ppo/model.zip",
        "backtest/summary_real.csv",
        "stress/loss_summary.csv",
    ):
        assert (demo_dir / rel).is_file(), rel
    stages = sorted(p.parent.name for p in demo_dir.rglob("stage.json"))
    assert stages == sorted(["neuralfactors", "ledoit_wolf", "evaluation", "ppo", "backtest", "stress"])


def test_report_shows_the_computed_figures(demo_dir: Path) -> None:
    page = html.unescape((demo_dir / "report.html").read_text())
    table = pd.read_csv(demo_dir / "evaluation" / "generator_reports.csv", index_col=0)
    summary = pd.read_csv(demo_dir / "backtest" / "summary_real.csv", index_col=0)
    for kind in ("neuralfactors", "ledoit_wolf"):
        assert kind in page
    nll = table.loc["ledoit_wolf", "NLL joint"]
    assert f"{nll:.4f}"[:5] in page  # the evaluated number, however the table rounds it
    assert "ppo:neuralfactors" in summary.index and "equal_weight" in summary.index
    assert "day_stride=50" in page  # the reduced evaluation is stated, not hidden
    for word in ("placeholder", "TODO", "lorem"):
        assert word not in page.lower()


def test_rerun_reuses_finished_stages(demo_dir: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in demo_dir.rglob("stage.json")}
    marker = json.loads((demo_dir / "backtest" / "stage.json").read_text())
    run_demo(_tiny(demo_dir))
    after = {p: p.stat().st_mtime_ns for p in demo_dir.rglob("stage.json")}
    assert before == after  # nothing refitted, re-evaluated or re-run
    assert json.loads((demo_dir / "backtest" / "stage.json").read_text()) == marker


def test_a_changed_upstream_stage_reruns_its_dependants(demo_dir: Path, tmp_path: Path) -> None:
    import shutil

    work = tmp_path / "demo"
    shutil.copytree(demo_dir, work)
    cfg = _tiny(work)
    cfg.generators["ledoit_wolf"] = {"window": 42}  # a different LW run
    stamp = {p.parent.name: p.stat().st_mtime_ns for p in work.rglob("stage.json")}
    run_demo(cfg)
    now = {p.parent.name: p.stat().st_mtime_ns for p in work.rglob("stage.json")}
    changed = {k for k in now if now[k] != stamp.get(k)}
    # LW is refitted and re-evaluated; NeuralFactors, PPO and everything fed by them is reused
    assert changed == {"ledoit_wolf", "evaluation"}

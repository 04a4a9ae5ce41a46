"""The main job end to end on tiny budgets: every stage runs, the report shows the figures
the library computed, and a second run reuses the finished stages."""

from __future__ import annotations

import html
import json
import re
import shutil
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
    text = page.split("<footer>")[0]  # the page without the embedded plotly.js (its code says "placeholder")
    for word in ("placeholder", "TODO", "lorem"):
        assert word not in text.lower()


def test_report_states_findings_with_intervals_and_caveats_in_human_terms(demo_dir: Path) -> None:
    raw = (demo_dir / "report.html").read_text()
    body = html.unescape(raw.split("<footer>")[0])  # without plotly.js
    summary = body[body.index('id="summary"') : body.index('id="generators')]
    summary_real = pd.read_csv(demo_dir / "backtest" / "summary_real.csv", index_col=0)
    assert "Best fit on the test split by joint NLL: ledoit_wolf" in summary or "Best fit on the test split by joint NLL: neuralfactors" in summary
    assert "Diebold-Mariano" in summary
    for agent in ("mv:ledoit_wolf", "cvar:neuralfactors", "ppo:neuralfactors"):
        r = summary_real.loc[agent]
        lo, hi = (f"{r[k]:.2f}".replace("-0.00", "0.00") for k in ("sharpe_minus_ew_ci_lower", "sharpe_minus_ew_ci_upper"))
        assert re.search(re.escape(agent) + r": Sharpe [-\d.]+ \[[-\d.]+, [-\d.]+\]; difference to 1/N [-\d.]+ \[" + re.escape(f"{lo}, {hi}") + r"\]", summary)
    assert "ES" in body and "Stress, historical replay covid-2020" in summary
    for caveat in ("Survivorship", "20 of today's large caps", "price index without dividends", "two-way", "7.5 bps", "cash earns"):
        assert caveat in summary, caveat
    # human column names with units, formatted numbers, settings as a table, a "how to read" everywhere
    for code in ("sharpe_synthetic_median", "annualised_return_real", "prob_drawdown_at_least_realised", "NLL joint"):
        assert f">{code}<" not in body, code
    assert "Sharpe (ann.) — synthetic median" in body and "P(simulated drawdown ≥ realised)" in body
    assert f">{summary_real.loc['equal_weight', 'annualised_return']:.1%}<" in body
    assert '{"neuralfactors"' not in body and ">generators fitted, with their overrides" in body
    assert body.count("How to read:") >= body.count("<table") and body.count('class="plot"') >= 8
    # the NLL figure is zoomed onto the values
    figs = [json.loads(m) for m in re.findall(r'id="fig-\d+-data">(.*?)</script>', raw, re.S)]
    nll = next(f for f in figs if "Negative log-likelihood" in f["layout"]["title"]["text"])
    lo, hi = nll["layout"]["xaxis"]["range"]
    values = [v for t in nll["data"] for v in t["x"] if v is not None]
    assert lo > 0.0 and lo <= min(values) and hi >= max(values)


def test_report_is_rebuilt_from_saved_results_without_recomputing(demo_dir: Path, tmp_path: Path) -> None:
    import factorgym.app.cli.report  # noqa: F401  (registers ``factorgym report``)
    from factorgym.app.cli import main

    work = tmp_path / "demo"
    shutil.copytree(demo_dir, work)
    pages = [work / "report.html", work / "backtest" / "report.html"]

    def text(p: Path) -> str:
        return re.sub(r"generated [^<]*", "", p.read_text())

    before = {p: text(p) for p in pages}
    for p in pages:
        p.unlink()
    results = {p: p.stat().st_mtime_ns for p in work.rglob("*") if p.is_file()}
    assert main(["report", str(work)]) == 0
    assert {p: text(p) for p in pages} == before  # the same pages the run wrote
    assert {p: p.stat().st_mtime_ns for p in results} == results  # no result file rewritten
    assert main(["report", str(work / "backtest"), "--out", str(tmp_path / "bt.html")]) == 0
    assert text(tmp_path / "bt.html") == before[pages[1]]
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert main(["report", str(work / "stress" / "..")]) == 0


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

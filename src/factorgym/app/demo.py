"""The end-to-end main job: ``factorgym demo``.

On the embedded sp500 data, with progress bars:

1. fit NeuralFactors (small default config), the diffusion model and the classical
   baselines (train 1990-2013, model selection on 2014-2018);
2. evaluate every generator on the test split (2019-2022);
3. train a short PPO agent in the NeuralFactors market;
4. backtest 1/N, Ledoit-Wolf mean-variance, the generator-driven mean-variance and
   mean-CVaR optimizers and the PPO agent on the real test path and on synthetic paths;
5. run stress scenarios (a NeuralFactors market-factor shock and the 2020 crisis context);
6. write ``runs/demo/report.html`` (and every table as CSV/JSON beside it): a summary of
   the findings with their intervals and the caveats, then each stage's tables and
   interactive figures (:func:`write_demo_report`; ``factorgym report runs/demo`` rebuilds it).

Each stage writes its products under the output folder together with ``stage.json``
recording the settings it ran with; a re-run skips every stage whose record matches (so an
interrupted demo picks up where it stopped), and the report is always rebuilt from the
files on disk, so every figure in it is one the library computed and saved.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from factorgym.app.demo_report import write_demo_report
from factorgym.app.specs import AgentSpec
from factorgym.artifacts import atomic_write_text
from factorgym.data import ReturnPanel, Split, load_dataset
from factorgym.generators.base import compute_threads
from factorgym.generators.runs import RunSpec, fit_run
from factorgym.progress import Progress

__all__ = ["DemoConfig", "load_demo_config", "run_demo", "write_demo_report"]


@dataclass(frozen=True)
class DemoConfig:
    """Budgets of the demo (defaults: about 5 minutes of stages on 2 CPU cores, also beside
    another busy process; see ``benchmarks/results/load.md``).

    The generators train on shorter budgets than their library defaults (NeuralFactors 600
    steps instead of 1,200, the diffusion model 800 instead of 3,000; see
    ``benchmarks/RESULTS.md`` for the full-budget figures), and the diffusion model, which
    runs its sampler for every scenario of every day, is evaluated on every 8th test day
    with 256 scenarios.
    """

    out: str = "runs/demo"
    seed: int = 0
    #: generator kind -> constructor overrides (config fields)
    generators: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "neuralfactors": {"max_steps": 600},
            "diffusion": {"max_steps": 800, "n_moment_samples": 256},
            "ledoit_wolf": {},
            "bootstrap": {},
            "garch": {},
            "ppca": {"n_factors": 12, "window": 252},
        }
    )
    eval_samples: int = 500
    eval_sim_paths: int = 20
    #: generator kind -> evaluate_generator overrides (e.g. fewer days for a slow sampler)
    eval_overrides: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"diffusion": {"day_stride": 8, "n_samples": 256, "energy_samples": 256}}
    )
    ppo_timesteps: int = 20_000
    ppo_envs: int = 16
    #: stable-baselines3 PPO keyword arguments (e.g. ``n_steps``) beyond the library defaults
    ppo_kwargs: dict[str, Any] = field(default_factory=dict)
    backtest_paths: int = 8
    backtest_horizon: int = 252
    bootstrap_reps: int = 500
    stress_scenarios: int = 2000
    stress_date: str = "2020-02-19"
    stress_horizon: int = 21
    #: generators whose predictions drive the MV/CVaR agents and the synthetic paths of the
    #: backtest (the diffusion model samples every test day, which is slow on 2 CPU cores)
    backtest_generators: tuple[str, ...] = ("neuralfactors",)
    #: threads of the BLAS, OpenMP and torch pools while each stage runs (restored after;
    #: None leaves them as they are). 1: the stages' work is small per call, and more threads
    #: than free cores spin-wait (``benchmarks/results/load.md``). Results do not depend on it.
    num_threads: int | None = 1


class _Stages:
    """Runs a stage unless its ``stage.json`` in ``folder`` records the same settings."""

    def __init__(self, console: Console, num_threads: int | None = None) -> None:
        self.console = console
        self.num_threads = num_threads
        self.timings: dict[str, float] = {}

    def run(self, name: str, folder: Path, settings: dict[str, Any], fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        marker = folder / "stage.json"
        ident = json.loads(json.dumps(settings, sort_keys=True, default=str))
        if marker.is_file():
            try:
                rec = json.loads(marker.read_text())
            except json.JSONDecodeError:
                rec = {}
            if rec.get("settings") == ident and rec.get("status") == "done":
                self.console.print(f"[dim]- {name}: reusing {folder}[/]")
                self.timings[name] = float(rec.get("seconds", 0.0))
                return dict(rec.get("result", {}))
        self.console.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        with compute_threads(self.num_threads):
            result = fn()
        secs = time.perf_counter() - t0
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(marker, json.dumps({"settings": ident, "status": "done", "seconds": secs, "result": result}, indent=2, default=str))
        self.timings[name] = secs
        self.console.print(f"[green]- {name}: {secs:.0f}s[/]")
        return result


def run_demo(config: DemoConfig | None = None, *, console: Console | None = None) -> Path:
    """Run every stage (reusing finished ones) and write the HTML report; returns its path."""
    cfg = config or DemoConfig()
    console = console or Console()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    panel = load_dataset("sp500")
    split = Split()
    stages = _Stages(console, cfg.num_threads)
    # the settings, so that ``factorgym report`` can rebuild the report from the folder alone
    atomic_write_text(out / "demo.json", json.dumps(asdict(cfg), indent=2, default=str) + "\n")

    # 1. generators ------------------------------------------------------------------
    runs: dict[str, Path] = {}
    #: what each downstream stage depends on: a changed generator or PPO run re-runs them
    upstream: dict[str, Any] = {}
    for kind, params in cfg.generators.items():
        spec = RunSpec(kind=kind, dataset="sp500", seed=cfg.seed, params=params)
        folder = out / "generators" / kind

        def _fit(spec: RunSpec = spec, folder: Path = folder) -> dict[str, Any]:
            # the stage runs when its settings changed or it never finished: a run of another spec
            # is replaced, an unfinished run of this spec resumes
            _, record = fit_run(spec, folder, panel=panel, progress=True, replace=True)
            return {"fit_seconds": record.get("fit_seconds")}

        stages.run(f"fit {kind}", folder, {"spec": spec.identity()}, _fit)
        runs[kind] = folder
        upstream[kind] = spec.identity()

    # 2. generator evaluation ----------------------------------------------------------
    eval_dir = out / "evaluation"
    stages.run(
        "evaluate generators",
        eval_dir,
        {"runs": {k: upstream[k] for k in sorted(runs)}, "samples": cfg.eval_samples, "sim_paths": cfg.eval_sim_paths, "seed": cfg.seed, "overrides": cfg.eval_overrides},
        lambda: _evaluate(runs, panel, split, eval_dir, cfg),
    )

    # 3. PPO in the NeuralFactors market --------------------------------------------------
    ppo_dir = out / "agents" / "ppo"
    nf_run = runs.get("neuralfactors")
    if nf_run is not None and cfg.ppo_timesteps > 0:
        upstream["ppo"] = {
            "market": upstream["neuralfactors"], "timesteps": cfg.ppo_timesteps, "n_envs": cfg.ppo_envs, "seed": cfg.seed,
            "kwargs": cfg.ppo_kwargs,
        }
        stages.run("train PPO in the NeuralFactors market", ppo_dir, upstream["ppo"], lambda: _train_ppo(nf_run, ppo_dir, cfg))

    # 4. backtest ---------------------------------------------------------------------------
    bt_dir = out / "backtest"
    ppo_spec = AgentSpec.of("sb3", ppo_dir, label="ppo:neuralfactors")
    agents = _backtest_agents(runs, cfg) + ([ppo_spec] if "ppo" in upstream and (ppo_dir / "stage.json").is_file() else [])
    bt_gens = [runs[k] for k in cfg.backtest_generators if k in runs]
    stages.run(
        "backtest agents",
        bt_dir,
        {"agents": _spec_texts(agents, out), "upstream": {k: upstream[k] for k in (*cfg.backtest_generators, "ppo") if k in upstream}, "generators": [str(g.relative_to(out)) for g in bt_gens], "paths": cfg.backtest_paths, "horizon": cfg.backtest_horizon, "seed": cfg.seed, "reps": cfg.bootstrap_reps},
        lambda: _backtest(agents, bt_gens, bt_dir, cfg),
    )

    # 5. stress -------------------------------------------------------------------------------
    stress_dir = out / "stress"
    stress_agent_specs = [AgentSpec.of("mv", "ledoit_wolf")] + ([ppo_spec] if "ppo" in upstream else [])
    if nf_run is not None:
        stages.run(
            "stress scenarios",
            stress_dir,
            {"run": upstream["neuralfactors"], "n": cfg.stress_scenarios, "date": cfg.stress_date, "horizon": cfg.stress_horizon, "seed": cfg.seed, "agents": _spec_texts(stress_agent_specs, out), "ppo": upstream.get("ppo")},
            lambda: _stress(nf_run, panel, stress_dir, cfg, stress_agent_specs),
        )

    # 6. report ---------------------------------------------------------------------------------
    path = write_demo_report(out, cfg)
    console.print(f"[bold green]report:[/] {path}")
    return path


# ------------------------------------------------------------------------------- stages
def _backtest_agents(runs: dict[str, Path], cfg: DemoConfig) -> list[AgentSpec]:
    """1/N, Ledoit-Wolf mean-variance, and mean-variance and mean-CVaR on each backtest generator."""
    agents = [AgentSpec.of("equal_weight"), AgentSpec.of("mv", "ledoit_wolf")]
    for kind in cfg.backtest_generators:
        if kind in runs:
            # the CVaR agent reads the predictive's fixed draw (common random numbers across days):
            # fresh draws every day turn sampling noise into trades (benchmarks/results/agents.md)
            agents += [
                AgentSpec.of("mv", runs[kind], label=f"mv:{kind}"),
                AgentSpec.of("cvar", runs[kind], draws="shared", label=f"cvar:{kind}"),
            ]
    return agents


def _spec_texts(specs: list[AgentSpec], out: Path) -> list[str]:
    """The specs as a stage records them (independent of where the output folder is)."""
    return [a.text.replace(str(out), "<out>") for a in specs]


def _evaluate(runs: dict[str, Path], panel: ReturnPanel, split: Split, eval_dir: Path, cfg: DemoConfig) -> dict[str, Any]:
    from factorgym.generators.evaluation import evaluate_generator, reports_table, save_reports
    from factorgym.generators.runs import load_run
    from factorgym.metrics import calibration_curve, calibration_levels

    reports = []
    curves: dict[str, dict[str, list[float]]] = {}
    levels = calibration_levels()
    for kind, folder in runs.items():
        gen, _, _ = load_run(folder)
        opts: dict[str, Any] = {"n_samples": cfg.eval_samples, "sim_paths": cfg.eval_sim_paths}
        opts.update(cfg.eval_overrides.get(kind, {}))
        rep = evaluate_generator(gen, panel, split, "test", rng=np.random.default_rng(cfg.seed), name=kind, **opts)
        reports.append(rep)
        uni = np.nanmean(np.asarray(calibration_curve(rep.pit, levels)), axis=-1) if rep.pit.ndim == 2 else calibration_curve(rep.pit, levels)
        port = calibration_curve(rep.per_day["port_pit"].to_numpy(), levels)
        curves[kind] = {"uni": np.asarray(uni).tolist(), "port": np.asarray(port).tolist()}
    save_reports(reports, eval_dir)
    atomic_write_text(eval_dir / "calibration_curves.json", json.dumps({"levels": levels.tolist(), "curves": curves}))
    table = reports_table(reports)
    return {"nll_joint": {k: float(v) for k, v in table["NLL joint"].items()} if "NLL joint" in table else {}}


def _train_ppo(nf_run: Path, ppo_dir: Path, cfg: DemoConfig) -> dict[str, Any]:
    from factorgym.agents.rl import train_agent

    res = train_agent(
        "ppo", str(nf_run), out_dir=ppo_dir, total_timesteps=cfg.ppo_timesteps, n_envs=cfg.ppo_envs, seed=cfg.seed, progress=True,
        algo_kwargs=cfg.ppo_kwargs or None, eval_freq=max(1, min(10_000, cfg.ppo_timesteps // 2)), overwrite=True,
    )
    return {"path": str(res.path)}


def _backtest(agents: list[AgentSpec], gens: list[Path], bt_dir: Path, cfg: DemoConfig) -> dict[str, Any]:
    from factorgym.app.backtest.experiment import run_backtest

    run_backtest(
        agents, gens, dataset="sp500", out=bt_dir, n_paths=cfg.backtest_paths, horizon=cfg.backtest_horizon,
        seed=cfg.seed, bootstrap_reps=cfg.bootstrap_reps, report=True,
    )  # default costs (7.5 / 12.5 bps), constraints and a zero cash rate
    return {}


def _stress(nf_run: Path, panel: ReturnPanel, stress_dir: Path, cfg: DemoConfig, agents: list[AgentSpec]) -> dict[str, Any]:
    from factorgym.app.agent_factory import agent_from_spec
    from factorgym.app.stress import stress_agents
    from factorgym.generators.runs import load_run
    from factorgym.generators.stress import (
        StressSpec,
        generate,
        loss_summary,
        portfolio_path_returns,
        realised_comparison,
    )

    gen, _, _ = load_run(nf_run)
    ew = np.full(panel.N, 1.0 / panel.N)
    built = [agent_from_spec(a).agent for a in agents]  # loaded once, reset by every run
    rows = []
    specs = {
        "market factor below its 1% quantile (1 day)": StressSpec(
            "factor_shock", run=str(nf_run), date=cfg.stress_date, n_scenarios=cfg.stress_scenarios, quantile=0.01, seed=cfg.seed
        ),
        f"crisis context {cfg.stress_date} ({cfg.stress_horizon} days)": StressSpec(
            "crisis", run=str(nf_run), date=cfg.stress_date, horizon=cfg.stress_horizon, n_scenarios=cfg.stress_scenarios // 4, seed=cfg.seed
        ),
        "no shock (1 day, reference)": StressSpec(
            "vol_regime", run=str(nf_run), date=cfg.stress_date, n_scenarios=cfg.stress_scenarios, vol_scale=1.0, seed=cfg.seed
        ),
    }
    result: dict[str, Any] = {}
    with Progress(len(specs) + 1, "stress scenario sets", every=5.0) as bar:
        for i, (label, spec) in enumerate(specs.items()):
            bar.describe(f"stress: {label}")
            s = generate(spec, generator=gen, panel=panel)
            s.save(stress_dir / f"scenarios_{i}_{spec.kind}.parquet")
            summ = loss_summary(portfolio_path_returns(s.paths, ew))
            rows.append({"scenario set": label, "portfolio": "1/N (constant mix, no costs)", **summ})
            if spec.kind != "vol_regime":  # the agents trade through the shocked and crisis paths
                for name, a_summ in stress_agents(s, built, panel, seed=cfg.seed).items():
                    rows.append({"scenario set": label, "portfolio": f"agent {name} (after costs)", **a_summ})
            if spec.kind == "crisis":
                result["crisis_comparison"] = realised_comparison(s, panel)
            bar.advance()
        bar.describe("stress: historical replay covid-2020")
        replay = generate(StressSpec("replay", window="covid-2020"), panel=panel)
        rows.append({"scenario set": "historical replay covid-2020", "portfolio": "1/N (constant mix, no costs)", **loss_summary(portfolio_path_returns(replay.paths, ew))})
        for name, a_summ in stress_agents(replay, built, panel, seed=cfg.seed).items():
            rows.append({"scenario set": "historical replay covid-2020", "portfolio": f"agent {name} (after costs)", **a_summ})
        bar.advance()
    df = pd.DataFrame(rows)
    atomic_write_text(stress_dir / "loss_summary.csv", df.to_csv(index=False))
    atomic_write_text(stress_dir / "crisis_comparison.json", json.dumps(result.get("crisis_comparison", {}), indent=2))
    return result


# ------------------------------------------------------------------------------- settings
def load_demo_config(out: str | Path) -> DemoConfig:
    """The settings a demo folder was run with (``demo.json``; the defaults when absent)."""
    p = Path(out) / "demo.json"
    if not p.is_file():
        return DemoConfig(out=str(out))
    raw = json.loads(p.read_text(encoding="utf-8"))
    known = {f for f in DemoConfig.__dataclass_fields__}
    kw = {k: v for k, v in raw.items() if k in known}
    if "backtest_generators" in kw:
        kw["backtest_generators"] = tuple(kw["backtest_generators"])
    kw.setdefault("out", str(out))  # the folder it ran in, as the settings table shows it
    return DemoConfig(**kw)

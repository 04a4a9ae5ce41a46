"""Issue 14: does training in a generated market pay off on real data? The sp500 sim-to-real
sweep (``benchmarks/sim2real_sp500.toml``: 8 arms x 5 seeds, PPO, one budget) and the Ray
speed-up of a tiny sweep (1 worker against 2, same numbers).

Usage::

    python benchmarks/bench_sim2real.py                       # fit the runs, full sweep, speed-up
    python benchmarks/bench_sim2real.py --workers 16          # the sweep on 16 Ray workers
    python benchmarks/bench_sim2real.py --run neuralfactors=benchmarks/out/agents/runs/neuralfactors
    python benchmarks/bench_sim2real.py --tiny-only           # only the 1-vs-2-worker timing

Generator runs the config names under ``out/sim2real/runs/KIND`` are fitted there (seed 0,
library defaults, the config's split) unless finished already or given with ``--run
KIND=PATH``. The sweep folder resumes: a re-run reuses every finished (arm, seed). Writes
``benchmarks/results/sim2real.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import tomllib

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "benchmarks" / "sim2real_sp500.toml"
OUT = ROOT / "benchmarks" / "out" / "sim2real"
RESULTS = ROOT / "benchmarks" / "results" / "sim2real.md"
#: The tiny sweep of the speed-up check: 2 arms x 2 seeds on replay, 4,096 steps each.
TINY = {
    "name": "tiny speed-up sweep", "seeds": [0, 1], "total_timesteps": 4096, "n_envs": 4, "horizon": 63,
    "curve_episodes": 4, "bootstrap_reps": 200, "baselines": ["equal_weight"],
    "validation": {"eval_freq": 1024, "eval_episodes": 4, "eval_horizon": 63},
    "defaults": {"algo_kwargs": {"n_steps": 64, "batch_size": 64}},
    "arms": [{"name": "replay"}, {"name": "replay_t1", "env": {"temperature": 1.0}}],
}  # fmt: skip


def _load() -> str:
    la = os.getloadavg()
    return f"load average {la[0]:.1f} / {la[1]:.1f} / {la[2]:.1f} on {os.cpu_count()} CPUs"


def _kind(path: str) -> str:
    return Path(path).name


#: Scenario banks the config names as ``.../banks/NAME``: simulated from ``.../runs/NAME``
#: before the sweep (paths start on random train-split days; training episodes replay them).
BANK_PATHS, BANK_HORIZON = 512, 252


def _fit(kind: str, path: Path, d: dict[str, Any]) -> None:
    from factorgym.data import Split
    from factorgym.generators.runs import RunSpec, fit_run

    if (path / "run.json").is_file():
        return
    t = time.perf_counter()
    spec = RunSpec(kind=kind, dataset=d.get("dataset", "sp500"), train_end=d.get("train_end", Split.train_end),
                   val_end=d.get("val_end", Split.val_end), seed=0)  # fmt: skip
    fit_run(spec, path, progress=True)
    print(f"  fitted {kind} in {time.perf_counter() - t:.0f} s -> {path}")


def _bank(path: Path, d: dict[str, Any]) -> None:
    from factorgym.generators.banks import is_bank, simulate_bank

    if is_bank(path):
        return
    run = path.parent.parent / "runs" / path.name
    _fit(path.name, run, d)
    t = time.perf_counter()
    simulate_bank(run, d.get("dataset", "sp500"), n_paths=BANK_PATHS, horizon=BANK_HORIZON, out=path, contexts="random:train", seed=0)
    print(f"  simulated bank {path.name}: {BANK_PATHS} paths x {BANK_HORIZON} days in {time.perf_counter() - t:.0f} s -> {path}")


def prepare(d: dict[str, Any], base: Path, given: dict[str, str]) -> dict[str, Any]:
    """Fit (or reuse) every generator run and bank the config names (also inside mixtures);
    ``given`` replaces a kind's path."""
    for arm in d["arms"]:
        m = arm.get("market", "historical")
        sources = [s[0] for s in m.get("mixture", [])] if isinstance(m, dict) else [m]
        for src in sources:
            if not isinstance(src, str) or src == "historical" or _kind(src) in given:
                continue
            path = (base / src).resolve()
            if path.parent.name == "banks":
                _bank(path, d)
            else:
                _fit(_kind(src), path, d)
        if isinstance(m, str) and m != "historical":
            arm["market"] = str(Path(given[_kind(m)]).resolve()) if _kind(m) in given else str((base / m).resolve())
    return d


def speedup(out: Path, steps: int = 4096) -> dict[str, Any]:
    """The tiny sweep with 1 worker (no Ray) and with 2 Ray workers, from empty folders."""
    from factorgym.app.sim2real import Sim2RealConfig, run_sim2real

    cfg = Sim2RealConfig.from_dict({**TINY, "total_timesteps": steps, "validation": {**TINY["validation"], "eval_freq": min(1024, steps)}})
    times, recs = {}, {}
    for w in (1, 2):
        folder = out / f"tiny_w{w}"
        shutil.rmtree(folder, ignore_errors=True)
        t = time.perf_counter()
        run_sim2real(cfg, folder, workers=w, progress=False, report=False)
        times[w] = time.perf_counter() - t
        recs[w] = {str(f.relative_to(folder)): {k: v for k, v in json.loads(f.read_text()).items() if k != "timing"}
                   for f in sorted(folder.glob("runs/**/*.json"))}  # fmt: skip
        print(f"  tiny sweep, {w} worker(s): {times[w]:.1f} s ({_load()})")
    return {"seconds_1": times[1], "seconds_2": times[2], "speedup": times[1] / times[2], "identical": recs[1] == recs[2],
            "runs": len(recs[1]) - 1, "steps": steps}  # fmt: skip


def write_md(sweep_dir: Path | None, sp: dict[str, Any] | None, header: str, config: Path = CONFIG) -> str:
    from factorgym.report.tables import to_markdown

    lines = ["# Sim-to-real (issue 14)", "", header, ""]
    if sweep_dir is not None and (sweep_dir / "results" / "summary.json").is_file():
        import pandas as pd

        res = sweep_dir / "results"
        s = json.loads((res / "summary.json").read_text())
        arms = pd.read_csv(res / "arms.csv")
        cols = ["arm", "lag", "n_seeds", "val_sharpe_iqm", "test_sharpe_iqm", "test_sharpe_iqm_ci_lower", "test_sharpe_iqm_ci_upper",
                "poi_vs_reference", "poi_vs_reference_ci_lower", "poi_vs_reference_ci_upper", "compare_to", "poi_vs_pair",
                "poi_vs_pair_ci_lower", "poi_vs_pair_ci_upper", "poi_vs_ew", "mix_sharpe_minus_ew",
                "mix_sharpe_minus_ew_hac_pvalue", "mix_deflated_sharpe", "test_annualised_turnover_mean", "best_timestep_median"]  # fmt: skip
        rel = (lambda p: str(Path(p).resolve().relative_to(ROOT)) if Path(p).resolve().is_relative_to(ROOT) else str(p))  # noqa: E731
        ew = s["equal_weight_test_sharpe"]
        ew_text = ", ".join(f"{v:.2f} at lag {k}" for k, v in ew.items()) if isinstance(ew, dict) else f"{ew:.2f}"
        lines += [f"Command: `python benchmarks/bench_sim2real.py --config {rel(config)}` (sweep folder `{rel(sweep_dir)}`).", ""]
        lines += [f"Best arm on validation (lag {s['selection_lag']}): **{s.get('best_arm')}**; reference arm {s['reference_arm']}; "
                  f"1/N test Sharpe {ew_text}; {s['n_trials']} trials counted; goal met: {s.get('goal_met')}"
                  + (f" (against its paired arm: {s['goal_met_vs_pair']})" if "goal_met_vs_pair" in s else "") + ".", ""]  # fmt: skip
        if s.get("best_curve"):
            lines += [f"Best arm's validation curve: {s['best_curve']}", ""]
        lines += [to_markdown(arms[[c for c in cols if c in arms.columns]].set_index("arm"), floatfmt=".3f"), ""]
        lines += ["Learning curves: `results/report.html` in the sweep folder.", ""]
    if sp is not None:
        lines += [
            f"## Ray speed-up (tiny sweep: 2 arms x 2 seeds, {sp['steps']:,} PPO steps each, + 1/N)", "",
            "| workers | seconds | speed-up | same numbers |", "|---|---|---|---|",
            f"| 1 (no Ray) | {sp['seconds_1']:.1f} | 1.00 | |",
            f"| 2 (local Ray) | {sp['seconds_2']:.1f} | {sp['speedup']:.2f} | {'yes' if sp['identical'] else 'NO'} |", "",
            "Times include starting Ray and its workers (seconds each); the speed-up of a real sweep, whose runs last "
            "minutes, is closer to the number of workers.", "",
        ]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    from factorgym import __version__
    from factorgym.app.sim2real import Sim2RealConfig, run_sim2real

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=CONFIG)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--workers", type=int, default=None, help="Ray workers of the sweep (default: every core).")
    ap.add_argument("--address", default=None, help="A running Ray cluster.")
    ap.add_argument("--run", action="append", default=[], help="KIND=PATH: use this fitted run for KIND.")
    ap.add_argument("--tiny-only", action="store_true", help="Only the 1-vs-2-worker timing.")
    ap.add_argument("--no-tiny", action="store_true", help="Skip the 1-vs-2-worker timing.")
    ap.add_argument("--tiny-steps", type=int, default=4096, help="PPO steps per run of the timing sweep.")
    ap.add_argument("--results", type=Path, default=RESULTS, help="Where to write the markdown.")
    args = ap.parse_args()
    header = f"{time.strftime('%Y-%m-%d %H:%M')}, factorgym {__version__}, {platform.machine()}, {_load()}."
    print(f"# bench_sim2real  {header}")
    sweep_dir = None
    if not args.tiny_only:
        given = dict(r.split("=", 1) for r in args.run)
        d = prepare(tomllib.loads(args.config.read_text()), args.config.parent.resolve(), given)
        cfg = Sim2RealConfig.from_dict(d, base=args.config.parent.resolve())
        sweep_dir = args.out / "sweep"
        t = time.perf_counter()
        run_sim2real(cfg, sweep_dir, workers=args.workers, address=args.address, progress=True)
        header += f" Sweep: {time.perf_counter() - t:.0f} s."
    sp = None if args.no_tiny else speedup(args.out, args.tiny_steps)
    text = write_md(sweep_dir, sp, header, args.config)
    print(text)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text + "\n")


if __name__ == "__main__":
    main()

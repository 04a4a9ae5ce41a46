"""How the generator evaluation behaves on a shared machine (issue 16, item 2).

Usage::

    python benchmarks/bench_load.py fit --out /tmp/bench_load            # tiny-budget runs of every kind
    python benchmarks/bench_load.py eval --out /tmp/bench_load KIND ...  # one timed evaluation (prints JSON)
    python benchmarks/bench_load.py matrix --out /tmp/bench_load         # quiet / one busy process x thread settings
    python benchmarks/bench_load.py stage --runs /tmp/demo_quiet [--old] # the demo's evaluation stage on a demo's runs
    python benchmarks/bench_load.py fit-diffusion --threads 1            # a 150-step diffusion fit (0: torch's default)

``matrix`` runs every evaluation in a fresh subprocess (so environment variables such as
``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` take effect at import), once on a quiet machine and
once with one busy process (``python -c "while True: pass"``) started before and killed after.
The models are fitted on tiny budgets: their speed, not their quality, is what is measured.
Evaluation settings match the demo's (500 samples, 20 simulated paths; the diffusion model
every 8th day with 256 samples), on a ``--stride`` of the test days to keep each run short.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TINY: dict[str, dict] = {
    "neuralfactors": {"max_steps": 20},
    "diffusion": {"max_steps": 20, "n_moment_samples": 256},
    "ledoit_wolf": {},
    "bootstrap": {},
    "garch": {},
    "ppca": {"n_factors": 12, "window": 252},
}
DEMO_EVAL: dict[str, dict] = {"diffusion": {"day_stride": 8, "n_samples": 256, "energy_samples": 256}}


def _load() -> str:
    la = os.getloadavg()
    return f"{la[0]:.2f}/{la[1]:.2f}/{la[2]:.2f}"


def fit(out: Path, kinds: list[str]) -> None:
    from factorgym.data import load_dataset
    from factorgym.generators.runs import RunSpec, fit_run

    panel = load_dataset("sp500")
    for kind in kinds:
        t0 = time.perf_counter()
        fit_run(RunSpec(kind=kind, dataset="sp500", seed=0, params=TINY[kind]), out / kind, panel=panel, progress=False, replace=True)
        print(f"fit {kind}: {time.perf_counter() - t0:.1f}s", flush=True)


def evaluate(out: Path, kind: str, stride: int, threads: int | None, blas_limit: int | None, csv: str | None) -> dict:
    import numpy as np

    from factorgym.data import Split, load_dataset
    from factorgym.generators.evaluation import evaluate_generator
    from factorgym.generators.runs import load_run

    panel = load_dataset("sp500")
    gen, _, _ = load_run(out / kind)
    opts: dict = {"n_samples": 500, "sim_paths": 20, "progress": False, "name": kind}
    opts.update(DEMO_EVAL.get(kind, {}))
    opts["day_stride"] = opts.get("day_stride", 1) * stride
    if threads is not None:
        opts["num_threads"] = threads
    t0 = time.perf_counter()
    c0 = time.process_time()
    if blas_limit is not None:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(blas_limit):
            rep = evaluate_generator(gen, panel, Split(), "test", rng=np.random.default_rng(0), **opts)
    else:
        rep = evaluate_generator(gen, panel, Split(), "test", rng=np.random.default_rng(0), **opts)
    secs = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if csv:
        rep.per_day.to_csv(csv)
    return {"kind": kind, "seconds": round(secs, 2), "cpu_seconds": round(cpu, 2), "days": int(rep.scalars["n_days"])}


def stage(runs: Path, kinds: list[str], old: bool) -> None:
    """The demo's evaluation stage on the fitted runs of a demo folder; ``old``: the thread
    settings before issue 16 (every pool's default, the diffusion model on torch's default)."""
    import dataclasses

    import numpy as np

    from factorgym.app.demo import DemoConfig
    from factorgym.data import Split, load_dataset
    from factorgym.generators.evaluation import evaluate_generator
    from factorgym.generators.runs import load_run

    cfg = DemoConfig()
    panel = load_dataset("sp500")
    total = 0.0
    for kind in [k for k in cfg.generators if k in kinds]:
        gen, _, _ = load_run(runs / "generators" / kind)
        if old and kind == "diffusion":
            gen.config = dataclasses.replace(gen.config, num_threads=None)
        opts: dict = {"n_samples": cfg.eval_samples, "sim_paths": cfg.eval_sim_paths, "progress": False, "name": kind}
        opts.update(cfg.eval_overrides.get(kind, {}))
        if old:
            opts["num_threads"] = None
        t0 = time.perf_counter()
        evaluate_generator(gen, panel, Split(), "test", rng=np.random.default_rng(cfg.seed), **opts)
        secs = time.perf_counter() - t0
        total += secs
        print(f"{kind}: {secs:.1f}s (load {_load()})", flush=True)
    print(f"total: {total:.1f}s")


def fit_diffusion(threads: int | None, steps: int = 150) -> None:
    import numpy as np

    from factorgym.data import Split, load_dataset
    from factorgym.generators.diffusion import DiffusionGenerator

    panel = load_dataset("sp500")
    g = DiffusionGenerator(max_steps=steps, num_threads=threads)
    t0, c0 = time.perf_counter(), time.process_time()
    g.fit(panel, Split(), progress=False, rng=np.random.default_rng(0))
    print(json.dumps({"threads": threads, "seconds": round(time.perf_counter() - t0, 2), "cpu_seconds": round(time.process_time() - c0, 2)}))


def _sub(args: list[str], env: dict[str, str]) -> dict:
    cmd = [sys.executable, __file__, "eval", *args]
    r = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


SETTINGS: dict[str, tuple[dict[str, str], list[str]]] = {
    "default": ({}, []),
    "env OMP=1 OPENBLAS=1": ({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}, []),
    "threadpool_limits(1)": ({}, ["--blas-limit", "1"]),
}


def matrix(out: Path, kinds: list[str], stride: int, settings: list[str], extra: list[str]) -> None:
    rows = []
    for busy in (False, True):
        proc = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            if busy:
                time.sleep(2)
            for name in settings:
                env, flags = SETTINGS[name]
                for kind in kinds:
                    load = _load()
                    r = _sub([kind, "--out", str(out), "--stride", str(stride), *flags, *extra], env)
                    r.update(setting=name, busy=busy, load_before=load)
                    rows.append(r)
                    print(json.dumps(r), flush=True)
        finally:
            if proc is not None:
                proc.kill()
                proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cmd", choices=["fit", "eval", "matrix", "stage", "fit-diffusion"])
    ap.add_argument("kinds", nargs="*", default=list(TINY))
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_load"))
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="evaluate_generator(num_threads=...); fit-diffusion: 0 = torch's default")
    ap.add_argument("--blas-limit", type=int, default=None, help="wrap the call in threadpool_limits(n)")
    ap.add_argument("--csv", default=None, help="write the per-day table here (eval)")
    ap.add_argument("--settings", nargs="*", default=list(SETTINGS))
    ap.add_argument("--runs", type=Path, default=Path("/tmp/demo_quiet"), help="a demo folder (stage)")
    ap.add_argument("--old", action="store_true", help="thread settings before issue 16 (stage)")
    a = ap.parse_args()
    if a.cmd == "fit":
        fit(a.out, a.kinds)
    elif a.cmd == "eval":
        print(json.dumps(evaluate(a.out, a.kinds[0], a.stride, a.threads, a.blas_limit, a.csv)))
    elif a.cmd == "stage":
        stage(a.runs, a.kinds, a.old)
    elif a.cmd == "fit-diffusion":
        fit_diffusion(a.threads or None)
    else:
        extra = ["--threads", str(a.threads)] if a.threads is not None else []
        matrix(a.out, a.kinds, a.stride, a.settings, extra)


if __name__ == "__main__":
    main()

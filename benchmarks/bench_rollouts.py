"""Rollout diagnostics of the six generators on the S&P 500 test split (issue 13, item 1).

Usage::

    python benchmarks/bench_rollouts.py                                   # all six, writes results/rollouts.md
    python benchmarks/bench_rollouts.py --kinds ledoit_wolf,garch,bootstrap,ppca --results benchmarks/out/rollouts/classical.md

Each generator is fitted with its library defaults through ``fit_run`` (run folders cached in
``benchmarks/out/rollouts/runs/<kind>``, reused on the next call: ``--refit neuralfactors,diffusion``
refits after the defaults changed), then
:func:`factorgym.generators.evaluation.rollout_diagnostics` rolls ``--paths`` paths of 5 and 21
days forward from every ``--every``-th test day and compares them with what followed. Every
generator gets the same contexts and the same random streams (``--seed``). The tables, the
per-context CSVs and the HTML page go to ``--out``; the markdown summary, with the command,
date and machine, to ``--results``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from factorgym import __version__, load_dataset
from factorgym.data import Split
from factorgym.generators.evaluation import (
    evaluation_page,
    rollout_diagnostics,
    rollouts_markdown,
    rollouts_table,
    save_rollouts,
)
from factorgym.generators.runs import RunSpec, fit_run

ROOT = Path(__file__).resolve().parents[1]
#: The six generators of the issue, with their default configurations ("gaussian" is the
#: Ledoit-Wolf-shrunk Gaussian).
KINDS = ("ledoit_wolf", "garch", "bootstrap", "ppca", "neuralfactors", "diffusion")


def _load() -> str:
    la = os.getloadavg()
    return f"load average {la[0]:.1f} / {la[1]:.1f} / {la[2]:.1f} on {os.cpu_count()} CPUs"


def _torch() -> str:
    if "torch" not in sys.modules:
        return "torch not imported"
    return f"torch {sys.modules['torch'].__version__}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated generator kinds")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "rollouts")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "rollouts.md")
    ap.add_argument("--split", default="test", choices=("val", "test"))
    ap.add_argument("--horizons", default="5,21")
    ap.add_argument("--paths", type=int, default=100)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--refit", default="", help="comma-separated kinds to refit even when a finished run is cached "
                    "(a cached run of the same spec is reused, also after the library's defaults changed)")  # fmt: skip
    args = ap.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    refit = {k.strip() for k in args.refit.split(",") if k.strip()}
    horizons = tuple(int(h) for h in args.horizons.split(","))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"# bench_rollouts  {started}  factorgym {__version__}, {platform.machine()}, {_load()}")

    panel = load_dataset("sp500")
    split = Split()
    reports, seconds = [], {}
    for kind in kinds:
        t0 = time.perf_counter()
        spec = RunSpec(kind=kind, dataset="sp500")
        gen, rec = fit_run(spec, args.out / "runs" / kind, panel=panel, progress=True, force=kind in refit)
        t1 = time.perf_counter()
        rep = rollout_diagnostics(
            gen, panel, split, args.split, rng=np.random.default_rng(args.seed), horizons=horizons,
            n_paths=args.paths, every=args.every, name=kind,
        )  # fmt: skip
        t2 = time.perf_counter()
        seconds[kind] = (rec.get("fit_seconds"), t1 - t0, t2 - t1)
        reports.append(rep)
        print(f"  {kind}: fit {rec.get('fit_seconds')} s (this call {t1 - t0:.1f} s), rollouts {t2 - t1:.1f} s ({_load()})")
    save_rollouts(reports, args.out)
    evaluation_page(args.out, title="Rollout diagnostics, sp500").write(args.out / "report.html")
    table = rollouts_markdown(rollouts_table(reports))
    n = {h: int(reports[0].scalars[h]["n_contexts"]) for h in horizons}
    dates = {h: reports[0].contexts[h].index for h in horizons}
    timing = "; ".join(f"{k} {s[2]:.0f} s" for k, s in seconds.items())
    fits = "; ".join(f"{k} {s[0]} s" for k, s in seconds.items())
    cmd = "python benchmarks/bench_rollouts.py" + ("" if len(sys.argv) == 1 else " " + " ".join(sys.argv[1:]))
    text = f"""# Rollout diagnostics: multi-day paths against what followed (`benchmarks/bench_rollouts.py`)

Command ({started}, {platform.machine()} with {os.cpu_count()} CPUs, Python {platform.python_version()},
{_torch()}, factorgym {__version__}; {_load()} at the end):

```bash
{cmd}
```

Generators: {", ".join(kinds)}, each with its library defaults (`fit_run(RunSpec(kind, "sp500"))`).
Seconds for the rollouts ({args.paths} paths per context): {timing}. Fits (as recorded in each
run folder, possibly by an earlier call): {fits}.

## Set-up
- **Contexts.** Every {args.every}th day of the sp500 {args.split} split
  ({"; ".join(f"H = {h}: {n[h]} contexts, ending {dates[h][0].date()} .. {dates[h][-1].date()}" for h in horizons)}:
  a context is the last day of history, the paths start the next day); a
  context enters horizon H when its H following days lie inside the split. Every generator
  rolls {args.paths} paths from the same contexts with the same random streams (seed {args.seed}).
- **Portfolio.** Equal weights over the stocks trading on the context day, rebalanced daily;
  returns compounded over the H days.
- **Columns.** Vol. rank corr.: Spearman correlation across contexts between simulated (median
  over paths) and realised volatility, of 1/N and per stock (mean). Daily vol.: mean over
  contexts (simulated: mean over paths). Cal. error: NeuralFactors eq. 12 on the PIT of the
  realised H-day return among the paths; Cal. floor: its mean for a calibrated model on as
  many contexts with the same overlap, Cal. 95%: the 95th percentile there, p-value: the share
  of calibrated repetitions at least as large. 90% band coverage and "below sim. q1%/q5%"
  are read through the PIT (nominal 90%, 1%, 5%). Stylized facts on the same windows
  (kurtosis, |r| ACF and leverage averaged over lags 1..min(10, H-2), average pairwise
  correlation). Drift corr.: correlation across the 20 stocks of the simulated mean daily
  return with the training-period mean and with the realised mean; for a driftless model it
  is sampling noise of about +-0.24 (1/sqrt(17)).

## Tables

{table}"""
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    print(table)
    print(f"wrote {args.results} and {args.out}/")


if __name__ == "__main__":
    main()

"""Stress-test a portfolio with a factor shock and a crisis context from a fitted generator (CleanRL-style).

What it shows: a constant-mix portfolio (1/N, or weights from the command line) through two
scenario sets drawn from one generator fitted on the train split (1990-2013 by default):

* **factor shock**: the next day after ``--shock-date``, conditioned on the market factor
  falling below its ``--quantile`` (NeuralFactors conditions its latent market factor;
  a generator without latent factors keeps the samples whose equal-weight return is below
  that quantile);
* **crisis context**: paths rolled forward on the generator's own samples from the real
  history just before a named crisis (``covid-2020``: from 2020-02-19, 23 days), so the
  generator sees only what was known that day.

It prints VaR and expected shortfall (positive losses, 95% and 99%) of both sets, and for the
crisis what then happened in the real data and how much probability the generator gave it.

Usage::

    python examples/stress_portfolio.py                              # 1/N, NeuralFactors
    python examples/stress_portfolio.py --weights AAPL=0.4,MSFT=0.3,XOM=0.3 --generator ledoit_wolf
    python examples/stress_portfolio.py --crisis gfc-2008 --train-end 2007-12-31 --val-end 2008-08-29

Smoke convention (every script in ``examples/``): ``--smoke`` runs the whole script with a
tiny budget (a few gradient steps, few scenarios), writes only into a temporary folder and
exits with status 0; ``tests/test_examples.py`` runs each example that way.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import factorgym as fg
from factorgym.generators.stress import (
    NAMED_WINDOWS,
    StressSpec,
    generate,
    loss_summary,
    portfolio_path_returns,
    realised_comparison,
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="equal", help="'equal' (1/N) or ASSET=W,ASSET=W,... (cash is 1 - sum)")
    p.add_argument("--generator", default="neuralfactors", help="generator kind to fit (ledoit_wolf: instant)")
    p.add_argument("--steps", type=int, default=None, help="NeuralFactors gradient steps (default: its config's)")
    p.add_argument("--dataset", default="sp500", help="embedded dataset name or CSV/Parquet path")
    p.add_argument("--train-end", default=fg.Split.train_end)
    p.add_argument("--val-end", default=fg.Split.val_end)
    p.add_argument("--shock-date", default=None, help="last real day before the shocked day (default: --val-end)")
    p.add_argument("--quantile", type=float, default=0.01, help="market-factor quantile of the shock")
    p.add_argument("--crisis", default="covid-2020", choices=sorted(NAMED_WINDOWS))
    p.add_argument("--n-scenarios", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/examples/stress", help="folder of the generator run")
    p.add_argument("--smoke", action="store_true", help="tiny budget, temporary folder (tests/test_examples.py)")
    return p.parse_args()


def parse_weights(text: str, assets: tuple[str, ...]) -> np.ndarray:
    if text == "equal":
        return np.full(len(assets), 1.0 / len(assets))
    pairs = dict(item.split("=", 1) for item in text.split(","))
    unknown = sorted(set(pairs) - set(assets))
    if unknown:
        raise SystemExit(f"error: --weights names assets not in the data: {unknown} (assets: {', '.join(assets)})")
    return np.array([float(pairs.get(a, 0.0)) for a in assets])


def main() -> None:
    args = parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="factorgym-smoke-") if args.smoke else None
    out = Path(tmp.name) if tmp else Path(args.out)
    params = {} if args.steps is None or args.generator != "neuralfactors" else {"max_steps": args.steps}
    if args.smoke:
        args.n_scenarios = 200
        if args.generator == "neuralfactors":
            params = {"max_steps": 20, "hidden": 16, "n_layers": 1, "k": 4, "warmup_steps": 5}

    panel, _ = fg.read_source(args.dataset)
    w = parse_weights(args.weights, panel.assets)
    spec = fg.RunSpec(kind=args.generator, dataset=args.dataset, train_end=args.train_end, val_end=args.val_end,
                      seed=args.seed, params=params)  # fmt: skip
    run_dir = out / f"generator-{args.generator}"
    gen, _ = fg.fit_run(spec, run_dir, panel=panel, progress=not args.smoke, replace=True)

    # the two scenario sets: (S, H, N) simple-return paths
    first, last = NAMED_WINDOWS[args.crisis]
    crisis_days = panel.loc(first, last).T
    context = str(panel.dates[panel.index_of(first) - 1].date())  # the last day before the crisis window
    if pd.Timestamp(context) <= pd.Timestamp(args.val_end):
        print(f"WARNING: the generator was fitted/selected on data through {args.val_end}, after the crisis context "
              f"{context}: it has seen what followed (pass an earlier --train-end/--val-end)")  # fmt: skip
    common = {"run": str(run_dir), "dataset": args.dataset, "n_scenarios": args.n_scenarios, "seed": args.seed}
    shock = generate(StressSpec("factor_shock", date=args.shock_date or args.val_end, quantile=args.quantile, **common),
                     generator=gen, panel=panel)  # fmt: skip
    crisis = generate(StressSpec("crisis", date=context, horizon=crisis_days, **common), generator=gen, panel=panel)

    # losses of the portfolio over each set (daily rebalanced to w; cash earns nothing)
    rows = {
        f"factor shock q={args.quantile:g} ({shock.context_date}, 1 day)": loss_summary(portfolio_path_returns(shock.paths, w)),
        f"{args.crisis} context ({crisis.context_date}, {crisis_days} days)": loss_summary(portfolio_path_returns(crisis.paths, w)),
    }
    held = ", ".join(f"{a} {x:.0%}" for a, x in zip(panel.assets, w, strict=True) if x) if args.weights != "equal" else "1/N"
    print(f"\nportfolio: {held}; generator: {args.generator} fitted through {args.train_end}; "
          f"shock method: {shock.info['method']}\n")  # fmt: skip
    head = f"{'scenario set':<44}{'paths':>7}{'mean':>9}{'VaR95':>9}{'ES95':>9}{'VaR99':>9}{'ES99':>9}{'worst':>9}"
    print(head + "\n" + "-" * len(head))
    for name, r in rows.items():
        print(f"{name:<44}{int(r['n']):>7}{r['mean_return']:>+9.2%}" + "".join(
            f"{r[k]:>9.2%}" for k in ("VaR95", "ES95", "VaR99", "ES99", "worst")))  # fmt: skip
    print("(VaR, ES and worst are losses: positive numbers are money lost, as a fraction of wealth)")

    c = realised_comparison(crisis, panel, w)
    print(f"\nwhat followed {crisis.context_date} in the real data ({crisis_days} days):")
    print(f"  {'':<22}{'real':>9}{'scenario median':>17}{'scenario tail':>15}{'P(scenario as bad)':>20}")
    print(f"  {'cumulative return':<22}{c['realised_return']:>+9.2%}{c['sim_median_return']:>+17.2%}"
          f"{c['sim_5pct_return']:>+15.2%}{c['prob_return_at_most_realised']:>20.3f}")
    print(f"  {'max drawdown':<22}{c['realised_max_drawdown']:>9.2%}{c['sim_median_max_drawdown']:>17.2%}"
          f"{c['sim_95pct_max_drawdown']:>15.2%}{c['prob_drawdown_at_least_realised']:>20.3f}")
    print("  (tail: the 5% quantile of returns, the 95% quantile of drawdowns; P = 0 means no scenario was that bad)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()

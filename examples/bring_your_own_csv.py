"""Bring your own data: a CSV of prices or returns, end to end (CleanRL-style).

What it shows: the "my own data" path. Without ``--csv`` it first writes two small files
from the embedded S&P 500 panel, as a user's files might look: ``prices_wide.csv`` (a date
column and one column of prices per asset) and ``returns_long.csv`` (one ``date, asset,
return`` row per day and asset). It reads both back with :func:`factorgym.read_source` /
:func:`factorgym.read_panel` (layout and prices-vs-returns are detected, and what was decided
is printed), checks that both give the panel they were written from, then fits a generator
on the train part, scores its one-day-ahead forecasts on the test part, and backtests 1/N
and mean-variance on the real test path and on the generator's synthetic paths.

With ``--csv my.csv`` the same steps run on your file: wide or long, prices or simple
returns, ISO dates (``--kind``/``--layout`` override the detection). The split defaults to
the first 60% of days for training, the next 20% for validation and the last 20% for test.

Usage::

    python examples/bring_your_own_csv.py
    python examples/bring_your_own_csv.py --csv my_prices.csv --train-end 2015-12-31 --val-end 2018-12-31

Smoke convention (every script in ``examples/``): ``--smoke`` runs the whole script with a
tiny budget (few assets and years, few samples and paths), writes only into a temporary
folder and exits with status 0; ``tests/test_examples.py`` runs each example that way.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import factorgym as fg


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", default=None, help="your CSV/Parquet file (default: write two from the embedded data)")
    p.add_argument("--kind", default="auto", choices=["auto", "prices", "returns"])
    p.add_argument("--layout", default="auto", choices=["auto", "wide", "long"])
    p.add_argument("--train-end", default=None, help="default: the day 60%% into the data")
    p.add_argument("--val-end", default=None, help="default: the day 80%% into the data")
    p.add_argument("--generator", default="ledoit_wolf", help="generator kind to fit")
    p.add_argument("--out", default="runs/examples/byo_csv", help="folder for the example files and the run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny budget, temporary folder (tests/test_examples.py)")
    return p.parse_args()


def write_example_files(out: Path, smoke: bool) -> tuple[fg.ReturnPanel, Path, Path]:
    """Two files from the embedded data: wide prices and long returns."""
    full = fg.load_dataset("sp500")
    assets, years = (["AAPL", "JPM", "XOM", "KO", "PFE"], ("2016-01-01", "2019-12-31")) if smoke else (full.assets[:10], ("2005-01-01", None))
    panel = full.select_assets(list(assets)).loc(*years)
    wide, long = out / "prices_wide.csv", out / "returns_long.csv"
    fg.write_panel(panel, wide, layout="wide", kind="prices")  # date,AAPL,JPM,... price levels
    fg.write_panel(panel, long, layout="long", kind="returns")  # date,asset,return rows
    for f in (wide, long):
        print(f"wrote {f.name}:\n  " + "\n  ".join(f.read_text().splitlines()[:3]) + "\n  ...")
    return panel, wide, long


def main() -> None:
    args = parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="factorgym-smoke-") if args.smoke else None
    out = Path(tmp.name) if tmp else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. the data: read a file as any command would (layout and kind detected, decisions recorded)
    checks = {}
    if args.csv is None:
        original, source, long = write_example_files(out, args.smoke)
        checks["returns_long.csv"] = fg.read_panel(long)  # the long file, read directly
    else:
        source = Path(args.csv)
    panel, fmt = fg.read_source(source, kind=args.kind, layout=args.layout)  # what every command calls
    print(f"\nread {source.name}: {panel.T} days x {panel.N} assets, {panel.dates[0].date()}..{panel.dates[-1].date()}")
    for d in fmt.decisions if fmt is not None else ():
        print(f"  - {d}")
    if args.csv is None:
        checks["prices_wide.csv"] = panel
        for name, p in checks.items():  # both files must give back the panel they were written from
            same = p.assets == original.assets and p.dates.equals(original.dates) and np.array_equal(p.mask, original.mask)
            diff = float(np.abs(p.filled(0.0) - original.filled(0.0)).max())
            print(f"round trip {name}: same dates/assets/mask {same}, max |return difference| {diff:.1e}")
    dates = panel.dates
    split = fg.Split(args.train_end or str(dates[int(0.6 * len(dates))].date()), args.val_end or str(dates[int(0.8 * len(dates))].date()))

    # 2. a generator fitted on the train part (validation for its own selection), scored on the test part
    params = {"max_steps": 20, "hidden": 16, "n_layers": 1, "k": 4, "warmup_steps": 5} if args.smoke and args.generator == "neuralfactors" else {}
    spec = fg.RunSpec(kind=args.generator, dataset=str(source), train_end=split.train_end, val_end=split.val_end, seed=args.seed, params=params)
    gen, _ = fg.fit_run(spec, out / f"run-{args.generator}", panel=panel, progress=not args.smoke, replace=True)
    ev = fg.evaluate_generator(gen, panel, split, "test", rng=np.random.default_rng(args.seed), n_samples=100 if args.smoke else 1000,
                               sim_paths=0, progress=False)  # fmt: skip
    s = ev.scalars
    print(f"\n{args.generator} on the test part ({int(s['n_days'])} days; lower NLL/CRPS is better, VaR95 rate should be near 5%):")
    print(f"  NLL joint {s['nll_joint']:.3f}   CRPS {s['crps']:.4f}   VaR95 rate {s['var95_rate']:.1%}   portfolio calibration error {s['cal_port']:.3f}")

    # 3. 1/N and mean-variance on the real test path and the generator's synthetic paths, after costs
    cfg = fg.BacktestConfig(split=split, n_paths=4 if args.smoke else 64, bootstrap_reps=100 if args.smoke else 1000,
                            seed=args.seed, benchmark=None)  # fmt: skip
    mv = fg.agent_from_spec("mv:ledoit_wolf,window=126", cost_model=cfg.cost_model, constraints=cfg.constraints).agent
    result = fg.backtest({"1/N": fg.EqualWeight(), "MV (Ledoit-Wolf)": mv}, panel, {args.generator: gen}, cfg)
    syn = result.synthetic_summary.loc[args.generator]
    print(f"\nbacktest after costs: real test path {result.first_test_date.date()}..{result.end_date.date()}, "
          f"{cfg.n_paths} synthetic paths from {args.generator}")  # fmt: skip
    head = f"{'policy':<20}{'real Sharpe [95% CI]':>26}{'real ann. return':>18}{'real max DD':>13}{'synthetic median Sharpe':>25}"
    print(head + "\n" + "-" * len(head))
    for name in ("1/N", "MV (Ledoit-Wolf)"):
        r = result.summary.loc[name]
        ci = f"{r['sharpe']:+.2f} [{r['sharpe_ci_lower']:+.2f}, {r['sharpe_ci_upper']:+.2f}]"
        print(f"{name:<20}{ci:>26}{r['annualised_return']:>+18.2%}{r['max_drawdown']:>13.2%}{syn.loc[name, 'sharpe_median']:>+25.2f}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()

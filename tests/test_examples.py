"""Every script in ``examples/`` runs end to end with its ``--smoke`` flag, and prints what it says.

Convention (stated at the top of each example): ``--smoke`` runs the whole script with a
tiny budget, writes only into a temporary folder and exits with status 0. The scripts run
in a subprocess, from an empty working directory, exactly as a user would run them. Each
script runs once per set of arguments (a module-scoped cache); the per-example tests then
check its printed table against numbers computed here from the same data.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import factorgym as fg

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))
#: extra smoke arguments, so that one run covers more of a script (several seeds)
SMOKE_ARGS = {"sim_vs_replay_ppo.py": ("--seeds", "0", "1")}
EXPECTED = {"ppo_generator_market.py", "evaluate_optimizer.py", "sim_vs_replay_ppo.py", "stress_portfolio.py", "bring_your_own_csv.py", "rllib_ppo.py"}


@pytest.fixture(scope="module")
def run_example(tmp_path_factory):
    """``run(name, *extra) -> (stdout, cwd)``: the script's ``--smoke`` run (cached), checked to exit 0."""
    cache: dict[tuple[str, ...], tuple[subprocess.CompletedProcess, Path]] = {}

    def run(name: str, *extra: str) -> tuple[str, Path]:
        args = ("--smoke", *SMOKE_ARGS.get(name, ()), *extra)
        if (name, *args) not in cache:
            cwd = tmp_path_factory.mktemp(name.removesuffix(".py"))
            env = {**os.environ, "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"}
            proc = subprocess.run([sys.executable, str(EXAMPLES_DIR / name), *args], cwd=cwd, env=env,
                                  capture_output=True, text=True, timeout=300)  # fmt: skip
            cache[(name, *args)] = (proc, cwd)
        proc, cwd = cache[(name, *args)]
        assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout, cwd

    return run


@pytest.fixture(scope="module")
def sp500():
    return fg.load_dataset("sp500")


def _num(tok: str) -> float:
    t = tok.strip("[](),").removeprefix("+/-")
    return float(t[:-1]) / 100 if t.endswith("%") else float(t)


def row(out: str, label: str, k: int | None = None) -> list[float]:
    """Numbers of the one printed line that starts with ``label`` (its last ``k`` tokens, or
    every token after the label), all finite."""
    lines = [ln for ln in out.splitlines() if ln.strip().startswith(label)]
    assert len(lines) == 1, f"expected one line starting with {label!r}, got {lines}\n{out}"
    toks = lines[0].strip()[len(label) :].split()
    vals = [_num(t) for t in (toks[-k:] if k else toks) if t != "(reference)"]
    assert vals and all(math.isfinite(v) for v in vals), f"non-finite numbers in {lines[0]!r}"
    return vals


def test_the_examples_are_all_there():
    assert {p.name for p in EXAMPLES} >= EXPECTED


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_documents_the_smoke_convention(script):
    head = script.read_text().split('"""')[1]
    assert "--smoke" in head, f"{script.name}: document the --smoke convention in its module docstring"
    assert "Usage::" in head, f"{script.name}: say how to run it in its module docstring"


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_with_smoke_budget(script, run_example):
    out, cwd = run_example(script.name)
    assert out.strip(), f"{script.name} printed nothing"
    assert not any(cwd.iterdir()), f"{script.name} --smoke wrote into the working directory"


def test_evaluate_optimizer_table(run_example, sp500):
    out, _ = run_example("evaluate_optimizer.py")
    m = re.search(r"real test path (\S+)\.\.(\S+) \((\d+) days\)", out)
    assert m, out
    first, last, n = m.group(1), m.group(2), int(m.group(3))
    assert first > fg.Split.val_end and sp500.loc(first, last).T == n
    for label in ("MV (Ledoit-Wolf)", "min-var (Ledoit-Wolf)"):
        v = row(out, label)  # Sharpe [lo, hi], ann. return [lo, hi], Sharpe - 1/N [lo, hi], turnover, costs
        assert len(v) == 11 and v[1] <= v[2] and v[4] <= v[5] and v[7] <= v[8] and v[9] > 0 and v[10] > 0
    ew = row(out, "1/N")
    assert len(ew) == 8 and ew[1] <= ew[2] and ew[4] <= ew[5] and "(reference)" in out
    # 1/N's Sharpe is the equal-weight portfolio's over the printed days, less a little for costs
    r = sp500.loc(first, last).filled(0.0).mean(axis=1)
    assert abs(ew[0] - fg.portfolio_metrics(r)["sharpe"]) < 0.1


def test_sim_vs_replay_table(run_example, sp500):
    out, _ = run_example("sim_vs_replay_ppo.py")
    assert "seeds [0, 1]" in out
    for label in ("simulated", "replay", "1/N"):
        v = row(out, label)  # (mean, sd) of val log-wealth, val Sharpe, test log-wealth, test Sharpe
        assert len(v) == 8 and all(sd >= 0 for sd in v[1::2])
    ew = row(out, "1/N")
    assert ew[1::2] == [0.0] * 4  # deterministic: no spread over seeds
    # 1/N's log-wealth on the real periods: the equal-weight growth, less costs (a few percent)
    val = float(np.log1p(sp500.loc("2014-01-01", fg.Split.val_end).filled(0.0).mean(axis=1)).sum())
    test = float(np.log1p(sp500.loc("2019-01-01", None).filled(0.0).mean(axis=1)).sum())
    assert val - 0.05 < ew[0] < val and test - 0.05 < ew[4] < test
    diffs = re.search(r"simulated minus replay, per seed: (.+)", out)
    assert diffs and len(diffs.group(1).split(",")) == 2
    assert "not evidence" in out and "--seeds" in out


@pytest.mark.parametrize("extra", [(), ("--generator", "ledoit_wolf", "--weights", "AAPL=0.5,XOM=0.3")], ids=["nf-1/N", "lw-weights"])
def test_stress_portfolio_table(run_example, sp500, extra):
    out, _ = run_example("stress_portfolio.py", *extra)
    assert ("latent factor" in out) == (not extra)  # NeuralFactors shocks its latent market factor
    for label in ("factor shock", "covid-2020 context"):
        n, mean, var95, es95, var99, es99, worst = row(out, label, k=7)
        assert n == 200 and mean > -1
        assert var95 <= es95 + 1e-4 and var99 <= es99 + 1e-4 and var95 <= var99 + 1e-4 and es99 <= worst + 1e-4
    # what followed in the real data: the portfolio over 2020-02-20..2020-03-23, rebalanced daily
    w = np.full(sp500.N, 1 / sp500.N)
    if extra:
        w = np.zeros(sp500.N)
        w[sp500.assets.index("AAPL")], w[sp500.assets.index("XOM")] = 0.5, 0.3
    real = float(np.prod(1 + sp500.loc("2020-02-20", "2020-03-23").filled(0.0) @ w) - 1)
    ret = row(out, "cumulative return")
    dd = row(out, "max drawdown")
    assert abs(ret[0] - real) < 6e-5 and 0 <= ret[3] <= 1 and 0 <= dd[3] <= 1 and dd[0] >= -real - 6e-5


def test_bring_your_own_csv_round_trip_and_backtest(run_example, sp500):
    out, _ = run_example("bring_your_own_csv.py")
    part = sp500.select_assets(["AAPL", "JPM", "XOM", "KO", "PFE"]).loc("2016-01-01", "2019-12-31")  # the smoke subset
    first = f"{part.dates[0].date()},AAPL,{float(part.returns[0, 0])!r}"
    assert "date,AAPL,JPM,XOM,KO,PFE" in out and first in out  # the files' first lines, as written
    span = f"{part.dates[0].date()}..{part.dates[-1].date()}"
    assert f"read prices_wide.csv: {part.T} days x 5 assets, {span}" in out
    for name in ("returns_long.csv", "prices_wide.csv"):
        m = re.search(rf"round trip {re.escape(name)}: same dates/assets/mask (\w+), max \|return difference\| (\S+)", out)
        assert m and m.group(1) == "True" and float(m.group(2)) < 1e-12, out
    assert "layout wide" in out and "kind prices" in out  # what detection decided is printed
    assert "date,asset,return" in out  # the long file's header, as written
    m = re.search(r"NLL joint (\S+) +CRPS (\S+) +VaR95 rate (\S+)% +portfolio calibration error (\S+)", out)
    assert m, out
    nll, crps, var95, cal = (float(x) for x in m.groups())
    assert math.isfinite(nll) and crps > 0 and 0 <= var95 <= 100 and cal >= 0
    for label in ("1/N", "MV (Ledoit-Wolf)"):
        sharpe, lo, hi, ret, dd, syn = row(out, label)
        assert lo <= hi and 0 <= dd < 1 and ret > -1


@pytest.mark.slow
def test_bring_your_own_csv_reads_a_user_long_returns_file(run_example, sp500, tmp_path):
    part = sp500.select_assets(["KO", "PG", "WMT", "JNJ"]).loc("2016-01-01", "2019-12-31")
    rows = ["day,ticker,ret"] + [f"{d.date()},{a},{r!r}" for j, a in enumerate(part.assets)
                                 for d, r in zip(part.dates, part.returns[:, j].tolist(), strict=True)]  # fmt: skip
    path = tmp_path / "mine.csv"
    path.write_text("\n".join(rows) + "\n")
    out, _ = run_example("bring_your_own_csv.py", "--csv", str(path))
    assert f"{part.T} days x 4 assets" in out and "layout long" in out and "kind returns" in out
    for label in ("1/N", "MV (Ledoit-Wolf)"):
        assert len(row(out, label)) == 6


def test_rllib_ppo_table(run_example):
    out, _ = run_example("rllib_ppo.py")
    assert "real validation period 2014-01-02..2018-12-31" in out
    for label in ("PPO (RLlib)", "near equal weight"):
        assert len(row(out, label)) == 2

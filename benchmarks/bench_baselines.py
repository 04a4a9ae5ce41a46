"""Benchmark of the classical baseline generators (writes benchmarks/results/baselines.md).

Usage::

    python benchmarks/bench_baselines.py            # full run (several minutes on 2 cores)
    python benchmarks/bench_baselines.py --quick    # small grids, for a smoke check

Part 1, sp500 with the default Split (train 1990-2013, validation 2014-2018, test 2019-2022):
joint NLL on the test days in nats per asset per day of returns divided by each asset's
train-period standard deviation (``ddof=1``),

    NLL_scaled = mean over test days of -(log p(r_t) + sum_i log s_i) / N,

plus the same with one pooled train standard deviation for every asset (the NeuralFactors
paper's footnote-3 convention) and, as an independent check, a direct scikit-learn
Ledoit-Wolf computation. Fit and predict times are wall-clock on a shared machine.

Part 2, ``synthetic_factor_panel(T=3000, N=20, F=3)`` (Student-T factors and noise, nu=5),
60/20/20 split by fraction: PPCA's held-out NLL per asset-day against the true model's
(``SyntheticFactorPanel.log_density``).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special, stats
from sklearn.covariance import LedoitWolf

from factorgym import Split, __version__, load_dataset, synthetic_factor_panel
from factorgym.data import ReturnPanel
from factorgym.generators.base import ReturnGenerator
from factorgym.generators.baselines import (
    BlockBootstrapGenerator,
    GarchGenerator,
    GaussianGenerator,
    LedoitWolfGenerator,
    PPCAGenerator,
)
from factorgym.generators.baselines.common import windows_before

OUT = Path(__file__).resolve().parent / "results" / "baselines.md"


def _test_logp(gen: ReturnGenerator, panel: ReturnPanel, days: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Log densities of the realised test days; returns (logp, predict seconds, score seconds)."""
    R = np.asarray(panel.returns)
    t0 = time.perf_counter()
    preds = []
    for s in range(0, len(days), 256):
        d = days[s : s + 256]
        preds += gen.predict_windows(windows_before(R, d, gen.min_history))
    t1 = time.perf_counter()
    lp = np.array([float(p.log_prob(R[d])) for p, d in zip(preds, days, strict=True)])
    return lp, t1 - t0, time.perf_counter() - t1


def _hyper(gen: ReturnGenerator) -> str:
    if isinstance(gen, GaussianGenerator):
        return f"window={gen.window_}, mean={gen.mean}"
    if isinstance(gen, PPCAGenerator):
        nu = gen.nu_
        nus = f"nu={nu[0]:.2f}" if np.all(nu == nu[0]) else f"nu median {np.median(nu):.2f} [{nu.min():.1f}, {nu.max():.1f}]"
        return f"k={gen.n_factors_}, window={gen.window_}, {nus}"
    if isinstance(gen, GarchGenerator):
        return (
            f"dist={gen.dist}, mean={gen.mean}; median alpha={np.median(gen.alpha_):.3f}, "
            f"beta={np.median(gen.beta_):.3f}, eta={np.median(gen.eta_):.2f}, lambda={np.median(gen.lam_):.3f}; "
            f"converged {int(gen.converged_.sum())}/{gen.n_assets_}"
        )
    return ""


def sklearn_lw_reference(panel: ReturnPanel, split: Split, days: np.ndarray) -> dict[str, float]:
    """LW-63 zero-mean Gaussian NLL computed directly with scikit-learn, four normalisations."""
    b = split.bounds(panel.dates)["train"]
    out = {}
    for kind in ("simple", "log"):
        R = np.asarray(panel.returns) if kind == "simple" else np.asarray(panel.log_returns())
        s_asset = R[b[0] : b[1]].std(axis=0, ddof=1)
        s_pool = R[b[0] : b[1]].std(ddof=1)
        lp = np.array([
            stats.multivariate_normal(np.zeros(R.shape[1]), LedoitWolf(assume_centered=True).fit(R[t - 63 : t]).covariance_).logpdf(R[t])
            for t in days
        ])
        N = R.shape[1]
        out[f"{kind}/per-asset std"] = float(np.mean(-(lp + np.log(s_asset).sum()) / N))
        out[f"{kind}/pooled std"] = float(np.mean(-(lp + N * np.log(s_pool)) / N))
    return out


def part_sp500(quick: bool) -> tuple[list[dict[str, Any]], dict[str, float], dict[str, Any]]:
    panel = load_dataset("sp500")
    split = Split()
    b = split.bounds(panel.dates)
    days = np.arange(*b["test"])
    R = np.asarray(panel.returns)
    s_asset = R[b["train"][0] : b["train"][1]].std(axis=0, ddof=1)
    s_pool = R[b["train"][0] : b["train"][1]].std(ddof=1)
    N = panel.N
    ppca = (
        PPCAGenerator(factor_grid=(1, 3, 6, 12), window_grid=(252, "train"), em_iter=30)
        if quick
        else PPCAGenerator()
    )
    models: list[tuple[str, ReturnGenerator]] = [
        ("gaussian (63d)", GaussianGenerator(window=63)),
        ("ledoit_wolf (63d)", LedoitWolfGenerator(window=63)),
        ("gaussian (window on val)", GaussianGenerator(window="auto")),
        ("ledoit_wolf (window on val)", LedoitWolfGenerator(window="auto")),
        ("garch (skew-t, CCC copula)", GarchGenerator()),
        ("ppca (k, window on val)", ppca),
    ]
    rows = []
    for name, gen in models:
        print(f"[sp500] fitting {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        gen.fit(panel, split, progress=True, rng=np.random.default_rng(0))
        fit_s = time.perf_counter() - t0
        lp, pred_s, score_s = _test_logp(gen, panel, days)
        rows.append({
            "model": name,
            "nll_scaled": float(np.mean(-(lp + np.log(s_asset).sum()) / N)),
            "nll_pooled": float(np.mean(-(lp + N * np.log(s_pool)) / N)),
            "nll_raw": float(np.mean(-lp / N)),
            "se": float(np.std(-lp / N, ddof=1) / np.sqrt(len(lp))),
            "hyper": _hyper(gen),
            "fit_s": fit_s,
            "pred_ms": 1e3 * pred_s / len(days),
            "score_ms": 1e3 * score_s / len(days),
            "validation": getattr(gen, "validation_", {}),
            "candidates": getattr(gen, "candidates_", {}),
        })
    # simulator speed of every kind (no density for the bootstrap)
    sims = {}
    gens = {r["model"]: g for r, (_, g) in zip(rows, models, strict=True)}
    boot = BlockBootstrapGenerator(mean_block=10.0).fit(panel, split, progress=False)
    for name, gen in [*gens.items(), ("bootstrap (mean block 10)", boot)]:
        t0 = time.perf_counter()
        gen.simulate(panel, int(days[0]) - 1, horizon=63, n_paths=256, rng=np.random.default_rng(1))
        sims[name] = time.perf_counter() - t0
    ref = sklearn_lw_reference(panel, split, days)
    return rows, ref, sims


def part_synthetic(quick: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    syn = synthetic_factor_panel(T=3000, N=20, F=3)
    gen_s = time.perf_counter() - t0
    panel = syn.panel
    split = Split.by_fraction(panel.dates)
    days = np.arange(*split.bounds(panel.dates)["test"])
    true_nll = -syn.log_density[days] / panel.N
    out: dict[str, Any] = {"true": float(true_nll.mean()), "panel_s": gen_s, "n_test": len(days)}
    grid = (1, 2, 3, 4, 5, 6) if quick else (1, 2, 3, 4, 5, 6, 8)
    for name, gen in [
        ("ppca (k, window on val)", PPCAGenerator(factor_grid=grid, window_grid=(252, 504, "train"))),
        ("ppca (train, k=3)", PPCAGenerator(n_factors=3, window="train")),
        ("ledoit_wolf (63d)", LedoitWolfGenerator(window=63)),
    ]:
        print(f"[synthetic] fitting {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        gen.fit(panel, split, progress=True, rng=np.random.default_rng(0))
        fit_s = time.perf_counter() - t0
        lp, pred_s, score_s = _test_logp(gen, panel, days)
        nll = -lp / panel.N
        gap = nll - true_nll
        out[name] = {
            "nll": float(nll.mean()),
            "gap": float(gap.mean()),
            "gap_se": float(gap.std(ddof=1) / np.sqrt(len(gap))),
            "hyper": _hyper(gen),
            "fit_s": fit_s,
            "pred_ms": 1e3 * (pred_s + score_s) / len(days),
            "validation": getattr(gen, "validation_", {}),
        }
    # the part of the gap that Gaussian factors alone must cost: KL(t_5 || N) per factor
    nu = 5.0
    h_t = (nu + 1) / 2 * (special.digamma((nu + 1) / 2) - special.digamma(nu / 2)) + np.log(np.sqrt(nu) * special.beta(nu / 2, 0.5))
    var_t = nu / (nu - 2)
    h_n = 0.5 * np.log(2 * np.pi * np.e * var_t)
    out["kl_t5_normal_per_factor"] = float(h_n - h_t)
    return out


def render(rows: list[dict[str, Any]], ref: dict[str, float], sims: dict[str, float], syn: dict[str, Any], cmd: str, total_s: float) -> str:
    L = [
        "# Classical baselines: benchmark",
        "",
        f"Command: `{cmd}` (factorgym {__version__}, Python {platform.python_version()}, numpy {np.__version__}).",
        f"Total wall time {total_s / 60:.1f} min on a 2-core machine shared with other jobs: "
        "**timings are provisional** (indicative only).",
        "",
        "## sp500, default Split (test 2019-01-02 .. 2022-12-28, 1006 days, N=20)",
        "",
        "`NLL_scaled` = mean over test days of `-(log p(r_t) + sum_i log s_i) / N`, `s_i` the train",
        "standard deviation of asset i (ddof=1): nats per asset per day of the scaled returns.",
        "`pooled` uses one train standard deviation for all assets (the paper's footnote 3);",
        "`raw` is on unscaled simple returns; `se` the standard error over days.",
        "PPCA's log density is an importance-sampling estimate (1024 draws per day).",
        "",
        "| model | NLL_scaled | (se) | NLL pooled-std | NLL raw | chosen hyper-parameters | fit s | predict ms/day | log_prob ms/day |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        L.append(
            f"| {r['model']} | {r['nll_scaled']:.4f} | {r['se']:.4f} | {r['nll_pooled']:.4f} | {r['nll_raw']:.4f} | {r['hyper']} | "
            f"{r['fit_s']:.1f} | {r['pred_ms']:.2f} | {r['score_ms']:.2f} |"
        )
    L += [
        "",
        "Reference check: zero-mean Gaussian with a 63-day Ledoit-Wolf covariance computed directly",
        "with `sklearn.covariance.LedoitWolf` + `scipy.stats.multivariate_normal`:",
        "",
        "| returns / scaling | NLL |",
        "|---|---|",
    ]
    L += [f"| {k} | {v:.4f} |" for k, v in ref.items()]
    L += [
        "",
        "The generator reproduces the direct computation (simple returns, per-asset std). The figure",
        "of about 0.946 quoted for this model is reproduced only with a **single pooled** train std",
        "(and most closely on log returns); with the per-asset scaling defined above the same model",
        "scores about 1.07: the two conventions differ by `log(s_pooled) - mean_i log(s_i)` per asset.",
        "",
        "Validation scores (mean validation NLL per asset-day, unscaled; lower is better):",
        "",
    ]
    for r in rows:
        if r["validation"]:
            v = ", ".join(f"{k}: {x:.4f}" for k, x in r["validation"].items())
            L.append(f"* {r['model']}: {v}")
    for r in rows:
        ecm = {k: c for k, c in r["candidates"].items() if "n_iter" in c}
        if ecm:
            v = ", ".join(f"k={k.split('/')[1]}: {c['n_iter']}{'' if c['converged'] else ' (not converged)'}" for k, c in ecm.items())
            L.append(f"* {r['model']}, ECM iterations of the train-mode candidates (cap {PPCAGenerator().em_iter}): {v}")
    by = {r["model"]: r for r in rows}
    notes = []
    for base in ("gaussian", "ledoit_wolf"):
        fixed, auto = by[f"{base} (63d)"], by[f"{base} (window on val)"]
        if auto["hyper"] != fixed["hyper"]:
            better = "better" if fixed["nll_scaled"] < auto["nll_scaled"] else "worse"
            notes.append(
                f"{base}: validation chose {auto['hyper'].split(',')[0]}; on test the 63-day window does "
                f"{better} ({fixed['nll_scaled']:.4f} vs {auto['nll_scaled']:.4f})."
            )
    if notes:
        L += ["", "Notes: the validation years (2014-2018) were calm, the test years include the 2020 crash."]
        L += [f"* {n}" for n in notes]
    L += [
        "",
        "Simulation: `simulate(horizon=63, n_paths=256)` from the last validation day, wall seconds:",
        "",
        "| model | seconds |",
        "|---|---|",
    ]
    L += [f"| {k} | {v:.2f} |" for k, v in sims.items()]
    L += [
        "",
        "## Synthetic factor panel: PPCA vs the true model",
        "",
        "`synthetic_factor_panel(T=3000, N=20, F=3)` (nu=5 Student-T factors and noise), split 60/20/20 by",
        f"date; {syn['n_test']} test days. True model NLL (its `log_density`, importance-sampled) "
        f"= **{syn['true']:.4f}** nats/asset/day.",
        "",
        "| model | NLL | gap to truth | (se of gap) | chosen | fit s | predict+log_prob ms/day |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("ppca (k, window on val)", "ppca (train, k=3)", "ledoit_wolf (63d)"):
        r = syn[name]
        L.append(f"| {name} | {r['nll']:.4f} | {r['gap']:+.4f} | {r['gap_se']:.4f} | {r['hyper']} | {r['fit_s']:.1f} | {r['pred_ms']:.2f} |")
    kl = syn["kl_t5_normal_per_factor"]
    L += [
        "",
        "Target: PPCA within 0.02 nats/asset/day of the truth. The PPCA model has Gaussian factors",
        f"where the truth has t5 factors; KL(t5 || moment-matched normal) = {kl:.4f} nats per factor, i.e.",
        f"at most about {3 * kl / 20:.4f} nats/asset/day for 3 factors over 20 assets if the factors were",
        "observed (less in practice: they are only partly identified by 20 assets). Both log densities are",
        "importance-sampled (~1e-3 nats/asset per day of noise, averaging out over days).",
        "",
        "Validation scores of the PPCA selection:",
        "",
        "* " + ", ".join(f"{k}: {x:.4f}" for k, x in syn["ppca (k, window on val)"]["validation"].items()),
        "",
    ]
    return "\n".join(L)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small selection grids (smoke check)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows, ref, sims = part_sp500(args.quick)
    syn = part_synthetic(args.quick)
    cmd = "python benchmarks/bench_baselines.py" + (" --quick" if args.quick else "")
    text = render(rows, ref, sims, syn, cmd, time.perf_counter() - t0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

"""Benchmark of the factor-conditioned diffusion generator (figures in results/diffusion.md).

Usage::

    python benchmarks/bench_diffusion.py                       # speed + synthetic + sp500
    python benchmarks/bench_diffusion.py --parts speed         # one part
    python benchmarks/bench_diffusion.py --quick               # tiny budgets, smoke check only
    python benchmarks/bench_diffusion.py --parts eval --nf-run RUN  # evaluate_generator, every 4th test day

Parts
-----
speed
    Wall-clock of ``predict_window(window).sample(500, rng)`` for one day of 20 assets with
    the default sampler (factor computation included), median of repeats, 1 and 2 torch
    threads. Timings are made on whatever machine runs this; the load average is printed.
synthetic
    ``synthetic_factor_panel(T=3000, N=20, F=3, nu=5)`` (iid Student-T factor model), 60/20/20
    split by fraction, default config. On 20 test days: relative Frobenius error of the
    sample covariance of 4000 generated scenarios against the true ``.covariance(t)``, its
    split into volatility and correlation errors, and marginal quantile errors at 1/5/50/95/99%
    (in units of each asset's true std) against quantiles of 10^6 draws of the true model.
    References on the same days: the train-split sample covariance / empirical quantiles
    (the best a static estimate from the same data does), a Ledoit-Wolf 63-day window,
    and 4000 draws of the true model itself (the Monte-Carlo floor of the metric).
sp500
    Default ``Split`` (train 1990-2013, validation 2014-2018, test 2019-2022), default config
    and training budget. For every test day ``t + 1`` (context rows ``<= t``): energy score
    (``scoringrules.es_ensemble``, unbiased "fair" estimator) and mean CRPS of 200
    scenarios, against (i) a Gaussian with Ledoit-Wolf covariance of the last 63 days
    (sklearn) and sample mean, (ii) a stationary block bootstrap of the train history (for a
    one-day horizon it draws single train days uniformly), both computed here, and the
    official ``factorgym.generators.baselines`` versions when they import and run. Score
    differences get a Newey-West (5 lags) t-statistic, since daily scores are autocorrelated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import scoringrules as sr
import torch
from sklearn.covariance import LedoitWolf

from factorgym import Split, __version__, load_dataset, synthetic_factor_panel
from factorgym.generators.diffusion import DiffusionConfig, DiffusionGenerator

ROOT = Path(__file__).resolve().parents[1]
QUANTILES = np.array([0.01, 0.05, 0.5, 0.95, 0.99])


def _load() -> str:
    la = os.getloadavg()
    return f"load average {la[0]:.1f} / {la[1]:.1f} / {la[2]:.1f} on {os.cpu_count()} CPUs"


def _windows(returns: np.ndarray, days: np.ndarray, L: int) -> np.ndarray:
    return np.stack([returns[t + 1 - L : t + 1] for t in days])


def _nw_t(d: np.ndarray, lags: int = 5) -> float:
    """t-statistic of ``mean(d)`` with a Newey-West (Bartlett kernel) long-run variance."""
    m = d.mean()
    c = d - m
    n = c.size
    lrv = c @ c / n
    for k in range(1, lags + 1):
        lrv += 2 * (1 - k / (lags + 1)) * (c[k:] @ c[:-k]) / n
    return float(m / np.sqrt(lrv / n)) if lrv > 0 else float("nan")


def _fit(panel: Any, split: Split, cfg: DiffusionConfig, out_dir: Path | None, progress: bool) -> DiffusionGenerator:
    t0 = time.perf_counter()
    gen = DiffusionGenerator(cfg).fit(panel, split, out_dir=out_dir, progress=progress, rng=np.random.default_rng(0))
    info = gen.fit_info_
    print(
        f"  fit: {info['steps']} steps, best step {info['best_step']} (val loss {info['best_val_loss']:.4f}), "
        f"{info['n_params']} parameters, {info['train_days']} train / {info['val_days']} val days, "
        f"{time.perf_counter() - t0:.0f} s wall (train loop {info['train_seconds']:.0f} s"
        + (f", resumed from step {info['resumed_from']}" if info["resumed_from"] else "")
        + ")"
    )
    return gen


# ---------------------------------------------------------------------- speed
def bench_speed(gen: DiffusionGenerator | None, repeats: int) -> dict[str, Any]:
    cfg = DiffusionConfig() if gen is None else gen.config
    panel = load_dataset("sp500")
    if gen is None:  # timing does not depend on the weights: an unfitted default network will do
        from factorgym.features import FeatureScaler
        from factorgym.generators.diffusion.diffusion import GaussianDiffusion
        from factorgym.generators.diffusion.factors import factor_names
        from factorgym.generators.diffusion.model import FactorDiT

        gen = DiffusionGenerator(cfg)
        na, nc = factor_names(cfg)
        gen.assets_, gen.train_std_ = panel.assets, None
        gen.context_scaler_ = FeatureScaler().fit(np.zeros((2, 1, len(nc))), np.ones((2, 1), dtype=bool))
        gen.model_ = FactorDiT(cfg.dit(len(na) + len(nc))).eval()
        gen.diffusion_ = GaussianDiffusion(cfg.schedule, cfg.n_diffusion_steps, cfg.skip, cfg.loss_weight, cfg.weight_cap)
    window = np.asarray(panel.returns[-gen.min_history - 1 : -1])
    out: dict[str, Any] = {"sampler": cfg.sampler, "steps": cfg.sample_steps, "n_params": gen.model_.n_params}
    print(f"\n## speed: 500 scenarios x {panel.N} assets, {cfg.sampler} with {cfg.sample_steps} steps ({_load()})")
    for threads in (1, 2):
        g = DiffusionGenerator.__new__(DiffusionGenerator)
        g.__dict__.update(gen.__dict__)
        g.config = gen.config.replace(num_threads=threads)
        rng = np.random.default_rng(0)
        g.predict_window(window).sample(500, rng)  # warm-up
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            s = g.predict_window(window).sample(500, rng)
            ts.append(time.perf_counter() - t0)
        assert s.shape == (500, panel.N)
        out[f"threads_{threads}"] = {"median_s": float(np.median(ts)), "min_s": float(np.min(ts))}
        print(f"  {threads} thread(s): median {np.median(ts):.3f} s, min {np.min(ts):.3f} s over {repeats} runs")
    return out


# ---------------------------------------------------------------------- synthetic
def _true_draws(syn: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    F = syn.s_z.size
    z = rng.standard_t(syn.nu_z, size=(n, F)) * syn.s_z
    eps = rng.standard_t(syn.nu_x, size=(n, syn.sigma.size)) * syn.sigma
    return syn.alpha + z @ syn.beta.T + eps  # vol = 1 (iid panel)


def _cov_errors(C: np.ndarray, C_true: np.ndarray) -> tuple[float, float, float]:
    """(relative Frobenius, mean |vol ratio - 1|, relative Frobenius of the correlation)."""
    sd, sd_t = np.sqrt(np.diag(C)), np.sqrt(np.diag(C_true))
    R, R_t = C / np.outer(sd, sd), C_true / np.outer(sd_t, sd_t)
    return (
        float(np.linalg.norm(C - C_true) / np.linalg.norm(C_true)),
        float(np.mean(np.abs(sd / sd_t - 1))),
        float(np.linalg.norm(R - R_t) / np.linalg.norm(R_t)),
    )


def bench_synthetic(cfg: DiffusionConfig, quick: bool, progress: bool) -> dict[str, Any]:
    T = 1200 if quick else 3000
    syn = synthetic_factor_panel(T=T, N=20, F=3, nu=5.0, seed=0, n_is_samples=32)
    panel = syn.panel
    split = Split.by_fraction(panel.dates, 0.6, 0.2)
    print(f"\n## synthetic: T={T}, N=20, F=3, nu=5, split {split} ({_load()})")
    gen = _fit(panel, split, cfg, None, progress)
    test0 = split.bounds(panel.dates)["test"][0]
    days = np.linspace(test0, panel.T - 2, 20).round().astype(int)
    S = 4000
    t0 = time.perf_counter()
    fc = gen.sample_windows(_windows(panel.returns, days, gen.min_history), S, np.random.default_rng(1))
    samp_s = time.perf_counter() - t0
    rng = np.random.default_rng(2)
    truth = _true_draws(syn, 1_000_000, rng)
    q_true = np.quantile(truth, QUANTILES, axis=0)  # (5, N)
    C_true = syn.covariance(int(days[0]) + 1)
    sd_true = np.sqrt(np.diag(C_true))
    train = np.asarray(panel.returns[: split.bounds(panel.dates)["train"][1]])
    refs: dict[str, list[np.ndarray]] = {"model": [], "true_model_4000": [], "train_sample": [], "lw_63": []}
    quants: dict[str, list[np.ndarray]] = {"model": [], "true_model_4000": [], "train_empirical": []}
    for k, t in enumerate(days):
        refs["model"].append(np.cov(fc[k], rowvar=False))
        floor = _true_draws(syn, S, rng)
        refs["true_model_4000"].append(np.cov(floor, rowvar=False))
        refs["train_sample"].append(np.cov(train, rowvar=False))
        refs["lw_63"].append(LedoitWolf().fit(panel.returns[t - 62 : t + 1]).covariance_)
        quants["model"].append(np.quantile(fc[k], QUANTILES, axis=0))
        quants["true_model_4000"].append(np.quantile(floor, QUANTILES, axis=0))
        quants["train_empirical"].append(np.quantile(train, QUANTILES, axis=0))
    res: dict[str, Any] = {"sample_seconds_20x4000": samp_s, "fit": _info(gen)}
    print(f"  covariance vs true (mean over {len(days)} test days; {S} scenarios per day):")
    print("  | estimate | rel. Frobenius | mean abs vol error | corr. rel. Frobenius |")
    print("  |---|---|---|---|")
    for name, Cs in refs.items():
        e = np.array([_cov_errors(C, C_true) for C in Cs]).mean(axis=0)
        res[f"cov_{name}"] = e.tolist()
        print(f"  | {name} | {e[0]:.3f} | {e[1]:.3f} | {e[2]:.3f} |")
    print("  marginal quantile error, mean over assets and days of |q - q_true| / sd_true:")
    print("  | estimate | " + " | ".join(f"{q:.0%}" for q in QUANTILES) + " |")
    print("  |---|" + "---|" * len(QUANTILES))
    for name, Qs in quants.items():
        err = np.mean([np.abs(Q - q_true) / sd_true for Q in Qs], axis=(0, 2))
        res[f"quantile_{name}"] = err.tolist()
        print(f"  | {name} | " + " | ".join(f"{e:.3f}" for e in err) + " |")
    return res


def _info(gen: DiffusionGenerator) -> dict[str, Any]:
    i = gen.fit_info_
    return {k: i[k] for k in ("steps", "best_step", "best_val_loss", "n_params", "train_seconds", "train_days", "val_days")}


# ---------------------------------------------------------------------- sp500
def bench_sp500(
    cfg: DiffusionConfig, quick: bool, progress: bool, out_dir: Path | None, nf_run: Path | None = None
) -> dict[str, Any]:
    panel = load_dataset("sp500")
    split = Split()
    b = split.bounds(panel.dates)
    print(f"\n## sp500: {panel}, split {split} ({_load()})")
    gen = _fit(panel, split, cfg, out_dir, progress)
    R = np.asarray(panel.returns)
    days = np.arange(b["test"][0] - 1, panel.T - 1)  # context day t, forecast t + 1 in test
    if quick:
        days = days[::10]
    M = 200
    obs = R[days + 1]
    t0 = time.perf_counter()
    fc_model = gen.sample_windows(_windows(R, days, gen.min_history), M, np.random.default_rng(1))
    samp_s = time.perf_counter() - t0
    rng = np.random.default_rng(2)
    fcs: dict[str, np.ndarray] = {"diffusion": fc_model}
    lw = np.empty_like(fc_model)
    for k, t in enumerate(days):
        w = R[t - 62 : t + 1]
        lw[k] = rng.multivariate_normal(w.mean(axis=0), LedoitWolf().fit(w).covariance_, size=M)
    fcs["ledoit_wolf_63 (own)"] = lw
    train_rows = R[b["train"][0] : b["train"][1]]
    fcs["bootstrap_train (own)"] = train_rows[rng.integers(0, train_rows.shape[0], size=(len(days), M))]
    try:  # the official baselines, when they exist and work
        from factorgym.generators.baselines import BlockBootstrapGenerator, LedoitWolfGenerator

        for name, g in (
            ("ledoit_wolf_63 (baselines.py)", LedoitWolfGenerator(window=63)),
            ("bootstrap (baselines.py)", BlockBootstrapGenerator()),
        ):
            g.fit(panel, split, progress=False)
            preds = g.predict_windows(_windows(R, days, g.min_history))
            sub = np.random.default_rng(3)
            fcs[name] = np.stack([p.sample(M, sub) for p in preds])
    except Exception as exc:  # noqa: BLE001 - a reference that fails is reported, not fatal
        print(f"  (official baselines unavailable: {type(exc).__name__}: {exc})")
    if nf_run is not None:  # NeuralFactors on the same days and scenario count (where diffusion loses)
        from factorgym.generators.runs import load_run

        nf, _, _ = load_run(nf_run)
        preds = nf.predict_windows(_windows(R, days, nf.min_history))
        sub = np.random.default_rng(4)
        fcs["neuralfactors"] = np.stack([p.sample(M, sub) for p in preds])
    es = {k: sr.es_ensemble(obs, f, backend="numpy", estimator="fair") for k, f in fcs.items()}
    crps = {
        k: sr.crps_ensemble(obs, f, m_axis=-2, backend="numpy", estimator="fair").mean(axis=-1)
        for k, f in fcs.items()
    }
    print(f"  {len(days)} test days, {M} scenarios each; sampling the diffusion model took {samp_s:.0f} s")
    print("  | forecaster | energy score (x1e2) | mean CRPS (x1e3) | ES diff vs diffusion (NW t) |")
    print("  |---|---|---|---|")
    res: dict[str, Any] = {"fit": _info(gen), "days": int(len(days)), "scenarios": M, "sample_seconds": samp_s}
    for k in fcs:
        d = es[k] - es["diffusion"]
        t = _nw_t(d) if k != "diffusion" else float("nan")
        res[k] = {"es": float(es[k].mean()), "crps": float(crps[k].mean()), "es_diff_t": t}
        print(
            f"  | {k} | {1e2 * es[k].mean():.4f} | {1e3 * crps[k].mean():.4f} | "
            + ("-" if k == "diffusion" else f"{1e2 * d.mean():+.4f} (t = {t:.2f})")
            + " |"
        )
    # calibration of the marginals: coverage of central 90% intervals
    for k in [k for k in ("diffusion", "neuralfactors") if k in fcs]:
        lo, hi = np.quantile(fcs[k], 0.05, axis=1), np.quantile(fcs[k], 0.95, axis=1)
        cov90 = float(np.mean((obs >= lo) & (obs <= hi)))
        res[f"coverage_90_{k}"] = cov90
        print(f"  {k}: central 90% marginal intervals cover {cov90:.3f} of test returns")
    # where each wins: energy-score difference by calendar year (negative: diffusion better)
    if "neuralfactors" in fcs:
        years = panel.dates[days + 1].year
        d = es["diffusion"] - es["neuralfactors"]
        res["es_diff_vs_nf_by_year"] = {int(y): float(d[years == y].mean()) for y in np.unique(years)}
        print("  ES(diffusion) - ES(neuralfactors) by year (x1e2): " + ", ".join(
            f"{y}: {1e2 * v:+.3f}" for y, v in res["es_diff_vs_nf_by_year"].items()))
    return res


# ---------------------------------------------------------------------- eval
def bench_eval(out_dir: Path, nf_run: Path | None, stride: int, threads: int | None) -> dict[str, Any]:
    """``evaluate_generator`` on every ``stride``-th test day for the fitted sp500 model (and
    NeuralFactors on the same days), 500 samples and 500 moment draws per day."""
    from factorgym.generators.base import load_generator
    from factorgym.generators.evaluation import evaluate_generator, reports_table
    from factorgym.report.tables import to_markdown

    panel, split = load_dataset("sp500"), Split()
    gen = load_generator(out_dir / "diffusion.zip")
    gen.config = gen.config.replace(num_threads=threads, n_moment_samples=500)
    models: dict[str, Any] = {"diffusion": gen}
    if nf_run is not None:
        from factorgym.generators.runs import load_run

        models["neuralfactors"] = load_run(nf_run)[0]
    print(f"\n## evaluate_generator on every {stride}th test day ({_load()})")
    reps, res = [], {}
    for name, g in models.items():
        t0 = time.perf_counter()
        reps.append(evaluate_generator(g, panel, split, "test", rng=np.random.default_rng(0), n_samples=500,
                                       energy_samples=256, sim_paths=20, day_stride=stride, name=name, progress=False))
        res[name] = {"seconds": time.perf_counter() - t0, **reps[-1].scalars}
        print(f"  {name}: {res[name]['seconds']:.0f} s")
    print(to_markdown(reports_table(reps)))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", default=["speed", "synthetic", "sp500"], choices=["speed", "synthetic", "sp500", "eval"])
    ap.add_argument("--quick", action="store_true", help="tiny budgets; a smoke check, not results")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for fitting and sampling")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "runs" / "bench_diffusion", help="resumable train state (sp500)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--nf-run", type=Path, default=None, help="a NeuralFactors run/artifact to score beside it (sp500)")
    args = ap.parse_args()
    cfg = DiffusionConfig(num_threads=args.threads)
    if args.quick:
        cfg = cfg.replace(max_steps=200, eval_every=100, warmup_steps=20)
    print(
        f"# bench_diffusion  {time.strftime('%Y-%m-%d %H:%M')}  factorgym {__version__}, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs ({_load()})"
    )
    print(f"config: {json.dumps(cfg.to_dict(), default=str)}")
    results: dict[str, Any] = {}
    if "sp500" in args.parts:
        results["sp500"] = bench_sp500(cfg, args.quick, not args.no_progress, None if args.quick else args.out_dir, args.nf_run)
    if "eval" in args.parts:
        results["eval"] = bench_eval(args.out_dir, args.nf_run, 4, args.threads)
    if "synthetic" in args.parts:
        results["synthetic"] = bench_synthetic(cfg, args.quick, not args.no_progress)
    if "speed" in args.parts:
        results["speed"] = bench_speed(None, repeats=3 if args.quick else 9)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

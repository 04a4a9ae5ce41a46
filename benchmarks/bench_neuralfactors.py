"""Benchmarks of the NeuralFactors generator (figures in benchmarks/results/neuralfactors.md).

Run from the repository root::

    python benchmarks/bench_neuralfactors.py sp500        # train the default config, NLL val/test, LW refs
    python benchmarks/bench_neuralfactors.py eval         # re-score the saved sp500 model
    python benchmarks/bench_neuralfactors.py synthetic    # gap to the true model on a synthetic factor panel
    python benchmarks/bench_neuralfactors.py synthetic --regime --seed 1 [--n-assets 50] [--set dropout=0.25]
        # the same with time-varying factor volatility, plus volatility tracking and a decomposition of the gap
    python benchmarks/bench_neuralfactors.py ablations    # short equal-budget ablations on the validation split
    python benchmarks/bench_neuralfactors.py speed        # ms per simulated day, 64 paths x 20 assets
    python benchmarks/bench_neuralfactors.py all

Options: ``--threads N`` (torch intra-op threads, default 1: on a shared 2-core machine a second
thread mostly waits for a busy core), ``--steps`` (override ``max_steps``), ``--out DIR``.
Results go to ``benchmarks/out/neuralfactors/*.json`` (git-ignored) and printed as JSON.

NLL conventions (NeuralFactors eq. 10-11): ``NLL_joint = -(log p(r) + sum_i log s_i) / N``
nats per asset per day, with ``log p`` the 100-sample importance-sampled (CIWAE) estimate, and
``NLL_ind`` the mean per-asset marginal NLL. Two scales are reported: ``per_asset`` (``s_i`` each
asset's train-period std, ddof=1) and ``pooled`` (one train std over all assets, the paper's
footnote 3 and the default of :mod:`factorgym.generators.evaluation`); they differ by a constant
``log s_pooled - mean_i log s_i`` (0.116 on sp500). Day ``d`` is predicted from rows ``< d``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import multivariate_normal
from sklearn.covariance import LedoitWolf

from factorgym import Split, load_dataset, synthetic_factor_panel
from factorgym.data import ReturnPanel
from factorgym.generators.neuralfactors import NeuralFactors, NeuralFactorsConfig

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------- scoring
def train_std(panel: ReturnPanel, split: Split, pooled: bool = False) -> np.ndarray:
    """Train-period standard deviation (ddof=1): each asset's own, or one pooled over assets."""
    a = split.bounds(panel.dates)["train"][1]
    r, m = np.asarray(panel.returns[:a]), np.asarray(panel.mask[:a])
    if pooled:
        return np.full(panel.N, np.std(r[m], ddof=1))
    return np.array([np.std(r[m[:, j], j], ddof=1) for j in range(panel.N)])


def eval_days(model: NeuralFactors, panel: ReturnPanel, split: Split, part: str) -> np.ndarray:
    """Row indices of ``part`` that have the model's history."""
    i0, i1 = split.bounds(panel.dates)[part]
    return np.arange(max(i0, model.min_history), i1)


def nf_logprobs(model: NeuralFactors, panel: ReturnPanel, days: np.ndarray, marginals: bool = True) -> dict[str, np.ndarray]:
    """Raw joint ``log p(r_d)`` ``(D,)`` (100-sample CIWAE) and marginal log densities ``(D, N)``."""
    preds = model.predict_range(panel, days[0] - 1, days[-1])
    r = np.asarray(panel.returns[days])
    out = {"joint": np.array([p.log_prob(x) for p, x in zip(preds, r, strict=True)])}
    if marginals:
        out["marg"] = np.stack([p.marginal_log_prob(x) for p, x in zip(preds, r, strict=True)])
    return out


def ref_logprobs(panel: ReturnPanel, days: np.ndarray, kind: str) -> np.ndarray:
    """Raw joint log densities ``(D,)`` of classical Gaussian references.

    ``lw63`` / ``lw252``: zero-mean Gaussian with the Ledoit-Wolf covariance (about zero) of
    the last 63 / 252 days, ``sklearn.covariance.LedoitWolf(assume_centered=True)`` +
    ``scipy.stats.multivariate_normal`` (the convention of ``benchmarks/results/baselines.md``).
    """
    if not kind.startswith("lw"):
        raise ValueError(kind)
    R = np.asarray(panel.returns)  # noqa: N806
    out = np.empty(len(days))
    for i, d in enumerate(days):
        cov = LedoitWolf(assume_centered=True).fit(R[d - int(kind[2:]) : d]).covariance_
        out[i] = multivariate_normal(np.zeros(panel.N), cov).logpdf(R[d])
    return out


def summarise(x: np.ndarray, dates: Any) -> dict[str, Any]:
    """Mean, standard error, median and per-year means of per-day scores."""
    years = np.asarray(dates.year)
    return {
        "mean": float(np.mean(x)),
        "se": float(np.std(x, ddof=1) / np.sqrt(len(x))),
        "median": float(np.median(x)),
        "years": {int(y): float(np.mean(x[years == y])) for y in np.unique(years)},
    }


def scaled_scores(lp: dict[str, np.ndarray], panel: ReturnPanel, split: Split, dates: Any) -> dict[str, Any]:
    """NLL_joint (and NLL_ind) on both scales: per-asset train std and pooled train std."""
    out: dict[str, Any] = {}
    for name, pooled in (("per_asset", False), ("pooled", True)):
        log_s = np.log(train_std(panel, split, pooled))
        out[f"joint_{name}"] = summarise(-(lp["joint"] + log_s.sum()) / panel.N, dates)
        if "marg" in lp:
            out[f"ind_{name}"] = summarise(-np.mean(lp["marg"] + log_s, axis=1), dates)
    return out


def evaluate_model(model: NeuralFactors, panel: ReturnPanel, split: Split, full_eval: bool) -> dict[str, Any]:
    """NF and reference scores on the validation and test parts."""
    res: dict[str, Any] = {}
    for part in ("val", "test"):
        t = time.perf_counter()
        days = eval_days(model, panel, split, part)
        dates = panel.dates[days]
        res[part] = {"nf": scaled_scores(nf_logprobs(model, panel, days), panel, split, dates)}
        res[part]["eval_s"] = time.perf_counter() - t
        for ref in ("lw63", "lw252"):
            res[part][ref] = scaled_scores({"joint": ref_logprobs(panel, days, ref)}, panel, split, dates)
    if full_eval:
        from factorgym.generators.evaluation import evaluate_generator

        t = time.perf_counter()
        rep = evaluate_generator(model, panel, split, "test", n_samples=500, rng=np.random.default_rng(0), sim_paths=50, progress=False)
        res["test_report"] = rep.to_dict()["scalars"]
        res["test_report_notes"] = rep.to_dict()["notes"]
        res["test_report_s"] = time.perf_counter() - t
    return res


def machine() -> dict[str, Any]:
    import os

    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "note": "shared CPU (other jobs running); timings are pessimistic",
    }


# ---------------------------------------------------------------------- tasks
def task_sp500(args: argparse.Namespace) -> dict[str, Any]:
    panel, split = load_dataset("sp500"), Split()
    over = {"max_steps": args.steps} if args.steps else {}
    cfg = NeuralFactorsConfig(num_threads=args.threads, **over)
    t0 = time.perf_counter()
    model = NeuralFactors(cfg).fit(panel, split, out_dir=args.out / "sp500_run", progress=True)
    fit_wall = time.perf_counter() - t0
    model.save(args.out / "nf_sp500.zip")
    res: dict[str, Any] = {
        "config": cfg.to_dict(),
        "fit_wall_s": fit_wall,
        "train_s": model.fit_info_["elapsed"],
        "best_val_bound": model.fit_info_["best_val"],
        "best_step": model.fit_info_["best_step"],
        "history": model.fit_info_["history"],
        "machine": machine(),
    }
    res.update(evaluate_model(model, panel, split, args.full_eval))
    return res


def task_eval(args: argparse.Namespace) -> dict[str, Any]:
    """Re-score the model saved by ``sp500`` (no training)."""
    panel, split = load_dataset("sp500"), Split()
    model = NeuralFactors.load(args.out / "nf_sp500.zip")
    res: dict[str, Any] = {"fit_info": {k: v for k, v in model.fit_info_.items() if k != "history"}, "machine": machine()}
    res.update(evaluate_model(model, panel, split, args.full_eval))
    return res


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``key=value`` config overrides; values parsed as JSON when they parse, else strings."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, _, val = item.partition("=")
        try:
            out[key] = json.loads(val)
        except json.JSONDecodeError:
            out[key] = val
    return out


def vol_tracking(model: NeuralFactors, syn: Any, panel: ReturnPanel, days: np.ndarray) -> dict[str, float]:
    """How well the model's one-day predictive follows the true volatility path on ``days``.

    The equal-weight portfolio's predicted standard deviation (from the predictive's
    covariance) against the true one (``syn.covariance``): rank and log correlations across
    days, and the mean and spread of their log ratio (0 and 0 for a perfect tracker). Then a
    decomposition of the gap to the true NLL (raw nats per asset-day) with two hybrids:

    ``gap_nf_true_vol``   the model's parameters with beta and sigma rescaled each day by
                          ``c_t = sqrt(tr Sigma_true / tr Sigma_model)`` (its average variance
                          made the true one): what is left once the volatility level of each
                          day is right (loadings, idiosyncratic scales, tails, alpha);
    ``gap_true_nf_vol``   the true model with its volatility path ``v_t`` replaced by the
                          model's, ``v_t / c_t``: the cost of the model's volatility path alone.
    """
    from scipy.stats import spearmanr

    from factorgym.data.synthetic import _factor_model_logpdf
    from factorgym.generators.neuralfactors.predictive import NeuralFactorsPredictive

    w = np.full(panel.N, 1.0 / panel.N)
    preds = model.predict_range(panel, days[0] - 1, days[-1])
    pred = np.log(np.sqrt(np.array([w @ p.cov() @ w for p in preds])))
    true = np.log(np.sqrt(np.array([w @ syn.covariance(int(d)) @ w for d in days])))
    r = np.asarray(panel.returns)[days]
    c = np.sqrt(np.array([np.trace(syn.covariance(int(d))) / np.trace(p.cov()) for p, d in zip(preds, days, strict=True)]))
    lp_fixed = np.array([
        NeuralFactorsPredictive(p.alpha, p.beta * k, p.sigma * k, p.nu, p.prior_scale, p.prior_dof).log_prob(x)
        for p, x, k in zip(preds, r, c, strict=True)
    ])
    v = syn.vol[days] / c  # the model's volatility path on the true model's scale
    unit = syn.alpha + (r - syn.alpha) / v[:, None]
    lp_true_nf_vol = _factor_model_logpdf(
        unit, syn.alpha, syn.beta, syn.sigma, syn.s_z, syn.nu_x, syn.nu_z, 4096, np.random.default_rng(3)
    ) - panel.N * np.log(v)
    lp_true = syn.log_density[days]
    return {
        "ew_vol_rank_corr": float(spearmanr(pred, true)[0]),
        "ew_vol_log_corr": float(np.corrcoef(pred, true)[0, 1]),
        "ew_vol_log_ratio_mean": float(np.mean(pred - true)),
        "ew_vol_log_ratio_sd": float(np.std(pred - true, ddof=1)),
        "gap_nf_true_vol": float(np.mean(lp_true - lp_fixed) / panel.N),
        "gap_true_nf_vol": float(np.mean(lp_true - lp_true_nf_vol) / panel.N),
    }


def task_synthetic(args: argparse.Namespace) -> dict[str, Any]:
    """Gap to the true density on a synthetic factor panel (test split, raw nats/asset/day).

    ``--regime`` draws a panel with time-varying factor volatility; ``--n-assets`` / ``--days``
    set its size; the model is ``NeuralFactorsConfig(n_factors=3)`` plus ``--set`` overrides.
    ``--val-every`` overrides the validation period (default: the config's own for ``--regime``,
    ``steps // 24`` for the i.i.d. panel, as before).
    """
    syn = synthetic_factor_panel(T=args.days, N=args.n_assets, F=3, seed=args.seed, time_varying_vol=args.regime)
    panel = syn.panel
    split = Split.by_fraction(panel.dates, 0.7, 0.15)
    over: dict[str, Any] = {"n_factors": 3, **parse_overrides(args.set)}
    if args.steps:
        over["max_steps"] = args.steps
    if args.val_every:
        over["val_every"] = args.val_every
    elif not args.regime:  # i.i.d. data: the embedder can only overfit its inputs, so validate often
        over["val_every"] = max(over.get("max_steps", 1200) // 24, 1)
    cfg = NeuralFactorsConfig(num_threads=args.threads, **over)
    t0 = time.perf_counter()
    model = NeuralFactors(cfg).fit(panel, split, progress=args.progress)
    fit_s = time.perf_counter() - t0
    days = eval_days(model, panel, split, "test")
    nf = nf_logprobs(model, panel, days, marginals=False)["joint"] / panel.N  # raw nats per asset-day
    true = syn.log_density[days] / panel.N
    lw = ref_logprobs(panel, days, "lw252") / panel.N
    res = {
        "config": cfg.to_dict(),
        "overrides": over,
        "fit_s": fit_s,
        "best_step": model.fit_info_["best_step"],
        "best_val_bound": model.fit_info_["best_val"],
        "history": model.fit_info_["history"],
        "n_test_days": len(days),
        "nf_nll_raw": float(-np.mean(nf)),
        "true_nll_raw": float(-np.mean(true)),
        "gap": float(np.mean(true) - np.mean(nf)),
        "gap_se": float(np.std(true - nf, ddof=1) / np.sqrt(len(days))),
        "lw252_nll_raw": float(-np.mean(lw)),
        "lw252_gap": float(np.mean(true) - np.mean(lw)),
        "time_varying_vol": bool(args.regime),
        "seed": int(args.seed),
        "n_assets": int(args.n_assets),
        "days": int(args.days),
        "machine": machine(),
    }
    if args.regime:
        res["vol_tracking"] = vol_tracking(model, syn, panel, days)
    if args.save_model:
        model.save(args.out / f"{args.name or 'synthetic'}.zip")
    return res


ABLATIONS: dict[str, dict[str, Any]] = {
    "default (attention, Student-T, k=20, F=8)": {},
    "LSTM": {"sequence_model": "lstm"},
    "Gaussian prior": {"prior": "gaussian"},
    "Gaussian decoder": {"decoder": "gaussian"},
    "alpha = 0": {"learn_alpha": False},
    "k = 1 (VAE)": {"k": 1},
    "F = 4": {"n_factors": 4},
    "F = 16": {"n_factors": 16},
    "lookback 16": {"lookback": 16},
    "returns only (no features)": {"use_features": False},
}


def task_ablations(args: argparse.Namespace) -> dict[str, Any]:
    panel, split = load_dataset("sp500"), Split()
    steps = args.steps or 600
    res: dict[str, Any] = {"steps": steps, "machine": machine(), "runs": {}}
    names = [n for n in ABLATIONS if not args.only or any(o in n for o in args.only)]
    for name in names:
        cfg = NeuralFactorsConfig(num_threads=args.threads, max_steps=steps, val_every=max(steps // 6, 1), **ABLATIONS[name])
        t0 = time.perf_counter()
        model = NeuralFactors(cfg).fit(panel, split, progress=False)
        fit_s = time.perf_counter() - t0
        days = eval_days(model, panel, split, "val")
        lp = nf_logprobs(model, panel, days, marginals=False)
        sc = scaled_scores(lp, panel, split, panel.dates[days])
        res["runs"][name] = {
            "val_joint_per_asset": sc["joint_per_asset"]["mean"],
            "val_joint_pooled": sc["joint_pooled"]["mean"],
            "val_bound": model.fit_info_["best_val"],
            "fit_s": fit_s,
            "steps_per_s": steps / max(model.fit_info_["elapsed"], 1e-9),
        }
        print(f"{name:45s} val NLL_joint {res['runs'][name]['val_joint_per_asset']:.4f}  ({fit_s:.0f} s)", flush=True)
    return res


def task_speed(args: argparse.Namespace) -> dict[str, Any]:
    path = args.out / "nf_sp500.zip"
    panel = load_dataset("sp500")
    if path.exists():
        model = NeuralFactors.load(path)
        source = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    else:  # timing does not depend on the weights: one training step is enough
        model = NeuralFactors(NeuralFactorsConfig(max_steps=1, num_threads=args.threads)).fit(panel, Split(), progress=False)
        source = "untrained default config"
    res: dict[str, Any] = {"model": source, "machine": machine(), "runs": {}}
    t = panel.T - 300
    base_cfg = model.config
    for threads in (1, 2):
        model.config = base_cfg.replace(inference_threads=threads)
        for P in (1, 64, 256):  # noqa: N806
            sim = model.simulator(panel, t, P, np.random.default_rng(0))
            for _ in range(20):
                sim.step()
            n = 200 if P <= 64 else 60
            best_wall, best_cpu = np.inf, np.inf
            for _ in range(3):  # best of 3: other jobs share the CPU
                t0, c0 = time.perf_counter(), time.process_time()
                for _ in range(n):
                    sim.step()
                best_wall = min(best_wall, (time.perf_counter() - t0) / n)
                best_cpu = min(best_cpu, (time.process_time() - c0) / n)
            res["runs"][f"threads={threads} paths={P}"] = {"wall_ms_per_day": best_wall * 1e3, "cpu_ms_per_day": best_cpu * 1e3}
            print(
                f"threads={threads} paths={P:4d}: wall {best_wall * 1e3:7.3f} ms/day, cpu {best_cpu * 1e3:7.3f} ms/day "
                f"({best_cpu * 1e6 / P:6.1f} us cpu per path-day)",
                flush=True,
            )
    model.config = base_cfg
    # component breakdown at 64 paths (CPU ms per simulated day)
    sim = model.simulator(panel, t, 64, np.random.default_rng(0))
    for _ in range(10):
        sim.step()
    comp = {"noise (64 per-path numpy streams)": 0.0, "returns": 0.0, "features + inputs": 0.0, "network step + heads": 0.0}
    n = 100
    for _ in range(n):
        c0 = time.process_time()
        gz, ge = sim._noise()
        c1 = time.process_time()
        r = np.clip(sim._alpha + np.einsum("pnf,pf->pn", sim._beta, gz * sim._prior_scale) + sim._sigma * ge, -0.99, 1.0)
        c2 = time.process_time()
        sim._feats.push(r)
        X, valid = sim._feats.features()  # noqa: N806
        x = model.spec_.assemble(r, X, valid)
        c3 = time.process_time()
        with torch.inference_mode():
            h = model.net_.step(torch.from_numpy(x).reshape(-1, x.shape[-1]), sim._state)
            sim._params = model._heads(h.view(64, panel.N, -1))
        sim._sync()
        c4 = time.process_time()
        for k, dt in zip(comp, (c1 - c0, c2 - c1, c3 - c2, c4 - c3), strict=True):
            comp[k] += dt * 1e3 / n
    res["breakdown_cpu_ms_64_paths"] = comp
    print("breakdown (cpu ms per day, 64 paths):", {k: round(v, 3) for k, v in comp.items()}, flush=True)
    # initialisation cost (prefill over the receptive field)
    t0 = time.perf_counter()
    model.simulator(panel, t, 64, np.random.default_rng(0))
    res["init_64_paths_ms"] = (time.perf_counter() - t0) * 1e3
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=["sp500", "eval", "synthetic", "ablations", "speed", "all"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--regime", action="store_true", help="synthetic: GARCH-like time-varying factor volatility")
    p.add_argument("--seed", type=int, default=0, help="synthetic: the panel's seed")
    p.add_argument("--n-assets", type=int, default=20, help="synthetic: assets N")
    p.add_argument("--days", type=int, default=3000, help="synthetic: days T")
    p.add_argument("--set", nargs="*", default=None, metavar="KEY=VALUE", help="synthetic: NeuralFactorsConfig overrides (JSON values)")
    p.add_argument("--val-every", type=int, default=None, help="synthetic: validation period in steps")
    p.add_argument("--name", default=None, help="file name of the JSON result (default: the task)")
    p.add_argument("--progress", action="store_true", help="synthetic: show the training progress bar")
    p.add_argument("--save-model", action="store_true", help="synthetic: save the fitted model beside the JSON")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--only", nargs="*", default=None, help="ablation names containing these strings")
    p.add_argument("--full-eval", action="store_true", help="also run factorgym.generators.evaluation on the test split")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "neuralfactors")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    tasks = ["sp500", "synthetic", "ablations", "speed"] if args.task == "all" else [args.task]
    for name in tasks:
        t0 = time.perf_counter()
        res = globals()[f"task_{name}"](args)
        res["wall_s"] = time.perf_counter() - t0
        res["command"] = "python benchmarks/bench_neuralfactors.py " + " ".join(sys.argv[1:])
        (args.out / f"{args.name or name}.json").write_text(json.dumps(res, indent=2, default=float))
        print(json.dumps({k: v for k, v in res.items() if k not in ("history", "config")}, indent=2, default=float))


if __name__ == "__main__":
    main()

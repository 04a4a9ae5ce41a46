"""Benchmarks of the NeuralFactors generator (figures in benchmarks/results/neuralfactors.md).

Run from the repository root::

    python benchmarks/bench_neuralfactors.py sp500        # train the default config, NLL val/test, LW refs
    python benchmarks/bench_neuralfactors.py eval         # re-score the saved sp500 model
    python benchmarks/bench_neuralfactors.py synthetic    # gap to the true model on a synthetic factor panel
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


def task_synthetic(args: argparse.Namespace) -> dict[str, Any]:
    syn = synthetic_factor_panel(T=3000, N=20, F=3, seed=args.seed, time_varying_vol=args.regime)
    panel = syn.panel
    split = Split.by_fraction(panel.dates, 0.7, 0.15)
    steps = args.steps or 1200
    # i.i.d. data: the embedder can only overfit its inputs, so validate often
    cfg = NeuralFactorsConfig(num_threads=args.threads, n_factors=3, max_steps=steps, val_every=max(steps // 24, 1))
    t0 = time.perf_counter()
    model = NeuralFactors(cfg).fit(panel, split, progress=True)
    fit_s = time.perf_counter() - t0
    days = eval_days(model, panel, split, "test")
    nf = nf_logprobs(model, panel, days, marginals=False)["joint"] / panel.N  # raw nats per asset-day
    true = syn.log_density[days] / panel.N
    lw = ref_logprobs(panel, days, "lw252") / panel.N
    return {
        "config": cfg.to_dict(),
        "fit_s": fit_s,
        "best_step": model.fit_info_["best_step"],
        "n_test_days": len(days),
        "nf_nll_raw": float(-np.mean(nf)),
        "true_nll_raw": float(-np.mean(true)),
        "gap": float(np.mean(true) - np.mean(nf)),
        "gap_se": float(np.std(true - nf, ddof=1) / np.sqrt(len(days))),
        "lw252_nll_raw": float(-np.mean(lw)),
        "time_varying_vol": bool(args.regime),
        "seed": int(args.seed),
        "machine": machine(),
    }


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
        res["command"] = "python benchmarks/bench_neuralfactors.py " + " ".join(
            x for x in [name, f"--threads {args.threads}", f"--steps {args.steps}" if args.steps else ""] if x
        )
        (args.out / f"{name}.json").write_text(json.dumps(res, indent=2, default=float))
        print(json.dumps({k: v for k, v in res.items() if k not in ("history", "config")}, indent=2, default=float))


if __name__ == "__main__":
    main()

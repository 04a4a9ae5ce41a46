"""NeuralFactors ablation for issue 13 (item 2): asset embedding, alpha shrinkage, market
state, tails. Figures in ``benchmarks/results/nf_ablation.md``.

Run from the repository root::

    python benchmarks/bench_nf_ablation.py variants --steps 600          # every variant, validation only
    python benchmarks/bench_nf_ablation.py variants --only old_default,no_asset --steps 600
    python benchmarks/bench_nf_ablation.py test                          # the chosen default (1,200 steps): val and test, once
    python benchmarks/bench_nf_ablation.py table                         # markdown rows of every saved result
    python benchmarks/bench_nf_ablation.py candidate --name X --set dropout=0.25   # a candidate default (full
        # budget), validation only, paired day by day with the saved current default (models/new_default_1200.zip)
    python benchmarks/bench_nf_ablation.py test --tag _v2                # the library default: val and test, once (files *_v2)
    python benchmarks/bench_nf_ablation.py pair --tag _v2                # its validation NLL paired day by day with the old default

Each variant is fitted once (seed 0) on the default ``Split()`` (train to 2013-12-31,
validation 2014-2018), with the same ``max_steps`` (600, half the default budget, for every
variant: the CPU was shared by eight processes), and scored on the
**validation** split with :func:`factorgym.generators.evaluation.evaluate_generator`
(NLL_joint on the pooled scale, the one-day 99% VaR exceedance of the equal-weight portfolio
with its Kupiec p-value) plus the drift-memorisation correlation: each asset's simulated mean
daily return (``generator.simulate``, 60 days x 100 paths from 8 validation contexts) against
its training-period mean. ``test`` fits the current default config (its own 1,200 steps) and
scores the validation and test splits; it is for reporting, never for choosing. JSON lands in ``benchmarks/out/nf_ablation/``.
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
import torch

from factorgym import Split, load_dataset
from factorgym.features import MarketStateConfig
from factorgym.generators.evaluation import evaluate_generator
from factorgym.generators.neuralfactors import NeuralFactors, NeuralFactorsConfig

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "nf_ablation"

#: The configuration before issue 13 (asset embedding 4, no market state, nu >= 4, no shrinkage).
OLD_DEFAULT: dict[str, Any] = dict(asset_embedding_dim=4, market_state=None, alpha_penalty=0.0, nu_min=4.0, dropout=0.0)

VARIANTS: dict[str, dict[str, Any]] = {
    "old_default": OLD_DEFAULT,
    "no_asset": {**OLD_DEFAULT, "asset_embedding_dim": 0},
    "alpha_pen": {**OLD_DEFAULT, "alpha_penalty": 1.0},
    "market_state": {**OLD_DEFAULT, "market_state": MarketStateConfig()},
    "nu_min_2.5": {**OLD_DEFAULT, "nu_min": 2.5},
    "dropout_0.1": {**OLD_DEFAULT, "dropout": 0.1},
    "combo_pen1": {**OLD_DEFAULT, "asset_embedding_dim": 0, "market_state": MarketStateConfig(), "alpha_penalty": 1.0},
    "combo_pen10": {**OLD_DEFAULT, "asset_embedding_dim": 0, "market_state": MarketStateConfig(), "alpha_penalty": 10.0},
    "new_default": {},  # NeuralFactorsConfig() as it stands
}


def drift_corr(model: NeuralFactors, panel, split: Split, part: str, horizon: int = 60, paths: int = 100, contexts: int = 8) -> dict[str, float]:
    """Correlation of each asset's simulated mean daily return with its train-period mean.

    Paths of ``horizon`` days from ``contexts`` evenly spaced days of ``part``. Two estimates
    of an asset's simulated mean: the mean of the simulated returns (``sample``; its Monte
    Carlo noise, ~0.02 / sqrt(contexts * paths * horizon) ~ 1e-4 a day, is as large as the
    spread of the assets' means, so its correlations are noisy) and the mean of the model's
    conditional mean ``alpha`` along the same simulated paths (``cond``: the same expectation,
    without the idiosyncratic and factor noise of each day's draw).
    """
    b = split.bounds(panel.dates)
    a_end = b["train"][1]
    i0, i1 = b[part]
    r = np.asarray(panel.returns)
    train_mean = np.nanmean(r[:a_end], axis=0)
    starts = np.linspace(max(i0, model.min_history) - 1, i1 - horizon - 1, contexts).astype(int)
    samp, cond = [], []
    for t in starts:
        sim = model.simulator(panel, int(t), paths, np.random.default_rng([7, int(t)]))
        alphas, draws = [], []
        for _ in range(horizon):
            alphas.append(sim.factor_params()["alpha"])
            draws.append(sim.step())
        samp.append(np.mean(draws, axis=(0, 1)))
        cond.append(np.mean(alphas, axis=(0, 1)))
    samp_mean, cond_mean = np.mean(samp, axis=0), np.mean(cond, axis=0)
    fwd = np.nanmean(np.concatenate([r[t + 1 : t + 1 + horizon] for t in starts]), axis=0)
    return {
        "drift_corr_train": float(np.corrcoef(samp_mean, train_mean)[0, 1]),
        "drift_corr_forward": float(np.corrcoef(samp_mean, fwd)[0, 1]),
        "sim_mean_cross_sd": float(np.std(samp_mean)),
        "drift_corr_train_cond": float(np.corrcoef(cond_mean, train_mean)[0, 1]),
        "drift_corr_forward_cond": float(np.corrcoef(cond_mean, fwd)[0, 1]),
        "cond_mean_cross_sd": float(np.std(cond_mean)),
        "train_mean_cross_sd": float(np.std(train_mean)),
    }


def score_parts(model: NeuralFactors, name: str, overrides: dict[str, Any], fit_s: float, parts: tuple[str, ...]) -> list[dict[str, Any]]:
    """Score a fitted model on ``parts`` of sp500 (the figures of one table row per part)."""
    panel, split = load_dataset("sp500"), Split()
    cfg = model.config
    out = []
    for part in parts:
        t0 = time.perf_counter()
        rep = evaluate_generator(model, panel, split, part, rng=np.random.default_rng(0), n_samples=1000, sim_paths=0, progress=False)
        sc = rep.scalars
        out.append({
            "variant": name,
            "part": part,
            "overrides": {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in overrides.items()},
            "steps": cfg.max_steps,
            "best_val_bound": model.fit_info_["best_val"],
            "best_step": model.fit_info_["best_step"],
            "nll_joint": sc["nll_joint"],
            "nll_joint_se": sc.get("nll_joint_se"),
            "nll_joint_per_day": [float(x) for x in rep.per_day["nll_joint"].to_numpy()],
            "var99_rate": sc["var99_rate"],
            "var99_pof_p": sc["var99_pof_p"],
            "var95_rate": sc["var95_rate"],
            "cal_port": sc["cal_port"],
            "fit_s": fit_s,
            "eval_s": time.perf_counter() - t0,
            **drift_corr(model, panel, split, part),
        })
    return out


def run_variant(
    name: str, overrides: dict[str, Any], steps: int | None, parts: tuple[str, ...], tag: str = ""
) -> list[dict[str, Any]]:
    """Fit one variant (``steps=None``: the config's own ``max_steps`` and ``val_every``) and score ``parts``."""
    panel, split = load_dataset("sp500"), Split()
    cfg = NeuralFactorsConfig().replace(**overrides)
    if steps is not None:
        cfg = cfg.replace(max_steps=steps, val_every=max(steps // 4, 1))
    t0 = time.perf_counter()
    model = NeuralFactors(cfg).fit(panel, split, progress=False)
    fit_s = time.perf_counter() - t0
    (OUT / "models").mkdir(parents=True, exist_ok=True)
    model.save(OUT / "models" / f"{name}{tag}_{cfg.max_steps}.zip")
    return score_parts(model, name, overrides, fit_s, parts)


def paired_difference(new: list[float], old: list[float]) -> dict[str, float]:
    """Mean of the per-day difference ``new - old`` of two NLL series on the same days, with its
    Newey-West standard error (``factorgym.metrics.newey_west_mean``)."""
    from factorgym import metrics as M  # noqa: N812

    d = np.asarray(new, dtype=float) - np.asarray(old, dtype=float)
    m = M.newey_west_mean(d[np.isfinite(d)])
    return {"mean": float(m.mean), "se": float(m.std_error)}


def table() -> str:
    """Markdown rows of every saved result (validation variants, then the test run)."""
    head = (
        "| variant | part | steps | best val bound | NLL_joint pooled | VaR99 exceed. | Kupiec p | VaR95 exceed. "
        "| drift corr train (samples) | drift corr train (cond. mean) | cross-sd of cond. means | fit s |"
        "\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    files = sorted(OUT.glob("val_*.json"), key=lambda f: list(VARIANTS).index(f.stem[4:]) if f.stem[4:] in VARIANTS else 99)
    for f in [*files, *sorted(OUT.glob("final_*.json"))]:
        r = json.loads(f.read_text())
        rows.append(
            f"| {r['variant']} | {r['part']} | {r['steps']} | {r['best_val_bound']:.4f} | {r['nll_joint']:.4f} | "
            f"{100 * r['var99_rate']:.2f}% | {r['var99_pof_p']:.3g} | {100 * r['var95_rate']:.2f}% | "
            f"{r['drift_corr_train']:.2f} | {r.get('drift_corr_train_cond', float('nan')):.2f} | "
            f"{1e4 * r.get('cond_mean_cross_sd', float('nan')):.2f} bp | {r['fit_s']:.0f} |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["variants", "test", "table", "candidate", "pair"])
    ap.add_argument("--steps", type=int, default=None, help="max_steps of every variant (default: 600 for variants, the config's own for test)")
    ap.add_argument("--only", default="")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default="candidate", help="candidate: the result's name")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="candidate: config overrides (JSON values)")
    ap.add_argument("--reference", default="new_default_1200", help="candidate: saved model (models/NAME.zip) to pair with on validation")
    ap.add_argument("--tag", default="", help="test, pair: suffix of the result files (keeps earlier defaults' files)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    info = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()} {os.cpu_count()} CPUs, shared", "torch": torch.__version__}
    if args.what == "table":
        print(table())
        return
    if args.what == "variants":
        args.steps = args.steps or 600
        names = [n for n in args.only.split(",") if n] or list(VARIANTS)
        for n in names:
            res = {**run_variant(n, VARIANTS[n], args.steps, ("val",))[0], **info}
            (OUT / f"val_{n}.json").write_text(json.dumps(res, indent=1))
            print(json.dumps(res), flush=True)
    elif args.what == "pair":  # the validation result of `test --tag T` paired with the reference model
        res = json.loads((OUT / f"final_val_new_default{args.tag}.json").read_text())
        ref = NeuralFactors.load(OUT / "models" / f"{args.reference}.zip")
        ref_res = score_parts(ref, args.reference, {}, float("nan"), ("val",))[0]
        out = {
            "new": {"nll_joint": res["nll_joint"], "nll_joint_se": res["nll_joint_se"]},
            "reference": {"name": args.reference, "nll_joint": ref_res["nll_joint"], "nll_joint_se": ref_res["nll_joint_se"]},
            "paired_minus_reference": paired_difference(res["nll_joint_per_day"], ref_res["nll_joint_per_day"]),
            **info,
        }
        (OUT / f"pair_val{args.tag}.json").write_text(json.dumps(out, indent=1))
        print(json.dumps(out), flush=True)
    elif args.what == "candidate":  # full budget, validation only, paired with the reference model's days
        over = {}
        for item in args.set:
            key, _, val = item.partition("=")
            try:
                over[key] = json.loads(val)
            except json.JSONDecodeError:
                over[key] = val
        res = {**run_variant(args.name, over, args.steps, ("val",))[0], **info}
        ref = NeuralFactors.load(OUT / "models" / f"{args.reference}.zip")
        ref_res = score_parts(ref, args.reference, {}, float("nan"), ("val",))[0]
        res["reference"] = {"name": args.reference, "nll_joint": ref_res["nll_joint"], "nll_joint_se": ref_res["nll_joint_se"]}
        res["paired_minus_reference"] = paired_difference(res["nll_joint_per_day"], ref_res["nll_joint_per_day"])
        (OUT / f"cand_{args.name}.json").write_text(json.dumps(res, indent=1))
        print(json.dumps({k: v for k, v in res.items() if k != "nll_joint_per_day"}), flush=True)
    else:  # the chosen default, full budget unless --steps is given: validation beside test, scored once
        for res in run_variant("new_default", {}, args.steps, ("val", "test"), args.tag):
            res = {**res, **info}
            (OUT / f"final_{res['part']}_new_default{args.tag}.json").write_text(json.dumps(res, indent=1))
            print(json.dumps({k: v for k, v in res.items() if k != "nll_joint_per_day"}), flush=True)


if __name__ == "__main__":
    main()

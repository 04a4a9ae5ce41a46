"""Why does a checkpoint earn what it earns on real data? The decomposition of its
real-validation return against ``1/N`` on the same days (:func:`decompose`), recorded by the
validation callback at every evaluation and rebuilt for any saved checkpoint
(:func:`diagnose_checkpoints`); :func:`diagnosis_frame` tabulates it for plots.

With the environment's accounting ``log(1 + R) = log(1 - c) + log(G)`` (``c`` the day's cost,
``G`` the growth of the book held), an episode's log-wealth splits exactly into its return
*without costs* and its *cost drag*::

    log_wealth       = gross_log_wealth - cost_drag,     cost_drag = -sum log(1 - c)

and its excess over ``1/N`` (rebalanced daily, paying its own costs) on the same days into::

    excess_log_wealth = allocation + costs
    allocation        = gross_log_wealth - gross_log_wealth[1/N]   (what the weights earned)
    costs             = cost_drag[1/N] - cost_drag                 (what trading more cost)

Concentration is descriptive: the mean over days of the Herfindahl index of the risky
weights (normalised to sum 1), its inverse ``effective_n`` and the mean cash weight.
All figures are means over the evaluation episodes, per episode (not annualised), plus
``mean_turnover`` per day.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from factorgym.errors import FactorGymError

if TYPE_CHECKING:
    from factorgym.agents.rl.markets import Markets
    from factorgym.envs.rollout import PathRun
    from factorgym.envs.vec_env import VecPortfolioEnv

__all__ = ["DIAGNOSIS_KEYS", "decompose", "diagnose_checkpoints", "diagnosis_frame", "reference_run"]

#: The keys of :func:`decompose` (and the columns of :func:`diagnosis_frame` besides ``timesteps``).
DIAGNOSIS_KEYS = (
    "log_wealth", "log_wealth_1n", "excess_log_wealth", "allocation", "costs", "gross_log_wealth",
    "gross_log_wealth_1n", "cost_drag", "cost_drag_1n", "mean_turnover", "mean_turnover_1n", "hhi",
    "effective_n", "cash",
)  # fmt: skip


def _per_path(run: PathRun) -> dict[str, np.ndarray]:
    alive = run.alive
    lw = np.where(alive, np.log(np.maximum(1.0 + run.net_return, 1e-12)), 0.0).sum(axis=0)
    drag = np.where(alive, -np.log(np.maximum(1.0 - run.cost, 1e-12)), 0.0).sum(axis=0)
    days = np.maximum(alive.sum(axis=0), 1)
    to = np.where(alive, run.turnover, 0.0).sum(axis=0) / days
    out = {"log_wealth": lw, "gross": lw + drag, "drag": drag, "turnover": to}
    if run.weights is not None:
        w = run.weights
        risky = w.sum(axis=-1)
        share = np.where(np.abs(risky)[..., None] > 1e-12, w / np.where(np.abs(risky) > 1e-12, risky, 1.0)[..., None], 0.0)
        hhi = (share**2).sum(axis=-1)
        hhi = np.where(np.abs(risky) > 1e-12, hhi, np.nan)
        with np.errstate(invalid="ignore"):
            out["hhi"] = np.array([np.nanmean(hhi[alive[:, p], p]) if alive[:, p].any() else np.nan for p in range(run.n_paths)])
        out["cash"] = np.array([np.mean(1.0 - risky[alive[:, p], p]) if alive[:, p].any() else np.nan for p in range(run.n_paths)])
    return out


def decompose(run: PathRun, reference: PathRun) -> dict[str, float]:
    """The decomposition (module docstring) of ``run`` against ``reference`` (``1/N`` on the
    same paths and days), means over paths. ``run`` should record its weights
    (``rollout(..., record_weights=True)``) for the concentration figures (NaN otherwise)."""
    if run.n_paths != reference.n_paths or run.alive.shape != reference.alive.shape:
        raise FactorGymError(
            f"the reference ran {reference.n_paths} paths of {reference.alive.shape[0]} days, the policy "
            f"{run.n_paths} of {run.alive.shape[0]}: they must run the same episodes"
        )
    a, b = _per_path(run), _per_path(reference)
    hhi = float(np.nanmean(a["hhi"])) if "hhi" in a and np.isfinite(a["hhi"]).any() else float("nan")
    return {
        "log_wealth": float(a["log_wealth"].mean()),
        "log_wealth_1n": float(b["log_wealth"].mean()),
        "excess_log_wealth": float((a["log_wealth"] - b["log_wealth"]).mean()),
        "allocation": float((a["gross"] - b["gross"]).mean()),
        "costs": float((b["drag"] - a["drag"]).mean()),
        "gross_log_wealth": float(a["gross"].mean()),
        "gross_log_wealth_1n": float(b["gross"].mean()),
        "cost_drag": float(a["drag"].mean()),
        "cost_drag_1n": float(b["drag"].mean()),
        "mean_turnover": float(a["turnover"].mean()),
        "mean_turnover_1n": float(b["turnover"].mean()),
        "hhi": hhi,
        "effective_n": float(1.0 / hhi) if np.isfinite(hhi) and hhi > 0 else float("nan"),
        "cash": float(np.nanmean(a["cash"])) if "cash" in a else float("nan"),
    }


def reference_run(env: VecPortfolioEnv, starts: Sequence[int] | None, seed: int = 0) -> PathRun:
    """``1/N`` (fully invested, rebalanced daily) on the episodes of ``env`` (one per start),
    with ``env``'s market and accounting, in the ``"weights"`` action mode."""
    from factorgym.agents.baselines import EqualWeight
    from factorgym.envs.config import EnvConfig
    from factorgym.envs.rollout import rollout
    from factorgym.envs.vec_env import VecPortfolioEnv

    cfg = EnvConfig.merged(env.config.for_evaluation(), action_mode="weights", base_weights=None)
    ref_env = VecPortfolioEnv(env.engine.market, env.num_envs, config=cfg)
    opts = None if starts is None else [{"start": int(s)} for s in starts]
    return rollout(EqualWeight(), ref_env, options=opts, seed=seed, record_weights=True, label="1/N")


def diagnosis_frame(evaluations: Sequence[Mapping[str, Any]] | str | Path) -> pd.DataFrame:
    """One row per evaluation (``timesteps`` and the :data:`DIAGNOSIS_KEYS`) from a training's
    evaluations (a list, or the path of ``evaluations.json`` or of its agent folder)."""
    if isinstance(evaluations, str | Path):
        p = Path(evaluations)
        p = p / "evaluations.json" if p.is_dir() else p
        evaluations = json.loads(p.read_text())
    rows = []
    for e in evaluations:  # type: ignore[union-attr]
        d = e.get("diagnosis")
        if d is None:
            continue
        rows.append({"timesteps": int(e["timesteps"]), **{k: d.get(k, np.nan) for k in DIAGNOSIS_KEYS}})
    return pd.DataFrame(rows, columns=["timesteps", *DIAGNOSIS_KEYS])


def diagnose_checkpoints(
    path: str | Path,
    *,
    part: str = "val",
    markets: Markets | None = None,
    starts: Sequence[int] | None = None,
    horizon: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The decomposition of every saved checkpoint (and the final model) of an agent folder
    on real episodes of ``part``; one row per model, sorted by ``timesteps``.

    Parameters
    ----------
    path : path
        The agent folder.
    part : {"val", "test", "train"}
    markets : Markets, optional
        Needed for agents trained on in-memory markets (default ``meta.market.build()``).
    starts : sequence of int, optional
        Start rows (default: the validation starts recorded in ``agent.json`` for ``"val"``,
        else evenly spaced episodes as many as those).
    horizon : int, optional
        Steps per episode (default: the recorded validation horizon).
    """
    from factorgym.agents.rl.evaluate import evaluation_starts
    from factorgym.agents.rl.persistence import load_agent
    from factorgym.envs.rollout import rollout
    from factorgym.envs.vec_env import VecPortfolioEnv

    folder = Path(path)
    _, meta = load_agent(folder)
    ev = meta.record.get("evaluation") or {}
    h = int(horizon or ev.get("horizon") or meta.market.horizon)
    mk = markets if markets is not None else meta.market.build()
    market = mk.heldout(part, horizon=h)
    cfg = meta.env.for_evaluation()
    if starts is None:
        recorded = list(ev.get("start_rows") or [])
        starts = recorded if (part == "val" and recorded) else evaluation_starts(market, cfg, max(len(recorded), 1))
    env = VecPortfolioEnv(market, len(starts), config=cfg)
    ref = reference_run(env, starts, seed)
    files = sorted((folder / "checkpoints").glob("model_*_steps.zip")) if (folder / "checkpoints").is_dir() else []
    models = [(int(f.name.split("_")[1]), f) for f in files] + [(int(meta.num_timesteps), folder)]
    rows = []
    for steps, f in models:
        policy, _ = load_agent(f)
        run = rollout(policy, env, options=[{"start": int(s)} for s in starts], seed=seed, record_weights=True, label=str(f))
        rows.append({"timesteps": steps, "model": f.name if f != folder else "model.zip", **decompose(run, ref)})
    return pd.DataFrame(rows).sort_values(["timesteps", "model"], kind="stable").reset_index(drop=True)

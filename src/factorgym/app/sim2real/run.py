"""Running a sim-to-real experiment: every (arm, seed) trained and evaluated as one task,
the tasks run on Ray (:func:`factorgym.parallel.map_tasks`), then the statistics and the
report (:func:`run_sim2real`).

One task (:func:`run_one`) trains one agent with :func:`~factorgym.agents.rl.train_agent`
into ``OUT/agents/ARM/seed_S``, scores its checkpoints on the training market (learning
curve), and backtests its validation-selected policy (``best_model.zip``) on the real
validation and test periods at every execution lag through
:func:`~factorgym.app.backtest.backtest` (the same accounting as ``factorgym backtest``).
The baselines (1/N, Ledoit-Wolf mean-variance) are one more task. Each task writes its
record to ``OUT/runs/ARM/seed_S.json`` with a fingerprint of its settings, so a re-run skips
finished work (a changed arm is refused rather than silently mixed). A task depends only on
its item (settings and seed) and runs with one thread per compute pool, so one worker and
many give the same numbers.

Folders::

    OUT/sim2real.json          the experiment's settings (marks the folder)
    OUT/agents/ARM/seed_S/     agent folders (kept for resuming and for `factorgym backtest`)
    OUT/runs/ARM/seed_S.json   each run's evaluation (resume cache)
    OUT/results/               tables, summary.json, report.html: replaced as a whole
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from factorgym.app.sim2real.config import Arm, Sim2RealConfig
from factorgym.artifacts import atomic_write_text
from factorgym.errors import FactorGymError
from factorgym.jsonable import jsonable

__all__ = ["BASELINE_TASK", "MARKER", "RunTask", "count_trials", "run_one", "run_sim2real"]

#: The file that marks a folder as a sim2real experiment's.
MARKER = "sim2real.json"
#: The arm name of the baselines' task.
BASELINE_TASK = "_baselines"
#: Seed of the training-market episodes that score every checkpoint (fixed: the same
#: episodes for every checkpoint, arm and seed of a market).
CURVE_SEED = 10_007
#: Metrics kept from the backtest's summary row.
METRICS = ("sharpe", "annualised_return", "annualised_volatility", "max_drawdown", "sortino", "annualised_turnover",
           "annualised_costs", "total_costs", "terminal_wealth", "n_periods")  # fmt: skip


@dataclass(frozen=True)
class RunTask:
    """One unit of work: train and evaluate ``arm`` with ``seed`` (or the baselines when
    ``arm`` is :data:`BASELINE_TASK`). Plain data, pickled to a Ray worker."""

    config: Sim2RealConfig
    arm: str
    seed: int
    out: str


# =========================================================================== fingerprints
def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(jsonable(obj), sort_keys=True).encode()).hexdigest()[:16]


def train_fingerprint(cfg: Sim2RealConfig, arm: Arm, seed: int) -> str:
    """What a trained agent depends on: the arm, the seed, the data, the budget and the
    validation protocol."""
    return _digest({
        "arm": {**{k: v for k, v in arm.to_dict().items() if k != "compare_to"}, "description": None}, "env": cfg.env_options(arm), "seed": seed, "dataset": cfg.dataset,
        "train_end": cfg.train_end, "val_end": cfg.val_end, "total_timesteps": cfg.total_timesteps,
        "n_envs": cfg.n_envs_of(arm), "horizon": cfg.horizon, "eval_freq": cfg.eval_freq,
        "eval_episodes": cfg.eval_episodes, "eval_horizon": cfg.eval_horizon, "eval_stride": cfg.eval_stride,
    })  # fmt: skip


def eval_fingerprint(cfg: Sim2RealConfig) -> str:
    """What an evaluation depends on besides the trained agent."""
    from factorgym.envs.config import cost_to_dict

    return _digest({
        "dataset": cfg.dataset, "train_end": cfg.train_end, "val_end": cfg.val_end, "test_end": cfg.test_end,
        "lags": list(cfg.lags), "cost_model": cost_to_dict(cfg.cost_model), "risk_free": cfg.risk_free,
        "curve_episodes": cfg.curve_episodes, "baselines": list(cfg.baselines), "curve_seed": CURVE_SEED,
    })  # fmt: skip


# =========================================================================== evaluation
def _periods(cfg: Sim2RealConfig, panel: Any) -> dict[str, tuple[Any, str | None]]:
    """The backtest split and last day of each real period: ``val`` is evaluated as the
    "test" part of a split that ends training one day before the experiment's ``train_end``."""
    from factorgym.data import Split

    before = str((pd.Timestamp(cfg.train_end) - pd.Timedelta(days=1)).date())
    return {"val": (Split(before, cfg.train_end), cfg.val_end), "test": (cfg.split, cfg.test_end)}


def _evaluate(cfg: Sim2RealConfig, agents: list[Any], panel: Any) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """``{agent: {period: {lag: {"metrics", "returns", "first", "last"}}}}`` of every agent on
    the real validation and test periods at every lag (one backtest per period and lag)."""
    from factorgym.app.backtest import BacktestConfig, backtest

    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {a.name: {} for a in agents}
    for period, (split, end) in _periods(cfg, panel).items():
        # on validation the policies were selected there: in sample by design, so no out-of-sample check
        runs = agents if period == "test" else [replace(a, training_end=None) for a in agents]
        for lag in cfg.lags:
            bc = BacktestConfig(
                split=split, test_end=end, n_paths=0, seed=0, cost_model=cfg.cost_model, risk_free=cfg.risk_free,
                bootstrap_reps=0, benchmark=None, execution_lag=int(lag),
            )  # fmt: skip
            res = backtest(runs, panel, None, bc)
            for a in agents:
                row = res.summary.loc[a.name]
                run = res.real[a.name]
                r = run.returns(0)
                dates = [d for d, alive in zip(run.dates, run.alive[:, 0], strict=False) if alive]
                out[a.name].setdefault(period, {})[str(lag)] = {
                    "metrics": {k: float(row[k]) for k in METRICS if k in row.index},
                    "returns": [float(x) for x in r],
                    "first": str(pd.Timestamp(dates[0]).date()) if dates else None,
                    "last": str(pd.Timestamp(dates[-1]).date()) if dates else None,
                }
    return out


def _trained_steps(step: int, algo: str, rollout: int) -> int:
    """Steps the parameters of a checkpoint saved at ``step`` were trained on: an on-policy
    model saves mid-rollout, before the update on that rollout."""
    if algo in ("ppo", "a2c") and rollout > 0:
        return max((math.ceil(step / rollout) - 1) * rollout, 0)
    return int(step)


def _curves(cfg: Sim2RealConfig, agent_dir: Path, panel: Any) -> dict[str, list[dict[str, float]]]:
    """The validation curve (``evaluations.json``: what selected the checkpoint) and the
    training-market curve (every checkpoint and the final model, deterministic, on
    ``curve_episodes`` fixed training-market episodes), in annualised log growth."""
    from factorgym.agents.rl import load_agent
    from factorgym.agents.rl.evaluate import PERIODS_PER_YEAR, evaluate_policy_on
    from factorgym.agents.rl.persistence import EVALS_NAME

    final, meta = load_agent(agent_dir, which="final")
    rec = meta.record
    horizon = int(rec["evaluation"]["horizon"])
    evals = json.loads((agent_dir / EVALS_NAME).read_text()) if (agent_dir / EVALS_NAME).is_file() else []
    val = [{"timesteps": int(e["timesteps"]), "ann_log_growth": float(e["mean_log_wealth"]) * PERIODS_PER_YEAR / horizon,
            "mean_sharpe": float(e["mean_sharpe"])} for e in evals]  # fmt: skip
    train: list[dict[str, float]] = []
    if cfg.curve_episodes > 0:
        inner = getattr(final, "model", final)  # a policy wrapped with its observation normaliser
        n_steps = (rec.get("algo_kwargs") or {}).get("n_steps") or getattr(inner, "n_steps", None) or getattr(final, "n_steps", 0)
        rollout = int(n_steps) * int(meta.n_envs)
        models: dict[int, Path] = {}
        for f in (agent_dir / "checkpoints").glob("model_*_steps.zip"):
            step = int(f.stem.split("_")[1])
            models.setdefault(_trained_steps(step, meta.algo, rollout), f)
        models[int(meta.num_timesteps)] = agent_dir / "model.zip"
        market = meta.market.build(panel).train
        for steps in sorted(models):
            model, _ = load_agent(models[steps])
            ev = evaluate_policy_on(model, market, cfg.curve_episodes, seed=CURVE_SEED, env=meta)
            s = ev.summary()
            train.append({"timesteps": steps, "ann_log_growth": s["mean_ann_log_growth"], "mean_sharpe": s["mean_sharpe"]})
    return {"validation": val, "train_market": train}


# =========================================================================== one task
def _market_spec(cfg: Sim2RealConfig, arm: Arm) -> Any:
    from factorgym.agents.rl import MarketSpec

    extra = {"source": arm.market} if isinstance(arm.market, str) else dict(arm.market)
    kw = {"horizon": cfg.horizon, **extra, "dataset": cfg.dataset, "train_end": cfg.train_end, "val_end": cfg.val_end}
    try:
        return MarketSpec(**kw)
    except TypeError as exc:
        raise FactorGymError(f"arm {arm.name!r}: bad market {arm.market!r}: {exc}") from None


def _paths(out: Path, arm: str, seed: int) -> tuple[Path, Path]:
    return out / "agents" / arm / f"seed_{seed}", out / "runs" / arm / f"seed_{seed}.json"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def run_one(task: RunTask) -> dict[str, Any]:
    """Train (unless already trained with the same settings) and evaluate one run; returns
    its record (also written to ``OUT/runs/ARM/seed_S.json``). With one thread per compute
    pool, so the numbers do not depend on the worker or the machine's load."""
    from factorgym.generators.base import compute_threads

    with compute_threads(1):
        if task.arm == BASELINE_TASK:
            return _baselines(task)
        return _train_and_evaluate(task)


def _baselines(task: RunTask) -> dict[str, Any]:
    from factorgym.app.agent_factory import agent_from_spec
    from factorgym.io import load_source

    cfg, out = task.config, Path(task.out)
    path = out / "runs" / f"{BASELINE_TASK}.json"
    efp = eval_fingerprint(cfg)
    old = _read_json(path)
    if old is not None and old.get("eval_fingerprint") == efp:
        return old
    panel = load_source(cfg.dataset)
    agents = [agent_from_spec(b, cost_model=cfg.cost_model, risk_free=cfg.risk_free).agent for b in cfg.baselines]
    rec = {"arm": BASELINE_TASK, "eval_fingerprint": efp, "evaluation": _evaluate(cfg, agents, panel),
           "names": [a.name for a in agents]}  # fmt: skip
    atomic_write_text(path, json.dumps(jsonable(rec)))
    return rec


def _train_and_evaluate(task: RunTask) -> dict[str, Any]:
    from factorgym.agents.rl import train_agent
    from factorgym.agents.rl.persistence import META_NAME, commit_agent_folder
    from factorgym.app.agent_factory import agent_from_spec
    from factorgym.app.specs import AgentSpec
    from factorgym.io import load_source

    cfg, out = task.config, Path(task.out)
    arm = cfg.arm(task.arm)
    agent_dir, rec_path = _paths(out, arm.name, task.seed)
    fp, efp = train_fingerprint(cfg, arm, task.seed), eval_fingerprint(cfg)
    old = _read_json(rec_path)
    if agent_dir.is_dir():
        commit_agent_folder(agent_dir)  # a swap that a kill interrupted
    if (agent_dir / META_NAME).is_file():
        if old is None or old.get("train_fingerprint") != fp:
            raise FactorGymError(
                f"{agent_dir} holds an agent trained with other settings than arm {arm.name!r} now has; "
                "delete that folder or choose another output folder"
            )
        if old.get("eval_fingerprint") == efp and "evaluation" in old:
            return old
    else:
        atomic_write_text(rec_path, json.dumps({"arm": arm.name, "seed": task.seed, "train_fingerprint": fp, "status": "training"}))
        stride = {} if cfg.eval_stride is None else {"eval_stride": cfg.eval_stride}
        train_agent(
            arm.algo, _market_spec(cfg, arm), out_dir=agent_dir, total_timesteps=cfg.total_timesteps, seed=task.seed,
            env_kwargs=cfg.env_options(arm), algo_kwargs=dict(arm.algo_kwargs), eval_freq=cfg.eval_freq,
            eval_episodes=cfg.eval_episodes, eval_horizon=cfg.eval_horizon, checkpoint_freq=cfg.eval_freq,
            progress=False, torch_threads=1, **{"n_envs": cfg.n_envs, **stride, **dict(arm.train)},
        )  # fmt: skip
    panel = load_source(cfg.dataset)
    label = f"{arm.name}/seed_{task.seed}"
    built = agent_from_spec(AgentSpec.of("sb3", str(agent_dir), label=label, model="best"))
    meta = json.loads((agent_dir / META_NAME).read_text())
    ev = meta.get("evaluation") or {}
    rec = {
        "arm": arm.name, "seed": task.seed, "train_fingerprint": fp, "eval_fingerprint": efp, "status": "done",
        "agent": str(agent_dir.relative_to(out)), "num_timesteps": int(meta["num_timesteps"]),
        "best_timestep": ev.get("best_timestep"), "policy_updates": cfg.policy_updates(arm),
        "evaluation": _evaluate(cfg, [built.agent], panel)[label], "curves": _curves(cfg, agent_dir, panel),
        "timing": {"learn_seconds": (meta.get("seconds") or {}).get("learn"), "steps_per_second": meta.get("train_steps_per_second")},
    }  # fmt: skip
    atomic_write_text(rec_path, json.dumps(jsonable(rec)))
    return rec


# =========================================================================== the experiment
def count_trials(out: str | os.PathLike[str]) -> int:
    """Training runs finished in an experiment folder (every ``agents/ARM/seed_S`` with an
    ``agent.json``, also of arms no longer in the config): the trials the deflated Sharpe
    ratio counts."""
    from factorgym.agents.rl.persistence import META_NAME

    return sum(1 for _ in Path(out).glob(f"agents/*/seed_*/{META_NAME}"))


def check_inputs(cfg: Sim2RealConfig) -> None:
    """What can be checked before any training: the dataset loads and its three periods are
    non-empty, the validation period holds the evaluation episodes, each generator run
    exists and was fitted on this dataset and split."""
    from factorgym.io import load_source

    panel = load_source(cfg.dataset)
    bounds = cfg.split.bounds(panel.dates)
    for part, (i0, i1) in bounds.items():
        if i1 <= i0:
            raise FactorGymError(f"the {part} period of {panel.name} is empty (train_end={cfg.train_end}, val_end={cfg.val_end})")
    val_days = bounds["val"][1] - bounds["val"][0]
    eval_h = cfg.eval_horizon if cfg.eval_horizon is not None else cfg.horizon
    if eval_h > val_days:
        raise FactorGymError(f"eval_horizon {eval_h} exceeds the {val_days} days of the validation period; set validation.eval_horizon")
    for arm in cfg.arms:
        if arm.is_historical:
            continue
        sources = [arm.market_source]
        if sources == ["mixture"] and isinstance(arm.market, Mapping):  # each source of a mixture
            sources = [str(m[0] if isinstance(m, list | tuple) else m.get("source")) for m in arm.market.get("mixture") or []]
        for source in sources:
            if source != "historical":
                _check_run(cfg, arm.name, Path(source).expanduser())


def _check_run(cfg: Sim2RealConfig, arm_name: str, src: Path) -> None:
    """A generator run (or bank) an arm names exists and shares the experiment's data and split."""
    from factorgym.generators.runs import SPEC_NAME
    from factorgym.io import same_source

    if not src.exists():
        raise FactorGymError(f"arm {arm_name!r}: generator run {src} does not exist (fit it with `factorgym fit`)")
    meta = _read_json(src / SPEC_NAME) if src.is_dir() else None
    spec = (meta or {}).get("spec") or {}
    for key in ("train_end", "val_end"):
        theirs = spec.get(key)
        if theirs is not None and pd.Timestamp(theirs) != pd.Timestamp(getattr(cfg, key)):
            raise FactorGymError(
                f"arm {arm_name!r}: generator run {src} was fitted with {key}={theirs}, the experiment uses "
                f"{getattr(cfg, key)}; every arm must share the split (refit the run or change the split)"
            )
    if spec.get("dataset") is not None and not same_source(str(spec["dataset"]), cfg.dataset):
        raise FactorGymError(f"arm {arm_name!r}: generator run {src} was fitted on {spec['dataset']}, the experiment uses {cfg.dataset}")


def _check_out(out: Path, cfg: Sim2RealConfig) -> None:
    from factorgym.artifacts import check_result_folder

    check_result_folder(out, MARKER, "a sim2real experiment's folder")


def _absolute(cfg: Sim2RealConfig) -> Sim2RealConfig:
    """``cfg`` with relative dataset and generator-run paths made absolute (a Ray worker
    may run in another folder)."""
    from factorgym.io import is_dataset_name

    def absolute(p: str) -> str:
        q = Path(p).expanduser()
        return str(q.resolve()) if p != "historical" and not q.is_absolute() and q.exists() else p

    arms = []
    for a in cfg.arms:
        m = a.market
        m = absolute(m) if isinstance(m, str) else {**m, "source": absolute(str(m["source"]))}
        arms.append(replace(a, market=m))
    dataset = cfg.dataset if is_dataset_name(cfg.dataset) else absolute(cfg.dataset)
    return replace(cfg, arms=tuple(arms), dataset=dataset)


def _workers(workers: int | None, address: str | None, n_tasks: int) -> int:
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise FactorGymError(f"workers must be a whole number >= 1, got {workers!r}")
        return int(workers)
    if address is not None:
        import ray

        return max(int(ray.cluster_resources().get("CPU", 1)), 1)
    return max(min(os.cpu_count() or 1, n_tasks), 1)


def run_sim2real(
    config: Sim2RealConfig | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    report: bool = True,
) -> Any:
    """Train every (arm, seed) of ``config``, evaluate every policy on the real validation
    and test periods beside the baselines, and write the statistics and report.

    Parameters
    ----------
    config : Sim2RealConfig or path
        The experiment, or a ``.toml`` / ``.json`` file (:func:`load_config`).
    out : path
        The experiment folder (absent, empty or a previous run of an experiment: finished
        runs whose settings are unchanged are reused, so an interrupted run resumes).
    workers : int, optional
        Tasks run at once. ``None``: a local Ray with every core (or every CPU of the
        cluster at ``address``); ``1``: one after the other in this process, without Ray.
    address : str, optional
        A running Ray cluster (``"auto"``, ``"host:6379"``, ``"ray://host:10001"``); every
        node needs factorgym and the dataset and generator-run paths.
    progress : bool
        Show progress (one unit per finished run).
    report : bool
        Write ``results/report.html``.

    Returns
    -------
    Sim2RealResult
        The tables, the summary and the paths written (``OUT/results/...``).

    Raises
    ------
    FactorGymError
        Any bad setting, missing generator run or unusable output folder, before training starts.
    """
    from factorgym.app.sim2real.config import load_config
    from factorgym.app.sim2real.report import write_results
    from factorgym.app.sim2real.results import diagnosis_table, summarize
    from factorgym.parallel import map_tasks, ray_session
    from factorgym.progress import Progress

    cfg = _absolute(config if isinstance(config, Sim2RealConfig) else load_config(config))
    target = Path(out)
    _check_out(target, cfg)
    check_inputs(cfg)
    target.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target / MARKER, json.dumps({"kind": "factorgym.sim2real", "config": cfg.to_dict()}, indent=2))
    root = str(target.resolve())
    tasks = [RunTask(cfg, BASELINE_TASK, 0, root)] + [RunTask(cfg, a.name, s, root) for a in cfg.arms for s in cfg.seeds]
    records: list[dict[str, Any]] = []
    with Progress(len(tasks), "sim2real", enabled=progress) as bar:

        def done(i: int, rec: Mapping[str, Any]) -> None:
            bar.describe(f"sim2real: {tasks[i].arm}" + ("" if tasks[i].arm == BASELINE_TASK else f" seed {tasks[i].seed}"))
            bar.advance()

        if address is not None and workers is None:
            with ray_session(address=address):
                n = _workers(None, address, len(tasks))
                records = map_tasks(run_one, tasks, workers=n, address=address, on_result=done)
        else:
            n = _workers(workers, address, len(tasks))
            records = map_tasks(run_one, tasks, workers=n, address=address, on_result=done)
    result = summarize(cfg, records[0], records[1:], n_trials=count_trials(target))
    result.diagnosis = diagnosis_table(target / "agents", [a.name for a in cfg.arms])
    result.paths = write_results(result, target / "results", report=report)
    return result

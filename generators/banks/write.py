"""Writing a scenario bank: :func:`simulate_bank` (and :func:`regenerate_bank` from a spec).

A bank folder holds ``bank.json`` (the :class:`~factorgym.generators.banks.spec.BankSpec`,
written last) and ``shards/part-NNNNN.parquet``. It is written into a staging folder beside
the target (``.<name>.tmp-<pid>-<random>``) and swapped in whole at the end: the target holds
the previous complete bank or the new complete bank, never a mix, and a run that fails leaves
it as it was. Only an absent or empty folder, or one that holds a bank, is ever replaced.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from factorgym.artifacts import (
    atomic_write_bytes,
    atomic_write_text,
    check_result_folder,
    file_sha256,
    staged_folder,
)
from factorgym.data import ReturnPanel, Split
from factorgym.errors import DataValidationError
from factorgym.generators.banks.shards import FIXED_COLUMNS, ShardJob, ShardSource, shard_task
from factorgym.generators.banks.spec import (
    BankSpec,
    check_positive,
    episode_seeds,
    panel_sha256,
    plan_contexts,
)
from factorgym.parallel import map_tasks
from factorgym.progress import Progress

if TYPE_CHECKING:
    from factorgym.generators.base import ReturnGenerator

__all__ = ["BANK_MARKER", "SHARDS_DIR", "regenerate_bank", "simulate_bank"]

#: The file that marks a folder as a bank (written last).
BANK_MARKER = "bank.json"
#: The folder of the shards inside a bank.
SHARDS_DIR = "shards"


def _check_target(out: Path) -> Path:
    return check_result_folder(out, BANK_MARKER, "a bank", label="bank folder")


def _resolve_generator(run: Any) -> tuple[Any, ReturnGenerator, str | None, str | None, dict[str, Any] | None]:
    """``(what tasks load, generator, run path, model sha256, run record)``."""
    from factorgym.generators.base import ReturnGenerator
    from factorgym.generators.runs import ARTIFACT_NAME, load_run

    if isinstance(run, ReturnGenerator):
        return run, run, None, None, None
    if not isinstance(run, str | os.PathLike):
        raise DataValidationError(f"run must be a generator run folder, an artifact or a ReturnGenerator, got {type(run).__name__}")
    p = Path(run)
    gen, record, _ = load_run(p)
    art = p / ARTIFACT_NAME if p.is_dir() else p
    sha = (record or {}).get("artifact_sha256") or file_sha256(art)
    return str(p.resolve()), gen, str(p.resolve()), sha, record


def simulate_bank(
    run: Any,
    dataset: ReturnPanel | str | os.PathLike[str] | None = None,
    *,
    n_paths: int,
    horizon: int,
    out: str | os.PathLike[str],
    contexts: Any = "random:train",
    seed: int = 0,
    shard_size: int = 64,
    workers: int = 1,
    address: str | None = None,
    split: Split | None = None,
    history: int | None = None,
    progress: bool = True,
) -> Path:
    """Simulate ``n_paths`` paths of ``horizon`` days and write them as a bank folder ``out``.

    Parameters
    ----------
    run : path or ReturnGenerator
        A generator run folder (or artifact); a generator object also works, but its bank
        cannot be regenerated from the spec alone (``run`` is ``null`` there).
    dataset : ReturnPanel, str or path, optional
        The real history the paths start from: a panel, a dataset name or a data file.
        Default: the run's dataset.
    n_paths, horizon : int
        Paths, and simulated days per path.
    out : path
        The bank folder (absent, empty, or an earlier bank: replaced whole at the end).
    contexts : str or sequence
        Where paths start (see :mod:`factorgym.generators.banks.spec`): dates, ``"every:K[:PART]"``
        or ``"random[:PART]"`` (default ``"random:train"``: the run's training days).
    seed : int
        The bank's seed; path ``i``'s episode seed is that of path ``i`` of a
        ``VecPortfolioEnv`` seeded with ``seed``.
    shard_size : int
        Paths per shard: each shard is simulated as one batch of the generator's simulator and
        is one Ray task. The output depends on it only through the file layout, never in its
        numbers, and never on ``workers``.
    workers : int
        ``1``: shards one after another in this process. ``> 1``: as Ray tasks, at most that
        many at a time (a local Ray, or the cluster at ``address``;
        :func:`factorgym.parallel.map_tasks`).
    address : str, optional
        A Ray cluster (``"ray://host:10001"``, ``"auto"``); every node needs factorgym and
        access to the run folder and dataset.
    split : Split, optional
        The split that ``PART`` in ``contexts`` refers to (default: the run's, else ``Split()``).
    history : int, optional
        Days of real history every context must have (default: the generator's
        ``min_history``). An environment observing more history than the generator needs
        (a feature warm-up, a long window: ``ObservationConfig.history_needed``) replays only
        banks made with at least that much, and a ``"random"`` bank made with exactly that many
        draws the same starts as the live market with that observation.
    progress : bool
        Show progress over the shards.

    Returns
    -------
    Path
        ``out``.
    """
    from factorgym import __version__
    from factorgym.generators.base import check_context
    from factorgym.io import load_source

    n_paths = check_positive("n_paths", n_paths)
    horizon = check_positive("horizon", horizon)
    shard_size = check_positive("shard_size", shard_size)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or int(seed) < 0:
        raise DataValidationError(f"seed must be a whole number >= 0, got {seed!r}")
    target = _check_target(Path(out))
    task_gen, gen, run_path, run_sha, record = _resolve_generator(run)
    spec_rec = (record or {}).get("spec") or {}
    if dataset is None:
        dataset = spec_rec.get("dataset")
        if dataset is None:
            raise DataValidationError("give the dataset the paths start from (the generator has no run record naming one)")
    if isinstance(dataset, ReturnPanel):
        panel, source_name = dataset, None
    else:
        panel = load_source(dataset)
        # a file by its absolute path (Ray workers and a later regeneration may run elsewhere)
        source_name = str(Path(dataset).resolve()) if Path(dataset).is_file() else str(dataset)
    check_context(panel, panel.T - 1, 1, tuple(gen.assets_))
    bad = [c for c in FIXED_COLUMNS if c in panel.assets]
    if bad:
        raise DataValidationError(f"asset name {bad[0]!r} clashes with a bank column; rename it in the data")
    if split is None:
        split = Split(spec_rec["train_end"], spec_rec["val_end"]) if "train_end" in spec_rec else Split()
    need = int(gen.min_history) if history is None else max(int(gen.min_history), check_positive("history", history))
    plan = plan_contexts(contexts, panel, split, need)
    seeds = episode_seeds(int(seed), 0, n_paths)
    rows = plan.rows_for(seeds, 0)
    psha = panel_sha256(panel)
    dates_d = panel.dates.values.astype("datetime64[D]")
    spec = BankSpec(
        generator_kind=str(gen.kind), min_history=int(gen.min_history), history=need, run=run_path, run_sha256=run_sha, dataset=source_name, panel_name=panel.name,
        panel_sha256=psha, assets=tuple(panel.assets), train_end=split.train_end, val_end=split.val_end,
        contexts=plan.text, context_kind=plan.kind, first_row=plan.first_row, start_range=(plan.lo, plan.hi),
        n_paths=n_paths, horizon=horizon, seed=int(seed), shard_size=shard_size,
        episode_seeds=tuple(int(e) for e in seeds), context_rows=tuple(int(r) for r in rows),
        context_dates=tuple(str(d) for d in dates_d[rows]), library_version=__version__,
    )  # fmt: skip
    # in this process the objects; on Ray workers the run folder and dataset, loaded once per worker
    task_panel = panel if workers == 1 or source_name is None else source_name
    return _write(spec, target, gen if workers == 1 else task_gen, task_panel, workers=workers, address=address, progress=progress)


def _write(spec: BankSpec, target: Path, generator: Any, panel: Any, *, workers: int, address: str | None, progress: bool) -> Path:
    source = ShardSource(generator, spec.run_sha256, panel, spec.panel_sha256, spec.horizon)
    seeds = np.asarray(spec.episode_seeds, dtype=np.int64)
    rows = np.asarray(spec.context_rows, dtype=np.int64)
    jobs = [ShardJob(k, a, b, seeds[a:b], rows[a:b]) for k, (a, b) in enumerate(spec.shard_bounds())]
    shards: list[dict[str, Any]] = []
    with staged_folder(target, _check_target) as tmp, Progress(
        spec.n_paths * spec.horizon, f"simulating a bank of {spec.n_paths} paths", enabled=progress
    ) as bar:
        (tmp / SHARDS_DIR).mkdir()

        def keep(i: int, res: tuple[int, bytes, str]) -> None:
            k, data, sha = res
            name = f"{SHARDS_DIR}/part-{k:05d}.parquet"
            atomic_write_bytes(tmp / name, data)
            job = jobs[k]
            shards.append({"file": name, "paths": [job.start, job.stop], "sha256": sha})
            bar.advance((job.stop - job.start) * spec.horizon)

        map_tasks(functools.partial(shard_task, source=source), jobs, workers=workers, address=address, on_result=keep, keep=False)
        final = BankSpec.from_dict({**_spec_dict(spec), "shards": tuple(shards)})
        atomic_write_text(tmp / BANK_MARKER, final.to_json())
    return target


def _spec_dict(spec: BankSpec) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(spec)


def regenerate_bank(
    bank: str | os.PathLike[str], out: str | os.PathLike[str], *, workers: int = 1, address: str | None = None,
    progress: bool = True,
) -> Path:
    """Generate the bank described by ``bank``'s spec again into ``out`` (from its run folder
    and dataset, with its seeds and contexts) and check that every shard came out identical.

    Raises
    ------
    DataValidationError
        The spec names no run folder (the bank was made from a generator object) or no dataset,
        the run's model or the data changed (their hashes differ), or a shard differs.
    """
    from factorgym.generators.banks.read import read_bank
    from factorgym.io import load_source

    spec = read_bank(bank).spec
    if spec.run is None or spec.dataset is None:
        raise DataValidationError(f"{bank} was made from a generator object or a panel in memory; its spec cannot regenerate it")
    task_gen, gen, _, sha, _ = _resolve_generator(spec.run)
    if sha != spec.run_sha256:
        raise DataValidationError(f"the run {spec.run} is not the model bank {bank} was made from (its SHA-256 differs)")
    panel = load_source(spec.dataset)
    if panel_sha256(panel) != spec.panel_sha256:
        raise DataValidationError(f"dataset {spec.dataset} is not the data bank {bank} was made from (its hash differs)")
    path = _write(spec, _check_target(Path(out)), task_gen if workers > 1 else gen, spec.dataset if workers > 1 else panel,
                  workers=workers, address=address, progress=progress)  # fmt: skip
    new = read_bank(path).spec
    diff = [a["file"] for a, b in zip(spec.shards, new.shards, strict=True) if a["sha256"] != b["sha256"]]
    if diff:
        raise DataValidationError(f"regenerating {bank} gave different shards ({', '.join(diff[:3])}); other library versions?")
    return path

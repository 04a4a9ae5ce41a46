"""Run folders: fitted generators saved with the specification that produced them.

A run folder ``runs/NAME`` holds

``run.json``        what was fitted: generator kind, parameters, dataset, split, seed,
                    library version, fit time, the SHA-256 of ``generator.fgz``; its status
                    is always ``"done"``: the folder holds a finished run or none;
``generator.fgz``   the generator artifact (:meth:`ReturnGenerator.save`);
``train/``          the training state of generators that train iteratively;
``.pending/``       a fit in progress (its ``run.json`` with status ``"fitting"`` and its
                    resumable ``train/``); the finished run above stays readable meanwhile;
``.fit.lock``       the lock a fit holds from start to end (:mod:`filelock`; the operating
                    system releases it when the process dies, so a killed fit never blocks).

:func:`fit_run` validates everything first, fits into ``.pending/`` and only then swaps the
new model, training state and ``run.json`` in (a kill during the swap is completed by the
next :func:`fit_run`; :func:`load_run` meanwhile reads whichever complete run the files
describe, checked by the recorded SHA-256). It reuses a finished run when its
specification matches (so pipelines can be re-run cheaply) and resumes an interrupted fit
of the same specification from ``.pending/train``. A second fit into a folder that is
being fitted is refused at once. Generators are imported lazily.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from factorgym.artifacts import atomic_write_text, file_sha256, folder_lock
from factorgym.data import ReturnPanel, Split
from factorgym.data.validation import parse_iso_date
from factorgym.errors import CheckpointError, DataValidationError, FactorGymError
from factorgym.io import load_source

if TYPE_CHECKING:
    from factorgym.generators.base import ReturnGenerator

__all__ = ["ARTIFACT_NAME", "LOCK_NAME", "PENDING_NAME", "RunBusyError", "RunSpec", "fit_run", "load_run"]

ARTIFACT_NAME = "generator.fgz"
SPEC_NAME = "run.json"
TRAIN_NAME = "train"
#: The folder of a fit in progress, inside the run folder.
PENDING_NAME = ".pending"
#: The lock file a fit holds, inside the run folder.
LOCK_NAME = ".fit.lock"

class RunBusyError(FactorGymError):
    """Another process is fitting into the same run folder."""


@dataclass(frozen=True)
class RunSpec:
    """Everything needed to refit a run exactly.

    Raises
    ------
    DataValidationError
        For an empty kind, a date that is not ``YYYY-MM-DD``, ``train_end`` not before
        ``val_end``, a negative or non-integer seed, or params that are not a mapping.
    """

    kind: str
    dataset: str = "sp500"
    train_end: str = Split.train_end
    val_end: str = Split.val_end
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not self.kind.strip():
            raise DataValidationError(f"a generator kind is a non-empty name, got {self.kind!r}")
        if not isinstance(self.dataset, str | os.PathLike) or not str(self.dataset).strip():
            raise DataValidationError(f"dataset must be a dataset name or a file path, got {self.dataset!r}")
        object.__setattr__(self, "train_end", parse_iso_date(self.train_end, "train_end"))
        object.__setattr__(self, "val_end", parse_iso_date(self.val_end, "val_end"))
        if self.train_end >= self.val_end:
            raise DataValidationError(f"train_end {self.train_end} must precede val_end {self.val_end}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer) or not 0 <= int(self.seed) < 2**63:
            raise DataValidationError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.params, dict) or not all(isinstance(k, str) and k for k in self.params):
            raise DataValidationError(f"params must be a mapping of parameter names to values, got {self.params!r}")

    @property
    def split(self) -> Split:
        """The date split."""
        return Split(self.train_end, self.val_end)

    def identity(self) -> dict[str, Any]:
        """The fields that decide whether an existing run can be reused."""
        return json.loads(json.dumps(asdict(self), sort_keys=True, default=str))


def make_generator(kind: str, params: dict[str, Any]) -> ReturnGenerator:
    """Instantiate a registered generator with keyword parameters (config overrides)."""
    from factorgym.generators.base import BUILTIN_GENERATORS, generator_class

    try:
        cls = generator_class(kind)
    except DataValidationError:
        raise DataValidationError(f"unknown generator {kind!r}; known: {', '.join(sorted(BUILTIN_GENERATORS))}") from None
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, FactorGymError):
            raise
        raise DataValidationError(f"bad parameters for generator {kind!r} ({params}): {exc}") from None


def _read_spec(run_dir: Path) -> dict[str, Any] | None:
    p = run_dir / SPEC_NAME
    if not p.is_file():
        return None
    try:
        record = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{p} is corrupt: {exc}") from exc
    if not isinstance(record, dict) or not isinstance(record.get("spec"), dict):
        raise CheckpointError(f"{p} is not a factorgym run record (no spec)")
    return record



def _warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()


def _commit(out: Path) -> None:
    """Swap a finished ``.pending`` fit into ``out``. Every step is idempotent, so a run
    killed anywhere in here is completed by calling it again (see :func:`_recover`)."""
    pend = out / PENDING_NAME
    if (pend / ARTIFACT_NAME).is_file():
        os.replace(pend / ARTIFACT_NAME, out / ARTIFACT_NAME)
    if (pend / TRAIN_NAME).is_dir():  # present until moved: the old run's state goes first
        if (out / TRAIN_NAME).exists():
            shutil.rmtree(out / TRAIN_NAME)
        if any((pend / TRAIN_NAME).iterdir()):
            os.rename(pend / TRAIN_NAME, out / TRAIN_NAME)
        else:  # a generator without training state
            (pend / TRAIN_NAME).rmdir()
    if (pend / SPEC_NAME).is_file():
        os.replace(pend / SPEC_NAME, out / SPEC_NAME)
    shutil.rmtree(pend, ignore_errors=True)


def _recover(out: Path) -> None:
    """Under the lock: finish a swap that a kill interrupted, and move a fit left in progress
    by an older version of this module (status "fitting" in ``out/run.json``) to ``.pending``."""
    pend = out / PENDING_NAME
    try:
        prec = _read_spec(pend)
    except CheckpointError:
        prec = None
    if prec is not None and prec.get("status") == "done":
        _commit(out)
        return
    try:
        record = _read_spec(out)
    except CheckpointError:
        return  # reported by the caller
    if record is not None and record.get("status") != "done":
        if pend.exists():
            shutil.rmtree(pend)
        pend.mkdir()
        if (out / TRAIN_NAME).is_dir():
            os.rename(out / TRAIN_NAME, pend / TRAIN_NAME)
        os.replace(out / SPEC_NAME, pend / SPEC_NAME)
        (out / ARTIFACT_NAME).unlink(missing_ok=True)  # an older model that run.json no longer described


def fit_run(
    spec: RunSpec,
    out_dir: str | Path,
    *,
    panel: ReturnPanel | None = None,
    progress: bool = True,
    force: bool = False,
    replace: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[ReturnGenerator, dict[str, Any]]:
    """Fit ``spec`` into ``out_dir`` (or reuse a finished run with the same spec).

    ``force`` refits whatever the folder holds (a fit of this spec that was interrupted is
    still resumed). ``replace`` refits only a run of *another* spec (instead of refusing
    it); a run of this spec is still reused, or resumed when it was interrupted. Until the
    new fit finishes, the folder keeps its finished run. ``log`` receives warnings (default:
    one ``warning:`` line on stderr), e.g. when a training state cannot be resumed and the
    fit starts over.

    Returns the fitted generator and the run record (``run.json`` contents).

    Raises
    ------
    DataValidationError
        A bad spec or data (before anything is written), or a folder that holds another
        run (without ``force`` / ``replace``).
    RunBusyError
        Another process is fitting into ``out_dir``.
    """

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataValidationError(f"{out} is a file, not a run folder")
    gen = make_generator(spec.kind, spec.params)
    panel = panel if panel is not None else load_source(spec.dataset)
    spec.split.part(panel, "train")  # names the dates when the train split is empty
    created = not out.exists()

    def busy(p: Path) -> RunBusyError:
        return RunBusyError(
            f"{p} is being fitted by another process right now (it holds {p / LOCK_NAME}); "
            "wait for it to finish or choose another --out"
        )

    with folder_lock(out, LOCK_NAME, busy):
        return _fit_locked(spec, out, gen, panel, progress, force, replace, log or _warn, created)


def _fit_locked(
    spec: RunSpec, out: Path, gen: ReturnGenerator, panel: ReturnPanel, progress: bool, force: bool, replace: bool,
    log: Callable[[str], None], created: bool,
) -> tuple[ReturnGenerator, dict[str, Any]]:
    """The body of :func:`fit_run` while it holds the folder's lock."""
    _recover(out)
    record = _read_spec(out)
    identity = spec.identity()
    if record is not None and not force:
        if record.get("spec") != identity and not replace:
            raise DataValidationError(
                f"{out} already holds a different run ({record.get('spec')}); "
                "choose another --out or pass --force to refit"
            )
        if record.get("spec") == identity:
            return _load_checked(out, record), record
    pend = out / PENDING_NAME
    try:
        prec = _read_spec(pend)
    except CheckpointError as exc:
        log(f"dropping an unreadable record of an interrupted fit ({exc})")
        prec = None
    if prec is None or prec.get("spec") != identity:  # nothing of this spec to resume
        shutil.rmtree(pend, ignore_errors=True)
    fresh = prec is None or prec.get("spec") != identity
    (pend / TRAIN_NAME).mkdir(parents=True, exist_ok=True)
    started = (prec or {}).get("started") if not fresh else None
    pending = {"spec": identity, "status": "fitting", "started": started or time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write_text(pend / SPEC_NAME, json.dumps(pending, indent=2))
    try:
        gen, fit_seconds = _fit_or_start_over(spec, gen, panel, pend / TRAIN_NAME, progress, log)
    except FactorGymError:
        if fresh:  # a fit that failed on its input leaves nothing behind
            if created:
                shutil.rmtree(out, ignore_errors=True)
            else:
                shutil.rmtree(pend, ignore_errors=True)
        raise
    gen.save(pend / ARTIFACT_NAME)
    from factorgym import __version__

    pending.update(
        status="done", fit_seconds=round(fit_seconds, 2), library_version=__version__,
        artifact_sha256=file_sha256(pend / ARTIFACT_NAME),
    )  # fmt: skip
    atomic_write_text(pend / SPEC_NAME, json.dumps(pending, indent=2))  # the commit point
    _commit(out)
    return gen, pending


def _fit_or_start_over(
    spec: RunSpec, gen: ReturnGenerator, panel: ReturnPanel, train_dir: Path, progress: bool, log: Callable[[str], None]
) -> tuple[ReturnGenerator, float]:
    """Fit ``gen`` with its resumable state in ``train_dir``; a state that cannot be resumed
    (damaged, or written by another configuration) is dropped with a warning and the fit
    starts over."""
    had_state = any(train_dir.iterdir())
    t0 = time.perf_counter()
    try:
        gen.fit(panel, spec.split, out_dir=train_dir, progress=progress, rng=np.random.default_rng(spec.seed))
    except CheckpointError as exc:
        if not had_state:
            raise
        log(f"cannot resume the interrupted fit from {train_dir} ({exc}); starting over")
        shutil.rmtree(train_dir)
        train_dir.mkdir()
        gen = make_generator(spec.kind, spec.params)
        t0 = time.perf_counter()
        gen.fit(panel, spec.split, out_dir=train_dir, progress=progress, rng=np.random.default_rng(spec.seed))
    return gen, time.perf_counter() - t0


def _load_checked(folder: Path, record: dict[str, Any]) -> ReturnGenerator:
    """The generator of a finished run folder, checked against its record."""
    from factorgym.generators.base import load_generator

    art = folder / ARTIFACT_NAME
    if not art.is_file():
        raise CheckpointError(f"{folder} has no fitted generator ({ARTIFACT_NAME}); refit it with --force")
    want = record.get("artifact_sha256")
    if want is not None and file_sha256(art) != want:
        raise CheckpointError(
            f"{art} is not the model {folder / SPEC_NAME} describes (SHA-256 differs): it was changed, or a fit "
            "was killed while finishing; re-run the same `factorgym fit` command to complete it"
        )
    gen = load_generator(art)
    kind = (record.get("spec") or {}).get("kind")
    if kind is not None and getattr(gen, "kind", kind) != kind:
        raise CheckpointError(f"{art} holds a {gen.kind!r} generator but {folder / SPEC_NAME} describes {kind!r}")
    return gen


def load_run(path: str | Path) -> tuple[ReturnGenerator, dict[str, Any] | None, str]:
    """Load a finished run folder (or a bare artifact). Returns ``(generator, record, name)``.

    Raises
    ------
    CheckpointError
        No such folder or artifact, a folder without a finished run (a fit in progress or
        interrupted), or a model that is not the one ``run.json`` describes.
    """
    from factorgym.generators.base import load_generator

    p = Path(path)
    if p.is_dir():
        record = _read_spec(p)
        if record is None:
            if (p / PENDING_NAME).is_dir():
                raise CheckpointError(
                    f"{p} holds no finished run: a fit into it is running or was interrupted; "
                    "re-run the same `factorgym fit` command to finish it"
                )
            if not (p / ARTIFACT_NAME).is_file():
                raise CheckpointError(f"{p} is not a run folder (no {SPEC_NAME} or {ARTIFACT_NAME})")
            return load_generator(p / ARTIFACT_NAME), None, p.name
        status = record.get("status")
        if status != "done":
            raise CheckpointError(
                f"{p} holds an unfinished fit (status {status!r}); re-run the same `factorgym fit` command "
                "to finish it, or `factorgym fit --force` to refit"
            )
        want = record.get("artifact_sha256")
        if want is not None and (p / ARTIFACT_NAME).is_file() and file_sha256(p / ARTIFACT_NAME) != want:
            try:  # killed between swapping the model in and its record: read the new complete run
                prec = _read_spec(p / PENDING_NAME)
            except CheckpointError:
                prec = None
            if prec is not None and prec.get("status") == "done" and prec.get("artifact_sha256") == file_sha256(p / ARTIFACT_NAME):
                record = prec
        return _load_checked(p, record), record, p.name
    if not p.exists():
        raise CheckpointError(f"no run folder or artifact at {p}")
    return load_generator(p), None, p.stem

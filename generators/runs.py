"""Run folders: fitted generators saved with the specification that produced them.

A run folder ``runs/NAME`` holds

``run.json``        what was fitted: generator kind, parameters, dataset, split, seed,
                    library version, fit time;
``generator.fgz``   the generator artifact (:meth:`ReturnGenerator.save`);
``train/``          resumable training state of generators that train iteratively.

:func:`fit_run` reuses a finished run when its specification matches (so pipelines can be
re-run cheaply) and resumes an interrupted one from ``train/``. Generators are imported
lazily: this module is part of the numpy-only core.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from factorgym.artifacts import atomic_write_text
from factorgym.data import ReturnPanel, Split
from factorgym.errors import CheckpointError, DataValidationError
from factorgym.io import load_source

if TYPE_CHECKING:
    from factorgym.generators.base import ReturnGenerator

__all__ = ["RunSpec", "fit_run", "load_run", "ARTIFACT_NAME"]

ARTIFACT_NAME = "generator.fgz"
SPEC_NAME = "run.json"


@dataclass(frozen=True)
class RunSpec:
    """Everything needed to refit a run exactly."""

    kind: str
    dataset: str = "sp500"
    train_end: str = Split.train_end
    val_end: str = Split.val_end
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def split(self) -> Split:
        """The date split."""
        return Split(self.train_end, self.val_end)

    def identity(self) -> dict[str, Any]:
        """The fields that decide whether an existing run can be reused."""
        return json.loads(json.dumps(asdict(self), sort_keys=True, default=str))


def make_generator(kind: str, params: dict[str, Any]) -> ReturnGenerator:
    """Instantiate a registered generator with keyword parameters (config overrides)."""
    from factorgym.generators.base import generator_class

    cls = generator_class(kind)
    try:
        return cls(**params)
    except TypeError as exc:
        raise DataValidationError(f"bad parameters for generator {kind!r}: {exc}") from None


def _read_spec(run_dir: Path) -> dict[str, Any] | None:
    p = run_dir / SPEC_NAME
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{p} is corrupt: {exc}") from exc


def fit_run(
    spec: RunSpec,
    out_dir: str | Path,
    *,
    panel: ReturnPanel | None = None,
    progress: bool = True,
    force: bool = False,
    replace: bool = False,
) -> tuple[ReturnGenerator, dict[str, Any]]:
    """Fit ``spec`` into ``out_dir`` (or reuse a finished run with the same spec).

    ``force`` refits whatever the folder holds. ``replace`` refits only a run of *another*
    spec (instead of refusing it); a run of this spec is still reused, or resumed when it
    was interrupted. Another spec's training state is dropped before refitting: there is
    nothing in it to resume from.

    Returns the fitted generator and the run record (``run.json`` contents).
    """
    out = Path(out_dir)
    record = _read_spec(out)
    other = record is not None and record.get("spec") != spec.identity()
    if record is not None and not force:
        if other and not replace:
            raise DataValidationError(
                f"{out} already holds a different run ({record.get('spec')}); "
                "choose another --out or pass --force to refit"
            )
        if not other and record.get("status") == "done" and (out / ARTIFACT_NAME).is_file():
            from factorgym.generators.base import load_generator

            return load_generator(out / ARTIFACT_NAME), record
    if other and (out / "train").is_dir():
        import shutil

        shutil.rmtree(out / "train")
    panel = panel if panel is not None else load_source(spec.dataset)
    gen = make_generator(spec.kind, spec.params)
    record = {"spec": spec.identity(), "status": "fitting", "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / SPEC_NAME, json.dumps(record, indent=2))
    t0 = time.perf_counter()
    gen.fit(panel, spec.split, out_dir=out / "train", progress=progress, rng=np.random.default_rng(spec.seed))
    fit_seconds = time.perf_counter() - t0
    gen.save(out / ARTIFACT_NAME)
    from factorgym import __version__

    record.update(status="done", fit_seconds=round(fit_seconds, 2), library_version=__version__)
    atomic_write_text(out / SPEC_NAME, json.dumps(record, indent=2))
    return gen, record


def load_run(path: str | Path) -> tuple[ReturnGenerator, dict[str, Any] | None, str]:
    """Load a run folder (or a bare artifact). Returns ``(generator, record, name)``."""
    from factorgym.generators.base import load_generator

    p = Path(path)
    if p.is_dir():
        record = _read_spec(p)
        art = p / ARTIFACT_NAME
        if not art.is_file():
            status = (record or {}).get("status", "missing")
            raise CheckpointError(f"{p} has no fitted generator ({ARTIFACT_NAME}; run status: {status})")
        return load_generator(art), record, p.name
    if not p.exists():
        raise CheckpointError(f"no run folder or artifact at {p}")
    return load_generator(p), None, p.stem

"""Scenario sets on disk: :class:`ScenarioSet` (Parquet with the specification in its
metadata and a ``.spec.json`` sidecar) and :func:`read_scenarios`.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from factorgym.artifacts import atomic_write_bytes, atomic_write_text
from factorgym.errors import CheckpointError, DataValidationError
from factorgym.generators.stress.spec import StressSpec

__all__ = ["SIDECARS", "ScenarioSet", "read_scenarios", "recover_set", "replace_set"]

#: Files written beside a scenario set ``x.parquet`` as ``x.parquet<suffix>``.
SIDECARS = (".spec.json", ".losses.csv")


@dataclass(frozen=True, eq=False)
class ScenarioSet:
    """Scenario paths with their specification.

    Attributes
    ----------
    spec : StressSpec
    assets : tuple of str, length N
    paths : ndarray of shape (S, H, N)
        Simple daily returns.
    context_date : str or None
        The last real day the scenarios condition on (first day of the window for replay).
    info : dict
        Diagnostics (e.g. the market-factor threshold, acceptance rate).
    """

    spec: StressSpec
    assets: tuple[str, ...]
    paths: np.ndarray
    context_date: str | None
    info: dict[str, Any]

    def __post_init__(self) -> None:
        paths = np.asarray(self.paths)
        if paths.ndim != 3 or paths.shape[2] != len(self.assets) or 0 in paths.shape:
            raise DataValidationError(
                f"scenario paths must have shape (scenarios, days, {len(self.assets)} assets), got {paths.shape}"
            )
        if not np.issubdtype(paths.dtype, np.number) or not np.isfinite(paths).all():
            raise DataValidationError("scenario paths hold non-finite or non-numeric returns")
        if len(set(self.assets)) != len(self.assets):
            raise DataValidationError(f"scenario assets repeat: {sorted({a for a in self.assets if self.assets.count(a) > 1})[:5]}")

    def to_frame(self) -> pd.DataFrame:
        """Long format: columns scenario, day, asset, return."""
        S, H, N = self.paths.shape  # noqa: N806
        return pd.DataFrame(
            {
                "scenario": np.repeat(np.arange(S), H * N),
                "day": np.tile(np.repeat(np.arange(1, H + 1), N), S),
                "asset": np.tile(np.asarray(self.assets, dtype=object), S * H),
                "return": self.paths.reshape(-1),
            }
        )

    def save(self, path: str | Path, *, losses: str | None = None) -> Path:
        """Write the set at ``path`` as one unit: the Parquet file (spec in its metadata),
        ``path.spec.json`` and, when ``losses`` (CSV text) is given, ``path.losses.csv``.

        The three files replace those of an earlier set at ``path`` together (see
        :func:`replace_set`): an error at any point leaves the earlier set as it was, and a
        run killed while swapping is completed by the next :meth:`save` or
        :func:`read_scenarios` of ``path``. Without ``losses`` an earlier set's
        ``.losses.csv`` is removed in the same swap, so losses never sit beside another
        set's scenarios.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        if path.is_dir():
            raise IsADirectoryError(21, "Is a directory (a scenario set is a .parquet file)", str(path))
        meta = {"spec": self.spec.to_json(), "context_date": self.context_date or "", "info": json.dumps(self.info, default=str)}
        table = pa.Table.from_pandas(self.to_frame(), preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **{f"factorgym.{k}": v for k, v in meta.items()}})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        spec_text = json.dumps(json.loads(self.spec.to_json()), indent=2)
        with _staging(path) as stage:
            atomic_write_bytes(stage / path.name, sink.getvalue().to_pybytes())
            atomic_write_text(stage / (path.name + ".spec.json"), spec_text)
            if losses is not None:
                atomic_write_text(stage / (path.name + ".losses.csv"), losses)
            replace_set(stage, path)
        return path


# ---------------------------------------------------------------------------- one set, one swap
# A scenario set is three files with fixed names (x.parquet, x.parquet.spec.json,
# x.parquet.losses.csv) in the user's folder; no single rename can swap three names, so the
# swap is journalled. The new files are written into a staging folder beside the target
# (.x.parquet.stage-<pid>-<token>/, same file system); a COMMIT file there marks the new set
# as complete; each target name is then replaced with os.replace (the old file first
# hard-linked into the staging folder's old/), the Parquet file last. On an error the old
# files are put back; a process killed after COMMIT leaves the staging folder, and the next
# save or read of that path finishes the swap (roll forward) before anything else.
_COMMIT = "COMMIT"


def _names(path: Path) -> list[str]:
    """The file names of the set at ``path``: sidecars first, the Parquet file last."""
    return [path.name + suffix for suffix in SIDECARS] + [path.name]


@contextmanager
def _staging(path: Path) -> Iterator[Path]:
    """A fresh staging folder beside ``path`` (after finishing any interrupted swap there);
    removed when the block ends, whatever happens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_set(path)
    stage = path.parent / f".{path.name}.stage-{os.getpid()}-{secrets.token_hex(4)}"
    stage.mkdir()
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def replace_set(stage: Path, path: Path) -> None:
    """Replace the set at ``path`` by the files in ``stage`` as one unit.

    A name of the set that ``stage`` does not hold is removed at ``path``. Any error puts the
    old files back (and removes the new ones) before it propagates.
    """
    names = _names(path)
    new = [n for n in names if (stage / n).is_file()]
    old = stage / "old"
    old.mkdir()
    atomic_write_text(stage / _COMMIT, json.dumps({"new": new, "remove": [n for n in names if n not in new]}))
    done: list[str] = []
    try:
        for name in names:
            target = path.parent / name
            if target.exists():
                os.link(target, old / name)
            done.append(name)
            if name in new:
                if (old / name).exists():  # the new file keeps the old one's permissions
                    os.chmod(stage / name, stat.S_IMODE((old / name).stat().st_mode))
                os.replace(stage / name, target)
            else:
                target.unlink(missing_ok=True)
    except BaseException:
        for name in reversed(done):
            target = path.parent / name
            if name in new and target.exists() and not (stage / name).exists():
                os.link(target, stage / name)  # moved in: kept, so a roll-forward after a kill here completes
            if (old / name).exists():
                os.replace(old / name, target)
            else:
                target.unlink(missing_ok=True)
        (stage / _COMMIT).unlink(missing_ok=True)
        raise


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (another process's swap is never touched)."""
    if pid == os.getpid():
        return False  # this process is between saves when it recovers
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_set(path: str | Path) -> None:
    """Finish or discard what a killed :meth:`ScenarioSet.save` left beside ``path``.

    A staging folder of a process that no longer runs is rolled forward when it holds a
    COMMIT file (the new set was complete: its files not yet moved in replace the old ones,
    and the names it does not hold are removed) and deleted otherwise (the old set was
    never touched). Folders of running processes are left alone.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return
    for stage in sorted(path.parent.glob(f".{glob.escape(path.name)}.stage-*")):
        try:
            pid = int(stage.name.rsplit("-", 2)[-2])
        except ValueError:
            continue
        if not stage.is_dir() or _alive(pid):
            continue
        commit = stage / _COMMIT
        if commit.is_file():
            plan = json.loads(commit.read_text())
            for name in plan["new"]:
                if (stage / name).is_file():  # not moved in yet
                    os.replace(stage / name, path.parent / name)
            for name in plan["remove"]:
                (path.parent / name).unlink(missing_ok=True)
        shutil.rmtree(stage, ignore_errors=True)


def read_scenarios(path: str | Path) -> ScenarioSet:
    """Read a scenario set written by :meth:`ScenarioSet.save` (finishing first a swap of
    that set that a killed process left half done: :func:`recover_set`)."""
    import pyarrow.parquet as pq

    path = Path(path)
    recover_set(path)
    if not path.is_file():
        raise CheckpointError(f"no scenario file at {path}")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise CheckpointError(f"{path} is not a readable Parquet scenario file: {exc}") from exc
    md = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in (table.schema.metadata or {}).items()}
    if "factorgym.spec" not in md:
        raise CheckpointError(f"{path} has no factorgym stress specification in its metadata")
    try:
        spec = StressSpec.from_json(md["factorgym.spec"])
        info = json.loads(md.get("factorgym.info", "{}"))
        df = table.to_pandas()
        if not {"scenario", "day", "asset", "return"} <= set(df.columns) or df.empty:
            raise ValueError(f"columns scenario, day, asset, return are expected, it has {list(df.columns)}")
        S, H = int(df["scenario"].max()) + 1, int(df["day"].max())  # noqa: N806
        assets = tuple(str(a) for a in pd.unique(df["asset"]))
        expected = ScenarioSet(spec, assets, np.zeros((S, H, len(assets))), None, {}).to_frame()
        if len(df) != len(expected) or not (
            np.array_equal(df["scenario"].to_numpy(), expected["scenario"].to_numpy())
            and np.array_equal(df["day"].to_numpy(), expected["day"].to_numpy())
            and np.array_equal(df["asset"].astype(str).to_numpy(), expected["asset"].to_numpy())
        ):
            raise ValueError("its rows are not every (scenario, day, asset) once, in order")
        paths = df["return"].to_numpy(dtype=np.float64).reshape(S, H, len(assets))
        return ScenarioSet(spec, assets, paths, md.get("factorgym.context_date") or None, info)
    except (ValueError, TypeError, KeyError, DataValidationError) as exc:
        raise CheckpointError(f"{path} is not a valid scenario file: {exc}") from None

"""Scenario sets on disk: :class:`ScenarioSet` (Parquet with the specification in its
metadata and a ``.spec.json`` sidecar) and :func:`read_scenarios`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from factorgym.artifacts import atomic_write_bytes, atomic_write_text
from factorgym.errors import CheckpointError, DataValidationError
from factorgym.generators.stress.spec import StressSpec

__all__ = ["SIDECARS", "ScenarioSet", "read_scenarios"]

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

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (Parquet, spec in its metadata) and ``path.spec.json`` atomically.

        The sidecars of an earlier set at ``path`` (``.spec.json``, and the ``.losses.csv``
        of ``factorgym stress``) are removed first, so a file never sits beside the sidecars
        of another set, even when a run is killed while writing.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        if path.is_dir():
            raise IsADirectoryError(21, "Is a directory (a scenario set is a .parquet file)", str(path))
        for suffix in SIDECARS:
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        meta = {"spec": self.spec.to_json(), "context_date": self.context_date or "", "info": json.dumps(self.info, default=str)}
        table = pa.Table.from_pandas(self.to_frame(), preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **{f"factorgym.{k}": v for k, v in meta.items()}})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        atomic_write_bytes(path, sink.getvalue().to_pybytes())
        atomic_write_text(path.with_name(path.name + ".spec.json"), json.dumps(json.loads(self.spec.to_json()), indent=2))
        return path


def read_scenarios(path: str | Path) -> ScenarioSet:
    """Read a scenario set written by :meth:`ScenarioSet.save`."""
    import pyarrow.parquet as pq

    path = Path(path)
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

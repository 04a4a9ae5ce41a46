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
from factorgym.errors import CheckpointError
from factorgym.generators.stress.spec import StressSpec

__all__ = ["ScenarioSet", "read_scenarios"]


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
        """Write ``path`` (Parquet, spec in its metadata) and ``path.spec.json`` atomically."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
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
    md = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    if "factorgym.spec" not in md:
        raise CheckpointError(f"{path} has no factorgym stress specification in its metadata")
    spec = StressSpec.from_json(md["factorgym.spec"])
    df = table.to_pandas()
    S, H = int(df["scenario"].max()) + 1, int(df["day"].max())  # noqa: N806
    assets = tuple(pd.unique(df["asset"]))
    paths = df["return"].to_numpy(dtype=np.float64).reshape(S, H, len(assets))
    return ScenarioSet(spec, assets, paths, md.get("factorgym.context_date") or None, json.loads(md.get("factorgym.info", "{}")))

"""Reading a scenario bank: :func:`read_bank` -> :class:`Bank`.

A quant can also open a bank without factorgym's help::

    df = pandas.read_parquet("BANK/shards")        # one row per (path, day), a column per asset
    spec = json.load(open("BANK/bank.json"))        # seeds, contexts, run, dataset, shard hashes
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from factorgym.errors import CheckpointError
from factorgym.generators.banks.shards import FIXED_COLUMNS
from factorgym.generators.banks.spec import BANK_FORMAT, BankSpec
from factorgym.generators.banks.write import BANK_MARKER

__all__ = ["Bank", "is_bank", "read_bank"]


def is_bank(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder holding a bank (``bank.json``)."""
    return (Path(path) / BANK_MARKER).is_file()


@dataclass
class Bank:
    """A bank folder: its :class:`BankSpec` and its paths, read on demand (``returns``)."""

    path: Path
    spec: BankSpec
    _returns: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_paths(self) -> int:
        return self.spec.n_paths

    @property
    def horizon(self) -> int:
        return self.spec.horizon

    @property
    def assets(self) -> tuple[str, ...]:
        return self.spec.assets

    @property
    def context_rows(self) -> np.ndarray:
        return np.asarray(self.spec.context_rows, dtype=np.int64)

    @property
    def episode_seeds(self) -> np.ndarray:
        return np.asarray(self.spec.episode_seeds, dtype=np.int64)

    def frame(self) -> pd.DataFrame:
        """All paths as one frame: ``path``, ``day``, ``context_date`` and a column per asset."""
        return pd.concat([self._read_shard(s) for s in self.spec.shards], ignore_index=True)

    @property
    def returns(self) -> np.ndarray:
        """Every path's simple returns ``(P, H, N)`` (read once, each shard checked against its
        SHA-256)."""
        if self._returns is None:
            P, H, N = self.n_paths, self.horizon, len(self.assets)  # noqa: N806
            out = np.empty((P, H, N))
            for s in self.spec.shards:
                a, b = (int(x) for x in s["paths"])
                df = self._read_shard(s)
                if len(df) != (b - a) * H or not np.array_equal(df["path"].to_numpy(), np.repeat(np.arange(a, b), H)):
                    raise CheckpointError(f"{self.path / s['file']} does not hold paths {a}..{b - 1} x {H} days in order")
                out[a:b] = df[list(self.assets)].to_numpy(dtype=np.float64).reshape(b - a, H, N)
            self._returns = out
        return self._returns

    def _read_shard(self, s: dict) -> pd.DataFrame:
        import pyarrow.parquet as pq

        f = self.path / s["file"]
        try:
            data = f.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"bank {self.path} is missing its shard {s['file']}: {exc}") from None
        if hashlib.sha256(data).hexdigest() != s["sha256"]:
            raise CheckpointError(f"bank shard {f} is not the file bank.json describes (its SHA-256 differs)")
        import pyarrow as pa

        df = pq.read_table(pa.BufferReader(data)).to_pandas()
        missing = [c for c in (*FIXED_COLUMNS, *self.assets) if c not in df.columns]
        if missing:
            raise CheckpointError(f"bank shard {f} lacks the columns {missing[:5]}")
        return df


def read_bank(path: str | os.PathLike[str]) -> Bank:
    """Open the bank folder ``path`` (its spec; paths are read on first use).

    Raises
    ------
    CheckpointError
        No bank there (no ``bank.json``: absent, or not a bank), or an unreadable or
        incompatible spec.
    """
    p = Path(path)
    f = p / BANK_MARKER
    if not f.is_file():
        raise CheckpointError(f"no scenario bank at {p} (no {BANK_MARKER}); make one with `factorgym simulate`")
    try:
        d = json.loads(f.read_text())
        if d.get("format") != BANK_FORMAT:
            raise CheckpointError(f"{f} has bank format {d.get('format')!r}; this library reads format {BANK_FORMAT}")
        spec = BankSpec.from_dict(d)
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{f} is not a valid bank specification: {exc}") from None
    if len(spec.episode_seeds) != spec.n_paths or len(spec.context_rows) != spec.n_paths:
        raise CheckpointError(f"{f} lists {len(spec.episode_seeds)} seeds for {spec.n_paths} paths")
    return Bank(p, spec)

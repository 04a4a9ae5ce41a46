"""One shard of a bank: its paths simulated in one batch and written as Parquet bytes.

The layout of a shard (``shards/part-00000.parquet``) is *long by path-day, wide by asset*:
one row per ``(path, day)``, columns ``path`` (global path index, int64), ``day`` (1..H,
int32), ``context_date`` (the last real day before the path, date32) and one float64 column
of simple returns per asset, in the panel's order. ``pandas.read_parquet("BANK/shards")``
reads a whole bank as one frame; ``df[assets].to_numpy().reshape(P, H, N)`` gives the cube.

:func:`shard_task` is what a Ray task (or the sequential loop) runs: it loads the generator and
the panel once per worker process (cached), simulates its paths from their own seeds, and
returns the shard's bytes and SHA-256. The bytes depend only on the shard's paths, never on
the worker: every run generates them with one compute thread (:func:`compute_threads`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from factorgym.data import ReturnPanel
from factorgym.errors import DataValidationError
from factorgym.generators.banks.spec import path_streams

if TYPE_CHECKING:
    from factorgym.generators.base import ReturnGenerator

__all__ = ["FIXED_COLUMNS", "ShardJob", "ShardSource", "shard_bytes", "shard_task", "simulate_paths"]

#: The columns before the asset columns.
FIXED_COLUMNS = ("path", "day", "context_date")

_CACHE: dict[tuple[str, str], Any] = {}


@dataclass(frozen=True)
class ShardSource:
    """Where a task finds the generator and the panel: objects (in this process, or pickled
    to the workers) or a run folder / dataset source loaded once per worker process."""

    generator: Any  # a ReturnGenerator, or the path of a run folder
    run_sha256: str | None
    panel: Any  # a ReturnPanel, or a dataset source (a name or a file)
    panel_sha256: str
    horizon: int

    def load(self) -> tuple[ReturnGenerator, ReturnPanel]:
        gen = self.generator
        if isinstance(gen, str):
            key = ("run", f"{gen}|{self.run_sha256}")
            if key not in _CACHE:
                from factorgym.generators.runs import load_run

                _CACHE[key] = load_run(gen)[0]
            gen = _CACHE[key]
        panel = self.panel
        if not isinstance(panel, ReturnPanel):
            key = ("panel", f"{panel}|{self.panel_sha256}")
            if key not in _CACHE:
                from factorgym.generators.banks.spec import panel_sha256
                from factorgym.io import load_source

                loaded = load_source(panel)
                if panel_sha256(loaded) != self.panel_sha256:
                    raise DataValidationError(f"dataset {panel} is not the data the bank was planned on (its hash differs)")
                _CACHE[key] = loaded
            panel = _CACHE[key]
        return gen, panel


@dataclass(frozen=True)
class ShardJob:
    """Paths ``start .. stop - 1`` with their episode seeds and context rows."""

    index: int
    start: int
    stop: int
    seeds: np.ndarray
    rows: np.ndarray


def simulate_paths(
    generator: ReturnGenerator, panel: ReturnPanel, seeds: np.ndarray, rows: np.ndarray, horizon: int
) -> np.ndarray:
    """Paths ``(k, horizon, N)`` after context rows ``rows``, path ``j`` on the path stream of
    episode seed ``seeds[j]``, all in one batch of the generator's simulator."""
    from factorgym.generators.base import compute_threads

    mh = int(generator.min_history)
    R = panel.returns  # noqa: N806
    windows = np.stack([R[t - mh + 1 : t + 1] for t in rows.tolist()])
    rngs = [path_streams(int(e))[1] for e in seeds.tolist()]
    out = np.empty((len(rows), int(horizon), panel.N))
    with compute_threads(1):
        sim = generator.simulator_window(windows, rngs)
        for h in range(int(horizon)):
            r = np.asarray(sim.step(), dtype=np.float64)
            if r.shape != (len(rows), panel.N):
                raise DataValidationError(
                    f"{type(generator).__name__} simulated returns of shape {r.shape}, expected {(len(rows), panel.N)}"
                )
            if not np.isfinite(r).all() or (r <= -1.0).any():
                bad = np.argwhere(~np.isfinite(r) | (r <= -1.0))[0].tolist()
                raise DataValidationError(
                    f"{type(generator).__name__} simulated an impossible return at (path, asset) {bad} on day {h + 1}: "
                    f"{r[tuple(bad)]!r} (simple returns must be finite and > -1)"
                )
            out[:, h] = r
    return out


def shard_bytes(paths: np.ndarray, start: int, context_dates: np.ndarray, assets: tuple[str, ...]) -> bytes:
    """A shard's Parquet bytes (see the module docstring); ``context_dates`` ``(k,)``
    ``datetime64[D]``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    k, H, N = paths.shape  # noqa: N806
    cols: dict[str, Any] = {
        "path": pa.array(np.repeat(np.arange(start, start + k, dtype=np.int64), H)),
        "day": pa.array(np.tile(np.arange(1, H + 1, dtype=np.int32), k)),
        "context_date": pa.array(np.repeat(np.asarray(context_dates, dtype="datetime64[D]"), H)),
    }
    flat = paths.reshape(k * H, N)
    for j, a in enumerate(assets):
        cols[a] = pa.array(np.ascontiguousarray(flat[:, j]))
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(cols), sink, compression="snappy")
    return sink.getvalue().to_pybytes()


def shard_task(job: ShardJob, source: ShardSource) -> tuple[int, bytes, str]:
    """Simulate and encode one shard -> ``(index, parquet bytes, sha256)``."""
    gen, panel = source.load()
    paths = simulate_paths(gen, panel, job.seeds, job.rows, source.horizon)
    dates = panel.dates.values.astype("datetime64[D]")[job.rows]
    data = shard_bytes(paths, job.start, dates, tuple(panel.assets))
    return job.index, data, hashlib.sha256(data).hexdigest()

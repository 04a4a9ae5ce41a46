"""Re-using a generator's scenario draws when an agent replays the same day with the same stream.

An optimizer agent with ``draws="own"`` samples ``n_scenarios`` scenarios from the
generator's predictive of each day with its own ``numpy.random.Generator``. The draws depend
on the generator, the window, the stream's state before the draw and ``n`` - never on the
agent's weights or costs. A backtest replays the same agent many times (one run per cost
multiple, the break-even search, another execution lag), each time from the same seed, so it
asks for the same draws again; for a diffusion model each costs a full reverse diffusion
(~0.4 s a day on one core). :class:`ScenarioMemo` keeps them:

* **Key**: a digest of (the generator's *content* digest, :func:`generator_digest`; the
  window's shape and float64 bytes; the stream's complete bit-generator state; ``n``).
  A mean-variance and a mean-CVaR agent of the same run and seed share entries (same
  stream, same draws).
* **Value**: the draws and the stream's state after the draw. A hit returns a copy of the
  draws and sets the stream to that state, so the agent and everything after it see exactly
  what a fresh draw would have left: results are bit-identical with and without the memo.
* A draw that spawned child streams (``rng.spawn``, which changes the seed sequence and not
  the bit-generator state) is not stored: its side effect could not be replayed.
* Bounded: least recently used entries are dropped beyond ``max_bytes`` (``0`` disables it).

:func:`process_memo` is the one memo of the process that :class:`GeneratorSource` uses by
default; :func:`set_process_memo` resizes it. As with
:class:`~factorgym.agents.estimators.generator.PredictionCache`, a generator must not be
refitted in place while memoised draws refer to it (its digest is taken once per object).
"""

from __future__ import annotations

import hashlib
import itertools
import sys
import threading
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from factorgym.errors import DataValidationError

__all__ = ["DEFAULT_MAX_BYTES", "ScenarioMemo", "generator_digest", "process_memo", "set_process_memo"]

#: Default bound of :func:`process_memo`: 256 MiB (about 3,300 days of 500 x 20 float64 draws).
DEFAULT_MAX_BYTES = 256 * 2**20

#: id(generator) -> (weak reference, digest); entries leave when their generator dies
_DIGESTS: dict[int, tuple[weakref.ref[Any], bytes]] = {}
_SERIAL = itertools.count()
_LOCK = threading.Lock()


class _Opaque(Exception):
    """An attribute whose content cannot be digested (the generator is then keyed by identity)."""


def _feed(h: Any, obj: Any, seen: set[int], depth: int) -> None:
    """Write a canonical description of ``obj``'s content into the hash ``h``."""
    if depth > 12:
        raise _Opaque("too deep")
    if obj is None or isinstance(obj, bool | int | float | complex | str | bytes):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
        return
    if isinstance(obj, np.generic):
        h.update(f"np.{obj.dtype.str}:{obj.item()!r};".encode())
        return
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            h.update(f"objarray{obj.shape}[".encode())
            for v in obj.ravel():
                _feed(h, v, seen, depth + 1)
            h.update(b"]")
            return
        h.update(f"ndarray:{obj.dtype.str}:{obj.shape};".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
        return
    if isinstance(obj, np.dtype):
        h.update(f"dtype:{obj.str};".encode())
        return
    mod = type(obj).__module__
    torch = sys.modules.get("torch")  # only when torch is loaded: a torch object implies it is
    if mod.startswith("torch") or (torch is not None and isinstance(obj, torch.Tensor | torch.nn.Module)):
        _feed_torch(h, obj, seen, depth)
        return
    if isinstance(obj, list | tuple):
        h.update(f"{type(obj).__name__}[{len(obj)}](".encode())
        for v in obj:
            _feed(h, v, seen, depth + 1)
        h.update(b")")
        return
    if isinstance(obj, dict):
        h.update(f"dict[{len(obj)}](".encode())
        for k in sorted(obj, key=repr):
            _feed(h, k, seen, depth + 1)
            _feed(h, obj[k], seen, depth + 1)
        h.update(b")")
        return
    if isinstance(obj, set | frozenset):
        h.update(f"set[{len(obj)}](".encode())
        for v in sorted(obj, key=repr):
            _feed(h, v, seen, depth + 1)
        h.update(b")")
        return
    if mod.startswith("pandas"):
        import pandas as pd

        if isinstance(obj, pd.Timestamp | pd.Timedelta):
            h.update(f"{type(obj).__name__}:{obj.isoformat()};".encode())
            return
        if isinstance(obj, pd.Index | pd.Series | pd.DataFrame):
            h.update(f"{type(obj).__name__}:".encode())
            h.update(pd.util.hash_pandas_object(obj, index=True).to_numpy().tobytes())
            if isinstance(obj, pd.DataFrame):
                _feed(h, list(map(str, obj.columns)), seen, depth + 1)
            return
        raise _Opaque(type(obj).__name__)
    if isinstance(obj, type):
        h.update(f"class:{obj.__module__}.{obj.__qualname__};".encode())
        return
    if callable(obj) or isinstance(obj, types.ModuleType | weakref.ref):
        # a function, method or closure: its behaviour is not in its attributes
        raise _Opaque(type(obj).__name__)
    state = getattr(obj, "__dict__", None)
    slots = getattr(type(obj), "__slots__", ())
    if state is None and not slots:
        raise _Opaque(type(obj).__name__)
    if id(obj) in seen:
        h.update(b"<seen>")
        return
    seen.add(id(obj))
    h.update(f"obj:{type(obj).__module__}.{type(obj).__qualname__}(".encode())
    items = dict(state or {})
    for s in (slots,) if isinstance(slots, str) else slots:
        if hasattr(obj, s):
            items[s] = getattr(obj, s)
    for k in sorted(items):
        h.update(f"{k}=".encode())
        _feed(h, items[k], seen, depth + 1)
    h.update(b")")


def _feed_torch(h: Any, obj: Any, seen: set[int], depth: int) -> None:
    import torch

    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        h.update(f"tensor:{t.dtype}:{tuple(t.shape)}:{t.device};".encode())
        h.update(t.cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return
    if isinstance(obj, torch.nn.Module):
        # the architecture (repr names every layer and its sizes), its mode, and every
        # parameter and buffer (persistent or not) by name
        h.update(f"module:{type(obj).__module__}.{type(obj).__qualname__}:{obj.training}:{obj!r};".encode())
        for name, t in list(obj.named_parameters()) + list(obj.named_buffers()):
            h.update(f"{name}=".encode())
            _feed_torch(h, t, seen, depth + 1)
        return
    if isinstance(obj, torch.device | torch.dtype):
        h.update(f"{type(obj).__name__}:{obj};".encode())
        return
    raise _Opaque(type(obj).__name__)


def generator_digest(generator: Any) -> bytes:
    """A digest of a fitted generator's content, computed once per object.

    Two objects loaded from the same artifact have the same digest (every attribute is
    walked: arrays and tensors by bytes, torch modules by architecture and weights,
    configurations by fields), so their draws can be shared. A generator with an attribute
    whose content cannot be read (e.g. a function) gets a digest unique to the object
    instead (never re-used in this process): its draws are then re-used only by sources
    holding that same object.
    """
    with _LOCK:
        hit = _DIGESTS.get(id(generator))
        if hit is not None and hit[0]() is generator:
            return hit[1]
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{type(generator).__module__}.{type(generator).__qualname__};".encode())
    try:
        _feed(h, generator, set(), 0)
        d = b"c" + h.digest()
    except _Opaque:
        d = b"i" + next(_SERIAL).to_bytes(12, "big")
    try:
        key = id(generator)
        ref = weakref.ref(generator, lambda _r, key=key: _forget(key, _r))
    except TypeError:  # not weakly referenceable: nothing to remember it by
        return d if d[:1] == b"c" else b"i" + next(_SERIAL).to_bytes(12, "big")
    with _LOCK:
        _DIGESTS[key] = (ref, d)
    return d


def _forget(key: int, ref: weakref.ref[Any]) -> None:
    with _LOCK:
        hit = _DIGESTS.get(key)
        if hit is not None and hit[0] is ref:
            del _DIGESTS[key]


def _state_key(x: Any) -> Any:
    """A hashable, exact form of a bit-generator state (nested dicts, ints, arrays)."""
    if isinstance(x, dict):
        return tuple((k, _state_key(x[k])) for k in sorted(x))
    if isinstance(x, np.ndarray):
        return ("ndarray", x.dtype.str, x.shape, x.tobytes())
    if isinstance(x, list | tuple):
        return tuple(_state_key(v) for v in x)
    return x


class ScenarioMemo:
    """Scenario draws memoised by (generator, window, stream state, n); see the module docstring.

    Parameters
    ----------
    max_bytes : int
        Bytes of draws kept (least recently used dropped first); ``0`` keeps nothing.

    Attributes
    ----------
    hits, misses : int
        Draws answered from the memo / made by the predictive.
    nbytes : int
        Bytes of draws held now.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = self._check(max_bytes)
        self.hits = 0
        self.misses = 0
        self.nbytes = 0
        self._store: OrderedDict[bytes, tuple[np.ndarray, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _check(max_bytes: int) -> int:
        if isinstance(max_bytes, bool) or int(max_bytes) != max_bytes or max_bytes < 0:
            raise DataValidationError(f"max_bytes must be an integer >= 0, got {max_bytes!r}")
        return int(max_bytes)

    def __len__(self) -> int:
        return len(self._store)

    def __repr__(self) -> str:
        return (
            f"ScenarioMemo({len(self)} draws, {self.nbytes / 2**20:.1f}/{self.max_bytes / 2**20:.0f} MiB, "
            f"hits={self.hits}, misses={self.misses})"
        )

    def resize(self, max_bytes: int) -> None:
        """Change the bound (dropping the oldest entries beyond it)."""
        with self._lock:
            self.max_bytes = self._check(max_bytes)
            self._trim()

    def clear(self) -> None:
        """Drop every entry and zero the counters."""
        with self._lock:
            self._store.clear()
            self.nbytes = self.hits = self.misses = 0

    def _trim(self) -> None:
        while self._store and self.nbytes > self.max_bytes:
            _, (a, _) = self._store.popitem(last=False)
            self.nbytes -= a.nbytes

    @staticmethod
    def key(generator: Any, window: np.ndarray, rng: np.random.Generator, n: int) -> bytes:
        """The memo key of drawing ``n`` scenarios for ``window`` with ``rng`` as it is now."""
        x = np.ascontiguousarray(window, dtype=np.float64)
        h = hashlib.blake2b(digest_size=24)
        h.update(generator_digest(generator))
        h.update(f"|{x.shape}|{int(n)}|{type(rng.bit_generator).__name__}|".encode())
        h.update(x.tobytes())
        h.update(repr(_state_key(rng.bit_generator.state)).encode())
        return h.digest()

    def draw(
        self,
        generator: Any,
        window: np.ndarray,
        rng: np.random.Generator,
        n: int,
        sample: Callable[[int, np.random.Generator], np.ndarray],
    ) -> np.ndarray:
        """``sample(n, rng)`` as float64, or the same draws from the memo (``rng`` then set to
        the state the draw left it in)."""
        if self.max_bytes == 0:
            return np.asarray(sample(n, rng), dtype=np.float64)
        k = self.key(generator, window, rng, n)
        with self._lock:
            hit = self._store.get(k)
            if hit is not None:
                self._store.move_to_end(k)
                self.hits += 1
        if hit is not None:
            draws, after = hit
            rng.bit_generator.state = after
            return draws.copy()
        seq = getattr(rng.bit_generator, "seed_seq", None)
        spawned = getattr(seq, "n_children_spawned", None)
        out = np.asarray(sample(n, rng), dtype=np.float64)
        with self._lock:
            self.misses += 1
            if getattr(seq, "n_children_spawned", None) == spawned and out.nbytes <= self.max_bytes and k not in self._store:
                self._store[k] = (out.copy(), rng.bit_generator.state)
                self.nbytes += out.nbytes
                self._trim()
        return out


_PROCESS = ScenarioMemo()


def process_memo() -> ScenarioMemo:
    """The process's memo, used by every :class:`GeneratorSource` that is not given one."""
    return _PROCESS


def set_process_memo(max_bytes: int) -> ScenarioMemo:
    """Resize the process's memo (``0`` turns it off and frees it); returns it."""
    _PROCESS.resize(max_bytes)
    return _PROCESS

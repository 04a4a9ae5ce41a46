"""The one way factorgym runs independent work on Ray: a local Ray by default, a cluster by
address, and the same results whatever the number of workers.

Two names:

- :func:`ray_session` opens Ray (quietly) for the length of a ``with`` block and shuts down
  only what it started: a Ray that is already initialised (by the caller, a test, a notebook)
  is used as it is and left running.
- :func:`map_tasks` runs ``fn(item)`` for every item and returns the results in the items'
  order. ``workers=1`` runs them one after the other in this process, without importing Ray;
  ``workers > 1`` runs them as Ray tasks, at most ``workers`` at a time. The results depend
  only on ``fn`` and the items, so a task must draw its randomness from its item (a seed or a
  ``SeedSequence`` in the item, never from which worker runs it): then one worker and eight
  give the same numbers.

Ray is imported only inside these functions (``ray`` is an optional dependency; ``workers=1``
never needs it). On a cluster every node needs factorgym installed at the same version.

Examples
--------
>>> map_tasks(abs, [-2, 3, -5])          # workers=1: sequential, no Ray
[2, 3, 5]
>>> with ray_session(num_cpus=2):          # doctest: +SKIP
...     map_tasks(abs, [-2, 3, -5], workers=2)
[2, 3, 5]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from factorgym.errors import FactorGymError

__all__ = ["map_tasks", "ray_session"]

T = TypeVar("T")
R = TypeVar("R")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:  # pragma: no cover - ray is installed in the dev environment
        raise FactorGymError(
            "parallel work on Ray needs the 'ray' package (pip install 'ray'); "
            "or run with workers=1"
        ) from e
    return ray


def _call(fn: Callable[[T], R], item: T) -> R:
    """``fn(item)``: the one Ray remote function (Ray wraps functions, not partials)."""
    return fn(item)


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """Ray, initialised for the length of the ``with`` block; yields the ``ray`` module.

    Parameters
    ----------
    address : str, optional
        A running cluster (``"ray://host:10001"``, ``"host:6379"`` or ``"auto"``). ``None``
        (default) starts a private local Ray on this machine.
    num_cpus : int, optional
        CPUs of the local Ray (default: Ray's choice, all cores). Ignored with ``address``:
        a cluster has its own.

    If Ray is already initialised it is used as it is and not shut down at the end; otherwise
    the session started here is shut down on exit (also on an exception). The dashboard is off
    and worker output is not forwarded to this process.
    """
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    if num_cpus is not None and int(num_cpus) < 1:
        raise FactorGymError(f"num_cpus must be at least 1, got {num_cpus!r}")
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        "configure_logging": True,
    }
    if address is not None:
        kwargs["address"] = str(address)
    elif num_cpus is not None:
        kwargs["num_cpus"] = int(num_cpus)
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError) as e:
        where = f"the Ray cluster at {address!r}" if address is not None else "a local Ray"
        raise FactorGymError(f"could not start {where}: {e}") from e
    try:
        yield ray
    finally:
        ray.shutdown()


def map_tasks(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int = 1,
    address: str | None = None,
    on_result: Callable[[int, R], None] | None = None,
    keep: bool = True,
) -> list[R]:
    """``[fn(item) for item in items]``, on up to ``workers`` Ray tasks at a time.

    Parameters
    ----------
    fn : callable
        A function of one item; with ``workers > 1`` it and the items are pickled (by
        cloudpickle) to the Ray workers, so it should be a module-level function or a
        ``functools.partial`` of one, and its results should be small-ish (they travel back).
    items : iterable
        The tasks' inputs.
    workers : int
        ``1`` (default): run sequentially in this process, no Ray. ``> 1``: run as Ray tasks
        (one CPU each), at most ``workers`` in flight, in a :func:`ray_session` (a Ray that is
        already running is used as it is; otherwise a local Ray with ``workers`` CPUs, or the
        cluster at ``address``).
    address : str, optional
        A Ray cluster for ``workers > 1`` (see :func:`ray_session`).
    on_result : callable, optional
        Called as ``on_result(index, result)`` for every result **in the items' order** (a
        result that finishes early waits for those before it), e.g. to write shards or advance
        a progress bar as work completes.
    keep : bool
        ``False``: do not keep the results (the list returned is empty), so large results
        handed to ``on_result`` are freed once it has seen them.

    Returns
    -------
    list
        The results, in the items' order (empty with ``keep=False``): the same for any
        ``workers`` when ``fn`` is deterministic in its item.

    An exception raised by ``fn`` is raised here: a :class:`FactorGymError` as itself (one
    line for the CLI), anything else as Ray's ``RayTaskError`` with the remote traceback (also
    an instance of the original class).
    """
    todo: Sequence[T] = list(items)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise FactorGymError(f"workers must be a whole number >= 1, got {workers!r}")
    results: list[R] = []
    if workers == 1:
        for i, item in enumerate(todo):
            r = fn(item)
            if on_result is not None:
                on_result(i, r)
            if keep:
                results.append(r)
        return results
    with ray_session(address=address, num_cpus=workers if address is None else None) as ray:
        remote = ray.remote(num_cpus=1, max_retries=0)(_call)
        pending: dict[int, Any] = {}
        done: dict[int, R] = {}
        nxt = 0  # next item to submit
        emit = 0  # next index to hand to on_result / results
        refs_to_index: dict[Any, int] = {}
        while emit < len(todo):
            while nxt < len(todo) and len(pending) < workers:
                ref = remote.remote(fn, todo[nxt])
                pending[nxt] = ref
                refs_to_index[ref] = nxt
                nxt += 1
            ready, _ = ray.wait(list(pending.values()), num_returns=1)
            for ref in ready:
                i = refs_to_index.pop(ref)
                del pending[i]
                try:
                    done[i] = ray.get(ref)
                except ray.exceptions.RayTaskError as e:
                    if isinstance(e.cause, FactorGymError):
                        raise e.cause from None  # the user's one-line error, not a remote traceback
                    raise
            while emit in done:
                r = done.pop(emit)
                if on_result is not None:
                    on_result(emit, r)
                if keep:
                    results.append(r)
                emit += 1
    return results

"""HiGHS' console output: its once-per-process banner consumed silently, quiet instances.

:func:`silence_highs_banner` and :func:`quiet_highs` are used by the direct HiGHS path
(:mod:`~factorgym.agents.solvers.highs_cvar`) and before cvxpy's HiGHS interface runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Iterator

import highspy

__all__ = ["quiet_highs", "silence_highs_banner"]

_BANNER_LOCK = threading.Lock()
_banner_done = False


def _flush_c_stdio() -> None:
    """Flush the C library's stdout/stderr buffers (HiGHS writes with printf)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _fds_to_devnull() -> Iterator[None]:
    """Point file descriptors 1 and 2 at ``os.devnull`` for the duration (process-wide)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    _flush_c_stdio()
    saved: list[tuple[int, int]] = []
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    try:
        for fd in (1, 2):
            try:
                copy = os.dup(fd)
            except OSError:
                continue
            os.dup2(null, fd)
            saved.append((fd, copy))
        yield
    finally:
        _flush_c_stdio()
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        os.close(null)


def silence_highs_banner() -> None:
    """Consume HiGHS' once-per-process banner ("Running HiGHS ...") without printing it.

    HiGHS prints its banner from the constructor of the first ``Highs`` object in a process,
    before any option (``output_flag``) can be set, straight to file descriptor 1. This
    creates that first object with descriptors 1 and 2 pointed at ``os.devnull``; later
    instances (ours, or cvxpy's HiGHS interface) print nothing. Call it before any HiGHS use
    whose output the user should not see; it is a no-op after the first call.
    """
    global _banner_done
    if _banner_done:
        return
    with _BANNER_LOCK:
        if _banner_done:
            return
        with _fds_to_devnull():
            highspy.Highs()
        _banner_done = True


def quiet_highs() -> highspy.Highs:
    """A new ``highspy.Highs`` with its output off and no banner on the terminal."""
    silence_highs_banner()
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    return h

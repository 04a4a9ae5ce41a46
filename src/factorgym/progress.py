"""The one progress display of factorgym, for every long job (fits, evaluations, backtests,
RL training, stress sets).

In a terminal it is a rich bar (description, bar, done/total, rate, elapsed, remaining). Where
the output is not a terminal (a CI log, ``| tee``), rich draws nothing until the end, so the
same object prints a plain line at most every ``every`` seconds instead, with the stage, the
count, the rate and the time left::

    evaluating neuralfactors on test: 120/1006 (12%), 3.9/s, 0:00:31 elapsed, about 0:03:48 left

A long job is never silent. Disabled, it does nothing.

Examples
--------
>>> with Progress(100, "fit", enabled=False) as bar:
...     for _ in range(100):
...         bar.advance()
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console

__all__ = ["Progress"]


def _clock(seconds: float) -> str:
    s = int(max(seconds, 0.0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _rate(done: float, seconds: float) -> str:
    """Units per second (or per minute when slow), e.g. ``3.9/s``, ``12/min``."""
    if seconds <= 0.0 or done <= 0:
        return "-/s"
    r = done / seconds
    if r >= 1.0:
        return f"{r:,.0f}/s" if r >= 100 else f"{r:.1f}/s"
    return f"{r * 60:.1f}/min"


class Progress:
    """A progress display used as a context manager.

    Parameters
    ----------
    total : int
        Units of work (days, steps, scenarios).
    label : str
        What is being done; :meth:`describe` changes it.
    enabled : bool
        ``False``: a silent no-op with the same methods.
    console : rich.console.Console, optional
        Where to draw (default: a new console on standard output).
    every : float
        Seconds between plain lines when the output is not a terminal.
    transient : bool
        Remove the bar when done (terminal only).
    """

    def __init__(
        self,
        total: int,
        label: str,
        *,
        enabled: bool = True,
        console: Console | None = None,
        every: float = 10.0,
        transient: bool = False,
    ) -> None:
        self.total = max(int(total), 0)
        self.label = str(label)
        self.enabled = bool(enabled)
        self.console = console
        self.every = float(every)
        self.transient = bool(transient)
        self.completed = 0
        self._bar = None
        self._task = None
        self._t0 = 0.0
        self._last = 0.0
        self._shown = -1  # the count the last plain line showed

    # ------------------------------------------------------------------ context
    def __enter__(self) -> Progress:
        if not self.enabled:
            return self
        console = self.console if self.console is not None else Console()
        self.console = console
        self._t0 = self._last = time.perf_counter()
        if console.is_terminal:
            from rich import progress as rp

            class _RateColumn(rp.ProgressColumn):
                def render(self, task: rp.Task) -> str:
                    return _rate(task.completed, task.elapsed or 0.0)

            self._bar = rp.Progress(
                rp.TextColumn("{task.description}"), rp.BarColumn(), rp.MofNCompleteColumn(), _RateColumn(),
                rp.TimeElapsedColumn(), rp.TimeRemainingColumn(), console=console, transient=self.transient,
            )  # fmt: skip
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total)
        else:
            self._line(started=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.__exit__(*exc)  # type: ignore[arg-type]
            self._bar = None
        elif exc[0] is None and self._shown != self.completed:
            self._line(final=True)

    # ------------------------------------------------------------------ updates
    def advance(self, n: int = 1) -> None:
        """Mark ``n`` more units done."""
        self.update(self.completed + int(n))

    def update(self, completed: int) -> None:
        """Set the number of units done."""
        self.completed = min(max(int(completed), 0), self.total) if self.total else int(completed)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=self.completed)  # type: ignore[arg-type]
        elif time.perf_counter() - self._last >= self.every:
            self._line()

    def describe(self, label: str) -> None:
        """Change the label (e.g. the agent or stage being run)."""
        self.label = str(label)
        if self._bar is not None:
            self._bar.update(self._task, description=self.label)  # type: ignore[arg-type]

    def print(self, text: str) -> None:
        """Print a line above the bar (or in sequence with the plain lines)."""
        if self.enabled and self.console is not None:
            self.console.print(text, highlight=False)

    # ------------------------------------------------------------------ plain output
    def _line(self, *, started: bool = False, final: bool = False) -> None:
        now = time.perf_counter()
        self._last = now
        self._shown = -1 if started else self.completed
        elapsed = now - self._t0
        if started:
            text = f"{self.label}: 0/{self.total}"
        else:
            pct = 100.0 * self.completed / self.total if self.total else 100.0
            text = f"{self.label}: {self.completed}/{self.total} ({pct:.0f}%), {_rate(self.completed, elapsed)}, {_clock(elapsed)} elapsed"
            if not final and 0 < self.completed < self.total:
                text += f", about {_clock(elapsed * (self.total - self.completed) / self.completed)} left"
        out: TextIO = self.console.file if self.console is not None else sys.stdout
        out.write(text + "\n")
        out.flush()

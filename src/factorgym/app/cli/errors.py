"""How the command line ends: every user error -- a
:class:`~factorgym.errors.FactorGymError`, a missing or unreadable file, a bad option or
command -- as **one line on stderr and exit status 2**, never a traceback; anything else is
a bug and keeps its traceback.

Typer vendors click as ``typer._click`` (there is no standalone ``click`` package), so the
usage-error classes are imported from there; ``typer.Abort`` and ``typer.Exit`` are public.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

try:  # typer >= 0.20 vendors click as typer._click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer depends on click itself
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # type: ignore[no-redef]

from factorgym.app.cli.common import USAGE_ERROR
from factorgym.errors import FactorGymError

__all__ = ["run_app"]


def _one_line(message: str) -> str:
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    return "; ".join(lines) or "(no message)"


def _error(message: str) -> None:
    sys.stderr.write(f"error: {_one_line(message)}\n")
    sys.stderr.flush()


def _os_message(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc) or type(exc).__name__


def run_app(app: typer.Typer, args: Sequence[str]) -> int:
    """Run ``app`` on ``args``; return the exit status (see :func:`factorgym.app.cli.main`)."""
    try:
        rv = app(args=list(args), prog_name="factorgym", standalone_mode=False)
    except NoArgsIsHelpError:
        return USAGE_ERROR  # typer printed the help already
    except UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _error(f"{_one_line(exc.format_message())}{hint}")
        return USAGE_ERROR
    except ClickException as exc:
        _error(exc.format_message())
        return USAGE_ERROR
    except typer.Abort:
        _error("aborted")
        return 1
    except FactorGymError as exc:
        _error(str(exc))
        return USAGE_ERROR
    except OSError as exc:  # missing / unreadable / unwritable files
        _error(_os_message(exc))
        return USAGE_ERROR
    # with standalone_mode=False, typer returns the code of a typer.Exit (and 130 on Ctrl-C)
    if isinstance(rv, int) and not isinstance(rv, bool):
        return rv
    return 0

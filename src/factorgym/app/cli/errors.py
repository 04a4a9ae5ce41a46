"""How the command line ends: every user error -- a
:class:`~factorgym.errors.FactorGymError`, a missing or unreadable file, a bad option or
command -- as **one line on stderr and exit status 2**, never a traceback; anything else is
a bug and keeps its traceback.

Typer vendors click as ``typer._click`` (there is no standalone ``click`` package), so the
usage-error classes are imported from there; ``typer.Abort`` and ``typer.Exit`` are public.
"""

from __future__ import annotations

import re
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


#: File-reading options only ``factorgym data show`` has; the readers' messages name them.
_FILE_OPTIONS = ("--kind", "--layout", "--date-col", "--asset-col", "--value-col", "--date-format", "--exog", "--static")
_FILE_HINT = re.compile(r" \((--(?:kind|layout|date-col|asset-col|value-col|date-format|exog|static))\)")


def _point_somewhere(message: str, args: list[str]) -> str:
    """A reader's hint to a file option, rewritten for commands that do not take it."""
    if args[:2] == ["data", "show"]:
        return message
    named = _FILE_HINT.findall(message)
    if "date_format" in message and "--date-format" not in named:
        named.append("--date-format")
    if not named:
        return message
    command = next((a for a in args if not a.startswith("-")), "this command")
    return (
        f"{_FILE_HINT.sub('', message)} ({' and '.join(named)}: only `factorgym data show FILE` takes "
        f"{'these options' if len(named) > 1 else 'this option'}; `factorgym {command}` reads a file as detected, so "
        "save it in a form that is detected: ISO dates (YYYY-MM-DD), a long file's value column named price or "
        "return (e.g. with factorgym.io.write_panel))"
    )


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
        _error(_point_somewhere(str(exc), list(args)))
        return USAGE_ERROR
    except OSError as exc:  # missing / unreadable / unwritable files
        _error(_os_message(exc))
        return USAGE_ERROR
    # with standalone_mode=False, typer returns the code of a typer.Exit (and 130 on Ctrl-C)
    if isinstance(rv, int) and not isinstance(rv, bool):
        return rv
    return 0

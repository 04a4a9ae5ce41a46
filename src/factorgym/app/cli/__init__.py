"""The ``factorgym`` command line: one module per command group.

``common``  the typer app, wide printing, the dataset argument and shared options
``errors``  how a run ends: every user error as one line on stderr and exit status 2
``data``    ``factorgym data show``
``fit``     ``factorgym fit``
``evaluate``  ``factorgym evaluate-generators``
``backtest``  ``factorgym backtest`` (:func:`~factorgym.app.cli.backtest.backtest_cli`)
``train_agent``  ``factorgym train-agent`` (:func:`~factorgym.app.cli.train_agent.train_agent_cli`)
``stress``  ``factorgym stress``
``demo``    ``factorgym demo``
``report``  ``factorgym report``

Every user error -- a :class:`~factorgym.errors.FactorGymError` (bad data, bad checkpoint,
infeasible constraints...), a missing or unreadable file, a bad option or command -- ends
the command with **one line on stderr and exit status 2**, never a traceback. Anything
else is a bug and keeps its traceback.

Units: options take costs in basis points and rates as annual figures (each option's
``--help`` says so); the command bodies convert them to the Python API's fractions and
daily rates.

Adding a command
----------------
Add a module that decorates one function and import it below; :func:`main` does the error
handling for every command::

    @app.command("fit")
    def fit(config: Path = typer.Argument(..., help="...")) -> None:
        '''Fit a generator.'''
        ...  # raise FactorGymError subclasses for user errors; return None

Group related commands under a sub-app as ``data`` does (``app.add_typer``). A command
sets a non-zero exit status with ``raise typer.Exit(code)``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from factorgym.app.cli.common import USAGE_ERROR, app, data_app, print_wide
from factorgym.app.cli.errors import run_app

__all__ = ["COMMAND_MODULES", "USAGE_ERROR", "app", "data_app", "main", "print_wide"]

#: The command modules, in the order ``factorgym --help`` lists their commands.
COMMAND_MODULES = ("data", "fit", "evaluate", "simulate", "backtest", "train_agent", "sim2real", "stress", "demo", "report")
for _name in COMMAND_MODULES:
    importlib.import_module(f"factorgym.app.cli.{_name}")  # registers its commands on ``app``


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (the console script exits with it).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        0 on success; 2 for every user error (printed as one ``error: ...`` line on
        stderr), and for a missing command (after printing the help); 1 when aborted;
        130 on Ctrl-C; or the code of a ``typer.Exit`` raised by a command.
    """
    return run_app(app, list(sys.argv[1:] if argv is None else argv))

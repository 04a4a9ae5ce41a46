"""The ``factorgym`` command line.

Every user error (a :class:`~factorgym.errors.FactorGymError`, a missing file) ends the
command with one clear line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from factorgym.errors import FactorGymError

app = typer.Typer(help="Trained generative models of stock returns as market simulators.", no_args_is_help=True)
data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)


def _load_panel(source: str):  # noqa: ANN202 - ReturnPanel, imported lazily
    from factorgym.data import load_dataset

    if source in ("sp500",):
        return load_dataset(source)
    from factorgym.io import read_panel

    return read_panel(Path(source))


@data_app.command("show")
def data_show(source: str = typer.Argument("sp500", help="Embedded dataset name (sp500) or a CSV/Parquet path.")) -> None:
    """Print dates, assets, missing values and per-asset statistics of a dataset."""
    from factorgym.reporting import panel_summary

    panel = _load_panel(source)
    console.print(panel_summary(panel))


def main() -> None:
    """Entry point: run the app, turning user errors into one line and exit status 2."""
    try:
        app(standalone_mode=False)
    except FactorGymError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(2)
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()

"""The parts every command shares: the typer app, wide printing, and the dataset argument
with its file options (resolved by :func:`factorgym.io.read_source`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console, RenderableType

if TYPE_CHECKING:
    from factorgym.data import ReturnPanel
    from factorgym.io import FileFormat

__all__ = [
    "USAGE_ERROR",
    "app",
    "data_app",
    "print_wide",
    "read_dataset_arg",
]

app = typer.Typer(
    help="Trained generative models of stock returns as market simulators.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
data_app = typer.Typer(help="Inspect datasets and data files.", no_args_is_help=True)
app.add_typer(data_app, name="data")

#: Exit status of every user error.
USAGE_ERROR = 2


def print_wide(renderable: RenderableType) -> None:
    """Print to stdout on a console wide enough that no table cell is wrapped or cut."""
    from factorgym.report.terminal import required_width

    probe = Console()
    Console(width=max(probe.width, required_width(renderable, probe))).print(renderable)


def echo_wide(line: str) -> None:
    """Print one line of text with :func:`print_wide`."""
    from rich.text import Text

    print_wide(Text(line))


def read_dataset_arg(
    source: str,
    *,
    kind: Literal["auto", "prices", "returns"] = "auto",
    layout: Literal["auto", "wide", "long"] = "auto",
    date_col: str | None = None,
    asset_col: str | None = None,
    value_col: str | None = None,
    exog: Sequence[str] = (),
    static: Sequence[str] = (),
    date_format: str | None = None,
) -> tuple[ReturnPanel, FileFormat | None]:
    """:func:`factorgym.io.read_source` with the file options named by their command-line flags
    in the error when they are given for an embedded dataset."""
    from factorgym.io import is_dataset_name, read_source

    file_opts = {
        "--kind": kind != "auto", "--layout": layout != "auto", "--date-col": date_col, "--asset-col": asset_col,
        "--value-col": value_col, "--exog": exog, "--static": static, "--date-format": date_format,
    }  # fmt: skip
    used = [k for k, v in file_opts.items() if v]
    if is_dataset_name(source) and used:
        raise typer.BadParameter(f"{', '.join(used)} appl{'y' if len(used) > 1 else 'ies'} to data files, not to the embedded dataset {source!r}")
    return read_source(
        source, kind=kind, layout=layout, date_col=date_col, asset_col=asset_col, value_col=value_col,
        exog_cols=tuple(exog), static_cols=tuple(static), date_format=date_format,
    )  # fmt: skip


# ---------------------------------------------------------------------------- shared options
SourceArg = Annotated[
    str,
    typer.Argument(help="An embedded dataset name (sp500) or the path of a CSV/Parquet file (.csv, .csv.gz, .parquet)."),
]
DatasetOpt = Annotated[str, typer.Option("--dataset", help="Embedded dataset name (sp500) or CSV/Parquet path.")]
KindOpt = Annotated[
    Literal["auto", "prices", "returns"],
    typer.Option("--kind", help="Whether a file holds prices or simple returns (auto: detect, or fail if unclear)."),
]
LayoutOpt = Annotated[
    Literal["auto", "wide", "long"],
    typer.Option("--layout", help="wide: date + one column per asset; long: date, asset, value rows (auto: detect)."),
]
DateColOpt = Annotated[str | None, typer.Option("--date-col", help="Date column of a file (default: found by name).")]
AssetColOpt = Annotated[str | None, typer.Option("--asset-col", help="Asset column of a long file.")]
ValueColOpt = Annotated[str | None, typer.Option("--value-col", help="Price/return column of a long file.")]
ExogOpt = Annotated[
    list[str] | None,
    typer.Option("--exog", help="A column (wide) or asset (long) to read as an exogenous series, e.g. an index. Repeatable."),
]
StaticOpt = Annotated[
    list[str] | None,
    typer.Option("--static", help="A per-asset attribute column of a long file, e.g. sector. Repeatable."),
]
DateFormatOpt = Annotated[
    str | None, typer.Option("--date-format", help="strptime format of non-ISO dates, e.g. %d/%m/%Y.")
]
BuyBpsOpt = Annotated[
    float, typer.Option("--buy-bps", help="Proportional cost of buys in basis points of the value traded (7.5 bps = 0.00075).")
]
SellBpsOpt = Annotated[
    float, typer.Option("--sell-bps", help="Proportional cost of sells in basis points of the value traded (12.5 bps = 0.00125).")
]

"""``factorgym data``: inspect datasets and data files."""

from __future__ import annotations

from rich.text import Text

from factorgym.app.cli.common import (
    AssetColOpt,
    DateColOpt,
    DateFormatOpt,
    ExogOpt,
    KindOpt,
    LayoutOpt,
    SourceArg,
    StaticOpt,
    ValueColOpt,
    data_app,
    print_wide,
    read_dataset_arg,
)

__all__ = ["data_show"]


@data_app.command("show")
def data_show(
    source: SourceArg = "sp500",
    kind: KindOpt = "auto",
    layout: LayoutOpt = "auto",
    date_col: DateColOpt = None,
    asset_col: AssetColOpt = None,
    value_col: ValueColOpt = None,
    exog: ExogOpt = None,
    static: StaticOpt = None,
    date_format: DateFormatOpt = None,
) -> None:
    """Print dates, assets, missing values, exogenous series and per-asset statistics."""
    from factorgym.report.terminal import panel_report

    panel, fmt = read_dataset_arg(
        source, kind=kind, layout=layout, date_col=date_col, asset_col=asset_col, value_col=value_col,
        exog=exog or (), static=static or (), date_format=date_format,
    )  # fmt: skip
    if fmt is not None:
        print_wide(Text(f"read {fmt.describe()}\n"))
    print_wide(panel_report(panel))
    from factorgym.data import dataset_caveats

    for line in dataset_caveats(panel):
        print_wide(Text(f"caveat: {line}"))

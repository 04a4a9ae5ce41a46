"""``factorgym report RUN_DIR``: rebuild a report from the results a run saved (nothing is recomputed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from factorgym.app.cli.common import app, echo_wide

__all__ = ["report", "rebuild_report"]


def rebuild_report(run_dir: Path, out: Path | None = None) -> list[Path]:
    """Rewrite the report(s) of ``run_dir`` from its saved files; returns the pages written.

    A backtest folder (``backtest.json``) gets its ``report.html``; a demo folder (``demo.json``
    or the demo's stage folders) gets its ``report.html`` and, when it holds a backtest, the
    backtest's own page too.

    Raises
    ------
    DataValidationError
        When ``run_dir`` is neither a backtest nor a demo folder.
    """
    from factorgym.errors import DataValidationError

    root = Path(run_dir)
    if not root.is_dir():
        raise DataValidationError(f"run folder {root} does not exist")
    if (root / "backtest.json").is_file():
        from factorgym.app.backtest.report import report_from_folder

        return [report_from_folder(root).write(out or root / "report.html")]
    demo_parts = ("evaluation/generator_reports.csv", "backtest/backtest.json", "stress/loss_summary.csv")
    if (root / "demo.json").is_file() or any((root / p).is_file() for p in demo_parts):
        from factorgym.app.backtest.report import report_from_folder
        from factorgym.app.demo import write_demo_report

        written = []
        if (root / "backtest" / "backtest.json").is_file():
            written.append(report_from_folder(root / "backtest").write(root / "backtest" / "report.html"))
        page = write_demo_report(root)
        if out is not None and Path(out) != page:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            page = Path(page.replace(out))
        return [page, *written]
    raise DataValidationError(
        f"{root} is neither a backtest folder (no backtest.json) nor a demo folder "
        "(no demo.json, evaluation/, backtest/ or stress/ results)"
    )


@app.command("report")
def report(
    run_dir: Annotated[Path, typer.Argument(help="A demo output folder (e.g. runs/demo) or a backtest folder (with backtest.json).")],
    out: Annotated[Path | None, typer.Option("--out", help="Where to write the page (default RUN_DIR/report.html).")] = None,
) -> None:
    """Rebuild report.html from the results saved in RUN_DIR, without recomputing anything."""
    for page in rebuild_report(run_dir, out):
        echo_wide(f"report: {page}")

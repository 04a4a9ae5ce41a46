"""HTML report builder: escaped tables, embedded PNG figures, atomic writes, no pyplot."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from factorgym.errors import DataValidationError
from factorgym.report import (
    PNG_SIGNATURE,
    Report,
    bar_figure,
    calibration_figure,
    distribution_figure,
    equity_figure,
    figure_to_png,
    format_table,
    new_figure,
    weights_figure,
)

IDX = pd.bdate_range("2019-01-01", periods=60)


def _wealth() -> pd.DataFrame:
    r = np.random.default_rng(0).normal(3e-4, 0.01, (60, 3))
    return pd.DataFrame(np.cumprod(1.0 + r, axis=0), index=IDX, columns=["mv", "1/N", "SP500"])


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_report_has_escaped_tables_sections_notes_and_png_figures(tmp_path: Path) -> None:
    df = pd.DataFrame({"Sharpe": [0.5, np.nan], "name": ["<script>x</script>", "a & b"]}, index=["mv", "cvar"])
    rep = (
        Report("Backtest <1>", subtitle="sp500 & more")
        .add_section("Real path")
        .add_text("first paragraph with `code`\n\nsecond <b>paragraph</b>")
        .add_table(df, "Metrics <all>", formats={"Sharpe": ".2f"})
        .add_figure(equity_figure(_wealth(), benchmark="SP500"), "wealth")
        .add_section("Notes", level=3)
        .add_note("costs are <settled> pro rata")
        .add_list(["one", "two < three"])
    )
    assert rep.n_tables == 1 and rep.n_figures == 1
    path = rep.write(tmp_path / "sub" / "report.html", generated="now")
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>" not in html
    assert "Backtest &lt;1&gt;" in html and "a &amp; b" in html and "Metrics &lt;all&gt;" in html
    assert "<b>paragraph" not in html and "<code>code</code>" in html
    assert ">0.50<" in html and ">N/A<" in html  # per-column format; NaN shown as N/A
    assert html.count("<table") == 1 and 'id="real-path"' in html and 'href="#notes"' in html
    imgs = _images(html)
    assert len(imgs) == 1 and imgs[0][:8] == PNG_SIGNATURE
    assert "generated now" in html


def test_every_plot_helper_renders_a_png() -> None:
    w = pd.DataFrame(np.random.default_rng(1).dirichlet(np.ones(6), 60), index=IDX, columns=[f"A{i}" for i in range(5)] + ["cash"])
    ls = w.copy()
    ls["A0"] -= 0.5
    ls["cash"] += 0.5
    figs = [
        equity_figure(_wealth(), benchmark=["SP500"]),
        weights_figure(w, title="w", max_series=4),
        weights_figure(ls),  # long/short: lines
        distribution_figure({"a": np.random.default_rng(2).normal(size=40), "b": [np.nan, np.nan]}, real={"a": 0.2, "b": 1.0}, reference=0.0),
        bar_figure(pd.DataFrame({"val": [1.0, 2.0], "test": [1.5, np.nan]}, index=["gaussian", "neuralfactors"]), ylabel="NLL"),
        bar_figure(pd.Series({"a": 1.0, "b": 2.0}), horizontal=True),
        calibration_figure(np.linspace(0.05, 0.95, 19), {"m": np.linspace(0.0, 1.0, 19)}),
    ]
    for f in figs:
        assert isinstance(f, Figure)
        png = figure_to_png(f, dpi=50)
        assert png[:8] == PNG_SIGNATURE and len(png) > 1000
    # "other" collects the smallest assets beyond max_series
    labels = [t.get_text() for t in figs[1].axes[0].get_legend().get_texts()]
    assert labels[-2:] == ["other", "cash"] and len(labels) == 4


def test_report_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "report.html"
    Report("first").write(path)
    before = path.read_text()

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        Report("second").add_text("new").write(path)
    assert path.read_text() == before  # the old report is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temporary left behind


def test_format_table_and_input_errors() -> None:
    df = pd.DataFrame({"x": [1.23456, np.inf], "n": [1, 2], "flag": [True, False]}, index=pd.Index(["a", "b"], name="k"))
    t = format_table(df, ".3g", {"x": ".1%"})
    assert t.loc["a", "x"] == "123.5%" and t.loc["b", "x"] == "inf" and t.loc["b", "n"] == "2" and t.loc["a", "flag"] == "True"
    with pytest.raises(DataValidationError):
        format_table(df, formats={"missing": ".2f"})
    with pytest.raises(DataValidationError):
        Report("x").add_image(b"not a png")
    with pytest.raises(DataValidationError):
        Report("x").add_section("x", level=4)
    with pytest.raises(DataValidationError):
        equity_figure(_wealth(), benchmark="nope")
    with pytest.raises(DataValidationError):
        figure_to_png("fig")  # type: ignore[arg-type]
    fig, ax = new_figure(3, 2)
    ax.plot([0, 1])
    assert Report("x").add_figure(fig).n_figures == 1


def test_report_never_imports_pyplot() -> None:
    code = (
        "import sys, numpy as np, pandas as pd\n"
        "from factorgym.report import *\n"
        "idx = pd.bdate_range('2020-01-01', periods=30)\n"
        "w = pd.DataFrame(np.ones((30, 2)), index=idx, columns=['a', 'b'])\n"
        "r = Report('x').add_figure(equity_figure(w)).add_figure(weights_figure(w))\n"
        "r.add_figure(distribution_figure({'a': np.arange(10.0)}, real={'a': 3.0}))\n"
        "r.add_figure(bar_figure(pd.Series({'a': 1.0}))).add_figure(calibration_figure([0.5], {'m': [0.4]}))\n"
        "r.to_html()\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

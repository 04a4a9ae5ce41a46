"""HTML report builder: escaped tables with human column names, interactive plotly figures with
plotly.js embedded once, atomic writes; and the plain progress line."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from rich.console import Console

from factorgym.errors import DataValidationError
from factorgym.progress import Progress
from factorgym.report import (
    Report,
    bar_figure,
    calibration_figure,
    column_spec,
    distribution_figure,
    dot_figure,
    equity_figure,
    format_table,
    humanize,
    new_figure,
    settings_table,
    weights_figure,
)
from factorgym.report.tables import format_cell, table_html

IDX = pd.bdate_range("2019-01-01", periods=60)


def _wealth() -> pd.DataFrame:
    r = np.random.default_rng(0).normal(3e-4, 0.01, (60, 3))
    return pd.DataFrame(np.cumprod(1.0 + r, axis=0), index=IDX, columns=["mv", "1/N", "SP500"])


def _figures(html: str) -> list[dict]:
    return [json.loads(m) for m in re.findall(r'<script type="application/json" id="fig-\d+-data">(.*?)</script>', html, re.S)]


def test_report_has_escaped_tables_sections_notes_and_interactive_figures(tmp_path: Path) -> None:
    df = pd.DataFrame({"Sharpe": [0.5, np.nan], "name": ["<script>x</script>", "a & b"]}, index=["mv", "cvar"])
    rep = (
        Report("Backtest <1>", subtitle="sp500 & more")
        .add_section("Real path")
        .add_text("first paragraph with `code`\n\nsecond <b>paragraph</b>")
        .add_table(df, "Metrics <all>", formats={"Sharpe": ".2f"}, how="one row per <agent>")
        .add_figure(equity_figure(_wealth(), benchmark="SP500"), "wealth", how="hover for values")
        .add_figure(dot_figure(pd.Series({"a<b": 1.0, "c": 2.0})))
        .add_section("Notes", level=3)
        .add_note("costs are <settled> pro rata")
        .add_list(["one", "two < three"])
    )
    assert rep.n_tables == 1 and rep.n_figures == 2
    path = rep.write(tmp_path / "sub" / "report.html", generated="now")
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    page = html.split("<footer>")[0]  # the page without plotly.js (whose code has "a<b" and more)
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x" not in page and "a<b" not in page
    assert "Backtest &lt;1&gt;" in html and "a &amp; b" in html and "Metrics &lt;all&gt;" in html
    assert "<b>paragraph" not in html and "<code>code</code>" in html
    assert ">0.50<" in html and ">N/A<" in html  # per-column format; NaN shown as N/A
    assert html.count("<table") == 1 and 'id="real-path"' in html and 'href="#notes"' in html
    assert html.count("How to read:") == 2 and "one row per &lt;agent&gt;" in html
    # plotly.js is embedded once (offline, one file) and draws both figures from their JSON
    assert html.count("<script>") == 2 and "Plotly.newPlot" in html
    assert 'src="http' not in html and html.count('class="plot"') == 2
    figs = _figures(html)
    assert len(figs) == 2 and figs[0]["data"][0]["name"] == "mv" and figs[1]["data"][0]["y"] == ["a<b", "c"]
    assert "generated now" in html


def test_a_report_without_figures_has_no_plotly() -> None:
    html = Report("x").add_text("y").to_html()
    assert "<script>" not in html


def test_every_plot_helper_returns_an_interactive_figure() -> None:
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
        dot_figure(pd.Series({"a": 1.0, "b": 2.0})),
        calibration_figure(np.linspace(0.05, 0.95, 19), {"m": np.linspace(0.0, 1.0, 19)}),
        new_figure("empty", rows=2),
    ]
    for f in figs:
        assert isinstance(f, go.Figure)
        json.loads(f.to_json())
    # "other" collects the smallest assets beyond max_series; the book is stacked (long-only)
    names = [t.name for t in figs[1].data]
    assert names[-2:] == ["other", "cash"] and len(names) == 4 and all(t.stackgroup == "w" for t in figs[1].data)
    assert all(t.stackgroup is None for t in figs[2].data)
    # equity: log wealth on top, drawdown in percent below; the index is dashed
    assert figs[0].layout.yaxis.type == "log" and figs[0].layout.yaxis2.tickformat == ".0%"
    assert [t.line.dash for t in figs[0].data if t.name == "SP500"] == ["dash", "dash"]


def test_scores_with_small_differences_get_a_zoomed_axis() -> None:
    """The NLL chart: 0.85 against 0.95 must not be drawn from zero, where they look equal."""
    fig = dot_figure(pd.DataFrame({"joint": [0.85, 0.95, 0.90]}, index=["nf", "lw", "garch"]))
    lo, hi = fig.layout.xaxis.range
    assert 0.5 < lo < 0.85 and 0.95 < hi < 1.0
    assert (hi - lo) < 0.5 * 0.95  # the spread fills most of the axis
    # error bars widen the range; a large spread keeps zero
    lo2, _ = dot_figure(pd.Series({"a": 0.85, "b": 0.95}), errors=pd.Series({"a": 0.1, "b": 0.1})).layout.xaxis.range
    assert lo2 < 0.75
    assert dot_figure(pd.Series({"a": 0.1, "b": 2.0})).layout.xaxis.range[0] <= 0.0


def test_code_column_names_get_labels_units_and_formats() -> None:
    assert column_spec("sharpe_synthetic_median") == ("Sharpe (ann.) — synthetic median", ".2f")
    assert column_spec("annualised_return_real") == ("Ann. return — real path", ".1%")
    assert column_spec("prob_drawdown_at_least_realised").fmt == ".1%"
    assert column_spec("max_drawdown_p05").label.startswith("Max drawdown")
    assert column_spec("sharpe_percentile").fmt == ".0%"
    assert column_spec("something_else") == ("something_else", ".4g")
    df = pd.DataFrame({"annualised_return": [0.04654], "sharpe": [0.8198], "annualised_costs": [0.0006521], "n_paths": [6521.0], "other": [1.23456]})
    human, fmts = humanize(df)
    text = format_table(human, ".4g", fmts)
    assert list(text.iloc[0]) == ["4.7%", "0.82", "6.5 bps", "6,521", "1.235"]
    assert format_cell(-1e-9, ".1%") == "0.0%" and format_cell(True, "yesno") == "yes"
    # a MultiIndex gets one header column per level, not a tuple
    mi = pd.DataFrame({"ES95": [0.014]}, index=pd.MultiIndex.from_tuples([("shock", "1/N")], names=["scenario set", "portfolio"]))
    html = Report("x").add_table(mi, human=True).to_html()
    assert "<th class=\"idx\">scenario set</th><th class=\"idx\">portfolio</th>" in html and "ES 95% (loss)" in html
    assert ">1.4%<" in html and "(&#x27;shock" not in html
    assert 'class="tablewrap"' in table_html(mi)  # every table scrolls inside its own box


def test_settings_are_a_readable_table_not_json() -> None:
    t = settings_table({"generators": {"neuralfactors": {"max_steps": 600}, "ledoit_wolf": {}}, "seed": 0, "gens": ("a", "b"), "n": 20000},
                       {"seed": "seed of every stage"})  # fmt: skip
    assert t.loc["generators", "value"] == "neuralfactors: max_steps = 600; ledoit_wolf: (none)"
    assert t.loc["gens", "value"] == "a, b" and t.loc["n", "value"] == "20 000" and t.loc["seed", "meaning"] == "seed of every stage"
    html = Report("x").add_settings({"a": {"b": 1}}).to_html()
    assert "{" not in html.split("<body>")[1].split("<footer>")[0]


def test_progress_prints_stage_count_rate_and_eta_in_a_non_terminal() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False)
    with Progress(40, "evaluating nf", console=console, every=0.0) as bar:
        for _ in range(40):
            bar.advance()
    lines = buf.getvalue().splitlines()
    assert lines[0] == "evaluating nf: 0/40"
    mid = lines[1]
    assert re.fullmatch(r"evaluating nf: 1/40 \(2%\), [\d,.]+/(s|min), \d:\d\d:\d\d elapsed, about \d:\d\d:\d\d left", mid), mid
    assert lines[-1].startswith("evaluating nf: 40/40 (100%)") and lines.count(lines[-1]) == 1  # the last count once


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
        Report("x").add_figure("not a figure")
    with pytest.raises(DataValidationError):
        Report("x").add_section("x", level=4)
    with pytest.raises(DataValidationError):
        equity_figure(_wealth(), benchmark="nope")
    with pytest.raises(DataValidationError):
        dot_figure(pd.Series(dtype=float))
    fig = new_figure("x")
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1]))
    assert Report("x").add_figure(fig).n_figures == 1

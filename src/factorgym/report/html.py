"""The :class:`Report` page builder: blocks in order, written as one self-contained HTML file.

Tables are rendered by :func:`factorgym.report.tables.table_html` (optionally with human
column names, :func:`factorgym.report.tables.humanize`); figures are plotly figures (see
:mod:`factorgym.report.figures`) stored as JSON in the page and drawn by plotly.js, which is
embedded once in the file: the page needs no network and can be mailed as one file. The
overview and an example are in the :mod:`factorgym.report` docstring.
"""

from __future__ import annotations

import datetime as _dt
import html
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from factorgym.artifacts import atomic_write_text
from factorgym.errors import DataValidationError
from factorgym.jsonable import slug
from factorgym.report.tables import humanize, settings_table, table_html

__all__ = [
    "Report",
]


@dataclass(frozen=True)
class _Block:
    kind: Literal["section", "text", "note", "table", "figure", "list", "how", "summary"]
    html: str
    #: a figure's plotly JSON (drawn when the page is written, with its id)
    figure: str | None = None


_CSS = """
*,*::before,*::after{box-sizing:border-box;}
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:#1d1d1f;max-width:1180px;margin:2rem auto;padding:0 1.2rem;line-height:1.45;overflow-wrap:anywhere;}
h1{font-size:1.7rem;margin-bottom:.2rem;} h2{font-size:1.3rem;margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;}
h3{font-size:1.1rem;margin-top:1.6rem;}
.meta{color:#666;font-size:.85rem;} nav{background:#f6f8fa;border:1px solid #e1e4e8;border-radius:6px;padding:.5rem 1rem;margin:1rem 0;font-size:.9rem;}
nav ul{margin:.2rem 0;padding-left:1.2rem;columns:2;} nav a{color:#0366d6;text-decoration:none;}
.note{background:#fff8e1;border-left:4px solid #f2b600;padding:.5rem .8rem;margin:.8rem 0;font-size:.92rem;}
.summary{background:#f3f8fd;border:1px solid #cfe0f2;border-radius:6px;padding:.6rem 1.1rem;margin:1rem 0;}
.summary h3{margin:.4rem 0 .2rem 0;font-size:1rem;} .summary ul{margin:.2rem 0 .6rem 0;padding-left:1.2rem;}
.summary li{margin:.25rem 0;}
.tablewrap{overflow-x:auto;max-width:100%;margin:.6rem 0 .3rem 0;}
table{border-collapse:collapse;font-size:.85rem;font-variant-numeric:tabular-nums;}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3rem 0;color:#333;white-space:normal;}
th,td{border-bottom:1px solid #e5e5e5;padding:.28rem .6rem;white-space:nowrap;overflow-wrap:normal;}
thead th{border-bottom:2px solid #bbb;background:#fafafa;vertical-align:bottom;white-space:normal;min-width:5.5rem;max-width:11rem;}
td.num{text-align:right;} th.idx{text-align:left;font-weight:600;}
tbody tr:nth-child(even){background:#fbfbfb;} tbody tr:hover{background:#f1f6fb;}
figure{margin:1rem 0 .4rem 0;} .plot{width:100%;min-height:200px;}
figcaption{font-size:.88rem;color:#444;margin-top:.3rem;}
p.how{font-size:.84rem;color:#555;margin:.1rem 0 1.4rem 0;} p.how strong{color:#333;}
p.text{margin:.5rem 0;} ul.list{margin:.4rem 0;}
code{font-size:.85em;background:#f3f3f3;padding:0 .2em;border-radius:3px;}
footer{margin-top:3rem;color:#888;font-size:.8rem;border-top:1px solid #eee;padding-top:.5rem;}
"""

#: Draws every figure from its JSON once plotly.js is loaded (responsive: follows the page width).
_DRAW = """
document.querySelectorAll("div.plot[data-fig]").forEach(function(div){
  var f = JSON.parse(document.getElementById(div.dataset.fig).textContent);
  Plotly.newPlot(div, f.data, f.layout, {responsive: true, displaylogo: false});
});
"""


def _text_html(text: str) -> str:
    """Escaped text; blank lines split paragraphs, ``code`` spans become <code>."""
    esc = html.escape(str(text))
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", esc)


class Report:
    """A self-contained HTML report built block by block.

    Parameters
    ----------
    title : str
    subtitle : str, optional
        A line under the title (e.g. the data and period).

    Notes
    -----
    Every ``add_*`` method returns the report, so calls chain. Text and table cells are
    HTML-escaped; backquoted spans in text are shown as code. Figures are serialised to JSON
    when added (the ``Figure`` can be discarded afterwards).
    """

    def __init__(self, title: str, *, subtitle: str | None = None) -> None:
        self.title = str(title)
        self.subtitle = subtitle
        self._blocks: list[_Block] = []
        self._sections: list[tuple[int, str, str]] = []
        self._ids: set[str] = set()
        self._n_tables = 0
        self._n_figures = 0

    # ------------------------------------------------------------------ blocks
    def add_section(self, title: str, level: int = 2) -> Report:
        """A heading (``level`` 2 for sections, 3 for subsections), listed in the contents."""
        if level not in (2, 3):
            raise DataValidationError(f"section level must be 2 or 3, got {level}")
        # the same ids as ever: lower-case ASCII letters and digits, other runs as "-"
        sid = slug(str(title).lower(), self._ids, keep="", sep="-", default="section")
        self._sections.append((level, str(title), sid))
        self._blocks.append(_Block("section", f'<h{level} id="{sid}">{html.escape(str(title))}</h{level}>'))
        return self

    def include(self, other: Report, title: str | None = None) -> Report:
        """Append ``other``'s blocks under a new section; its sections become subsections."""
        self.add_section(title or other.title, 2)
        if other.subtitle:
            self.add_text(other.subtitle)
        sections = iter(other._sections)
        for block in other._blocks:
            if block.kind == "section":
                _, text, _ = next(sections)
                self.add_section(text, 3)
                continue
            self._blocks.append(block)
            self._n_tables += block.kind == "table"
            self._n_figures += block.kind == "figure"
        return self

    def add_text(self, text: str) -> Report:
        """Paragraph(s) of plain text (blank lines separate paragraphs)."""
        paras = [p.strip() for p in re.split(r"\n\s*\n", str(text)) if p.strip()]
        self._blocks.append(_Block("text", "\n".join(f'<p class="text">{_text_html(p)}</p>' for p in paras)))
        return self

    def add_note(self, text: str) -> Report:
        """A highlighted note (a caveat, an assumption, a warning)."""
        self._blocks.append(_Block("note", f'<div class="note">{_text_html(text)}</div>'))
        return self

    def add_list(self, items: Sequence[str]) -> Report:
        """A bulleted list of plain-text items."""
        lis = "".join(f"<li>{_text_html(i)}</li>" for i in items)
        self._blocks.append(_Block("list", f'<ul class="list">{lis}</ul>'))
        return self

    def add_how(self, text: str) -> Report:
        """A one-line "how to read" under the table or figure above it."""
        self._blocks.append(_Block("how", f'<p class="how"><strong>How to read:</strong> {_text_html(text)}</p>'))
        return self

    def add_summary(self, findings: Sequence[str], caveats: Sequence[str] = (), *, title: str = "Summary") -> Report:
        """A boxed summary section: the findings, then the caveats that apply."""
        self.add_section(title)
        parts = ["<h3>Findings</h3>", "<ul>" + "".join(f"<li>{_text_html(f)}</li>" for f in findings) + "</ul>"] if findings else []
        if caveats:
            parts += ["<h3>Caveats</h3>", "<ul>" + "".join(f"<li>{_text_html(c)}</li>" for c in caveats) + "</ul>"]
        self._blocks.append(_Block("summary", f'<div class="summary">{"".join(parts)}</div>'))
        return self

    def add_table(
        self,
        df: pd.DataFrame | pd.Series,
        caption: str | None = None,
        *,
        floatfmt: str = ".4g",
        formats: Mapping[str, str] | None = None,
        index: bool = True,
        human: bool = False,
        labels: Mapping[str, str] | None = None,
        how: str | None = None,
    ) -> Report:
        """A table from a DataFrame (or Series), every cell escaped; it scrolls inside its own
        box when wider than the page.

        Parameters
        ----------
        df : DataFrame or Series
        caption : str, optional
        floatfmt : str
            Default float format spec (NaN shows as ``N/A``).
        formats : mapping of column to format spec, optional
            Per-column specs, e.g. ``{"Ann. return": ".2%"}`` (after ``human`` renaming).
        index : bool
            Show the index as the first column.
        human : bool
            Rename code column names to labels with units and format them
            (:func:`factorgym.report.tables.humanize`).
        labels : mapping, optional
            With ``human``: labels overriding the catalogue's.
        how : str, optional
            A one-line "how to read" shown under the table.
        """
        frame = df.to_frame() if isinstance(df, pd.Series) else df
        if not isinstance(frame, pd.DataFrame):
            raise DataValidationError(f"add_table needs a DataFrame, got {type(df).__name__}")
        fmts = dict(formats or {})
        if human:
            frame, auto = humanize(frame, default=floatfmt, labels=labels)
            fmts = {**auto, **fmts}
        block = table_html(frame, caption, floatfmt=floatfmt, formats=fmts, index=index)
        self._n_tables += 1
        self._blocks.append(_Block("table", block))
        if how:
            self.add_how(how)
        return self

    def add_settings(self, settings: Mapping[str, Any], caption: str | None = None, *, descriptions: Mapping[str, str] | None = None, how: str | None = None) -> Report:
        """Settings as a readable two-column table (nested values spelled out, not JSON)."""
        return self.add_table(settings_table(settings, descriptions), caption, how=how)

    def add_figure(self, fig: Any, caption: str | None = None, *, how: str | None = None) -> Report:
        """An interactive plotly figure (zoom, hover, legend toggles), drawn by the embedded plotly.js.

        Parameters
        ----------
        fig : plotly.graph_objects.Figure
        caption : str, optional
        how : str, optional
            A one-line "how to read" shown under the figure.
        """
        import plotly.graph_objects as go

        if not isinstance(fig, go.Figure):
            raise DataValidationError(f"add_figure expects a plotly Figure, got {type(fig).__name__}")
        # "</" never appears inside the <script> holding the JSON (a label could contain "</script>")
        data = fig.to_json(validate=False).replace("</", "<\\/")
        cap = f"<figcaption>{_text_html(caption)}</figcaption>" if caption else ""
        self._n_figures += 1
        self._blocks.append(_Block("figure", cap, figure=data))
        if how:
            self.add_how(how)
        return self

    # ------------------------------------------------------------------ output
    @property
    def n_tables(self) -> int:
        """Tables added so far."""
        return self._n_tables

    @property
    def n_figures(self) -> int:
        """Figures added so far."""
        return self._n_figures

    def to_html(self, *, generated: str | None = None) -> str:
        """The whole report as one HTML document.

        Parameters
        ----------
        generated : str, optional
            The "generated" stamp in the footer (default: the current local time).
        """
        from factorgym import __version__

        stamp = generated if generated is not None else _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        toc = ""
        if len(self._sections) > 1:
            items = []
            for level, title, sid in self._sections:
                pad = ' style="margin-left:1.2rem"' if level == 3 else ""
                items.append(f'<li{pad}><a href="#{sid}">{html.escape(title)}</a></li>')
            toc = f"<nav><strong>Contents</strong><ul>{''.join(items)}</ul></nav>"
        sub = f'<p class="meta">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        parts = []
        n_fig = 0
        for b in self._blocks:
            if b.figure is None:
                parts.append(b.html)
                continue
            n_fig += 1
            fid = f"fig-{n_fig}"
            parts.append(
                f'<figure><div class="plot" id="{fid}" data-fig="{fid}-data"></div>{b.html}</figure>'
                f'<script type="application/json" id="{fid}-data">{b.figure}</script>'
            )
        body = "\n".join(parts)
        scripts = ""
        if n_fig:
            from plotly.offline import get_plotlyjs

            scripts = f"<script>{get_plotlyjs()}</script>\n<script>{_DRAW}</script>\n"
        return (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(self.title)}</h1>\n{sub}\n{toc}\n{body}\n"
            f"<footer>factorgym {html.escape(__version__)} &middot; generated {html.escape(stamp)}</footer>\n"
            f"{scripts}</body>\n</html>\n"
        )

    def write(self, path: str | os.PathLike[str], *, generated: str | None = None) -> Path:
        """Write the report atomically (temporary file + rename); returns the path."""
        p = Path(path)
        atomic_write_text(p, self.to_html(generated=generated))
        return p

    def __repr__(self) -> str:
        return f"<Report {self.title!r}: {len(self._sections)} sections, {self._n_tables} tables, {self._n_figures} figures>"

"""The :class:`Report` page builder: blocks in order, written as one self-contained HTML file.

Tables are rendered by :func:`factorgym.report.tables.table_html`, figures by
:func:`factorgym.report.figures.figure_to_png`; the overview and an example are in the
:mod:`factorgym.report` docstring.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from matplotlib.figure import Figure

from factorgym.artifacts import atomic_write_text
from factorgym.errors import DataValidationError
from factorgym.jsonable import slug
from factorgym.report.figures import PNG_SIGNATURE, figure_to_png
from factorgym.report.tables import table_html

__all__ = [
    "Report",
]

@dataclass(frozen=True)
class _Block:
    kind: Literal["section", "text", "note", "table", "figure", "list"]
    html: str


_CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:#1d1d1f;max-width:1180px;margin:2rem auto;padding:0 1.2rem;line-height:1.45;}
h1{font-size:1.7rem;margin-bottom:.2rem;} h2{font-size:1.3rem;margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;}
h3{font-size:1.1rem;margin-top:1.6rem;}
.meta{color:#666;font-size:.85rem;} nav{background:#f6f8fa;border:1px solid #e1e4e8;border-radius:6px;padding:.5rem 1rem;margin:1rem 0;font-size:.9rem;}
nav ul{margin:.2rem 0;padding-left:1.2rem;} nav a{color:#0366d6;text-decoration:none;}
.note{background:#fff8e1;border-left:4px solid #f2b600;padding:.5rem .8rem;margin:.8rem 0;font-size:.92rem;}
.tablewrap{overflow-x:auto;margin:.6rem 0 1.2rem 0;}
table{border-collapse:collapse;font-size:.85rem;font-variant-numeric:tabular-nums;}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3rem 0;color:#333;}
th,td{border-bottom:1px solid #e5e5e5;padding:.28rem .6rem;white-space:nowrap;}
thead th{border-bottom:2px solid #bbb;background:#fafafa;position:sticky;top:0;}
td.num{text-align:right;} th.idx{text-align:left;font-weight:600;}
tbody tr:nth-child(even){background:#fbfbfb;} tbody tr:hover{background:#f1f6fb;}
figure{margin:1rem 0 1.6rem 0;} figure img{max-width:100%;height:auto;border:1px solid #eee;}
figcaption{font-size:.88rem;color:#444;margin-top:.3rem;}
p.text{margin:.5rem 0;} ul.list{margin:.4rem 0;}
footer{margin-top:3rem;color:#888;font-size:.8rem;border-top:1px solid #eee;padding-top:.5rem;}
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
    dpi : int
        Resolution of embedded figures.

    Notes
    -----
    Every ``add_*`` method returns the report, so calls chain. Text and table cells are
    HTML-escaped; backquoted spans in text are shown as code. Figures are rendered to PNG
    when added (the ``Figure`` can be discarded afterwards).
    """

    def __init__(self, title: str, *, subtitle: str | None = None, dpi: int = 110) -> None:
        self.title = str(title)
        self.subtitle = subtitle
        self.dpi = int(dpi)
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

    def add_table(
        self,
        df: pd.DataFrame | pd.Series,
        caption: str | None = None,
        *,
        floatfmt: str = ".4g",
        formats: Mapping[str, str] | None = None,
        index: bool = True,
    ) -> Report:
        """A table from a DataFrame (or Series), every cell escaped.

        Parameters
        ----------
        df : DataFrame or Series
        caption : str, optional
        floatfmt : str
            Default float format spec (NaN shows as ``N/A``).
        formats : mapping of column to format spec, optional
            Per-column specs, e.g. ``{"Ann. return": ".2%"}``.
        index : bool
            Show the index as the first column.
        """
        frame = df.to_frame() if isinstance(df, pd.Series) else df
        if not isinstance(frame, pd.DataFrame):
            raise DataValidationError(f"add_table needs a DataFrame, got {type(df).__name__}")
        block = table_html(frame, caption, floatfmt=floatfmt, formats=formats, index=index)
        self._n_tables += 1
        self._blocks.append(_Block("table", block))
        return self

    def add_figure(self, fig: Figure, caption: str | None = None, *, dpi: int | None = None) -> Report:
        """A matplotlib figure, rendered now and embedded as a base64 PNG."""
        return self.add_image(figure_to_png(fig, dpi or self.dpi), caption, alt=caption or self._figure_alt(fig))

    def add_image(self, png: bytes, caption: str | None = None, *, alt: str = "figure") -> Report:
        """PNG bytes embedded as a base64 data URI."""
        if not bytes(png[:8]) == PNG_SIGNATURE:
            raise DataValidationError("add_image expects PNG bytes (bad signature)")
        b64 = base64.b64encode(png).decode("ascii")
        self._n_figures += 1
        cap = f"<figcaption>{_text_html(caption)}</figcaption>" if caption else ""
        self._blocks.append(
            _Block("figure", f'<figure><img alt="{html.escape(alt, quote=True)}" src="data:image/png;base64,{b64}">{cap}</figure>')
        )
        return self

    @staticmethod
    def _figure_alt(fig: Figure) -> str:
        titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
        return titles[0] if titles else "figure"

    # ------------------------------------------------------------------ output
    @property
    def n_tables(self) -> int:
        """Tables added so far."""
        return self._n_tables

    @property
    def n_figures(self) -> int:
        """Figures and images added so far."""
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
        body = "\n".join(b.html for b in self._blocks)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(self.title)}</h1>\n{sub}\n{toc}\n{body}\n"
            f"<footer>factorgym {html.escape(__version__)} &middot; generated {html.escape(stamp)}</footer>\n"
            "</body>\n</html>\n"
        )

    def write(self, path: str | os.PathLike[str], *, generated: str | None = None) -> Path:
        """Write the report atomically (temporary file + rename); returns the path."""
        p = Path(path)
        atomic_write_text(p, self.to_html(generated=generated))
        return p

    def __repr__(self) -> str:
        return f"<Report {self.title!r}: {len(self._sections)} sections, {self._n_tables} tables, {self._n_figures} figures>"

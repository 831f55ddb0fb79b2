"""One report, three forms: ``report.md`` + PNG figures beside it, and a self-contained ``report.html``.

``eda``, ``compare`` and ``show`` build a :class:`Report` block by block (headings, text, bullet lists,
tables from data frames, matplotlib figures) and call :meth:`Report.write` once. The HTML page embeds
every figure as a base64 ``data:`` URI and its CSS inline, so the single file opens in any browser from
disk, with no server and no network; the markdown refers to the PNG files next to it.

>>> import tempfile
>>> import pandas as pd
>>> with tempfile.TemporaryDirectory() as d:
...     r = Report("Demo", Path(d))
...     r.heading("Numbers")
...     r.table(pd.DataFrame({"name": ["a|b"], "count": [12345]}))
...     paths = r.write()
...     print(paths["markdown"].read_text().splitlines()[6:8])
['| name | count |', '| --- | ---: |']
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rsna_yolo.core.io import write_atomic, write_figure_atomic

FIGURE_DPI = 110
"""Resolution of saved PNGs: sharp on screen, small enough to embed a dozen figures in one HTML file."""

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1150px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #bbb; padding-bottom: .15em; margin-top: 1.8em; }
.scroll { overflow-x: auto; max-width: 100%; }  /* a wide table scrolls by itself, not the whole page */
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; vertical-align: top; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1em 0 1.6em; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; margin-top: .3em; }
.caption { color: #555; font-size: 0.9em; margin-bottom: .2em; }
.meta { color: #777; font-size: 0.85em; }
"""


def format_cell(value) -> str:
    """One table cell as text: thousands separators for integers, 4 significant digits for floats.

    Missing values (``None``, ``NaN``) become an empty cell; booleans ``yes``/``no``.

    >>> [format_cell(v) for v in (12345, 0.123456, 1234.5, float("nan"), True, "x", None)]
    ['12,345', '0.1235', '1,234', '', 'yes', 'x', '']
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return ""
        if v.is_integer() and abs(v) >= 1:
            return f"{int(v):,}"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.4g}"
    return str(value)


def _is_numeric_column(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _md_escape(text: str) -> str:
    """Keep a cell on one markdown table row: escape pipes, flatten newlines."""
    return text.replace("|", "\\|").replace("\n", " ")


@dataclass
class Report:
    """A report being built; figures are saved to ``out_dir`` as they are added.

    Blocks are ``(kind, payload)`` tuples, rendered by :func:`to_markdown` and :func:`to_html`.
    """

    title: str
    out_dir: Path
    blocks: list[tuple[str, object]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def heading(self, text: str, level: int = 2) -> None:
        """A section heading (``level`` 2 for sections, 3 for subsections)."""
        self.blocks.append(("heading", (level, text)))

    def text(self, text: str) -> None:
        """A paragraph of plain text."""
        self.blocks.append(("text", text))

    def bullets(self, items: Sequence[str]) -> None:
        """A bullet list; nothing is added for an empty list."""
        if items:
            self.blocks.append(("bullets", list(items)))

    def table(self, df: pd.DataFrame, caption: str | None = None, index: bool = False) -> None:
        """A table from a data frame (the index becomes the first column when ``index``; a plain
        0..n-1 index carries no information and is never shown, an unnamed one gets an empty header)."""
        plain = isinstance(df.index, pd.RangeIndex) and df.index.name is None
        frame = df.rename_axis(df.index.name or "").reset_index() if index and not plain else df
        self.blocks.append(("table", (caption, frame.copy())))

    def figure(self, fig: Figure, name: str, caption: str) -> Path:
        """Save ``fig`` as ``out_dir/<name>.png`` and add it; returns the PNG path."""
        path = self.out_dir / f"{name}.png"
        write_figure_atomic(fig, path, dpi=FIGURE_DPI, bbox_inches="tight", facecolor="white")
        self.figures.append(path)
        self.blocks.append(("figure", (path.name, caption)))
        return path

    def write(self) -> dict[str, Path]:
        """Write ``report.md`` and ``report.html`` into ``out_dir``; returns their paths and the figures'."""
        md = self.out_dir / "report.md"
        page = self.out_dir / "report.html"
        write_atomic(md, to_markdown(self.title, self.blocks))
        write_atomic(page, to_html(self.title, self.blocks, self.out_dir))
        return {"markdown": md, "html": page, **{p.stem: p for p in self.figures}}


def _table_markdown(frame: pd.DataFrame) -> list[str]:
    cols = [str(c) for c in frame.columns]
    align = ["---:" if _is_numeric_column(frame[c]) else "---" for c in frame.columns]
    lines = ["| " + " | ".join(_md_escape(c) for c in cols) + " |", "| " + " | ".join(align) + " |"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_md_escape(format_cell(v)) for v in row) + " |")
    return lines


def to_markdown(title: str, blocks: list[tuple[str, object]]) -> str:
    """Render blocks as GitHub-flavoured markdown; figures are linked by file name."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"# {title}", "", f"_Generated {stamp}._", ""]
    for kind, payload in blocks:
        if kind == "heading":
            level, text = payload
            out += ["#" * level + " " + text, ""]
        elif kind == "text":
            out += [payload, ""]
        elif kind == "bullets":
            out += [f"- {item}" for item in payload] + [""]
        elif kind == "table":
            caption, frame = payload
            if caption:
                out += [f"_{caption}_", ""]
            out += [*_table_markdown(frame), ""]
        elif kind == "figure":
            name, caption = payload
            out += [f"![{caption}]({name})", "", f"_{caption}_", ""]
    return "\n".join(out)


def _table_html(frame: pd.DataFrame) -> str:
    numeric = [_is_numeric_column(frame[c]) for c in frame.columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = "".join(
            ('<td class="num">' if num else "<td>") + html.escape(format_cell(v)) + "</td>"
            for v, num in zip(row, numeric, strict=True)
        )
        rows.append(f"<tr>{cells}</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def to_html(title: str, blocks: list[tuple[str, object]], figure_dir: Path) -> str:
    """Render blocks as one self-contained HTML page: CSS inline, each PNG embedded as base64."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [f"<h1>{html.escape(title)}</h1>", f'<p class="meta">Generated {stamp}.</p>']
    for kind, payload in blocks:
        if kind == "heading":
            level, text = payload
            body.append(f"<h{level}>{html.escape(text)}</h{level}>")
        elif kind == "text":
            body.append(f"<p>{html.escape(payload)}</p>")
        elif kind == "bullets":
            items = "".join(f"<li>{html.escape(item)}</li>" for item in payload)
            body.append(f"<ul>{items}</ul>")
        elif kind == "table":
            caption, frame = payload
            if caption:
                body.append(f'<p class="caption">{html.escape(caption)}</p>')
            body.append(_table_html(frame))
        elif kind == "figure":
            name, caption = payload
            data = base64.b64encode((Path(figure_dir) / name).read_bytes()).decode("ascii")
            alt, file = html.escape(caption, quote=True), html.escape(name, quote=True)
            body.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{alt}" data-file="{file}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )

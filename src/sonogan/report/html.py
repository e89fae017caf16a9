"""One self-contained HTML report: inline CSS, figures embedded as base64 data URIs.

The file makes no external requests, so it can be mailed or archived with a run.
Sections carry Markdown-ish text (paragraphs, ``- `` lists, ``### `` headings,
``**bold**``, ``*italic*``, `` `code` ``, ```-fenced ``<pre>`` blocks), tables (list of dict rows or a DataFrame)
and figure paths.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "report.html"
    >>> s = Section("Results", text="BOT F1 **improved**.", tables=[[{"Class": "bot", "F1": "0.865"}]])
    >>> render_report([s], out, "Demo").name
    'report.html'
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import pandas as pd

from sonogan.errors import SonoganInputError
from sonogan.runs import atomic_write_text

DEFAULT_METRICS = ("sensitivity", "specificity", "f1", "auc")
TOO_FEW = "too few to test"  # a point estimate whose class has too few cases for a CI or p-value
METRIC_LABELS = {"sensitivity": "Sensitivity", "specificity": "Specificity", "f1": "F1",
                 "auc": "AUC", "precision": "Precision (PPV)", "npv": "NPV"}


@dataclass
class Table:
    """A table with an optional caption; ``rows`` is a list of dicts or a DataFrame."""

    rows: Sequence[Mapping[str, Any]] | pd.DataFrame
    caption: str = ""


@dataclass
class FigureRef:
    """A figure file (PNG/JPEG/SVG) with an optional caption."""

    path: str | Path
    caption: str = ""


@dataclass
class Section:
    """One report section; ``tables`` items may be Table, DataFrame or list of dicts,
    ``figures`` items may be FigureRef, a path, or a (path, caption) tuple."""

    title: str
    text: str = ""
    tables: list[Any] = field(default_factory=list)
    figures: list[Any] = field(default_factory=list)


def as_table(item: Any) -> Table:
    """Normalise a table-like item to :class:`Table`."""
    return item if isinstance(item, Table) else Table(item)


def as_figure(item: Any) -> FigureRef:
    """Normalise a figure-like item to :class:`FigureRef`."""
    if isinstance(item, FigureRef):
        return item
    if isinstance(item, tuple):
        return FigureRef(item[0], item[1] if len(item) > 1 else "")
    return FigureRef(item)


def table_records(rows: Sequence[Mapping[str, Any]] | pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and string cells of a table (columns in first-seen order; missing cells empty)."""
    if isinstance(rows, pd.DataFrame):
        rows = rows.to_dict(orient="records")
    header: list[str] = []
    for row in rows:
        header.extend(str(k) for k in row if str(k) not in header)
    string_keyed = [{str(k): v for k, v in row.items()} for row in rows]
    body = [[_cell(row.get(h)) for h in header] for row in string_keyed]
    return header, body


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if value != value else f"{value:.3f}"  # NaN -> empty cell
    return str(value)


def format_ci(point: float, low: float, high: float, digits: int = 3, percent: bool = False) -> str:
    """'0.865 (0.801 to 0.912)'; with ``percent`` '86.5% (80.1 to 91.2)' ("to" keeps negative bounds readable); NaN -> 'n/a'."""
    if point != point:
        return "n/a"
    scale, unit, d = (100.0, "%", max(digits - 2, 0)) if percent else (1.0, "", digits)
    text = f"{point * scale:.{d}f}{unit}"
    if low == low and high == high:
        text += f" ({low * scale:.{d}f} to {high * scale:.{d}f})"
    return text


def metrics_table_rows(
    results: Mapping[str, Sequence[float]],
    class_names: Sequence[str],
    metrics: Sequence[str] = DEFAULT_METRICS,
    digits: int = 3,
    percent: bool = False,
    macro: bool = True,
    too_few: Collection[str] = (),
) -> list[dict[str, str]]:
    """Flagship Table 1 rows: one per class (plus 'Macro average'), cells 'point (low to high)'.

    ``results`` maps ``<metric>/<class>`` and ``macro_<metric>`` to ``(point, low, high)``
    as :func:`sonogan.evaluate.bootstrap_ci` returns; a bare float gives a cell without CI, and
    a key in ``too_few`` gives 'point (too few to test)'.
    """
    def cell(key: str) -> str:
        value = results.get(key)
        if value is None:
            return "n/a"
        if key in too_few:
            point = float(value if isinstance(value, (int, float)) else value[0])
            return f"{format_ci(point, float('nan'), float('nan'), digits, percent)} ({TOO_FEW})"
        if isinstance(value, (int, float)):
            return format_ci(float(value), float("nan"), float("nan"), digits, percent)
        return format_ci(float(value[0]), float(value[1]), float(value[2]), digits, percent)

    rows = [{"Class": cls, **{METRIC_LABELS.get(m, m): cell(f"{m}/{cls}") for m in metrics}}
            for cls in class_names]
    if macro:
        rows.append({"Class": "Macro average", **{METRIC_LABELS.get(m, m): cell(f"macro_{m}") for m in metrics}})
    return rows


def format_p(p: float) -> str:
    """A p-value as journals print it: '< 0.001' below 0.001, three decimals below 0.1 (so
    0.049 never rounds to 0.05), two above, '> 0.99' near one; NaN -> 'n/a'.

    >>> [format_p(p) for p in (0.0, 0.0004, 0.0123, 0.049, 0.2345, 0.999, float("nan"))]
    ['< 0.001', '< 0.001', '0.012', '0.049', '0.23', '> 0.99', 'n/a']
    """
    if p != p:
        return "n/a"
    if p < 0.001:
        return "< 0.001"
    if p > 0.99:
        return "> 0.99"
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def gain_table_rows(gains: Mapping[str, Sequence[float]], names: Sequence[str], digits: int = 3,
                    arm: str = "augmented", reference: str = "baseline",
                    too_few: Collection[str] = ()) -> list[dict[str, str]]:
    """Rows 'Metric | Gain (arm − reference) (95% CI) | p' from :func:`paired_bootstrap_gain` output;
    a metric in ``too_few`` shows its point gain and 'too few to test' instead of a CI and p."""
    rows = []
    for name in names:
        gain, low, high, p = (float(v) for v in gains[name][:4])
        tested = name not in too_few
        rows.append({"Metric": name, f"Gain ({arm} − {reference})": format_ci(gain, low, high, digits) if tested
                     else format_ci(gain, float("nan"), float("nan"), digits),
                     "p (two-sided)": format_p(p) if tested else TOO_FEW})
    return rows


def inline_markdown(text: str) -> str:
    """Escape HTML, then render **bold**, *italic* and `code`."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"(?<!\*)\*([^*]+)\*(?!\*)", r"<em>\1</em>", out)


def _blocks_to_html(text: str) -> list[str]:
    parts = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.rstrip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        if all(line.lstrip().startswith(("- ", "* ")) for line in lines):
            items = "".join(f"<li>{inline_markdown(line.lstrip()[2:])}</li>" for line in lines)
            parts.append(f"<ul>{items}</ul>")
        elif lines[0].startswith("#"):
            level = min(len(lines[0]) - len(lines[0].lstrip("#")) + 2, 6)
            parts.append(f"<h{level}>{inline_markdown(lines[0].lstrip('#').strip())}</h{level}>")
            if lines[1:]:
                parts.append(f"<p>{inline_markdown(' '.join(lines[1:]))}</p>")
        else:
            parts.append(f"<p>{inline_markdown(' '.join(lines))}</p>")
    return parts


FENCE = re.compile(r"^```[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def markdown_to_html(text: str) -> str:
    """Tiny Markdown subset (no markdown package is pinned): ```-fenced blocks become
    ``<pre>`` with their line breaks kept; other blocks split on blank lines.

    >>> print(markdown_to_html("Config:\\n\\n```yaml\\na: 1\\nb: 2\\n```"))
    <p>Config:</p>
    <pre><code>a: 1
    b: 2
    </code></pre>
    """
    parts, pos = [], 0
    for fence in FENCE.finditer(text):
        parts += _blocks_to_html(text[pos:fence.start()])
        parts.append(f"<pre><code>{html.escape(fence.group(1))}</code></pre>")
        pos = fence.end()
    return "\n".join(parts + _blocks_to_html(text[pos:]))


def table_html(table: Table) -> str:
    header, body = table_records(table.rows)
    caption = f"<caption>{inline_markdown(table.caption)}</caption>" if table.caption else ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return f'<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def embed_image(path: str | Path) -> str:
    """A ``data:`` URI holding the file's bytes, so the HTML needs no other file."""
    path = Path(path)
    if not path.is_file():
        raise SonoganInputError(path, "figure file not found", "create the figure before rendering the report")
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def figure_html(figure: FigureRef) -> str:
    alt = html.escape(figure.caption or Path(figure.path).name, quote=True)
    caption = f"<figcaption>{inline_markdown(figure.caption)}</figcaption>" if figure.caption else ""
    return f'<figure><img alt="{alt}" src="{embed_image(figure.path)}">{caption}</figure>'


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1000px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #345;padding-bottom:.2em}h2{color:#345;margin-top:2em}
nav{background:#f4f6f8;padding:.6em 1.2em;border-radius:6px}nav ol{margin:.3em 0}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}caption{text-align:left;font-weight:600;padding:.3em 0}
th,td{border:1px solid #ccd;padding:.3em .6em;text-align:left}th{background:#e9eef3}
tbody tr:nth-child(even){background:#f8f9fb}
figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}figcaption{font-size:.9em;color:#555}
code{background:#f0f0f0;padding:0 .2em;border-radius:3px}
pre{background:#f6f8fa;border:1px solid #dde;padding:.8em;overflow-x:auto;font-size:.85em;line-height:1.3}
pre code{background:none;padding:0}footer{margin-top:3em;font-size:.8em;color:#777}
"""


def _anchor(index: int, title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return f"s{index + 1}-{slug}" if slug else f"s{index + 1}"


def render_report(sections: Sequence[Section], path: str | Path, title: str, footer: str = "") -> Path:
    """Write ONE self-contained HTML file with a table of contents; returns its Path."""
    anchors = [_anchor(i, s.title) for i, s in enumerate(sections)]
    toc = "".join(f'<li><a href="#{a}">{html.escape(s.title)}</a></li>' for a, s in zip(anchors, sections))
    body = []
    for anchor, section in zip(anchors, sections):
        parts = [f'<section id="{anchor}"><h2>{html.escape(section.title)}</h2>']
        if section.text:
            parts.append(markdown_to_html(section.text))
        parts.extend(table_html(as_table(t)) for t in section.tables)
        parts.extend(figure_html(as_figure(f)) for f in section.figures)
        parts.append("</section>")
        body.append("\n".join(parts))
    foot = f"<footer>{inline_markdown(footer)}</footer>" if footer else ""
    document = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><nav><strong>Contents</strong><ol>{toc}</ol></nav>\n"
        + "\n".join(body) + f"{foot}</body></html>\n"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, document)  # a half-written report never appears under the final name
    return path

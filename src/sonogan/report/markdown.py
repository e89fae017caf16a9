"""The report's key tables as Markdown (for README snippets, PR comments, terminals).

Example:
    >>> print(markdown_table([{"Class": "bot", "F1": "0.865 (0.801-0.912)"}]))
    | Class | F1 |
    | --- | --- |
    | bot | 0.865 (0.801-0.912) |
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from sonogan.report.html import Section, as_figure, as_table, table_records
from sonogan.runs import atomic_write_text


def _escape(cell: str) -> str:
    # a literal pipe or newline would break the Markdown table grid
    return cell.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[Mapping[str, Any]] | pd.DataFrame, caption: str = "") -> str:
    """GitHub-flavoured pipe table; an optional caption goes above it in bold."""
    header, body = table_records(rows)
    if not header:
        return f"**{caption}**\n\n(empty table)" if caption else "(empty table)"
    lines = [f"**{caption}**", ""] if caption else []
    lines.append("| " + " | ".join(_escape(h) for h in header) + " |")
    lines.append("| " + " | ".join("---" for _ in header) + " |")
    lines.extend("| " + " | ".join(_escape(c) for c in row) + " |" for row in body)
    return "\n".join(lines)


def render_markdown_summary(
    sections: Sequence[Section],
    path: str | Path | None = None,
    title: str = "sonogan report",
) -> str:
    """Markdown text of the same sections as the HTML report; written to ``path`` if given.

    Figures become relative links (Markdown cannot embed them), relative to ``path``'s
    folder when possible.
    """
    out = [f"# {title}", ""]
    base = Path(path).resolve().parent if path is not None else None
    for section in sections:
        out += [f"## {section.title}", ""]
        if section.text:
            out += [section.text.strip(), ""]
        for item in section.tables:
            table = as_table(item)
            out += [markdown_table(table.rows, table.caption), ""]
        for item in section.figures:
            figure = as_figure(item)
            target = Path(figure.path)
            if base is not None:
                try:
                    target = target.resolve().relative_to(base)
                except ValueError:
                    pass
            out += [f"![{figure.caption or target.name}]({target.as_posix()})", ""]
    text = "\n".join(out).rstrip() + "\n"
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return text

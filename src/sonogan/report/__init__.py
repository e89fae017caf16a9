"""Report building blocks: figures from arrays, one self-contained HTML file, Markdown tables.

Example:
    >>> from sonogan.report import Section, format_p, metrics_table_rows
    >>> rows = metrics_table_rows({"f1/bot": (0.865, 0.801, 0.912)}, ["bot"], metrics=["f1"], macro=False)
    >>> rows[0]["F1"]
    '0.865 (0.801 to 0.912)'
    >>> format_p(0.0)
    '< 0.001'

The figures (matplotlib, scikit-learn) are imported from ``sonogan.report.figures`` by whoever
draws: keeping them out of this package's import lets the web app, which renders only HTML,
start without loading the plotting stack.
"""

from sonogan.report.html import (
    FigureRef,
    Section,
    Table,
    format_ci,
    format_p,
    gain_table_rows,
    metrics_table_rows,
    render_report,
)
from sonogan.report.markdown import markdown_table, render_markdown_summary

__all__ = [
    "FigureRef", "Section", "Table", "format_ci", "format_p", "gain_table_rows", "markdown_table",
    "metrics_table_rows", "render_markdown_summary", "render_report",
]

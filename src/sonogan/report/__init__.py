"""Report building blocks: figures from arrays, one self-contained HTML file, Markdown tables.

Example:
    >>> from sonogan.report import Section, format_p, metrics_table_rows
    >>> rows = metrics_table_rows({"f1/bot": (0.865, 0.801, 0.912)}, ["bot"], metrics=["f1"], macro=False)
    >>> rows[0]["F1"]
    '0.865 (0.801 to 0.912)'
    >>> format_p(0.0)
    '< 0.001'
"""

from sonogan.report.figures import (
    image_grid,
    plot_confusion,
    plot_image_panels,
    plot_loss_curves,
    plot_metric_bars,
    plot_roc_curves,
    plot_sweep,
    plot_tsne,
    tile_images,
)
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
    "FigureRef", "Section", "Table", "format_ci", "format_p", "gain_table_rows", "image_grid", "markdown_table",
    "metrics_table_rows", "plot_confusion", "plot_image_panels", "plot_loss_curves", "plot_metric_bars",
    "plot_roc_curves", "plot_sweep", "plot_tsne", "render_markdown_summary", "render_report", "tile_images",
]

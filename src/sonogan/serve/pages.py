"""The reader study's pages: Jinja2 templates in ``serve/templates`` and files in ``serve/static``.

Both folders ship as package data. Autoescaping is on for every template, so a study name,
rater name or class holding HTML is shown as text. The rater page is a fixed shell (no study
data); ``static/rater.js`` asks the API for the rater's state and posts each answer, showing
the next image only after the server has committed the answer. The admin page is rendered on
the server from the study summary.

Keyboard: 1-5 realism, R real, S synthetic, C class list, M comment, Enter save and next,
Esc leave the class list or the comment.

Example:
    >>> html = ENVIRONMENT.get_template("rater.html").render(max_comment=2000)
    >>> "rater.js" in html and "ground" not in html
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, StrictUndefined

from sonogan.report.html import table_records
from sonogan.study.report import summary_tables

STATIC_DIR = Path(__file__).parent / "static"
# PackageLoader finds the templates inside an installed wheel as well as in a source checkout;
# StrictUndefined turns a misspelt variable into an error instead of an empty cell
ENVIRONMENT = Environment(loader=PackageLoader("sonogan.serve", "templates"), autoescape=True,
                          undefined=StrictUndefined)
TEMPLATES = Jinja2Templates(env=ENVIRONMENT)


def admin_context(summary: dict[str, Any], token: str) -> dict[str, Any]:
    """What admin.html shows: the study facts, the statistics tables and the export links' token."""
    tables = []
    for caption, rows in summary_tables(summary):
        header, body = table_records(rows)
        tables.append({"caption": caption, "header": header, "body": body})
    return {"study": summary["study"], "tables": tables, "token": token}

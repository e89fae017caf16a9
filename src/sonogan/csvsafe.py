"""CSV files a person opens in a spreadsheet: text cells that cannot run as formulas.

Every CSV sonogan writes for people to read (predictions, annotation lists, evaluation
predictions, reader-study answers) can hold text the user or a rater chose: file names,
patient ids, clinical values, comments. A spreadsheet runs a cell such as
``=HYPERLINK("http://x","click").png`` as a formula (OWASP "CSV Injection"), so
:func:`csv_safe` prefixes every risky text cell with ``'``, which spreadsheets show as text.
:func:`safe_csv_text` applies it to a whole table and ends rows with CRLF (RFC 4180): with
that line end the csv writer also quotes a cell holding a bare carriage return, which a
spreadsheet would otherwise take as the end of the row.

Files sonogan reads back itself (``manifest.csv``, the preprocessing cache's ``index.csv``,
``training_hashes.csv``) are data, not exports: they keep every value verbatim.

Example:
    >>> [csv_safe(c) for c in ["=1+1", "  @SUM(A1)", "\\t=1+1", "-3", "ok", 5]]
    ["'=1+1", "'  @SUM(A1)", "'\\t=1+1", "'-3", 'ok', 5]
    >>> import pandas as pd
    >>> safe_csv_text(pd.DataFrame({"file": ["=1+1.png", "a.png"], "p": [-0.5, 1.0]}))
    "file,p\\r\\n'=1+1.png,-0.5\\r\\na.png,1.0\\r\\n"
"""

from __future__ import annotations

from typing import Any

import pandas as pd

# OWASP "CSV Injection": a cell starting with = + - @, tab or carriage return may run as a
# formula in a spreadsheet; spreadsheets also skip leading blanks before a formula, and some
# read the full-width forms of = + - @ as the ASCII ones
FORMULA_STARTS = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20")
CONTROL_STARTS = ("\t", "\r", "\n")


def csv_safe(cell: Any) -> Any:
    """A text cell that a spreadsheet could run as a formula, prefixed with ``'`` (shown as
    text); anything else (numbers, ``None``, safe text) unchanged."""
    if not isinstance(cell, str):
        return cell
    risky = cell.startswith(CONTROL_STARTS) or cell.lstrip().startswith(FORMULA_STARTS)
    return "'" + cell if risky else cell


def safe_csv_text(table: pd.DataFrame) -> str:
    """``table`` as CSV text for a spreadsheet: every cell through :func:`csv_safe` (column
    names too), CRLF row ends, no index."""
    safe = table.map(csv_safe)
    safe.columns = [csv_safe(c) for c in safe.columns]
    return safe.to_csv(index=False, lineterminator="\r\n")

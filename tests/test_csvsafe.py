"""csv_safe / safe_csv_text: no cell of a CSV sonogan exports can run as a spreadsheet formula."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from sonogan.csvsafe import csv_safe, safe_csv_text


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1+1", "\r=1+1", "\n=1+1", "  =1+1",
                                  "\uff1d1+1", "\uff0b1", "\uff0d1", "\uff20SUM(A1)",
                                  '=HYPERLINK("http://x","y").png'])
def test_every_owasp_start_is_prefixed(cell: str) -> None:
    assert csv_safe(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["scan.png", "fine = ok", "a-b", "", "'=already quoted", 5, -3.5, None, True])
def test_safe_cells_are_unchanged(cell: object) -> None:
    assert csv_safe(cell) == cell


def test_table_round_trips_as_text_with_crlf_rows() -> None:
    table = pd.DataFrame({"file": ["=HYPERLINK(x).png", "a\rb.png", "ok.png"], "p": [-0.25, 0.5, 1.0],
                          "=col": [1, 2, 3]})
    text = safe_csv_text(table)
    assert text.endswith("ok.png,1.0,3\r\n")
    rows = list(csv.reader(io.StringIO(text, newline="")))  # the csv module keeps a quoted \r
    assert rows == [["file", "p", "'=col"], ["'=HYPERLINK(x).png", "-0.25", "1"], ["a\rb.png", "0.5", "2"],
                    ["ok.png", "1.0", "3"]]

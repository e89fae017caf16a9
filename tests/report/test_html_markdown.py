"""HTML report is self-contained and holds the table cells; Markdown tables are well formed."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sonogan.errors import SonoganInputError
from sonogan.report import (
    Section,
    Table,
    format_ci,
    format_p,
    gain_table_rows,
    markdown_table,
    metrics_table_rows,
    render_markdown_summary,
    render_report,
)
from sonogan.report.figures import plot_confusion

CLASSES = ["benign", "malignant", "bot"]
RESULTS = {
    "sensitivity/bot": (0.865, 0.801, 0.912), "specificity/bot": (0.95, 0.9, 0.99),
    "f1/bot": (0.865, 0.79, 0.93), "auc/bot": (0.91, 0.85, 0.96),
    "sensitivity/benign": (0.9, 0.85, 0.95), "macro_f1": (0.908, 0.86, 0.95),
    "auc/malignant": (float("nan"), float("nan"), float("nan")),
}


def test_format_ci() -> None:
    assert format_ci(0.865, 0.801, 0.912) == "0.865 (0.801 to 0.912)"
    assert format_ci(0.865, 0.801, 0.912, percent=True) == "86.5% (80.1 to 91.2)"
    assert format_ci(0.5, float("nan"), float("nan"), digits=2) == "0.50"
    assert format_ci(float("nan"), 0.1, 0.2) == "n/a"


def test_metrics_table_rows_layout() -> None:
    rows = metrics_table_rows(RESULTS, CLASSES)
    assert [r["Class"] for r in rows] == CLASSES + ["Macro average"]
    assert list(rows[0]) == ["Class", "Sensitivity", "Specificity", "F1", "AUC"]
    bot = rows[2]
    assert bot["Sensitivity"] == "0.865 (0.801 to 0.912)" and bot["AUC"] == "0.910 (0.850 to 0.960)"
    assert rows[1]["AUC"] == "n/a" and rows[1]["F1"] == "n/a"
    assert rows[3]["F1"] == "0.908 (0.860 to 0.950)"


def test_format_p() -> None:
    assert format_p(0.0) == "< 0.001" and format_p(0.00099) == "< 0.001"  # never a bare "0.000"
    assert format_p(0.001) == "0.001" and format_p(0.0494) == "0.049"  # three decimals near 0.05
    assert format_p(0.5) == "0.50" and format_p(1.0) == "> 0.99"
    assert format_p(float("nan")) == "n/a"


def test_gain_rows_name_both_arms() -> None:
    rows = gain_table_rows({"f1/bot": (0.181, 0.05, 0.3, 0.0)}, ["f1/bot"])
    assert rows == [{"Metric": "f1/bot", "Gain (augmented − baseline)": "0.181 (0.050 to 0.300)",
                     "p (two-sided)": "< 0.001"}]
    rows = gain_table_rows({"f1/bot": (-0.02, -0.1, 0.05, 0.62)}, ["f1/bot"], arm="synthetic-20")
    assert list(rows[0]) == ["Metric", "Gain (synthetic-20 − baseline)", "p (two-sided)"]
    assert rows[0]["p (two-sided)"] == "0.62"


def test_fenced_block_keeps_its_lines(tmp_path: Path) -> None:
    yaml = "name: demo\nseed: 0\ngan:\n  family: dcgan\n\n  iterations: 300"  # a blank line inside the fence
    section = Section("Configuration", f"The config:\n\n```yaml\n{yaml}\n```\n\nAfter **it**.")
    text = render_report([section], tmp_path / "r.html", "t").read_text(encoding="utf-8")
    pre = re.search(r"<pre><code>(.*?)</code></pre>", text, re.DOTALL)
    assert pre is not None and pre.group(1) == yaml + "\n"
    assert "<p>The config:</p>" in text and "<p>After <strong>it</strong>.</p>" in text
    assert "```" not in text
    # the Markdown summary keeps the fence as it is
    assert f"```yaml\n{yaml}\n```" in render_markdown_summary([section])


def _report(tmp_path: Path) -> tuple[Path, list[Section]]:
    fig = plot_confusion(np.array([[5, 1, 0], [1, 4, 1], [0, 2, 3]]), CLASSES, tmp_path / "cm.png")
    sections = [
        Section("Summary", text="The BOT F1 **improved**.\n\n- one\n- two <b>raw</b>"),
        Section("Table 1", tables=[Table(metrics_table_rows(RESULTS, CLASSES), "Per-class metrics")]),
        Section("Confusion", tables=[pd.DataFrame({"a": [1.0, float("nan")], "b": ["x|y", "z"]})],
                figures=[(fig, "Figure 7: confusion matrix")]),
    ]
    return render_report(sections, tmp_path / "out" / "report.html", "Demo <report>"), sections


def test_html_is_self_contained_and_has_cells(tmp_path: Path) -> None:
    path, _ = _report(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert 'src="http' not in text and "<link" not in text and "@import" not in text
    assert "<script" not in text
    assert "0.865 (0.801 to 0.912)" in text and "Macro average" in text
    # the figure is embedded, byte for byte
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(uris) == 1
    assert base64.b64decode(uris[0]) == (tmp_path / "cm.png").read_bytes()
    # table of contents links to every section, text is escaped and lightly formatted
    for anchor in re.findall(r'href="#([^"]+)"', text):
        assert f'id="{anchor}"' in text
    assert text.count('href="#') == 3
    assert "<strong>improved</strong>" in text and "<li>two &lt;b&gt;raw&lt;/b&gt;</li>" in text
    assert "Demo &lt;report&gt;" in text
    assert not (tmp_path / "out" / "report.html.tmp").exists()


def test_missing_figure_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(SonoganInputError, match="figure file not found"):
        render_report([Section("x", figures=[tmp_path / "nope.png"])], tmp_path / "r.html", "t")


def test_markdown_table_format() -> None:
    text = markdown_table([{"Class": "bot", "F1": "0.865"}, {"Class": "a|b", "AUC": 0.5}], caption="T1")
    assert text.splitlines() == [
        "**T1**", "",
        "| Class | F1 | AUC |",
        "| --- | --- | --- |",
        "| bot | 0.865 |  |",
        "| a\\|b |  | 0.500 |",
    ]


def test_markdown_summary_matches_sections(tmp_path: Path) -> None:
    _, sections = _report(tmp_path)
    out = tmp_path / "summary.md"
    text = render_markdown_summary(sections, out, title="Demo")
    assert out.read_text(encoding="utf-8") == text
    assert text.startswith("# Demo\n") and "## Table 1" in text
    assert "| bot | 0.865 (0.801 to 0.912) | 0.950 (0.900 to 0.990) | 0.865 (0.790 to 0.930) | 0.910 (0.850 to 0.960) |" in text
    assert "![Figure 7: confusion matrix](cm.png)" in text

"""``sonogan data import --format csv`` as a new user meets it: named columns, a ';' file from a
spreadsheet, and a table with one class, each answered by a working import or one clear line."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from sonogan.data.importers.csv import sniff_delimiter
from sonogan.data.manifest import load_dataset


def write_table(root: Path, labels: list[str], columns: tuple[str, str, str], sep: str = ",") -> Path:
    """``root/cases.csv`` with one 48x40 image per label, under the given (image, label, patient) names."""
    rng = np.random.default_rng(0)
    rows = []
    for i, label in enumerate(labels):
        img = cv2.resize(rng.integers(0, 256, (5, 6), dtype=np.uint8), (48, 40), interpolation=cv2.INTER_CUBIC)
        (root / "files").mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / "files" / f"img{i}.png"), img)
        rows.append({columns[0]: f"files/img{i}.png", columns[1]: label, columns[2]: f"P{i}"})
    pd.DataFrame(rows).to_csv(root / "cases.csv", index=False, sep=sep)
    return root / "cases.csv"


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_named_columns_are_mapped_with_options_the_error_points_to(tmp_path, cli):
    table = write_table(tmp_path / "t", ["benign", "malignant"] * 2, ("file", "diagnosis", "case"))
    code, _, err = cli(["data", "import", str(table), "--format", "csv", "--out", str(tmp_path / "a")])
    assert code == 2
    assert one_line(err) == (f"error: {table}: no 'image' column (has ['file', 'diagnosis', 'case']); "
                             "fix: rename the column, or name yours with --image-col COLUMN")
    assert not (tmp_path / "a").exists()
    code, _, err = cli(["data", "import", str(table), "--format", "csv", "--out", str(tmp_path / "b"),
                        "--image-col", "file", "--label-col", "diagnosis", "--patient-col", "case"])
    assert code == 0, err
    manifest = load_dataset(tmp_path / "b").manifest.sort_values("patient_id")
    assert manifest["label"].tolist() == ["benign", "malignant"] * 2
    assert manifest["patient_id"].tolist() == ["P0", "P1", "P2", "P3"]


def test_a_label_column_is_named_with_label_col(tmp_path, cli):
    table = write_table(tmp_path / "t", ["benign", "malignant"], ("image", "diagnosis", "patient_id"))
    code, _, err = cli(["data", "import", str(table), "--format", "csv", "--out", str(tmp_path / "a")])
    assert code == 2 and one_line(err).endswith("fix: rename the column, or name yours with --label-col COLUMN")


def test_column_options_are_refused_for_other_importers(tmp_path, cli):
    code, _, err = cli(["data", "import", str(tmp_path), "--format", "folder", "--out", str(tmp_path / "a"),
                        "--label-col", "diagnosis"])
    assert code == 2
    assert one_line(err) == ("error: --label-col: only the csv importer reads named columns (not folder); "
                             "fix: drop --label-col")


def test_a_semicolon_file_is_read_by_its_delimiter(tmp_path, cli):
    table = write_table(tmp_path / "t", ["benign", "malignant"] * 2, ("image", "label", "patient_id"), sep=";")
    assert table.read_text().splitlines()[0] == "image;label;patient_id"
    assert sniff_delimiter(table) == ";"
    code, _, err = cli(["data", "import", str(table), "--format", "csv", "--out", str(tmp_path / "a")])
    assert code == 0, err
    assert sorted(load_dataset(tmp_path / "a").manifest["label"]) == ["benign", "benign", "malignant", "malignant"]


@pytest.mark.parametrize("header,expected", [
    ("image,label\na;b.png,x\n", ","),  # a comma header is never re-guessed, whatever the rows hold
    ("image\tlabel\na.png\tx\n", "\t"),
    ("image|label\na.png|x\n", "|"),
    ("image\na.png\n", ","),  # one column: nothing to find, read as before
])
def test_sniff_delimiter(tmp_path, header, expected):
    (tmp_path / "x.csv").write_text(header)
    assert sniff_delimiter(tmp_path / "x.csv") == expected


def test_one_class_is_said_in_the_users_terms(tmp_path, cli):
    table = write_table(tmp_path / "t", ["benign", "benign"], ("image", "label", "patient_id"))
    code, _, err = cli(["data", "import", str(table), "--format", "csv", "--out", str(tmp_path / "a")])
    assert code == 2
    assert one_line(err) == (f"error: {table}: only one class ('benign') in column 'label'; at least two are "
                             "needed; fix: add images of another class (or point --label-col at the column "
                             "with the classes)")
    assert not (tmp_path / "a").exists()

"""inspect_dataset: summary.json numbers on a tiny dataset and one montage PNG per class."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from sonogan.data.inspect import inspect_dataset
from sonogan.data.manifest import load_dataset
from sonogan.errors import SonoganInputError


def test_inspect_summary_and_montages(tmp_path: Path, dh) -> None:
    dh.make_dataset(tmp_path / "ds", n_per_class=5)
    ds = load_dataset(tmp_path / "ds")
    out = tmp_path / "inspect"
    summary = inspect_dataset(ds, out)
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["n_images"] == 10 and summary["per_class"] == {"benign": 5, "malignant": 5}
    assert summary["patients_per_class"] == {"benign": 2, "malignant": 2}
    # 5 images over 2 patients per class: 3 + 2
    assert summary["images_per_patient"] == {"n": 4, "min": 2.0, "median": 2.5, "mean": 2.5, "max": 3.0}
    assert summary["image_width"]["min"] == summary["image_width"]["max"] == 48
    assert summary["image_height"]["median"] == 40
    # the disc of radius 10 px in a 48x40 mask
    cov = summary["mask_coverage"]["benign"]["mean"]
    assert 0.15 < cov < 0.18
    age = summary["clinical"]["age"]["per_class"]["benign"]
    assert age["mean"] == 42.0 and age["missing"] == 0 and age["n"] == 5
    assert summary["clinical"]["ca125_high"]["per_class"]["malignant"]["counts"] == {"1": 5}
    assert summary["n_duplicate_groups"] == 0
    for cls in ("benign", "malignant"):
        img = cv2.imread(str(out / f"montage_{cls}.png"))
        assert img is not None and img.shape == (2 * 128, 3 * 128, 3)  # 5 tiles -> 3 columns, 2 rows
        assert img.std() > 10


def test_inspect_refuses_invalid_dataset(tmp_path: Path, dh) -> None:
    dh.make_dataset(tmp_path / "ds")
    (tmp_path / "ds/images/benign/benign-0.png").unlink()
    with pytest.raises(SonoganInputError, match="benign-0.png: image file not found"):
        inspect_dataset(load_dataset(tmp_path / "ds"), tmp_path / "inspect")


def test_inspect_against_lists_shared_images(tmp_path: Path, dh) -> None:
    dh.make_dataset(tmp_path / "train")
    dh.make_dataset(tmp_path / "ext", clinical=False)  # the same seeds: byte-identical images
    ds, ext = load_dataset(tmp_path / "train"), load_dataset(tmp_path / "ext")
    summary = inspect_dataset(ds, tmp_path / "inspect", against=ext)
    cross = summary["against"]
    assert cross["name"] == "toy" and cross["root"] == str(ext.root) and cross["max_distance"] == 4
    assert cross["n_pairs"] == cross["n_exact"] == 8 and cross["n_near"] == 0
    assert [(p["a"], p["b"]) for p in cross["pairs"]] == [(i, i) for i in ds.manifest["image_id"]]
    assert json.loads((tmp_path / "inspect/summary.json").read_text())["against"]["n_pairs"] == 8
    assert "against" not in inspect_dataset(ds, tmp_path / "inspect2")

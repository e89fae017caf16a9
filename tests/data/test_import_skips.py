"""No silent drops: every source file is imported or listed with its reason; thumbnails are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sonogan.data.importers import REPORT_FILE, import_dataset, read_report
from sonogan.errors import SonoganInputError


def _gif(path: Path, frames: int) -> None:
    imgs = [Image.fromarray(np.full((40, 40), 40 * k, np.uint8)) for k in range(frames)]
    imgs[0].save(path, save_all=True, append_images=imgs[1:])


def test_every_file_is_imported_or_listed(folder_source: Path, tmp_path: Path, dh) -> None:
    _gif(folder_source / "benign" / "loop.gif", 3)
    imgs = [Image.fromarray(np.full((40, 48), 60 * k, np.uint8)) for k in range(2)]
    imgs[0].save(folder_source / "benign" / "stack.tif", save_all=True, append_images=imgs[1:])
    dh.write_image(folder_source / "malignant" / "dot.png", seed=1, size=(1, 1))
    (folder_source / "benign" / ".DS_Store").write_bytes(b"\0")
    (folder_source / "README.txt").write_text("notes")
    dh.write_image(folder_source / "benign" / "old" / "x.png", seed=2)
    dh.write_mask(folder_source / "benign" / "masks" / "orphan.png")
    before = dh.snapshot(folder_source)
    ds = import_dataset(folder_source, "folder", tmp_path / "ds")
    assert len(ds.manifest) == 6 and dh.snapshot(folder_source) == before
    want = {
        "README.txt": "not inside a class folder (SRC/<class>/)",
        "benign/.DS_Store": "hidden file",
        "benign/loop.gif": "not an image type the folder importer reads (.gif; it reads .png, .jpg, .jpeg, .bmp, "
                           ".tif, .tiff): convert it to PNG",
        "benign/stack.tif": "multi-frame image (2 frames): export the frame you want as PNG, or import the cine "
                            "loop with --format dicom",
        "malignant/dot.png": "image is 1 x 1 px, below the minimum of 32 x 32 px",
        "benign/old/x.png": "in a subfolder of the class folder (the folder importer reads SRC/<class>/* only)",
        "benign/masks/orphan.png": "mask without an imported image of the same stem",
    }
    assert {s["file"]: s["reason"] for s in ds.skipped} == want
    report = read_report(tmp_path / "ds")
    assert report["format"] == "folder" and report["images"] == 6 and report["files_skipped"] == 7
    assert json.loads((tmp_path / "ds" / REPORT_FILE).read_text())["skipped"] == ds.skipped


def test_cli_lists_the_skipped_files(folder_source: Path, tmp_path: Path, cli) -> None:
    _gif(folder_source / "benign" / "loop.gif", 3)
    code, out, err = cli(["data", "import", str(folder_source), "--format", "folder", "--out", str(tmp_path / "ds")])
    assert code == 0, err
    assert "imported 6 images" in out and "skipped 1 files" in out and "benign/loop.gif: not an image type" in out


def test_thumbnail_listed_in_a_csv_is_refused(tmp_path: Path, dh) -> None:
    root = tmp_path / "src"
    rows = ["image,label,patient_id"]
    for k, cls in enumerate(["a", "a", "b", "b"]):
        dh.write_image(root / f"{k}.png", seed=k, size=(48, 40) if k else (20, 40))
        rows.append(f"{k}.png,{cls},p{k}")
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(SonoganInputError, match=r"0.png: image is 20 x 40 px, below the minimum of 32 x 32 px"):
        import_dataset(root / "list.csv", "csv", tmp_path / "ds")
    assert not (tmp_path / "ds").exists() or not any((tmp_path / "ds").iterdir())

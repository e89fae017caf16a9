"""validate_dataset: one test per error, each with a real bad file, each naming the file;
and every problem listed at once (capped), in manifest order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sonogan.data.manifest import load_dataset, write_dataset
from sonogan.data.validate import MAX_LISTED, ValidationErrors, validate_dataset
from sonogan.errors import SonoganInputError

@pytest.fixture
def root(tmp_path: Path, dh) -> Path:
    dh.make_dataset(tmp_path / "ds")
    return tmp_path / "ds"


def _error(root: Path) -> str:
    with pytest.raises(SonoganInputError) as info:
        validate_dataset(load_dataset(root))
    msg = str(info.value)
    assert "\n" not in msg and "; fix: " in msg
    return msg


def _edit(root: Path, row: int, **values: str) -> None:
    ds = load_dataset(root)
    for k, v in values.items():
        ds.manifest.loc[row, k] = v
    write_dataset(root, ds.spec, ds.manifest)


def test_valid_dataset_reports_counts(root: Path) -> None:
    report = validate_dataset(load_dataset(root))
    assert report.n_images == 8 and report.n_patients == 4
    assert report.per_class == {"benign": 4, "malignant": 4}
    assert report.per_source == {"real": 8}
    assert report.duplicate_groups == {} and report.warnings == []
    assert report.file_stats is not None and report.file_stats["width"].tolist() == [48] * 8
    assert np.allclose(report.file_stats["mask_fraction"], report.file_stats["mask_fraction"].iloc[0])
    assert set(report.to_dict()) >= {"n_images", "per_class", "duplicate_groups", "warnings", "patients_known"}


def test_missing_image_file(root: Path) -> None:
    (root / "images/benign/benign-2.png").unlink()
    assert "benign-2.png: image file not found" in _error(root)


def test_truncated_jpeg(root: Path, dh) -> None:
    jpg = dh.write_image(root / "images/benign/benign-1.jpg", seed=7, size=(200, 160))
    data = jpg.read_bytes()
    jpg.write_bytes(data[: len(data) // 2])
    _edit(root, 1, image="images/benign/benign-1.jpg")
    msg = _error(root)
    assert "benign-1.jpg: image cannot be decoded" in msg


def test_random_bytes_png(root: Path) -> None:
    (root / "images/malignant/malignant-3.png").write_bytes(np.random.default_rng(0).bytes(500))
    assert "malignant-3.png: not an image PIL can decode" in _error(root)


def test_empty_file(root: Path) -> None:
    (root / "images/benign/benign-1.png").write_bytes(b"")
    assert "benign-1.png: file is empty (0 bytes); fix:" in _error(root)


def test_decompression_bomb(root: Path, dh) -> None:
    dh.write_bomb_png(root / "images/malignant/malignant-2.png", 30000, 30000)
    msg = _error(root)
    assert "malignant-2.png: image is 30000 x 30000 px, larger than the limit" in msg
    assert "DecompressionBomb" not in msg


def test_missing_mask_file(root: Path) -> None:
    (root / "masks/benign/benign-0.png").unlink()
    assert "masks/benign/benign-0.png: mask file not found" in _error(root)


def test_mask_size_differs(root: Path, dh) -> None:
    dh.write_mask(root / "masks/malignant/malignant-1.png", size=(30, 30))
    msg = _error(root)
    assert "malignant-1.png: mask is 30x30 but its image" in msg and "48x40" in msg


def test_empty_mask_when_required(root: Path, dh) -> None:
    dh.write_mask(root / "masks/benign/benign-3.png", empty=True)
    assert "benign-3.png: mask is empty" in _error(root)


def test_empty_mask_allowed_when_optional(tmp_path: Path, dh) -> None:
    dh.make_dataset(tmp_path / "ds", masks="optional")
    dh.write_mask(tmp_path / "ds/masks/benign/benign-3.png", empty=True)
    report = validate_dataset(load_dataset(tmp_path / "ds"))
    assert report.file_stats is not None and report.file_stats["mask_fraction"].iloc[3] == 0.0


def test_unknown_label(root: Path) -> None:
    _edit(root, 5, label="borderline")
    msg = _error(root)
    assert "manifest.csv, line 7: label 'borderline' is not one of" in msg


def test_empty_class(root: Path) -> None:
    ds = load_dataset(root)
    write_dataset(root, ds.spec.model_copy(update={"classes": ["benign", "malignant", "borderline"]}), ds.manifest)
    assert "dataset.yaml: class 'borderline' has no images" in _error(root)


def test_class_with_one_patient(root: Path) -> None:
    for row in (4, 5, 6, 7):
        _edit(root, row, patient_id="only_one")
    msg = _error(root)
    assert "manifest.csv: class 'malignant' has 1 patient(s), too few patients to split" in msg


def test_bad_clinical_value(root: Path) -> None:
    _edit(root, 2, age="150")
    msg = _error(root)
    assert "manifest.csv, line 4: clinical variable 'age'" in msg and "outside" in msg


def test_bad_binary_value(root: Path) -> None:
    _edit(root, 0, ca125_high="yes")
    assert "manifest.csv, line 2: clinical variable 'ca125_high': 'yes' is not 0 or 1" in _error(root)


def test_duplicate_image_id(root: Path) -> None:
    _edit(root, 3, image_id="benign-0")
    assert "manifest.csv, line 5: duplicate image_id 'benign-0'" in _error(root)


def test_bad_source(root: Path) -> None:
    _edit(root, 1, source="fake")
    assert "manifest.csv, line 3: source 'fake' is not 'real' or 'synthetic'" in _error(root)


def test_synthetic_without_provenance(root: Path) -> None:
    _edit(root, 6, source="synthetic", generator="dcgan")
    assert "manifest.csv, line 8: synthetic row without generator/checkpoint_sha256" in _error(root)


def test_synthetic_with_provenance_is_valid(root: Path) -> None:
    _edit(root, 6, source="synthetic", generator="dcgan", checkpoint_sha256="ab" * 32)
    # still two malignant patients among real rows, so this is valid
    assert validate_dataset(load_dataset(root)).per_source == {"real": 7, "synthetic": 1}


def test_every_problem_is_listed_in_row_order(root: Path) -> None:
    (root / "images/benign/benign-1.png").unlink()
    (root / "images/malignant/malignant-0.png").write_bytes(b"not an image")
    _edit(root, 6, age="150")
    for workers in (1, 4):
        with pytest.raises(ValidationErrors) as info:
            validate_dataset(load_dataset(root), workers=workers)
        lines = str(info.value).splitlines()
        # row problems first (manifest lines), then file problems in row order, then the summary
        assert "manifest.csv, line 8: clinical variable 'age'" in lines[0]
        assert "benign-1.png: image file not found" in lines[1]
        assert "malignant-0.png: not an image PIL can decode" in lines[2]
        assert lines[3] == f"3 problems in {root}; fix them all, then validate again" and len(lines) == 4
        assert len(info.value.errors) == 3 and all("; fix: " in str(e) for e in info.value.errors)
        assert info.value.where == str(root / "manifest.csv") + ", line 8"  # the first problem's


def test_many_problems_are_capped(root: Path, dh) -> None:
    ds = load_dataset(root)
    extra = pd.DataFrame([{**ds.manifest.iloc[0].to_dict(), "image_id": f"gone-{k}",
                           "image": f"images/gone-{k}.png"} for k in range(MAX_LISTED + 7)])
    write_dataset(root, ds.spec, pd.concat([ds.manifest, extra], ignore_index=True))
    with pytest.raises(ValidationErrors) as info:
        validate_dataset(load_dataset(root))
    lines = str(info.value).splitlines()
    assert len(info.value.errors) == MAX_LISTED + 7 and len(lines) == MAX_LISTED + 2
    assert lines[0].endswith("gone-0.png: image file not found; fix: restore the file or fix its path in manifest.csv")
    assert lines[-2] == "... and 7 more" and lines[-1].startswith(f"{MAX_LISTED + 7} problems in ")


def test_check_files_false_skips_decoding(root: Path) -> None:
    (root / "images/benign/benign-2.png").write_bytes(b"garbage")
    report = validate_dataset(load_dataset(root), check_files=False)
    assert report.files_checked is False and report.file_stats is None


def test_patients_unknown_and_duplicates_warn(root: Path) -> None:
    ds = load_dataset(root)
    # an exact copy of benign-0 under a new id
    (root / "images/benign/copy.png").write_bytes((root / "images/benign/benign-0.png").read_bytes())
    extra = ds.manifest.iloc[[0]].assign(image_id="copy", image="images/benign/copy.png", patient_id="")
    manifest = pd.concat([ds.manifest, extra], ignore_index=True)
    write_dataset(root, ds.spec.model_copy(update={"patients_known": False}), manifest)
    report = validate_dataset(load_dataset(root))
    assert report.duplicate_groups == {"exact-0001": ["benign-0", "copy"]}
    assert report.warnings[0].startswith("patients unknown")
    assert "1 exact and 0 near-duplicate image groups" in report.warnings[1]

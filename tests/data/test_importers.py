"""Importers: folder, CSV and MMOTU sources into dataset folders; the source stays untouched."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from sonogan.data.importers import IMPORTERS, ImportOptions, import_dataset
from sonogan.data.manifest import CORE_COLUMNS, load_dataset
from sonogan.data.validate import ValidationErrors, validate_dataset
from sonogan.errors import SonoganInputError


def test_registry_names() -> None:
    assert IMPORTERS.names() == ["csv", "dicom", "folder", "mmotu"]


@pytest.mark.parametrize("link", [False, True])
def test_folder_import(folder_source: Path, tmp_path: Path, dh, link: bool) -> None:
    before = dh.snapshot(folder_source)
    out = tmp_path / "out"
    ds = import_dataset(folder_source, "folder", out, ImportOptions(link=link, rare_classes=["malignant"]))
    assert dh.snapshot(folder_source) == before
    assert ds.spec.classes == ["benign", "malignant"] and ds.spec.rare_classes == ["malignant"]
    assert ds.spec.patients_known and ds.spec.masks == "optional" and ds.spec.name == "src"
    m = ds.manifest
    assert list(m.columns[:6]) == CORE_COLUMNS and len(m) == 6
    assert (m["width"] == "48").all() and (m["height"] == "40").all()
    assert set(m["image_id"]) == {f"{c}-img{k}" for c in ("benign", "malignant") for k in range(3)}
    assert m["patient_id"].nunique() == 4 and (m["mask"] != "").all()
    img = out / m.loc[m["image_id"] == "malignant-img1", "image"].iloc[0]
    assert img == out / "images/malignant/img1.png" and img.is_symlink() == link
    assert (out / "masks/malignant/img1.png").is_file()
    reloaded = load_dataset(out)
    assert reloaded.manifest.equals(ds.manifest)
    assert validate_dataset(reloaded).n_images == 6


def test_folder_without_patients_and_spec_order(folder_source: Path, tmp_path: Path) -> None:
    (folder_source / "patients.csv").unlink()
    spec_path = tmp_path / "dataset.yaml"
    spec_path.write_text(yaml.safe_dump({"name": "mine", "classes": ["malignant", "benign"],
                                         "rare_classes": ["malignant"], "min_patients_per_class": 1}))
    ds = import_dataset(folder_source, "folder", tmp_path / "out", ImportOptions(spec=spec_path))
    assert ds.spec.classes == ["malignant", "benign"] and ds.spec.name == "mine"
    assert ds.spec.patients_known is False
    assert (ds.manifest["patient_id"] == ds.manifest["image_id"]).all()


def test_folder_class_not_in_spec(folder_source: Path, tmp_path: Path) -> None:
    spec_path = tmp_path / "dataset.yaml"
    spec_path.write_text(yaml.safe_dump({"name": "x", "classes": ["benign", "borderline"]}))
    with pytest.raises(SonoganInputError, match=r"dataset.yaml: classes \['malignant'\] found"):
        import_dataset(folder_source, "folder", tmp_path / "out", ImportOptions(spec=spec_path))
    assert not (tmp_path / "out").exists()


def test_failed_import_names_source_file_and_cleans_up(folder_source: Path, tmp_path: Path) -> None:
    bad = folder_source / "benign" / "img2.png"
    bad.write_bytes(b"\x89PNG garbage")
    out = tmp_path / "out"
    with pytest.raises(SonoganInputError) as info:
        import_dataset(folder_source, "folder", out)
    assert str(info.value).startswith(f"{bad}: not an image PIL can decode")
    assert not out.exists() and bad.is_file()


def test_failed_import_lists_every_source_file(folder_source: Path, tmp_path: Path) -> None:
    (folder_source / "benign" / "img0.png").write_bytes(b"")
    (folder_source / "masks" / "malignant" / "img2.png").write_bytes(b"garbage")
    with pytest.raises(ValidationErrors) as info:
        import_dataset(folder_source, "folder", tmp_path / "out", ImportOptions(link=True))
    lines = str(info.value).splitlines()
    assert lines[0] == (f"{folder_source / 'benign' / 'img0.png'}: file is empty (0 bytes); "
                        "fix: restore or re-export the image, or remove its row")
    assert lines[1].startswith(f"{folder_source / 'masks' / 'malignant' / 'img2.png'}: not an image")
    assert lines[2] == f"2 problems in {folder_source}; fix them all, then validate again"
    assert not (tmp_path / "out").exists()


def _bomb_message(exc: SonoganInputError, path: Path) -> None:
    msg = str(exc)
    assert msg.startswith(f"{path}: image is 30000 x 30000 px, larger than the limit")
    assert "\n" not in msg and "; fix: downscale" in msg


def test_folder_import_refuses_decompression_bomb(folder_source: Path, tmp_path: Path, dh) -> None:
    bomb = dh.write_bomb_png(folder_source / "malignant" / "img1.png", 30000, 30000)
    with pytest.raises(SonoganInputError) as info:
        import_dataset(folder_source, "folder", tmp_path / "out")
    _bomb_message(info.value, bomb)


def test_refuses_non_empty_out(folder_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SonoganInputError, match="already exists and is not empty"):
        import_dataset(folder_source, "folder", out)
    assert (out / "keep.txt").read_text() == "mine"


def test_unknown_format(folder_source: Path, tmp_path: Path) -> None:
    with pytest.raises(SonoganInputError, match="unknown name"):
        import_dataset(folder_source, "dicomish", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _csv_source(tmp_path: Path, dh) -> Path:
    """cases.csv beside files/, one image with an absolute path, clinical columns + an extra."""
    base = tmp_path / "table"
    rows = []
    for c, cls in enumerate(["benign", "malignant"]):
        for k in range(3):
            img = dh.write_image(base / "files" / f"{cls}{k}.png", seed=50 + 10 * c + k)
            dh.write_mask(base / "files" / f"{cls}{k}_mask.png")
            path = str(img) if k == 0 else f"files/{cls}{k}.png"
            rows.append({"file": path, "seg": f"files/{cls}{k}_mask.png", "diagnosis": cls,
                         "patient": f"P{c}{k % 2}", "age": str(30 + k), "site": "A"})
    pd.DataFrame(rows).to_csv(base / "cases.csv", index=False)
    (base / "dataset.yaml").write_text(yaml.safe_dump({
        "name": "cases", "classes": ["malignant", "benign"], "rare_classes": ["malignant"],
        "clinical": {"age": {"type": "continuous", "min": 18, "max": 100}}}))
    return base


def _csv_options(base: Path, **kw) -> ImportOptions:
    return ImportOptions(image_col="file", mask_col="seg", label_col="diagnosis", patient_col="patient", **kw)


def test_csv_import_with_spec(tmp_path: Path, dh) -> None:
    base = _csv_source(tmp_path, dh)
    before = dh.snapshot(base)
    ds = import_dataset(base / "cases.csv", "csv", tmp_path / "out", _csv_options(base, spec=base / "dataset.yaml"))
    assert dh.snapshot(base) == before
    assert ds.spec.classes == ["malignant", "benign"] and list(ds.spec.clinical) == ["age"]
    m = ds.manifest
    assert len(m) == 6 and ds.spec.patients_known and m["patient_id"].nunique() == 4
    assert "age" in m.columns and "site" in m.columns  # clinical kept, extras kept
    assert set(m["image"]) >= {"images/files/benign1.png", "images/benign/benign0.png"}
    assert set(m["image_id"]) >= {"files-benign1", "benign-benign0"}
    assert all((ds.root / p).is_file() for p in list(m["image"]) + list(m["mask"]))


def test_csv_import_infers_classes(tmp_path: Path, dh) -> None:
    base = _csv_source(tmp_path, dh)
    ds = import_dataset(base, "csv", tmp_path / "out", _csv_options(base, link=True))
    assert ds.spec.classes == ["benign", "malignant"] and ds.spec.clinical == {}
    assert (ds.root / ds.manifest["image"].iloc[1]).is_symlink()


def test_csv_unknown_label(tmp_path: Path, dh) -> None:
    base = _csv_source(tmp_path, dh)
    table = pd.read_csv(base / "cases.csv", dtype=str, keep_default_na=False)
    table.loc[4, "diagnosis"] = "borderline"
    table.to_csv(base / "cases.csv", index=False)
    with pytest.raises(SonoganInputError) as info:
        import_dataset(base / "cases.csv", "csv", tmp_path / "out", _csv_options(base, spec=base / "dataset.yaml"))
    assert str(info.value).startswith(f"{base / 'cases.csv'}, line 6: label 'borderline' is not one of")


def test_csv_bad_clinical_value(tmp_path: Path, dh) -> None:
    base = _csv_source(tmp_path, dh)
    table = pd.read_csv(base / "cases.csv", dtype=str, keep_default_na=False)
    table.loc[0, "age"] = "old"
    table.to_csv(base / "cases.csv", index=False)
    with pytest.raises(SonoganInputError) as info:
        import_dataset(base / "cases.csv", "csv", tmp_path / "out", _csv_options(base, spec=base / "dataset.yaml"))
    assert str(info.value).startswith(f"{base / 'cases.csv'}, line 2: clinical variable 'age': 'old' is not a number")


def test_csv_import_refuses_decompression_bomb(tmp_path: Path, dh) -> None:
    base = _csv_source(tmp_path, dh)
    bomb = dh.write_bomb_png(base / "files" / "benign2.png", 30000, 30000)
    with pytest.raises(SonoganInputError) as info:
        import_dataset(base / "cases.csv", "csv", tmp_path / "out", _csv_options(base, link=True))
    _bomb_message(info.value, bomb)


def test_csv_lists_every_bad_row(tmp_path: Path, dh) -> None:
    base = _csv_source(tmp_path, dh)
    table = pd.read_csv(base / "cases.csv", dtype=str, keep_default_na=False)
    table.loc[1, "diagnosis"], table.loc[4, "age"] = "borderline", "old"
    table.to_csv(base / "cases.csv", index=False)
    with pytest.raises(ValidationErrors) as info:
        import_dataset(base / "cases.csv", "csv", tmp_path / "out", _csv_options(base, spec=base / "dataset.yaml"))
    lines = str(info.value).splitlines()
    assert lines[0].startswith(f"{base / 'cases.csv'}, line 3: label 'borderline'")
    assert lines[1].startswith(f"{base / 'cases.csv'}, line 6: clinical variable 'age'") and len(lines) == 3


def test_csv_missing_file(tmp_path: Path, dh) -> None:
    base = _csv_source(tmp_path, dh)
    (base / "files" / "malignant2.png").unlink()
    with pytest.raises(SonoganInputError, match=r"malignant2.png: file not found"):
        import_dataset(base / "cases.csv", "csv", tmp_path / "out", _csv_options(base))
    assert not (tmp_path / "out").exists()


def test_csv_class_with_one_patient(tmp_path: Path, dh) -> None:
    base = _csv_source(tmp_path, dh)
    table = pd.read_csv(base / "cases.csv", dtype=str, keep_default_na=False)
    table.loc[table["diagnosis"] == "malignant", "patient"] = "P_one"
    table.to_csv(base / "cases.csv", index=False)
    with pytest.raises(SonoganInputError, match="class 'malignant' has 1 patient.*too few patients") as info:
        import_dataset(base / "cases.csv", "csv", tmp_path / "out", _csv_options(base))
    assert str(info.value).startswith(str(base / "cases.csv"))


def _fake_mmotu(root: Path, dh, readme: str | None) -> Path:
    """The MMOTU layout with two classes of two tiny images each (no shared data needed)."""
    rows = []
    for idx, label in enumerate(["chocolate_cyst", "high_grade_serous"]):
        for k in range(2):
            sid = str(10 * idx + k)
            dh.write_image(root / "images" / label / f"{sid}.jpg", seed=idx * 10 + k)
            dh.write_mask(root / "masks" / label / f"{sid}.png")
            rows.append({"image": f"images/{label}/{sid}.jpg", "mask": f"masks/{label}/{sid}.png", "label": label,
                         "mmotu_index": str(7 * idx), "malignant": str(idx), "source_id": sid})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    if readme is not None:
        (root / "README.md").write_text(readme)
    return root


def test_mmotu_description_says_what_was_imported(tmp_path: Path, dh) -> None:
    src = _fake_mmotu(tmp_path / "otu-test", dh, "# OTU_2d (MMOTU) — test split\n\nText.\n## Layout\n")
    ds = import_dataset(src, "mmotu", tmp_path / "out", ImportOptions(link=True))
    assert ds.spec.description == (f"MMOTU OTU_2d images from {src.resolve()} (OTU_2d (MMOTU) — test split): "
                                   "4 images (chocolate_cyst 2, high_grade_serous 2); no patient ids, "
                                   "each image is treated as its own case")
    assert "train" not in ds.spec.description
    assert ds.spec.rare_classes == ["high_grade_serous"]  # simple_cyst is not in this subset


def test_mmotu_import_refuses_decompression_bomb(tmp_path: Path, dh) -> None:
    src = _fake_mmotu(tmp_path / "otu", dh, readme=None)
    bomb = dh.write_bomb_png(src / "masks" / "chocolate_cyst" / "1.png", 30000, 30000)
    with pytest.raises(SonoganInputError) as info:
        import_dataset(src, "mmotu", tmp_path / "out", ImportOptions(link=True))
    _bomb_message(info.value, bomb)


def _check_mmotu(ds, n: int) -> None:
    assert ds.spec.classes == ["chocolate_cyst", "serous_cystadenoma", "teratoma", "theca_cell_tumor",
                               "simple_cyst", "normal_ovary", "mucinous_cystadenoma", "high_grade_serous"]
    assert ds.spec.rare_classes == ["high_grade_serous", "simple_cyst"]
    assert ds.spec.masks == "required" and ds.spec.patients_known is False
    m = ds.manifest
    assert len(m) == n and m["image_id"].is_unique and m["image_id"].str.startswith("mmotu_").all()
    assert {"malignant", "mmotu_index", "source_id"} <= set(m.columns)
    assert (m["patient_id"] == m["image_id"]).all()
    hgs = m[m["label"] == "high_grade_serous"]
    assert (hgs["malignant"] == "1").all() and (hgs["mmotu_index"] == "7").all()


@pytest.mark.mmotu
def test_mmotu_import_full(tmp_path: Path, dh) -> None:
    src = dh.mmotu_root()
    before = dh.snapshot(src)
    ds = import_dataset(src, "mmotu", tmp_path / "mmotu", ImportOptions(link=True))
    assert dh.snapshot(src) == before
    _check_mmotu(ds, 1000)
    assert ds.manifest["label"].value_counts()["high_grade_serous"] == 38
    report = validate_dataset(load_dataset(tmp_path / "mmotu"))
    assert report.n_images == 1000 and len(report.per_class) == 8
    assert any("each image is treated as its own case" in w for w in report.warnings)
    assert ds.spec.description.startswith(f"MMOTU OTU_2d images from {src.resolve()} (OTU_2d (MMOTU) — training split)")
    assert "1000 images (chocolate_cyst 226," in ds.spec.description


@pytest.mark.mmotu
def test_mmotu_import_subset_copy(tmp_path: Path, dh) -> None:
    src = dh.mmotu_root()
    table = pd.read_csv(src / "manifest.csv", dtype=str, keep_default_na=False)
    sub = tmp_path / "mmotu-sub"
    sub.mkdir()
    table.groupby("label").head(5).to_csv(sub / "manifest.csv", index=False)
    for d in ("images", "masks"):  # link the folders, never copy shared data into place
        (sub / d).symlink_to((src / d).resolve())
    ds = import_dataset(sub, "mmotu", tmp_path / "out", ImportOptions(name="mmotu-40"))
    _check_mmotu(ds, 40)
    assert ds.spec.name == "mmotu-40"
    assert f"images from {sub.resolve()}: 40 images (chocolate_cyst 5, " in ds.spec.description
    first = tmp_path / "out" / ds.manifest["image"].iloc[0]
    assert first.is_file() and not first.is_symlink()


def test_csv_parent_paths_stay_inside_dataset(tmp_path: Path, dh) -> None:
    base = _csv_source(tmp_path, dh)
    outside = dh.write_image(tmp_path / "elsewhere.png", seed=99)
    table = pd.read_csv(base / "cases.csv", dtype=str, keep_default_na=False)
    table.loc[1, "file"] = "../elsewhere.png"
    table.to_csv(base / "cases.csv", index=False)
    ds = import_dataset(base / "cases.csv", "csv", tmp_path / "out", _csv_options(base))
    assert ds.manifest.loc[1, "image"] == "images/benign/elsewhere.png"
    assert (tmp_path / "out/images/benign/elsewhere.png").read_bytes() == outside.read_bytes()

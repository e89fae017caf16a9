"""relabel_dataset: classes merged, renamed or dropped into a new dataset that links to the
source's files; every check happens before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from sonogan.data.manifest import DatasetSpec, load_dataset, write_dataset
from sonogan.data.relabel import parse_mapping, relabel_dataset
from sonogan.data.validate import validate_dataset
from sonogan.errors import SonoganInputError


@pytest.fixture
def src(tmp_path: Path, dh) -> Path:
    """benign (4 images, 2 patients), borderline (2 images, 2 patients), malignant (4, 2; rare)."""
    root = tmp_path / "src"
    spec, df = dh.make_dataset(root)
    df.loc[[2, 3], "label"] = "borderline"
    df.loc[[2, 3], "patient_id"] = ["borderline_p0", "borderline_p1"]
    spec = DatasetSpec.model_validate({**spec.model_dump(), "classes": ["benign", "borderline", "malignant"]})
    write_dataset(root, spec, df)
    return root


def test_merge_keeps_order_rows_and_original_label(src: Path, tmp_path: Path) -> None:
    ds = relabel_dataset(load_dataset(src), {"borderline": "malignant", "malignant": "malignant"}, tmp_path / "out",
                         default="benign")
    assert ds.spec.classes == ["benign", "malignant"] and ds.spec.name == "toy-relabelled"
    m = ds.manifest
    assert m["label"].tolist() == ["benign"] * 2 + ["malignant"] * 6
    assert m["original_label"].tolist() == ["benign"] * 2 + ["borderline"] * 2 + ["malignant"] * 4
    assert m["age"].tolist() == load_dataset(src).manifest["age"].tolist()  # clinical columns kept
    # malignant now also holds non-rare borderline, so it is not rare unless asked for
    assert ds.spec.rare_classes == []
    assert load_dataset(tmp_path / "out").manifest.equals(m)


def test_unmapped_classes_take_default_or_are_dropped(src: Path, tmp_path: Path) -> None:
    kept = relabel_dataset(load_dataset(src), {"malignant": "cancer"}, tmp_path / "a", default="other")
    assert kept.spec.classes == ["other", "cancer"] and kept.spec.rare_classes == ["cancer"]
    assert kept.manifest["label"].value_counts().to_dict() == {"other": 4, "cancer": 4}
    dropped = relabel_dataset(load_dataset(src), parse_mapping(["benign=b", "malignant=m"]), tmp_path / "b",
                              rare=["m"], name="bm")
    assert dropped.spec.name == "bm" and dropped.spec.classes == ["b", "m"] and len(dropped.manifest) == 6
    assert "borderline" not in set(dropped.manifest["original_label"])


def test_source_files_untouched_and_linked(src: Path, tmp_path: Path, dh) -> None:
    before = dh.snapshot(src)
    ds = relabel_dataset(load_dataset(src), parse_mapping(["benign=benign", "borderline=benign", "malignant=malignant"]),
                         tmp_path / "out")
    assert dh.snapshot(src) == before
    for rel, origin in zip(ds.manifest["image"], load_dataset(src).manifest["image"]):
        assert (ds.root / rel).is_symlink() and (ds.root / rel).resolve() == (src / origin).resolve()
    assert validate_dataset(load_dataset(ds.root)).per_class == {"benign": 4, "malignant": 4}


@pytest.mark.parametrize("mapping, default, rare, message", [
    ({"cancer": "m"}, None, None, r"--map cancer: class not in .*dataset.yaml; fix: use one of \['benign'"),
    ({"benign": "x"}, None, None, r"--map: only \['x'\] would remain"),
    ({"benign": "x"}, "x", None, r"--map: only \['x'\] would remain"),
    ({"malignant": "m"}, "rest", ["nope"], r"--map/--rare: invalid config .*rare_classes \['nope'\] are not in classes"),
])
def test_bad_mapping_refused_before_writing(src: Path, tmp_path: Path, mapping, default, rare, message) -> None:
    with pytest.raises(SonoganInputError, match=message):
        relabel_dataset(load_dataset(src), mapping, tmp_path / "out", default=default, rare=rare)
    assert not (tmp_path / "out").exists()


def test_new_class_with_too_few_patients_refused(src: Path, tmp_path: Path) -> None:
    ds = load_dataset(src)
    write_dataset(src, ds.spec, ds.manifest.assign(
        patient_id=["p"] * 4 + list(ds.manifest["patient_id"][4:])))  # benign + borderline: one patient
    with pytest.raises(SonoganInputError, match=r"--map \(new classes \['low', 'malignant'\]\): class 'low' has 1 "):
        relabel_dataset(load_dataset(src), {"malignant": "malignant"}, tmp_path / "out", default="low")
    assert not (tmp_path / "out").exists()


def test_source_row_problems_name_the_source_lines(src: Path, tmp_path: Path) -> None:
    ds = load_dataset(src)
    bad = ds.manifest.copy()
    bad.loc[1, "age"], bad.loc[5, "label"] = "150", "unknown"
    write_dataset(src, ds.spec, bad)
    with pytest.raises(SonoganInputError) as info:
        relabel_dataset(load_dataset(src), {"borderline": "benign"}, tmp_path / "out", default="rest")
    lines = str(info.value).splitlines()
    assert lines[0].startswith(f"{src / 'manifest.csv'}, line 3: clinical variable 'age'")
    assert lines[1].startswith(f"{src / 'manifest.csv'}, line 7: label 'unknown' is not one of")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("item", ["no-equals", "=x", "a="])
def test_parse_mapping_refuses_bad_items(item: str) -> None:
    with pytest.raises(SonoganInputError, match=f"--map {item}: not of the form OLD=NEW"):
        parse_mapping([item])

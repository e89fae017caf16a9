"""The built-in phantom: determinism, counts, masks, clean twins, clinical values, morphology."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from sonogan.data.manifest import check_clinical_value, load_dataset
from sonogan.phantom import CLASSES, PhantomConfig, generate_phantom, phantom_montage
from sonogan.errors import SonoganInputError

SMALL = PhantomConfig(seed=3, n_benign=4, n_borderline=2, n_malignant=3, images_per_patient=2, image_size=128,
                      annotated_fraction=0.5)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory):
    return generate_phantom(tmp_path_factory.mktemp("phantom") / "ds", SMALL)


def _read(root: Path, rel: str, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    img = cv2.imread(str(root / rel), flags)
    assert img is not None, rel
    return img


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_config_gives_identical_bytes(small, tmp_path):
    again = generate_phantom(tmp_path / "again", SMALL)
    a, b = _files(small.root), _files(again.root)
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]][:5]
    other = generate_phantom(tmp_path / "other", SMALL.model_copy(update={"seed": 4}))
    assert _files(other.root)["images/benign/b0000_0.png"] != a["images/benign/b0000_0.png"]


def test_patient_does_not_depend_on_other_patients_or_views(small, tmp_path):
    cfg = SMALL.model_copy(update={"n_benign": 2, "images_per_patient": 1})
    ds = generate_phantom(tmp_path / "fewer", cfg)
    # the first borderline patient is P0004 in `small` and P0002 here: same pixels
    a = (small.root / "images/borderline/bl0004_0.png").read_bytes()
    b = (ds.root / "images/borderline/bl0002_0.png").read_bytes()
    assert a == b


def test_counts_ids_and_spec(small):
    df, spec = small.manifest, small.spec
    assert spec.name == "phantom" and spec.classes == list(CLASSES) and spec.rare_classes == ["borderline"]
    assert spec.patients_known and spec.masks == "required"
    assert set(spec.clinical) == {"menopausal", "centre", "age", "ca125"}
    assert spec.clinical["centre"].levels == ["oncology", "general"]
    assert "synthetic" in (spec.description or "").lower() and "synthetic" in (spec.citation or "").lower()
    patients = df.groupby("label")["patient_id"].nunique().to_dict()
    assert patients == {"benign": 4, "borderline": 2, "malignant": 3}
    assert len(df) == 9 * 2 and df["image_id"].is_unique
    assert (df.groupby("patient_id").size() == 2).all()
    assert df["patient_id"].str.fullmatch(r"P\d{4}").all()
    assert df["image_id"].str.fullmatch(r"(b|bl|m)\d{4}_\d").all()
    assert (df["source"] == "real").all()
    assert df.groupby("patient_id")["label"].nunique().max() == 1
    for col in ["clean_image", "annotated", "style", "width", "height"]:
        assert col in df.columns
    reloaded = load_dataset(small.root)
    assert reloaded.manifest["image_id"].tolist() == df["image_id"].tolist()


def test_default_cohort_follows_the_flagship():
    # benign:malignant as 390:202; borderline the rarest class but kept at 9 patients (not 4.4)
    # so that a 5-fold patient-grouped split still has borderline patients in every fold
    cfg = PhantomConfig()
    assert abs(cfg.n_benign / cfg.n_malignant - 390 / 202) < 0.05
    assert cfg.n_borderline < min(cfg.n_benign, cfg.n_malignant) and cfg.n_borderline >= 5


def test_images_and_masks(small):
    for _, row in small.manifest.iterrows():
        img = _read(small.root, row["image"])
        mask = _read(small.root, row["mask"])
        assert img.dtype == np.uint8 and img.shape == (128, 128, 3)
        assert mask.shape == img.shape[:2] and set(np.unique(mask)) <= {0, 255}
        assert (mask > 0).sum() >= 30, row["image_id"]
        assert int(row["width"]) == 128 and int(row["height"]) == 128
        assert img[0, 0].max() == 0 and img[-1, 0].max() == 0       # black outside the sector
        assert img[img.shape[0] // 2, img.shape[1] // 2].max() > 0 or (mask > 0).any()


def test_clean_twins_differ_only_in_small_areas(small):
    df = small.manifest
    annotated = df[df["annotated"] == "1"]
    assert 0 < len(annotated) < len(df)
    assert (df.loc[df["annotated"] == "0", "clean_image"] == "").all()
    for _, row in annotated.iterrows():
        assert row["clean_image"].startswith(f"clean/{row['label']}/")
        img = _read(small.root, row["image"])
        clean = _read(small.root, row["clean_image"])
        assert clean.shape == img.shape
        changed = (img != clean).any(axis=2)
        assert 0 < changed.mean() < 0.08, (row["image_id"], changed.mean())


def test_annotated_fraction_extremes(tmp_path):
    base = SMALL.model_copy(update={"n_benign": 2, "n_borderline": 2, "n_malignant": 2, "images_per_patient": 1,
                                    "image_size": 96})
    none = generate_phantom(tmp_path / "none", base.model_copy(update={"annotated_fraction": 0.0}))
    assert (none.manifest["annotated"] == "0").all() and not (none.root / "clean").exists()
    every = generate_phantom(tmp_path / "all", base.model_copy(update={"annotated_fraction": 1.0}))
    assert (every.manifest["annotated"] == "1").all()
    assert all((every.root / p).is_file() for p in every.manifest["clean_image"])


def test_clinical_values_valid_and_per_patient(small):
    df = small.manifest
    for name, var in small.spec.clinical.items():
        errors = [check_clinical_value(var, v) for v in df[name]]
        assert not any(errors), [e for e in errors if e][:3]
        assert (df.groupby("patient_id")[name].nunique() == 1).all()


def test_clinical_relations_follow_the_literature():
    from sonogan.phantom.clinical import sample_clinical
    rows = {label: pd.DataFrame([sample_clinical(label, "x", np.random.default_rng([0, i, k])) for k in range(400)])
            for i, label in enumerate(CLASSES)}
    age = {label: d["age"].astype(float).mean() for label, d in rows.items()}
    post = {label: (d["menopausal"] == "1").mean() for label, d in rows.items()}
    onc = {label: (d["centre"] == "oncology").mean() for label, d in rows.items()}
    ca = {label: d["ca125"].astype(float).median() for label, d in rows.items()}
    assert age["borderline"] < age["benign"] < age["malignant"]
    assert post["malignant"] > post["benign"] and onc["malignant"] > onc["benign"]
    assert ca["malignant"] > 3 * ca["benign"]
    # overlap: plenty of benign patients have a CA-125 above the malignant 10th percentile
    assert (rows["benign"]["ca125"].astype(float) > rows["malignant"]["ca125"].astype(float).quantile(0.1)).mean() > 0.1


def test_refuses_non_empty_folder(tmp_path):
    out = tmp_path / "used"
    out.mkdir()
    (out / "keep.txt").write_text("earlier result")
    with pytest.raises(SonoganInputError, match="not empty"):
        generate_phantom(out, SMALL)
    assert (out / "keep.txt").read_text() == "earlier result"


def _inside_stats(ds) -> pd.DataFrame:
    rows = []
    for _, row in ds.manifest.iterrows():
        img = _read(ds.root, row["clean_image"] or row["image"], cv2.IMREAD_GRAYSCALE)
        mask = _read(ds.root, row["mask"]) > 0
        inner = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0   # leave the outline out
        edges = cv2.Canny(cv2.GaussianBlur(img, (3, 3), 0), 60, 140) > 0
        rows.append({"label": row["label"], "mean": img[mask].mean(),
                     "edges": edges[inner].mean() if inner.any() else 0.0})
    return pd.DataFrame(rows).groupby("label").mean()


def test_morphology_textbook(tmp_path):
    cfg = PhantomConfig(seed=0, n_benign=8, n_borderline=8, n_malignant=8, images_per_patient=1, image_size=128,
                        annotated_fraction=0.0, difficulty=0.0)
    stats = _inside_stats(generate_phantom(tmp_path / "textbook", cfg))
    assert stats.loc["benign", "mean"] < stats.loc["malignant", "mean"]      # anechoic cyst vs solid tissue
    assert stats.loc["borderline", "edges"] > stats.loc["benign", "edges"]   # septa and papillae


def test_morphology_default_difficulty_still_ordered(small):
    stats = _inside_stats(small)
    assert stats.loc["benign", "mean"] < stats.loc["malignant", "mean"]


def test_config_rejects_bad_values():
    from pydantic import ValidationError
    with pytest.raises(ValidationError):
        PhantomConfig(n_borderline=1)
    with pytest.raises(ValidationError):
        PhantomConfig(annotated_fraction=1.5)
    with pytest.raises(ValidationError):
        PhantomConfig(unknown_knob=3)


def test_montage(small, tmp_path):
    path = phantom_montage(small, tmp_path / "m.png", per_class=3, tile=64)
    img = cv2.imread(str(path))
    assert img.shape[0] == 3 * 64 and img.shape[1] > 3 * 64


def test_validates_without_warnings(small):
    validate = pytest.importorskip("sonogan.data.validate")
    report = validate.validate_dataset(load_dataset(small.root))
    assert report.n_patients == 9 and not report.duplicate_groups


@pytest.mark.slow
def test_default_cohort_size(tmp_path):
    # its generation time is a benchmark's business, not a unit test's
    ds = generate_phantom(tmp_path / "default", PhantomConfig())
    assert len(ds.manifest) == 204

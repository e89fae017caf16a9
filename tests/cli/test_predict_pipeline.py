"""``sonogan predict / export / evaluate`` on a pipeline file: no mask, no extra flag; mask PNGs;
the no-lesion flag; ONNX of both stages; ``evaluate --masks true|ignore`` says which masks it used."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from sonogan.data.manifest import load_dataset
from sonogan.imageio import decode_image
from sonogan.infer.external import PREDICTED_MASKS, TRUE_MASKS, evaluate_external
from sonogan.infer.pipeline import FILE_NAME, Pipeline, write_pipeline
from sonogan.infer.resolve import load_model
from sonogan.phantom import generate_phantom
from sonogan.phantom.config import PhantomConfig

COLS = ["p_benign", "p_borderline", "p_malignant"]


def _files(folder: Path, images: list[np.ndarray]) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for k, img in enumerate(images):
        paths.append(folder / f"scan{k}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return paths


def test_predict_a_pipeline_writes_masks_and_probabilities(tmp_path, cli, pipeline_parts):
    segmenter, roi_classifier, scans = pipeline_parts.segmenter, pipeline_parts.roi_classifier, pipeline_parts.scans
    path = write_pipeline(tmp_path / FILE_NAME, segmenter(tmp_path / "seg.pt"), roi_classifier(tmp_path / "m" / "best.pt"))
    images = scans(2)
    _files(tmp_path / "scans", images)
    code, out, err = cli(["predict", str(path), str(tmp_path / "scans"), "--out", str(tmp_path / "p.csv")])
    assert code == 0, err
    table = pd.read_csv(tmp_path / "p.csv")
    expected = Pipeline.load(path).run(images)
    assert np.allclose(table[COLS].to_numpy(), expected.probs, atol=1e-9)
    assert set(table["roi"]) == {"segmenter mask"} and table["lesion_found"].all()
    assert (table["roi_box"] == [" ".join(map(str, b)) for b in expected.boxes]).all()
    assert (table["mask_area"] == [int(m.sum()) for m in expected.masks]).all()
    for png, mask in zip(table["mask_png"], expected.masks):
        assert np.array_equal(cv2.imread(str(tmp_path / png), cv2.IMREAD_GRAYSCALE) > 0, mask)
    assert str(tmp_path / "p-masks") in out and "without a lesion mask" not in out
    assert json.loads((tmp_path / "p-summary.json").read_text())["segmenter"] == str(tmp_path / "seg.pt")
    # --masks-out without --out; a --segmenter beside the pipeline's own is refused
    code, out, err = cli(["predict", str(path), str(tmp_path / "scans"), "--masks-out", str(tmp_path / "m2")])
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "m2").iterdir()) == ["0001-scan0-mask.png", "0002-scan1-mask.png"]
    code, _, err = cli(["predict", str(path), str(tmp_path / "scans"), "--segmenter", str(tmp_path / "seg.pt")])
    assert code == 2 and "own segmenter" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(["predict", str(path), str(tmp_path / "scans"), "--masks-out", str(tmp_path / "m2")])
    assert code == 2 and "already exists" in err


def test_no_lesion_found_is_flagged_in_the_row(tmp_path, cli, pipeline_parts):
    segmenter, roi_classifier, scans = pipeline_parts.segmenter, pipeline_parts.roi_classifier, pipeline_parts.scans
    path = write_pipeline(tmp_path / FILE_NAME, segmenter(tmp_path / "seg.pt", bias=-5.0),
                          roi_classifier(tmp_path / "m" / "best.pt"))
    _files(tmp_path / "scans", [np.zeros((64, 64, 3), np.uint8), scans(1)[0]])
    code, out, err = cli(["predict", str(path), str(tmp_path / "scans"), "--out", str(tmp_path / "p.csv")])
    assert code == 0, err
    table = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert not table["lesion_found"].any() and (table["mask_area"] == 0).all() and (table["roi_box"] == "").all()
    assert set(table["roi"]) == {"whole scan (segmenter found nothing)"}
    assert "found no lesion on 2 image(s)" in out


def test_export_a_pipeline_and_predict_through_onnx(tmp_path, cli, pipeline_parts):
    segmenter, roi_classifier, scans = pipeline_parts.segmenter, pipeline_parts.roi_classifier, pipeline_parts.scans
    path = write_pipeline(tmp_path / "p" / FILE_NAME, segmenter(tmp_path / "seg.pt"),
                          roi_classifier(tmp_path / "m" / "best.pt"))
    _files(tmp_path / "scans", scans(2))
    code, out, err = cli(["export", str(path), "--onnx", "--out", str(tmp_path / "onnx")])
    assert code == 0, err
    assert "segmenter + 1 classifier member(s)" in out
    for model, name in ((path, "a.csv"), (tmp_path / "onnx", "b.csv")):
        code, _, err = cli(["predict", str(model), str(tmp_path / "scans"), "--out", str(tmp_path / name)])
        assert code == 0, err
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert np.abs(a[COLS].to_numpy() - b[COLS].to_numpy()).max() < 1e-5 and (a["roi_box"] == b["roi_box"]).all()


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    return generate_phantom(tmp_path_factory.mktemp("ph") / "ds", PhantomConfig(
        seed=3, n_benign=2, n_borderline=2, n_malignant=2, images_per_patient=1, image_size=64)).root


def test_evaluate_says_which_masks_it_used(phantom, tmp_path, cli, pipeline_parts):
    segmenter, roi_classifier, scans = pipeline_parts.segmenter, pipeline_parts.roi_classifier, pipeline_parts.scans
    seg = segmenter(tmp_path / "seg.pt", bias=None)
    clf = roi_classifier(tmp_path / "m" / "best.pt")
    path = write_pipeline(tmp_path / FILE_NAME, seg, clf)
    ds = load_dataset(phantom)
    assert (ds.real()["mask"] != "").all()  # the phantom has drawn masks
    pipe = load_model(path)
    drawn = evaluate_external([("pipe", pipe)], ds, n_resamples=10)
    predicted = evaluate_external([("pipe", pipe)], ds, n_resamples=10, masks="ignore")
    assert drawn.masks == {"pipe": TRUE_MASKS} and predicted.masks == {"pipe": PREDICTED_MASKS}
    assert np.allclose(drawn.probs["pipe"], evaluate_external([("clf", load_model(clf))], ds, n_resamples=10).probs["clf"])
    images = [decode_image(ds.path(f)) for f in ds.real().set_index("image_id").loc[drawn.ids, "image"]]
    assert np.allclose(predicted.probs["pipe"], Pipeline.load(path).run(images).probs)
    code, out, err = cli(["evaluate", str(path), str(phantom), "--masks", "ignore", "--resamples", "10",
                          "--out", str(tmp_path / "ev")])
    assert code == 0, err
    assert list(json.loads((tmp_path / "ev" / "results.json").read_text())["masks"].values()) == [PREDICTED_MASKS]
    assert "Masks: predicted masks" in out and "predicted masks" in (tmp_path / "ev" / "report.md").read_text()
    code, _, err = cli(["evaluate", str(clf), str(phantom), "--masks", "ignore", "--out", str(tmp_path / "ev2")])
    assert code == 2 and "finds the lesion itself" in err and not (tmp_path / "ev2").exists()
    code, _, err = cli(["evaluate", str(clf), str(phantom), "--masks", "maybe", "--out", str(tmp_path / "ev3")])
    assert code == 2 and "not a choice" in err

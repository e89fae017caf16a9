"""The pipeline file: segmenter + lesion-ROI classifier saved, loaded and run as the two stages by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sonogan.errors import SonoganInputError
from sonogan.infer.pipeline import FILE_NAME, Pipeline, export_pipeline_onnx, is_pipeline, write_pipeline
from sonogan.infer.predictor import Predictor, crop_with_box
from sonogan.lesion.locator import load_locator
from sonogan.preprocess.presets import PreprocessConfig, apply_preset, build_transforms


def test_crop_with_box_is_the_preset_and_its_loose_frame() -> None:
    image = np.zeros((60, 80, 3), np.uint8)
    image[10:50, 20:70] = 150  # the scan area: x 20..70, y 10..50
    mask = np.zeros((60, 80), np.uint8)
    mask[20:30, 30:50] = 1     # lesion box x 30..50 (w 20), y 20..30 (h 10)
    preset = PreprocessConfig(name="t", roi="lesion", roi_margin=0.25, size=32, median_ksize=None)
    pixels, box = crop_with_box(build_transforms(preset), image, mask)
    assert np.array_equal(pixels, apply_preset(preset, image, mask)[0])
    # by hand: margin 0.25 -> ceil(5) px left/right, ceil(2.5) = 3 px top/bottom, inside the scan area
    assert box == (25, 17, 55, 33)
    assert crop_with_box(build_transforms(preset), image, None)[1] is None  # the preset's whole-scan fallback
    assert crop_with_box(build_transforms(preset.model_copy(update={"roi": "none"})), image, mask)[1] is None


def test_round_trip_equals_the_two_stages_by_hand(tmp_path: Path, pipeline_parts) -> None:
    segmenter, roi_classifier, scans = pipeline_parts.segmenter, pipeline_parts.roi_classifier, pipeline_parts.scans
    seg = segmenter(tmp_path / "lesion" / "best.pt", bias=None)
    clf = roi_classifier(tmp_path / "exp" / "m" / "best.pt")
    path = write_pipeline(tmp_path / "deploy" / FILE_NAME, seg, clf)
    spec = json.loads(path.read_text())
    assert spec["segmenter"]["file"] == "../lesion/best.pt" and spec["classifier"]["file"] == "../exp/m/best.pt"
    assert spec["roi"]["preset"] == "roi-128" and spec["roi"]["roi_margin"] == 0.15 and is_pipeline(path.parent)
    images = scans()
    out = Pipeline.load(path).run(images)
    masks = load_locator(seg).predict_masks(images)                       # stage 1 by hand
    expected = Predictor.load(clf).predict_images(images, masks)          # stage 2 on its crop
    assert np.array_equal(out.probs, expected)
    assert all(np.array_equal(a, b) for a, b in zip(out.masks, masks))
    assert out.lesion_found.all() and all(b is not None for b in out.boxes)
    assert Pipeline.load(path).predict_images(images, [masks[0], None, None]).shape == (3, 3)


def test_no_lesion_found_falls_back_to_the_whole_scan_area(tmp_path: Path, pipeline_parts) -> None:
    segmenter, roi_classifier, scans = pipeline_parts.segmenter, pipeline_parts.roi_classifier, pipeline_parts.scans
    seg = segmenter(tmp_path / "seg.pt", bias=-5.0)  # a segmenter that finds nothing
    clf = roi_classifier(tmp_path / "m" / "best.pt")
    pipeline = Pipeline.load(write_pipeline(tmp_path / FILE_NAME, seg, clf))
    images = scans(2) + [np.zeros((64, 64, 3), np.uint8)]  # and a blank image
    out = pipeline.run(images)
    assert not out.lesion_found.any() and out.boxes == [None] * 3 and all(m.sum() == 0 for m in out.masks)
    assert np.allclose(out.probs, Predictor.load(clf).predict_images(images))  # no mask = the preset's fallback


def test_bad_pipeline_files_are_refused_in_one_line(tmp_path: Path, pipeline_parts) -> None:
    segmenter, roi_classifier, scans = pipeline_parts.segmenter, pipeline_parts.roi_classifier, pipeline_parts.scans
    seg = segmenter(tmp_path / "seg.pt")
    clf = roi_classifier(tmp_path / "m" / "best.pt")
    with pytest.raises(SonoganInputError, match="reads the whole scan"):
        write_pipeline(tmp_path / "a.json", seg, roi_classifier(tmp_path / "w" / "best.pt", "full-64"))
    with pytest.raises(SonoganInputError, match="no segmentation output|not a sonogan lesion"):
        write_pipeline(tmp_path / "b.json", clf, clf)
    path = write_pipeline(tmp_path / FILE_NAME, seg, clf)
    spec = json.loads(path.read_text())
    spec["roi"]["roi_margin"] = 0.5
    (tmp_path / "c.json").write_text(json.dumps(spec))
    with pytest.raises(SonoganInputError, match="crops differently"):
        Pipeline.load(tmp_path / "c.json")
    spec["roi"]["roi_margin"], spec["segmenter"]["file"] = 0.15, "gone.pt"
    (tmp_path / "d.json").write_text(json.dumps(spec))
    with pytest.raises(SonoganInputError, match="segmenter is missing"):
        Pipeline.load(tmp_path / "d.json")
    (tmp_path / "e.json").write_text(json.dumps({**spec, "version": 99}))
    with pytest.raises(SonoganInputError, match="newer than this sonogan"):
        Pipeline.load(tmp_path / "e.json")
    (tmp_path / "f.json").write_text(json.dumps({"format": "sonogan-pipeline", "segmenter": {"file": "x"}}))
    with pytest.raises(SonoganInputError, match="classifier"):
        Pipeline.load(tmp_path / "f.json")
    assert not is_pipeline(tmp_path / "seg.pt") and not is_pipeline(tmp_path / "f.txt")


def test_onnx_export_of_both_stages_reproduces_the_torch_pipeline(tmp_path: Path, pipeline_parts) -> None:
    segmenter, roi_classifier, scans = pipeline_parts.segmenter, pipeline_parts.roi_classifier, pipeline_parts.scans
    seg = segmenter(tmp_path / "seg.pt")  # confident everywhere: no mask pixel sits at the threshold
    clf = roi_classifier(tmp_path / "m" / "best.pt")
    path = write_pipeline(tmp_path / "p" / FILE_NAME, seg, clf)
    folder = export_pipeline_onnx(path, tmp_path / "onnx")
    assert {p.name for p in folder.iterdir()} == {"segmenter.onnx", "classifier", FILE_NAME}
    spec = json.loads((folder / FILE_NAME).read_text())
    assert spec["segmenter"] == {"file": "segmenter.onnx", "backend": "onnx"}
    assert spec["segmenter_onnx"]["max_abs_diff_vs_torch"] < 1e-4
    images = scans()
    torch_out, onnx_out = Pipeline.load(path).run(images), Pipeline.load(folder, intra_op_threads=1).run(images)
    assert all(np.array_equal(a, b) for a, b in zip(torch_out.masks, onnx_out.masks))
    assert torch_out.boxes == onnx_out.boxes and torch_out.lesion_found.all()
    assert np.abs(torch_out.probs - onnx_out.probs).max() < 1e-5
    with pytest.raises(SonoganInputError, match="already an ONNX pipeline"):
        export_pipeline_onnx(folder, tmp_path / "again")

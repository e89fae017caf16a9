"""``sonogan predict``: files and folders in, one CSV row per image, the Predictor's numbers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from sonogan.data.manifest import load_dataset
from sonogan.experiment.config import ExperimentConfig
from sonogan.experiment.protocol import run_experiment
from sonogan.infer import Predictor
from sonogan.models.checkpoint import save_classifier
from sonogan.models.classifiers import create_classifier
from sonogan.preprocess.fold import Normaliser
from sonogan.preprocess.cache import decode_image
from sonogan.preprocess.presets import get_preset

TINY_RUN = {"name": "tiny", "preset": "full-64", "baseline_only": True, "classic_sweep": [], "num_threads": 1,
            "phantom": {"n_benign": 5, "n_borderline": 4, "n_malignant": 4, "images_per_patient": 2, "image_size": 64},
            "split": {"folds": 2, "test_fraction": 0.2, "seed": 0}, "evaluation": {"n_resamples": 20, "tsne": False},
            "classifiers": [{"model": "frid-adar-cnn", "epochs": 1, "batch_size": 16,
                             "model_kwargs": {"widths": [4, 8, 8]}}]}


def _checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    model = create_classifier("frid-adar-cnn", num_classes=3, in_chans=1, widths=(4, 8, 8)).eval()
    return save_classifier(path, model, "frid-adar-cnn", 3, 1, ["benign", "borderline", "malignant"],
                           preprocess=get_preset("full-64").model_dump(mode="json"),
                           normaliser=Normaliser((90.0,), (40.0,)), image_size=64)


def _images(folder: Path, n: int = 3) -> list[Path]:
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir(parents=True)
    paths = []
    for k in range(n):
        img = np.zeros((80, 100, 3), np.uint8)
        img[5:75, 10:90] = rng.integers(30, 220, (70, 80, 3))
        path = folder / ("sub" if k else ".") / f"scan{k}.png"
        cv2.imwrite(str(path), img)
        paths.append(path)
    (folder / "notes.txt").write_text("not an image")
    return paths


def test_predicts_files_and_folders_into_a_csv(tmp_path, cli):
    ckpt = _checkpoint(tmp_path / "best.pt")
    paths = _images(tmp_path / "scans")
    code, out, err = cli(["predict", str(ckpt), str(tmp_path / "scans"), "--out", str(tmp_path / "p.csv")])
    assert code == 0, err
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 3 and "scan0.png" in out
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(paths)]
    expected = Predictor.load(ckpt).predict_images(images)
    assert np.allclose(table[["p_benign", "p_borderline", "p_malignant"]].to_numpy(), expected, atol=1e-9)
    assert (table["predicted"] == [["benign", "borderline", "malignant"][k] for k in expected.argmax(1)]).all()


def test_refuses_overwrite_missing_inputs_and_mask_mismatch(tmp_path, cli):
    ckpt = _checkpoint(tmp_path / "best.pt")
    paths = _images(tmp_path / "scans")
    (tmp_path / "p.csv").write_text("keep me")
    code, _, err = cli(["predict", str(ckpt), str(paths[0]), "--out", str(tmp_path / "p.csv")])
    assert code == 2 and "already exists" in err and (tmp_path / "p.csv").read_text() == "keep me"
    code, _, err = cli(["predict", str(ckpt), str(tmp_path / "nope.png")])
    assert code == 2 and "no such file" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(["predict", str(ckpt), str(paths[0]), str(paths[1]), "--mask", str(paths[0])])
    assert code == 2 and "masks for 2 images" in err
    code, _, err = cli(["predict", str(tmp_path / "p.csv"), str(paths[0])])
    assert code == 2 and "checkpoint" in err


def _dicom_cases():
    """The DICOM factory of tests/data/test_dicom.py (loaded by path: tests are not a package)."""
    spec = importlib.util.spec_from_file_location("dicom_cases", Path(__file__).parents[1] / "data" / "test_dicom.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dicom_import_then_predict_crops_alike_and_leaks_no_identifier(tmp_path, cli):
    cases = _dicom_cases()
    _, ids = cases.build_tree(tmp_path / "src")
    cases.build_compressed_tree(tmp_path / "src")
    ckpt = _checkpoint(tmp_path / "m" / "best.pt")
    code, _, err = cli(["data", "import", str(tmp_path / "src"), "--format", "dicom", "--out", str(tmp_path / "ds"),
                        "--salt", "s3"])
    assert code == 0, err
    out = tmp_path / "pred" / "p.csv"
    code, stdout, err = cli(["predict", str(ckpt), str(tmp_path / "src"), "--out", str(out), "--salt", "s3",
                             "--explain", "--refer-below", "0.5"])
    assert code == 0, err
    table = pd.read_csv(out)
    ds = load_dataset(tmp_path / "ds")
    # every frame of every readable file: the 13 imported ones, plus the loose file and the re-exported
    # copy (the import skips those two for its own reasons; a prediction has no class folders or duplicates)
    assert len(ds.manifest) == 13 and len(table) == 15
    # the same pixels as the imported PNGs (same crop), hence the same probabilities; same patient hashes
    imported = Predictor.load(ckpt).predict_images([decode_image(ds.root / p) for p in ds.manifest["image"]])
    key = lambda rows: sorted(set(map(tuple, np.round(rows, 9).tolist())))  # noqa: E731
    assert key(table[["p_benign", "p_borderline", "p_malignant"]].to_numpy()) == key(imported)
    assert set(table["patient"]) == set(ds.manifest["patient_id"])
    assert set(table["dicom_crop"]) == {"regions", "table", "scan_area"}
    summary = json.loads((tmp_path / "pred" / "p-summary.json").read_text())
    assert {s["file"].split("src/")[1] for s in summary["skipped"]} == {
        "benign/bad/corrupt.dcm", "malignant/ct.dcm", "malignant/nopix.dcm", "benign/broken-j2k.dcm",
        "benign/notes.txt", "benign/.DS_Store"}  # no file of a folder is left out without a word
    assert "skipped" in stdout and summary["operating_point"]["source"] == "given by hand"
    patients = pd.read_csv(tmp_path / "pred" / "p-patients.csv")
    assert patients["images"].sum() == 15 and set(patients["refer"]) <= {True, False}
    assert len(list((tmp_path / "pred" / "p-explain").glob("*-gradcam.png"))) == 15
    needles = {v for file_ids in ids for v in file_ids.values()}
    needles |= {part for v in list(needles) for part in v.split("^") if len(part) >= 6}
    for path in (tmp_path / "pred").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [n for n in needles if n.encode() in data], path.name


def test_patients_referral_from_validation_and_gradcam(tmp_path, cli):
    run = tmp_path / "run"
    torch.set_num_threads(1)
    run_experiment(ExperimentConfig.model_validate(TINY_RUN), run, progress=False)
    scans = _images(tmp_path / "scans", n=4)
    pd.DataFrame({"file": [p.name for p in scans], "patient_id": ["a", "a", "b", "b"]}).to_csv(tmp_path / "pt.csv")
    out = tmp_path / "o" / "p.csv"
    code, stdout, err = cli(["predict", str(run), str(tmp_path / "scans"), "--patients", str(tmp_path / "pt.csv"),
                             "--out", str(out), "--explain", "--clinical", "age=54", "--target-accuracy", "0.8"])
    assert code == 0, err
    images = pd.read_csv(out)
    patients = pd.read_csv(tmp_path / "o" / "p-patients.csv").set_index("patient")
    assert sorted(patients.index) == ["a", "b"] and (patients["images"] == 2).all()
    for name, part in images.groupby("patient"):
        mean = part[["p_benign", "p_borderline", "p_malignant"]].mean().to_numpy()
        assert np.allclose(patients.loc[name, ["p_benign", "p_borderline", "p_malignant"]].to_numpy(float), mean)
    point = json.loads((tmp_path / "o" / "p-summary.json").read_text())["operating_point"]
    assert point["source"].startswith("folds 0, 1 validation") and point["val_n"] > 0
    refer = (patients["confidence"] < point["threshold"]) | (patients["agreement"] < 1.0)
    assert (patients["refer"] == refer).all()
    assert (images["clinical_age"] == 54).all() and "not used by this image-only model" in stdout
    assert "referral: refer when confidence <" in stdout
    code, _, err = cli(["predict", str(run), str(tmp_path / "scans"), "--explain"])
    assert code == 2 and "--out" in err
    code, _, err = cli(["predict", str(run), str(tmp_path / "scans"), "--clinical", "age"])
    assert code == 2 and "key=value" in err


def _segmenter(path: Path) -> Path:
    """A 'lesion everywhere' segmenter (its final bias dominates), as in tests/lesion/test_locator.py."""
    from sonogan.lesion.train import save_lesion
    from sonogan.models.multitask import LesionModelConfig, build_lesion_model
    from sonogan.preprocess.presets import PreprocessConfig

    cfg = LesionModelConfig(backbone="unet", backbone_kwargs={"width": 4}, outputs="segmentation", num_classes=2)
    model = build_lesion_model(cfg)
    with torch.no_grad():
        model.backbone.decoder.final_conv.weight.zero_()
        model.backbone.decoder.final_conv.bias.fill_(5.0)
    preset = PreprocessConfig(name="t", roi="none", size=32, median_ksize=None)
    meta = {"class_names": ["a", "b"], "preprocess": preset.model_dump(mode="json"),
            "normaliser": Normaliser((100.0,), (50.0,)).to_dict(), "image_size": 32, "in_chans": 1, "postprocess": False}
    return save_lesion(path, model, cfg, meta)


def test_segmenter_finds_the_lesion_for_a_lesion_roi_model(tmp_path, cli):
    from sonogan.lesion.locator import load_locator

    torch.manual_seed(0)
    model = create_classifier("frid-adar-cnn", num_classes=3, in_chans=1, widths=(4, 8, 8)).eval()
    ckpt = save_classifier(tmp_path / "m" / "best.pt", model, "frid-adar-cnn", 3, 1, ["benign", "borderline", "malignant"],
                           preprocess=get_preset("roi-128").model_dump(mode="json"),
                           normaliser=Normaliser((90.0,), (40.0,)), image_size=64)
    seg = _segmenter(tmp_path / "seg" / "best.pt")
    paths = _images(tmp_path / "scans", n=2)
    code, out, err = cli(["predict", str(ckpt), str(tmp_path / "scans"), "--out", str(tmp_path / "a.csv")])
    assert code == 0 and "without a lesion mask" in out
    assert set(pd.read_csv(tmp_path / "a.csv")["roi"]) == {"whole scan (no mask)"}
    code, out, err = cli(["predict", str(ckpt), str(tmp_path / "scans"), "--segmenter", str(seg),
                          "--out", str(tmp_path / "b.csv"), "--explain"])
    assert code == 0, err
    table = pd.read_csv(tmp_path / "b.csv")
    assert set(table["roi"]) == {"segmenter mask"} and "without a lesion mask" not in out
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(paths)]
    masks = [m.astype(np.uint8) for m in load_locator(seg).predict_masks(images)]
    expected = Predictor.load(ckpt).predict_images(images, masks)
    assert np.allclose(table[["p_benign", "p_borderline", "p_malignant"]].to_numpy(), expected, atol=1e-9)
    assert len(list((tmp_path / "b-explain").glob("*-lesion.png"))) == 2  # the segmentation overlays
    assert json.loads((tmp_path / "b-summary.json").read_text())["segmenter"] == str(seg)


def test_an_onnx_export_predicts_like_its_checkpoint(tmp_path, cli):
    ckpt = _checkpoint(tmp_path / "m" / "best.pt")
    _images(tmp_path / "scans")
    code, _, err = cli(["export", str(ckpt), "--onnx", "--out", str(tmp_path / "onnx")])
    assert code == 0, err
    for model, name in ((ckpt, "a.csv"), (tmp_path / "onnx", "b.csv")):
        code, out, err = cli(["predict", str(model), str(tmp_path / "scans"), "--out", str(tmp_path / name),
                              "--refer-below", "0.5"])
        assert code == 0, err
    cols = ["p_benign", "p_borderline", "p_malignant"]
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert np.allclose(a[cols].to_numpy(), b[cols].to_numpy(), atol=1e-5)
    code, _, err = cli(["predict", str(tmp_path / "onnx"), str(tmp_path / "scans"), "--out", str(tmp_path / "c.csv"),
                        "--explain"])
    assert code == 2 and "ONNX export" in err and len(err.strip().splitlines()) == 1

"""ONNX export: every graph reproduces its PyTorch member (normaliser, resize, flip TTA and
fusion included), the folder is self-describing and movable, and bad inputs fail in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sonogan.errors import SonoganInputError
from sonogan.infer import OnnxPredictor, Predictor, apply_temperature, export_onnx
from sonogan.infer.onnx import resize_matrix
from sonogan.models.checkpoint import save_classifier
from sonogan.models.classifiers import create_classifier
from sonogan.models.ensemble import write_ensemble_file
from sonogan.preprocess.fold import Normaliser
from sonogan.preprocess.presets import get_preset

TOL = 1e-5
TINY = {"frid-adar-cnn": {"widths": (4, 8, 8)}, "resnet10t": {}}


def _save(path: Path, name: str = "frid-adar-cnn", seed: int = 0, tta: str = "none", in_chans: int = 1,
          image_size: int = 64, normaliser: Normaliser = Normaliser((100.0,), (50.0,))) -> Path:
    torch.manual_seed(seed)
    model = create_classifier(name, num_classes=3, in_chans=in_chans, **TINY[name]).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_classifier(path, model, name, 3, in_chans, ["benign", "malignant", "borderline"],
                           preprocess=get_preset("full-64").model_dump(mode="json"), normaliser=normaliser,
                           image_size=image_size, tta=tta)


def _images(n: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    out = []
    for _ in range(n):
        img = np.zeros((90, 120, 3), np.uint8)
        img[10:80, 10:110] = rng.integers(20, 230, (70, 100, 3))
        out.append(img)
    return out


def _max_diff(model_path: Path, out: Path) -> float:
    export_onnx(model_path, out)
    images = _images()
    torch_probs = Predictor.load(model_path).predict_images(images)
    onnx_probs = OnnxPredictor.load(out, intra_op_threads=1).predict_images(images)
    assert onnx_probs.shape == torch_probs.shape == (5, 3)
    return float(np.abs(onnx_probs - torch_probs).max())


@pytest.mark.parametrize("name", ["frid-adar-cnn", "resnet10t"])
@pytest.mark.parametrize("tta", ["none", "hflip"])
def test_single_model_matches_pytorch(tmp_path, name, tta):
    assert _max_diff(_save(tmp_path / "m" / "best.pt", name, tta=tta), tmp_path / "onnx") < TOL


def test_two_member_ensemble_with_resize_and_rgb_member_matches_pytorch(tmp_path):
    _save(tmp_path / "a" / "best.pt", "frid-adar-cnn", seed=1, tta="hflip")
    # 64-px pixels into a 48-px RGB model: the antialiased shrink and channel repeat are in the graph
    _save(tmp_path / "b" / "best.pt", "resnet10t", seed=2, in_chans=3, image_size=48,
          normaliser=Normaliser((120.0, 110.0, 100.0), (60.0, 55.0, 50.0)))
    ens = write_ensemble_file(tmp_path / "ensemble.json", {"a": Path("a/best.pt"), "b": Path("b/best.pt")},
                              [0.3, 0.7], "validation log-loss")
    assert _max_diff(ens, tmp_path / "onnx") < TOL
    meta = json.loads((tmp_path / "onnx" / "onnx_model.json").read_text())
    assert meta["weights"] == [0.3, 0.7] and meta["class_names"] == ["benign", "malignant", "borderline"]
    assert [m["file"] for m in meta["members"]] == ["member0-a.onnx", "member1-b.onnx"]
    assert meta["preprocess"] == get_preset("full-64").model_dump(mode="json")
    assert meta["members"][1]["image_size"] == 48 and 0.0 <= meta["max_abs_diff_vs_torch"] < 1e-4


def test_batch_axis_is_dynamic_and_folder_can_be_moved(tmp_path):
    ckpt = _save(tmp_path / "m" / "best.pt", tta="hflip")
    export_onnx(ckpt, tmp_path / "onnx")
    moved = shutil.move(tmp_path / "onnx", tmp_path / "elsewhere")
    pixels = np.random.default_rng(1).integers(0, 256, (7, 64, 64, 1), dtype=np.uint8)
    onnx_probs = OnnxPredictor.load(Path(moved) / "onnx_model.json").predict_pixels(pixels, batch_size=3)
    assert np.abs(onnx_probs - Predictor.load(ckpt).predict_pixels(pixels)).max() < TOL
    assert np.allclose(onnx_probs.sum(1), 1.0, atol=1e-6)


def test_predictor_temperature_travels_with_the_export(tmp_path):
    predictor = Predictor.load(_save(tmp_path / "m" / "best.pt"))
    pixels = np.random.default_rng(2).integers(0, 256, (4, 64, 64, 1), dtype=np.uint8)
    plain = predictor.predict_pixels(pixels)
    predictor.temperature = 2.5  # what a calibrated Predictor will carry
    onnx_predictor = OnnxPredictor.load(export_onnx(predictor, tmp_path / "onnx"))
    assert onnx_predictor.temperature == 2.5
    assert np.abs(onnx_predictor.predict_pixels(pixels) - apply_temperature(plain, 2.5)).max() < TOL


@pytest.mark.parametrize("n_in,n_out", [(64, 48), (64, 80), (97, 31)])
def test_resize_matrices_equal_torch_bilinear(n_in, n_out):
    x = torch.rand(2, 3, n_in, n_in) * 255
    shrink = n_out < n_in
    a = resize_matrix(n_in, n_out, shrink)
    want = F.interpolate(x, size=(n_out, n_out), mode="bilinear", align_corners=False, antialias=shrink)
    assert torch.allclose(a @ x @ a.T, want, atol=1e-3)  # grey levels 0..255: float32 rounding only


def test_load_and_predict_refuse_bad_input(tmp_path):
    with pytest.raises(SonoganInputError, match="cannot read the ONNX export"):
        OnnxPredictor.load(tmp_path / "missing")
    out = export_onnx(_save(tmp_path / "m" / "best.pt"), tmp_path / "onnx")
    predictor = OnnxPredictor.load(out)
    with pytest.raises(SonoganInputError, match=r"pass \(N, 64, 64, 1\)"):
        predictor.predict_pixels(np.zeros((2, 32, 32, 1), np.uint8))
    with pytest.raises(SonoganInputError, match="masks for"):
        predictor.predict_images(_images(1), masks=[None, None])
    (out / "member0-m.onnx").write_bytes(b"not a graph")
    with pytest.raises(SonoganInputError, match="ONNX Runtime cannot load"):
        OnnxPredictor.load(out)
    (out / "member0-m.onnx").unlink()
    with pytest.raises(SonoganInputError, match="member graph not found"):
        OnnxPredictor.load(out)
    (out / "onnx_model.json").write_text('{"format": "something-else"}')
    with pytest.raises(SonoganInputError, match="not a sonogan ONNX export"):
        OnnxPredictor.load(out)


def test_cli_exports_and_reports_bad_model_paths_in_one_line(tmp_path, cli):
    ckpt = _save(tmp_path / "m" / "best.pt")
    code, out, err = cli(["export", str(ckpt), "--onnx", "--out", str(tmp_path / "onnx")])
    assert code == 0, err
    assert "1 member(s)" in out and (tmp_path / "onnx" / "onnx_model.json").is_file()
    for bad, match in [(tmp_path / "nope.pt", "checkpoint not found"),
                       (tmp_path / "nope.json", "cannot read ensemble file"),
                       (tmp_path / "m", "checkpoint not found")]:
        code, _, err = cli(["export", str(bad), "--onnx", "--out", str(tmp_path / "x")])
        assert code == 2 and len(err.strip().splitlines()) == 1 and match in err, err
    code, _, err = cli(["export", str(ckpt), "--out", str(tmp_path / "x")])
    assert code == 2 and "add --onnx" in err

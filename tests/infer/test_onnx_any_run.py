"""``sonogan export --onnx`` takes any run that holds a model: a lesion run's whole-scan arm
(classification, multitask) as a classifier graph, an annotation-remover run as its detector and
remover graphs, each equal to PyTorch; a lesion arm that needs clinical values or crops is refused
in one line naming the arm to export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sonogan import layout
from sonogan.infer import OnnxPredictor
from sonogan.infer.onnx import INPUT_NAME, REMOVER_META_NAME, _session
from sonogan.infer.resolve import LesionClassifier
from sonogan.lesion.train import save_lesion
from sonogan.models.multitask import LesionModelConfig, build_lesion_model
from sonogan.models.remover import RemoverConfig, build_nets, save_remover
from sonogan.preprocess.fold import Normaliser
from sonogan.preprocess.presets import get_preset
from sonogan.preprocess.remove_annotations import to_model_input
from sonogan.runs import RunDir

TOL = 1e-5


def _run(path: Path, kind: str) -> Path:
    with RunDir.create(path, kind=kind) as run:
        run.set_info(folds=[0])
    return path


def _lesion_arm(run: Path, arm: str, outputs: str = "multitask", **extra) -> Path:
    torch.manual_seed(0)
    cfg = LesionModelConfig(backbone="unet", backbone_kwargs={"width": 4}, outputs=outputs, num_classes=3)
    meta = {"arm": arm, "class_names": ["benign", "borderline", "malignant"], "in_chans": 1, "image_size": 32,
            "preprocess": get_preset("full-64").model_dump(mode="json"),
            "normaliser": Normaliser((100.0,), (50.0,)).to_dict(), "clinical": None, "cascade": None, **extra}
    path = layout.arm_dir(run, 0, arm) / layout.BEST_FILE
    path.parent.mkdir(parents=True)
    return save_lesion(path, build_lesion_model(cfg).eval(), cfg, meta)


@pytest.mark.parametrize("outputs", ["classification", "multitask"])
def test_a_lesion_arm_exports_and_equals_its_checkpoint(tmp_path, cli, outputs):
    best = _lesion_arm(_run(tmp_path / "run", "lesion"), outputs, outputs)
    code, out, err = cli(["export", str(best), "--onnx", "--out", str(tmp_path / "onnx")])
    assert code == 0, err
    meta = json.loads((tmp_path / "onnx" / "onnx_model.json").read_text())
    assert [m["name"] for m in meta["members"]] == [outputs] and meta["class_names"] == ["benign", "borderline",
                                                                                          "malignant"]
    pixels = np.random.default_rng(3).integers(0, 256, (4, 64, 64, 1), dtype=np.uint8)
    onnx_probs = OnnxPredictor.load(tmp_path / "onnx", intra_op_threads=1).predict_pixels(pixels)
    torch_probs = LesionClassifier.load(best).predict_pixels(pixels)
    assert onnx_probs.shape == (4, 3) and np.abs(onnx_probs - torch_probs).max() < TOL


@pytest.mark.parametrize("extra", [{"cascade": {"crop": 32}}, {"clinical": {"columns": ["age"]}}])
def test_a_lesion_arm_that_needs_crops_or_clinical_values_is_refused(tmp_path, cli, extra):
    run = _run(tmp_path / "run", "lesion")
    best = _lesion_arm(run, "cascade", "classification", **extra)
    code, _, err = cli(["export", str(best), "--onnx", "--out", str(tmp_path / "onnx")])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "needs clinical variables or its segmenter's crops" in err
    assert str(layout.arm_dir(run.resolve(), 0, "classification") / "best.pt") in err
    assert not (tmp_path / "onnx").exists()


@pytest.mark.parametrize("gated", [False, True])
def test_a_remover_run_exports_detector_and_remover_equal_to_pytorch(tmp_path, cli, gated):
    cfg = RemoverConfig(size=64, channels=1, gated=gated, model_kwargs={"features": [4, 8]},
                        detector_kwargs={"widths": [4, 4, 4], "hidden": 8})
    torch.manual_seed(0)
    remover, detector = (net.eval() for net in build_nets(cfg))
    run = _run(tmp_path / "run", "annotation-remover")
    save_remover(run / layout.REMOVER_FILE, remover, detector, cfg)
    code, _, err = cli(["export", str(run), "--onnx", "--out", str(tmp_path / "onnx")])
    assert code == 0, err
    meta = json.loads((tmp_path / "onnx" / REMOVER_META_NAME).read_text())
    assert meta["graphs"]["remover"]["outputs"] == (["restored", "gate"] if gated else ["restored"])
    image = np.random.default_rng(5).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    x = to_model_input(image, 1, 64)[None]
    with torch.no_grad():
        restored, gate = remover.restore(torch.from_numpy(x))
        annotated_p = torch.softmax(detector(torch.from_numpy(x)), 1)[:, 1]
    got_p = _session(tmp_path / "onnx" / "detector.onnx").run(None, {INPUT_NAME: x})[0]
    got = _session(tmp_path / "onnx" / "remover.onnx").run(None, {INPUT_NAME: x})
    assert np.abs(got_p - annotated_p.numpy()).max() < TOL
    assert np.abs(got[0] - restored.clamp(0, 1).numpy()).max() < TOL
    if gated:
        assert np.abs(got[1] - torch.sigmoid(gate).numpy()).max() < TOL
    code, _, err = cli(["export", str(run), "--card", "--out", str(tmp_path / "card")])
    assert code == 2 and "is not inside an experiment run" in err

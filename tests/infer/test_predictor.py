"""The Predictor rebuilds itself from one file and refuses what it cannot apply honestly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sonogan.errors import SonoganInputError
from sonogan.infer import Predictor
from sonogan.models.checkpoint import save_classifier
from sonogan.models.classifiers import create_classifier
from sonogan.models.ensemble import write_ensemble_file
from sonogan.preprocess.fold import Normaliser
from sonogan.preprocess.presets import get_preset


def _save(path: Path, preset: str = "full-64", normaliser: Normaliser | None = Normaliser((100.0,), (50.0,)),
          seed: int = 0, tta: str = "none") -> Path:
    torch.manual_seed(seed)
    model = create_classifier("frid-adar-cnn", num_classes=2, in_chans=1, widths=(4, 8, 8)).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_classifier(path, model, "frid-adar-cnn", 2, 1, ["a", "b"],
                           preprocess=get_preset(preset).model_dump(mode="json"), normaliser=normaliser,
                           image_size=64, tta=tta)


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((90, 120, 3), np.uint8)
    img[10:80, 10:110] = rng.integers(20, 200, (70, 100, 3))
    return img


def test_single_model_and_ensemble_fuse_member_probabilities(tmp_path):
    a, b = _save(tmp_path / "a" / "best.pt", seed=0), _save(tmp_path / "b" / "best.pt", seed=1, tta="hflip")
    write_ensemble_file(tmp_path / "ensemble.json", {"a": Path("a/best.pt"), "b": Path("b/best.pt")}, [0.25, 0.75],
                        "validation log-loss")
    images = [_image(0), _image(1)]
    pa = Predictor.load(a).predict_images(images)
    pb = Predictor.load(b).predict_images(images)
    fused = Predictor.load(tmp_path / "ensemble.json")
    assert fused.class_names == ["a", "b"] and fused.members[1].tta == "hflip"
    assert np.allclose(fused.predict_images(images), 0.25 * pa + 0.75 * pb, atol=1e-9)
    assert np.allclose(pa.sum(1), 1.0)


def test_refuses_members_with_other_preprocessing_and_checkpoints_without_a_normaliser(tmp_path):
    _save(tmp_path / "a" / "best.pt")
    _save(tmp_path / "b" / "best.pt", preset="full-128")
    write_ensemble_file(tmp_path / "e.json", {"a": Path("a/best.pt"), "b": Path("b/best.pt")}, [0.5, 0.5], "equal")
    with pytest.raises(SonoganInputError, match="differ in preprocessing"):
        Predictor.load(tmp_path / "e.json")
    bare = _save(tmp_path / "c" / "best.pt", normaliser=None)
    with pytest.raises(SonoganInputError, match="no normaliser"):
        Predictor.load(bare)


def test_one_mask_per_image(tmp_path):
    predictor = Predictor.load(_save(tmp_path / "a" / "best.pt"))
    with pytest.raises(SonoganInputError, match="masks for"):
        predictor.predict_images([_image()], masks=[None, None])

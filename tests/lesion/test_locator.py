"""The locator rebuilds a segmenter from its checkpoint and maps masks back onto the original pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sonogan.errors import SonoganInputError
from sonogan.evaluate.segmentation import iou
from sonogan.lesion.locator import load_locator, unpad
from sonogan.lesion.train import save_lesion
from sonogan.models.multitask import LesionModelConfig, build_lesion_model
from sonogan.preprocess import functional as F
from sonogan.preprocess.fold import Normaliser
from sonogan.preprocess.presets import PreprocessConfig


def test_unpad_inverts_the_padded_resize() -> None:
    mask = np.zeros((30, 50), np.uint8)
    mask[5:20, 10:40] = 1
    square = F.resize(mask * 255, 64, "pad").astype(np.float32) / 255
    back = unpad(square, (30, 50)) > 0.5
    assert back.shape == (30, 50)
    assert iou(back, mask.astype(bool))[0] > 0.9
    assert not back[:3].any() and not back[:, :8].any()  # nothing leaks into the background


def _checkpoint(tmp_path: Path, outputs: str = "segmentation") -> Path:
    cfg = LesionModelConfig(backbone="unet", backbone_kwargs={"width": 4}, outputs=outputs, num_classes=2)
    model = build_lesion_model(cfg)
    # a constant "lesion everywhere" output: the final conv's bias dominates
    if outputs == "segmentation":
        with torch.no_grad():
            model.backbone.decoder.final_conv.weight.zero_()
            model.backbone.decoder.final_conv.bias.fill_(5.0)
    preset = PreprocessConfig(name="t", roi="none", size=32, median_ksize=None)
    meta = {"class_names": ["a", "b"], "preprocess": preset.model_dump(mode="json"),
            "normaliser": Normaliser((100.0,), (50.0,)).to_dict(), "image_size": 32, "in_chans": 1,
            "postprocess": False}
    return save_lesion(tmp_path / "best.pt", model, cfg, meta)


def test_masks_come_back_on_the_original_pixels(tmp_path: Path) -> None:
    loc = load_locator(_checkpoint(tmp_path))
    image = np.zeros((40, 70, 3), np.uint8)
    image[5:35, 10:60] = 120  # the scan area: everything else is black background
    [mask] = loc.predict_masks([image])
    assert mask.shape == (40, 70) and mask.dtype == bool
    assert mask[5:35, 10:60].all() and not mask[:5].any() and not mask[:, :10].any()


def test_classification_only_checkpoint_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SonoganInputError, match="no segmentation output"):
        load_locator(_checkpoint(tmp_path, "classification"))


def test_non_image_input_is_refused(tmp_path: Path) -> None:
    loc = load_locator(_checkpoint(tmp_path))
    with pytest.raises(SonoganInputError, match="uint8"):
        loc.predict_masks([np.zeros((8, 8), np.float32)])


def test_a_multitask_checkpoint_with_clinical_fusion_locates_without_clinical_values(tmp_path: Path) -> None:
    cfg = LesionModelConfig(backbone="unet", backbone_kwargs={"width": 4}, outputs="multitask", num_classes=2,
                            clinical_dim=3)
    meta = {"preprocess": PreprocessConfig(name="t", roi="none", size=32).model_dump(mode="json"),
            "normaliser": Normaliser((0.0,), (1.0,)).to_dict(), "image_size": 32, "in_chans": 1, "postprocess": True}
    loc = load_locator(save_lesion(tmp_path / "m.pt", build_lesion_model(cfg), cfg, meta))
    [mask] = loc.predict_masks([np.full((50, 50), 90, np.uint8)])
    assert mask.shape == (50, 50)

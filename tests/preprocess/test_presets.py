"""Every registered preset runs on a synthetic fan image with a lesion mask."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sonogan.errors import SonoganInputError
from sonogan.preprocess.presets import PRESETS, PreprocessConfig, apply_preset, get_preset, preprocess_one


def fan_with_lesion(h: int = 120, w: int = 160) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    img = np.zeros((h, w, 3), np.uint8)
    sector = np.zeros((h, w), np.uint8)
    cv2.ellipse(sector, (w // 2, 0), (110, 115), 0, 40, 140, 1, thickness=-1)
    speckle = rng.integers(60, 160, (h, w), dtype=np.uint8)
    for c in range(3):
        img[..., c] = speckle * sector
    lesion = np.zeros((h, w), np.uint8)
    cv2.circle(lesion, (w // 2, 70), 15, 255, -1)
    img[lesion > 0] //= 4                      # dark cyst
    cv2.putText(img, "ROV", (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 0), 1)
    return img, lesion


REQUIRED = {"flagship-64", "full-64", "full-128", "roi-128", "gan-64", "gan-128"}


def test_required_presets_exist():
    assert REQUIRED <= set(PRESETS.names())
    with pytest.raises(SonoganInputError):
        get_preset("no-such-preset")


@pytest.mark.parametrize("name", PRESETS.names())
def test_every_preset_runs(name: str):
    cfg = get_preset(name)
    img, lesion = fan_with_lesion()
    before = img.copy()
    out, mask = apply_preset(cfg, img, lesion)
    assert out.shape == (cfg.size, cfg.size, cfg.channels) and out.dtype == np.uint8
    assert mask.shape == (cfg.size, cfg.size) and set(np.unique(mask)) <= {0, 1} and mask.any()
    assert (img == before).all()
    if cfg.roi == "lesion":
        # the loose frame around a 31-px lesion fills most of the output with lesion
        assert mask.mean() > 0.3
    else:
        assert mask.mean() < 0.3


def test_roi_fallback_when_mask_missing_or_empty():
    img, _ = fan_with_lesion()
    cfg = get_preset("flagship-64")
    full = apply_preset(PreprocessConfig(name="x", roi="none"), img, None)[0]
    for m in (None, np.zeros(img.shape[:2], np.uint8)):
        res = preprocess_one(cfg, img, m)
        assert res.roi_fallback and (res.image == full).all() and not res.mask.any()
    assert not preprocess_one(cfg, img, fan_with_lesion()[1]).roi_fallback


def test_synthetic_rows_only_resize_and_convert():
    gan = np.random.default_rng(1).integers(0, 255, (64, 64, 1), dtype=np.uint8)
    gan[:10] = 0  # a black band would be cropped by scan-area detection on a real image
    out, mask = apply_preset(get_preset("roi-128"), gan, None, synthetic=True)
    assert out.shape == (128, 128, 1) and not mask.any()
    same = apply_preset(get_preset("flagship-64"), gan, None, synthetic=True)[0]
    assert (same == gan).all()


def test_mask_at_other_resolution_is_resized():
    img, lesion = fan_with_lesion()
    small = cv2.resize(lesion, (80, 60), interpolation=cv2.INTER_NEAREST)
    a = apply_preset("flagship-64", img, lesion)[1]
    b = apply_preset("flagship-64", img, small)[1]
    assert abs(int(a.sum()) - int(b.sum())) < 0.1 * a.sum()

"""Every registered preset runs on a synthetic fan image with a lesion mask, and gives exactly
the pixels of the functional ops called one after the other (the pre-transform pipeline)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sonogan.errors import SonoganInputError
from sonogan.preprocess import functional as F
from sonogan.preprocess import transforms as T
from sonogan.preprocess.presets import (PRESETS, PreprocessConfig, apply_preset, build_transforms, get_preset,
                                        preprocess_one)


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
# presets with a learned step need its checkpoint: tests/annotations/test_transform.py runs them
PLAIN = [name for name in PRESETS.names() if not get_preset(name).remove_annotations]


def test_required_presets_exist():
    assert REQUIRED <= set(PRESETS.names())
    with pytest.raises(SonoganInputError):
        get_preset("no-such-preset")


@pytest.mark.parametrize("name", PLAIN)
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


def direct(cfg: PreprocessConfig, image: np.ndarray, mask: np.ndarray | None,
           synthetic: bool) -> tuple[np.ndarray, np.ndarray, bool]:
    """The preset written out as functional calls, as preprocessing was before the transforms;
    the cache must keep these pixels so earlier experiments' numbers stay valid."""
    h, w = image.shape[:2]
    lesion = np.zeros((h, w), np.uint8) if mask is None else (mask > 0).astype(np.uint8)
    if lesion.shape != (h, w):
        lesion = cv2.resize(lesion, (w, h), interpolation=cv2.INTER_NEAREST)
    img = F.to_grayscale(image)[:, :, None] if cfg.channels == 1 else F.to_rgb(image)
    fallback = False
    if not synthetic:
        if cfg.median_ksize:
            img = F.median_filter(img, cfg.median_ksize)
        if cfg.scan_area:
            area, box = F.detect_scan_area(img, threshold=cfg.scan_threshold)
            img = F.crop_box(F.apply_scan_area(img, area, crop=False), box)
            lesion = F.crop_box(lesion * area, box)
        if cfg.roi == "lesion":
            if lesion.any():
                img, box = F.roi_crop(img, lesion, cfg.roi_margin)
                lesion = F.crop_box(lesion, box)
            else:
                fallback = True
        if cfg.clahe:
            img = F.clahe(img, cfg.clahe_clip, cfg.clahe_tile)
    img = F.resize(img, cfg.size, cfg.resize_mode, interpolation=cv2.INTER_AREA)
    lesion = F.resize(lesion, cfg.size, cfg.resize_mode, interpolation=cv2.INTER_NEAREST)
    return img, lesion, fallback


VARIANTS = [{}, {"clahe": True}, {"channels": 3, "clahe": True, "clahe_tile": 4}, {"resize_mode": "stretch"},
            {"median_ksize": None, "scan_area": False}, {"roi_margin": 0.6, "scan_threshold": 40}]


@pytest.mark.parametrize("name", PLAIN)
@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_pipeline_matches_direct_functional_calls(name: str, variant: int):
    cfg = get_preset(name).model_copy(update=VARIANTS[variant])
    img, lesion = fan_with_lesion()
    gan = np.random.default_rng(2).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    for image, mask, synthetic in [(img, lesion, False), (img, None, False), (img[:, :, 0], lesion[::2, ::2], False),
                                   (gan, None, True)]:
        res = preprocess_one(cfg, image, mask, synthetic=synthetic)
        want_img, want_mask, want_fallback = direct(cfg, image, mask, synthetic)
        assert res.image.dtype == np.uint8 and res.image.shape == want_img.shape
        assert np.array_equal(res.image, want_img) and np.array_equal(res.mask, want_mask)
        assert res.roi_fallback == want_fallback


def test_build_transforms_follows_the_config():
    steps = build_transforms(get_preset("flagship-64"))
    assert steps == [T.Channels(1), T.MedianFilter(3), T.ScanArea(10), T.LesionROI(0.15), T.Resize(64, "pad")]
    bare = PreprocessConfig(median_ksize=None, scan_area=False, roi="none", clahe=True, channels=3, size=32)
    assert build_transforms(bare) == [T.Channels(3), T.CLAHE(2.0, 8), T.Resize(32, "pad")]

"""Each pure op against a small hand-made array with a known answer."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sonogan.preprocess import functional as F


def fan_image(h: int = 60, w: int = 80) -> np.ndarray:
    """Black frame with a bright filled sector (apex at the top centre) plus a text-like speck."""
    img = np.zeros((h, w), np.uint8)
    cv2.ellipse(img, (w // 2, 5), (40, 50), 0, 45, 135, 150, thickness=-1)
    img[2, 2] = 255  # isolated bright pixel (like an overlay dot): removed by the opening
    return img


def test_detect_scan_area_finds_the_sector_box():
    img = np.zeros((40, 60), np.uint8)
    img[10:30, 20:50] = 200
    img[0, 0] = 255
    mask, box = F.detect_scan_area(img)
    assert box == (20, 10, 50, 30)
    assert mask.dtype == np.uint8 and mask[0, 0] == 0
    # the elliptical opening may shave a pixel or two off sharp corners, nothing more
    assert mask[11:29, 21:49].all() and 590 <= mask.sum() <= 600 and not mask[:10].any()


def test_detect_scan_area_sector_and_empty_image():
    img = fan_image()
    mask, (x0, y0, x1, y1) = F.detect_scan_area(img)
    ys, xs = np.nonzero(img > 10)
    assert mask[2, 2] == 0                       # the speck is not part of the scan
    assert abs(x0 - xs[xs > 5].min()) <= 1 and abs(x1 - 1 - xs.max()) <= 1
    assert abs(y1 - 1 - ys.max()) <= 1
    full, box = F.detect_scan_area(np.zeros((7, 9), np.uint8))
    assert box == (0, 0, 9, 7) and full.all()


def test_apply_scan_area_zeroes_outside_and_crops():
    img = np.full((10, 12), 50, np.uint8)
    mask = np.zeros((10, 12), np.uint8)
    mask[2:6, 3:9] = 1
    out = F.apply_scan_area(img, mask, crop=True)
    assert out.shape == (4, 6) and (out == 50).all()
    out2 = F.apply_scan_area(img, mask, crop=False)
    assert out2.shape == (10, 12) and out2.sum() == 50 * 24
    assert (img == 50).all()  # input untouched


def test_roi_crop_margin_arithmetic_and_clipping():
    img = np.arange(100 * 100, dtype=np.uint32).reshape(100, 100).astype(np.uint8)
    lesion = np.zeros((100, 100), np.uint8)
    lesion[40:60, 20:40] = 1                     # box (20, 40, 40, 60): 20 x 20
    crop, box = F.roi_crop(img, lesion, margin=0.15)
    assert box == (17, 37, 43, 63)               # ceil(0.15 * 20) = 3 on each side
    assert crop.shape == (26, 26) and (crop == img[37:63, 17:43]).all()
    lesion2 = np.zeros((100, 100), np.uint8)
    lesion2[0:10, 90:100] = 1                    # at the corner: enlarged box is clipped
    _, box2 = F.roi_crop(img, lesion2, margin=0.5)
    assert box2 == (85, 0, 100, 15)
    with pytest.raises(ValueError):
        F.roi_crop(img, np.zeros((100, 100), np.uint8))


def test_resize_pad_keeps_aspect_and_centres():
    img = np.full((20, 40), 255, np.uint8)       # 2:1 wide
    out = F.resize(img, 32, mode="pad")
    assert out.shape == (32, 32)
    rows = np.nonzero(out.max(axis=1))[0]
    assert (rows.min(), rows.max()) == (8, 23)   # 16 rows of image centred in 32
    assert (out[:8] == 0).all() and (out[24:] == 0).all() and (out[8:24] == 255).all()
    rgb = np.zeros((10, 30, 3), np.uint8)
    assert F.resize(rgb, 16).shape == (16, 16, 3)
    assert F.resize(img, (8, 12), mode="stretch").shape == (8, 12)


def test_resize_nearest_keeps_masks_binary():
    m = np.zeros((37, 23), np.uint8)
    m[5:20, 3:15] = 1
    out = F.resize(m, 64, interpolation=cv2.INTER_NEAREST)
    assert set(np.unique(out)) <= {0, 1}


def test_median_filter_removes_salt_and_keeps_shape():
    img = np.full((9, 9), 100, np.uint8)
    img[4, 4] = 255
    out = F.median_filter(img, 3)
    assert out[4, 4] == 100 and img[4, 4] == 255
    one = np.full((9, 9, 1), 7, np.uint8)
    assert F.median_filter(one, 3).shape == (9, 9, 1)
    with pytest.raises(ValueError):
        F.median_filter(img, 4)


def test_channels_round_trip_and_clahe():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    rgb = F.to_rgb(grey)
    assert rgb.shape == (8, 8, 3) and (rgb[..., 1] == grey).all()
    assert (F.to_grayscale(rgb) == grey).all()
    low = (np.arange(64 * 64).reshape(64, 64) % 20 + 100).astype(np.uint8)  # contrast 20 levels
    eq = F.clahe(low, clip_limit=4.0, tile=4)
    assert eq.shape == low.shape and int(eq.max()) - int(eq.min()) > 20
    assert F.clahe(np.stack([low] * 3, -1)).shape == (64, 64, 3)


def test_zscore_stats():
    a = np.zeros((4, 4, 2), np.uint8)
    b = np.zeros((4, 4, 2), np.uint8)
    b[..., 0] = 2
    b[..., 1] = 10
    mean, std = F.zscore_stats(np.stack([a, b]))
    np.testing.assert_allclose(mean, [1.0, 5.0])
    np.testing.assert_allclose(std, [1.0, 5.0])
    gmean, gstd = F.zscore_stats([np.full((3, 3), 4, np.uint8)])
    assert gmean.tolist() == [4.0] and gstd.tolist() == [0.0]

"""Dictionary transforms: image and mask move together, inputs stay unchanged, synthetic rows
skip the real-only steps, and every step has a token that names its parameters."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sonogan.preprocess import transforms as T


def square_scan() -> T.Sample:
    """A 40x60 frame, scan area rows 10..29 x cols 20..49, a 4x6 lesion inside at (14, 30)."""
    img = np.zeros((40, 60, 3), np.uint8)
    img[10:30, 20:50] = 200
    mask = np.zeros((40, 60), np.uint8)
    mask[14:18, 30:36] = 255
    mask[0, 0] = 1  # an annotation slip outside the scan area
    return T.make_sample(img, mask)


ALL = [T.Channels(1), T.Channels(3), T.MedianFilter(3), T.ScanArea(), T.LesionROI(), T.CLAHE(), T.Resize(16)]


@pytest.mark.parametrize("t", ALL, ids=repr)
def test_every_transform_returns_a_new_dict_and_leaves_its_input_unchanged(t):
    data = T.Channels(1)(square_scan())
    before = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in data.items()}
    out = t(data)
    assert out is not data and set(out) == set(data)
    for k, v in before.items():
        assert np.array_equal(data[k], v) if isinstance(v, np.ndarray) else data[k] == v, k
    assert out["image"].dtype == np.uint8 and out["image"].ndim == 3
    assert out["mask"].dtype == np.uint8 and out["mask"].shape == out["image"].shape[:2]


def test_make_sample_binarises_and_resizes_the_mask():
    s = square_scan()
    assert s["mask"].max() == 1 and s["mask"].sum() == 4 * 6 + 1 and not s["synthetic"]
    small = T.make_sample(np.zeros((40, 60), np.uint8), np.full((20, 30, 3), 7, np.uint8))
    assert small["mask"].shape == (40, 60) and small["mask"].all()
    assert not T.make_sample(np.zeros((5, 5), np.uint8))["mask"].any()


def test_scan_area_and_lesion_roi_crop_image_and_mask_together():
    s = T.ScanArea()(T.Channels(1)(square_scan()))
    # the elliptical opening of detect_scan_area zeroes a pixel or two at the sharp corners
    assert s["image"].shape == (20, 30, 1) and (s["image"][2:-2, 2:-2] == 200).all()
    assert s["mask"].shape == (20, 30) and s["mask"].sum() == 24      # the slip at (0, 0) is gone
    assert s["mask"][4:8, 10:16].all()
    roi = T.LesionROI(margin=0.5)(s)
    # lesion box (10, 4, 16, 8): 6 wide, 4 high -> +3 px left/right, +2 px top/bottom
    assert roi["image"].shape == (8, 12, 1) and roi["mask"].shape == (8, 12)
    assert roi["mask"][2:6, 3:9].all() and roi["mask"].sum() == 24 and not roi["roi_fallback"]


def test_lesion_roi_without_lesion_keeps_the_frame_and_flags_it():
    s = T.make_sample(np.full((20, 30), 9, np.uint8))
    out = T.LesionROI()(s)
    assert out["roi_fallback"] and out["image"] is s["image"] and not s["roi_fallback"]


def test_resize_area_for_the_image_nearest_for_the_mask():
    s = square_scan()
    out = T.Resize(20, "stretch")(s)
    assert out["image"].shape == (20, 20, 3) and set(np.unique(out["mask"])) <= {0, 1}
    # area averaging gives in-between grey at the scan's edge (nearest would not)
    assert len(np.unique(out["image"])) > 2


def test_synthetic_samples_skip_real_only_steps():
    gan = np.random.default_rng(1).integers(0, 255, (32, 32), dtype=np.uint8)
    gan[:10] = 0  # a black band that ScanArea would crop on a real image
    pipe = T.Compose([T.Channels(1), T.MedianFilter(3), T.ScanArea(), T.LesionROI(), T.CLAHE(), T.Resize(32)])
    out = pipe(T.make_sample(gan, synthetic=True))
    assert (out["image"][:, :, 0] == gan).all() and not out["roi_fallback"]
    assert [t.real_only for t in pipe.transforms] == [False, True, True, True, True, False]


def test_tokens_name_every_parameter():
    for t in ALL:
        token = t.cache_token()
        assert token["transform"] == type(t).__name__
        assert set(token) - {"transform"} == {f.name for f in dataclasses.fields(t)}
    assert T.CLAHE(3.0, 4).cache_token() == {"transform": "CLAHE", "clip_limit": 3.0, "tile": 4}
    assert T.Compose([T.Channels(3), T.Resize(8)]).cache_token() == [
        {"transform": "Channels", "channels": 3}, {"transform": "Resize", "size": 8, "mode": "pad"}]


def test_compose_refuses_a_step_without_token():
    with pytest.raises(TypeError, match="cache_token"):
        T.Compose([T.Channels(1), lambda d: d])

"""Torch datasets over the cache: shapes, labels, train-only z-score, the leakage guard."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from sonogan.data.manifest import DatasetSpec, load_dataset, write_dataset
from sonogan.data.splits import make_splits
from sonogan.data.torch_data import CachedImageDataset, train_val_test_datasets
from sonogan.errors import SonoganInputError
from sonogan.preprocess.cache import build_cache, open_cache

CLASSES = ["cyst", "tumour"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        img = np.zeros((50, 70), np.uint8)
        cv2.ellipse(img, (35, 0), (45, 48), 0, 40, 140, int(60 + 6 * i), thickness=-1)  # brightness varies
        img = (img.astype(np.int16) + rng.integers(-20, 20, img.shape) * (img > 0)).clip(0, 255).astype(np.uint8)
        lesion = np.zeros((50, 70), np.uint8)
        cv2.circle(lesion, (35, 28), 8, 255, -1)
        cv2.imwrite(str(root / f"i{i}.png"), img)
        cv2.imwrite(str(root / f"m{i}.png"), lesion)
        rows.append({"image_id": f"i{i:02d}", "image": f"i{i}.png", "mask": f"m{i}.png",
                     "label": CLASSES[i % 2], "patient_id": f"p{i:02d}", "source": "real"})
    for s in range(4):
        cv2.imwrite(str(root / f"s{s}.png"), np.full((64, 64), 255, np.uint8))  # bright: would shift stats
        rows.append({"image_id": f"s{s}", "image": f"s{s}.png", "label": "tumour", "source": "synthetic",
                     "generator": "dcgan", "synth_fold": str(s % 2)})
    write_dataset(root, DatasetSpec(name="tiny", classes=CLASSES), pd.DataFrame(rows))
    ds = load_dataset(root)
    build_cache(ds, "flagship-64")
    splits = make_splits(ds, n_folds=2, test_fraction=0.25, seed=0, duplicate_groups={})
    return ds, open_cache(ds, "flagship-64"), splits


def test_items_shapes_labels_and_scaling(setup):
    ds, cache, _ = setup
    ids = ["i03", "i00", "s1"]
    data = CachedImageDataset(cache, ids, CLASSES)
    x, y = data[0]
    assert x.shape == (1, 64, 64) and x.dtype == torch.float32 and isinstance(y, int)
    assert [data[k][1] for k in range(3)] == [1, 0, 1]
    assert 0.0 <= float(data.images.min()) and float(data.images.max()) <= 1.0
    raw = cache.get(["i03"])[0][0]
    assert torch.allclose(x[0], torch.from_numpy(raw[:, :, 0]).float() / 255)
    with_mask = CachedImageDataset(cache, ids, CLASSES, return_mask=True)
    x2, m2, y2 = with_mask[1]
    assert m2.shape == (64, 64) and m2.max() == 1 and y2 == 0
    with pytest.raises(SonoganInputError, match="not in"):
        CachedImageDataset(cache, ids, ["cyst", "other"])


def test_zscore_with_given_stats_and_transform(setup):
    _, cache, _ = setup
    ids = [f"i{i:02d}" for i in range(10)]
    imgs = cache.get(ids)[0].astype(np.float64)
    mean, std = np.array([imgs.mean()], np.float32), np.array([imgs.std()], np.float32)
    data = CachedImageDataset(cache, ids, CLASSES, mean, std, transform=lambda t: torch.flip(t, dims=[2]))
    assert abs(float(data.images.mean())) < 1e-4 and abs(float(data.images.std(unbiased=False)) - 1) < 1e-3
    assert torch.equal(data[0][0], torch.flip(data.images[0], dims=[2]))


def test_fold_datasets_use_train_stats_and_guard(setup):
    ds, cache, splits = setup
    fd = train_val_test_datasets(cache, splits, 0, CLASSES, ds=ds, synthetic_ids=["s0", "s2"])
    train_real = splits.partition(0, "train")
    expected = cache.get(train_real)[0].astype(np.float64)
    np.testing.assert_allclose(fd.mean, [expected.mean()], rtol=1e-5)
    np.testing.assert_allclose(fd.std, [expected.std()], rtol=1e-5)
    assert len(fd.train) == len(train_real) + 2 and fd.train.image_ids[-2:] == ["s0", "s2"]
    assert fd.val is not None and fd.val.image_ids == splits.partition(0, "val")
    assert fd.test.image_ids == splits.test
    # val/test are normalised with the TRAIN statistics, not their own
    val_raw = cache.get(fd.val.image_ids)[0][:, :, :, 0].astype(np.float32)
    assert torch.allclose(fd.val.images[:, 0], torch.from_numpy((val_raw - fd.mean[0]) / fd.std[0]), atol=1e-4)
    with pytest.raises(SonoganInputError, match="generated for fold '1'"):
        train_val_test_datasets(cache, splits, 0, CLASSES, ds=ds, synthetic_ids=["s1"])
    final = train_val_test_datasets(cache, splits, None, CLASSES)
    assert final.val is None and len(final.train) == 24 - len(splits.test)

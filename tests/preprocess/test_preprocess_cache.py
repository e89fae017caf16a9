"""The preprocessing cache: build, no-op rebuild, stale detection, interrupt safety, real MMOTU."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from sonogan.data.manifest import DatasetSpec, load_dataset, write_dataset
from sonogan.errors import SonoganInputError
from sonogan.preprocess import cache as cache_mod
from sonogan.preprocess.cache import build_cache, cache_key, open_cache
from sonogan.preprocess.presets import get_preset

MMOTU = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "mmotu-2d"


def _fan(seed: int, h: int = 90, w: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sector = np.zeros((h, w), np.uint8)
    cv2.ellipse(sector, (w // 2, 0), (80, 85), 0, 40, 140, 1, thickness=-1)
    img = rng.integers(50, 200, (h, w), dtype=np.uint8) * sector
    lesion = np.zeros((h, w), np.uint8)
    cv2.circle(lesion, (w // 2 + int(rng.integers(-8, 8)), 50), 10, 255, -1)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), lesion


def make_dataset(root: Path, n: int = 8) -> None:
    """n real fans (the last one without a mask) + one synthetic 32x32 GAN image."""
    rows = []
    for i in range(n):
        img, lesion = _fan(i)
        cv2.imwrite(str(root / f"img{i}.png"), img)
        mask = ""
        if i < n - 1:
            cv2.imwrite(str(root / f"img{i}_mask.png"), lesion)
            mask = f"img{i}_mask.png"
        rows.append({"image_id": f"r{i}", "image": f"img{i}.png", "mask": mask,
                     "label": "a" if i % 2 else "b", "patient_id": f"p{i}", "source": "real"})
    cv2.imwrite(str(root / "gan0.png"), np.random.default_rng(9).integers(0, 255, (32, 32), dtype=np.uint8))
    rows.append({"image_id": "s0", "image": "gan0.png", "mask": "", "label": "a", "patient_id": "s0",
                 "source": "synthetic", "generator": "dcgan", "synth_fold": "0"})
    write_dataset(root, DatasetSpec(name="tiny", classes=["a", "b"]), pd.DataFrame(rows))


@pytest.fixture()
def ds(tmp_path: Path):
    make_dataset(tmp_path)
    return load_dataset(tmp_path)


def test_build_contents(ds):
    path = build_cache(ds, "flagship-64")
    assert path.parent == ds.root / "cache" and path.name == f"flagship-64-{cache_key(ds, get_preset('flagship-64'))}"
    images = np.load(path / "images.npy")
    masks = np.load(path / "masks.npy")
    assert images.shape == (9, 64, 64, 1) and images.dtype == np.uint8 and masks.shape == (9, 64, 64)
    index = pd.read_csv(path / "index.csv")
    assert list(index.columns) == ["row", "image_id", "label", "source", "roi_fallback"]
    assert index["roi_fallback"].tolist() == [0] * 7 + [1, 0]  # r7 has no mask; synthetic rows never crop
    info = json.loads((path / "info.json").read_text())
    assert info["n_roi_fallback"] == 1 and info["n_synthetic"] == 1 and info["size_bytes"] > 9 * 64 * 64
    gan = cv2.imread(str(ds.root / "gan0.png"), cv2.IMREAD_GRAYSCALE)
    expected = cv2.resize(gan, (64, 64), interpolation=cv2.INTER_AREA)
    assert (images[8, :, :, 0] == expected).all()
    assert not list((ds.root / "cache").glob(".tmp-*"))


def test_second_build_is_a_noop(ds, monkeypatch):
    t0 = time.perf_counter()
    first = build_cache(ds, "full-64")
    t_first = time.perf_counter() - t0
    mtime = (first / "info.json").stat().st_mtime_ns

    def boom(task):  # any decode on the second call would fail the test
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache_mod, "_process_row", boom)
    t0 = time.perf_counter()
    second = build_cache(ds, "full-64")
    t_second = time.perf_counter() - t0
    assert second == first and (second / "info.json").stat().st_mtime_ns == mtime
    assert t_second < max(t_first, 0.05)


def test_open_cache_absent_then_stale(ds, tmp_path):
    with pytest.raises(SonoganInputError, match="run 'sonogan preprocess .* --preset roi-128' first"):
        open_cache(ds, "roi-128")
    build_cache(ds, "roi-128")
    c = open_cache(ds, "roi-128")
    imgs, masks = c.get(["r3", "r1"])
    assert imgs.shape == (2, 128, 128, 1) and (imgs[0] == c.images[3]).all() and masks[1].any()
    with pytest.raises(SonoganInputError, match="not in this cache"):
        c.rows(["nope"])
    m = ds.manifest.copy()
    m.loc[0, "label"] = "a"  # a relabel changes the manifest rows -> new key
    ds2 = write_dataset(tmp_path, ds.spec, m)
    with pytest.raises(SonoganInputError, match="stale"):
        open_cache(ds2, "roi-128")
    # touching an image file (new mtime) also makes it stale
    os.utime(ds.root / "img2.png", ns=(1, 1))
    with pytest.raises(SonoganInputError, match="stale"):
        open_cache(ds, "roi-128")


def test_interrupted_build_leaves_nothing(ds, monkeypatch):
    calls = {"n": 0}
    real = cache_mod._process_row

    def flaky(task):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(cache_mod, "_process_row", flaky)
    with pytest.raises(KeyboardInterrupt):
        build_cache(ds, "gan-64")
    assert list((ds.root / "cache").iterdir()) == []


def test_unreadable_image_names_the_file(ds):
    (ds.root / "img4.png").write_bytes(b"not a png")
    with pytest.raises(SonoganInputError, match="img4.png: image cannot be decoded"):
        build_cache(ds, "full-64")


def test_workers_give_identical_arrays(ds):
    a = build_cache(ds, "full-64", workers=0)
    b = build_cache(ds.__class__(root=ds.root, spec=ds.spec, manifest=ds.manifest),
                    get_preset("full-64").model_copy(update={"name": "full-64-w"}), workers=2)
    assert (np.load(a / "images.npy") == np.load(b / "images.npy")).all()
    assert (np.load(a / "masks.npy") == np.load(b / "masks.npy")).all()


@pytest.mark.mmotu
def test_real_mmotu_images(tmp_path):
    if not (MMOTU / "manifest.csv").is_file():
        pytest.skip(f"MMOTU not found at {MMOTU}; these tests need ../shared/datasets/mmotu-2d")
    src = pd.read_csv(MMOTU / "manifest.csv", dtype=str)
    pick = src.groupby("label").head(1).head(6)
    rows = pd.DataFrame({"image_id": pick["label"] + "-" + pick["source_id"],
                         "image": [str((MMOTU / p).resolve()) for p in pick["image"]],  # absolute: no copies
                         "mask": [str((MMOTU / p).resolve()) for p in pick["mask"]],
                         "label": pick["label"], "patient_id": "", "source": "real"})
    ds = write_dataset(tmp_path, DatasetSpec(name="mmotu6", classes=sorted(src["label"].unique())), rows)
    for preset in ("flagship-64", "full-128"):
        path = build_cache(ds, preset)
        info = json.loads((path / "info.json").read_text())
        assert info["n_images"] == 6 and info["n_roi_fallback"] == 0
        c = open_cache(ds, preset)
        assert c.images.shape[0] == 6 and all(c.masks[i].any() for i in range(6))
        for i in range(6):
            img = np.asarray(c.images[i])
            assert img.std() > 10          # real content, not an empty frame
            assert (img > 10).mean() > 0.3  # the scan (or lesion frame) fills a good share
    assert not list(Path(tmp_path).glob("*.jpg"))


def test_leftover_tmp_of_a_killed_build_is_removed(ds):
    dead = ds.root / "cache" / f".tmp-full-64-{cache_key(ds, get_preset('full-64'))}-999999999"
    dead.mkdir(parents=True)
    (dead / "images.npy").write_bytes(b"half")
    path = build_cache(ds, "full-64")
    assert not dead.exists() and path.is_dir()

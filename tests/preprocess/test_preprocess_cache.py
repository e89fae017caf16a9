"""The preprocessing cache: build, no-op rebuild, stale detection, interrupt safety, keys that
follow the transforms, the no-mask refusal, real MMOTU. ``ds`` comes from conftest.py."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from sonogan.data.manifest import DatasetSpec, write_dataset
from sonogan.errors import SonoganInputError
from sonogan.preprocess import cache as cache_mod
from sonogan.preprocess import presets as presets_mod
from sonogan.preprocess.cache import build_cache, cache_key, open_cache, read_info
from sonogan.preprocess.presets import get_preset
from sonogan.preprocess.transforms import DictTransform

MMOTU = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "mmotu-2d"


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
    first = build_cache(ds, "full-64")
    mtime = (first / "info.json").stat().st_mtime_ns

    def boom(task):  # any decode on the second call would fail the test
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache_mod, "_process_row", boom)
    second = build_cache(ds, "full-64")
    assert second == first and (second / "info.json").stat().st_mtime_ns == mtime


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
    with pytest.raises(SonoganInputError, match=r"img4.png: not an image PIL can decode .*\(manifest row r4\)"):
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


@dataclass(frozen=True)
class ToyLearned(DictTransform):
    """Stands for a learned step (annotation removal): its output depends on a checkpoint file,
    so its token carries the file's sha256."""

    checkpoint: str

    def apply(self, data: dict) -> dict:
        return dict(data)

    def cache_token(self) -> dict:
        digest = hashlib.sha256(Path(self.checkpoint).read_bytes()).hexdigest()
        return {**super().cache_token(), "sha256": digest}


def test_a_transform_token_enters_the_key(ds, tmp_path, monkeypatch):
    cfg = get_preset("full-64")
    plain = cache_key(ds, cfg)
    ckpt = tmp_path / "net.pt"
    ckpt.write_bytes(b"weights v1")
    real_build = presets_mod.build_transforms
    monkeypatch.setattr(presets_mod, "build_transforms", lambda c: [*real_build(c), ToyLearned(str(ckpt))])
    v1 = cache_key(ds, cfg)
    ckpt.write_bytes(b"weights v2")  # same path, new weights -> new key, old cache stale
    v2 = cache_key(ds, cfg)
    assert len({plain, v1, v2}) == 3
    path = build_cache(ds, cfg)
    assert read_info(path)["transforms"][-1]["sha256"] == hashlib.sha256(b"weights v2").hexdigest()
    ckpt.write_bytes(b"weights v3")
    with pytest.raises(SonoganInputError, match="stale"):
        open_cache(ds, cfg)


def test_lesion_preset_refuses_a_dataset_without_masks(tmp_path, tiny_dataset, monkeypatch):
    nomask = tiny_dataset(tmp_path, masks="none")
    monkeypatch.setattr(cache_mod, "_process_row", None)  # refused before any decoding
    with pytest.raises(SonoganInputError, match="none of the 8 real images has a .* lesion mask.*--allow-no-masks"):
        build_cache(nomask, "flagship-64")
    assert not (tmp_path / "cache").exists()
    monkeypatch.undo()
    assert read_info(build_cache(nomask, "full-64"))["n_roi_fallback"] == 0   # no lesion ROI: nothing to refuse
    path = build_cache(nomask, "roi-128", allow_no_masks=True)
    assert read_info(path)["n_roi_fallback"] == 8 and open_cache(nomask, "roi-128").roi_fallback[:8].all()
    with pytest.raises(SonoganInputError, match="none of the 8"):  # the flag is asked for every time
        build_cache(nomask, "roi-128")


def test_all_empty_masks_are_refused_too(tmp_path, tiny_dataset):
    empty = tiny_dataset(tmp_path, masks="empty")
    with pytest.raises(SonoganInputError, match="none of the 8 real images"):
        build_cache(empty, "gan-64")
    assert read_info(build_cache(empty, "gan-64", allow_no_masks=True))["n_roi_fallback"] == 8


def test_synthetic_only_dataset_needs_no_masks(tmp_path, tiny_dataset):
    syn = tiny_dataset(tmp_path, n=0)
    assert read_info(build_cache(syn, "gan-64"))["n_synthetic"] == 1

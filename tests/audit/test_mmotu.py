"""On real MMOTU images: the pixel-space gate catches planted augmented copies of training images
and leaves distinct real images (of other classes) alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sonogan.audit.memorisation import augmented_copies, memorisation_check, pixel_embed
from sonogan.data.manifest import DatasetSpec, write_dataset
from sonogan.preprocess.cache import build_cache, open_cache

MMOTU = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "mmotu-2d"


@pytest.mark.mmotu
def test_planted_copies_are_caught_on_mmotu(tmp_path):
    if not (MMOTU / "manifest.csv").is_file():
        pytest.skip(f"MMOTU not found at {MMOTU}; this test needs ../shared/datasets/mmotu-2d")
    src = pd.read_csv(MMOTU / "manifest.csv", dtype=str)
    pick = pd.concat([src[src["label"] == "high_grade_serous"].head(30),
                      src[src["label"] != "high_grade_serous"].groupby("label").head(3)])
    rows = pd.DataFrame({"image_id": [f"m{k}" for k in range(len(pick))],
                         "image": [str((MMOTU / p).resolve()) for p in pick["image"]],  # absolute: no copies
                         "mask": [str((MMOTU / p).resolve()) for p in pick["mask"]],
                         "label": pick["label"].tolist(), "patient_id": "", "source": "real"})
    ds = write_dataset(tmp_path, DatasetSpec(name="mmotu-part", classes=sorted(src["label"].unique())), rows)
    build_cache(ds, "gan-64")
    images, _ = open_cache(ds, "gan-64").get(rows["image_id"].tolist())
    real, others = images[:30], images[30:]
    planted = augmented_copies(real[:10], copies=1, seed=777)  # not the calibration's seed
    mem = memorisation_check(real, np.concatenate([planted, others]), {"pixel": pixel_embed})
    flagged = mem.flagged
    assert flagged[:10].sum() >= 8           # planted near-copies caught
    assert flagged[10:].sum() <= 1           # distinct images of other classes pass
    assert (mem.spaces["pixel"].nearest[:10] == np.arange(10)).mean() >= 0.9  # each copy finds its source

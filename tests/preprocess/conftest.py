"""A tiny dataset of fan-shaped scans for the preprocessing tests.

Example: ``tiny_dataset(tmp_path, masks="none")`` writes 8 real fans without masks + 1 GAN image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal

import cv2
import numpy as np
import pandas as pd
import pytest

from sonogan.data.manifest import Dataset, DatasetSpec, load_dataset, write_dataset

Masks = Literal["all-but-last", "none", "empty"]


def _fan(seed: int, h: int = 90, w: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sector = np.zeros((h, w), np.uint8)
    cv2.ellipse(sector, (w // 2, 0), (80, 85), 0, 40, 140, 1, thickness=-1)
    img = rng.integers(50, 200, (h, w), dtype=np.uint8) * sector
    lesion = np.zeros((h, w), np.uint8)
    cv2.circle(lesion, (w // 2 + int(rng.integers(-8, 8)), 50), 10, 255, -1)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), lesion


def make_dataset(root: Path, n: int = 8, masks: Masks = "all-but-last", synthetic: bool = True) -> Dataset:
    """n real fans + (``synthetic``) one 32x32 GAN image. ``masks``: every real fan but the
    last has a lesion mask ("all-but-last"), none has one, or all have an all-zero one."""
    rows = []
    for i in range(n):
        img, lesion = _fan(i)
        cv2.imwrite(str(root / f"img{i}.png"), img)
        mask = ""
        if masks == "empty" or (masks == "all-but-last" and i < n - 1):
            cv2.imwrite(str(root / f"img{i}_mask.png"), lesion * 0 if masks == "empty" else lesion)
            mask = f"img{i}_mask.png"
        rows.append({"image_id": f"r{i}", "image": f"img{i}.png", "mask": mask,
                     "label": "a" if i % 2 else "b", "patient_id": f"p{i}", "source": "real"})
    if synthetic:
        gan = np.random.default_rng(9).integers(0, 255, (32, 32), dtype=np.uint8)
        cv2.imwrite(str(root / "gan0.png"), gan)
        rows.append({"image_id": "s0", "image": "gan0.png", "mask": "", "label": "a", "patient_id": "s0",
                     "source": "synthetic", "generator": "dcgan", "synth_fold": "0"})
    write_dataset(root, DatasetSpec(name="tiny", classes=["a", "b"]), pd.DataFrame(rows))
    return load_dataset(root)


@pytest.fixture()
def tiny_dataset() -> Callable[..., Dataset]:
    return make_dataset


@pytest.fixture()
def ds(tmp_path: Path) -> Dataset:
    return make_dataset(tmp_path)

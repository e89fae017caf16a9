"""Tiny real image files for the data tests (written with cv2 into tmp_path)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest

from sonogan.data.manifest import DatasetSpec, write_dataset

MMOTU = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "mmotu-2d"


def mmotu_root() -> Path:
    if not (MMOTU / "manifest.csv").is_file():
        pytest.skip(f"MMOTU not found at {MMOTU}; these tests need ../shared/datasets/mmotu-2d")
    return MMOTU


def write_image(path: Path, seed: int, size: tuple[int, int] = (48, 40)) -> Path:
    """A smoothed-noise greyscale image (w, h) = size; different seeds give distant phashes."""
    rng = np.random.default_rng(seed)
    w, h = size
    small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8)), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


def write_mask(path: Path, size: tuple[int, int] = (48, 40), empty: bool = False) -> Path:
    w, h = size
    m = np.zeros((h, w), np.uint8)
    if not empty:
        cv2.circle(m, (w // 2, h // 2), min(w, h) // 4, 255, -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), m)
    return path


def write_bomb_png(path: Path, width: int, height: int) -> Path:
    """A tiny 8x8 PNG whose header (IHDR, CRC fixed) claims ``width`` x ``height`` px: a
    decompression bomb as a reader sees it, without a huge file."""
    ok, buf = cv2.imencode(".png", np.zeros((8, 8), np.uint8))
    assert ok
    data = bytearray(buf.tobytes())
    assert data[12:16] == b"IHDR"  # signature (8), chunk length (4), chunk type (4), then width, height
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # CRC over type + 13 data bytes
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root -> (size, mtime_ns): to prove an import left the source alone."""
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def folder_source(tmp_path: Path) -> Path:
    """SRC/benign (3 images, masks in SRC/benign/masks), SRC/malignant (3 images, masks in
    SRC/masks/malignant), patients.csv with 2 patients per class."""
    src = tmp_path / "src"
    patients = []
    for c, cls in enumerate(["malignant", "benign"]):
        for k in range(3):
            name = f"img{k}.png"
            write_image(src / cls / name, seed=10 * c + k)
            mask_dir = src / cls / "masks" if cls == "benign" else src / "masks" / cls
            write_mask(mask_dir / name)
            patients.append({"image": f"{cls}/{name}", "patient_id": f"{cls}_p{k % 2}"})
    pd.DataFrame(patients).to_csv(src / "patients.csv", index=False)
    return src


def make_dataset(root: Path, n_per_class: int = 4, masks: str = "required",
                 clinical: bool = True) -> tuple[DatasetSpec, pd.DataFrame]:
    """A valid 2-class dataset on disk (2 patients per class); returns spec and manifest."""
    spec_data = {"name": "toy", "classes": ["benign", "malignant"], "rare_classes": ["malignant"],
                 "masks": masks}
    if clinical:
        spec_data["clinical"] = {"age": {"type": "continuous", "min": 18, "max": 100},
                                 "ca125_high": {"type": "binary"}}
    spec = DatasetSpec.model_validate(spec_data)
    rows = []
    for c, cls in enumerate(spec.classes):
        for k in range(n_per_class):
            iid = f"{cls}-{k}"
            write_image(root / "images" / cls / f"{iid}.png", seed=100 * c + k)
            write_mask(root / "masks" / cls / f"{iid}.png")
            rows.append({"image_id": iid, "image": f"images/{cls}/{iid}.png", "mask": f"masks/{cls}/{iid}.png",
                         "label": cls, "patient_id": f"{cls}_p{k % 2}", "source": "real",
                         "age": str(40 + k), "ca125_high": str(c)})
    df = pd.DataFrame(rows)
    if not clinical:
        df = df.drop(columns=["age", "ca125_high"])
    write_dataset(root, spec, df)
    return spec, df


@pytest.fixture
def dh() -> SimpleNamespace:
    """The helpers above, as a fixture (test modules here are not a package, so they
    cannot import this conftest by name without clashing with other conftest files)."""
    return SimpleNamespace(write_image=write_image, write_mask=write_mask, snapshot=snapshot,
                           make_dataset=make_dataset, mmotu_root=mmotu_root, write_bomb_png=write_bomb_png)

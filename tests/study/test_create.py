"""Study creation: the draw (n, ratio, classes, seed), metadata-free PNGs, recorded per-rater orders."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, PngImagePlugin
from pydantic import ValidationError
from sqlalchemy import select

from sonogan.data.manifest import DatasetSpec, write_dataset
from sonogan.errors import SonoganInputError
from sonogan.study.create import Candidate, StudyConfig, create_study, encode_png, image_set, load_pixels, rater_order
from sonogan.preprocess.presets import pipeline
from sonogan.study.db import Assignment, Item, Rater, Study, make_engine, session


def _images(folder: Path, names: list[str], size: tuple[int, int] = (20, 30)) -> None:
    rng = np.random.default_rng(len(names))
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(path)


def _dataset(root: Path) -> Path:
    """A sonogan dataset folder with real and synthetic rows of two classes."""
    rows = []
    for i in range(12):
        source, label = ("real", "benign") if i < 4 else ("real", "malignant") if i < 8 else ("synthetic", "malignant")
        _images(root, [f"images/{i}.png"])
        rows.append({"image_id": f"x{i}", "image": f"images/{i}.png", "mask": "", "label": label,
                     "patient_id": f"p{i}", "source": source})
    write_dataset(root, DatasetSpec(name="toy", classes=["benign", "malignant"]), pd.DataFrame(rows))
    return root


def _items(db: str) -> list[Item]:
    with session(make_engine(db, create=False)) as s:
        return list(s.scalars(select(Item).order_by(Item.id)).all())


def test_draw_respects_n_ratio_classes_and_seed(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "ds")
    cfg = StudyConfig(n=5, ratio=0.4, raters=["ana"], classes=["malignant"], seed=7, size=40)
    for db in ("a.db", "b.db"):
        create_study(tmp_path / db, ds, ds, cfg)
    items = _items(str(tmp_path / "a.db"))
    assert sorted(i.source for i in items) == ["real"] * 3 + ["synthetic"] * 2
    assert {i.label for i in items} == {"malignant"}
    assert [i.origin for i in items] == [i.origin for i in _items(str(tmp_path / "b.db"))]  # same seed, same draw
    with session(make_engine(tmp_path / "a.db", create=False)) as s:
        study = s.scalars(select(Study)).one()
        assert study.classes == ["benign", "malignant"] and study.config["ratio"] == 0.4
    with pytest.raises(SonoganInputError, match="needs 5 images but has 4 of classes"):
        create_study(tmp_path / "c.db", ds, ds, cfg.model_copy(update={"ratio": 1.0}))
    assert not (tmp_path / "c.db").exists()  # nothing is written before the draw succeeds


def test_each_rater_gets_a_recorded_seeded_order(tmp_path: Path) -> None:
    _images(tmp_path / "real", [f"r{i}.png" for i in range(6)])
    _images(tmp_path / "syn", [f"s{i}.png" for i in range(6)], size=(16, 16))
    created = create_study(tmp_path / "s.db", tmp_path / "real", tmp_path / "syn",
                           StudyConfig(n=8, raters=["ana", "ben", "cleo"], seed=11))
    assert len({created.admin_token, *created.rater_tokens.values()}) == 4
    items = [i.id for i in _items(str(tmp_path / "s.db"))]
    orders = {}
    with session(make_engine(tmp_path / "s.db", create=False)) as s:
        for index, rater in enumerate(s.scalars(select(Rater).order_by(Rater.id)).all()):
            stored = s.scalars(select(Assignment.item_id).where(Assignment.rater_id == rater.id)
                               .order_by(Assignment.position)).all()
            seed, perm = rater_order(8, 11, index)
            assert rater.order_seed == seed and list(stored) == [items[i] for i in perm]
            orders[rater.name] = tuple(stored)
    assert len(set(orders.values())) == 3  # three different orders
    assert image_set(tmp_path / "real", "real")[0][0].label is None  # a flat folder has no classes


def test_encode_png_strips_metadata_and_sizes(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "synthetic sample from gan-hgs-f0")
    path = tmp_path / "syn_gan_0.png"
    Image.fromarray(np.full((30, 60, 3), 90, np.uint8)).save(path, pnginfo=info)
    data = encode_png(load_pixels(Candidate(path, None), None), 48)
    assert b"gan-hgs" not in data and b"tEXt" not in data
    img = Image.open(io.BytesIO(data))
    assert img.mode == "L" and img.size == (48, 24)


def test_preset_crops_real_images_like_the_generator_saw_them(tmp_path: Path) -> None:
    scan = np.zeros((60, 80), np.uint8)
    scan[20:40, 30:50] = 200  # the lesion
    mask = (scan > 0).astype(np.uint8) * 255
    for name, img in (("scan.png", scan), ("mask.png", mask)):
        Image.fromarray(img).save(tmp_path / name)
    crop = load_pixels(Candidate(tmp_path / "scan.png", "x", tmp_path / "mask.png"), pipeline("gan-64"))
    assert crop.shape == (64, 64) and crop.dtype == np.uint8
    assert crop.mean() > 2 * scan.mean()  # the lesion fills much more of the crop than of the scan
    with pytest.raises(SonoganInputError, match="unknown name"):
        create_study(tmp_path / "p.db", tmp_path, tmp_path, StudyConfig(n=2, raters=["a"], preset="no-such"))


def test_config_refuses_bad_raters_and_ratios() -> None:
    for bad in ({"raters": []}, {"raters": ["a b"]}, {"raters": ["ana", "ana"]}, {"raters": ["a"], "ratio": 1.5},
                {"raters": ["a"], "n": 1}):
        with pytest.raises(ValidationError):
            StudyConfig(**bad)


@pytest.mark.mmotu
def test_study_from_mmotu_lesion_crops(tmp_path: Path) -> None:
    """Real MMOTU high-grade serous images through the GAN preset beside 64-px "synthetic" crops."""
    from sonogan.data.importers import ImportOptions, import_dataset

    mmotu = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "mmotu-2d"
    if not (mmotu / "manifest.csv").is_file():
        pytest.skip(f"MMOTU not found at {mmotu}; this test needs ../shared/datasets/mmotu-2d")
    sub = tmp_path / "mmotu-sub"
    sub.mkdir()
    table = pd.read_csv(mmotu / "manifest.csv", dtype=str, keep_default_na=False)
    table.groupby("label").head(3).to_csv(sub / "manifest.csv", index=False)
    for d in ("images", "masks"):  # link, never copy the shared data
        (sub / d).symlink_to((mmotu / d).resolve())
    ds = import_dataset(sub, "mmotu", tmp_path / "ds", ImportOptions(link=True))
    _images(tmp_path / "syn" / "high_grade_serous", [f"{i}.png" for i in range(3)], size=(64, 64))
    cfg = StudyConfig(n=6, raters=["ana"], classes=["high_grade_serous"], preset="gan-64", size=128)
    create_study(tmp_path / "s.db", ds.root, tmp_path / "syn", cfg)
    items = _items(str(tmp_path / "s.db"))
    assert {i.label for i in items} == {"high_grade_serous"} and len(items) == 6
    # both sources are square lesion crops at the same size: the shape gives nothing away
    assert {Image.open(io.BytesIO(i.png)).size for i in items} == {(128, 128)}

"""``sonogan predict``: files and folders in, one CSV row per image, the Predictor's numbers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from sonogan.infer import Predictor
from sonogan.models.checkpoint import save_classifier
from sonogan.models.classifiers import create_classifier
from sonogan.preprocess.fold import Normaliser
from sonogan.preprocess.presets import get_preset


def _checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    model = create_classifier("frid-adar-cnn", num_classes=3, in_chans=1, widths=(4, 8, 8)).eval()
    return save_classifier(path, model, "frid-adar-cnn", 3, 1, ["benign", "borderline", "malignant"],
                           preprocess=get_preset("full-64").model_dump(mode="json"),
                           normaliser=Normaliser((90.0,), (40.0,)), image_size=64)


def _images(folder: Path, n: int = 3) -> list[Path]:
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir(parents=True)
    paths = []
    for k in range(n):
        img = np.zeros((80, 100, 3), np.uint8)
        img[5:75, 10:90] = rng.integers(30, 220, (70, 80, 3))
        path = folder / ("sub" if k else ".") / f"scan{k}.png"
        cv2.imwrite(str(path), img)
        paths.append(path)
    (folder / "notes.txt").write_text("not an image")
    return paths


def test_predicts_files_and_folders_into_a_csv(tmp_path, cli):
    ckpt = _checkpoint(tmp_path / "best.pt")
    paths = _images(tmp_path / "scans")
    code, out, err = cli(["predict", str(ckpt), str(tmp_path / "scans"), "--out", str(tmp_path / "p.csv")])
    assert code == 0, err
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 3 and "scan0.png" in out
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(paths)]
    expected = Predictor.load(ckpt).predict_images(images)
    assert np.allclose(table[["p_benign", "p_borderline", "p_malignant"]].to_numpy(), expected, atol=1e-9)
    assert (table["predicted"] == [["benign", "borderline", "malignant"][k] for k in expected.argmax(1)]).all()


def test_refuses_overwrite_missing_inputs_and_mask_mismatch(tmp_path, cli):
    ckpt = _checkpoint(tmp_path / "best.pt")
    paths = _images(tmp_path / "scans")
    (tmp_path / "p.csv").write_text("keep me")
    code, _, err = cli(["predict", str(ckpt), str(paths[0]), "--out", str(tmp_path / "p.csv")])
    assert code == 2 and "already exists" in err and (tmp_path / "p.csv").read_text() == "keep me"
    code, _, err = cli(["predict", str(ckpt), str(tmp_path / "nope.png")])
    assert code == 2 and "no such file" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(["predict", str(ckpt), str(paths[0]), str(paths[1]), "--mask", str(paths[0])])
    assert code == 2 and "masks for 2 images" in err
    code, _, err = cli(["predict", str(tmp_path / "p.csv"), str(paths[0])])
    assert code == 2 and "checkpoint" in err

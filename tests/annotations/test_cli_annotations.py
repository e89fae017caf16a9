"""``sonogan annotations train / apply / evaluate`` end to end on a clean phantom (tiny remover)."""

from __future__ import annotations

import csv
import json
import shutil

import cv2
import pandas as pd
import yaml


def test_train_apply_evaluate(cli, clean_phantom, tmp_path, tiny_cfg, monkeypatch):
    config = tmp_path / "remover.yaml"
    config.write_text(yaml.safe_dump(tiny_cfg(iterations=10, checkpoint_every=5).model_dump(mode="json")))
    code, out, err = cli(["annotations", "train", str(clean_phantom), "--out", str(tmp_path / "run"),
                          "--config", str(config), "--seed", "3"])
    assert code == 0, err
    ckpt = tmp_path / "run" / "remover.pt"
    assert ckpt.is_file() and "inside the marks PSNR" in out and "SONOGAN_ANNOTATION_REMOVER=" in out
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["seed"] == 3

    images = sorted((clean_phantom / "images").rglob("*.png"))[:3]
    code, out, err = cli(["annotations", "apply", str(ckpt), *map(str, images), "--out", str(tmp_path / "clean"),
                          "--all"])
    assert code == 0, err
    table = pd.read_csv(tmp_path / "clean" / "annotations.csv")
    assert len(table) == 3 and table["removed"].all() and table["detector_p"].between(0, 1).all()
    for name, src in zip(table["output"], images):
        assert cv2.imread(str(tmp_path / "clean" / name)).shape == cv2.imread(str(src)).shape

    # a folder: every file listed (a skipped one without an output), no file name becomes a spreadsheet formula
    (tmp_path / "in").mkdir()
    shutil.copy(images[0], tmp_path / "in" / "=HYPERLINK(A1).png")
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(["annotations", "apply", str(ckpt), "in", "--out", "clean-folder", "--all"])
    assert code == 0, err
    with open(tmp_path / "clean-folder" / "annotations.csv", newline="") as fh:
        rows = [(r["file"], r["output"]) for r in csv.DictReader(fh)]
    assert rows == [("in/=HYPERLINK(A1).png", "'=HYPERLINK(A1).png"), ("in/notes.txt", "")]

    code, out, err = cli(["annotations", "evaluate", str(ckpt), "--pairs", "8", "--out", str(tmp_path / "m.json")])
    assert code == 0, err
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["n_pairs"] == 8 and metrics["fold"] == 0 and "detector accuracy" in out


def test_input_errors_are_one_line(cli, tmp_path):
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), (255 * (cv2.getGaussianKernel(32, 5) @ cv2.getGaussianKernel(32, 5).T)).astype("uint8"))
    code, _, err = cli(["annotations", "apply", str(bogus), str(img), "--out", str(tmp_path / "o")])
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    code, _, err = cli(["annotations", "evaluate", str(tmp_path / "none.pt")])
    assert code == 2 and "not found" in err

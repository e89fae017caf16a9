"""``sonogan lesion``: a tiny run end to end, resume, and one-line input errors (exit 2)."""

from __future__ import annotations

from pathlib import Path

import yaml

CONFIG = {
    "name": "t", "phantom": {"n_benign": 6, "n_borderline": 4, "n_malignant": 4, "images_per_patient": 2,
                             "image_size": 64},
    "split": {"folds": 2, "test_fraction": 0.2, "seed": 0}, "folds": [0], "preset": "full-64",
    "arms": ["segmentation", "classification"], "model": {"backbone": "unet", "backbone_kwargs": {"width": 4}},
    "train": {"image_size": 32, "epochs": 1, "batch_size": 8}, "evaluation": {"n_resamples": 20},
}


def test_lesion_runs_and_resumes(cli, tmp_path: Path) -> None:
    config = tmp_path / "lesion.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    code, out, err = cli(["lesion", str(config), "--out", str(tmp_path / "run")])
    assert code == 0, err
    assert "segmentation: mean iou" in out and "classification: accuracy" in out
    code, out, err = cli(["lesion", "--resume", str(tmp_path / "run")])
    assert code == 0, err


def test_input_errors_are_one_line(cli, tmp_path: Path) -> None:
    code, _, err = cli(["lesion"])
    assert code == 2 and err.strip().startswith("error: sonogan lesion: no config given")
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "arms": ["cascade"]}))
    code, _, err = cli(["lesion", str(config)])
    assert code == 2 and "add it to arms" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(["lesion", str(config), "--resume", str(tmp_path)])
    assert code == 2 and "--resume" in err

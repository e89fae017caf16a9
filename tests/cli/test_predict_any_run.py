"""``predict`` / ``export`` take any run that holds a model: a lesion run's whole-scan classifier
predicts new scans (the same probabilities as its own checkpoint, averaged over folds) and
exports to ONNX (the same probabilities again); predict refuses a remover run with what to use instead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

CONFIG = {  # tests/cli/test_lesion.py's tiny run, classification arm only
    "name": "t", "phantom": {"n_benign": 6, "n_borderline": 4, "n_malignant": 4, "images_per_patient": 2,
                             "image_size": 64},
    "split": {"folds": 2, "test_fraction": 0.2, "seed": 0}, "folds": [0], "preset": "full-64",
    "arms": ["classification"], "model": {"backbone": "unet", "backbone_kwargs": {"width": 4}},
    "train": {"image_size": 32, "epochs": 1, "batch_size": 8}, "evaluation": {"n_resamples": 20},
}


@pytest.mark.slow  # trains a tiny lesion run (~30 s on a loaded 2-core machine)
def test_lesion_run_predicts_and_remover_is_refused(cli, tmp_path: Path) -> None:
    config = tmp_path / "lesion.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    run = tmp_path / "run"
    code, _, err = cli(["lesion", str(config), "--out", str(run)])
    assert code == 0, err
    scans = sorted((run / "dataset" / "images").rglob("*.png"))[:3]
    code, out, err = cli(["predict", str(run), *map(str, scans), "--out", str(tmp_path / "p.csv"), "--refer-below", "0"])
    assert code == 0, err
    from_run = pd.read_csv(tmp_path / "p.csv")
    best = run / "folds" / "fold0" / "classification" / "best.pt"
    code, _, err = cli(["predict", str(best), *map(str, scans), "--out", str(tmp_path / "q.csv"), "--refer-below", "0"])
    assert code == 0, err
    from_file = pd.read_csv(tmp_path / "q.csv")
    assert len(from_run) == 3 and from_run["predicted"].tolist() == from_file["predicted"].tolist()
    prob_cols = [c for c in from_run.columns if c.startswith("p_")]
    assert prob_cols and np.allclose(from_run[prob_cols].to_numpy(), from_file[prob_cols].to_numpy())

    remover = tmp_path / "remover"
    remover.mkdir()
    (remover / "run.json").write_text('{"kind": "annotation-remover"}')
    code, _, err = cli(["predict", str(remover), *map(str, scans)])
    assert code == 2 and "an annotation remover is not a classifier" in err and "sonogan annotations apply" in err
    code, _, err = cli(["export", str(best), "--onnx", "--out", str(tmp_path / "onnx")])
    assert code == 0, err  # the arm's whole-scan classifier as an ONNX graph
    code, _, err = cli(["predict", str(tmp_path / "onnx"), *map(str, scans), "--out", str(tmp_path / "o.csv"),
                        "--refer-below", "0"])
    assert code == 0, err
    from_onnx = pd.read_csv(tmp_path / "o.csv")
    assert np.abs(from_onnx[prob_cols].to_numpy() - from_file[prob_cols].to_numpy()).max() < 1e-5

"""The lesion experiment on a rare class of a handful of images (issue 20's small-data matrix):
the default arms with a tiny config on a phantom whose rare class has 2 and 3 training images and
no rare-class image in fold 1's validation finish; the pooled cross-validation reports the class's
per-class metrics as point estimates marked 'too few to test', and a fold without the class in
validation is named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sonogan.data.manifest import load_dataset
from sonogan.data.splits import Splits, manifest_sha256
from sonogan.evaluate.bootstrap import MIN_CASES_TO_TEST
from sonogan.lesion.config import LesionExperimentConfig
from sonogan.lesion.protocol import run_lesion
from sonogan.phantom import PhantomConfig, generate_phantom

RARE = "borderline"
N_PATIENTS = {"benign": 10, "borderline": 6, "malignant": 10}  # one image each: images and patients agree
# per class: 1 test patient, then (fold 0, fold 1) validation and training patients
N_VAL = {"benign": (3, 3), "borderline": (2, 0), "malignant": (3, 3)}
N_TRAIN = {"benign": (3, 3), "borderline": (2, 3), "malignant": (3, 3)}


def write_splits(root: Path, path: Path) -> Path:
    """Two folds by hand (make_splits refuses a fold without the rare class in validation)."""
    ds = load_dataset(root)
    real = ds.real()
    test, folds = [], [{"train": [], "val": []}, {"train": [], "val": []}]
    for cls in N_PATIENTS:
        ids = sorted(real.loc[real["label"] == cls, "image_id"])
        (v0, v1), rest = N_VAL[cls], ids[1 + sum(N_VAL[cls]):]
        test.append(ids[0])
        for k, val in enumerate((ids[1:1 + v0], ids[1 + v0:1 + v0 + v1])):
            folds[k]["val"] += val
            folds[k]["train"] += rest[:N_TRAIN[cls][k]]
    used = set(test) | {i for f in folds for p in f.values() for i in p}
    groups = {i: p for i, p in zip(real["image_id"], real["patient_id"]) if i in used}
    Splits(seed=0, n_folds=2, test_fraction=0.1, dataset_name=ds.spec.name, manifest_sha256=manifest_sha256(ds),
           test=sorted(test), folds=[{p: sorted(v) for p, v in f.items()} for f in folds], groups=groups).save(path)
    return path


def test_lesion_finishes_on_a_small_rare_class_and_marks_too_few(tmp_path: Path) -> None:
    phantom = generate_phantom(tmp_path / "phantom", PhantomConfig(
        n_benign=N_PATIENTS["benign"], n_borderline=N_PATIENTS["borderline"], n_malignant=N_PATIENTS["malignant"],
        images_per_patient=1, image_size=64, annotated_fraction=1.0))
    splits = write_splits(phantom.root, tmp_path / "splits.json")
    cfg = LesionExperimentConfig.model_validate({  # the default arms, tiny
        "name": "small", "dataset": str(phantom.root), "splits": str(splits), "preset": "full-64",
        "model": {"backbone": "unet", "backbone_kwargs": {"width": 4}},
        "train": {"image_size": 32, "epochs": 1, "batch_size": 8}, "cascade": {"crop_size": 32},
        "evaluation": {"n_resamples": 20}, "num_threads": 1})
    out = run_lesion(cfg, tmp_path / "run", progress=False, echo=lambda _: None)
    assert json.loads((out / "run.json").read_text())["status"] == "completed"
    res = json.loads((out / "metrics.json").read_text())
    # 2 rare patients in the pooled validation (fold 0's two, none in fold 1's)
    reason = f"2 {RARE} patients in this set, fewer than {MIN_CASES_TO_TEST}"
    assert res["too_few_to_test"] == {f"sensitivity/{RARE}": reason, f"f1/{RARE}": reason}
    assert res["absent_from_validation"] == {"1": [RARE]}
    for name, block in res["classification"].items():
        cv = block["cv"]
        assert cv[f"sensitivity/{RARE}"]["low"] is None and cv[f"f1/{RARE}"]["high"] is None, name
        assert cv["sensitivity/benign"]["low"] is not None and cv["macro_f1"]["low"] is not None, name
    gain = res["gains"]["multitask vs classification"]
    point = {arm: res["classification"][arm]["cv"][f"f1/{RARE}"]["point"] for arm in ("classification", "multitask")}
    assert gain[f"f1/{RARE}"]["point"] == point["multitask"] - point["classification"]
    assert gain[f"f1/{RARE}"]["p_value"] is None and not np.isnan(gain["accuracy"]["point"])

"""Lesion metrics: the CIs resample whole patients, as docs/lesion.md says, with CIs worked out
by hand from the resamples a fixed seed draws."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sonogan.data.manifest import Dataset, DatasetSpec
from sonogan.evaluate.bootstrap import resample_indices
from sonogan.lesion.results import summarise, truth_of

# 6 validation images of 4 patients: patient "a" holds images 0-2 and every model is wrong on them
# (class 0 predicted 1, predicted mask empty); "b", "c", "d" hold one image each, all right.
PATIENTS = np.array(["a", "a", "a", "b", "c", "d"])
Y = np.array([0, 0, 0, 1, 1, 1])


def _fold() -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    masks = np.zeros((6, 4, 4), bool)
    masks[:, :2, :2] = True
    proba = np.eye(2)[[1, 1, 1, 1, 1, 1]]
    mask_prob = masks.astype(np.float16)
    mask_prob[:3] = 0  # nothing found on patient a: IoU 0 there, 1 elsewhere
    truth = {"val_y": Y, "test_y": Y, "val_mask": masks, "test_mask": masks,
             "val_has": np.ones(6, bool), "test_has": np.ones(6, bool)}
    preds = {"classification": {"val_proba": proba, "test_proba": proba},
             "segmentation": {"val_mask_prob": mask_prob, "test_mask_prob": mask_prob}}
    return truth, preds


def _summary(truth: dict[str, np.ndarray], preds: dict[str, dict[str, np.ndarray]]) -> dict:
    cfg = SimpleNamespace(name="t", seed=0, arms=list(preds), evaluation=SimpleNamespace(n_resamples=4, ci=0.5))
    return summarise(cfg, ["benign", "malignant"], {0: truth}, {0: preds})


def test_seed_0_draws_these_patients_and_images() -> None:
    # the resamples the CIs below are worked out from (patients in sorted order: a=0, b=1, c=2, d=3)
    patient_draws = [[3, 2, 2, 1], [1, 0, 0, 0], [0, 3, 2, 3], [2, 2, 3, 2]]
    by_patient = [np.concatenate([np.flatnonzero(PATIENTS == "abcd"[g]) for g in d]) for d in patient_draws]
    for got, want in zip(resample_indices(6, 4, seed=0, groups=PATIENTS), by_patient, strict=True):
        assert got.tolist() == want.tolist()
    image_draws = [[5, 3, 3, 1, 1, 0], [0, 0, 1, 4, 3, 5], [3, 3, 5, 4, 3, 3], [3, 5, 1, 4, 4, 0]]
    assert [d.tolist() for d in resample_indices(6, 4, seed=0)] == image_draws


def test_cis_resample_patients_not_images() -> None:
    truth, preds = _fold()
    truth["val_groups"] = PATIENTS
    res = _summary(truth, preds)
    # patients drawn: {d,c,c,b} 4/4 right; {b,a,a,a} 1 of 10 images right; {a,d,c,d} 3/6; {c,c,d,c} 4/4
    # -> sorted 0.1, 0.5, 1, 1; the 25th / 75th percentiles (linear): 0.1 + 0.75 * 0.4 = 0.4 and 1
    assert res["bootstrap_unit"] == "patient"
    acc = res["classification"]["classification"]["cv"]["accuracy"]
    assert (acc["point"], acc["low"], acc["high"]) == pytest.approx((0.5, 0.4, 1.0))
    # per-image IoU is 0 on patient a and 1 elsewhere: the mean IoU follows the same resamples
    iou = res["segmentation"]["segmentation"]["cv"]["mean_iou"]
    assert (iou["point"], iou["low"], iou["high"]) == pytest.approx((0.5, 0.4, 1.0))


def test_without_patient_ids_images_are_resampled() -> None:
    res = _summary(*_fold())
    # images drawn: [5,3,3,1,1,0] 3/6 right; [0,0,1,4,3,5] 3/6; [3,3,5,4,3,3] 6/6; [3,5,1,4,4,0] 4/6
    # -> sorted 0.5, 0.5, 2/3, 1; 25th percentile 0.5, 75th 2/3 + 0.25 * 1/3 = 0.75: narrower than
    # the patient CI, because the three images of patient a are counted as independent cases
    assert res["bootstrap_unit"] == "image"
    acc = res["classification"]["classification"]["cv"]["accuracy"]
    assert (acc["point"], acc["low"], acc["high"]) == pytest.approx((0.5, 0.5, 0.75))


def test_truth_of_takes_patient_ids_only_when_the_dataset_has_them() -> None:
    def dataset(known: bool) -> Dataset:
        spec = DatasetSpec(name="t", classes=["benign", "malignant"], patients_known=known)
        manifest = pd.DataFrame({"image_id": [f"i{k}" for k in range(6)], "patient_id": PATIENTS})
        return Dataset(root=None, spec=spec, manifest=manifest)  # type: ignore[arg-type]

    part = SimpleNamespace(ids=["i5", "i0", "i1"], labels=np.array([1, 0, 0]), masks=np.zeros((3, 8, 8), np.uint8))
    fd = SimpleNamespace(val=part, test=part)
    has = {"val": np.ones(3, bool), "test": np.ones(3, bool)}
    assert truth_of(dataset(True), fd, has, 4)["val_groups"].tolist() == ["d", "a", "a"]
    assert "val_groups" not in truth_of(dataset(False), fd, has, 4)

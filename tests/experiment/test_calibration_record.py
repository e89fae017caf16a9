"""The fold's calibration record when validation lacks a class (issue 20): fitted on the classes
present and marked so, or (one class left) skipped with its reason; the report says which."""

from __future__ import annotations

import numpy as np

from sonogan.experiment.fold_tasks import calibration_note, calibration_summary, fold_temperature
from sonogan.experiment.report import _calibration_cells

NAMES = ["benign", "borderline", "malignant"]
TEST_Y = np.array([0, 1, 2, 0])
TEST_P = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2]])


def test_every_class_in_validation_keeps_the_plain_record():
    assert calibration_note(np.array([0, 1, 2]), NAMES) == {}
    record = calibration_summary({"test": TEST_P, "temperature": np.array(1.0)}, np.array([0, 1, 2]), TEST_Y, NAMES)
    assert set(record) == {"temperature", "ece_test", "ece_test_calibrated"}
    assert _calibration_cells(record)["note"] == ""


def test_a_missing_rare_class_is_named_in_the_record_and_the_report():
    record = calibration_summary({"test": TEST_P, "temperature": np.array(1.5)}, np.array([0, 2, 2]), TEST_Y, NAMES)
    assert record["temperature"] == 1.5
    assert record["fitted_on_classes"] == ["benign", "malignant"]
    assert record["absent_from_validation"] == ["borderline"]
    assert _calibration_cells(record)["note"] == "fitted on benign, malignant (no borderline in validation)"


def test_one_class_in_validation_skips_the_fit_with_its_reason():
    val_y = np.array([0, 0, 0])
    val_p = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.5, 0.4, 0.1]])
    assert fold_temperature(val_p, val_y) == 1.0  # the Predictor applies no scaling
    record = calibration_summary({"test": TEST_P, "temperature": np.array(1.0)}, val_y, TEST_Y, NAMES)
    reason = "temperature scaling needs validation images of at least 2 classes, got 1"
    assert record["temperature"] is None and record["ece_test_calibrated"] is None
    assert record["skipped"] == {"temperature": reason}
    cells = _calibration_cells(record)
    assert cells["temperature"] == "—" and cells["note"] == f"skipped: {reason}"

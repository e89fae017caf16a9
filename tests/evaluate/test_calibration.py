"""Top-label calibration metrics against cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from sonogan.evaluate.calibration import (
    bin_index,
    expected_calibration_error,
    negative_log_likelihood,
    reliability_curve,
)

# confidences 0.9 (right), 0.8 (wrong), 0.7 (right), 0.6 (wrong)
Y = np.array([0, 1, 1, 0])
P = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])


def test_ece_by_hand_two_filled_bins():
    # 4 bins: (0.5, 0.75] holds 0.7, 0.6 -> conf 0.65, acc 0.5; (0.75, 1] holds 0.9, 0.8 -> conf 0.85, acc 0.5
    # ECE = 2/4 * |0.5 - 0.65| + 2/4 * |0.5 - 0.85| = 0.075 + 0.175 = 0.25
    assert expected_calibration_error(Y, P, n_bins=4) == pytest.approx(0.25, abs=1e-12)
    # one bin: conf 0.75, acc 0.5
    assert expected_calibration_error(Y, P, n_bins=1) == pytest.approx(0.25, abs=1e-12)
    # ten bins: every sample alone: (0.1 + 0.8 + 0.3 + 0.6) / 4
    assert expected_calibration_error(Y, P, n_bins=10) == pytest.approx(0.45, abs=1e-12)


def test_reliability_curve_by_hand_keeps_empty_bins_in_place():
    conf, acc, counts = reliability_curve(Y, P, n_bins=4)
    assert counts.tolist() == [0, 0, 2, 2]
    assert np.isnan(conf[:2]).all() and np.isnan(acc[:2]).all()
    assert conf[2:] == pytest.approx([0.65, 0.85]) and acc[2:] == pytest.approx([0.5, 0.5])


def test_calibrated_three_class_case_has_zero_ece_and_edges_close_bins_on_the_right():
    # four predictions at confidence exactly 0.5 (the edge of (0.25, 0.5]), two of them right
    p = np.array([[0.5, 0.3, 0.2], [0.2, 0.5, 0.3], [0.3, 0.2, 0.5], [0.5, 0.25, 0.25]])
    y = np.array([0, 0, 2, 1])
    conf, acc, counts = reliability_curve(y, p, n_bins=4)
    assert counts.tolist() == [0, 4, 0, 0] and acc[1] == 0.5 and conf[1] == 0.5
    assert expected_calibration_error(y, p, n_bins=4) == 0.0
    assert bin_index(np.array([0.0, 1.0, 0.5000001]), 4).tolist() == [0, 3, 2]


def test_nll_by_hand_and_shape_errors():
    # -(log 0.9 + log 0.2 + log 0.7 + log 0.4) / 4
    want = -(np.log(0.9) + np.log(0.2) + np.log(0.7) + np.log(0.4)) / 4
    assert negative_log_likelihood(Y, P) == pytest.approx(want, abs=1e-12)
    assert negative_log_likelihood(np.array([1]), np.array([[1.0, 0.0]])) == pytest.approx(-np.log(1e-12))
    with pytest.raises(ValueError, match="length mismatch"):
        expected_calibration_error(Y[:3], P)
    with pytest.raises(ValueError, match=r"must be \(N, C\)"):
        reliability_curve(Y, P[:, 0])
    assert np.isnan(expected_calibration_error(np.zeros(0, int), np.zeros((0, 2))))

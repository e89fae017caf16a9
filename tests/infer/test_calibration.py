"""Temperature scaling: T = 1 where the model is calibrated, T > 1 where it is over-confident,
never a worse fitting-set NLL, same T every time, and one-line errors for misuse."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax, softmax

from sonogan.errors import SonoganInputError
from sonogan.evaluate.calibration import expected_calibration_error, negative_log_likelihood
from sonogan.infer.calibration import (apply_temperature, calibration_scope, check_calibratable, fit_temperature,
                                        fit_temperature_present)
from sonogan.skipped import NotComputable, Skipped, attempt


def _calibrated(n: int = 20000, c: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits): calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (n, c))
    y = (softmax(logits, axis=1).cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
    return logits, np.minimum(y, c - 1)


def test_apply_temperature_by_hand():
    # softmax(log p / 2) = sqrt(p) normalised: sqrt(.8) : sqrt(.2) = 2 : 1
    assert apply_temperature(np.array([[0.8, 0.2]]), 2.0) == pytest.approx(np.array([[2 / 3, 1 / 3]]))
    assert apply_temperature(np.array([[0.8, 0.2]]), 1.0) == pytest.approx(np.array([[0.8, 0.2]]))
    # T = 0.5 squares: .64 : .04
    assert apply_temperature(np.array([[0.8, 0.2]]), 0.5) == pytest.approx(np.array([[0.64 / 0.68, 0.04 / 0.68]]))


def test_calibrated_data_gives_t_near_one_from_logits_or_log_probs():
    logits, y = _calibrated()
    assert fit_temperature(logits, y) == pytest.approx(1.0, abs=0.05)
    assert fit_temperature(log_softmax(logits, axis=1), y) == pytest.approx(fit_temperature(logits, y), abs=1e-6)


def test_over_confident_logits_give_t_above_one_and_lower_ece():
    logits, y = _calibrated(seed=1)
    t = fit_temperature(3.0 * logits, y)
    assert t == pytest.approx(3.0, rel=0.1)
    before = softmax(3.0 * logits, axis=1)
    after = apply_temperature(before, t)
    assert expected_calibration_error(y, after) < expected_calibration_error(y, before) / 2
    assert (after.argmax(1) == before.argmax(1)).all()  # temperature never changes the decision


@pytest.mark.parametrize("seed", range(5))
def test_fitting_never_worsens_the_fitting_set_nll_and_is_deterministic(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    logits = rng.normal(0.0, rng.uniform(0.1, 10.0), (n, 3))
    y = rng.integers(0, 3, n)  # labels unrelated to the logits: the worst case
    t = fit_temperature(logits, y)
    probs = softmax(logits, axis=1)
    assert negative_log_likelihood(y, apply_temperature(probs, t)) <= negative_log_likelihood(y, probs) + 1e-9
    assert fit_temperature(logits, y) == t


def test_misuse_is_a_one_line_input_error():
    logits, y = _calibrated(n=50)
    with pytest.raises(SonoganInputError, match="look like probabilities"):
        fit_temperature(softmax(logits, axis=1), y)
    with pytest.raises(SonoganInputError, match="labels do not match"):
        fit_temperature(logits, y[:-1])
    with pytest.raises(SonoganInputError, match="inf or NaN"):
        fit_temperature(np.array([[0.0, -np.inf]]), np.array([0]))
    with pytest.raises(SonoganInputError, match="temperature > 0"):
        apply_temperature(softmax(logits, axis=1), 0.0)


def test_a_validation_set_without_a_class_fits_on_the_classes_present():
    logits, y = _calibrated(n=300)
    two = y != 1  # class 1 (the rare one) absent from validation
    assert fit_temperature_present(logits[two], y[two]) == fit_temperature(logits[two], y[two])
    assert calibration_scope(y[two], ["a", "b", "c"]) == {"fitted_on_classes": ["a", "c"],
                                                         "absent_from_validation": ["b"]}


def test_a_validation_set_of_one_class_is_not_calibrated_and_says_why():
    logits = np.array([[2.0, 0.0], [1.0, 0.5], [3.0, -1.0]])
    with pytest.raises(NotComputable, match="at least 2 classes, got 1"):
        fit_temperature_present(logits, np.array([0, 0, 0]))
    assert attempt(check_calibratable, np.array([1, 1])) == Skipped(
        "temperature scaling needs validation images of at least 2 classes, got 1")

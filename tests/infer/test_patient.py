"""Patient aggregation and the referral operating point, against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sonogan.errors import SonoganInputError
from sonogan.infer.patient import (OperatingPoint, aggregate_patients, choose_referral_threshold,
                                   manual_operating_point)


def test_threshold_is_the_lowest_confidence_whose_kept_images_reach_the_target():
    # confidences 0.95 0.9 0.8 0.7 0.6 0.55; correct  T T F T T F
    p = np.array([[0.95, 0.05], [0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.45, 0.55]])
    y = np.array([0, 1, 1, 1, 0, 0])
    # kept accuracy by k most confident: 1, 1, 2/3, 3/4, 4/5, 4/6
    op = choose_referral_threshold(p, y, target_accuracy=0.75)
    assert op.threshold == 0.6 and op.reached and op.val_n == 6
    assert op.val_referred == pytest.approx(1 / 6) and op.val_accuracy_kept == pytest.approx(0.8)
    assert choose_referral_threshold(p, y, target_accuracy=0.95).threshold == 0.9
    never = choose_referral_threshold(np.array([[0.6, 0.4], [0.7, 0.3]]), np.array([1, 1]), 0.9)
    assert not never.reached and never.threshold == 0.7 and never.val_accuracy_kept == 0.0
    assert "not reached" in never.describe()


def test_ties_are_kept_or_referred_together():
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.8, 0.2], [0.6, 0.4]])
    y = np.array([0, 0, 1, 0])  # the two 0.8s: one right, one wrong
    op = choose_referral_threshold(p, y, target_accuracy=0.9)
    assert op.threshold == 0.9 and op.val_referred == 0.75  # 0.8 would keep a wrong image with a right one


def test_aggregation_mean_vote_agreement_and_referral():
    table = pd.DataFrame({"patient": ["a", "a", "a", "b", "c", "c"],
                          "p_x": [0.9, 0.8, 0.2, 0.4, 0.55, 0.3], "p_y": [0.1, 0.2, 0.8, 0.6, 0.45, 0.7]})
    op = OperatingPoint(0.6, 0.9, 1.0, 10, 0.2, 0.95, True, "test")
    out = aggregate_patients(table, "patient", ["x", "y"], op).set_index("patient")
    assert out.loc["a", "p_x"] == pytest.approx(1.9 / 3) and out.loc["a", "predicted"] == "x"
    assert out.loc["a", "vote"] == "x" and out.loc["a", "agreement"] == pytest.approx(2 / 3)
    assert out.loc["a", "refer"] and out.loc["a", "refer_reason"] == "images disagree"
    assert out.loc["b", "predicted"] == "y" and out.loc["b", "agreement"] == 1.0 and not out.loc["b", "refer"]
    assert out.loc["c", "predicted"] == "y" and out.loc["c", "vote"] == "tie"
    assert out.loc["c", "confidence"] == pytest.approx(0.575)
    assert out.loc["c", "refer_reason"] == "low confidence; images disagree"
    loose = aggregate_patients(table, "patient", ["x", "y"], manual_operating_point(0.5, min_agreement=0.5))
    assert not loose["refer"].any()
    assert "refer" not in aggregate_patients(table, "patient", ["x", "y"]).columns


def test_bad_inputs_are_input_errors():
    with pytest.raises(SonoganInputError):
        choose_referral_threshold(np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(SonoganInputError):
        manual_operating_point(1.5)
    with pytest.raises(SonoganInputError, match="lacks columns"):
        aggregate_patients(pd.DataFrame({"patient": ["a"]}), "patient", ["x", "y"])
    op = choose_referral_threshold(np.array([[0.9, 0.1]]), np.array([0]))
    assert OperatingPoint.from_dict(op.to_dict()) == op

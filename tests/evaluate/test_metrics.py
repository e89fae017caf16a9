"""Metrics against a hand-computed 3-class, 10-case table, and fast path == sklearn path."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from sonogan.evaluate import metrics as M

CLASSES = ["benign", "malignant", "bot"]
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
# scores chosen so that the arg-max gives Y_PRED below
Y_PROB = np.array([
    [0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.4, 0.5, 0.1],
    [0.1, 0.8, 0.1], [0.2, 0.6, 0.2], [0.1, 0.3, 0.6],
    [0.1, 0.2, 0.7], [0.3, 0.4, 0.3], [0.5, 0.2, 0.3],
])
Y_PRED = np.array([0, 0, 0, 1, 1, 1, 2, 2, 1, 0])
# By hand: rows = truth, columns = prediction
CM = np.array([[3, 1, 0],
               [0, 2, 1],
               [1, 1, 1]])
# class 0: TP3 FN1 FP1 TN5 | class 1: TP2 FN1 FP2 TN5 | class 2: TP1 FN2 FP1 TN6
EXPECTED = {
    "accuracy": 6 / 10,
    "sensitivity": [3 / 4, 2 / 3, 1 / 3],
    "specificity": [5 / 6, 5 / 7, 6 / 7],
    "precision": [3 / 4, 2 / 4, 1 / 2],
    "npv": [5 / 6, 5 / 6, 6 / 8],
    "f1": [6 / 8, 4 / 7, 2 / 5],
    # AUC by counting positive>negative pairs (ties 1/2):
    # class 0: 23 of 4x6; class 1: 18.5 of 3x7 (one 0.3-0.3 tie); class 2: 19 of 3x7
    "auc": [23 / 24, 18.5 / 21, 19 / 21],
}


def test_hand_table_confusion_and_accuracy() -> None:
    assert (M.predictions(Y_PROB) == Y_PRED).all()
    np.testing.assert_array_equal(M.confusion_matrix(Y_TRUE, Y_PRED, 3), CM)
    assert M.accuracy(Y_TRUE, Y_PRED) == pytest.approx(EXPECTED["accuracy"])
    tp, fp, fn, tn = M.one_vs_rest_counts(CM)
    assert tp.tolist() == [3, 2, 1] and fp.tolist() == [1, 2, 1]
    assert fn.tolist() == [1, 1, 2] and tn.tolist() == [5, 5, 6]


@pytest.mark.parametrize("name", ["sensitivity", "specificity", "precision", "npv", "f1"])
def test_hand_table_per_class_functions(name: str) -> None:
    got = getattr(M, name)(Y_TRUE, Y_PRED, 3)
    np.testing.assert_allclose(got, EXPECTED[name])


def test_hand_table_auc() -> None:
    np.testing.assert_allclose(M.roc_auc(Y_TRUE, Y_PROB), EXPECTED["auc"])


@pytest.mark.parametrize("fast", [True, False])
def test_hand_table_flat_dict(fast: bool) -> None:
    m = M.classification_metrics(Y_TRUE, Y_PROB, CLASSES, fast=fast)
    assert m["accuracy"] == pytest.approx(0.6)
    for name in M.PER_CLASS_METRICS:
        for c, cls in enumerate(CLASSES):
            assert m[f"{name}/{cls}"] == pytest.approx(EXPECTED[name][c]), (name, cls)
        assert m[f"macro_{name}"] == pytest.approx(np.mean(EXPECTED[name]))
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 2 / 3 + 1 / 3) / 3)
    assert m["macro_f1"] == pytest.approx((0.75 + 4 / 7 + 0.4) / 3)


def test_absent_class_is_nan_not_crash() -> None:
    y = np.array([0, 0, 1, 1, 0])
    p = np.array([[0.9, 0.05, 0.05], [0.2, 0.1, 0.7], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.5, 0.4, 0.1]])
    for fast in (True, False):
        m = M.classification_metrics(y, p, CLASSES, fast=fast)
        assert np.isnan(m["sensitivity/bot"]) and np.isnan(m["f1/bot"]) and np.isnan(m["auc/bot"])
        # bot was predicted once, wrongly: precision 0; specificity 4/5 is defined
        assert m["precision/bot"] == 0.0
        assert m["specificity/bot"] == pytest.approx(4 / 5)
        # benign: predicted 3 times, 2 right
        assert m["precision/benign"] == pytest.approx(2 / 3)
        # macro averages ignore the undefined class
        assert m["macro_sensitivity"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_never_predicted_class_precision_zero() -> None:
    y = np.array([0, 1, 2, 2])
    p = np.eye(3)[[0, 1, 1, 1]]
    m = M.classification_metrics(y, p, CLASSES)
    assert m["precision/bot"] == 0.0 and m["sensitivity/bot"] == 0.0 and m["f1/bot"] == 0.0
    assert m["npv/bot"] == pytest.approx(2 / 4)


def test_fast_path_matches_sklearn_on_random_data() -> None:
    rng = np.random.default_rng(3)
    for trial in range(20):
        n = int(rng.integers(5, 60))
        y = rng.integers(0, 3 if trial % 4 else 2, n)  # every 4th trial lacks class 2
        p = np.round(rng.dirichlet(np.ones(3), n), 1)  # rounding creates ties
        fast = M.classification_metrics(y, p, CLASSES, fast=True)
        slow = M.classification_metrics(y, p, CLASSES, fast=False)
        assert fast.keys() == slow.keys()
        for k in fast:
            np.testing.assert_allclose(fast[k], slow[k], err_msg=k)
        _, rec, f, _ = precision_recall_fscore_support(y, p.argmax(1), labels=[0, 1, 2], zero_division=0)
        for c in range(3):
            if (y == c).any():
                assert fast[f"f1/{CLASSES[c]}"] == pytest.approx(f[c])
                if 0 < (y == c).sum() < n:
                    assert fast[f"auc/{CLASSES[c]}"] == pytest.approx(roc_auc_score(y == c, p[:, c]))


def test_shape_errors() -> None:
    with pytest.raises(ValueError):
        M.classification_metrics(Y_TRUE, Y_PROB[:, :2], CLASSES)
    with pytest.raises(ValueError):
        M.classification_metrics(Y_TRUE[:5], Y_PROB, CLASSES)
    with pytest.raises(ValueError):
        M.classification_metrics(Y_TRUE + 1, Y_PROB, CLASSES)

"""'Too few to test': per-class metrics of a class with fewer than MIN_CASES_TO_TEST cases keep their
point estimate only; nothing else changes (issue 20)."""

from __future__ import annotations

import numpy as np

from sonogan.evaluate.bootstrap import (MIN_CASES_TO_TEST, bootstrap_ci, class_case_counts, too_few_to_test,
                                        withhold_tests)
from sonogan.evaluate.metrics import classification_metrics


def test_the_minimum_is_where_an_exact_paired_test_first_reaches_p_below_005():
    # a sign test with every one of n discordant cases favouring one arm: p = 2 * 0.5 ** n
    assert 2 * 0.5 ** (MIN_CASES_TO_TEST - 1) > 0.05 > 2 * 0.5 ** MIN_CASES_TO_TEST


def test_cases_are_patients_when_known():
    y = np.array([0, 0, 0, 1, 1, 2])
    assert class_case_counts(y, 3).tolist() == [3, 2, 1]
    assert class_case_counts(y, 3, groups=np.array(["a", "a", "b", "c", "c", "d"])).tolist() == [2, 1, 1]


def test_only_per_class_metrics_of_small_classes_are_too_few():
    y = np.array([0] * 6 + [1] * 5 + [2] * 0)
    names = ["accuracy", "macro_f1", "f1/a", "f1/b", "auc/b", "f1/c"]
    assert too_few_to_test(names, y, ["a", "b", "c"]) == {
        "f1/b": "5 b images in this set, fewer than 6", "auc/b": "5 b images in this set, fewer than 6",
        "f1/c": "0 c images in this set, fewer than 6"}
    groups = np.array([f"p{i // 2}" for i in range(11)])  # 2 images per patient: 3 patients of a
    assert set(too_few_to_test(names, y, ["a", "b", "c"], groups)) == {"f1/a", "f1/b", "auc/b", "f1/c"}


def test_withheld_metrics_keep_the_point_and_others_are_untouched():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(30, int), np.ones(30, int), np.full(1, 2)]  # one case of the rare class
    p = rng.dirichlet(np.ones(3), len(y))
    res = bootstrap_ci(lambda t, q: classification_metrics(t, q, ["a", "b", "rare"]), y, p, n_resamples=50, seed=0)
    few = too_few_to_test(res, y, ["a", "b", "rare"])
    assert set(few) == {f"{m}/rare" for m in ("sensitivity", "specificity", "precision", "npv", "f1", "auc")}
    out = withhold_tests(res, few)
    assert out["f1/rare"][0] == res["f1/rare"][0] and np.isnan(out["f1/rare"][1:]).all()
    assert all(out[k] == list(v) for k, v in res.items() if k not in few)

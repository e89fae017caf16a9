"""Reader-study statistics against published worked examples and hand-computed cases."""

from __future__ import annotations

import math

import pytest

from sonogan.study.stats import (agreement_table, binomial_accuracy, fleiss_kappa, krippendorff_alpha, mean_sd,
                                 ratings_matrix)

# Fleiss (1971) as tabulated on Wikipedia ("Fleiss' kappa", worked example): 10 items, 14 raters, kappa 0.210
FLEISS_EXAMPLE = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                  [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 4 coders x 12 units example
# with missing values: nominal alpha 0.743, interval alpha 0.849
N = None
KRIPPENDORFF_EXAMPLE = [[1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N], [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
                        [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N], [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N]]


def test_fleiss_kappa_published_example_and_hand_cases() -> None:
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.2099, abs=1e-4)
    assert fleiss_kappa([[3, 0], [0, 3], [3, 0]]) == pytest.approx(1.0)
    # P_i = (1, 1, 0) -> P-bar 2/3; p_j = (1/2, 1/2) -> P_e 1/2; kappa = (2/3 - 1/2) / (1/2)
    assert fleiss_kappa([[2, 0], [0, 2], [1, 1]]) == pytest.approx(1 / 3)
    assert math.isnan(fleiss_kappa([[2, 0], [2, 0]]))  # every call the same: no chance-corrected agreement
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[2, 0], [1, 0]])


def test_krippendorff_alpha_published_example_and_hand_cases() -> None:
    assert krippendorff_alpha(KRIPPENDORFF_EXAMPLE, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(KRIPPENDORFF_EXAMPLE, "interval") == pytest.approx(0.849, abs=5e-4)
    assert krippendorff_alpha([["a", "b", "a"], ["a", "b", "a"]]) == pytest.approx(1.0)
    # units (a, a) and (a, b): D_o = (0 + 2/1) / 4 = 0.5; values a,a,a,b: D_e = 2*3*1 / (4*3) = 0.5 -> alpha 0
    assert krippendorff_alpha([["a", "a"], ["a", "b"]]) == pytest.approx(0.0)
    assert math.isnan(krippendorff_alpha([["a", None], [None, "a"]]))  # nothing pairable


def test_binomial_accuracy_is_scipys_exact_interval() -> None:
    result = binomial_accuracy(7, 10)
    assert result == {"k": 7, "n": 10, "accuracy": 0.7, "ci": [0.3475, 0.9333], "p_vs_chance": 0.34375}
    assert binomial_accuracy(10, 10)["ci"] == [0.6915, 1.0]
    assert math.isnan(binomial_accuracy(0, 0)["accuracy"])


def test_mean_sd_and_table_builders() -> None:
    assert mean_sd([4, 5, 3, 4]) == {"n": 4, "mean": 4.0, "sd": 0.8165}
    assert math.isnan(mean_sd([3])["sd"]) and mean_sd([])["n"] == 0
    calls = {"ana": {1: "real", 2: "synthetic", 3: "real"}, "ben": {1: "real", 2: "real"}}
    assert agreement_table(calls, ["real", "synthetic"]) == [[2, 0], [1, 1]]  # item 3 lacks ben
    assert ratings_matrix(calls) == [["real", "synthetic", "real"], ["real", "real", None]]

"""Bootstrap: CIs worked out by hand from the resamples a seed draws, coverage on a known case,
patient clusters, determinism, paired gains."""

from __future__ import annotations

import numpy as np
import pytest

from sonogan.evaluate.bootstrap import bootstrap_ci, paired_bootstrap_gain, resample_indices, two_sided_p
from sonogan.evaluate.metrics import classification_metrics

CLASSES = ["benign", "malignant", "bot"]


def _accuracy(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"accuracy": float((p.argmax(1) == y).mean())}


# seed 0 draws these 4 resamples of 4 cases (rng.integers(0, 4, 4) four times)
SEED0_DRAWS = [[3, 2, 2, 1], [1, 0, 0, 0], [0, 3, 2, 3], [2, 2, 3, 2]]


def test_four_case_bootstrap_by_hand() -> None:
    assert [idx.tolist() for idx in resample_indices(4, 4, seed=0)] == SEED0_DRAWS
    y = np.array([0, 1, 1, 1])
    p = np.eye(2)[[1, 1, 1, 1]]  # case 0 wrong: accuracy 3/4
    # resample accuracies: 4/4, 1/4 (case 0 three times), 3/4, 4/4 -> sorted 0.25, 0.75, 1, 1;
    # linear percentiles at positions 3 * 0.25 = 0.75 and 3 * 0.75 = 2.25 (ci 0.5)
    assert bootstrap_ci(_accuracy, y, p, n_resamples=4, ci=0.5, seed=0)["accuracy"] == \
        pytest.approx((0.75, 0.25 + 0.75 * 0.5, 1.0))
    # ci 0.95: positions 3 * 0.025 = 0.075 and 3 * 0.975 = 2.925
    assert bootstrap_ci(_accuracy, y, p, n_resamples=4, seed=0)["accuracy"] == \
        pytest.approx((0.75, 0.25 + 0.075 * 0.5, 1.0))


def test_four_case_paired_gain_by_hand() -> None:
    y = np.array([0, 1, 1, 1])
    p_a = np.eye(2)[[1, 0, 1, 1]]  # wrong on cases 0 and 1: accuracy 2/4
    p_b = np.eye(2)[[1, 1, 1, 1]]  # wrong on case 0 only: accuracy 3/4
    # B - A per resample is (times case 1 was drawn) / 4: 1/4, 1/4, 0, 0 -> sorted 0, 0, 1/4, 1/4;
    # 2 of 4 gains are <= 0 although the point gain is +1/4, so p = 2 * 2/4 = 1
    res = paired_bootstrap_gain(_accuracy, y, p_a, p_b, n_resamples=4, ci=0.5, seed=0)
    assert res["accuracy"] == pytest.approx((0.25, 0.0, 0.25, 1.0))


def test_coverage_of_bernoulli_accuracy() -> None:
    # 200 simulated test sets of 100 cases, each correct with probability 0.8
    rng = np.random.default_rng(42)
    covered = 0
    for sim in range(200):
        correct = rng.random(100) < 0.8
        y = np.zeros(100, dtype=int)
        p = np.where(correct[:, None], [[1.0, 0.0]], [[0.0, 1.0]])
        _, low, high = bootstrap_ci(_accuracy, y, p, n_resamples=200, seed=sim)["accuracy"]
        covered += low <= 0.8 <= high
    assert 0.90 * 200 <= covered <= 0.99 * 200, covered


def test_patient_resampling_keeps_clusters_together() -> None:
    groups = np.repeat([f"p{i}" for i in range(12)], [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4])
    n = len(groups)
    sizes = {g: int((groups == g).sum()) for g in set(groups)}
    for idx in resample_indices(n, 50, seed=0, groups=groups):
        drawn = groups[idx]
        for g in set(drawn):
            # a drawn patient appears a whole multiple of its image count
            assert (drawn == g).sum() % sizes[g] == 0

    # a metric that counts distinct patients: never more than 12, and < 12 in most resamples
    def distinct(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
        return {"patients": float(len(np.unique(p[:, 0]))), "n": float(len(y))}

    codes = np.unique(groups, return_inverse=True)[1].astype(float)
    res = bootstrap_ci(distinct, np.zeros(n), np.c_[codes, codes], groups=groups, n_resamples=300)
    assert res["patients"][0] == 12 and res["patients"][2] <= 12
    assert res["patients"][1] < 12
    # cluster draws change the number of images per resample; case draws never do
    assert res["n"][1] < res["n"][2]
    case = bootstrap_ci(distinct, np.zeros(n), np.c_[codes, codes], n_resamples=50)
    assert case["n"] == (n, n, n)


def test_same_seed_same_result_and_seed_matters() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 80)
    p = rng.dirichlet(np.ones(3), 80)
    fn = lambda t, q: classification_metrics(t, q, CLASSES)  # noqa: E731
    a = bootstrap_ci(fn, y, p, n_resamples=100, seed=7)
    b = bootstrap_ci(fn, y, p, n_resamples=100, seed=7)
    c = bootstrap_ci(fn, y, p, n_resamples=100, seed=8)
    assert a == b
    assert a != c
    assert a.n_resamples == 100 and set(a.n_undefined) == set(a)


def test_undefined_resamples_are_counted() -> None:
    # one bot case among 30: many resamples contain none, so bot sensitivity is undefined there
    y = np.array([0] * 15 + [1] * 14 + [2])
    p = np.eye(3)[y]
    res = bootstrap_ci(lambda t, q: classification_metrics(t, q, CLASSES), y, p, n_resamples=300, seed=1)
    assert 60 < res.n_undefined["sensitivity/bot"] < 160  # expected 300 * (29/30)^30 ~ 108
    assert res.n_undefined["accuracy"] == 0
    assert res["sensitivity/bot"] == (1.0, 1.0, 1.0)
    js = res.to_json()
    assert js["sensitivity/bot"]["n_undefined"] == res.n_undefined["sensitivity/bot"]


def test_paired_identical_arms_zero_gain() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 60)
    p = rng.dirichlet(np.ones(3), 60)
    groups = np.arange(60) // 3
    res = paired_bootstrap_gain(lambda t, q: classification_metrics(t, q, CLASSES), y, p, p.copy(),
                                groups=groups, n_resamples=200)
    for name, (gain, low, high, pval) in res.items():
        if not np.isnan(gain):
            assert (gain, low, high, pval) == (0.0, 0.0, 0.0, 1.0), name


def test_paired_detects_real_improvement() -> None:
    rng = np.random.default_rng(2)
    n = 150
    y = rng.integers(0, 3, n)
    truth = np.eye(3)[y]
    noise = rng.dirichlet(np.ones(3), n)
    p_a = 0.35 * truth + 0.65 * noise  # weak arm
    p_b = 0.75 * truth + 0.25 * noise  # strong arm
    res = paired_bootstrap_gain(lambda t, q: classification_metrics(t, q, CLASSES), y, p_a, p_b,
                                n_resamples=500, seed=3)
    gain, low, high, pval = res["accuracy"]
    assert gain > 0.1 and low > 0 and pval < 0.01
    # swapping the arms flips the sign, keeps the p-value
    rev = paired_bootstrap_gain(lambda t, q: classification_metrics(t, q, CLASSES), y, p_b, p_a,
                                n_resamples=500, seed=3)
    assert rev["accuracy"][0] == pytest.approx(-gain) and rev["accuracy"][3] == pval


def test_two_sided_p() -> None:
    assert two_sided_p(np.array([1.0, 2.0, -1.0, 3.0]), 1.5) == 0.5
    assert two_sided_p(np.array([1.0, 2.0, 3.0, 4.0]), 2.0) == 0.0
    assert two_sided_p(np.array([-1.0, 1.0]), 0.0) == 1.0
    assert np.isnan(two_sided_p(np.array([np.nan]), 1.0))

"""Reader-study statistics as pure functions: realism, binomial accuracy, agreement.

Fleiss' kappa and Krippendorff's alpha are written here because the libraries that have them
are not dependencies of sonogan (statsmodels is not installed; the ``krippendorff`` package
would be one more pin for 40 lines); both are tested against published worked examples
(Fleiss 1971 as tabulated on Wikipedia: 0.210; Krippendorff 2011, "Computing Krippendorff's
alpha-reliability": nominal 0.743, interval 0.849). The binomial CI is SciPy's exact
Clopper-Pearson interval from :func:`scipy.stats.binomtest`.

Example:
    >>> binomial_accuracy(7, 10)["ci"]
    [0.3475, 0.9333]
    >>> round(fleiss_kappa([[2, 0], [0, 2], [1, 1]]), 4)
    0.3333
    >>> round(krippendorff_alpha([[1, 1, 2], [1, 1, 2]], "nominal"), 4)
    1.0
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Hashable, Literal, Sequence

import numpy as np
from scipy.stats import binomtest

Metric = Literal["nominal", "interval"]


def mean_sd(values: Sequence[float]) -> dict[str, float | int]:
    """Mean and sample SD (ddof=1; NaN for fewer than two values) of ratings, with their count."""
    a = np.asarray(values, dtype=float)
    mean = float(a.mean()) if a.size else math.nan
    sd = float(a.std(ddof=1)) if a.size > 1 else math.nan
    return {"n": int(a.size), "mean": round(mean, 4), "sd": round(sd, 4)}


def binomial_accuracy(k: int, n: int, confidence: float = 0.95) -> dict[str, float | int | list[float]]:
    """k correct of n: accuracy, exact (Clopper-Pearson) CI and the two-sided p against chance (50 %).

    A CI that covers 0.5 means the rater could not tell real from synthetic.
    """
    if n == 0:
        return {"k": 0, "n": 0, "accuracy": math.nan, "ci": [math.nan, math.nan], "p_vs_chance": math.nan}
    test = binomtest(k, n, 0.5)
    ci = test.proportion_ci(confidence_level=confidence, method="exact")
    return {"k": int(k), "n": int(n), "accuracy": round(k / n, 4), "ci": [round(ci.low, 4), round(ci.high, 4)],
            "p_vs_chance": round(float(test.pvalue), 6)}


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa from an items x categories table of how many raters chose each category.

    Every item must have the same number of raters (at least two). NaN when chance agreement is 1
    (every rating in one category).
    """
    table = np.asarray(counts, dtype=float)
    per_item = table.sum(axis=1)
    if table.ndim != 2 or table.shape[0] == 0 or not np.all(per_item == per_item[0]) or per_item[0] < 2:
        raise ValueError("fleiss_kappa needs items x categories counts with the same number (>= 2) of raters per item")
    m = per_item[0]
    p_j = table.sum(axis=0) / table.sum()
    p_i = ((table ** 2).sum(axis=1) - m) / (m * (m - 1))
    p_bar, p_e = p_i.mean(), float((p_j ** 2).sum())
    return math.nan if p_e == 1 else float((p_bar - p_e) / (1 - p_e))


def _delta(metric: Metric, a: float | Hashable, b: float | Hashable) -> float:
    if metric == "nominal":
        return 0.0 if a == b else 1.0
    return (float(a) - float(b)) ** 2  # type: ignore[arg-type]


def krippendorff_alpha(data: Sequence[Sequence[Hashable | None]], metric: Metric = "nominal") -> float:
    """Krippendorff's alpha from a raters x units table (``None`` = missing), nominal or interval.

    Units with fewer than two values are not pairable and are left out (Krippendorff 2011).
    NaN when there is nothing pairable or no disagreement is possible (one value overall).
    """
    units = [[row[u] for row in data if row[u] is not None] for u in range(len(data[0]) if data else 0)]
    units = [vals for vals in units if len(vals) >= 2]
    n_total = sum(len(vals) for vals in units)
    if n_total < 2:
        return math.nan
    # observed disagreement: pairs within a unit, each unit weighted 1 / (m_u - 1)
    d_obs = sum(sum(_delta(metric, a, b) for i, a in enumerate(vals) for j, b in enumerate(vals) if i != j)
                / (len(vals) - 1) for vals in units) / n_total
    # expected disagreement: all pairable values against each other
    counts = Counter(v for vals in units for v in vals)
    values = list(counts)
    d_exp = sum(counts[a] * counts[b] * _delta(metric, a, b) for a in values for b in values) / (n_total * (n_total - 1))
    return math.nan if d_exp == 0 else float(1 - d_obs / d_exp)


def agreement_table(calls: dict[str, dict[int, Hashable]], categories: Sequence[Hashable]) -> list[list[int]]:
    """Fleiss counts (items x categories) from per-rater calls {rater: {item: call}}, over the
    items that every rater answered (Fleiss' kappa needs the same raters on every item)."""
    raters = list(calls)
    common = sorted(set.intersection(*(set(c) for c in calls.values()))) if raters else []
    return [[sum(calls[r][item] == cat for r in raters) for cat in categories] for item in common]


def ratings_matrix(calls: dict[str, dict[int, Hashable]]) -> list[list[Hashable | None]]:
    """Krippendorff's raters x units table from {rater: {item: value}}; unanswered cells are None."""
    items = sorted({item for c in calls.values() for item in c})
    return [[c.get(item) for item in items] for c in calls.values()]

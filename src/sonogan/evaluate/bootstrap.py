"""Non-parametric percentile bootstrap for any dict-valued metric, case- or patient-level.

One generic loop serves every metric: ``metric_fn(y_true, y_prob) -> dict[str, float]``.
``scipy.stats.bootstrap`` is not used because it neither resamples clusters (all images of
a patient together) nor handles dict-valued statistics with NaNs; the loop here is short.

* ``bootstrap_ci``: 1000 resamples of the test set (flagship §3.3); with ``groups``
  (patient ids) whole patients are drawn with replacement (cluster bootstrap), so that
  correlated images of one patient do not shrink the interval.
* ``paired_bootstrap_gain``: both arms are scored on the SAME resampled indices, and the
  gain is arm B minus arm A.

Percentiles ignore NaN resamples (e.g. a resample without any rare-class case has no
sensitivity); how many were undefined is reported in ``result.n_undefined``.

* ``too_few_to_test`` / ``withhold_tests``: a class with fewer than
  :data:`MIN_CASES_TO_TEST` cases (patients when known) in the evaluated set gets its per-class
  metrics' point estimates only, marked "too few to test", never a CI or p-value: with n
  cases even an exact paired test (sign test / exact McNemar) cannot reach p < 0.05 when n <= 5
  (all n discordant cases favouring one arm give p = 2 x 0.5^n = 0.0625 at n = 5, 0.031 at n = 6),
  and a bootstrap cannot show between-case variation it never sees, so its interval and p would
  be artefacts of resampling one or two cases (docs/experiment.md).

Example (seed 0 draws the cases [3,2,2,1], [1,0,0,0], [0,3,2,3], [2,2,3,2]; accuracies 1, 1/4,
3/4, 1; the 25th and 75th percentiles of those):
    >>> import numpy as np
    >>> accuracy = lambda t, q: {"accuracy": float((q.argmax(1) == t).mean())}
    >>> y = np.array([0, 1, 1, 1]); p = np.eye(2)[[1, 1, 1, 1]]    # case 0 wrong
    >>> bootstrap_ci(accuracy, y, p, n_resamples=4, ci=0.5, seed=0)["accuracy"]
    (0.75, 0.625, 1.0)
"""

from __future__ import annotations

import warnings
from typing import Callable, Collection, Iterable, Iterator, Mapping, Sequence

import numpy as np
from rich.progress import track

MetricFn = Callable[[np.ndarray, np.ndarray], Mapping[str, float]]

MIN_CASES_TO_TEST = 6
"""Fewest cases (patients when known) of a class for a CI and p-value of its per-class metrics:
the smallest n at which an exact paired test of n cases can reach p < 0.05 (2 x 0.5^6 = 0.031)."""
TOO_FEW = "too few to test"


class BootstrapResult(dict):
    """``{name: (point, low, high)}`` plus ``n_undefined[name]`` and ``n_resamples``."""

    def __init__(self, values: dict, n_undefined: dict[str, int], n_resamples: int, ci: float) -> None:
        super().__init__(values)
        self.n_undefined = n_undefined
        self.n_resamples = n_resamples
        self.ci = ci

    def to_json(self) -> dict[str, dict[str, float | int | None]]:
        """JSON-ready form; NaN becomes None so the file stays valid JSON."""
        fields = ("point", "low", "high", "p_value")
        out: dict[str, dict[str, float | int | None]] = {}
        for name, values in self.items():
            row: dict[str, float | int | None] = {
                key: (None if np.isnan(v) else float(v)) for key, v in zip(fields, values)
            }
            row["n_undefined"] = self.n_undefined.get(name, 0)
            row["n_resamples"] = self.n_resamples
            out[name] = row
        return out


def resample_indices(
    n: int, n_resamples: int, seed: int, groups: np.ndarray | None = None
) -> Iterator[np.ndarray]:
    """Yield ``n_resamples`` index arrays into 0..n-1, drawn with replacement.

    Without ``groups`` each array has n indices. With ``groups`` (one id per case) the
    unique groups are drawn with replacement and every case of a drawn group is kept,
    so a patient's images always travel together (array length varies).
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        for _ in range(n_resamples):
            yield rng.integers(0, n, size=n)
        return
    groups = np.asarray(groups)
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries for {n} cases")
    _, inverse = np.unique(groups, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    sizes = np.bincount(inverse)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    members = [order[s:s + k] for s, k in zip(starts, sizes)]
    for _ in range(n_resamples):
        drawn = rng.integers(0, len(members), size=len(members))
        yield np.concatenate([members[g] for g in drawn])


def _as_float_dict(values: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()}


def _percentiles(samples: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1.0 - ci) / 2.0
    with warnings.catch_warnings():
        # an all-NaN column (metric never defined) gives NaN bounds, which is the answer
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(samples, [100 * alpha, 100 * (1 - alpha)], axis=0)
    return low, high


def _collect(
    score: Callable[[np.ndarray], Mapping[str, float]],
    names: list[str],
    n: int,
    n_resamples: int,
    seed: int,
    groups: np.ndarray | None,
    progress: bool,
    description: str,
) -> np.ndarray:
    samples = np.full((n_resamples, len(names)), np.nan)
    indices = resample_indices(n, n_resamples, seed, groups)
    if progress:
        indices = track(indices, total=n_resamples, description=description)
    for b, idx in enumerate(indices):
        values = score(idx)
        samples[b] = [values.get(k, np.nan) for k in names]
    return samples


def _check_ci(ci: float, n_resamples: int) -> None:
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")


def bootstrap_ci(
    metric_fn: MetricFn,
    y_true: np.ndarray,
    y_prob: np.ndarray,
    groups: np.ndarray | None = None,
    n_resamples: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    progress: bool = False,
) -> BootstrapResult:
    """Percentile-bootstrap CI for every scalar ``metric_fn`` returns.

    Returns ``{name: (point, low, high)}``: the point is ``metric_fn`` on the full
    data, the bounds the (1-ci)/2 and (1+ci)/2 NaN-ignoring percentiles over resamples.
    Same seed, same inputs => identical result.
    """
    _check_ci(ci, n_resamples)
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob)
    point = _as_float_dict(metric_fn(y_true, y_prob))
    names = list(point)
    samples = _collect(lambda idx: metric_fn(y_true[idx], y_prob[idx]), names, len(y_true),
                       n_resamples, seed, groups, progress, "bootstrap")
    low, high = _percentiles(samples, ci)
    values = {k: (point[k], float(low[j]), float(high[j])) for j, k in enumerate(names)}
    undefined = {k: int(np.isnan(samples[:, j]).sum()) for j, k in enumerate(names)}
    return BootstrapResult(values, undefined, n_resamples, ci)


def two_sided_p(gains: np.ndarray, point: float) -> float:
    """Two-sided bootstrap p-value for "no gain".

    Twice the share of defined resamples whose gain has the opposite sign to the point
    gain (zero counts as opposite), capped at 1. A point gain of exactly 0 gives 1.
    With B resamples the smallest non-zero value is 2/B; 0 means "below 2/B".
    """
    gains = gains[~np.isnan(gains)]
    if np.isnan(point) or gains.size == 0:
        return float("nan")
    if point == 0:
        return 1.0
    opposite = (gains <= 0) if point > 0 else (gains >= 0)
    return float(min(1.0, 2.0 * opposite.mean()))


def paired_bootstrap_gain(
    metric_fn: MetricFn,
    y_true: np.ndarray,
    y_prob_a: np.ndarray,
    y_prob_b: np.ndarray,
    groups: np.ndarray | None = None,
    n_resamples: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    progress: bool = False,
) -> BootstrapResult:
    """Gain of arm B over arm A (B minus A) with paired-bootstrap CI and p-value.

    Both arms are scored on identical resampled indices (cases, or whole patients when
    ``groups`` is given), so shared case difficulty cancels out. Returns
    ``{name: (gain_point, low, high, p_value_two_sided)}``; see :func:`two_sided_p`.
    """
    _check_ci(ci, n_resamples)
    y_true = np.asarray(y_true)
    y_prob_a = np.asarray(y_prob_a)
    y_prob_b = np.asarray(y_prob_b)
    if y_prob_a.shape != y_prob_b.shape:
        raise ValueError(f"arms differ in shape: {y_prob_a.shape} vs {y_prob_b.shape}")
    point_a = _as_float_dict(metric_fn(y_true, y_prob_a))
    point_b = _as_float_dict(metric_fn(y_true, y_prob_b))
    names = [k for k in point_a if k in point_b]

    def score(idx: np.ndarray) -> dict[str, float]:
        a = metric_fn(y_true[idx], y_prob_a[idx])
        b = metric_fn(y_true[idx], y_prob_b[idx])
        return {k: float(b[k]) - float(a[k]) for k in names}

    gains = _collect(score, names, len(y_true), n_resamples, seed, groups, progress, "paired bootstrap")
    low, high = _percentiles(gains, ci)
    values = {}
    for j, k in enumerate(names):
        gain = point_b[k] - point_a[k]
        values[k] = (gain, float(low[j]), float(high[j]), two_sided_p(gains[:, j], gain))
    undefined = {k: int(np.isnan(gains[:, j]).sum()) for j, k in enumerate(names)}
    return BootstrapResult(values, undefined, n_resamples, ci)


def class_case_counts(y_true: np.ndarray, n_classes: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Cases of each class in ``y_true``: distinct ``groups`` (patients) when given, else images.

    >>> class_case_counts(np.array([0, 0, 1, 1]), 3, groups=np.array(["a", "a", "b", "c"])).tolist()
    [1, 2, 0]
    """
    y_true = np.asarray(y_true)
    if groups is None:
        return np.bincount(y_true.astype(np.int64), minlength=n_classes)[:n_classes]
    groups = np.asarray(groups)
    return np.array([len(np.unique(groups[y_true == k])) for k in range(n_classes)])


def too_few_to_test(metric_names: Iterable[str], y_true: np.ndarray, class_names: Sequence[str],
                    groups: np.ndarray | None = None, minimum: int = MIN_CASES_TO_TEST) -> dict[str, str]:
    """``{metric: reason}`` for every per-class metric ``<name>/<class>`` whose class has fewer than
    ``minimum`` cases (patients with ``groups``, else images) in the evaluated set; reports print
    them as ``f"{TOO_FEW}: {reason}"``.

    >>> too_few_to_test(["accuracy", "f1/bot", "f1/benign"], np.array([0] * 8 + [1]), ["benign", "bot"])
    {'f1/bot': '1 bot image in this set, fewer than 6'}
    """
    unit = "patient" if groups is not None else "image"
    counts = dict(zip(class_names, class_case_counts(y_true, len(class_names), groups).tolist()))
    out = {}
    for name in metric_names:
        cls = name.split("/", 1)[1] if "/" in name else None
        if cls in counts and counts[cls] < minimum:
            n = counts[cls]
            out[name] = f"{n} {cls} {unit}{'' if n == 1 else 's'} in this set, fewer than {minimum}"
    return out


def withhold_tests(values: Mapping[str, Sequence[float]], too_few: Collection[str]) -> dict[str, list[float]]:
    """``values`` (``name -> (point, low, high[, p])``) as lists, keeping only the point of every
    metric in ``too_few``: its bounds and p-value become NaN, as any undefined bound is.

    >>> withhold_tests({"f1/bot": (0.4, 0.4, 0.86, 0.0), "accuracy": (0.75, 0.5, 1.0, 0.2)}, {"f1/bot"})
    {'f1/bot': [0.4, nan, nan, nan], 'accuracy': [0.75, 0.5, 1.0, 0.2]}
    """
    return {k: [v[0]] + [float("nan")] * (len(v) - 1) if k in too_few else list(v) for k, v in values.items()}


def withhold_result(result: BootstrapResult, too_few: Collection[str]) -> BootstrapResult:
    """:func:`withhold_tests` of a :class:`BootstrapResult`, keeping its resampling record."""
    return BootstrapResult(withhold_tests(result, too_few), result.n_undefined, result.n_resamples, result.ci)

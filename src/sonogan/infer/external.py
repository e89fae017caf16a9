"""External validation: trained models applied to a dataset they never saw, with CIs and a duplicate check.

:func:`evaluate_external` runs each model on the real images of a sonogan dataset with the
model's own preprocessing preset (the same cached pipeline the experiment used, built for
the external dataset), normaliser, test-time augmentation and calibration. It reports every
flagship metric (:func:`~sonogan.evaluate.metrics.classification_metrics`) plus the top-label
ECE, with percentile-bootstrap CIs by patient when the dataset knows patients
(:func:`~sonogan.evaluate.bootstrap.bootstrap_ci`), and the paired-bootstrap gain of every
further model over the first (baseline vs augmented). A per-class metric of a class with fewer
than 6 cases in a scope keeps its point estimate only ('too few to test', as in the experiment:
:func:`~sonogan.evaluate.bootstrap.too_few_to_test`), listed with the reason under
``too_few_to_test``.

Duplicates: each image of the external set is compared with the models' development
images (exact sha256 or perceptual-hash distance <= ``max_distance``,
:func:`~sonogan.data.duplicates.cross_pairs`; hashes from the run, see
:mod:`~sonogan.infer.provenance`). Matches are listed and every number is given twice: on all
images and on the images without a match. A model not inside a run has no known training
images, and the result says the check was not possible.

Example:
    >>> from sonogan.infer.resolve import load_model
    >>> result = evaluate_external([("baseline", load_model("runs/exp", arm="baseline"))],  # doctest: +SKIP
    ...                            "datasets/external")
    >>> result.metrics["baseline"]["all"]["macro_f1"]                                      # doctest: +SKIP
    [0.71, 0.64, 0.78]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from sonogan.data.duplicates import cross_pairs, dataset_hashes
from sonogan.data.manifest import Dataset, load_dataset
from sonogan.errors import SonoganInputError
from sonogan.evaluate.bootstrap import (MIN_CASES_TO_TEST, bootstrap_ci, paired_bootstrap_gain, too_few_to_test,
                                        withhold_tests)
from sonogan.evaluate.calibration import expected_calibration_error
from sonogan.evaluate.metrics import classification_metrics
from sonogan.imageio import decode_image
from sonogan.infer.pipeline import Pipeline
from sonogan.infer.provenance import training_hashes
from sonogan.infer.resolve import LoadedModel
from sonogan.preprocess.cache import build_cache, open_cache, read_info

# which masks a model's lesion crops came from: every results table and JSON says it
TRUE_MASKS, PREDICTED_MASKS = "true masks", "predicted masks"
NO_MASKS, WHOLE_SCAN_MODEL = "no masks (whole scan area)", "not used (whole-scan preset)"
#: images segmented per call on the predicted-masks path (bounds the decoded images held at once)
SEGMENT_BATCH = 32


@dataclass
class ExternalResult:
    """Everything an external validation found (JSON-ready via :meth:`to_json`)."""

    dataset: str
    class_names: list[str]
    ids: list[str]
    y: np.ndarray
    groups: np.ndarray | None
    probs: dict[str, np.ndarray]                       # model name -> (N, C)
    duplicates: list[dict[str, Any]]                   # cross pairs (a = development image, b = external)
    duplicate_check: str                               # "done", or why it was not possible
    metrics: dict[str, dict[str, dict[str, list]]]     # model -> "all"/"no_duplicates" -> metric -> [point, lo, hi]
    gains: dict[str, dict[str, dict[str, list]]]       # model -> scope -> metric -> [gain, lo, hi, p]
    roi_fallback: dict[str, int]                       # model -> images without a mask for a lesion-ROI preset
    descriptions: dict[str, str]
    bootstrap: dict[str, Any] = field(default_factory=dict)
    too_few: dict[str, dict[str, str]] = field(default_factory=dict)  # scope -> metric -> reason (issue 20)
    masks: dict[str, str] = field(default_factory=dict)  # model -> TRUE_MASKS, PREDICTED_MASKS, ... (issue 19)

    @property
    def duplicate_ids(self) -> list[str]:
        return sorted({d["b"] for d in self.duplicates})

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "class_names": self.class_names, "n_images": len(self.ids),
                "n_patients": None if self.groups is None else int(len(set(self.groups))),
                "class_counts": {c: int((self.y == k).sum()) for k, c in enumerate(self.class_names)},
                "models": self.descriptions, "bootstrap": self.bootstrap,
                "duplicate_check": self.duplicate_check, "duplicates": self.duplicates,
                "duplicate_ids": self.duplicate_ids, "roi_fallback": self.roi_fallback, "masks": self.masks,
                "metrics": _no_nan(self.metrics), "gain_vs_first": _no_nan(self.gains),
                "too_few_to_test": self.too_few}


def _no_nan(tree: Any) -> Any:
    """NaN -> None throughout nested dicts/lists, so the JSON file is strict JSON."""
    if isinstance(tree, dict):
        return {k: _no_nan(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_no_nan(v) for v in tree]
    return None if isinstance(tree, float) and np.isnan(tree) else tree


def metric_fn(class_names: Sequence[str]):
    """Flagship metrics and the top-label ECE, as one flat dict (what the bootstrap resamples)."""
    def fn(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
        return {**classification_metrics(y, p, class_names), "ece": expected_calibration_error(y, p)}
    return fn


def external_labels(ds: Dataset, class_names: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """Real image ids, labels in the MODEL's class order, and patient groups (None if unknown)."""
    real = ds.real()
    unknown = sorted(set(real["label"]) - set(class_names))
    if unknown:
        raise SonoganInputError(ds.root, f"labels {unknown} are not classes of the model {list(class_names)}",
                                "relabel the dataset ('sonogan data relabel') to the model's classes")
    ids = list(real["image_id"])
    y = np.array([list(class_names).index(c) for c in real["label"]], dtype=np.int64)
    groups = np.asarray(real["patient_id"].astype(str)) if ds.spec.patients_known else None
    return ids, y, groups


def has_masks(ds: Dataset) -> bool:
    """Some real image of ``ds`` has a drawn lesion mask."""
    return bool((ds.real()["mask"].astype(str) != "").any())


def masks_used(loaded: LoadedModel, ds: Dataset, masks: str | None = None) -> str:
    """Which masks ``loaded``'s lesion crops come from on ``ds``: ``masks`` "true" (the drawn
    ones), "ignore" (the pipeline's own, even where drawn ones exist), or None: the drawn masks
    where the dataset has them, else the pipeline's segmenter, else the whole scan area."""
    if masks not in (None, "true", "ignore"):
        raise SonoganInputError("--masks", f"'{masks}' is not a choice", "use --masks true or --masks ignore")
    if loaded.predictor.preset.roi != "lesion":
        return WHOLE_SCAN_MODEL
    segments, drawn = isinstance(loaded.predictor, Pipeline), has_masks(ds)
    if masks == "ignore" and not segments:
        raise SonoganInputError(loaded.description, "--masks ignore needs a model that finds the lesion itself",
                                "evaluate a pipeline.json (segmenter + lesion-ROI classifier)")
    if masks == "true" and not drawn:
        raise SonoganInputError(ds.root, "--masks true: no real image of the dataset has a drawn mask",
                                "evaluate a pipeline.json with --masks ignore")
    if masks == "ignore" or (masks is None and segments and not drawn):
        return PREDICTED_MASKS
    return TRUE_MASKS if drawn else NO_MASKS


def predict_dataset(loaded: LoadedModel, ds: Dataset, ids: list[str], progress: bool = False,
                    masks: str = TRUE_MASKS) -> tuple[np.ndarray, int]:
    """Probabilities of ``ids`` and the number of images classified on the whole scan area by a
    lesion-ROI preset (no drawn mask; with ``PREDICTED_MASKS``: no lesion found). Drawn masks:
    through the model's preset, cached like training data; predicted: the pipeline segments
    each decoded image (:meth:`Pipeline.run`) and crops from its own mask."""
    if masks == PREDICTED_MASKS:
        rows = ds.manifest.set_index("image_id").loc[ids, "image"]
        probs, missed = [], 0
        for start in range(0, len(ids), SEGMENT_BATCH):
            part = rows.iloc[start:start + SEGMENT_BATCH]
            out = loaded.predictor.run([decode_image(ds.path(f), context=f"manifest row {i}")  # type: ignore[attr-defined]
                                        for i, f in part.items()])
            probs.append(out.probs)
            missed += int((~out.lesion_found).sum())
        return np.concatenate(probs), missed
    preset = loaded.predictor.preset
    cache = build_cache(ds, preset, progress=progress, allow_no_masks=True)
    pixels, _ = open_cache(ds, preset).get(ids)
    return loaded.predictor.predict_pixels(pixels), int(read_info(cache).get("n_roi_fallback", 0))


def find_duplicates(models: Sequence[tuple[str, LoadedModel]], ds: Dataset, keep_in: Path | None,
                    max_distance: int, progress: bool) -> tuple[list[dict[str, Any]], str]:
    """Cross pairs between the runs' development images and the external real images."""
    if any(m.run_dir is None for _, m in models):
        return [], "not possible: a model outside an experiment run has no known training images"
    runs = sorted({m.run_dir.resolve() for _, m in models if m.run_dir is not None})
    real = Dataset(ds.root, ds.spec, ds.real().reset_index(drop=True))
    ext = dataset_hashes(real, progress=progress)
    pairs: list[dict[str, Any]] = []
    for k, run in enumerate(runs):
        keep = None if keep_in is None else Path(keep_in) / f"run{k}"
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
        pairs += [{**p, "run": run.name} for p in cross_pairs(training_hashes(run, keep, progress), ext, max_distance)]
    return pairs, "done"


def _cis(fn, y, p, groups, keep, n_resamples, ci, seed) -> dict[str, list]:
    res = bootstrap_ci(fn, y[keep], p[keep], None if groups is None else groups[keep],
                       n_resamples=n_resamples, ci=ci, seed=seed)
    return {k: [float(x) for x in v] for k, v in res.items()}


def evaluate_external(models: Sequence[tuple[str, LoadedModel]], dataset: str | Path | Dataset,
                      n_resamples: int = 1000, ci: float = 0.95, seed: int = 0, max_distance: int = 4,
                      keep_hashes_in: Path | None = None, progress: bool = False,
                      masks: str | None = None) -> ExternalResult:
    """Apply each ``(name, model)`` to ``dataset``; gains are of every model over the first.
    ``masks``: "true", "ignore" or None (see :func:`masks_used`)."""
    if not models:
        raise SonoganInputError("evaluate", "no model given", "pass a model")
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    names = models[0][1].class_names
    for name, m in models[1:]:
        if m.class_names != names:
            raise SonoganInputError(name, f"classes {m.class_names} differ from {names}", "compare models of one task")
    ids, y, groups = external_labels(ds, names)
    used = {name: masks_used(m, ds, masks) for name, m in models}  # every refusal before any image is read
    probs, fallback = {}, {}
    for name, m in models:
        probs[name], fallback[name] = predict_dataset(m, ds, ids, progress, used[name])
    duplicates, check = find_duplicates(models, ds, keep_hashes_in, max_distance, progress)
    dup = np.isin(ids, [d["b"] for d in duplicates])
    scopes = {"all": np.ones(len(ids), bool)}
    if dup.any():
        scopes["no_duplicates"] = ~dup
    fn = metric_fn(names)
    too_few = {s: too_few_to_test(fn(y[keep], probs[models[0][0]][keep]), y[keep], names,
                                  None if groups is None else groups[keep]) for s, keep in scopes.items() if keep.any()}
    metrics = {name: {s: withhold_tests(_cis(fn, y, p, groups, keep, n_resamples, ci, seed), too_few[s])
                      for s, keep in scopes.items() if keep.any()} for name, p in probs.items()}
    gains: dict[str, dict[str, dict[str, list]]] = {}
    first = models[0][0]
    for name, _ in models[1:]:
        gains[name] = {}
        for s, keep in scopes.items():
            g = paired_bootstrap_gain(fn, y[keep], probs[first][keep], probs[name][keep],
                                      None if groups is None else groups[keep], n_resamples, ci, seed)
            gains[name][s] = withhold_tests({k: [float(x) for x in v] for k, v in g.items()}, too_few.get(s, {}))
    return ExternalResult(ds.spec.name, list(names), ids, y, groups, probs, duplicates, check, metrics, gains,
                          fallback, {name: m.description for name, m in models},
                          {"n_resamples": n_resamples, "ci": ci, "seed": seed,
                           "unit": "patient" if groups is not None else "image",
                           "min_cases_to_test": MIN_CASES_TO_TEST}, too_few, used)


def predictions_table(result: ExternalResult) -> pd.DataFrame:
    """One row per external image: id, label, patient, duplicate flag, each model's probabilities."""
    dup = set(result.duplicate_ids)
    table = pd.DataFrame({"image_id": result.ids, "label": [result.class_names[k] for k in result.y],
                          "patient_id": result.groups if result.groups is not None else result.ids,
                          "duplicate_of_training": [i in dup for i in result.ids]})
    for name, p in result.probs.items():
        table[f"{name}:predicted"] = [result.class_names[k] for k in p.argmax(1)]
        for k, c in enumerate(result.class_names):
            table[f"{name}:p_{c}"] = p[:, k]
    return table

"""A rare class of a handful of images, the toolkit's use case (issue 20): the default path
(experiment with the audit on, its report, predict, evaluate) finishes on the phantom with the
rare class at 2, 3, 4, 6 and 10 training images per fold and with a fold whose validation set
has no rare-class image; every metric that cannot be measured is reported with its reason, and
per-class numbers of a class with fewer than 6 evaluated patients are point estimates marked
'too few to test', never a CI and a p-value.

The splits are written by hand (``make_splits`` refuses a fold without the rare class in
validation, as it should): one patient per image, so image and patient counts agree. The fast
case (2 and 3 training images, no rare class in fold 1's validation) runs by default; the rest
of the matrix is marked slow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sonogan.data.manifest import load_dataset
from sonogan.data.splits import Splits, manifest_sha256
from sonogan.evaluate.bootstrap import MIN_CASES_TO_TEST
from sonogan.experiment import protocol
from sonogan.experiment.config import ExperimentConfig
from sonogan.phantom import PhantomConfig, generate_phantom

RARE = "borderline"
# per class: 1 test patient, 2 validation patients in each fold, then the training patients
N_PATIENTS = {"benign": 8, "borderline": 15, "malignant": 8}

SMALL = {
    "name": "small",
    "preset": "flagship-64",
    "gan": {"family": "dcgan", "iterations": 4, "batch_size": 4, "ngf": 4, "ndf": 4, "checkpoint_every": 2,
            "sample_every": 2, "quality_every": 2, "quality_samples": 8, "ema_decay": 0.5},
    "synthetic": {"n_per_class": 6},
    "classifiers": [{"model": "frid-adar-cnn", "epochs": 1, "batch_size": 8, "model_kwargs": {"widths": [4, 8, 8]}}],
    "evaluation": {"n_resamples": 20, "tsne_max_real": 20, "tsne_max_synthetic": 10},
    "num_threads": 1,
    # the default audit (both extractors, gate on), with a short domain encoder to keep CI fast
    "audit": {"domain_encoder": {"epochs": 1}, "quality_max_images": 4, "diversity_pairs": 10, "kid_subsets": 5},
}


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small") / "phantom"
    generate_phantom(root, PhantomConfig(n_benign=N_PATIENTS["benign"], n_borderline=N_PATIENTS["borderline"],
                                         n_malignant=N_PATIENTS["malignant"], images_per_patient=1, image_size=64))
    return root


def write_splits(root: Path, path: Path, rare_train: tuple[int, int], rare_val: tuple[int, int]) -> Path:
    """Two folds: 1 test patient per class; fold k's validation holds ``rare_val[k]`` rare and 2 of
    every other class; fold k trains on ``rare_train[k]`` rare and 3 of every other class."""
    ds = load_dataset(root)
    real = ds.real()
    by_class = {c: sorted(real.loc[real["label"] == c, "image_id"]) for c in N_PATIENTS}
    test, folds = [], [{"train": [], "val": []}, {"train": [], "val": []}]
    for cls, ids in by_class.items():
        n_val = rare_val if cls == RARE else (2, 2)
        n_train = rare_train if cls == RARE else (3, 3)
        test.append(ids[0])
        val0, val1 = ids[1:1 + n_val[0]], ids[1 + n_val[0]:1 + n_val[0] + n_val[1]]
        rest = ids[1 + sum(n_val):]
        for k, (val, n) in enumerate(((val0, n_train[0]), (val1, n_train[1]))):
            folds[k]["val"] += val
            folds[k]["train"] += rest[:n]
    used = set(test) | {i for f in folds for p in f.values() for i in p}
    groups = {i: p for i, p in zip(real["image_id"], real["patient_id"]) if i in used}
    Splits(seed=0, n_folds=2, test_fraction=0.1, dataset_name=ds.spec.name, manifest_sha256=manifest_sha256(ds),
           test=sorted(test), folds=[{p: sorted(v) for p, v in f.items()} for f in folds], groups=groups).save(path)
    return path


def run_small(phantom: Path, tmp: Path, rare_train: tuple[int, int], rare_val: tuple[int, int]) -> Path:
    splits = write_splits(phantom, tmp / "splits.json", rare_train, rare_val)
    cfg = ExperimentConfig.model_validate({**SMALL, "dataset": str(phantom), "splits": str(splits)})
    return protocol.run_experiment(cfg, tmp / "run", progress=False)


def check_run(run: Path, rare_train: tuple[int, int]) -> dict:
    """The run finished with its audit and report; every skipped measurement has a reason."""
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    metrics = json.loads((run / "metrics.json").read_text())
    for fold, n_train in enumerate(rare_train):
        audit = json.loads((run / "folds" / f"fold{fold}" / "audit" / RARE / "audit.json").read_text())
        assert audit["n_real_training"] == n_train
        assert all(isinstance(why, str) and why for why in audit["skipped"].values())
        assert (audit["quality"]["real"]["niqe"] is None) == ("quality.niqe" in audit["skipped"])
    # one rare patient in the hold-out test: its per-class metrics are point estimates only
    test = metrics["test"]
    assert test["too_few_to_test"][f"f1/{RARE}"] == f"1 {RARE} patient in this set, fewer than {MIN_CASES_TO_TEST}"
    gain = test["gain_vs_baseline"]["augmented"][f"f1/{RARE}"]
    assert not np.isnan(gain[0]) and all(np.isnan(v) for v in gain[1:])
    assert "accuracy" not in test["too_few_to_test"]
    summary = (run / "summary.md").read_text()
    assert "too few to test" in summary and "Synthetic-image audit" in summary
    return metrics


FAST = [((2, 3), (2, 0))]  # 2 and 3 rare training images; fold 1 has no rare image in validation
SLOW = [((4, 6), (2, 2)), ((10, 10), (2, 2))]


@pytest.mark.parametrize("rare_train, rare_val",
                         FAST + [pytest.param(*case, marks=pytest.mark.slow) for case in SLOW])
def test_experiment_with_audit_finishes_on_a_small_rare_class(phantom, tmp_path, cli, rare_train, rare_val):
    run = run_small(phantom, tmp_path, rare_train, rare_val)
    metrics = check_run(run, rare_train)
    n_rare_cv = sum(rare_val)
    for fold, n_val in enumerate(rare_val):  # a fold without the rare class in validation says so
        records = [c for by_model in metrics["calibration"][str(fold)].values() for c in by_model.values()]
        assert records and all(c.get("absent_from_validation") == ([RARE] if n_val == 0 else None) for c in records)
    assert metrics["cv"]["too_few_to_test"][f"sensitivity/{RARE}"].startswith(f"{n_rare_cv} {RARE} patients")
    # the default downstream commands on the run: predict and an external evaluation
    images = sorted((phantom / "images").rglob("*.png"))[:3]
    code, _, err = cli(["predict", str(run), *map(str, images), "--out", str(tmp_path / "pred" / "p.csv")])
    assert code == 0, err
    code, _, err = cli(["evaluate", str(run), str(phantom), "--out", str(tmp_path / "ext")])
    assert code == 0, err


def test_headline_marks_a_gain_from_one_image_too_few_to_test():
    from sonogan.experiment.report import headline_lines, too_few_note

    reason = {"f1/borderline": "1 borderline patient in this set, fewer than 6"}
    scope = {"ci": {"baseline": {"accuracy": [0.5, 0.25, 0.75], "macro_f1": [0.3, 0.1, 0.5],
                                 "f1/borderline": [0.0, float("nan"), float("nan")]},
                    "augmented": {"accuracy": [0.75, 0.5, 1.0], "macro_f1": [0.5, 0.2, 0.8],
                                  "f1/borderline": [0.4, float("nan"), float("nan")]}},
             "gain_vs_baseline": {"augmented": {"accuracy": [0.25, 0.0, 0.5, 0.2], "macro_f1": [0.2, 0.0, 0.4, 0.1],
                                                "f1/borderline": [0.4] + [float("nan")] * 3}},
             "too_few_to_test": reason}
    results = {"primary_model": "cnn", "arms": ["baseline", "augmented"], "n_cv": 4, "n_test": 4,
               "bootstrap": {"ci": 0.95, "n_resamples": 1000, "unit": "patient", "min_cases_to_test": 6},
               "cv": scope, "test": scope}
    lines = headline_lines(results, ["borderline"])
    assert lines[4] == ("  F1 borderline 0.000 → 0.400 (+0.400, too few to test: 1 borderline patient in this set, "
                        "fewer than 6)")
    assert "accuracy 0.500 → 0.750 (+0.250, CI +0.000 to +0.500, p = 0.20)" in lines[3]
    note = too_few_note(results)
    assert "hold-out test: 1 borderline patient in this set, fewer than 6" in note and "Below 6 cases" in note

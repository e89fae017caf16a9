"""``sonogan evaluate`` end to end: a phantom experiment applied to a phantom cohort it never saw
(plus two of its own development images, which must be caught as duplicates), paired gains of
two arms, the same preprocessing as in training, a report; and ``sonogan export --card``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sonogan.data.importers import ImportOptions, import_dataset
from sonogan.data.manifest import load_dataset
from sonogan.evaluate.metrics import classification_metrics
from sonogan.experiment.config import ExperimentConfig
from sonogan.experiment.protocol import run_experiment
from sonogan.infer import Predictor
from sonogan.infer.provenance import HASHES_FILE, read_hashes, run_data, training_hashes
from sonogan.phantom import generate_phantom
from sonogan.phantom.config import PhantomConfig
from sonogan.preprocess.cache import decode_image

CLASSES = ["benign", "borderline", "malignant"]
TINY = {"name": "tiny", "preset": "full-64", "baseline_only": True, "classic_sweep": [], "num_threads": 1,
        "classic_arm": {"hflip": True, "rotation": 10.0},
        "phantom": {"n_benign": 5, "n_borderline": 4, "n_malignant": 4, "images_per_patient": 2, "image_size": 64},
        "split": {"folds": 2, "test_fraction": 0.2, "seed": 0}, "evaluation": {"n_resamples": 20, "tsne": False},
        "classifiers": [{"model": "frid-adar-cnn", "epochs": 1, "batch_size": 16, "model_kwargs": {"widths": [4, 8, 8]}}]}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """(run, external dataset, ids of the two external images copied from the development set)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ev")
    run = run_experiment(ExperimentConfig.model_validate(TINY), root / "run", progress=False)
    other = generate_phantom(root / "other", PhantomConfig(seed=7, n_benign=3, n_borderline=2, n_malignant=2,
                                                           images_per_patient=2, image_size=64))
    rows = [{"image_id": f"ext-{r.image_id}", "image": str(other.root / r.image), "label": r.label,
             "patient_id": f"ext-{r.patient_id}"} for r in other.manifest.itertuples()]
    dev = run_data(run)
    (root / "copies").mkdir()
    copied = []
    for image_id in dev.development_ids[:2]:
        row = dev.dataset.manifest.set_index("image_id").loc[image_id]
        shutil.copy(dev.dataset.root / row["image"], root / "copies" / f"copy-{image_id}.png")
        copied.append(f"copy-{image_id}")
        rows.append({"image_id": copied[-1], "image": str(root / "copies" / f"copy-{image_id}.png"), "label": row["label"],
                     "patient_id": f"copy-{row['patient_id']}"})
    pd.DataFrame(rows).to_csv(root / "ext.csv", index=False)
    ext = import_dataset(root / "ext.csv", "csv", root / "ext", ImportOptions(name="external"))
    return run, ext.root, copied


def test_evaluate_a_run_on_an_unseen_dataset_with_gains_and_duplicates(setup, tmp_path, cli):
    run, ext, copied = setup
    before = sorted((p.relative_to(run), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file())
    code, out, err = cli(["evaluate", str(run), str(ext), "--arm", "baseline", "--arm", "classic",
                          "--out", str(tmp_path / "ev"), "--resamples", "30"])
    assert code == 0, err
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert res["n_images"] == 16 and res["bootstrap"]["unit"] == "patient" and res["n_patients"] == 8  # 7 + the copies (two views of one patient)
    assert res["duplicate_check"] == "done" and res["duplicate_ids"] == sorted(copied)
    assert {d["kind"] for d in res["duplicates"]} == {"exact"} and "duplicate training images" in out
    assert set(res["metrics"]["baseline"]) == {"all", "no_duplicates"}
    assert set(res["gain_vs_first"]) == {"classic"} and "macro_f1" in res["gain_vs_first"]["classic"]["all"]
    table = pd.read_csv(tmp_path / "ev" / "predictions.csv")
    assert table["duplicate_of_training"].sum() == 2
    # the point estimates are the metrics of the saved predictions, with and without the duplicates
    y = table["label"].map(CLASSES.index).to_numpy()
    probs = table[[f"baseline:p_{c}" for c in CLASSES]].to_numpy()
    keep = ~table["duplicate_of_training"].to_numpy()
    for scope, rows in (("all", slice(None)), ("no_duplicates", keep)):
        want = classification_metrics(y[rows], probs[rows], CLASSES)["macro_f1"]
        assert res["metrics"]["baseline"][scope]["macro_f1"][0] == pytest.approx(want)
    # same preprocessing as training: the fold models' Predictors on the decoded files give the same numbers
    ds = load_dataset(ext)
    images = [decode_image(ds.root / p) for p in ds.manifest.set_index("image_id").loc[table["image_id"], "image"]]
    folds = [Predictor.load(p).predict_images(images) for p in sorted(run.glob("folds/fold*/baseline/*/best.pt"))]
    assert np.allclose(np.mean(folds, axis=0), probs, atol=1e-6)
    assert (tmp_path / "ev" / HASHES_FILE).exists() is False and list((tmp_path / "ev" / "hashes").rglob(HASHES_FILE))
    html = (tmp_path / "ev" / "report.html").read_text()
    assert "Duplicates of training images" in html and "Paired gains" in html
    assert (tmp_path / "ev" / "report.md").is_file()
    # every class has fewer than 6 external patients: per-class numbers are point estimates only (issue 20)
    patients = table.groupby("label")["patient_id"].nunique()
    assert res["too_few_to_test"]["all"]["f1/borderline"] == (f"{patients['borderline']} borderline patients in "
                                                              "this set, fewer than 6")
    point, low, high = res["metrics"]["baseline"]["all"]["f1/borderline"]
    assert point == pytest.approx(classification_metrics(y, probs, CLASSES)["f1/borderline"]) and low is high is None
    assert res["gain_vs_first"]["classic"]["all"]["f1/borderline"][1:] == [None, None, None]
    assert None not in res["metrics"]["baseline"]["all"]["macro_f1"]  # a macro metric is still tested
    assert "too few to test" in out and "too few to test" in html
    assert sorted((p.relative_to(run), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()) == before


def test_saved_and_recomputed_training_hashes_agree(setup, tmp_path):
    run, _, _ = setup
    copy = Path(shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns(".lock")))
    (copy / HASHES_FILE).unlink(missing_ok=True)
    training_hashes(copy, keep_in=copy)  # recomputed and saved in the run, as the experiment does
    saved = read_hashes(copy / HASHES_FILE)
    recomputed = training_hashes(run, keep_in=tmp_path)
    assert saved["image_id"].tolist() == recomputed["image_id"].tolist() == run_data(run).development_ids
    assert saved["sha256"].tolist() == recomputed["sha256"].tolist() and saved["phash"].tolist() == recomputed["phash"].tolist()
    assert training_hashes(copy)["sha256"].tolist() == saved["sha256"].tolist()  # the saved file is used


def test_one_checkpoint_outside_a_run_and_input_errors(setup, tmp_path, cli):
    run, ext, _ = setup
    shutil.copy(next(run.glob("folds/fold0/baseline/*/best.pt")), tmp_path / "best.pt")
    code, out, err = cli(["evaluate", str(tmp_path / "best.pt"), str(ext), "--out", str(tmp_path / "a"),
                          "--resamples", "10"])
    assert code == 0, err
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["duplicate_check"].startswith("not possible") and set(res["metrics"][next(iter(res["metrics"]))]) == {"all"}
    code, _, err = cli(["evaluate", str(run), str(ext), "--arm", "nope", "--out", str(tmp_path / "b")])
    assert code == 2 and "no arm 'nope'" in err and not (tmp_path / "b").exists()
    code, _, err = cli(["evaluate", str(tmp_path / "best.pt"), str(ext), "--fold", "0", "--out", str(tmp_path / "c")])
    assert code == 2 and "inside a run folder" in err
    code, _, err = cli(["evaluate", str(run), str(ext), "--out", str(tmp_path / "a")])
    assert code == 2 and ("not empty" in err or "exists" in err)


def test_model_card_of_a_run_cites_the_external_evaluation(setup, tmp_path, cli):
    run, ext, _ = setup
    code, _, err = cli(["evaluate", str(run), str(ext), "--out", str(tmp_path / "ev"), "--resamples", "10"])
    assert code == 0, err
    code, out, err = cli(["export", str(run), "--card", "--out", str(tmp_path / "card"),
                          "--external", str(tmp_path / "ev")])
    assert code == 0, err
    card = json.loads((tmp_path / "card" / "model_card.json").read_text())
    data = run_data(run)
    assert card["training_data"]["manifest_sha256"] == data.splits.manifest_sha256
    assert card["training_data"]["n_development_images"] == len(data.development_ids)
    assert sum(card["training_data"]["development_class_counts"].values()) == len(data.development_ids)
    assert card["externally_validated"] and card["external_validation"][0]["n_images"] == 16
    assert card["model"]["members"][0]["architecture"] == "frid-adar-cnn" and card["referral"]["val_n"] > 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert card["metrics"]["test"]["baseline"]["accuracy"] == metrics["test"]["ci"]["baseline"]["accuracy"]
    md = (tmp_path / "card" / "model_card.md").read_text()
    assert "Decision support only" in md and "Hold-out test" in md and "external (16 images)" in md
    assert (tmp_path / "card" / HASHES_FILE).is_file()
    code, _, err = cli(["export", str(tmp_path / "card" / "model_card.json"), "--card", "--out", str(tmp_path / "x")])
    assert code == 2 and "not inside an experiment run" in err

"""The flagship protocol end to end on a tiny phantom: both arms, every output, no synthetic
image in any evaluated set, GANs that only saw their fold's training images, and an
interrupted run that resumes to exactly the numbers of an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sonogan.data.manifest import load_dataset
from sonogan.data.splits import Splits
from sonogan.experiment import protocol
from sonogan.experiment.config import ExperimentConfig

TINY = {
    "name": "tiny",
    "phantom": {"n_benign": 6, "n_borderline": 4, "n_malignant": 5, "images_per_patient": 2, "image_size": 96},
    "split": {"folds": 2, "test_fraction": 0.2, "seed": 0},
    "gan": {"family": "dcgan", "iterations": 6, "batch_size": 8, "ngf": 8, "ndf": 8, "checkpoint_every": 3,
            "sample_every": 3, "quality_every": 3, "quality_samples": 16, "ema_decay": 0.5},
    "synthetic": {"n_per_class": 12, "sweep": [6]},
    "classic_arm": {"hflip": True, "rotation": 10.0},
    "classic_sweep": [6],
    "classifiers": [{"model": "frid-adar-cnn", "epochs": 2, "batch_size": 16, "model_kwargs": {"widths": [4, 8, 8]}},
                    {"model": "resnet10t", "epochs": 1, "batch_size": 16}],
    "evaluation": {"n_resamples": 20, "tsne_max_real": 20, "tsne_max_synthetic": 10},
    "num_threads": 1,
}


def tiny_config(**update) -> ExperimentConfig:
    return ExperimentConfig.model_validate({**TINY, **update})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return protocol.run_experiment(tiny_config(), tmp_path_factory.mktemp("exp") / "run", progress=False)


def test_all_outputs_written(finished_run: Path):
    run = finished_run
    for name in ("report.html", "summary.md", "metrics.json", "config.yaml", "run.json", "log.txt"):
        assert (run / name).is_file(), name
    for fig in ("bars.png", "roc.png", "confusion_baseline.png", "confusion_augmented.png", "tsne.png",
                "sweep_synthetic.png", "sweep_classic.png",
                "classifier_curves.png"):
        assert (run / "figures" / fig).stat().st_size > 1000, fig
    metrics = json.loads((run / "metrics.json").read_text())
    arms = ["baseline", "augmented", "synthetic-6", "classic-6"]
    assert metrics["arms"] == arms and list(metrics["test"]["ci"]) == arms
    point, low, high = metrics["test"]["ci"]["augmented"]["macro_f1"]
    assert low <= point <= high
    gain = metrics["test"]["gain_vs_baseline"]["augmented"]["f1/borderline"]
    assert len(gain) == 4  # gain, low, high, p
    # two members: weighted fusion is the headline model, equal weights its reference; weights saved per arm
    assert metrics["primary_model"] == "ensemble" and metrics["models"][-2:] == ["ensemble", "ensemble-equal"]
    fused = json.loads((run / "folds" / "fold0" / "augmented" / "ensemble.json").read_text())
    assert abs(sum(fused["weights"]) - 1) < 1e-6 and all(Path(p).is_file() for p in fused["members"].values())
    html = (run / "report.html").read_text()
    assert "Table 1" in html and "data:image/png;base64" in html and 'src="http' not in html
    assert "Caution" in html  # 1-2 borderline test patients: the report warns that their CIs are too narrow
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


def test_no_synthetic_image_is_ever_evaluated(finished_run: Path):
    ds = load_dataset(finished_run / "dataset")
    splits = Splits.load(finished_run / "dataset" / "splits.json", ds)
    real = set(ds.manifest.loc[ds.manifest["source"] == "real", "image_id"])
    for fold in (0, 1):
        fold_dir = finished_run / "folds" / f"fold{fold}"
        record = json.loads((fold_dir / "fold.json").read_text())
        assert set(record["val_ids"]) <= real and set(record["test_ids"]) <= real
        assert record["val_ids"] == splits.partition(fold, "val") and record["test_ids"] == splits.test
        preds = np.load(fold_dir / "predictions.npz")
        assert preds["augmented|ensemble|val"].shape[0] == len(record["val_ids"])
        assert preds["augmented|frid-adar-cnn|test"].shape[0] == len(record["test_ids"])
        syn = pd.read_csv(fold_dir / "synthetic-borderline" / "manifest.csv", dtype=str, keep_default_na=False)
        assert (syn["source"] == "synthetic").all() and (syn["synth_fold"] == str(fold)).all()
        assert not set(syn["image_id"]) & (set(record["val_ids"]) | set(record["test_ids"]))
        # the GAN saw only this fold's borderline training images
        seen = set(json.loads((fold_dir / "gan-borderline" / "run.json").read_text())["training_ids"])
        train = set(splits.partition(fold, "train"))
        labels = ds.manifest.set_index("image_id")["label"]
        assert seen and seen <= train and {labels[i] for i in seen} == {"borderline"}
        assert seen == {i for i in train if labels[i] == "borderline"}


def test_interrupted_run_resumes_to_identical_numbers(finished_run: Path, tmp_path, monkeypatch):
    real_train_arm = protocol.train_arm
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 11:  # fold 1, second arm: as if the process were killed here
            raise KeyboardInterrupt
        return real_train_arm(*args, **kwargs)

    monkeypatch.setattr(protocol, "train_arm", flaky)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        protocol.run_experiment(tiny_config(), out, progress=False)
    assert (out / "folds" / "fold0" / "fold.json").is_file()
    assert not (out / "folds" / "fold1" / "fold.json").exists()
    monkeypatch.setattr(protocol, "train_arm", real_train_arm)
    protocol.run_experiment(None, out, resume=True, progress=False)
    resumed = json.loads((out / "metrics.json").read_text())
    original = json.loads((finished_run / "metrics.json").read_text())
    assert resumed["test"] == original["test"]
    assert resumed["cv"] == original["cv"]
    assert json.loads((out / "run.json").read_text())["resumed"]


def test_refuses_to_overwrite_a_run(finished_run: Path):
    from sonogan.errors import SonoganInputError

    with pytest.raises(SonoganInputError, match="already exists"):
        protocol.run_experiment(tiny_config(), finished_run, progress=False)


def test_config_errors_are_input_errors(tmp_path):
    from sonogan.config import load_config
    from sonogan.errors import SonoganInputError

    bad = tmp_path / "bad.yaml"
    bad.write_text("synthetic: {n_per_class: 10, sweep: [50]}\n")
    with pytest.raises(SonoganInputError, match="sweep"):
        load_config(ExperimentConfig, bad)
    bad.write_text("classifiers: [{model: frid-adar-cnn, epochz: 3}]\n")
    with pytest.raises(SonoganInputError, match="epochz"):
        load_config(ExperimentConfig, bad)

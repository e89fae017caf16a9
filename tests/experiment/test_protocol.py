"""The flagship protocol end to end on a tiny phantom: both arms, every output, no synthetic
image in any evaluated set, GANs that only saw their fold's training images, and an
interrupted run that resumes to exactly the numbers of an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from sonogan.data.manifest import load_dataset
from sonogan.data.splits import Splits
from sonogan.evaluate.calibration import expected_calibration_error
from sonogan.evaluate.metrics import classification_metrics
from sonogan.experiment import fold_tasks, protocol
from sonogan.experiment.config import ExperimentConfig
from sonogan.infer import Predictor
from sonogan.infer.calibration import apply_temperature
from sonogan.preprocess.fold import load_fold
from sonogan.synth.trainer import hashed_ids

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
    "audit": {"enabled": False},  # audited in test_executors.py and test_synthesis.py
}


def tiny_config(**update) -> ExperimentConfig:
    return ExperimentConfig.model_validate({**TINY, **update})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return protocol.run_experiment(tiny_config(), tmp_path_factory.mktemp("exp") / "run", progress=False)


def test_all_outputs_written(finished_run: Path):
    run = finished_run
    for name in ("report.html", "summary.md", "metrics.json", "config.yaml", "run.json", "log.txt",
                 "model_card.md", "model_card.json", "training_hashes.csv"):
        assert (run / name).is_file(), name
    assert "Intended use" in (run / "model_card.md").read_text()
    for fig in ("bars.png", "roc.png", "confusion_baseline.png", "confusion_augmented.png", "tsne.png",
                "sweep_synthetic.png", "sweep_classic.png",
                "classifier_curves.png", "reliability.png"):
        assert (run / "figures" / fig).stat().st_size > 1000, fig
    metrics = json.loads((run / "metrics.json").read_text())
    arms = ["baseline", "augmented", "synthetic-6", "classic-6"]
    assert metrics["arms"] == arms and list(metrics["test"]["ci"]) == arms
    # the hold-out numbers are the fold models' test probabilities averaged (the CV ensemble):
    # recomputed here from the saved predictions
    saved = [np.load(run / "folds" / f"fold{k}" / "predictions.npz") for k in metrics["folds_run"]]
    test_p = {arm: np.mean([s[f"{arm}|ensemble|test"] for s in saved], axis=0) for arm in ("baseline", "augmented")}
    m = {arm: classification_metrics(saved[0]["y|test"], p, metrics["class_names"]) for arm, p in test_p.items()}
    assert metrics["test"]["ci"]["augmented"]["macro_f1"][0] == pytest.approx(m["augmented"]["macro_f1"])
    gain = metrics["test"]["gain_vs_baseline"]["augmented"]["f1/borderline"]
    assert gain[0] == pytest.approx(m["augmented"]["f1/borderline"] - m["baseline"]["f1/borderline"])
    # two members: weighted fusion is the headline model, equal weights its reference; weights saved per arm
    assert metrics["primary_model"] == "ensemble" and metrics["models"][-2:] == ["ensemble", "ensemble-equal"]
    fused = json.loads((run / "folds" / "fold0" / "augmented" / "ensemble.json").read_text())
    members = fused["members"].values()
    assert abs(sum(fused["weights"]) - 1) < 1e-6 and not any(Path(p).is_absolute() for p in members)
    assert all((run / "folds" / "fold0" / "augmented" / p).is_file() for p in members)
    features = np.load(run / "folds" / "fold0" / "features.npz")
    assert features["features"].shape[0] == len(features["label"]) == len(features["synthetic"])
    assert features["synthetic"].any() and not features["synthetic"].all() and str(features["arm"]) == "augmented"
    info = json.loads((run / "run.json").read_text())
    assert info["num_threads"] == 1 and len(info["splits_sha256"]) == 64
    assert json.loads((run / "metrics.json").read_text())["splits"]["sha256"] == info["splits_sha256"]
    html = (run / "report.html").read_text()
    assert "Table 1" in html and "data:image/png;base64" in html and 'src="http' not in html
    assert "Calibration" in html and "ECE before" in html
    assert "Too few to test" in html  # 1-2 borderline test patients: point estimates only, no CI or p
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
        # the GAN saw only this fold's borderline training images (recorded as hashes, never file names)
        gan_info = (fold_dir / "gan-borderline" / "run.json").read_text()
        seen = set(json.loads(gan_info)["training_ids"])
        train = splits.partition(fold, "train")
        labels = ds.manifest.set_index("image_id")["label"]
        assert seen == set(hashed_ids([i for i in train if labels[i] == "borderline"]))
        assert not any(i in gan_info for i in train) and str(finished_run) not in gan_info


def test_predictor_rebuilt_from_files_reproduces_the_experiment(finished_run: Path):
    ds = load_dataset(finished_run / "dataset")
    splits = Splits.load(finished_run / "dataset" / "splits.json", ds)
    fd = load_fold(ds, splits, 1, "flagship-64")
    preds = np.load(finished_run / "folds" / "fold1" / "predictions.npz")
    arm = finished_run / "folds" / "fold1" / "augmented"
    single = Predictor.load(arm / "resnet10t" / "best.pt")
    # the Predictor applies the temperature fitted on the fold's validation predictions
    calibration = json.loads((finished_run / "folds" / "fold1" / "fold.json").read_text())["calibration"]
    t_single = calibration["augmented"]["resnet10t"]["temperature"]
    assert single.temperature == t_single and t_single > 0
    expected = apply_temperature(preds["augmented|resnet10t|test"], t_single)
    assert np.allclose(single.predict_pixels(fd.test.images), expected, atol=1e-6)
    single.temperature = 1.0  # uncalibrated: exactly the experiment's raw probabilities
    assert np.allclose(single.predict_pixels(fd.test.images), preds["augmented|resnet10t|test"], atol=1e-6)
    fused = Predictor.load(arm / "ensemble.json")
    assert fused.temperature == calibration["augmented"]["ensemble"]["temperature"]
    fused.temperature = 1.0
    assert np.allclose(fused.predict_pixels(fd.test.images), preds["augmented|ensemble|test"], atol=1e-6)
    # from decoded files through the checkpoint's own preset: the cache's pixels, so the same answer
    row = ds.manifest.set_index("image_id").loc[fd.test.ids[0]]
    image = cv2.cvtColor(cv2.imread(str(ds.path(row["image"]))), cv2.COLOR_BGR2RGB)
    metrics = json.loads((finished_run / "metrics.json").read_text())
    ece = metrics["calibration"]["1"]["augmented"]["ensemble"]
    raw = preds["augmented|ensemble|test"]
    assert ece["ece_test"] == pytest.approx(expected_calibration_error(preds["y|test"], raw))
    calibrated = apply_temperature(raw, ece["temperature"])
    assert ece["ece_test_calibrated"] == pytest.approx(expected_calibration_error(preds["y|test"], calibrated))
    mask = cv2.imread(str(ds.path(row["mask"])), cv2.IMREAD_GRAYSCALE) if row["mask"] else None
    assert np.array_equal(fused.prepare(image, mask), fd.test.images[0])
    assert np.allclose(fused.predict_images([image], [mask])[0], preds["augmented|ensemble|test"][0], atol=1e-6)


def test_a_splits_file_made_with_other_settings_is_refused(finished_run: Path, tmp_path):
    from sonogan.errors import SonoganInputError

    cfg = tiny_config(dataset=str(finished_run / "dataset"), split={"folds": 3, "test_fraction": 0.2, "seed": 0})
    with pytest.raises(SonoganInputError, match="split"):
        protocol.run_experiment(cfg, tmp_path / "other", progress=False)
    assert json.loads((tmp_path / "other" / "run.json").read_text())["status"] == "failed"


def test_interrupted_run_resumes_to_identical_numbers(finished_run: Path, tmp_path, monkeypatch):
    real_train_arm = fold_tasks.train_arm
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 11:  # fold 1, second arm: as if the process were killed here
            raise KeyboardInterrupt
        return real_train_arm(*args, **kwargs)

    monkeypatch.setattr(fold_tasks, "train_arm", flaky)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        protocol.run_experiment(tiny_config(), out, progress=False)
    assert (out / "folds" / "fold0" / "fold.json").is_file()
    assert not (out / "folds" / "fold1" / "fold.json").exists()
    monkeypatch.setattr(fold_tasks, "train_arm", real_train_arm)
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
    # unknown parts are refused when the config is read, before any GAN trains, naming file and key
    for text, key in (("gan: {family: dcgon}\n", "gan.family"), ("classifiers: [{model: resnet9000}]\n", "classifiers"),
                      ("preset: flagship-65\n", "preset"), ("classifiers: [{model: resnet10t, loss: hinge}]\n", "loss")):
        bad.write_text(text)
        with pytest.raises(SonoganInputError, match=key) as err:
            load_config(ExperimentConfig, bad)
        assert str(bad) in str(err.value)


def test_relative_dataset_path_is_taken_from_the_config_folder(tmp_path):
    from sonogan.config import load_config

    (tmp_path / "cfgs").mkdir()
    (tmp_path / "cfgs" / "x.yaml").write_text("dataset: ../data/mine\n")
    cfg = load_config(ExperimentConfig, tmp_path / "cfgs" / "x.yaml")
    assert Path(cfg.dataset) == (tmp_path / "data" / "mine").resolve()


def test_baseline_only_trains_no_generator_and_reports(tmp_path):
    from sonogan.experiment.report import headline_lines

    cfg = tiny_config(baseline_only=True, classic_sweep=[], classifiers=TINY["classifiers"][:1])
    run = protocol.run_experiment(cfg, tmp_path / "run", progress=False)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["arms"] == ["baseline", "classic"] and not list(run.glob("folds/*/gan-*"))
    assert "Baseline (no generator" in (run / "report.html").read_text()
    lines = headline_lines(metrics, metrics["rare_classes"])
    assert "baseline only" in lines[0] and "macro_f1" in lines[1]
    assert str(tmp_path) not in (run / "report.html").read_text()


def test_all_class_generator_curation_and_matched_control(tmp_path, monkeypatch):
    seen_ids: list[str] = []
    real_curate = fold_tasks.curate

    def watching_curate(syn, probs, keep):
        for cls, part in syn.by_class.items():
            seen_ids.extend(part.ids)
            assert probs[cls].shape == (len(part), 3)
        return real_curate(syn, probs, keep)

    monkeypatch.setattr(fold_tasks, "curate", watching_curate)
    gan = {**TINY["gan"], "family": "cgan"}
    cfg = tiny_config(gan=gan, synthetic={"n_per_class": 6, "sample_factor": 2, "curate": 0.5, "classes": "all",
                                          "matched_control": True},
                      classic_sweep=[], classifiers=TINY["classifiers"][:1], folds=[0])
    run = protocol.run_experiment(cfg, tmp_path / "run", progress=False)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["arms"] == ["baseline", "classic", "augmented", "classic-6"]
    record = json.loads((run / "folds" / "fold0" / "fold.json").read_text())
    assert set(record["synthetic"]) == {"benign", "borderline", "malignant"}  # every class, one generator
    for info in record["synthetic"].values():
        assert info["gan_run"] == "folds/fold0/gan-all" and info["curation"]["kept"] == 6
        assert info["curation"]["rejected_fraction"] == 0.5
    # curation scored synthetic images only: never a validation or test (or any real) image
    syn = pd.read_csv(run / "folds" / "fold0" / "synthetic-all" / "manifest.csv", dtype=str)
    assert seen_ids and set(seen_ids) <= set(syn["image_id"])


def test_diffusion_generator_in_the_protocol(tmp_path):
    diffusion = {"widths": [8, 16], "norm_groups": 4, "train_timesteps": 20, "sample_steps": 2, "iterations": 3,
                 "batch_size": 4, "warmup": 0, "checkpoint_every": 3, "sample_every": 3}
    cfg = tiny_config(generator="diffusion", diffusion=diffusion, synthetic={"n_per_class": 4},
                      classic_sweep=[], classifiers=TINY["classifiers"][:1], folds=[0],
                      evaluation={**TINY["evaluation"], "tsne": False})
    run = protocol.run_experiment(cfg, tmp_path / "run", progress=False)
    syn = pd.read_csv(run / "folds" / "fold0" / "synthetic-borderline" / "manifest.csv", dtype=str)
    assert len(syn) == 4 and (syn["generator"] == "ddpm").all() and (syn["synth_fold"] == "0").all()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["arms"] == ["baseline", "classic", "augmented"]


def test_rare_class_gans_fine_tune_from_a_gan_of_every_class(tmp_path):
    cfg = tiny_config(gan_pretrain=3, classic_sweep=[], classifiers=TINY["classifiers"][:1], folds=[0],
                      synthetic={"n_per_class": 4}, evaluation={**TINY["evaluation"], "tsne": False})
    run = protocol.run_experiment(cfg, tmp_path / "run", progress=False)
    fold = run / "folds" / "fold0"
    pre = json.loads((fold / "gan-pretrain" / "run.json").read_text())
    rare = json.loads((fold / "gan-borderline" / "run.json").read_text())
    ds = load_dataset(run / "dataset")
    train = Splits.load(run / "dataset" / "splits.json", ds).partition(0, "train")
    assert set(pre["training_ids"]) == set(hashed_ids(train))  # every class, training partition only
    assert rare["init_from"] == "gan-pretrain" and len(rare["init_sha256"]) == 64
    assert len(rare["training_ids"]) < len(pre["training_ids"])


def test_synthetic_pretrain_then_real_fine_tune_arm(tmp_path):
    cfg = tiny_config(classic_sweep=[], classifiers=TINY["classifiers"][:1], folds=[0],
                      synthetic={"n_per_class": 4, "pretrain_finetune": {"epochs": 1, "finetune_epochs": 2,
                                                                         "finetune_lr_factor": 0.5}},
                      evaluation={**TINY["evaluation"], "tsne": False})
    run = protocol.run_experiment(cfg, tmp_path / "run", progress=False)
    arm = run / "folds" / "fold0" / "synthetic-pretrain" / "frid-adar-cnn"
    pre = torch.load(arm / "pretrain" / "best.pt", weights_only=True)
    final = torch.load(arm / "best.pt", weights_only=True)
    assert final["extra"]["train_config"]["weights_path"] == str(arm / "pretrain" / "best.pt")
    assert final["extra"]["train_config"]["epochs"] == 2 and pre["extra"]["train_config"]["epochs"] == 1
    assert final["extra"]["train_config"]["lr"] == pytest.approx(cfg.classifiers[0].lr * 0.5)
    # fine-tuning started from the pre-trained weights and moved them
    moved = [not torch.equal(pre["state_dict"][k], final["state_dict"][k]) for k in pre["state_dict"]
             if k.endswith("weight")]
    assert any(moved)
    assert json.loads((run / "metrics.json").read_text())["arms"][-1] == "synthetic-pretrain"


def test_a_finished_run_redraws_its_report_with_the_reader_study(finished_run: Path, tmp_path, monkeypatch):
    import shutil

    from sonogan.experiment import report
    from sonogan.report.html import Section

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = json.loads((run / "metrics.json").read_text())
    monkeypatch.setattr(report, "run_reader_study_section",
                        lambda run_dir: Section("Reader study (from reader_study.json)", "seen"))
    protocol.rewrite_report(run)
    html = (run / "report.html").read_text()
    assert "Reader study (from reader_study.json)" in html and "Table 1" in html
    assert json.loads((run / "metrics.json").read_text()) == before  # drawing only: no number changes
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


def test_images_without_a_mask_are_announced(finished_run: Path, tmp_path):
    import shutil

    src = finished_run / "dataset"
    ds_dir = tmp_path / "ds"
    shutil.copytree(src, ds_dir, ignore=shutil.ignore_patterns("cache"))
    manifest = pd.read_csv(ds_dir / "manifest.csv", dtype=str, keep_default_na=False)
    manifest.loc[manifest.index[:3], "mask"] = ""  # three images lose their lesion mask
    manifest.to_csv(ds_dir / "manifest.csv", index=False)
    (ds_dir / "splits.json").unlink()
    (ds_dir / "dataset.yaml").write_text((ds_dir / "dataset.yaml").read_text().replace("masks: required",
                                                                                       "masks: optional"))
    lines: list[str] = []
    cfg = tiny_config(dataset=str(ds_dir), baseline_only=True, classic_sweep=[], folds=[0],
                      classifiers=TINY["classifiers"][:1])
    protocol.run_experiment(cfg, tmp_path / "run", progress=False, echo=lines.append)
    assert any(line.startswith("3 of ") and "no lesion mask" in line for line in lines)

"""Issue 18's machinery on a tiny phantom: classifier seeds per arm (seed-averaged predictions,
seed spread in metrics.json), every verdict arm in one run, fold records that a rerun (even a
killed and resumed one) reproduces, and a merge of fold records that equals the protocol's own
pooling of the same folds."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sonogan.errors import SonoganInputError
from sonogan.evaluate.metrics import classification_metrics
from sonogan.experiment import fold_tasks, protocol
from sonogan.experiment.config import ExperimentConfig
from sonogan.experiment.records import config_sha256, fold_record, merge_records, read_record, write_record
from sonogan.infer import Predictor
from sonogan.infer.calibration import apply_temperature

REPO = Path(__file__).resolve().parents[2]
ARMS = ["baseline", "augmented", "all-classes", "synthetic-pretrain", "classic-6"]
SMALL_GAN = {"iterations": 4, "batch_size": 8, "ngf": 8, "ndf": 8, "checkpoint_every": 2, "sample_every": 2,
             "quality_every": 2, "quality_samples": 16, "ema_decay": 0.5}
VERDICT = {
    "name": "tiny-verdict",
    "phantom": {"n_benign": 6, "n_borderline": 4, "n_malignant": 5, "images_per_patient": 2, "image_size": 96},
    "split": {"folds": 2, "test_fraction": 0.2, "seed": 0},
    "classifier_seeds": [0, 1],
    "gan": {"family": "dcgan", **SMALL_GAN},
    "gan_pretrain": 2,
    "all_classes_gan": {"family": "cgan", **SMALL_GAN},
    "synthetic": {"n_per_class": 6, "matched_control": True,
                  "pretrain_finetune": {"epochs": 1, "finetune_epochs": 1}},
    "classifiers": [{"model": "frid-adar-cnn", "epochs": 1, "batch_size": 16, "model_kwargs": {"widths": [4, 8, 8]}}],
    "evaluation": {"n_resamples": 20, "tsne": False},
    "audit": {"extractors": ["domain"], "domain_encoder": {"epochs": 1}, "quality_max_images": 4,
              "diversity_pairs": 10, "kid_subsets": 5, "gate_headroom": 1.0},
    "num_threads": 1,
}


def verdict_config(**update) -> ExperimentConfig:
    return ExperimentConfig.model_validate({**VERDICT, **update})


@pytest.fixture(scope="module")
def verdict_run(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return protocol.run_experiment(verdict_config(), tmp_path_factory.mktemp("verdict") / "run", progress=False)


def assert_close(a, b, path="") -> None:
    """Equal JSON-like trees, floats to 1e-12 (NaN equals NaN)."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-12), path
    else:
        assert a == b, path


def test_config_seeds_and_the_all_classes_arm():
    assert ExperimentConfig.model_validate({"dataset": "d", "seed": 3}).seeds() == [3]  # default: as before
    cfg = verdict_config()
    assert cfg.seeds() == [0, 1] and cfg.arm_names() == ARMS
    assert [a.synthetic_set for a in cfg.arms() if a.needs_synthetic] == ["rare", "all", "rare"]
    for bad, match in (({"classifier_seeds": [1, 1]}, "distinct"),
                       ({"all_classes_gan": {"family": "dcgan"}}, "class-conditional"),
                       ({"gan": {"family": "cgan"}, "gan_pretrain": 0, "synthetic": {"classes": "all"}}, "drop one")):
        with pytest.raises(ValueError, match=match):
            verdict_config(**bad)
    # the record's config identity ignores where the data lies and which folds one run ran
    assert config_sha256(cfg) == config_sha256(verdict_config(folds=[1], dataset="/elsewhere"))
    assert config_sha256(cfg) != config_sha256(verdict_config(classifier_seeds=[0, 2]))


def test_every_arm_and_seed_in_one_run(verdict_run: Path):
    metrics = json.loads((verdict_run / "metrics.json").read_text())
    assert metrics["arms"] == ARMS and metrics["classifier_seeds"] == [0, 1]
    assert metrics["control_arm"] == "classic-6"
    fold = verdict_run / "folds" / "fold0"
    for arm in ARMS:
        for s in (0, 1):
            assert (fold / arm / "frid-adar-cnn" / f"seed-{s}" / "best.pt").is_file(), (arm, s)
    # one generator per fold, whatever the seeds: the rare-class GAN fine-tuned from the all-class one,
    # and the class-conditional GAN of the all-classes arm, each audited
    assert json.loads((fold / "gan-borderline" / "run.json").read_text())["init_from"] == "gan-pretrain"
    record = json.loads((fold / "fold.json").read_text())
    assert set(record["synthetic_all_classes"]) == {"benign", "borderline", "malignant"}
    assert set(record["synthetic"]) == {"borderline"}
    assert (fold / "audit" / "all-classes" / "benign" / "audit.json").is_file()
    assert (fold / "audit" / "borderline" / "audit.json").is_file()
    # the classifier seed is seed + fold, as with one seed
    cfg1 = torch.load(fold.parent / "fold1" / "baseline" / "frid-adar-cnn" / "seed-1" / "best.pt", weights_only=True)
    assert cfg1["extra"]["train_config"]["seed"] == 2


def test_headline_is_the_seed_average_and_the_seed_spread_is_reported(verdict_run: Path):
    metrics = json.loads((verdict_run / "metrics.json").read_text())
    names = metrics["class_names"]
    saved = [np.load(verdict_run / "folds" / f"fold{k}" / "predictions.npz") for k in (0, 1)]
    for s in saved:
        for arm in ARMS:
            for part in ("val", "test"):
                mean = (s[f"{arm}|frid-adar-cnn|{part}|seed-0"] + s[f"{arm}|frid-adar-cnn|{part}|seed-1"]) / 2
                np.testing.assert_allclose(s[f"{arm}|frid-adar-cnn|{part}"], mean, rtol=0, atol=1e-15)
    # hold-out: each seed's fold-averaged probabilities -> its metric; SD of two values = |a - b| / sqrt(2)
    per_seed = {seed: {arm: classification_metrics(saved[0]["y|test"], np.mean(
        [s[f"{arm}|frid-adar-cnn|test|seed-{seed}"] for s in saved], axis=0), names) for arm in ARMS} for seed in (0, 1)}
    a, b = per_seed[0]["augmented"]["accuracy"], per_seed[1]["augmented"]["accuracy"]
    assert metrics["test"]["seed_sd"]["augmented"]["accuracy"] == pytest.approx(abs(a - b) / math.sqrt(2))
    gains = [per_seed[k]["augmented"]["macro_f1"] - per_seed[k]["baseline"]["macro_f1"] for k in (0, 1)]
    spread = metrics["test"]["seed_gain_vs_baseline"]["augmented"]["macro_f1"]
    assert spread["per_seed"] == pytest.approx(gains) and spread["min"] == pytest.approx(min(gains))
    control = [per_seed[k]["all-classes"]["macro_f1"] - per_seed[k]["classic-6"]["macro_f1"] for k in (0, 1)]
    assert metrics["cv"]["seed_gain_vs_control"]["all-classes"]["macro_f1"]["max"] is not None
    assert metrics["test"]["seed_gain_vs_control"]["all-classes"]["macro_f1"]["per_seed"] == pytest.approx(control)
    assert set(metrics["test"]["gain_vs_control"]) == {"augmented", "all-classes", "synthetic-pretrain"}


def test_the_arm_ensemble_file_predicts_the_seed_average(verdict_run: Path):
    from sonogan.data.manifest import load_dataset
    from sonogan.data.splits import Splits
    from sonogan.preprocess.fold import load_fold

    ds = load_dataset(verdict_run / "dataset")
    fd = load_fold(ds, Splits.load(verdict_run / "splits.json", ds), 0, "flagship-64")
    arm = verdict_run / "folds" / "fold0" / "augmented"
    assert set(json.loads((arm / "ensemble.json").read_text())["members"]) == {"frid-adar-cnn/seed-0",
                                                                              "frid-adar-cnn/seed-1"}
    saved = np.load(verdict_run / "folds" / "fold0" / "predictions.npz")
    predictor = Predictor.load(arm / "ensemble.json")  # the arm's headline model, calibrated on validation
    np.testing.assert_allclose(predictor.predict_pixels(fd.test.images),
                               apply_temperature(saved["augmented|frid-adar-cnn|test"], predictor.temperature),
                               atol=1e-5)


def test_merging_fold_records_equals_the_protocols_pooling(verdict_run: Path, tmp_path):
    folder = tmp_path / "records"
    for k in (0, 1):
        write_record(fold_record(verdict_run, k), folder)
    assert (folder / "fold0.npz").stat().st_size < 1_000_000
    merged = merge_records([read_record(folder / "fold1.json"), read_record(folder / "fold0.json")])
    metrics = json.loads((verdict_run / "metrics.json").read_text())
    merged = json.loads(json.dumps(merged))  # as written to disk
    for key in ("cv", "test", "point", "per_fold", "folds_run", "arms", "classifier_seeds", "control_arm"):
        assert_close(merged[key], metrics[key], key)
    # one record alone is refused nothing; a record of another config is refused
    other = read_record(folder / "fold1.json")
    other["config_sha256"] = "0" * 64
    with pytest.raises(SonoganInputError, match="config_sha256"):
        merge_records([read_record(folder / "fold0.json"), other])


def test_a_rerun_of_one_fold_killed_and_resumed_reproduces_its_record(verdict_run: Path, tmp_path, monkeypatch):
    real_train_arm = fold_tasks.train_arm
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # the augmented arm's second seed: as if the process were killed here
            raise KeyboardInterrupt
        return real_train_arm(*args, **kwargs)

    monkeypatch.setattr(fold_tasks, "train_arm", flaky)
    out = tmp_path / "fold0"
    with pytest.raises(KeyboardInterrupt):
        protocol.run_experiment(verdict_config(folds=[0]), out, progress=False)
    monkeypatch.setattr(fold_tasks, "train_arm", real_train_arm)
    protocol.run_experiment(None, out, resume=True, progress=False)
    again, first = fold_record(out, 0), fold_record(verdict_run, 0)
    assert again["arrays_sha256"] == first["arrays_sha256"]
    for key in set(first) - {"cost", "arrays"}:
        assert again[key] == first[key], key
    write_record(first, tmp_path / "records")
    write_record(again, tmp_path / "records")  # the same record again: fine
    changed = {**again, "arrays_sha256": "f" * 64}
    with pytest.raises(SonoganInputError, match="different record"):
        write_record(changed, tmp_path / "records")


def _verdict_script():
    spec = importlib.util.spec_from_file_location("mmotu_verdict", REPO / "benchmarks" / "mmotu_verdict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_merge_command_and_readme_block(verdict_run: Path, tmp_path):
    script = _verdict_script()
    folder = tmp_path / "records"
    write_record(fold_record(verdict_run, 0), folder)
    out = tmp_path / "verdict.json"
    assert script.main(["--merge", "--records", str(folder), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["folds_run"] == [0] and result["target"]["met_by"] == []
    block = script.verdict_block(result)
    assert "Folds in: 0 of 0-1** (provisional: 1 of 2 folds)" in block and "No arm meets the target" in block
    assert "| augmented |" in block and "classic-6" in block


def test_two_classifiers_with_seeds_fuse_each_seed_with_the_averaged_weights(tmp_path):
    rng = np.random.default_rng(0)
    cfg = verdict_config(classifiers=[{"model": "frid-adar-cnn"}, {"model": "resnet10t"}])
    job = fold_tasks.FoldJob(cfg, "unused", "unused", str(tmp_path), 0, ("borderline",))
    (tmp_path / "folds" / "fold0" / "baseline").mkdir(parents=True)  # the arm's classifiers made it
    val_y = np.array([0, 1, 2, 0, 1, 2])
    probs = lambda n: rng.dirichlet(np.ones(3), size=n)  # noqa: E731
    runs = {"baseline": {m: {s: {"val": probs(6), "test": probs(4)} for s in (0, 1)}
                         for m in ("frid-adar-cnn", "resnet10t")}}
    preds, per_seed, weights = fold_tasks.combine_seeds(job, runs, val_y)
    by_model = runs["baseline"]
    for m in by_model:
        np.testing.assert_allclose(preds["baseline"][m]["test"], (by_model[m][0]["test"] + by_model[m][1]["test"]) / 2)
    # the fused ensemble is linear: the average of each seed's ensemble (same weights) is the arm's ensemble
    mean_of_seeds = (per_seed["baseline|ensemble|test|seed-0"] + per_seed["baseline|ensemble|test|seed-1"]) / 2
    np.testing.assert_allclose(preds["baseline"]["ensemble"]["test"], mean_of_seeds, atol=1e-12)
    assert "baseline|ensemble-equal|val|seed-1" in per_seed and "baseline|resnet10t|val|seed-0" in per_seed
    fused = json.loads((tmp_path / "folds" / "fold0" / "baseline" / "ensemble.json").read_text())
    assert set(fused["members"]) == {f"{m}/seed-{s}" for m in by_model for s in (0, 1)}
    w = weights["baseline"]
    assert fused["weights"] == pytest.approx([w[0] / 2, w[0] / 2, w[1] / 2, w[1] / 2])

"""The lesion experiment end to end on a tiny phantom: every arm, metrics and gains, resume per
arm, the cascade's empty-mask fallback with its warning, clinical arms on data without them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from sonogan.errors import SonoganInputError
from sonogan.lesion.arms import ARMS
from sonogan.lesion.config import LesionExperimentConfig
from sonogan.lesion.protocol import run_lesion
from sonogan.phantom import PhantomConfig

ARM_NAMES = ["segmentation", "cgan-segmentation", "classification", "classification+clinical", "multitask",
             "multitask+clinical", "cascade", "cascade+clinical", "mask-shape"]


def _cfg(**kw) -> LesionExperimentConfig:
    base = dict(
        name="t", phantom=PhantomConfig(n_benign=6, n_borderline=4, n_malignant=4, images_per_patient=2,
                                        image_size=64, ca125_missing=0.3),
        split={"folds": 2, "test_fraction": 0.2, "seed": 0}, folds=[0], preset="full-64", arms=ARM_NAMES,
        model={"backbone": "unet", "backbone_kwargs": {"width": 4}},
        train={"image_size": 32, "epochs": 1, "batch_size": 8}, cascade={"crop_size": 32},
        evaluation={"n_resamples": 20}, num_threads=1)
    base.update(kw)
    return LesionExperimentConfig.model_validate(base)


def test_every_arm_runs_and_is_scored(tmp_path: Path) -> None:
    assert set(ARM_NAMES) == set(ARMS.names())
    out = run_lesion(_cfg(), tmp_path / "run", progress=False, echo=lambda _: None)
    res = json.loads((out / "metrics.json").read_text())
    assert set(res["classification"]) == {"classification", "classification+clinical", "multitask",
                                          "multitask+clinical", "cascade", "cascade@true", "cascade+clinical",
                                          "cascade+clinical@true", "mask-shape", "mask-shape@true"}
    assert {"segmentation", "segmentation+post", "cgan-segmentation", "multitask"} <= set(res["segmentation"])
    for name in ("multitask vs classification", "classification+clinical vs classification", "cascade vs cascade@true"):
        a, b = res["gains"][name]["a"], res["gains"][name]["b"]
        point = {arm: res["classification"][arm]["cv"]["accuracy"]["point"] for arm in (a, b)}
        # B minus A on the same images: the difference of the two arms' own points
        assert res["gains"][name]["accuracy"]["point"] == pytest.approx(point[b] - point[a])
    assert res["bootstrap_unit"] == "patient"  # the phantom has 2 images per patient
    best = out / "folds" / "fold0" / "segmentation" / "best.pt"
    assert best.is_file() and (out / "config.yaml").is_file()
    assert json.loads((out / "run.json").read_text())["status"] == "completed"

    # the cascade's fallback: a segmenter that finds nothing -> whole scan area + a warning
    seg = out / "folds" / "fold0" / "segmentation" / "predictions.npz"
    saved = dict(np.load(seg))
    np.savez(seg, **{k: np.zeros_like(v) if k.endswith("mask_prob") else v for k, v in saved.items()})
    (out / "folds" / "fold0" / "cascade" / "predictions.npz").unlink()
    lines: list[str] = []
    run_lesion(None, out, resume=True, progress=False, echo=lines.append)
    res = json.loads((out / "metrics.json").read_text())
    n_val_test = res["n_cv"] + len(np.load(out / "folds" / "fold0" / "cascade" / "predictions.npz")["test_proba"])
    assert res["cascade_fallback"]["cascade"] == n_val_test
    assert any("empty predicted mask" in line for line in lines)
    assert "empty predicted mask" in (out / "log.txt").read_text()


def test_clinical_arm_needs_declared_variables(tmp_path: Path) -> None:
    from sonogan.data.manifest import load_dataset
    from sonogan.phantom import generate_phantom

    ds = generate_phantom(tmp_path / "ds", _cfg().phantom)
    spec = yaml.safe_load((ds.root / "dataset.yaml").read_text())
    spec["clinical"] = {}  # the manifest keeps its columns; they are just not declared
    (ds.root / "dataset.yaml").write_text(yaml.safe_dump(spec))
    assert not load_dataset(ds.root).spec.clinical
    cfg = _cfg(dataset=str(ds.root), phantom=None, arms=["classification+clinical"])
    with pytest.raises(SonoganInputError, match="declares none"):
        run_lesion(cfg, tmp_path / "run", progress=False, echo=lambda _: None)


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="unknown arm"):
        _cfg(arms=["segmentation", "nope"])
    with pytest.raises(ValueError, match="add it to arms"):
        _cfg(arms=["cascade"])


def test_pretrain_on_another_dataset_then_fine_tune(tmp_path: Path) -> None:
    from sonogan.phantom import generate_phantom

    other = generate_phantom(tmp_path / "other", _cfg().phantom.model_copy(update={"seed": 7}))
    cfg = _cfg(arms=["multitask"], pretrain={"dataset": str(other.root), "epochs": 1})
    out = run_lesion(cfg, tmp_path / "run", progress=False, echo=lambda _: None)
    assert json.loads((out / "pretrain" / "multitask" / "history.json").read_text())["best_epoch"] == 1
    assert "multitask" in json.loads((out / "metrics.json").read_text())["classification"]


def test_runs_of_different_folds_pool_like_one_run(tmp_path: Path) -> None:
    from sonogan.lesion.protocol import summarise_runs

    cfg = _cfg(arms=["segmentation", "classification"], folds=[0, 1])
    both = run_lesion(cfg, tmp_path / "both", progress=False, echo=lambda _: None)
    ds_cfg = cfg.model_copy(update={"dataset": str(both / "dataset"), "phantom": None})
    one = run_lesion(ds_cfg.model_copy(update={"folds": [0]}), tmp_path / "one", progress=False, echo=lambda _: None)
    two = run_lesion(ds_cfg.model_copy(update={"folds": [1]}), tmp_path / "two", progress=False, echo=lambda _: None)
    pooled = summarise_runs([one, two])
    whole = json.loads((both / "metrics.json").read_text())
    assert pooled["folds"] == [0, 1] and pooled["n_cv"] == whole["n_cv"]
    assert pooled["classification"]["classification"]["cv"]["accuracy"] == \
        whole["classification"]["classification"]["cv"]["accuracy"]
    with pytest.raises(SonoganInputError, match="two of the runs"):
        summarise_runs([one, one])

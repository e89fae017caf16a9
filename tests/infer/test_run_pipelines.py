"""A run's lesion-ROI models shipped with their segmenters: pipeline.json beside each fold's model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sonogan import layout
from sonogan.errors import SonoganInputError
from sonogan.experiment.config import ExperimentConfig
from sonogan.experiment.protocol import run_experiment
from sonogan.infer.pipeline import Pipeline, read_pipeline
from sonogan.infer.run_pipelines import write_run_pipelines

TINY_ROI = {"name": "tiny-roi", "preset": "flagship-64", "baseline_only": True, "classic_sweep": [], "num_threads": 1,
            "phantom": {"n_benign": 4, "n_borderline": 3, "n_malignant": 3, "images_per_patient": 2, "image_size": 64},
            "split": {"folds": 2, "test_fraction": 0.2, "seed": 0}, "evaluation": {"n_resamples": 10, "tsne": False},
            "classifiers": [{"model": "frid-adar-cnn", "epochs": 1, "batch_size": 16,
                             "model_kwargs": {"widths": [4, 8, 8]}}]}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return run_experiment(ExperimentConfig.model_validate(TINY_ROI), tmp_path_factory.mktemp("rp") / "run",
                          progress=False)


def _lesion_run(root: Path, seg: Path, splits: str | None, folds: list[int]) -> Path:
    """A lesion run folder as far as the layout reads it: run.json and each fold's segmenter."""
    for k in folds:
        target = layout.arm_dir(root, k, "segmentation") / layout.BEST_FILE
        target.parent.mkdir(parents=True)
        shutil.copy(seg, target)
    (root / layout.RUN_FILE).write_text(json.dumps({"kind": "lesion", "folds": folds, "splits_sha256": splits}))
    return root


def test_one_segmenter_for_every_fold(run, tmp_path, pipeline_parts):
    seg = pipeline_parts.segmenter(tmp_path / "seg.pt")
    written = write_run_pipelines(run, seg)
    assert written == [layout.arm_dir(run, k, "baseline") / "pipeline.json" for k in (0, 1)]
    for k, path in enumerate(written):
        _, spec = read_pipeline(path)
        assert spec.classifier.file == "frid-adar-cnn/best.pt" and spec.roi.preset == "flagship-64"
        out = Pipeline.load(path).run(pipeline_parts.scans(2))
        assert out.probs.shape == (2, 3) and np.allclose(out.probs.sum(1), 1)
    assert layout.locate(written[0]).fold == 0  # the file sits in the run's layout


def test_a_lesion_run_gives_each_fold_its_own_segmenter_only_with_the_same_splits(run, tmp_path, pipeline_parts):
    seg = pipeline_parts.segmenter(tmp_path / "seg.pt")
    splits = layout.read_info(run)["splits_sha256"]
    same = _lesion_run(tmp_path / "lesion", seg, splits, [0, 1])
    for k, path in enumerate(write_run_pipelines(run, same)):
        assert Pipeline.load(path).files["segmenter"].resolve() == (layout.arm_dir(same, k, "segmentation")
                                                                    / "best.pt").resolve()
    with pytest.raises(SonoganInputError, match="splits differ"):
        write_run_pipelines(run, _lesion_run(tmp_path / "other", seg, "0" * 64, [0, 1]))
    with pytest.raises(SonoganInputError, match="no 'segmentation' segmenter in fold 1"):
        write_run_pipelines(run, _lesion_run(tmp_path / "half", seg, splits, [0]))

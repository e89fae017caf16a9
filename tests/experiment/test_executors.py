"""The protocol's task graph on both executors: the local one runs tasks lazily in submission
order; Ray (a local instance, 2 CPUs) gives metrics identical to it on the phantom, even when
a worker is killed with SIGKILL in the middle of a classifier task."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sonogan.errors import SonoganInputError
from sonogan.experiment import protocol
from sonogan.experiment.config import ExperimentConfig
from sonogan.experiment.executors import EXECUTORS, LocalExecutor, make_executor

CFG = {
    "name": "graph",
    "phantom": {"n_benign": 6, "n_borderline": 4, "n_malignant": 5, "images_per_patient": 2, "image_size": 96},
    "split": {"folds": 2, "test_fraction": 0.2, "seed": 0},
    "gan": {"family": "dcgan", "iterations": 4, "batch_size": 8, "ngf": 8, "ndf": 8, "checkpoint_every": 2,
            "sample_every": 2, "quality_every": 2, "quality_samples": 16, "ema_decay": 0.5},
    "synthetic": {"n_per_class": 6, "sample_factor": 2, "curate": 0.5, "matched_control": True},
    "classifiers": [{"model": "frid-adar-cnn", "epochs": 3, "batch_size": 16, "model_kwargs": {"widths": [4, 8, 8]}}],
    "evaluation": {"n_resamples": 20, "tsne_max_real": 20, "tsne_max_synthetic": 10},
    "num_threads": 1,
    # a light audit with its gate: tiny GANs make many near-copies, hence the generous headroom
    "audit": {"extractors": ["domain"], "domain_encoder": {"epochs": 2}, "quality_max_images": 4,
              "diversity_pairs": 10, "copies_per_image": 1, "gate_headroom": 1.0},
}


def test_local_executor_runs_lazily_in_submission_order():
    calls: list[str] = []
    ex = LocalExecutor()
    a = ex.submit(calls.append, ("a",))
    b = ex.submit(calls.append, ("b",), after=[a])
    c = ex.submit(calls.append, ("c",))
    assert calls == []                       # nothing runs before it is gathered
    ex.gather([b])
    assert calls == ["a", "b"]               # b and what was submitted before it, once each
    ex.gather([a, c])
    assert calls == ["a", "b", "c"]


def test_executor_registry_and_unknown_name():
    assert EXECUTORS.names() == ["local", "ray"]
    with pytest.raises(SonoganInputError, match="use one of: local, ray"):
        make_executor("dask")


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def _arm_task_pids() -> list[int]:
    """Ray names a worker process after the task it runs (``ray::arm_task``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::arm_task"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _kill_one_arm_task(killed: list[int], stop: threading.Event) -> None:
    while not stop.is_set() and not killed:
        pids = _arm_task_pids()
        if pids:
            time.sleep(0.5)  # let it get into its training loop
            try:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            except ProcessLookupError:
                continue
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's worker processes through /proc")
def test_ray_executor_matches_local_and_survives_a_killed_worker(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'sonogan[ray]')")
    torch.set_num_threads(1)
    cfg = ExperimentConfig.model_validate(CFG)
    local = protocol.run_experiment(cfg, tmp_path / "local", progress=False)
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_one_arm_task, args=(killed, stop), daemon=True)
    killer.start()
    executor = make_executor("ray", num_cpus=2)
    try:
        ray_run = protocol.run_experiment(cfg, tmp_path / "ray", progress=False, executor=executor)
    finally:
        stop.set()
        executor.close()
    assert killed, "no Ray worker was killed: the test did not exercise a retry"
    assert json.loads((ray_run / "run.json").read_text())["executor"] == "ray"
    a, b = _metrics(local), _metrics(ray_run)
    assert a["arms"] == b["arms"] == ["baseline", "augmented", "classic-6"]
    assert a == b  # every number: CIs, paired gains, per-fold, calibration, curation counts
    for fold in (0, 1):
        pa = np.load(local / "folds" / f"fold{fold}" / "predictions.npz")
        pb = np.load(ray_run / "folds" / f"fold{fold}" / "predictions.npz")
        assert sorted(pa.files) == sorted(pb.files)
        for key in pa.files:
            assert np.array_equal(pa[key], pb[key]), key
        fa = json.loads((local / "folds" / f"fold{fold}" / "fold.json").read_text())
        fb = json.loads((ray_run / "folds" / f"fold{fold}" / "fold.json").read_text())
        assert fa["synthetic"] == fb["synthetic"] and fa["summary"] == fb["summary"]
        assert fa["synthetic"]["borderline"]["audit"]["gate"]  # the audit ran as a task's part, on both

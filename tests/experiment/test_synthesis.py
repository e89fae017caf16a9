"""Curation keeps the synthetic images a real-trained classifier finds most like their class; the
memorisation gate sees only the fold's training images and drops copies of them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from sonogan.experiment.synthesis import Synthetic, curate
from sonogan.preprocess.fold import Partition


def _part(label: int, n: int) -> Partition:
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)
    return Partition([f"s{label}-{k}" for k in range(n)], images, images[..., 0], np.full(n, label),
                     pd.DataFrame(index=range(n)))


def test_keeps_the_most_confident_in_original_order_and_reports_rejections():
    syn = Synthetic({"a": _part(0, 4), "b": _part(1, 3)}, {"a": {"n_sampled": 4}, "b": {"n_sampled": 3}})
    probs = {"a": np.array([[0.2, 0.8], [0.9, 0.1], [0.6, 0.4], [0.7, 0.3]]),
             "b": np.array([[0.5, 0.5], [0.1, 0.9], [0.3, 0.7]])}
    out = curate(syn, probs, keep=2)
    assert out.by_class["a"].ids == ["s0-1", "s0-3"]          # 0.9 and 0.7, kept in sampling order
    assert out.by_class["b"].ids == ["s1-1", "s1-2"]          # 0.9 and 0.7
    assert out.info["a"]["curation"] == {"kept": 2, "sampled": 4, "rejected_fraction": 0.5,
                                         "min_kept_confidence": 0.7}
    assert out.info["b"]["curation"]["rejected_fraction"] == round(1 / 3, 4)
    assert "curation" not in syn.info["a"]  # the input is left as it was


def _smooth_images(n: int, seed: int, size: int = 32) -> np.ndarray:
    import cv2

    noise = np.random.default_rng(seed).normal(size=(n, size, size))
    smooth = np.stack([cv2.GaussianBlur(x, (0, 0), 3) for x in noise])
    return np.clip(128 + 50 * (smooth - smooth.mean()) / smooth.std(), 0, 255).astype(np.uint8)[..., None]


def _partition(prefix: str, images: np.ndarray, labels: np.ndarray) -> Partition:
    return Partition([f"{prefix}{k}" for k in range(len(images))], images, images[..., 0], labels,
                     pd.DataFrame(index=range(len(images))))


def test_memorisation_gate_sees_only_training_images_and_drops_their_copies(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from sonogan.experiment import synthesis
    from sonogan.experiment.config import ExperimentConfig
    from sonogan.experiment.synthesis import audit_and_gate
    from sonogan.preprocess.fold import FoldData, Normaliser

    imgs = _smooth_images(30, 0)
    labels = np.array([1, 0] * 5 + [1] * 10 + [0] * 10)
    fd = FoldData(0, _partition("train", imgs[:10], labels[:10]), _partition("val", imgs[10:20], labels[10:20]),
                  _partition("test", imgs[20:], labels[20:]), Normaliser((0.0,), (1.0,)))
    # synthetic 'rare' (class 1) images: 4 novel, a copy of a training image of the class, a copy of a
    # validation image; the gate may only know the training images, so it can flag only the first copy
    novel = _smooth_images(4, 1)
    syn = _partition("syn", np.concatenate([novel, imgs[0:1], imgs[10:11]]), np.ones(6, int))
    ds = SimpleNamespace(spec=SimpleNamespace(classes=["common", "rare"], class_index=["common", "rare"].index))
    cfg = ExperimentConfig(audit={"extractors": [], "memorisation_spaces": ["pixel"], "quality_max_images": 3,
                                  "diversity_pairs": 5, "tsne": False})
    fold_dir = tmp_path / "run" / "folds" / "fold0"
    seen = []
    real_audit = synthesis.audit_class
    monkeypatch.setattr(synthesis, "audit_class",
                        lambda inputs, *a, **k: seen.append(inputs) or real_audit(inputs, *a, **k))
    info: dict = {}
    kept = audit_and_gate(cfg, ds, fd, "rare", syn, fold_dir, info, log=lambda _: None)
    assert kept.ids == ["syn0", "syn1", "syn2", "syn3", "syn5"]
    assert info["audit"] == {"folder": "folds/fold0/audit/rare", "flagged": 1, "excluded_from_training": 1,
                             "gate": True}
    record = json.loads((fold_dir / "audit" / "rare" / "audit.json").read_text())
    assert record["n_real_training"] == 5          # the class's training images only
    assert record["memorisation"]["flagged_ids"] == ["syn4"]
    assert seen[0].real_ids == ["train0", "train2", "train4", "train6", "train8"]
    assert seen[0].reference is fd.train.images  # NIQE's model: the training partition, nothing else
    # read back on resume; with the gate off the images stay, the flag is still reported
    off = cfg.model_copy(update={"audit": cfg.audit.model_copy(update={"gate": False})})
    info = {}
    assert len(audit_and_gate(off, ds, fd, "rare", syn, fold_dir, info, log=lambda _: None)) == 6
    assert info["audit"]["flagged"] == 1 and info["audit"]["excluded_from_training"] == 0

"""Features for the report's t-SNE, computed by the protocol so the report only draws.

For each fold: penultimate features of the augmented arm's first classifier for a seeded
subset of the fold's real training images and of each rare class's synthetic images, saved as
``folds/fold<K>/features.npz`` with ``features`` (float32, N x D), ``label`` (int64 class
index), ``synthetic`` (bool) and 0-d strings ``model`` and ``arm``.

Example:
    >>> save_tsne_features(cfg, fd, syn, run / "folds" / "fold0")   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sonogan.experiment.config import ExperimentConfig
from sonogan.experiment.synthesis import Synthetic
from sonogan.models.checkpoint import load_classifier
from sonogan.models.classifiers import penultimate_features
from sonogan.preprocess.fold import FoldData, Normaliser
from sonogan.runs import save_npz_atomic

ARM = "augmented"


def save_tsne_features(cfg: ExperimentConfig, fd: FoldData, syn: Synthetic, fold_dir: Path) -> Path | None:
    """Write ``features.npz`` of this fold (once); None when the augmented classifier is missing."""
    out = fold_dir / "features.npz"
    clf = cfg.classifiers[0]
    ckpt = fold_dir / ARM / clf.model / "best.pt"
    if out.is_file() or not ckpt.is_file():
        return out if out.is_file() else None
    model, meta = load_classifier(ckpt)
    normaliser = Normaliser.from_dict(meta["normaliser"])  # the classifier's own input, as it was trained
    rng = np.random.default_rng(cfg.seed)
    real_idx = rng.permutation(len(fd.train))[: cfg.evaluation.tsne_max_real]
    per_class = cfg.evaluation.tsne_max_synthetic // max(len(syn.by_class), 1)
    syn_parts = [part.select(rng.permutation(len(part))[:per_class]) for part in syn.by_class.values()]
    images = np.concatenate([fd.train.images[real_idx]] + [p.images for p in syn_parts])
    labels = np.concatenate([fd.train.labels[real_idx]] + [p.labels for p in syn_parts])
    synthetic = np.concatenate([np.zeros(len(real_idx), bool)] + [np.ones(len(p), bool) for p in syn_parts])
    with torch.no_grad():
        feats = penultimate_features(model.eval(), normaliser(images, clf.in_chans, clf.image_size))
    save_npz_atomic(out, features=feats.cpu().numpy().astype(np.float32), label=labels.astype(np.int64),
                    synthetic=synthetic, model=np.array(clf.model), arm=np.array(ARM))
    return out

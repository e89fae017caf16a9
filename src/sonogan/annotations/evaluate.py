"""Held-out evaluation of a remover: synthetic pairs on images it never trained on, scored
before (annotated vs clean) and after (restored vs clean), plus the detector's accuracy on
the annotated and the clean version of every image.

Example:
    >>> data = load_clean_images(ds, splits.partition(0, "val"), 256)   # doctest: +SKIP
    >>> evaluate_remover("runs/annotations/mmotu/remover.pt", data, n_pairs=200)["after"]["region_psnr"]  # doctest: +SKIP
    31.2
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from sonogan import layout
from sonogan.annotations.images import CleanImages, load_clean_images
from sonogan.annotations.metrics import pair_metrics
from sonogan.annotations.synthetic import AnnotatedPair, AnnotationConfig, downsized_pair
from sonogan.data.manifest import load_dataset
from sonogan.data.splits import Splits
from sonogan.errors import SonoganInputError
from sonogan.locations import splits_file
from sonogan.models.remover import load_remover


def held_out_pairs(data: CleanImages, n_pairs: int, size: int, channels: int, seed: int,
                   cfg: AnnotationConfig | None = None) -> list[AnnotatedPair]:
    """``n_pairs`` pairs at ``size``, cycling over the images in order, marks from ``seed``."""
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n_pairs):
        k = i % len(data.images)
        image = data.images[k] if channels == 3 else cv2.cvtColor(data.images[k], cv2.COLOR_RGB2GRAY)
        pairs.append(downsized_pair(image, rng, size, data.masks[k], cfg))
    return pairs


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over the pairs where it is finite (an image the remover restores
    exactly has PSNR inf; it is counted in ``n_exact``, not averaged)."""
    out: dict[str, float] = {}
    for key in rows[0]:
        values = [r[key] for r in rows if math.isfinite(r[key])]
        out[key] = float(np.mean(values)) if values else math.nan
    return out


def _to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


def evaluate_remover(checkpoint: str | Path, data: CleanImages, n_pairs: int = 200, seed: int = 1,
                     cfg: AnnotationConfig | None = None, chunk: int = 16) -> dict[str, Any]:
    """Mean PSNR / SSIM (whole image) and PSNR / MAE inside the annotated region, before and
    after removal, with ``gain`` = after - before, and detector accuracy (threshold 0.5)."""
    remover, detector, rcfg, _ = load_remover(checkpoint)
    pairs = held_out_pairs(data, n_pairs, rcfg.size, rcfg.channels, seed, cfg)
    before, after, correct = [], [], 0
    with torch.no_grad():
        for i in range(0, len(pairs), chunk):
            part = pairs[i:i + chunk]
            ann, clean = _to_tensor([p.annotated for p in part]), _to_tensor([p.clean for p in part])
            restored = remover(ann).clamp(0, 1).numpy().transpose(0, 2, 3, 1)
            says = detector(torch.cat([ann, clean])).argmax(1).numpy()
            correct += int((says[:len(part)] == 1).sum() + (says[len(part):] == 0).sum())
            for p, r in zip(part, restored):
                c = p.clean.astype(np.float64) / 255
                before.append(pair_metrics(p.annotated.astype(np.float64) / 255, c, p.mask))
                after.append(pair_metrics(r.astype(np.float64), c, p.mask))
    b, a = _mean(before), _mean(after)
    return {"n_pairs": len(pairs), "seed": seed, "size": rcfg.size, "before": b, "after": a,
            "gain": {k: a[k] - b[k] for k in b},
            "n_exact_after": sum(not math.isfinite(r["psnr"]) for r in after),
            "annotated_fraction": float(np.mean([p.mask.mean() for p in pairs])),
            "detector_accuracy": correct / (2 * len(pairs))}


def evaluate_checkpoint(checkpoint: str | Path, dataset: str | Path | None = None, fold: int | None = None,
                        n_pairs: int = 200, seed: int = 1) -> dict[str, Any]:
    """:func:`evaluate_remover` on the validation images of ``fold`` of ``dataset`` (by default
    the dataset and fold the remover was trained on, read from the checkpoint)."""
    _, _, rcfg, extra = load_remover(checkpoint)
    own_dataset = dataset is None
    dataset = dataset or extra.get("dataset")
    if dataset is None:
        raise SonoganInputError(checkpoint, "the checkpoint does not name its dataset", "pass DATASET")
    fold = extra.get("fold", 0) if fold is None else fold
    ds = load_dataset(dataset)
    # its own dataset: the splits copy of the run it was trained in, else the dataset's splits
    place = layout.locate(checkpoint) if own_dataset else None
    splits = (layout.run_splits(place.run) if place is not None else None) or splits_file(ds.root)
    ids = Splits.load(splits, ds).partition(fold, "val")
    draw = int(round(rcfg.size * extra.get("train_config", {}).get("draw_scale", 2.0)))
    marks = AnnotationConfig.model_validate(extra.get("train_config", {}).get("annotations", {}))
    result = evaluate_remover(checkpoint, load_clean_images(ds, ids, draw), n_pairs, seed, marks)
    return {"dataset": str(ds.root), "fold": fold, **result}

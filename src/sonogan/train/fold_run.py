"""Train ONE classifier on a dataset fold into a run folder: the unit ``sonogan train`` runs,
on one process or (under torchrun) data-parallel over several GPUs or nodes.

The fold's real training images train it, its validation images choose the best epoch (early
stopping), exactly as one arm of ``sonogan experiment`` does; the run folder holds run.json,
config.yaml, best.pt (a self-contained checkpoint for ``sonogan predict``), last.pt,
history.json and metrics.json (run.json, best.pt and history.json record the precision used and
why). Under torchrun rank 0 writes the folder and builds the
preprocessing cache first; the other ranks read it.

Example:
    >>> from sonogan.train.config import ClassifierTrainConfig
    >>> cfg = ClassifierTrainConfig(epochs=2)                                          # doctest: +SKIP
    >>> train_on_fold("runs/phantom", None, 0, cfg, "runs/clf-f0")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from sonogan import layout
from sonogan.data.manifest import Dataset, load_dataset
from sonogan.data.splits import Splits
from sonogan.locations import splits_file
from sonogan.preprocess.fold import Normaliser, load_fold
from sonogan.preprocess.presets import get_preset
from sonogan.runs import RunDir
import sonogan.train.distributed as ddp  # the module itself, not through train/__init__.py (which imports the loop)
from sonogan.train.config import ClassifierTrainConfig
from sonogan.train.loop import classifier_precision, train_classifier


def train_on_fold(ds: Dataset | str | Path, splits: str | Path | None, fold: int | None, cfg: ClassifierTrainConfig,
                  out: str | Path, preset: str = "flagship-64", resume: bool = False,
                  progress: bool = True) -> Path:
    """Train ``cfg`` on ``fold``'s training images (``None``: every non-test image, no
    validation) in new run folder ``out`` (or continue it with ``resume=True``); returns ``out``.
    ``splits``: a splits.json (None: the dataset's, :func:`~sonogan.locations.splits_file`),
    copied into the run; a resumed run reads its own copy (:func:`~sonogan.layout.resume_splits`).

    Launched by torchrun (``WORLD_SIZE`` > 1) it joins the process group and trains one
    model over all ranks (:mod:`sonogan.train.distributed`).
    """
    ddp.init_from_env()
    ds = ds if isinstance(ds, Dataset) else load_dataset(ds)
    get_preset(preset)  # an unknown preset fails before any folder is made
    out = Path(out)
    source = layout.resume_splits(out, ds.root) if resume else Path(splits or splits_file(ds.root))
    with ddp.main_first():  # rank 0 builds the preprocessing cache, the others then read it
        fd = load_fold(ds, Splits.load(source, ds), fold, preset)
    norm = {"fold": fd.normaliser, "imagenet": Normaliser.imagenet(), "lite": Normaliser.lite()}[cfg.normalise]
    run = None
    if ddp.is_main():
        run = RunDir.resume(out) if resume else RunDir.create(out, config=cfg, kind="classifier")
    with run if run is not None else contextlib.nullcontext():
        if run is not None:
            layout.keep_splits(run, lambda: source)
            run.set_info(fold=fold, preset=preset, dataset=str(ds.root.resolve()), dataset_name=ds.spec.name,
                         world_size=ddp.world_size(), precision=classifier_precision(cfg).describe())
        has_val = len(fd.val) > 0
        result = train_classifier(
            cfg, norm(fd.train.images, cfg.in_chans, cfg.image_size), torch.from_numpy(fd.train.labels),
            norm(fd.val.images, cfg.in_chans, cfg.image_size) if has_val else None,
            torch.from_numpy(fd.val.labels) if has_val else None, out, list(ds.spec.classes),
            progress=progress, resume=resume, normaliser=norm, preprocess=get_preset(preset).model_dump(mode="json"),
            description=f"fold {fold} {cfg.model}")
        if run is not None:
            run.write_metrics({"best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
                               "epochs_run": result.epochs_run, "stopped_early": result.stopped_early,
                               "seconds": round(result.seconds, 2), "device": result.device,
                               "world_size": ddp.world_size()})
    return out

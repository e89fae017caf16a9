"""The lesion experiment, fold by fold on the saved splits, resumable per fold and arm.

For each fold (:func:`sonogan.preprocess.fold.load_fold` on a whole-scan preset): every arm of
the config (:mod:`sonogan.lesion.arms`) is trained with the same backbone, head, training
settings and seed, then predicts the fold's validation images and the hold-out test set:

- segmentation arms (``segmentation``, ``cgan-segmentation``) and ``multitask`` save mask
  probabilities; classification arms save class probabilities;
- ``cascade`` trains on crops around the TRUE lesion mask and is scored twice: on crops
  around the segmenter's predicted mask (``cascade``, what real use gets) and around the
  true mask (``cascade@true``); an empty predicted mask falls back to the whole scan area
  with a warning;
- ``mask-shape`` classifies the mask alone (trained on true masks, scored on predicted ones).

Each arm's ``predictions.npz`` is written when it finishes, so a killed run resumes at the
arm it was in (whose ``last.pt`` resumes mid-training). :mod:`sonogan.lesion.results` then
pools the folds' validation predictions (the cross-validation estimate) and computes metrics,
bootstrap CIs and paired gains.

Example:
    >>> from sonogan.config import load_config
    >>> cfg = load_config(LesionExperimentConfig, "configs/lesion/demo.yaml")   # doctest: +SKIP
    >>> run_lesion(cfg, "runs/lesion-demo")                                      # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from sonogan import layout
from sonogan.data.manifest import Dataset, load_dataset
from sonogan.data.splits import Splits, prepare_splits
from sonogan.errors import SonoganInputError
from sonogan.lesion.arms import ARMS, ArmSpec
from sonogan.lesion.config import LesionExperimentConfig
from sonogan.lesion.data import lesion_crops, mask_flags, partition_tensors, upsample_probs
from sonogan.lesion.results import summarise, truth_of
from sonogan.lesion.train import lesion_precision, predict, train_lesion
from sonogan.models.clinical import ClinicalEncoder
from sonogan.models.mask_classifier import MaskShapeCNN, masks_to_input
from sonogan.models.multitask import LesionModelConfig
from sonogan.models.segmentation import postprocess_mask
from sonogan.phantom import prepare_phantom
from sonogan.preprocess.fold import FoldData, Normaliser, Partition, load_fold
from sonogan.preprocess.presets import get_preset
from sonogan.runs import RunDir, save_npz_atomic, write_json

Echo = Callable[[str], None]
PARTS = ("train", "val", "test")


def model_config(cfg: LesionExperimentConfig, arm: ArmSpec, num_classes: int, clinical_dim: int) -> LesionModelConfig:
    m = cfg.model
    return LesionModelConfig(backbone="cgan-unet" if arm.task == "cgan-segmentation" else m.backbone,
                             backbone_kwargs=m.backbone_kwargs, pretrained=m.pretrained, in_chans=m.in_chans,
                             outputs=arm.outputs, num_classes=num_classes, clinical_dim=clinical_dim,
                             clinical_hidden=m.clinical_hidden, pooled=m.pooled, head_hidden=m.head_hidden,
                             head_dropout=m.head_dropout, head_norm=m.head_norm,
                             image_dropout=m.image_dropout)


def task_kwargs(cfg: LesionExperimentConfig, arm: ArmSpec) -> dict[str, Any]:
    if arm.task == "multitask":
        return cfg.multitask.model_dump()
    if arm.task == "segmentation":
        return {"seg_bce": cfg.multitask.seg_bce}
    if arm.task == "cgan-segmentation":
        return {"in_chans": cfg.model.in_chans, **cfg.cgan.model_dump()}
    return {}


def normaliser_for(cfg: LesionExperimentConfig, fitted: Normaliser) -> Normaliser:
    return {"fold": fitted, "imagenet": Normaliser.imagenet(), "lite": Normaliser.lite()}[cfg.train.normalise]


def predicted_masks(probs: np.ndarray, size: int, post: bool) -> np.ndarray:
    """Boolean masks at the cache's resolution from the segmenter's probabilities."""
    masks = upsample_probs(probs, size) > 0.5
    return np.stack([postprocess_mask(m) for m in masks]) if post and len(masks) else masks


class FoldRunner:
    """Trains and predicts every arm of one fold (see the module docstring)."""

    def __init__(self, cfg: LesionExperimentConfig, ds: Dataset, fd: FoldData, run: RunDir,
                 echo: Echo, progress: bool, pretrain: Callable[[ArmSpec], dict[str, torch.Tensor] | None]) -> None:
        self.cfg, self.ds, self.fd, self.run, self.echo = cfg, ds, fd, run, echo
        self.progress, self.pretrain = progress, pretrain
        self.classes = list(ds.spec.classes)
        self.has = {p: mask_flags(ds, getattr(fd, p).ids) for p in ("train", "val", "test")}
        self.preds: dict[str, dict[str, np.ndarray]] = {}

    def arm_dir(self, arm: ArmSpec) -> Path:
        return layout.arm_dir(self.run.path, int(self.fd.fold or 0), arm.name)

    def clinical(self, arm: ArmSpec) -> ClinicalEncoder | None:
        if not arm.clinical:
            return None
        if not self.ds.spec.clinical:
            raise SonoganInputError(self.ds.root / "dataset.yaml", f"arm '{arm.name}' needs clinical variables "
                                    "but the dataset declares none", "declare them under clinical: or drop the arm")
        return ClinicalEncoder.fit(self.fd.train.clinical, self.ds.spec.clinical)

    def meta(self, arm: ArmSpec, norm: Normaliser, size: int, enc: ClinicalEncoder | None) -> dict[str, Any]:
        return {"class_names": self.classes, "preprocess": get_preset(self.cfg.preset).model_dump(mode="json"),
                "normaliser": norm.to_dict(), "image_size": size, "in_chans": self.cfg.model.in_chans,
                "postprocess": self.cfg.cascade.postprocess, "clinical": None if enc is None else enc.to_dict(),
                "arm": arm.name, "fold": self.fd.fold}

    def train(self, arm: ArmSpec, model: Any, data: dict[str, dict[str, torch.Tensor]], meta: dict[str, Any],
              init: dict[str, torch.Tensor] | None = None) -> Any:
        c = self.cfg
        return train_lesion(model, c.train.model_copy(update={"image_size": int(data["train"]["image"].shape[-1])}),
                            arm.task, task_kwargs(c, arm), data["train"], data["val"], self.arm_dir(arm),
                            seed=c.seed + int(self.fd.fold or 0), device=c.device, amp=c.amp, meta=meta,
                            init_state=init, progress=self.progress,
                            description=f"fold {self.fd.fold} {arm.name}").model

    def image_arm(self, arm: ArmSpec) -> dict[str, np.ndarray]:
        c, enc = self.cfg, self.clinical(arm)
        norm = normaliser_for(c, self.fd.normaliser)
        data = {p: partition_tensors(getattr(self.fd, p), self.has[p], norm, c.model.in_chans, c.train.image_size, enc)
                for p in ("train", "val", "test")}
        mcfg = model_config(c, arm, len(self.classes), 0 if enc is None else enc.dim)
        model = self.train(arm, mcfg, data, self.meta(arm, norm, c.train.image_size, enc), self.pretrain(arm))
        out: dict[str, np.ndarray] = {}
        for p in ("val", "test"):
            for key, value in predict(model, data[p]).items():
                out[f"{p}_{key}"] = value.astype(np.float16) if key == "mask_prob" else value
        return out

    def segmenter_masks(self, part: str) -> np.ndarray:
        probs = self.preds[self.cfg.cascade.segmenter][f"{part}_mask_prob"].astype(np.float32)
        return predicted_masks(probs, self.fd.train.images.shape[1], self.cfg.cascade.postprocess)

    def crop_arm(self, arm: ArmSpec) -> dict[str, np.ndarray]:
        c, enc, size = self.cfg, self.clinical(arm), self.cfg.cascade.crop_size
        crops = {p: lesion_crops(getattr(self.fd, p).images, getattr(self.fd, p).masks > 0, c.cascade.margin, size)[0]
                 for p in ("train", "val", "test")}
        norm = normaliser_for(c, Normaliser.fit(crops["train"]))
        empty = np.zeros((1, size, size), np.uint8)  # crop arms have no mask term: has_mask is False

        def tensors(p: str, images: np.ndarray) -> dict[str, torch.Tensor]:
            part: Partition = getattr(self.fd, p)
            return partition_tensors(part, np.zeros(len(part), bool), norm, c.model.in_chans, size, enc,
                                     images=images, masks=np.repeat(empty, len(part), 0))

        data = {p: tensors(p, crops[p]) for p in ("train", "val", "test")}
        mcfg = model_config(c, arm, len(self.classes), 0 if enc is None else enc.dim)
        meta = {**self.meta(arm, norm, size, enc), "cascade": c.cascade.model_dump()}
        model = self.train(arm, mcfg, data, meta)
        out: dict[str, np.ndarray] = {}
        for p in ("val", "test"):
            pred_crops, fallback = lesion_crops(getattr(self.fd, p).images, self.segmenter_masks(p), c.cascade.margin, size)
            if fallback.any():
                self.warn(f"fold {self.fd.fold} {arm.name}: {int(fallback.sum())} {p} images have an empty predicted "
                          "mask; their whole scan area was classified instead")
            out[f"{p}_proba"] = predict(model, tensors(p, pred_crops))["proba"]
            out[f"{p}_proba_true"] = predict(model, data[p])["proba"]
            out[f"{p}_fallback"] = fallback
        return out

    def mask_arm(self, arm: ArmSpec) -> dict[str, np.ndarray]:
        def tensors(p: str, masks: np.ndarray) -> dict[str, torch.Tensor]:
            x = masks_to_input(masks)
            return {"image": x, "mask": (x > 0).float(), "has_mask": torch.ones(len(x), dtype=torch.bool),
                    "label": torch.from_numpy(getattr(self.fd, p).labels.astype(np.int64))}

        data = {p: tensors(p, getattr(self.fd, p).masks > 0) for p in ("train", "val", "test")}
        model = self.train(arm, MaskShapeCNN(len(self.classes)), data, {"class_names": self.classes, "arm": arm.name})
        out: dict[str, np.ndarray] = {}
        for p in ("val", "test"):
            out[f"{p}_proba"] = predict(model, tensors(p, self.segmenter_masks(p)))["proba"]
            out[f"{p}_proba_true"] = predict(model, data[p])["proba"]
        return out

    def warn(self, line: str) -> None:
        self.run.log(f"warning: {line}")
        self.echo(f"warning: {line}")

    def run_arm(self, arm: ArmSpec) -> None:
        path = self.arm_dir(arm) / "predictions.npz"
        if not path.is_file():
            runner = {"image": self.image_arm, "crop": self.crop_arm, "mask": self.mask_arm}[arm.input]
            path.parent.mkdir(parents=True, exist_ok=True)
            save_npz_atomic(path, **runner(arm))
            self.run.log(f"fold {self.fd.fold} arm {arm.name} done")
        with np.load(path) as saved:
            self.preds[arm.name] = {k: saved[k] for k in saved.files}


def arm_order(names: list[str]) -> list[ArmSpec]:
    """Segmenters first (the cascade and mask-shape arms crop to their masks)."""
    specs = [ARMS.create(n) for n in names]
    return sorted(specs, key=lambda a: a.input != "image")


def open_dataset(cfg: LesionExperimentConfig, run: RunDir, progress: bool) -> tuple[Dataset, Splits]:
    ds = load_dataset(cfg.dataset) if cfg.dataset else prepare_phantom(cfg.phantom, run, progress)
    # the run's own copy: a resumed run continues on the splits it started with
    splits = Splits.load(layout.keep_splits(run, lambda: prepare_splits(ds, cfg.split, cfg.splits)[1]), ds)
    if get_preset(cfg.preset).roi != "none":
        raise SonoganInputError(cfg.preset, "the lesion experiment needs a whole-scan preset (roi: none)",
                                "use e.g. full-128 or full-rgb-160: the models must find the lesion themselves")
    return ds, splits


def make_pretrainer(cfg: LesionExperimentConfig, run: RunDir, progress: bool) -> Callable[[ArmSpec], Any]:
    """Weights pre-trained on ``cfg.pretrain.dataset`` per image arm (trained once, then cached in the run)."""
    def pretrain(arm: ArmSpec) -> dict[str, torch.Tensor] | None:
        if cfg.pretrain is None or arm.input != "image":
            return None
        ds = load_dataset(cfg.pretrain.dataset)
        splits, _ = prepare_splits(ds, cfg.split, cfg.splits)
        preset = cfg.pretrain.preset or cfg.preset
        fd = load_fold(ds, splits, None, preset)
        norm = normaliser_for(cfg, fd.normaliser)
        has = mask_flags(ds, fd.train.ids)
        data = partition_tensors(fd.train, has, norm, cfg.model.in_chans, cfg.train.image_size)
        train_cfg = cfg.train.model_copy(update={"epochs": cfg.pretrain.epochs, "keep": "last"})
        res = train_lesion(model_config(cfg, arm, len(ds.spec.classes), 0), train_cfg, arm.task, task_kwargs(cfg, arm),
                           data, None, run.path / "pretrain" / arm.name, seed=cfg.seed, device=cfg.device, amp=cfg.amp,
                           meta={"class_names": list(ds.spec.classes)}, progress=progress,
                           description=f"pretrain {arm.name}")
        return res.model.state_dict()
    return pretrain


def summarise_runs(run_dirs: list[Path]) -> dict[str, Any]:
    """Pool the folds of several finished runs of one config (e.g. folds run on different days or
    machines) into one results dict, as if one run had done them all. Only ``folds`` may differ."""
    cfgs = [layout.resume_config(d, LesionExperimentConfig) for d in run_dirs]
    base = cfgs[0]
    if any(c.model_dump(exclude={"folds"}) != base.model_dump(exclude={"folds"}) for c in cfgs[1:]):
        raise SonoganInputError(run_dirs[1], "was run with another config than the first run",
                                "pool only runs of the same config (folds may differ)")
    ds = load_dataset(base.dataset) if base.dataset else load_dataset(Path(run_dirs[0]) / "dataset")
    splits_path = layout.run_splits(run_dirs[0])
    if splits_path is None:
        raise SonoganInputError(run_dirs[0], "the splits file the run used was not found (or has changed)",
                                "restore the run's splits.json")
    splits = Splits.load(splits_path, ds)
    truth: dict[int, dict[str, np.ndarray]] = {}
    preds: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    for run_dir, cfg in zip(run_dirs, cfgs):
        for fold in cfg.folds if cfg.folds is not None else range(splits.n_folds):
            if fold in preds:
                raise SonoganInputError(run_dir, f"fold {fold} is in two of the runs", "pool runs of different folds")
            fd = load_fold(ds, splits, fold, cfg.preset)
            truth[fold] = truth_of(ds, fd, {p: mask_flags(ds, getattr(fd, p).ids) for p in PARTS}, cfg.train.image_size)
            preds[fold] = {}
            for arm in cfg.arms:
                with np.load(layout.arm_dir(run_dir, fold, arm) / "predictions.npz") as saved:
                    preds[fold][arm] = {k: saved[k] for k in saved.files}
    return summarise(base.model_copy(update={"folds": sorted(preds)}), list(ds.spec.classes), truth, preds)


def run_lesion(cfg: LesionExperimentConfig | None, out: str | Path, resume: bool = False, progress: bool = True,
               echo: Echo = print) -> Path:
    """Run (or with ``resume=True`` continue, reading the folder's own config) the experiment in ``out``."""
    out = Path(out)
    if resume:
        cfg = layout.resume_config(out, LesionExperimentConfig)
    assert cfg is not None
    with RunDir.resume(out) if resume else RunDir.create(out, config=cfg, kind="lesion") as run:
        torch.set_num_threads(cfg.num_threads)
        ds, splits = open_dataset(cfg, run, progress)
        folds = cfg.folds if cfg.folds is not None else list(range(splits.n_folds))
        run.set_info(folds=folds,  # as every run lists them (predict / evaluate average them)
                     precision=lesion_precision(cfg.train, cfg.model.backbone, cfg.device, cfg.amp).describe())
        pretrain = make_pretrainer(cfg, run, progress)
        truth: dict[int, dict[str, np.ndarray]] = {}
        preds: dict[int, dict[str, dict[str, np.ndarray]]] = {}
        for fold in folds:
            fd = load_fold(ds, splits, fold, cfg.preset)
            runner = FoldRunner(cfg, ds, fd, run, echo, progress, pretrain)
            for arm in arm_order(cfg.arms):
                runner.run_arm(arm)
            truth[fold], preds[fold] = truth_of(ds, fd, runner.has, cfg.train.image_size), runner.preds
            echo(f"fold {fold}: {', '.join(runner.preds)} done")
        results = summarise(cfg, list(ds.spec.classes), truth, preds)
        write_json(run.path / "metrics.json", results)
    return out

"""Typed configs of the lesion experiment (``sonogan lesion CONFIG``): training, arms, cascade,
pre-training, all in one YAML file (see ``configs/lesion/*.yaml``).

Arms (see :data:`sonogan.lesion.arms.ARMS`): ``segmentation``, ``cgan-segmentation``,
``classification``, ``multitask``, ``classification+clinical``, ``multitask+clinical``,
``cascade`` and ``cascade+clinical`` (segment, crop to the predicted mask, classify the crop;
also scored on crops from the true mask), ``mask-shape`` (a CNN on the mask alone).

Example:
    >>> cfg = LesionExperimentConfig(arms=["segmentation", "classification", "multitask"])
    >>> cfg.model.backbone, cfg.train.epochs, cfg.multitask.lambda_seg
    ('unet', 30, 0.3)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from sonogan.config import StrictModel
from sonogan.data.splits import SplitParams
from sonogan.lesion.arms import ARMS
from sonogan.phantom import PhantomConfig
from sonogan.train.accel import MemoryFormatName, PrecisionName
from sonogan.train.config import AugmentConfig


class LesionTrainConfig(StrictModel):
    """One training run of a lesion model (read by :func:`sonogan.train.recipe.make_optimizer`
    and ``make_scheduler`` like a classifier config)."""

    image_size: int = Field(128, ge=16, description="model input side; cached images and masks are resized to it")
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(16, ge=1)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = True
    layer_decay: float | None = Field(None, gt=0.0, le=1.0)
    schedule: Literal["constant", "cosine"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0.0)
    min_lr_ratio: float = Field(0.01, ge=0.0, le=1.0)
    loss: Literal["ce", "weighted_ce", "focal"] = Field("ce", description="classification loss (thesis: focal on MMOTU)")
    focal_gamma: float = Field(2.0, ge=0.0)
    patience: int | None = Field(None, ge=1, description="epochs without val-loss improvement; null = no early stop")
    keep: Literal["best", "last"] = Field("best", description="save the lowest-val-loss epoch (thesis) or the last")
    augment: AugmentConfig = Field(default_factory=lambda: AugmentConfig(hflip=True, rotation=10.0, translate=0.05),
                                   description="geometric ops move image and mask together")
    normalise: Literal["fold", "imagenet", "lite"] = Field("fold", description="as for classifiers; 'lite' "
                                                           "for the pretrained EfficientNet-Lite encoder")
    precision: PrecisionName = Field("fp32", description="CPU training precision: fp32, bf16 autocast, or auto "
                                     "(the fastest measured for the backbone and size; bf16 only on CPUs with "
                                     "native bf16); on CUDA the experiment's amp decides")
    memory_format: MemoryFormatName = Field("channels_first", description="CPU layout: channels_first, "
                                            "channels_last, or auto (the fastest measured)")


class ModelSection(StrictModel):
    """The backbone and classification head shared by every arm (so arms differ only in their task)."""

    backbone: str = Field("unet", description="SEGMENTERS name: unet, efficientnet-lite0-unet, ...")
    backbone_kwargs: dict[str, Any] = Field(default_factory=dict)
    pretrained: bool = False
    in_chans: Literal[1, 3] = 1
    pooled: int | None = Field(None, ge=1)
    head_hidden: int = Field(128, ge=1)
    head_dropout: float = Field(0.3, ge=0.0, lt=1.0)
    head_norm: bool = Field(False, description="batch norm on the fused head input (see LesionModelConfig)")
    image_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on pooled image features before fusion")
    clinical_hidden: int = Field(32, ge=1)


class MultitaskSection(StrictModel):
    lambda_seg: float = Field(0.3, ge=0.0, description="weight of the Dice term (thesis: 0.3)")
    lambda_cls: float = Field(1.0, ge=0.0, description="weight of the classification term (thesis: 1.0)")
    seg_bce: float = Field(0.0, ge=0.0, description="BCE added to Dice in every segmentation term (0 = Dice only)")


class CascadeSection(StrictModel):
    margin: float = Field(0.15, ge=0.0, le=2.0, description="loose frame: the mask's box grown by this share per side")
    crop_size: int = Field(96, ge=16, description="side of the resized crop (thesis: 164)")
    postprocess: bool = Field(True, description="closing/erosion/dilation + largest component on predicted masks")
    segmenter: Literal["segmentation", "cgan-segmentation"] = Field(
        "segmentation", description="which segmentation arm's masks the cascade crops to")


class CganSection(StrictModel):
    adv_weight: float = Field(0.1, ge=0.0, description="adversarial BCE weight next to Dice (weight 1)")
    disc_width: int = Field(32, ge=4)
    d_lr: float = Field(2e-4, gt=0.0)


class PretrainSection(StrictModel):
    """Pre-train every model on another dataset (all its development images), then fine-tune on
    each fold (the thesis pre-trains on MMOTU). The classification head is re-initialised when
    the class lists differ."""

    dataset: str
    preset: str | None = Field(None, description="null = the experiment's preset")
    epochs: int = Field(10, ge=1)


class EvaluationSection(StrictModel):
    n_resamples: int = Field(1000, ge=10)
    ci: float = Field(0.95, gt=0.5, lt=1.0)


class LesionExperimentConfig(StrictModel):
    name: str = "lesion"
    dataset: str | None = Field(None, description="dataset folder; null = generate the phantom into the run")
    phantom: PhantomConfig | None = None
    splits: str | None = Field(None, description="splits.json (default DATASET/splits.json, made once if absent)")
    split: SplitParams = Field(default_factory=SplitParams)
    folds: list[int] | None = Field(None, description="folds to run (null = all)")
    seed: int = 0
    preset: str = Field("full-128", description="a whole-scan preset (roi: none): the models find the lesion")
    arms: list[str] = Field(default_factory=lambda: ["segmentation", "classification", "multitask", "cascade"])
    model: ModelSection = Field(default_factory=ModelSection)
    train: LesionTrainConfig = Field(default_factory=LesionTrainConfig)
    multitask: MultitaskSection = Field(default_factory=MultitaskSection)
    cascade: CascadeSection = Field(default_factory=CascadeSection)
    cgan: CganSection = Field(default_factory=CganSection)
    pretrain: PretrainSection | None = None
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True
    num_threads: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> "LesionExperimentConfig":
        if self.dataset is None and self.phantom is None:
            self.phantom = PhantomConfig()
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise ValueError(f"unknown arm '{unknown[0]}'; use: {', '.join(ARMS.names())}")
        if len(set(self.arms)) != len(self.arms):
            raise ValueError("each arm may appear once")
        needs_seg = any(a.startswith("cascade") or a == "mask-shape" for a in self.arms)
        if needs_seg and self.cascade.segmenter not in self.arms:
            raise ValueError(f"cascade and mask-shape arms crop to the masks of the '{self.cascade.segmenter}' "
                             "arm: add it to arms")
        return self

    def resolve_paths(self, base: Path) -> "LesionExperimentConfig":
        """Relative dataset / splits / pretrain paths are taken from the config file's folder."""
        update: dict[str, Any] = {k: str((base / v).resolve()) for k in ("dataset", "splits")
                                  if (v := getattr(self, k)) is not None and not Path(v).is_absolute()}
        if self.pretrain is not None and not Path(self.pretrain.dataset).is_absolute():
            update["pretrain"] = self.pretrain.model_copy(
                update={"dataset": str((base / self.pretrain.dataset).resolve())})
        return self.model_copy(update=update)
